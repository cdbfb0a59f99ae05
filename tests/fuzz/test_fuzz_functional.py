"""Fuzz table (issue 17 conventions) of pnpfast.functional (issue 20): p2o, upsample, downsample,
pre_calculate, data_solution / prox_solution, prox_solution_L2, data_grad / grad_solution,
grad_step and constrained_sample.

Bad rows: the exact exception type and a message naming the argument and what is wrong. Good
rows compare with NumPy float64 oracles written from the definitions: the pad-roll-FFT of the
kernel, slicing loops, the dense circulant of fuzz_cases.blur_matrix keeping the rows of the
top-left pixel of each sf x sf block with dense solves, and Kadkhodaie & Simoncelli's loop
written out for one image. 8x8 images or smaller.
"""

import math

import numpy as np
import torch
from fuzz_cases import Bad, Good, blur_matrix, check, params, transposed

from pnpfast import functional as F

NAN, INF = float("nan"), float("inf")
F64 = torch.float64
P2O = "pnpfast.functional.p2o"
UP = "pnpfast.functional.upsample"
DOWN = "pnpfast.functional.downsample"
PRE = "pnpfast.functional.pre_calculate"
PREP = "pnpfast.functional.pre_calculate_prox"
DS = "pnpfast.functional.data_solution"
PS = "pnpfast.functional.prox_solution"
PSL2 = "pnpfast.functional.prox_solution_L2"
DG = "pnpfast.functional.data_grad"
GS = "pnpfast.functional.grad_solution"
STEP = "pnpfast.functional.grad_step"
CS = "pnpfast.functional.constrained_sample"


def rand(*shape, seed=0, dtype=F64) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def kern(h=3, w=3, seed=1, dtype=F64) -> torch.Tensor:
    k = rand(h, w, seed=seed, dtype=dtype) + 0.1
    return k / k.sum()


