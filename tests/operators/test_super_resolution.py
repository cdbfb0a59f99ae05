"""SuperResolution (blur + decimation) and its closed-form prox, against independent oracles:
a dense matrix built from the definition, dense float64 solves of the normal equations, Blur
for factor 1, and MATLAB imresize's bicubic weights written out here."""

import math

import numpy as np
import pytest
import torch

import pnpfast
from pnpfast.operators import Blur, SuperResolution
from pnpfast.ops import sr_prox_reference


def random_kernel(*shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.rand(*shape, dtype=dtype, generator=g)
    return k / k.sum(dim=(-2, -1), keepdim=True)


def dense_sr(k: torch.Tensor, s: int, H: int, W: int) -> torch.Tensor:
    """The matrix [H W / s^2, H W] of y[i, j] = sum_{m, n} k[m, n] x[(s i + h//2 - m) mod H,
    (s j + w//2 - n) mod W], from the definition (loops: tiny sizes only)."""
    h, w = k.shape
    A = torch.zeros(H // s, W // s, H, W, dtype=torch.float64)
    for i in range(H // s):
        for j in range(W // s):
            for m in range(h):
                for n in range(w):
                    A[i, j, (s * i + h // 2 - m) % H, (s * j + w // 2 - n) % W] += k[m, n]
    return A.reshape((H // s) * (W // s), H * W)


def dense_prox(k, s, v, y, gamma):
    """argmin 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - v||^2 per channel by a dense solve."""
    C, H, W = v.shape
    A = dense_sr(k, s, H, W)
    M = A.T @ A + torch.eye(H * W, dtype=torch.float64) / gamma
    rhs = A.T @ y.reshape(C, -1).T + v.reshape(C, -1).T / gamma  # [HW, C]
    return torch.linalg.solve(M, rhs).T.reshape(C, H, W)


@pytest.mark.parametrize(
    "H,W,s,ks",
    [(8, 8, 2, (3, 3)), (12, 12, 2, (5, 4)), (12, 12, 3, (5, 5)), (8, 8, 2, (1, 1)), (12, 6, 3, 4)],
    ids=["8x8-s2", "12x12-s2-even", "12x12-s3", "8x8-s2-dirac", "12x6-s3-4x4"],
)
def test_forward_adjoint_and_prox_match_dense(H, W, s, ks):
    ks = (ks, ks) if isinstance(ks, int) else ks
    k = random_kernel(*ks, seed=H + s)
    A = SuperResolution(k, s)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, H, W, dtype=torch.float64, generator=g)
    y = torch.randn(2, 2, H // s, W // s, dtype=torch.float64, generator=g)
    D = dense_sr(k, s, H, W)
    ref_fwd = (x.reshape(4, -1) @ D.T).reshape(2, 2, H // s, W // s)
    torch.testing.assert_close(A(x), ref_fwd, rtol=0, atol=1e-12)
    ref_adj = (y.reshape(4, -1) @ D).reshape(2, 2, H, W)
    torch.testing.assert_close(A.adjoint(y), ref_adj, rtol=0, atol=1e-12)
    gammas = [0.3, 7.0]
    want = torch.stack([dense_prox(k, s, x[b], y[b], gammas[b]) for b in range(2)])
    gt = torch.tensor(gammas, dtype=torch.float64)
    torch.testing.assert_close(A.prox_l2(x, y, gt), want, rtol=0, atol=1e-10)
    data = pnpfast.L2(A, y)
    torch.testing.assert_close(data.prox(x, gt), want, rtol=0, atol=1e-10)
    # gradient step against the dense gradient, lipschitz against the dense spectral norm
    tau = torch.tensor([0.5, 1.5], dtype=torch.float64)
    grad = ((x.reshape(4, -1) @ D.T - y.reshape(4, -1)) @ D).reshape(2, 2, H, W)
    torch.testing.assert_close(data.grad_step(x, tau), x - tau.view(-1, 1, 1, 1) * grad)
    L = torch.linalg.matrix_norm(D, ord=2) ** 2
    torch.testing.assert_close(data.lipschitz(), L.expand(2), rtol=1e-10, atol=0)


@pytest.mark.parametrize("per_image", [False, True], ids=["shared", "per_image"])
@pytest.mark.parametrize("s", [2, 3])
def test_adjoint_dot_product(per_image, s):
    B = 3
    k = random_kernel(B, 7, 4) if per_image else random_kernel(6, 5)
    A = SuperResolution(k, s)
    x = torch.randn(B, 2, 6 * s, 5 * s, dtype=torch.float64)
    y = torch.randn(B, 2, 6, 5, dtype=torch.float64)
    lhs = (A(x) * y).sum()
    rhs = (x * A.adjoint(y)).sum()
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)
    torch.testing.assert_close(A.gram(x), A.adjoint(A(x)), rtol=0, atol=1e-12)


def test_factor_one_is_blur():
    k = random_kernel(2, 5, 4)
    x = torch.rand(2, 3, 11, 9, dtype=torch.float64)
    y = torch.rand(2, 3, 11, 9, dtype=torch.float64)
    A, B = SuperResolution(k, 1), Blur(k)
    torch.testing.assert_close(A(x), B(x), rtol=0, atol=1e-13)
    torch.testing.assert_close(A.adjoint(y), B.adjoint(y), rtol=0, atol=1e-13)
    gamma = torch.tensor([0.2, 5.0], dtype=torch.float64)
    torch.testing.assert_close(
        pnpfast.L2(A, y).prox(x, gamma), pnpfast.L2(B, y).prox(x, gamma), rtol=0, atol=1e-12
    )


def test_batch_equals_each_image_alone():
    """Per-image kernels and gamma: the batched prox equals each image's own problem."""
    s, B = 2, 3
    k = random_kernel(B, 5, 5, dtype=torch.float32)
    x = torch.rand(B, 3, 16, 10)
    y = torch.rand(B, 3, 8, 5)
    gamma = torch.tensor([0.1, 1.0, 30.0])
    out = pnpfast.L2(SuperResolution(k, s), y).prox(x, gamma)
    for b in range(B):
        alone = pnpfast.L2(SuperResolution(k[b], s), y[b : b + 1]).prox(x[b : b + 1], gamma[b])
        torch.testing.assert_close(out[b : b + 1], alone, rtol=0, atol=1e-5)


def test_prox_odd_sizes_and_cg_agree():
    """Odd sizes divisible by the factor (15x21, s = 3): the closed form equals CG."""
    k = random_kernel(4, 7)
    A = SuperResolution(k, 3)
    v = torch.rand(2, 1, 15, 21, dtype=torch.float64)
    y = torch.rand(2, 1, 5, 7, dtype=torch.float64)
    gamma = torch.tensor([0.5, 4.0], dtype=torch.float64)
    want = A.prox_l2_cg(v, y, gamma, max_iter=500, tol=1e-13)
    torch.testing.assert_close(A.prox_l2(v, y, gamma), want, rtol=0, atol=1e-9)


def test_non_contiguous_inputs():
    k = random_kernel(5, 5).t()  # a transposed (non-contiguous) kernel
    A = SuperResolution(k, 2)
    x = torch.rand(2, 8, 12, 3, dtype=torch.float64).permute(0, 3, 1, 2)  # [2, 3, 8, 12]
    y = torch.rand(2, 6, 4, 3, dtype=torch.float64).permute(0, 3, 2, 1)  # [2, 3, 4, 6]
    assert not x.is_contiguous() and not y.is_contiguous()
    Ac = SuperResolution(k.contiguous(), 2)
    torch.testing.assert_close(A(x), Ac(x.contiguous()), rtol=0, atol=0)
    torch.testing.assert_close(A.adjoint(y), Ac.adjoint(y.contiguous()), rtol=0, atol=0)
    gamma = torch.tensor([0.5, 2.0], dtype=torch.float64)
    want = pnpfast.L2(Ac, y.contiguous()).prox(x.contiguous(), gamma)
    torch.testing.assert_close(pnpfast.L2(A, y).prox(x, gamma), want, rtol=0, atol=1e-12)


def _keys_cubic(t: float) -> float:
    a = abs(t)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a < 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _imresize_weights(n_in: int, s: int) -> np.ndarray:
    """MATLAB imresize(.., 1/s, "bicubic") along one axis as a matrix [n_in / s, n_in], with
    circular borders: output i (0-based) is centred at input s i + (s - 1) / 2, weights
    cubic(d / s) normalised (antialiasing)."""
    M = np.zeros((n_in // s, n_in))
    for i in range(n_in // s):
        u = s * i + (s - 1) / 2
        ps = range(math.floor(u - 2 * s), math.ceil(u + 2 * s) + 1)
        w = np.array([_keys_cubic((p - u) / s) for p in ps])
        w /= w.sum()
        for p, wp in zip(ps, w, strict=True):
            M[i, p % n_in] += wp
    return M


@pytest.mark.parametrize("s", [2, 3, 4])
def test_bicubic_is_matlab_imresize(s):
    H, W = 12 * s, 10 * s
    x = torch.rand(1, 2, H, W, dtype=torch.float64)
    Mh, Mw = _imresize_weights(H, s), _imresize_weights(W, s)
    want = np.einsum("ip,cpq,jq->cij", Mh, x[0].numpy(), Mw)
    got = SuperResolution.bicubic(s)(x)[0].numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_gaussian_kernel():
    A = SuperResolution.gaussian(2, std=1.5)
    k = A.kernel[0]
    assert k.shape == (11, 11)
    d = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(d**2) / (2 * 1.5**2))
    torch.testing.assert_close(k, torch.outer(g, g) / torch.outer(g, g).sum())
    assert SuperResolution.gaussian(3).kernel.shape[-1] == 2 * 9 + 1  # std defaults to s


def test_sr_prox_reference_against_dense_on_spectra():
    """The spectral step alone: fft2 in, the dense solution's fft2 out."""
    k = random_kernel(3, 3)
    s, H, W = 2, 8, 8
    A = SuperResolution(k, s)
    v = torch.randn(1, 1, H, W, dtype=torch.float64)
    y = torch.randn(1, 1, H // s, W // s, dtype=torch.float64)
    k_hat, k2_mean, _ = A.decimated_fourier_multiplier((H, W), v.device, v.dtype)
    gamma = torch.tensor([2.0], dtype=torch.float64)
    out = sr_prox_reference(
        torch.fft.fft2(v), torch.fft.fft2(A.adjoint(y)), k_hat, k2_mean, gamma, s
    )
    want = dense_prox(k, s, v[0], y[0], 2.0)
    torch.testing.assert_close(torch.fft.ifft2(out).real[0], want, rtol=0, atol=1e-10)


def test_hqs_super_resolution_beats_bicubic_upsampling():
    """hqs with a small classical denoiser improves on the bicubic upsampling it starts from."""
    x = pnpfast.data.camera(64).to(torch.float32)
    x = x.reshape(1, 1, 64, 64) if x.dim() == 2 else x[None] if x.dim() == 3 else x
    A = SuperResolution.bicubic(2)
    y = A(x)
    up = torch.nn.functional.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False)
    denoiser = pnpfast.denoisers.TotalVariation(iterations=30)
    res = pnpfast.solve(y, A, denoiser, "hqs", sigma=1 / 255, x0=up, max_iter=8)
    psnr_up = pnpfast.metrics.psnr(up.clamp(0, 1), x)
    psnr_hqs = pnpfast.metrics.psnr(res.x.clamp(0, 1), x)
    assert float(psnr_hqs) > float(psnr_up) + 1.0, (float(psnr_hqs), float(psnr_up))


def _deepinv_style_bicubic(s: int) -> torch.Tensor:
    """deepinv's bicubic_filter as its docstring defines it: 4 s taps at the offsets
    (-2 s + 0.5 + t) / s, t = 0 .. 4 s - 1, Keys' cubic (a = -0.5), outer product, sum 1."""
    w = torch.tensor([_keys_cubic((-2 * s + 0.5 + t) / s) for t in range(4 * s)])
    k = torch.outer(w, w).double()
    return k / k.sum()


@pytest.mark.parametrize("s", [2, 4])
def test_deepinv_bicubic_grid_offset(s):
    """The module docstring's claim: deepinv's bicubic filter (an even kernel, centred at
    h // 2 by its circular conv2d and filter_fft) with top-left decimation samples MATLAB's
    grid for s = 2 and is shifted by (s - 2) / 2 high-resolution pixels for larger even s."""
    x = torch.rand(1, 1, 8 * s, 6 * s, dtype=torch.float64)
    ours = SuperResolution.bicubic(s)(x)
    shift = (s - 2) // 2
    theirs = SuperResolution(_deepinv_style_bicubic(s), s)(torch.roll(x, (-shift, -shift), (2, 3)))
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-12)
    if shift:
        assert (SuperResolution(_deepinv_style_bicubic(s), s)(x) - ours).abs().max() > 1e-3


def test_prox_l2_normal_takes_the_closed_form():
    """prox_l2_normal (A^T y given) reaches the same closed form as prox_l2."""
    k = random_kernel(2, 5, 3)
    A = SuperResolution(k, 2)
    v = torch.rand(2, 2, 10, 6, dtype=torch.float64)
    y = torch.rand(2, 2, 5, 3, dtype=torch.float64)
    gamma = torch.tensor([0.7, 3.0], dtype=torch.float64)
    want = A.prox_l2_cg(v, y, gamma, max_iter=500, tol=1e-13)
    torch.testing.assert_close(A.prox_l2_normal(v, A.adjoint(y), gamma), want, rtol=0, atol=1e-9)


def test_prox_is_differentiable_in_v_gamma_and_the_kernel():
    """The reference SR prox works in place only where autograd records nothing: gradients
    with respect to v, gamma and the kernel match finite differences (float64 gradcheck)."""
    g = torch.Generator().manual_seed(12)
    k = torch.rand(2, 3, 3, generator=g, dtype=torch.float64) + 0.1
    y = torch.rand(2, 1, 3, 4, generator=g, dtype=torch.float64)
    v = torch.rand(2, 1, 6, 8, generator=g, dtype=torch.float64)
    gamma = torch.tensor([0.5, 2.0], dtype=torch.float64)

    def prox(v, gamma, k):
        return pnpfast.L2(SuperResolution(k, 2), y).prox(v, gamma, backend="reference")

    inputs = tuple(t.clone().requires_grad_(True) for t in (v, gamma, k))
    assert torch.autograd.gradcheck(prox, inputs)
