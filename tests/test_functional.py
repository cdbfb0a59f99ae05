"""pnpfast.functional against oracles written here: a float64 dense oracle built from a
loop-written circular convolution and decimation (applied to basis vectors), an independent
pad-roll-FFT for p2o, and loops written in the style of each codebase (DPIR deblurring and
super-resolution, GS-PnP with backtracking, Kadkhodaie & Simoncelli's sampler) that must give
the iterates and results of pnpfast.solve with the same schedule and start. Tiny images."""

import math

import numpy as np
import pytest
import torch

import pnpfast
from pnpfast import functional as F
from pnpfast.operators import BlockAverage, Blur, Inpainting, SuperResolution

F64 = torch.float64


def rand(*shape, seed=0, dtype=F64) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def kernel(h, w, seed=1, dtype=F64) -> torch.Tensor:
    k = rand(h, w, seed=seed, dtype=dtype) + 0.2
    return k / k.sum()


# -- the dense oracle ------------------------------------------------------------------------


def conv_loops(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Circular convolution of one [H, W] plane, the kernel's tap (h // 2, w // 2) at the
    origin: out[r, c] = sum_{a, b} k[a, b] x[(r - a + h // 2) % H, (c - b + w // 2) % W]."""
    H, W = x.shape
    h, w = k.shape
    out = np.zeros((H, W))
    for r in range(H):
        for c in range(W):
            for a in range(h):
                for b in range(w):
                    out[r, c] += k[a, b] * x[(r - a + h // 2) % H, (c - b + w // 2) % W]
    return out


def dense_A(k: torch.Tensor, sf: int, H: int, W: int) -> np.ndarray:
    """[H W / sf^2, H W]: conv_loops then x[::sf, ::sf], applied to the basis vectors."""
    kn = k.double().numpy()
    cols = []
    for i in range(H * W):
        e = np.zeros(H * W)
        e[i] = 1.0
        cols.append(conv_loops(e.reshape(H, W), kn)[::sf, ::sf].ravel())
    return np.stack(cols, axis=1)


def per_image_kernels(k: torch.Tensor, B: int) -> list[torch.Tensor]:
    ks = k.reshape(-1, *k.shape[-2:])
    return [ks[b % len(ks)] for b in range(B)]


def dense_prox(k, sf, x, y, alpha) -> torch.Tensor:
    """argmin_z ||A z - y||^2 + alpha_b ||z - x||^2 per image: solve (A^T A + alpha I) z =
    A^T y + alpha x."""
    B, C, H, W = x.shape
    out = []
    for b, kb in enumerate(per_image_kernels(k, B)):
        A = dense_A(kb, sf, H, W)
        lhs = A.T @ A + alpha[b] * np.eye(H * W)
        rhs = (
            A.T @ y[b].double().reshape(C, -1).numpy().T
            + alpha[b] * x[b].double().reshape(C, -1).numpy().T
        )
        out.append(np.linalg.solve(lhs, rhs).T.reshape(C, H, W))
    return torch.from_numpy(np.stack(out))


def dense_grad(k, sf, x, y) -> torch.Tensor:
    """A^T A x - A^T y per image."""
    B, C, H, W = x.shape
    out = []
    for b, kb in enumerate(per_image_kernels(k, B)):
        A = dense_A(kb, sf, H, W)
        xb = x[b].double().reshape(C, -1).numpy().T
        yb = y[b].double().reshape(C, -1).numpy().T
        out.append((A.T @ (A @ xb - yb)).T.reshape(C, H, W))
    return torch.from_numpy(np.stack(out))


def assert_close(got, want, tol, what=""):
    wide = torch.complex128 if got.is_complex() or want.is_complex() else F64
    err = (got.to(wide) - want.to(wide)).abs().max().item()
    scale = want.to(wide).abs().max().item()
    assert err <= tol * max(scale, 1.0), f"{what}: max abs error {err:.3g} (scale {scale:.3g})"


# -- p2o, upsample, downsample, pre_calculate -------------------------------------------------


def pad_roll_fft(psf: np.ndarray, H: int, W: int) -> np.ndarray:
    h, w = psf.shape
    padded = np.zeros((H, W))
    padded[:h, :w] = psf
    padded = np.roll(padded, (-(h // 2), -(w // 2)), axis=(0, 1))
    return np.fft.fft2(padded)


@pytest.mark.parametrize("hw, HW", [((3, 3), (8, 8)), ((4, 2), (7, 5)), ((1, 1), (3, 4))])
def test_p2o_is_the_padded_rolled_fft(hw, HW):
    psf = kernel(*hw, seed=3)
    got = F.p2o(psf[None, None], HW, flush_imag=False)
    assert got.shape == (1, 1, *HW) and got.dtype == torch.complex128
    want = pad_roll_fft(psf.numpy(), *HW)
    assert np.abs(got[0, 0].numpy() - want).max() < 1e-14
    # the flush: imaginary parts under n_ops * eps (n_ops over the 4 dims of psf) become 0
    n_ops = sum(d * math.log2(d) for d in (1, 1, *hw))
    flushed = want.copy()
    flushed.imag[np.abs(flushed.imag) < n_ops * 2.22e-16] = 0
    got = F.p2o(psf[None, None], HW)
    assert (
        np.array_equal(got[0, 0].numpy(), flushed)
        or np.abs(got[0, 0].numpy() - flushed).max() < 1e-14
    )
    assert np.array_equal(got[0, 0].numpy().imag == 0, flushed.imag == 0)


def test_p2o_flushes_exactly_under_the_threshold():
    # a 3x3 psf whose odd part makes imaginary parts 2 eps |sin(2 pi v / 8)|: with eps = 0.6
    # thr some fall under thr = n_ops * 2.22e-16 (0.85 thr), others stay (1.2 thr)
    thr = 2 * 3 * math.log2(3) * 2.22e-16  # psf 1 x 1 x 3 x 3
    eps = 0.6 * thr
    psf = torch.zeros(1, 1, 3, 3, dtype=F64)
    psf[0, 0, 1, 1], psf[0, 0, 1, 2], psf[0, 0, 1, 0] = 1.0, eps, -eps
    otf = F.p2o(psf, (4, 8))[0, 0].numpy()
    want = pad_roll_fft(psf[0, 0].numpy(), 4, 8)
    kept = np.abs(want.imag) >= thr
    assert kept.any() and (~kept & (want.imag != 0)).any()
    assert np.array_equal(otf.imag != 0, kept)
    assert np.abs(otf - np.where(kept, want, want.real)).max() < 1e-20


def test_p2o_of_a_symmetric_kernel_is_real_and_convolves():
    g = np.exp(-((np.arange(5) - 2) ** 2) / (2 * 0.7**2))
    psf = torch.from_numpy(np.outer(g, g) / np.outer(g, g).sum())
    assert bool((F.p2o(psf, (9, 10), flush_imag=False).imag != 0).any())  # round-off
    otf = F.p2o(psf, (9, 10))
    assert bool((otf.imag == 0).all())  # flushed
    x = rand(9, 10, seed=5)
    got = torch.fft.ifft2(otf * torch.fft.fft2(x)).real
    assert np.abs(got.numpy() - conv_loops(x.numpy(), psf.numpy())).max() < 1e-14


def test_upsample_downsample_and_their_adjointness():
    x = rand(2, 3, 4, 5, seed=1)
    for sf in (1, 2, 3):
        up = F.upsample(x, sf)
        assert up.shape == (2, 3, 4 * sf, 5 * sf)
        for i in range(4 * sf):
            for j in range(5 * sf):
                want = x[..., i // sf, j // sf] if i % sf == 0 and j % sf == 0 else 0.0
                assert torch.equal(up[..., i, j], torch.as_tensor(want, dtype=F64).expand(2, 3))
        z = rand(2, 3, 4 * sf, 5 * sf, seed=2)
        down = F.downsample(z, sf)
        assert torch.equal(
            down, z[:, :, [sf * i for i in range(4)]][..., [sf * j for j in range(5)]]
        )
        assert abs((down * x).sum().item() - (z * up).sum().item()) < 1e-12
    assert F.upsample(x).shape == (2, 3, 12, 15)  # their default sf = 3


@pytest.mark.parametrize("form", ["hw", "Bhw", "B1hw", "11hw"])
@pytest.mark.parametrize("sf", [1, 2, 3])
def test_pre_calculate_against_the_dense_operator(form, sf):
    B, C, h, w = 2, 2, 3, 4
    y = rand(B, C, h, w, seed=4)
    ks = torch.stack([kernel(3, 2, seed=5), kernel(3, 2, seed=6)])
    k = {"hw": ks[0], "Bhw": ks, "B1hw": ks[:, None], "11hw": ks[:1, None]}[form]
    FB, FBC, F2B, FBFy = F.pre_calculate(y, k, sf)
    H, W = h * sf, w * sf
    Bk = 2 if form in ("Bhw", "B1hw") else 1
    assert FB.shape == FBC.shape == F2B.shape == (Bk, 1, H, W)
    assert FBFy.shape == (B, C, H, W) and not F2B.is_complex()
    for b in range(Bk):
        want = pad_roll_fft(per_image_kernels(k, Bk)[b].numpy(), H, W)
        assert np.abs(FB[b, 0].numpy() - want).max() < 1e-14
    assert torch.equal(FBC, FB.conj())
    assert F.pre_calculate_prox is F.pre_calculate  # GS-PnP's and Prox-PnP's name
    assert_close(F2B, FB.abs() ** 2, 1e-14, "F2B")
    for b, kb in enumerate(per_image_kernels(k, B)):
        A = dense_A(kb, sf, H, W)
        aty = (A.T @ y[b].reshape(C, -1).numpy().T).T.reshape(C, H, W)
        assert_close(FBFy[b], torch.fft.fft2(torch.from_numpy(aty)), 1e-12, "FBFy")


# -- the data step against the dense oracle ---------------------------------------------------

SIZES = {1: [(8, 8), (7, 5)], 2: [(8, 8), (6, 10)], 3: [(9, 6), (3, 9)]}
CASES = [(sf, hw) for sf, sizes in SIZES.items() for hw in sizes]


def problem(sf, H, W, B=2, C=3, dtype=F64, per_image=True, seed=0):
    y = rand(B, C, H // sf, W // sf, seed=seed + 10, dtype=dtype)
    k = torch.stack([kernel(3, 3, seed=seed + 11), kernel(3, 3, seed=seed + 12)][:B])
    k = (k if per_image else k[:1]).to(dtype)
    x = rand(B, C, H, W, seed=seed + 13, dtype=dtype)
    return y, k, x


@pytest.mark.parametrize("sf, hw", CASES, ids=[f"sf{s}-{h}x{w}" for s, (h, w) in CASES])
def test_data_solution_is_the_dense_prox(sf, hw):
    y, k, x = problem(sf, *hw)
    FB, FBC, F2B, FBFy = F.pre_calculate(y, k, sf)
    alpha = torch.tensor([0.05, 3.0], dtype=F64)
    want = dense_prox(k, sf, x, y, alpha.tolist())
    got = F.data_solution(x, FB, FBC, F2B, FBFy, alpha.view(2, 1, 1, 1), sf)
    assert_close(got, want, 1e-11, "data_solution")
    # GS-PnP's prox_solution_L2 with stepsize = 1 / alpha, Prox-PnP's prox_solution (the same)
    got = F.prox_solution_L2(x, FB, FBC, F2B, FBFy, 1 / alpha, sf)
    assert_close(got, want, 1e-11, "prox_solution_L2")
    assert F.prox_solution is F.data_solution
    # DPIR's complex F2B (r2c(cabs2(FB))) is read as its real part
    got = F.data_solution(x, FB, FBC, F2B.to(torch.complex128), FBFy, alpha, sf)
    assert_close(got, want, 1e-11, "complex F2B")


@pytest.mark.parametrize("sf", [1, 2])
def test_data_solution_float32_against_the_float64_oracle(sf):
    y, k, x = problem(sf, 8, 8)
    alpha = [0.05, 3.0]
    want = dense_prox(k, sf, x, y, alpha)
    spectra = F.pre_calculate(y.float(), k.float(), sf)
    got = F.data_solution(x.float(), *spectra, torch.tensor(alpha), sf)
    assert got.dtype == torch.float32
    # conditioning 1 + ||A||^2 / alpha ~ 21: a few float32 ulps times that
    assert_close(got, want, 2e-5, "float32")


@pytest.mark.parametrize("sf, hw", CASES, ids=[f"sf{s}-{h}x{w}" for s, (h, w) in CASES])
def test_data_grad_and_grad_step_are_the_dense_gradient(sf, hw):
    y, k, x = problem(sf, *hw, per_image=False)
    spectra = F.pre_calculate(y, k, sf)
    want = dense_grad(k, sf, x, y)
    assert_close(F.data_grad(x, *spectra, sf), want, 1e-12, "data_grad")
    assert F.grad_solution is F.data_grad
    tau = torch.tensor([0.7, 1.9], dtype=F64)
    got = F.grad_step(x, *spectra, tau, sf)
    assert_close(got, x - tau.view(-1, 1, 1, 1) * want, 1e-12, "grad_step")


@pytest.mark.parametrize("sf", [1, 2, 3])
def test_batched_per_image_alpha_is_the_per_image_loop(sf):
    B = 3
    y = rand(B, 2, 4, 3, seed=7)
    k = torch.stack([kernel(3, 3, seed=s) for s in (8, 9, 10)])
    x = rand(B, 2, 4 * sf, 3 * sf, seed=11)
    alpha = torch.tensor([0.01, 0.5, 20.0], dtype=F64)
    got = F.data_solution(x, *F.pre_calculate(y, k, sf), alpha.view(B, 1, 1, 1), sf)
    tau = torch.tensor([0.3, 1.0, 2.0], dtype=F64)
    step = F.grad_step(x, *F.pre_calculate(y, k, sf), tau, sf)
    for b in range(B):
        spectra = F.pre_calculate(y[b : b + 1], k[b], sf)
        one = F.data_solution(x[b : b + 1], *spectra, float(alpha[b]), sf)
        assert_close(got[b : b + 1], one, 1e-13, f"image {b}")
        one = F.grad_step(x[b : b + 1], *spectra, float(tau[b]), sf)
        assert_close(step[b : b + 1], one, 1e-13, f"grad_step image {b}")


@pytest.mark.parametrize("sf", [1, 2])
def test_alpha_forms_agree(sf):
    y, k, x = problem(sf, 8, 8, per_image=False)
    spectra = F.pre_calculate(y, k, sf)
    want = dense_prox(k, sf, x, y, [0.4, 0.4])
    for alpha in (0.4, torch.tensor(0.4), torch.tensor([0.4]), torch.full((2,), 0.4),
                  torch.full((2, 1, 1, 1), 0.4), torch.full((1, 1, 1, 1), 0.4, dtype=torch.float32)):  # fmt: skip
        got = F.data_solution(x, *spectra, alpha, sf)
        assert_close(got, want, 1e-6 if getattr(alpha, "dtype", F64) == torch.float32 else 1e-12)


def test_cached_half_spectra_follow_an_in_place_change_of_fbfy():
    y, k, x = problem(1, 8, 8, per_image=False)
    FB, FBC, F2B, FBFy = F.pre_calculate(y, k, 1)
    F.data_solution(x, FB, FBC, F2B, FBFy, 0.5, 1)  # fills the cache
    y2 = rand(*y.shape, seed=99)
    FBFy.copy_(F.pre_calculate(y2, k, 1)[3])  # the same tensor, new values
    got = F.data_solution(x, FB, FBC, F2B, FBFy, 0.5, 1)
    assert_close(got, dense_prox(k, 1, x, y2, [0.5, 0.5]), 1e-12, "after FBFy.copy_")
    F2B.mul_(4)  # |2 K^|^2: the operator 2 A
    got = F.data_grad(x, FB * 2, FBC * 2, F2B, FBFy * 2, 1)
    assert_close(got, dense_grad(2 * k, 1, x, y2), 1e-12, "after F2B.mul_")


# -- DPIR-style loops vs pnpfast.solve(method="hqs") ----------------------------------------


def box3(x: torch.Tensor) -> torch.Tensor:
    return sum(torch.roll(x, (a, b), (-2, -1)) for a in (-1, 0, 1) for b in (-1, 0, 1)) / 9


def denoiser(x: torch.Tensor, sigma) -> torch.Tensor:
    """A smoothing whose strength grows with sigma (a float or [B]): deterministic and cheap."""
    s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
    w = s / (s + 0.05)
    return x + w * (box3(x) - x)


def dpir_schedule(noise: float, iters: int, sigma_end: float) -> tuple[np.ndarray, np.ndarray]:
    """DPIR's get_rho_sigma in float64 (theirs rounds the sigmas to float32): sigma_k
    log-spaced from 49/255 to sigma_end, rho_k = 0.23 max(noise, 0.255/255)^2 / sigma_k^2."""
    sigmas = np.logspace(np.log10(49.0), np.log10(sigma_end * 255), iters) / 255
    rhos = 0.23 * max(0.255 / 255, noise) ** 2 / sigmas**2
    return rhos, sigmas


def dpir_loop(y1, k1, x0, noise, sf, iters, sigma_end):
    """One image, as main_dpir_deblur.py / main_dpir_sisr.py (x8 self-ensemble off)."""
    rhos, sigmas = dpir_schedule(noise, iters, sigma_end)
    FB, FBC, F2B, FBFy = F.pre_calculate(y1, k1[None, None], sf)
    x, iterates = x0, []
    for i in range(iters):
        tau = torch.tensor(rhos[i]).repeat(1, 1, 1, 1)
        x = F.data_solution(x, FB, FBC, F2B, FBFy, tau, sf)
        x = denoiser(x, float(sigmas[i]))
        iterates.append(x)
    return iterates


def solve_iterates(*args, **kwargs):
    seen = []
    res = pnpfast.solve(*args, callback=lambda info: seen.append(info.x.clone()), **kwargs)
    return res, seen


def test_dpir_deblur_loop_is_hqs():
    B, C, H, W = 2, 3, 8, 8
    x_true = rand(B, C, H, W, seed=20)
    k = torch.stack([kernel(5, 5, seed=21), kernel(5, 5, seed=22)])
    noise = [2.55 / 255, 7.65 / 255]
    y = Blur(k).forward(x_true) + rand(B, C, H, W, seed=23) * torch.tensor(noise, dtype=F64).view(
        -1, 1, 1, 1
    )
    res, seen = solve_iterates(
        y, Blur(k), denoiser, "hqs", sigma=torch.tensor(noise, dtype=F64), x0=y, max_iter=8
    )
    assert len(seen) == 8
    for b in range(B):
        iterates = dpir_loop(y[b : b + 1], k[b], y[b : b + 1], noise[b], 1, 8, noise[b])
        for i, (mine, theirs) in enumerate(zip(iterates, seen, strict=True)):
            assert_close(theirs[b : b + 1], mine, 1e-11, f"image {b} iterate {i}")
        assert_close(res.x[b : b + 1], iterates[-1], 1e-11, f"image {b} result")


@pytest.mark.parametrize("sf", [2, 3])
def test_dpir_sr_loop_is_hqs(sf):
    B, C, h, w = 2, 1, 4, 3
    x_true = rand(B, C, h * sf, w * sf, seed=30)
    k = torch.stack([kernel(5, 5, seed=31), kernel(5, 5, seed=32)])
    noise = 2.55 / 255
    y = SuperResolution(k, sf).forward(x_true) + noise * rand(B, C, h, w, seed=33)
    x0 = torch.nn.functional.interpolate(y, scale_factor=sf, mode="bicubic")
    # solve's defaults for a SuperResolution are DPIR's SR recipe: 24 iterations, sigma_k down
    # to max(sf, noise * 255) / 255
    res, seen = solve_iterates(y, SuperResolution(k, sf), denoiser, "hqs", sigma=noise, x0=x0)
    assert len(seen) == 24
    for b in range(B):
        iterates = dpir_loop(y[b : b + 1], k[b], x0[b : b + 1], noise, sf, 24, max(sf / 255, noise))
        for i in (0, 11, 23):
            assert_close(seen[i][b : b + 1], iterates[i], 1e-11, f"image {b} iterate {i}")
        assert_close(res.x[b : b + 1], iterates[-1], 1e-11, f"image {b} result")


# -- a GS-PnP-style loop vs pnpfast.solve(method="gs-pnp") -----------------------------------


class QuadraticGS:
    """A gradient-step denoiser with N_sigma(x) = x + w (box3(x) - x), w = sigma / (sigma + 0.1):
    g(x) = 1/2 ||x - N(x)||^2 = w^2 / 2 ||(I - box3) x||^2, grad g = w^2 (I - box3)^2 x (box3
    is symmetric). GS-PnP's calculate_grad returns (grad g, N(x))."""

    @staticmethod
    def weight(x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
        return s / (s + 0.1)

    def calculate_grad(self, x, sigma):
        w = self.weight(x, sigma)
        r = x - box3(x)
        return w**2 * (r - box3(r)), x - w * r

    def potential_and_gradient(self, x, sigma):
        grad, n = self.calculate_grad(x, sigma)
        return 0.5 * (x - n).flatten(1).pow(2).sum(1), grad

    def __call__(self, x, sigma):
        return x - self.calculate_grad(x, sigma)[0]


def gs_pnp_loop(y1, k1, lamb, tau, sigma_d, iters, gamma=0.1, eta=0.9):
    """One image, as GS_PnP_restoration.restore (deblurring, float64, backtracking on)."""
    net = QuadraticGS()
    FB, FBC, F2B, FBFy = F.pre_calculate(y1, k1, 1)

    def calculate_F(x, s):
        Ax = torch.fft.ifft2(FB * torch.fft.fft2(x)).real
        return (0.5 * torch.norm(y1 - Ax) ** 2 + lamb * s).item()

    x = F.prox_solution_L2(y1, FB, FBC, F2B, FBFy, tau, 1)
    backtracks = 0
    for _ in range(iters):
        x_old = x
        Ds, f = net.calculate_grad(x_old, sigma_d)
        Dx = x_old - Ds
        F_old = calculate_F(x_old, 0.5 * torch.norm(x_old - f) ** 2)
        while True:
            z = (1 - lamb * tau) * x_old + lamb * tau * Dx
            x = F.prox_solution_L2(z, FB, FBC, F2B, FBFy, tau, 1)
            f = net.calculate_grad(x, sigma_d)[1]
            F_new = calculate_F(x, 0.5 * torch.norm(x - f) ** 2)
            diff_x = (torch.norm(x - x_old) ** 2).item()
            diff_F = F_old - F_new
            if diff_F < (gamma / tau) * diff_x and abs(diff_F) / F_old > 0:
                tau, x, backtracks = eta * tau, x_old, backtracks + 1
            else:
                break
    Ds, _ = net.calculate_grad(x, sigma_d)
    return x - lamb * tau * Ds, tau, backtracks


def test_gs_pnp_loop_with_backtracking_is_solve_gs_pnp():
    B, C, H, W = 2, 2, 8, 8
    k = torch.stack([kernel(5, 5, seed=40), kernel(5, 5, seed=41)])
    y = Blur(k).forward(rand(B, C, H, W, seed=42)) + 0.02 * rand(B, C, H, W, seed=43)
    lamb, tau0, sigma_d = 1.0, [3.0, 2.5], [0.5, 2.0]
    res = pnpfast.solve(
        y, Blur(k), QuadraticGS(), "gs-pnp", sigma=0.02, x0=y, max_iter=6, tol=0.0,
        lam=lamb, tau=torch.tensor(tau0, dtype=F64), sigma_d=torch.tensor(sigma_d, dtype=F64),
    )  # fmt: skip
    total = 0
    for b in range(B):
        want, _, backtracks = gs_pnp_loop(y[b : b + 1], k[b], lamb, tau0[b], sigma_d[b], 6)
        total += backtracks
        assert_close(res.x[b : b + 1], want, 1e-10, f"image {b}")
    assert total >= 2, "the steps must be too long for some images, so that backtracking runs"


# -- Kadkhodaie & Simoncelli's sampler --------------------------------------------------------


def residual_model(y: torch.Tensor) -> torch.Tensor:
    """A blind 'network' predicting the noise residual y - D(y), D a fixed smoothing."""
    return 0.6 * (y - box3(y))


def univ_inv_sol_loop(model, x_c, M_T, M, noise, sig_0, sig_L, h0, beta):
    """One image (batch of 1), as algorithm_inv_prob.univ_inv_sol (the start's noise given)."""
    e = torch.ones_like(M(x_c))
    N = e.numel()
    y = (e - M(M_T(e))) * 0.5 + M(x_c) + sig_0 * noise
    sigma = torch.norm(model(y)) / math.sqrt(N)
    t = 1
    while sigma > sig_L:
        h = h0 * t / (1 + h0 * (t - 1))
        f_y = model(y)
        d = f_y - M(M_T(f_y)) + (M(M_T(y)) - M(x_c))
        sigma = torch.norm(d) / math.sqrt(N)
        gamma = sigma * math.sqrt((1 - beta * h) ** 2 - (1 - h) ** 2)
        y = y - h * d + gamma * torch.zeros_like(y)  # beta = 1: gamma = 0
        t += 1
    return y - model(y), t - 1


@pytest.mark.parametrize("task", ["inpainting", "block-average"])
def test_sampler_with_beta_1_is_their_loop_and_solve(task):
    B, C, H, W = 2, 1, 8, 8
    x = rand(B, C, H, W, seed=50)
    if task == "inpainting":
        mask = (rand(B, 1, H, W, seed=51) > 0.4).to(F64)
        op = Inpainting(mask)

        def M_T(v):
            return mask[: v.shape[0]] * v

        M = M_T
    else:
        op = BlockAverage(2)

        def M_T(v):  # orthonormal block sums: s * the block mean
            return 2 * torch.nn.functional.avg_pool2d(v, 2)

        def M(c):
            return torch.repeat_interleave(torch.repeat_interleave(c, 2, -2), 2, -1) / 2

    x_c = M_T(x)
    sig_0, sig_L, h0, seed = 1.0, torch.tensor([0.02, 0.03], dtype=F64), 0.1, 7
    h0_b = torch.full((B, 1, 1, 1), h0, dtype=F64)
    got = F.constrained_sample(residual_model, x_c, M_T, M, sig_0, sig_L, h0_b, beta=1.0, seed=seed)
    noise = torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(seed), dtype=F64)
    for b in range(B):
        M_T1 = M_T if task != "inpainting" else (lambda v, b=b: mask[b : b + 1] * v)
        want, steps = univ_inv_sol_loop(
            residual_model, x_c[b : b + 1], M_T1, M_T1 if task == "inpainting" else M,
            noise[b : b + 1], sig_0, float(sig_L[b]), h0, 1.0,
        )  # fmt: skip
        assert steps > 5
        assert_close(got[b : b + 1], want, 1e-10, f"image {b}")
    # pnpfast.solve's sampler plus the final denoising step of theirs
    measured = op.measure(x)
    res = pnpfast.solve(
        measured, op, lambda v, s: v - residual_model(v), "implicit-prior",
        sigma_0=sig_0, sigma_L=sig_L, h0=h0, beta=1.0, seed=seed,
    )  # fmt: skip
    assert_close(got, res.x - residual_model(res.x), 1e-10, "solve + final denoise")


@pytest.mark.parametrize("sf", [1, 2])
def test_data_solution_and_grad_step_are_differentiable(sf):
    y, k, x = problem(sf, 4, 4, B=2, C=1)
    FB, FBC, F2B, FBFy = F.pre_calculate(y, k, sf)
    x = x.requires_grad_()
    alpha = torch.tensor([0.5, 2.0], dtype=F64, requires_grad=True)
    FBFy = FBFy.requires_grad_()  # a gradient with respect to y flows through FBFy
    assert torch.autograd.gradcheck(
        lambda x, a, f: F.data_solution(x, FB, FBC, F2B, f, a, sf), (x, alpha, FBFy)
    )
    assert torch.autograd.gradcheck(
        lambda x, a, f: F.grad_step(x, FB, FBC, F2B, f, a, sf), (x, alpha, FBFy)
    )


def test_inference_mode_spectra_are_not_cached_but_work():
    y, k, x = problem(1, 8, 8, per_image=False)
    with torch.inference_mode():
        spectra = F.pre_calculate(y, k, 1)
        got = F.data_solution(x, *spectra, 0.5, 1)
    assert_close(got, dense_prox(k, 1, x, y, [0.5, 0.5]), 1e-12, "inference mode")