def pad_roll_fft(psf: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """np.fft.fft2 of psf zero-padded at the top-left and rolled by -(h // 2, w // 2)."""
    h, w = psf.shape
    padded = np.zeros((H, W))
    padded[:h, :w] = psf.double().numpy()
    return torch.from_numpy(np.fft.fft2(np.roll(padded, (-(h // 2), -(w // 2)), axis=(0, 1))))


def dense_A(k: torch.Tensor, sf: int, H: int, W: int) -> np.ndarray:
    A = blur_matrix(k.double().numpy(), H, W)
    return A[[r * W + c for r in range(0, H, sf) for c in range(0, W, sf)]]


def problem(sf=2, B=2, C=1, H=8, W=8, dtype=F64, per_image=False):
    """(x, FB, FBC, F2B, FBFy) and what built them: y [B, C, H/sf, W/sf], kernels [Bk, 3, 3]."""
    y = rand(B, C, H // sf, W // sf, seed=3).to(dtype)  # drawn in float64 for every dtype
    k = torch.stack([kern(seed=4), kern(seed=5)][: B if per_image else 1]).to(dtype)
    x = rand(B, C, H, W, seed=6).to(dtype)
    return (x, *F.pre_calculate(y, k, sf)), y, k


def spectra(sf=2, **kw):
    return problem(sf, **kw)[0]


def with_(args: tuple, i: int, value) -> tuple:
    return (*args[:i], value, *args[i + 1 :])


def dense_prox(sf, alpha, **kw) -> torch.Tensor:
    """argmin_z ||A z - y||^2 + alpha_b ||z - x||^2 per image, by dense solves."""
    (x, *_), y, k = problem(sf, **kw)
    B, C, H, W = x.shape
    out = []
    for b in range(B):
        A = dense_A(k[b % len(k)], sf, H, W)
        lhs = A.T @ A + alpha[b] * np.eye(H * W)
        rhs = A.T @ y[b].double().reshape(C, -1).numpy().T
        rhs = rhs + alpha[b] * x[b].double().reshape(C, -1).numpy().T
        out.append(np.linalg.solve(lhs, rhs).T.reshape(C, H, W))
    return torch.from_numpy(np.stack(out))


def dense_grad(sf, **kw) -> torch.Tensor:
    """A^T (A x - y) per image."""
    (x, *_), y, k = problem(sf, **kw)
    B, C, H, W = x.shape
    out = []
    for b in range(B):
        A = dense_A(k[b % len(k)], sf, H, W)
        r = A @ x[b].double().reshape(C, -1).numpy().T - y[b].double().reshape(C, -1).numpy().T
        out.append((A.T @ r).T.reshape(C, H, W))
    return torch.from_numpy(np.stack(out))


def dense_aty(y: torch.Tensor, k: torch.Tensor, sf: int) -> torch.Tensor:
    B, C, h, w = y.shape
    out = []
    for b in range(B):
        A = dense_A(k[b % len(k)], sf, h * sf, w * sf)
        out.append((A.T @ y[b].double().reshape(C, -1).numpy().T).T.reshape(C, h * sf, w * sf))
    return torch.from_numpy(np.stack(out))


def ds(*args, alpha=0.5, sf=2):
    return F.data_solution(*args, alpha, sf)


# -- the sampler --------------------------------------------------------------------------------

MASK = (rand(2, 1, 6, 6, seed=7) > 0.4).to(F64)


def m_t(v: torch.Tensor) -> torch.Tensor:
    return MASK[: v.shape[0]] * v


def residual(y: torch.Tensor) -> torch.Tensor:
    """A blind residual 'network': y - D(y), D a blend with the 4-neighbour mean."""
    mean = sum(torch.roll(y, s, d) for s in (-1, 1) for d in (-2, -1)) / 4
    return 0.5 * (y - mean)


def x_c() -> torch.Tensor:
    return m_t(rand(2, 1, 6, 6, seed=8))


def sample(**kw):
    args = {"sig_L": 0.05, "h0": 0.2, "beta": 1.0, "seed": 3, "max_iter": 200}
    args.update(kw)
    return F.constrained_sample(residual, x_c(), m_t, m_t, **args)


def their_loop(sig_L) -> torch.Tensor:
    """univ_inv_sol for each image (beta = 1: no noise after the start, which is drawn as
    pnpfast draws it: torch.randn of the batch from a generator seeded with the seed)."""
    xc = x_c()
    noise = torch.randn(xc.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    out = []
    for b in range(2):
        mask = MASK[b : b + 1]
        c = xc[b : b + 1]
        N = c.numel()
        y = (1 - mask) * 0.5 + mask * c + noise[b : b + 1]
        sigma = torch.norm(residual(y)) / math.sqrt(N)
        t = 1
        while sigma > sig_L[b]:
            h = 0.2 * t / (1 + 0.2 * (t - 1))
            f = residual(y)
            d = f - mask * f + mask * y - mask * c
            sigma = torch.norm(d) / math.sqrt(N)
            y = y - h * d
            t += 1
        out.append(y - residual(y))
    return torch.cat(out)


CASES = [
    # -- p2o ---------------------------------------------------------------------------------
    Bad(P2O, "type", "psf list", lambda: F.p2o([[1.0]], (4, 4)), TypeError, r"psf must be a torch\.Tensor"),
    Bad(P2O, "rank", "psf 1-d", lambda: F.p2o(kern()[0], (4, 4)), ValueError, r"psf must have shape \[\.\.\., h, w\]"),
    Bad(P2O, "dtype", "psf int", lambda: F.p2o(torch.ones(3, 3, dtype=torch.int64), (4, 4)), TypeError, r"psf must be float32 or float64"),
    Bad(P2O, "dtype", "psf float16", lambda: F.p2o(kern().half(), (4, 4)), TypeError, r"psf must be float32 or float64, not torch\.float16"),
    Bad(P2O, "size", "shape smaller than psf", lambda: F.p2o(kern(), (2, 4)), ValueError, r"shape\[0\] must be an int >= 3 \(H: at least the psf's height 3\)"),
    Bad(P2O, "size", "psf 0x3", lambda: F.p2o(torch.zeros(0, 3), (4, 4)), ValueError, r"psf has a dimension of size 0"),
    Bad(P2O, "type", "shape int", lambda: F.p2o(kern(), 8), TypeError, r"shape must be the image size \(H, W\)"),
    Bad(P2O, "type", "shape float entries", lambda: F.p2o(kern(), (8.0, 8)), TypeError, r"shape\[0\] must be an int"),
    Bad(P2O, "type", "flush_imag str", lambda: F.p2o(kern(), (8, 8), flush_imag="yes"), TypeError, r"flush_imag must be True or False"),
    Bad(P2O, "meta", "psf meta", lambda: F.p2o(torch.ones(3, 3, device="meta"), (4, 4)), ValueError, r"psf is on the meta device"),
    Good(
        P2O, "size", "odd 5x3 of a 3x2 psf, no flush",
        lambda: torch.view_as_real(F.p2o(kern(3, 2), (5, 3), flush_imag=False)),
        lambda: torch.view_as_real(pad_roll_fft(kern(3, 2), 5, 3)), atol=1e-14,
    ),
    Good(
        P2O, "size", "1x1 psf: a constant OTF",
        lambda: torch.view_as_real(F.p2o(torch.full((1, 1), 0.5, dtype=F64), (3, 2))),
        lambda: torch.view_as_real(torch.full((3, 2), 0.5, dtype=torch.complex128)), atol=0.0,
    ),
    Good(
        P2O, "rank", "psf [N, C, h, w] keeps its leading dims",
        lambda: torch.view_as_real(F.p2o(torch.stack([kern(), kern(seed=2)])[:, None], (4, 4))[1, 0]),
        lambda: torch.view_as_real(pad_roll_fft(kern(seed=2), 4, 4)), atol=1e-14,
    ),
    Good(
        P2O, "layout", "non-contiguous psf",
        lambda: torch.view_as_real(F.p2o(transposed(kern(3, 3)[None, None]), (5, 4))),
        lambda: torch.view_as_real(pad_roll_fft(kern(3, 3), 5, 4))[None, None], atol=1e-14,
    ),
    # -- upsample / downsample -----------------------------------------------------------------
    Bad(UP, "rank", "x 3-d", lambda: F.upsample(rand(1, 4, 4), 2), ValueError, r"x must have shape \[B, C, H, W\]"),
    Bad(UP, "dtype", "x int", lambda: F.upsample(torch.ones(1, 1, 2, 2, dtype=torch.int32), 2), TypeError, r"x must have dtype float32, float64"),
    Bad(UP, "value", "sf 0", lambda: F.upsample(rand(1, 1, 2, 2), 0), ValueError, r"sf must be an int >= 1"),
    Bad(UP, "type", "sf 2.0", lambda: F.upsample(rand(1, 1, 2, 2), 2.0), TypeError, r"sf must be an int >= 1 .*not float"),
    Bad(UP, "meta", "x meta", lambda: F.upsample(torch.ones(1, 1, 2, 2, device="meta"), 2), ValueError, r"x is on the meta device"),
    Good(
        UP, "layout", "non-contiguous x, sf 3",
        lambda: F.upsample(transposed(rand(1, 2, 3, 2)), 3),
        lambda: torch.from_numpy(np.kron(rand(1, 2, 3, 2).numpy(), np.pad([[1.0]], ((0, 2), (0, 2))))),
        atol=0.0,
    ),
    Good(UP, "size", "sf 1 is the identity", lambda: F.upsample(rand(2, 1, 3, 5), 1), lambda: rand(2, 1, 3, 5), atol=0.0),
    Bad(DOWN, "rank", "x 2-d", lambda: F.downsample(rand(4, 4), 2), ValueError, r"x must have shape \[B, C, H, W\]"),
    Bad(DOWN, "value", "sf -1", lambda: F.downsample(rand(1, 1, 4, 4), -1), ValueError, r"sf must be an int >= 1"),
    Bad(DOWN, "dtype", "x complex", lambda: F.downsample(torch.ones(1, 1, 2, 2, dtype=torch.complex64), 2), TypeError, r"x must have dtype"),
    Good(
        DOWN, "size", "5x5 by 2: the top-left pixel of each block, 3x3",
        lambda: F.downsample(rand(1, 1, 5, 5), 2),
        lambda: torch.from_numpy(rand(1, 1, 5, 5).numpy()[:, :, [0, 2, 4]][:, :, :, [0, 2, 4]]),
        atol=0.0,
    ),
    # -- pre_calculate -------------------------------------------------------------------------
    Bad(PRE, "type", "k numpy", lambda: F.pre_calculate(rand(1, 1, 4, 4), kern().numpy(), 1), TypeError, r"k must be a torch\.Tensor"),
    Bad(PRE, "rank", "k 1-d", lambda: F.pre_calculate(rand(1, 1, 4, 4), kern()[0], 1), ValueError, r"k must have shape \[kh, kw\], \[Bk, kh, kw\] or \[Bk, 1, kh, kw\]"),
    Bad(PRE, "rank", "k 5-d", lambda: F.pre_calculate(rand(1, 1, 4, 4), kern()[None, None, None], 1), ValueError, r"k must have shape \[kh, kw\]"),
    Bad(PRE, "mismatch", "k per channel [1, 3, h, w]", lambda: F.pre_calculate(rand(1, 3, 4, 4), kern().expand(1, 3, 3, 3), 1), ValueError, r"k must have shape .*one kernel for every channel"),
    Bad(PRE, "mismatch", "3 kernels for a batch of 2", lambda: F.pre_calculate(rand(2, 1, 4, 4), kern().expand(3, 3, 3), 1), ValueError, r"k holds 3 kernels but x has batch size 2"),
    Bad(PRE, "size", "k larger than the image", lambda: F.pre_calculate(rand(1, 1, 2, 2), kern(5, 5), 2), ValueError, r"k of size 5x5 is larger than the image \(2x2 upsampled by 2: 4x4\)"),
    Bad(PRE, "nan-inf", "x NaN", lambda: F.pre_calculate(rand(1, 1, 4, 4).index_fill(3, torch.tensor([1]), NAN), kern(), 1), ValueError, r"x contains NaN or Inf"),
    Bad(PRE, "nan-inf", "k Inf", lambda: F.pre_calculate(rand(1, 1, 4, 4), kern().index_fill(0, torch.tensor([1]), INF), 1), ValueError, r"k contains NaN or Inf"),
    Bad(PRE, "dtype", "k int", lambda: F.pre_calculate(rand(1, 1, 4, 4), torch.ones(3, 3, dtype=torch.int64), 1), TypeError, r"k must be a floating-point tensor"),
    Bad(PRE, "dtype", "x bfloat16", lambda: F.pre_calculate(rand(1, 1, 4, 4).bfloat16(), kern(), 1), TypeError, r"x must have dtype float32, float64"),
    Bad(PRE, "value", "sf 0", lambda: F.pre_calculate(rand(1, 1, 4, 4), kern(), 0), ValueError, r"sf must be an int >= 1"),
    Bad(PRE, "type", "sf None", lambda: F.pre_calculate(rand(1, 1, 4, 4), kern(), None), TypeError, r"sf must be an int >= 1"),
    Bad(PRE, "meta", "k meta", lambda: F.pre_calculate(rand(1, 1, 4, 4), torch.ones(3, 3, device="meta"), 1), ValueError, r"k is on the meta device"),
    Good(
        PRE, "dtype", "float32 y with a float64 kernel: FBFy = fft2(A^T y) in complex64",
        lambda: torch.view_as_real(F.pre_calculate(rand(2, 1, 3, 2, dtype=torch.float32), kern(), 2)[3]).double(),
        lambda: torch.view_as_real(torch.fft.fft2(dense_aty(rand(2, 1, 3, 2, dtype=torch.float32), kern()[None], 2))),
        atol=2e-6,
    ),
    Good(
        PRE, "size", "1x1 kernel, sf 1: F2B = k^2 everywhere",
        lambda: F.pre_calculate(rand(1, 1, 3, 3), torch.full((1, 1), 2.0, dtype=F64), 1)[2],
        lambda: torch.full((1, 1, 3, 3), 4.0, dtype=F64), atol=1e-14,
    ),
    Bad(PREP, "rank", "k [1, 1, 1, kh, kw]", lambda: F.pre_calculate_prox(rand(1, 1, 4, 4), kern()[None, None, None], 1), ValueError, r"k must have shape \[kh, kw\]"),
    Good(
        PREP, "mismatch", "Prox-PnP's k [N, 1, h, w], one kernel per image: F2B = |pad-roll-FFT|^2",
        lambda: F.pre_calculate_prox(rand(2, 1, 3, 3), torch.stack([kern(), kern(seed=2)])[:, None], 1)[2][1, 0],
        lambda: pad_roll_fft(kern(seed=2), 3, 3).abs() ** 2, atol=1e-14,
    ),
    # -- data_solution (= prox_solution) -------------------------------------------------------
    Bad(DS, "dtype", "FB complex128 with float32 x", lambda: ds(*with_(spectra(dtype=torch.float32), 1, spectra()[1])), TypeError, r"FB must be torch\.complex64 to match x \(torch\.float32\)"),
    Bad(DS, "type", "FB in the legacy [..., 2] layout", lambda: ds(*with_(spectra(), 1, torch.view_as_real(spectra()[1]))), TypeError, r"FB is a real tensor .*legacy \[\.\.\., 2\] layout.*torch\.view_as_complex\(FB\)"),
    Bad(DS, "type", "FBFy a list", lambda: ds(*with_(spectra(), 4, [0.0])), TypeError, r"FBFy must be a torch\.Tensor"),
    Bad(DS, "dtype", "F2B int", lambda: ds(*with_(spectra(), 3, torch.ones(1, 1, 8, 8, dtype=torch.int64))), TypeError, r"F2B must be torch\.float64 \(or torch\.complex128\)"),
    Bad(DS, "mismatch", "FBFy of another image size", lambda: ds(*with_(spectra(), 4, spectra(H=4)[4])), ValueError, r"FBFy has shape \(2, 1, 4, 8\) but x has shape \(2, 1, 8, 8\)"),
    Bad(DS, "mismatch", "FB per channel", lambda: ds(*with_(spectra(), 1, spectra()[1].expand(1, 3, 8, 8))), ValueError, r"FB must have shape \[1 or 2, 1, 8, 8\]"),
    Bad(DS, "mismatch", "FBC of another shape", lambda: ds(*with_(spectra(), 2, spectra()[2][..., :4])), ValueError, r"FBC has shape \(1, 1, 8, 4\) but FB has \(1, 1, 8, 8\)"),
    Bad(DS, "value", "alpha 0", lambda: ds(*spectra(), alpha=0.0), ValueError, r"alpha must be > 0"),
    Bad(DS, "value", "alpha -1", lambda: ds(*spectra(), alpha=-1), ValueError, r"alpha must be > 0"),
    Bad(DS, "value", "alpha 1e-320: 1 / alpha overflows", lambda: ds(*spectra(), alpha=1e-320), ValueError, r"alpha = 1e-320 is too small: 1 / alpha overflows"),
    Bad(DS, "nan-inf", "alpha NaN", lambda: ds(*spectra(), alpha=NAN), ValueError, r"alpha must be finite"),
    Bad(DS, "nan-inf", "alpha Inf", lambda: ds(*spectra(), alpha=INF), ValueError, r"alpha must be finite"),
    Bad(DS, "mismatch", "alpha of length 3 for 2 images", lambda: ds(*spectra(), alpha=torch.ones(3)), ValueError, r"alpha must be a float or a tensor of shape \[\], \[1\], \[2\] or \[2, 1, 1, 1\]"),
    Bad(DS, "rank", "alpha [2, 1]", lambda: ds(*spectra(), alpha=torch.ones(2, 1)), ValueError, r"alpha must be a float or a tensor of shape"),
    Bad(DS, "type", "alpha str", lambda: ds(*spectra(), alpha="0.5"), TypeError, r"alpha must be a float"),
    Bad(DS, "dtype", "alpha complex", lambda: ds(*spectra(), alpha=torch.ones(2, dtype=torch.complex64)), TypeError, r"alpha must be real"),
    Bad(DS, "value", "sf 3 does not divide 8", lambda: ds(*spectra(), sf=3), ValueError, r"x has size 8x8, not divisible by the scale factor sf = 3"),
    Bad(DS, "rank", "x 3-d", lambda: ds(*with_(spectra(), 0, rand(2, 8, 8))), ValueError, r"x must have shape \[B, C, H, W\]"),
    Bad(DS, "meta", "x meta", lambda: ds(*with_(spectra(), 0, torch.ones(2, 1, 8, 8, device="meta"))), ValueError, r"x is on the meta device"),
    Bad(DS, "meta", "FBFy meta", lambda: ds(*with_(spectra(), 4, torch.ones(2, 1, 8, 8, dtype=torch.complex128, device="meta"))), ValueError, r"FBFy is on the meta device"),
    Good(DS, "value", "per-image alpha [B, 1, 1, 1], per-image kernels", lambda: ds(*spectra(per_image=True), alpha=torch.tensor([0.02, 5.0], dtype=F64).view(2, 1, 1, 1)), lambda: dense_prox(2, [0.02, 5.0], per_image=True), atol=1e-10),
    Good(DS, "layout", "non-contiguous x, sf 1", lambda: ds(*with_(spectra(1), 0, transposed(spectra(1)[0])), alpha=0.3, sf=1), lambda: dense_prox(1, [0.3, 0.3]), atol=1e-12),
    Good(DS, "dtype", "float32, alpha a float32 [1, 1, 1, 1] (DPIR's)", lambda: ds(*spectra(dtype=torch.float32), alpha=torch.full((1, 1, 1, 1), 0.5)), lambda: dense_prox(2, [0.5, 0.5]), atol=1e-5),
    Good(DS, "size", "7x5, sf 1", lambda: ds(*spectra(1, H=7, W=5), alpha=1.5, sf=1), lambda: dense_prox(1, [1.5, 1.5], H=7, W=5), atol=1e-12),
    Bad(PS, "value", "alpha negative tensor is not read; a float is", lambda: F.prox_solution(*spectra(), -2.0, 2), ValueError, r"alpha must be > 0"),
    Good(PS, "value", "Prox-PnP's prox_solution, sf 2", lambda: F.prox_solution(*spectra(), 0.7, 2), lambda: dense_prox(2, [0.7, 0.7]), atol=1e-12),
    # -- prox_solution_L2 ----------------------------------------------------------------------
    Bad(PSL2, "value", "stepsize 0", lambda: F.prox_solution_L2(*spectra(), 0.0, 2), ValueError, r"stepsize must be > 0"),
    Bad(PSL2, "type", "stepsize None", lambda: F.prox_solution_L2(*spectra(), None, 2), TypeError, r"stepsize must be a float"),
    Good(PSL2, "value", "stepsize per image = 1 / alpha", lambda: F.prox_solution_L2(*spectra(), torch.tensor([4.0, 0.25]), 2), lambda: dense_prox(2, [0.25, 4.0]), atol=1e-11),
    # -- data_grad (= grad_solution) and grad_step ---------------------------------------------
    Bad(DG, "type", "sf 1.5", lambda: F.data_grad(*spectra(), 1.5), TypeError, r"sf must be an int >= 1"),
    Bad(DG, "dtype", "FBFy real", lambda: F.data_grad(*with_(spectra(), 4, rand(2, 1, 8, 8)), 2), TypeError, r"FBFy must be torch\.complex128 to match x"),
    Good(DG, "size", "7x5, sf 1", lambda: F.data_grad(*spectra(1, H=7, W=5), 1), lambda: dense_grad(1, H=7, W=5), atol=1e-12),
    Good(DG, "mismatch", "per-image kernels, sf 2", lambda: F.data_grad(*spectra(per_image=True), 2), lambda: dense_grad(2, per_image=True), atol=1e-12),
    Bad(GS, "value", "sf 0", lambda: F.grad_solution(*spectra(), 0), ValueError, r"sf must be an int >= 1"),
    Good(GS, "size", "sf 2", lambda: F.grad_solution(*spectra(), 2), lambda: dense_grad(2), atol=1e-12),
    Bad(STEP, "value", "tau -0.5", lambda: F.grad_step(*spectra(), -0.5, 2), ValueError, r"tau must be > 0"),
    Bad(STEP, "mismatch", "tau of length 5", lambda: F.grad_step(*spectra(), torch.ones(5), 2), ValueError, r"tau must be a float or a tensor of shape"),
    Good(STEP, "value", "tau per image [B], sf 1", lambda: F.grad_step(*spectra(1), torch.tensor([0.5, 2.0]), 1), lambda: spectra(1)[0] - torch.tensor([0.5, 2.0], dtype=F64).view(2, 1, 1, 1) * dense_grad(1), atol=1e-12),
    Good(STEP, "value", "tau [B, 1, 1, 1], sf 2", lambda: F.grad_step(*spectra(), torch.tensor([0.5, 2.0]).view(2, 1, 1, 1), 2), lambda: spectra()[0] - torch.tensor([0.5, 2.0], dtype=F64).view(2, 1, 1, 1) * dense_grad(2), atol=1e-12),
    # -- constrained_sample --------------------------------------------------------------------
    Bad(CS, "type", "model not callable", lambda: F.constrained_sample(1.0, x_c(), m_t, m_t), TypeError, r"model must be callable"),
    Bad(CS, "type", "M_T not callable", lambda: F.constrained_sample(residual, x_c(), None, m_t), TypeError, r"M_T must be a callable on a batch"),
    Bad(CS, "type", "x_c numpy", lambda: F.constrained_sample(residual, x_c().numpy(), m_t, m_t), TypeError, r"x_c must be a torch\.Tensor"),
    Bad(CS, "dtype", "x_c int", lambda: F.constrained_sample(residual, torch.ones(2, 1, 6, 6, dtype=torch.int64), m_t, m_t), TypeError, r"x_c must be float32 or float64"),
    Bad(CS, "rank", "M returns [C, H, W] (one image, theirs)", lambda: F.constrained_sample(residual, x_c(), m_t, lambda c: c[0]), ValueError, r"M\(x_c\) must be a batch of images \[2, C, H, W\]"),
    Bad(CS, "mismatch", "M_T measures into another shape", lambda: F.constrained_sample(residual, x_c(), lambda v: v[..., :3], m_t), ValueError, r"M_T\(M\(x_c\)\) must have x_c's shape"),
    Bad(CS, "value", "sig_L >= sig_0", lambda: sample(sig_0=0.5, sig_L=0.5), ValueError, r"sig_L must be < sig_0"),
    Bad(CS, "value", "h0 2", lambda: sample(h0=2.0), ValueError, r"h0 must be <= 1"),
    Bad(CS, "value", "beta 0", lambda: sample(beta=0.0), ValueError, r"beta must be > 0"),
    Bad(CS, "value", "seed -1", lambda: sample(seed=-1), ValueError, r"seed must be an int in \[0, 2\*\*63 - 1\]"),
    Bad(CS, "value", "max_iter 0", lambda: sample(max_iter=0), ValueError, r"max_iter must be an int"),
    Bad(CS, "mismatch", "sig_L of length 3", lambda: sample(sig_L=torch.full((3,), 0.05)), ValueError, r"sig_L must be a float or a tensor of length 2"),
    Bad(CS, "nan-inf", "x_c NaN", lambda: F.constrained_sample(residual, x_c().index_fill(3, torch.tensor([0]), NAN), m_t, m_t), ValueError, r"x_c \(the measurement\) contains NaN or Inf"),
    Bad(CS, "denoiser", "model returns another shape", lambda: F.constrained_sample(lambda y: y[..., :3], x_c(), m_t, m_t), ValueError, r"model returned shape \(2, 1, 6, 3\) for an image of shape \(2, 1, 6, 6\)"),
    Bad(CS, "denoiser", "model returns float32 for float64", lambda: F.constrained_sample(lambda y: y.float(), x_c(), m_t, m_t), TypeError, r"model returned torch\.float32 for an image of torch\.float64"),
    Bad(CS, "denoiser", "model returns NaN", lambda: F.constrained_sample(lambda y: y * NAN, x_c(), m_t, m_t), FloatingPointError, r"implicit-prior"),
    Good(CS, "value", "beta 1, per-image sig_L [B, 1, 1, 1]: their loop", lambda: sample(sig_L=torch.tensor([0.05, 0.08]).view(2, 1, 1, 1)), lambda: their_loop([0.05, 0.08]), atol=1e-10),
]  # fmt: skip


@params(CASES)
def test_fuzz(case):
    check(case)
