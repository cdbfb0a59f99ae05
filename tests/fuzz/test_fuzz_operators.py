"""Fuzz table (issue 17) of the forward models and the data-fidelity term: pnpfast.operators
(Blur, Inpainting, BlockAverage, CompressiveSensing, SpectralLowpass, batched_cg) and pnpfast.L2.

Bad rows: the exact exception type and a message naming the argument. Good rows (float64,
non-contiguous and channels_last inputs, 1x1 images, kernels as large as the image) are compared
with NumPy float64 computations written here: dense matrices built from the definitions (the
circulant matrix of a circular convolution, a pixel mask, block sums), dense solves for the
proxes, the dot-product adjoint identity. The rows of tests/test_bad_input.py (Blur's kernel
checks and its forward on bad x) are not repeated. 8x8 images or smaller: a few seconds.
"""

import numpy as np
import torch
from fuzz_cases import Bad, Good, blur_matrix, channels_last, check, params, transposed

import pnpfast
from pnpfast.operators import (
    BlockAverage,
    Blur,
    CompressiveSensing,
    Identity,
    Inpainting,
    SpectralLowpass,
    batched_cg,
)

NAN, INF = float("nan"), float("inf")
F64 = torch.float64
OPS = "pnpfast.operators"


def rand(*shape, seed=0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def kern(h=3, w=3, seed=1, dtype=torch.float32) -> torch.Tensor:
    k = rand(h, w, seed=seed, dtype=dtype) + 0.1
    return k / k.sum()


def K3() -> torch.Tensor:
    return kern()


# -- NumPy float64 oracles, written from the definitions -----------------------------------------


def apply_dense(A: np.ndarray, x: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Apply a dense per-plane matrix to every [b, c] plane of x."""
    xs = x.detach().double().numpy()
    B, C = xs.shape[:2]
    out = np.einsum("ij,bcj->bci", A, xs.reshape(B, C, -1))
    return torch.from_numpy(out.reshape(B, C, *out_hw))


def blur_oracle(k: torch.Tensor, x: torch.Tensor, adjoint: bool = False) -> torch.Tensor:
    """k [h, w] shared or [B, h, w] per image."""
    H, W = x.shape[-2:]
    ks = k.double().numpy().reshape(-1, *k.shape[-2:])
    outs = []
    for b in range(x.shape[0]):
        A = blur_matrix(ks[b if len(ks) > 1 else 0], H, W)
        outs.append(apply_dense(A.T if adjoint else A, x[b : b + 1], (H, W)))
    return torch.cat(outs)


def dense_prox(A: np.ndarray, v: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - v||^2 per plane, by a dense solve."""
    n = A.shape[1]
    M = A.T @ A + np.eye(n) / gamma
    vs, ys = v.double().numpy(), y.double().numpy()
    B, C = vs.shape[:2]
    rhs = ys.reshape(B, C, -1) @ A + vs.reshape(B, C, -1) / gamma
    out = np.linalg.solve(M, rhs.reshape(-1, n).T).T
    return torch.from_numpy(out.reshape(vs.shape))


def block_sum_matrix(s: int, H: int, W: int) -> np.ndarray:
    """M^T of BlockAverage: [(H/s)(W/s), HW], 1/s on the pixels of each block."""
    h, w = H // s, W // s
    M = np.zeros((h * w, H * W))
    for r in range(H):
        for c in range(W):
            M[(r // s) * w + c // s, r * W + c] = 1 / s
    return M


def dot_adjoint_gap(A, x: torch.Tensor, y: torch.Tensor) -> float:
    """|<A x, y> - <x, A^T y>| (the dot-product test of a forward/adjoint pair)."""
    return abs(float((A(x) * y).sum() - (x * A.adjoint(y)).sum()))


# -- Blur -----------------------------------------------------------------------------------------

BLUR = f"{OPS}.Blur"
x8 = lambda **kw: rand(2, 1, 8, 8, **kw)  # noqa: E731

CASES: list[Bad | Good] = [
    # constructor (kernel NaN/Inf/zero/empty/meta/int/1-d are in tests/test_bad_input.py)
    Bad(BLUR, "type", "list kernel", lambda: Blur([[1.0]]), TypeError, r"kernel must be a tensor"),
    Bad(BLUR, "type", "str kernel", lambda: Blur("gauss"), TypeError, r"kernel must be a tensor"),
    Bad(
        BLUR,
        "dtype",
        "complex kernel",
        lambda: Blur(torch.ones(3, 3, dtype=torch.complex64)),
        TypeError,
        r"kernel must be floating point, not torch.complex64",
    ),
    Bad(
        BLUR,
        "dtype",
        "bool kernel",
        lambda: Blur(torch.ones(3, 3, dtype=torch.bool)),
        TypeError,
        r"kernel must be floating point, not torch.bool",
    ),
    Bad(
        BLUR,
        "rank",
        "4-d kernel",
        lambda: Blur(torch.ones(1, 1, 3, 3)),
        ValueError,
        r"kernel must have shape \[h, w\] or \[B, h, w\]",
    ),
    Bad(
        BLUR,
        "nan-inf",
        "numpy kernel with NaN",
        lambda: Blur(np.full((3, 3), np.nan)),
        ValueError,
        r"kernel contains NaN or Inf",
    ),
    Bad(
        BLUR,
        "nan-inf",
        "one per-image kernel with -Inf",
        lambda: Blur(torch.stack([K3(), torch.full((3, 3), -INF)])),
        ValueError,
        r"kernel contains NaN or Inf",
    ),
    Bad(
        BLUR,
        "value",
        "zero kernel, float64 numpy",
        lambda: Blur(np.zeros((2, 2))),
        ValueError,
        r"kernel is all zero",
    ),
    Good(
        BLUR,
        "dtype",
        "float16 kernel blurs float32 images",
        lambda: Blur(kern().half())(x8()),
        lambda: blur_oracle(kern().half().float(), x8()),
        1e-6,
    ),
    Good(
        BLUR,
        "dtype",
        "bfloat16 kernel blurs float32 images",
        lambda: Blur(kern().bfloat16())(x8()),
        lambda: blur_oracle(kern().bfloat16().float(), x8()),
        1e-6,
    ),
    Good(
        BLUR,
        "type",
        "numpy float64 kernel, non-contiguous",
        lambda: Blur(kern(3, 5, dtype=F64).numpy().T)(x8(dtype=F64)),
        lambda: blur_oracle(kern(3, 5, dtype=F64).T.contiguous(), x8(dtype=F64)),
        1e-12,
    ),
    # forward / adjoint
    Good(
        f"{BLUR}.forward",
        "dtype",
        "float64 per-image kernels",
        lambda: Blur(torch.stack([kern(dtype=F64), kern(seed=5, dtype=F64)]))(x8(dtype=F64)),
        lambda: blur_oracle(torch.stack([kern(dtype=F64), kern(seed=5, dtype=F64)]), x8(dtype=F64)),
        1e-12,
    ),
    Good(
        f"{BLUR}.forward",
        "dtype",
        "float64 even 2x4 kernel",
        lambda: Blur(kern(2, 4, dtype=F64))(x8(dtype=F64)),
        lambda: blur_oracle(kern(2, 4, dtype=F64), x8(dtype=F64)),
        1e-12,
    ),
    Good(
        f"{BLUR}.forward",
        "layout",
        "channels_last",
        lambda: Blur(kern(dtype=F64))(channels_last(rand(2, 3, 8, 6, dtype=F64))),
        lambda: blur_oracle(kern(dtype=F64), rand(2, 3, 8, 6, dtype=F64)),
        1e-12,
    ),
    Good(
        f"{BLUR}.forward",
        "layout",
        "non-contiguous",
        lambda: Blur(kern(dtype=F64))(transposed(rand(1, 2, 5, 7, dtype=F64))),
        lambda: blur_oracle(kern(dtype=F64), rand(1, 2, 5, 7, dtype=F64)),
        1e-12,
    ),
    Good(
        f"{BLUR}.forward",
        "size",
        "kernel as large as the image (5x5 on 5x5)",
        lambda: Blur(kern(5, 5, dtype=F64))(rand(1, 1, 5, 5, dtype=F64)),
        lambda: blur_oracle(kern(5, 5, dtype=F64), rand(1, 1, 5, 5, dtype=F64)),
        1e-12,
    ),
    Bad(
        f"{BLUR}.forward",
        "size",
        "kernel wider than the image",
        lambda: Blur(torch.ones(1, 9) / 9)(x8()),
        ValueError,
        r"kernel of size 1x9 is larger than x of size 8x8",
    ),
    Bad(
        f"{BLUR}.forward",
        "mismatch",
        "3 per-image kernels, batch of 2",
        lambda: Blur(torch.stack([K3()] * 3))(x8()),
        ValueError,
        r"kernel holds 3 kernels but x has batch size 2",
    ),
    Bad(
        f"{BLUR}.forward",
        "dtype",
        "bfloat16 x",
        lambda: Blur(K3())(x8().bfloat16()),
        TypeError,
        r"x must have dtype float32, float64, not bfloat16",
    ),
    Bad(
        f"{BLUR}.forward",
        "dtype",
        "complex x",
        lambda: Blur(K3())(x8().to(torch.complex64)),
        TypeError,
        r"x must have dtype float32, float64, not complex64",
    ),
    Bad(
        f"{BLUR}.forward",
        "dtype",
        "bool x",
        lambda: Blur(K3())(x8() > 0.5),
        TypeError,
        r"x must have dtype float32, float64, not bool",
    ),
    Bad(
        f"{BLUR}.forward",
        "dtype",
        "int x",
        lambda: Blur(K3())((x8() * 255).to(torch.uint8)),
        TypeError,
        r"x must have dtype float32, float64, not uint8",
    ),
    Bad(
        f"{BLUR}.forward",
        "type",
        "numpy x",
        lambda: Blur(K3())(np.ones((1, 1, 8, 8))),
        TypeError,
        r"x must be a torch.Tensor of shape \[B, C, H, W\], not ndarray",
    ),
    Good(
        f"{BLUR}.adjoint",
        "dtype",
        "float64, the transposed circulant matrix",
        lambda: Blur(kern(3, 2, dtype=F64)).adjoint(x8(dtype=F64)),
        lambda: blur_oracle(kern(3, 2, dtype=F64), x8(dtype=F64), adjoint=True),
        1e-12,
    ),
    Good(
        f"{BLUR}.adjoint",
        "layout",
        "channels_last, dot-product identity",
        lambda: dot_adjoint_gap(
            Blur(kern(dtype=F64)),
            rand(2, 3, 6, 8, dtype=F64),
            channels_last(rand(2, 3, 6, 8, seed=3, dtype=F64)),
        ),
        lambda: 0.0,
        1e-12,
    ),
    Good(
        f"{BLUR}.adjoint",
        "size",
        "1x1 image, 1x1 kernel",
        lambda: Blur(torch.tensor([[0.5]], dtype=F64)).adjoint(
            torch.full((1, 1, 1, 1), 3.0, dtype=F64)
        ),
        lambda: torch.full((1, 1, 1, 1), 1.5, dtype=F64),
        0.0,
    ),
    Bad(
        f"{BLUR}.adjoint",
        "size",
        "kernel taller than y",
        lambda: Blur(K3()).adjoint(rand(1, 1, 2, 8)),
        ValueError,
        r"kernel of size 3x3 is larger than y of size 2x8",
    ),
    Bad(
        f"{BLUR}.adjoint",
        "meta",
        "meta y",
        lambda: Blur(K3()).adjoint(torch.rand(1, 1, 8, 8, device="meta")),
        ValueError,
        r"y is on the meta device",
    ),
    Bad(
        f"{BLUR}.adjoint",
        "size",
        "batch of size 0",
        lambda: Blur(K3()).adjoint(rand(0, 1, 8, 8)),
        ValueError,
        r"y has a batch of size 0",
    ),
    Bad(
        f"{BLUR}.adjoint",
        "rank",
        "5-d y",
        lambda: Blur(K3()).adjoint(rand(1, 1, 1, 8, 8)),
        ValueError,
        r"y must have shape \[B, C, H, W\] \(4 dimensions\)",
    ),
    Bad(
        f"{BLUR}.__call__",
        "type",
        "list x",
        lambda: Blur(K3())([[0.0] * 8] * 8),
        TypeError,
        r"x must be a torch.Tensor",
    ),
    Good(
        f"{BLUR}.forward",
        "nan-inf",
        "NaN in image 1 propagates (like torch) to image 1 only",
        lambda: (
            torch.isnan(Blur(K3())(torch.stack([x8()[0], torch.full((1, 8, 8), NAN)])))
            .flatten(1)
            .all(1)
            .double()
        ),
        lambda: torch.tensor([0.0, 1.0], dtype=F64),
        0.0,
    ),
    # spectrum / fourier_multiplier
    Bad(
        f"{BLUR}.spectrum",
        "size",
        "image smaller than the kernel",
        lambda: Blur(K3()).spectrum(2, 8, torch.device("cpu"), torch.float32),
        ValueError,
        r"H must be an int >= 3 \(the image size: at least the kernel's size 3x3\), not 2",
    ),
    Bad(
        f"{BLUR}.spectrum",
        "value",
        "negative width",
        lambda: Blur(K3()).spectrum(8, -1, torch.device("cpu"), torch.float32),
        ValueError,
        r"W must be an int >= 3 \(the image size: at least the kernel's size 3x3\), not -1",
    ),
    Bad(
        f"{BLUR}.spectrum",
        "type",
        "float size",
        lambda: Blur(K3()).spectrum(8.0, 8, torch.device("cpu"), torch.float32),
        TypeError,
        r"H must be an int",
    ),
    Bad(
        f"{BLUR}.spectrum",
        "dtype",
        "int64 dtype",
        lambda: Blur(K3()).spectrum(8, 8, torch.device("cpu"), torch.int64),
        TypeError,
        r"dtype must be torch.float32 or torch.float64, not torch.int64",
    ),
    Bad(
        f"{BLUR}.fourier_multiplier",
        "rank",
        "shape of 3 sizes",
        lambda: Blur(K3()).fourier_multiplier((8, 8, 8), torch.device("cpu"), torch.float32),
        ValueError,
        r"shape must be the image size \(H, W\)",
    ),
    Good(
        f"{BLUR}.fourier_multiplier",
        "dtype",
        "float64: DFT of the centred kernel",
        lambda: torch.view_as_real(
            Blur(kern(dtype=F64)).fourier_multiplier((6, 8), torch.device("cpu"), F64)[0, 0]
        ),
        lambda: torch.view_as_real(
            torch.from_numpy(
                np.fft.rfft2(
                    np.roll(np.pad(kern(dtype=F64).numpy(), ((0, 3), (0, 5))), (-1, -1), (0, 1))
                )
            )
        ),
        1e-12,
    ),
    # prox_l2
    Good(
        f"{BLUR}.prox_l2",
        "dtype",
        "float64 against a dense solve",
        lambda: Blur(kern(dtype=F64)).prox_l2(
            rand(2, 1, 5, 6, dtype=F64), rand(2, 1, 5, 6, seed=2, dtype=F64), 0.7
        ),
        lambda: dense_prox(
            blur_matrix(kern(dtype=F64).numpy(), 5, 6),
            rand(2, 1, 5, 6, dtype=F64),
            rand(2, 1, 5, 6, seed=2, dtype=F64),
            0.7,
        ),
        1e-12,
    ),
    Good(
        f"{BLUR}.prox_l2",
        "layout",
        "channels_last v and y",
        lambda: Blur(kern(dtype=F64)).prox_l2(
            channels_last(rand(1, 3, 6, 6, dtype=F64)),
            channels_last(rand(1, 3, 6, 6, seed=2, dtype=F64)),
            2.0,
        ),
        lambda: dense_prox(
            blur_matrix(kern(dtype=F64).numpy(), 6, 6),
            rand(1, 3, 6, 6, dtype=F64),
            rand(1, 3, 6, 6, seed=2, dtype=F64),
            2.0,
        ),
        1e-12,
    ),
    Good(
        f"{BLUR}.prox_l2",
        "size",
        "1x1 image: the scalar prox",
        lambda: Blur(torch.tensor([[0.5]], dtype=F64)).prox_l2(
            torch.full((1, 1, 1, 1), 0.2, dtype=F64), torch.full((1, 1, 1, 1), 0.6, dtype=F64), 2.0
        ),
        lambda: torch.full((1, 1, 1, 1), (0.2 + 2.0 * 0.5 * 0.6) / (1 + 2.0 * 0.25), dtype=F64),
        1e-15,
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "value",
        "gamma inf",
        lambda: Blur(K3()).prox_l2(x8(), x8(seed=1), INF),
        ValueError,
        r"gamma must be finite, got inf",
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "value",
        "gamma 0",
        lambda: Blur(K3()).prox_l2(x8(), x8(seed=1), 0.0),
        ValueError,
        r"gamma must be > 0, got 0.0",
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "nan-inf",
        "NaN in one image's gamma",
        lambda: Blur(K3()).prox_l2(x8(), x8(seed=1), torch.tensor([1.0, NAN])),
        ValueError,
        r"gamma must be finite, got nan",
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "dtype",
        "complex gamma",
        lambda: Blur(K3()).prox_l2(x8(), x8(seed=1), torch.ones(2, dtype=torch.complex64)),
        TypeError,
        r"gamma must be real, not torch.complex64",
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "type",
        "str gamma",
        lambda: Blur(K3()).prox_l2(x8(), x8(seed=1), "1"),
        TypeError,
        r"gamma must be a float or a tensor of length 2, not str",
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "mismatch",
        "gamma of length 3 for 2 images",
        lambda: Blur(K3()).prox_l2(x8(), x8(seed=1), torch.ones(3)),
        ValueError,
        r"gamma must be a float or a tensor of length 2 \(one per image\), got shape \(3,\)",
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "nan-inf",
        "Inf in y",
        lambda: Blur(K3()).prox_l2(x8(), torch.full((2, 1, 8, 8), INF), 1.0),
        ValueError,
        r"y contains NaN or Inf",
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "nan-inf",
        "NaN in v",
        lambda: Blur(K3()).prox_l2(torch.full((2, 1, 8, 8), NAN), x8(), 1.0),
        ValueError,
        r"v contains NaN or Inf",
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "mismatch",
        "v and y of different sizes",
        lambda: Blur(K3()).prox_l2(rand(2, 1, 9, 9), x8(), 1.0),
        ValueError,
        r"v has shape \(2, 1, 9, 9\) but the images measured by y",
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "dtype",
        "float64 v, float32 y",
        lambda: Blur(K3()).prox_l2(x8(dtype=F64), x8(), 1.0),
        TypeError,
        r"v has dtype torch.float64 but y has torch.float32",
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "type",
        "numpy y",
        lambda: Blur(K3()).prox_l2(x8(), np.ones((2, 1, 8, 8)), 1.0),
        TypeError,
        r"y must be a torch.Tensor \(a measurement\), not ndarray",
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "value",
        "max_iter 0",
        lambda: Blur(K3()).prox_l2(x8(), x8(seed=1), 1.0, max_iter=0),
        ValueError,
        r"max_iter must be an int in \[1, 10000\]",
    ),
    Bad(
        f"{BLUR}.prox_l2",
        "name",
        "unknown backend",
        lambda: Blur(K3()).prox_l2(x8(), x8(seed=1), 1.0, backend="cudnn"),
        ValueError,
        r"backend must be one of cuda, triton, reference, not 'cudnn'",
    ),
    Good(
        f"{BLUR}.prox_l2",
        "dtype",
        "triton backend (interpreter), float32",
        lambda: Blur(kern()).prox_l2(
            rand(1, 1, 8, 8), rand(1, 1, 8, 8, seed=2), 0.7, backend="triton"
        ),
        lambda: dense_prox(
            blur_matrix(kern().double().numpy(), 8, 8),
            rand(1, 1, 8, 8),
            rand(1, 1, 8, 8, seed=2),
            0.7,
        ),
        1e-5,
    ),
    Good(
        f"{BLUR}.prox_l2_cg",
        "dtype",
        "float64 CG against a dense solve",
        lambda: Blur(kern(dtype=F64)).prox_l2_cg(
            rand(1, 1, 5, 5, dtype=F64),
            rand(1, 1, 5, 5, seed=2, dtype=F64),
            0.7,
            max_iter=60,
            tol=0.0,
        ),
        lambda: dense_prox(
            blur_matrix(kern(dtype=F64).numpy(), 5, 5),
            rand(1, 1, 5, 5, dtype=F64),
            rand(1, 1, 5, 5, seed=2, dtype=F64),
            0.7,
        ),
        1e-10,
    ),
    Bad(
        f"{BLUR}.prox_l2_cg",
        "value",
        "max_iter 10**9",
        lambda: Blur(K3()).prox_l2_cg(x8(), x8(seed=1), 1.0, max_iter=10**9),
        ValueError,
        r"max_iter must be an int in \[1, 10000\] \(conjugate-gradient steps\), not 1000000000",
    ),
    Bad(
        f"{BLUR}.prox_l2_cg",
        "nan-inf",
        "tol NaN",
        lambda: Blur(K3()).prox_l2_cg(x8(), x8(seed=1), 1.0, tol=NAN),
        ValueError,
        r"tol must be a finite number in \[0, 1\) \(a residual relative to the right-hand side\), not",
    ),
    Bad(
        f"{BLUR}.prox_l2_cg",
        "type",
        "str max_iter",
        lambda: Blur(K3()).prox_l2_cg(x8(), x8(seed=1), 1.0, max_iter="100"),
        TypeError,
        r"max_iter must be an int in \[1, 10000\] \(conjugate-gradient steps\), not str '100'",
    ),
]

# -- Inpainting -----------------------------------------------------------------------------------

INP = f"{OPS}.Inpainting"


def mask8(seed=4) -> torch.Tensor:
    m = rand(8, 8, seed=seed) > 0.4
    m[0, 0] = True
    return m


def inpaint_oracle(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(m.double().numpy() * x.double().numpy())


CASES += [
    Bad(
        INP,
        "value",
        "all-zero mask",
        lambda: Inpainting(torch.zeros(8, 8)),
        ValueError,
        r"mask measures no pixel: it is all 0 / False",
    ),
    Bad(
        INP,
        "value",
        "all-False bool mask",
        lambda: Inpainting(np.zeros((4, 4), dtype=bool)),
        ValueError,
        r"mask measures no pixel",
    ),
    Bad(
        INP,
        "value",
        "one per-image mask all zero",
        lambda: Inpainting(torch.stack([mask8()[None], torch.zeros(1, 8, 8, dtype=torch.bool)])),
        ValueError,
        r"mask measures no pixel \(masks \[1\]\)",
    ),
    Bad(
        INP,
        "nan-inf",
        "NaN in the mask",
        lambda: Inpainting(torch.where(mask8(), 1.0, NAN)),
        ValueError,
        r"mask must hold only 0 and 1 \(or be bool\), found nan",
    ),
    Bad(
        INP,
        "nan-inf",
        "Inf in the mask",
        lambda: Inpainting(torch.where(mask8(), 1.0, INF)),
        ValueError,
        r"mask must hold only 0 and 1 \(or be bool\), found inf",
    ),
    Bad(
        INP,
        "value",
        "a soft mask (0.5)",
        lambda: Inpainting(torch.full((8, 8), 0.5)),
        ValueError,
        r"mask must hold only 0 and 1",
    ),
    Bad(
        INP,
        "value",
        "integer mask holding 2",
        lambda: Inpainting(torch.full((8, 8), 2, dtype=torch.int64)),
        ValueError,
        r"mask must hold only 0 and 1 \(or be bool\), found 2",
    ),
    Bad(
        INP,
        "dtype",
        "complex mask",
        lambda: Inpainting(torch.ones(8, 8, dtype=torch.complex64)),
        TypeError,
        r"mask must be bool, floating or integer, not torch.complex64",
    ),
    Bad(
        INP,
        "type",
        "list mask",
        lambda: Inpainting([[1, 0], [0, 1]]),
        TypeError,
        r"mask must be a tensor or numpy array",
    ),
    Bad(
        INP,
        "rank",
        "[B, H, W] mask",
        lambda: Inpainting(torch.ones(2, 8, 8)),
        ValueError,
        r"mask must have shape \[H, W\] or \[B, 1, H, W\], got shape \(2, 8, 8\)",
    ),
    Bad(
        INP,
        "size",
        "empty mask",
        lambda: Inpainting(torch.ones(0, 8)),
        ValueError,
        r"mask must not be empty",
    ),
    Good(
        INP,
        "dtype",
        "float16 0/1 mask on float64 images",
        lambda: Inpainting(mask8().half())(x8(dtype=F64)),
        lambda: inpaint_oracle(mask8(), x8(dtype=F64)),
        0.0,
    ),
    Good(
        INP,
        "type",
        "numpy int mask",
        lambda: Inpainting(mask8().numpy().astype(np.int32))(x8(dtype=F64)),
        lambda: inpaint_oracle(mask8(), x8(dtype=F64)),
        0.0,
    ),
    Good(
        f"{INP}.forward",
        "layout",
        "channels_last x, per-image masks",
        lambda: Inpainting(torch.stack([mask8()[None], mask8(7)[None]]))(
            channels_last(rand(2, 3, 8, 8, dtype=F64))
        ),
        lambda: inpaint_oracle(
            torch.stack([mask8()[None], mask8(7)[None]]), rand(2, 3, 8, 8, dtype=F64)
        ),
        0.0,
    ),
    Good(
        f"{INP}.forward",
        "size",
        "1x1 image, 1x1 mask",
        lambda: Inpainting(torch.ones(1, 1))(torch.full((1, 2, 1, 1), 0.25, dtype=F64)),
        lambda: torch.full((1, 2, 1, 1), 0.25, dtype=F64),
        0.0,
    ),
    Bad(
        f"{INP}.forward",
        "mismatch",
        "mask 4x4, x 8x8",
        lambda: Inpainting(torch.ones(4, 4))(x8()),
        ValueError,
        r"mask has size 4x4 but x has size 8x8",
    ),
    Bad(
        f"{INP}.forward",
        "mismatch",
        "3 masks, batch of 2",
        lambda: Inpainting(torch.ones(3, 1, 8, 8))(x8()),
        ValueError,
        r"mask holds 3 masks but x has batch size 2",
    ),
    Bad(
        f"{INP}.forward",
        "dtype",
        "float16 x",
        lambda: Inpainting(mask8())(x8().half()),
        TypeError,
        r"x must have dtype float32, float64, not float16",
    ),
    Bad(
        f"{INP}.forward",
        "meta",
        "meta x",
        lambda: Inpainting(mask8())(torch.rand(1, 1, 8, 8, device="meta")),
        ValueError,
        r"x is on the meta device",
    ),
    Good(
        f"{INP}.adjoint",
        "layout",
        "non-contiguous coefficients",
        lambda: Inpainting(mask8()).adjoint(transposed(rand(1, 2, 8, 8, dtype=F64))),
        lambda: inpaint_oracle(mask8(), rand(1, 2, 8, 8, dtype=F64)),
        0.0,
    ),
    Bad(
        f"{INP}.adjoint",
        "size",
        "zero channels",
        lambda: Inpainting(mask8()).adjoint(rand(1, 0, 8, 8)),
        ValueError,
        r"c has a dimension of size 0",
    ),
    Bad(
        f"{INP}.adjoint",
        "dtype",
        "int coefficients",
        lambda: Inpainting(mask8()).adjoint(torch.ones(1, 1, 8, 8, dtype=torch.int64)),
        TypeError,
        r"c must have dtype float32, float64, not int64",
    ),
    Bad(
        f"{INP}.project",
        "rank",
        "3-d x",
        lambda: Inpainting(mask8()).project(rand(1, 8, 8)),
        ValueError,
        r"x must have shape \[B, C, H, W\]",
    ),
    Good(
        f"{INP}.prox_l2",
        "dtype",
        "float64: the per-pixel closed form",
        lambda: Inpainting(mask8()).prox_l2(
            x8(dtype=F64), inpaint_oracle(mask8(), x8(seed=2, dtype=F64)), 0.3
        ),
        lambda: (
            (x8(dtype=F64) + 0.3 * inpaint_oracle(mask8(), x8(seed=2, dtype=F64)))
            / (1 + 0.3 * mask8().double())
        ),
        1e-15,
    ),
    Bad(
        f"{INP}.prox_l2",
        "value",
        "negative gamma",
        lambda: Inpainting(mask8()).prox_l2(x8(), x8(seed=2), -1.0),
        ValueError,
        r"gamma must be > 0, got -1.0",
    ),
    Good(
        f"{INP}.fused_projection",
        "mismatch",
        "2 masks for 4 images (the sampler's realisations): mask b // 2",
        lambda: Inpainting(torch.stack([mask8()[None], mask8(7)[None]])).fused_projection(
            rand(4, 1, 8, 8, dtype=F64)
        )["mask"],
        lambda: torch.stack([mask8()[None], mask8(7)[None]]).double(),
        0.0,
    ),
    Bad(
        f"{INP}.fused_projection",
        "mismatch",
        "2 masks for 3 images",
        lambda: Inpainting(torch.stack([mask8()[None], mask8(7)[None]])).fused_projection(
            rand(3, 1, 8, 8)
        ),
        ValueError,
        r"mask holds 2 masks of size 8x8, but like has shape \(3, 1, 8, 8\)",
    ),
    Bad(
        f"{INP}.fused_projection",
        "dtype",
        "float16 like (was a silent float16 mask)",
        lambda: Inpainting(mask8()).fused_projection(x8().half()),
        TypeError,
        r"like must have dtype float32, float64, not float16",
    ),
    Bad(
        f"{INP}.prox_l2_normal",
        "type",
        "a float gamma (was AttributeError)",
        lambda: Inpainting(mask8()).prox_l2_normal(x8(), x8(seed=2), 1.0),
        TypeError,
        r"gamma must be a tensor of shape \(2,\) here, not float",
    ),
    Bad(
        f"{INP}.prox_l2_normal",
        "mismatch",
        "aty of 1 image for 2 (was a silent broadcast)",
        lambda: Inpainting(mask8()).prox_l2_normal(x8(), x8(seed=2)[:1], torch.ones(2)),
        ValueError,
        r"aty has shape \(1, 1, 8, 8\) but v has \(2, 1, 8, 8\)",
    ),
    Bad(
        f"{INP}.prox_l2_normal",
        "dtype",
        "float64 gamma with float32 v",
        lambda: Inpainting(mask8()).prox_l2_normal(x8(), x8(seed=2), torch.ones(2, dtype=F64)),
        TypeError,
        r"gamma has dtype torch.float64 but v has torch.float32",
    ),
    Good(
        f"{INP}.prox_l2_normal",
        "dtype",
        "float64: the per-pixel closed form from A^T y",
        lambda: Inpainting(mask8()).prox_l2_normal(
            x8(dtype=F64),
            inpaint_oracle(mask8(), x8(seed=2, dtype=F64)),
            torch.full((2,), 0.3, dtype=F64),
        ),
        lambda: (
            (x8(dtype=F64) + 0.3 * inpaint_oracle(mask8(), x8(seed=2, dtype=F64)))
            / (1 + 0.3 * mask8().double())
        ),
        1e-15,
    ),
    # random and block
    Bad(
        f"{INP}.random",
        "value",
        "missing rounds to every pixel (1x1, 0.6)",
        lambda: Inpainting.random((1, 1), 0.6),
        ValueError,
        r"missing=0.6 of a 1x1 image rounds to all 1 pixels missing",
    ),
    Bad(
        f"{INP}.random",
        "value",
        "missing 0.99 of 4x4",
        lambda: Inpainting.random((2, 4, 4), 0.99),
        ValueError,
        r"missing=0.99 of a 4x4 image rounds to all 16 pixels missing",
    ),
    Bad(
        f"{INP}.random",
        "value",
        "missing 1",
        lambda: Inpainting.random((8, 8), 1.0),
        ValueError,
        r"missing must be a finite number in \[0, 1\) \(a fraction\), not 1\.0",
    ),
    Bad(
        f"{INP}.random",
        "nan-inf",
        "missing NaN",
        lambda: Inpainting.random((8, 8), NAN),
        ValueError,
        r"missing must be a finite number in \[0, 1\) \(a fraction\), not nan",
    ),
    Bad(
        f"{INP}.random",
        "value",
        "seed 2**64",
        lambda: Inpainting.random((8, 8), 0.5, seed=2**64),
        ValueError,
        r"seed must be an int in \[0, 2\*\*63 - 1\], not 18446744073709551616",
    ),
    Bad(
        f"{INP}.random",
        "value",
        "negative seed",
        lambda: Inpainting.random((8, 8), 0.5, seed=-1),
        ValueError,
        r"seed must be an int in \[0, 2\*\*63 - 1\], not -1",
    ),
    Bad(
        f"{INP}.random",
        "type",
        "float seed",
        lambda: Inpainting.random((8, 8), 0.5, seed=1.0),
        TypeError,
        r"seed must be an int in \[0, 2\*\*63 - 1\], not float",
    ),
    Bad(
        f"{INP}.random",
        "size",
        "zero height",
        lambda: Inpainting.random((0, 8), 0.5),
        ValueError,
        r"shape\[0\] must be an int >= 1, not 0",
    ),
    Bad(
        f"{INP}.random",
        "rank",
        "shape of 4 sizes",
        lambda: Inpainting.random((1, 1, 8, 8), 0.5),
        ValueError,
        r"shape must be \(H, W\) or \(B, H, W\)",
    ),
    Good(
        f"{INP}.random",
        "size",
        "1x1 image, missing 0.4 rounds to none",
        lambda: Inpainting.random((1, 1), 0.4).mask.double(),
        lambda: torch.ones(1, 1, dtype=F64),
        0.0,
    ),
    Bad(
        f"{INP}.block",
        "value",
        "block covering the image",
        lambda: Inpainting.block(4, 4, 0, 0, 4, 4),
        ValueError,
        r"block of size 4x4 covers the whole 4x4 image",
    ),
    Bad(
        f"{INP}.block",
        "size",
        "block outside the image",
        lambda: Inpainting.block(4, 4, 2, 2, 3, 1),
        ValueError,
        r"block of size 3x1 at \(top=2, left=2\) does not fit in an image of size 4x4",
    ),
    Bad(
        f"{INP}.block",
        "type",
        "str top",
        lambda: Inpainting.block(4, 4, "0", 0, 1, 1),
        TypeError,
        r"top must be an int >= 0, not str '0'",
    ),
    Bad(
        f"{INP}.block",
        "value",
        "zero height",
        lambda: Inpainting.block(4, 4, 0, 0, 0, 1),
        ValueError,
        r"height must be an int >= 1, not 0",
    ),
    Good(
        f"{INP}.block",
        "size",
        "1x2 image, one pixel missing",
        lambda: Inpainting.block(1, 2, 0, 1, 1, 1).mask.double(),
        lambda: torch.tensor([[1.0, 0.0]], dtype=F64),
        0.0,
    ),
]

# -- BlockAverage ---------------------------------------------------------------------------------

BA = f"{OPS}.BlockAverage"
CASES += [
    Bad(
        BA,
        "value",
        "factor 0",
        lambda: BlockAverage(0),
        ValueError,
        r"factor must be an int >= 1, not 0",
    ),
    Bad(
        BA,
        "value",
        "factor -2",
        lambda: BlockAverage(-2),
        ValueError,
        r"factor must be an int >= 1, not -2",
    ),
    Bad(
        BA,
        "type",
        "float factor",
        lambda: BlockAverage(2.0),
        TypeError,
        r"factor must be an int >= 1, not float",
    ),
    Bad(
        BA,
        "type",
        "bool factor",
        lambda: BlockAverage(True),
        TypeError,
        r"factor must be an int >= 1, not bool",
    ),
    Bad(
        BA,
        "nan-inf",
        "factor inf",
        lambda: BlockAverage(INF),
        TypeError,
        r"factor must be an int >= 1, not float",
    ),
    Good(
        f"{BA}.forward",
        "layout",
        "channels_last float64: block sums / s",
        lambda: BlockAverage(2)(channels_last(rand(2, 3, 4, 6, dtype=F64))),
        lambda: apply_dense(block_sum_matrix(2, 4, 6), rand(2, 3, 4, 6, dtype=F64), (2, 3)),
        1e-15,
    ),
    Good(
        f"{BA}.forward",
        "size",
        "1x1 image, factor 1",
        lambda: BlockAverage(1)(torch.full((1, 1, 1, 1), 0.3, dtype=F64)),
        lambda: torch.full((1, 1, 1, 1), 0.3, dtype=F64),
        0.0,
    ),
    Good(
        f"{BA}.forward",
        "size",
        "factor as large as the image (one block)",
        lambda: BlockAverage(4)(rand(1, 1, 4, 4, dtype=F64)),
        lambda: rand(1, 1, 4, 4, dtype=F64).sum(dim=(2, 3), keepdim=True) / 4,
        1e-15,
    ),
    Bad(
        f"{BA}.forward",
        "size",
        "factor larger than the image",
        lambda: BlockAverage(16)(x8()),
        ValueError,
        r"x has size 8x8, which is not divisible by the factor 16",
    ),
    Bad(
        f"{BA}.forward",
        "dtype",
        "int x",
        lambda: BlockAverage(2)(torch.ones(1, 1, 4, 4, dtype=torch.int32)),
        TypeError,
        r"x must have dtype float32, float64, not int32",
    ),
    Bad(
        f"{BA}.forward",
        "meta",
        "meta x",
        lambda: BlockAverage(2)(torch.rand(1, 1, 4, 4, device="meta")),
        ValueError,
        r"x is on the meta device",
    ),
    Good(
        f"{BA}.adjoint",
        "layout",
        "non-contiguous float64 coefficients",
        lambda: BlockAverage(2).adjoint(transposed(rand(1, 2, 3, 4, dtype=F64))),
        lambda: apply_dense(block_sum_matrix(2, 6, 8).T, rand(1, 2, 3, 4, dtype=F64), (6, 8)),
        1e-15,
    ),
    Bad(
        f"{BA}.adjoint",
        "rank",
        "3-d coefficients",
        lambda: BlockAverage(2).adjoint(rand(2, 4, 4)),
        ValueError,
        r"c must have shape \[B, C, H, W\] \(4 dimensions\)",
    ),
    Bad(
        f"{BA}.adjoint",
        "size",
        "batch of size 0",
        lambda: BlockAverage(2).adjoint(rand(0, 1, 4, 4)),
        ValueError,
        r"c has a batch of size 0",
    ),
    Bad(
        f"{BA}.adjoint",
        "dtype",
        "complex coefficients",
        lambda: BlockAverage(2).adjoint(rand(1, 1, 4, 4).to(torch.complex64)),
        TypeError,
        r"c must have dtype float32, float64, not complex64",
    ),
    Good(
        f"{BA}.low_res",
        "dtype",
        "float64 block means",
        lambda: BlockAverage(2).low_res(rand(1, 1, 4, 4, dtype=F64)),
        lambda: apply_dense(block_sum_matrix(2, 4, 4) / 2, rand(1, 1, 4, 4, dtype=F64), (2, 2)),
        1e-15,
    ),
    Bad(
        f"{BA}.from_low_res",
        "type",
        "list lr",
        lambda: BlockAverage(2).from_low_res([[0.5]]),
        TypeError,
        r"lr must be a torch.Tensor",
    ),
    Good(
        f"{BA}.prox_l2",
        "dtype",
        "float64 against a dense solve",
        lambda: BlockAverage(2).prox_l2(
            rand(2, 1, 4, 6, dtype=F64), rand(2, 1, 2, 3, seed=2, dtype=F64), 1.5
        ),
        lambda: dense_prox(
            block_sum_matrix(2, 4, 6),
            rand(2, 1, 4, 6, dtype=F64),
            rand(2, 1, 2, 3, seed=2, dtype=F64),
            1.5,
        ),
        1e-14,
    ),
    Bad(
        f"{BA}.prox_l2",
        "mismatch",
        "y of the wrong size for v",
        lambda: BlockAverage(2).prox_l2(x8(), rand(2, 1, 3, 3), 1.0),
        ValueError,
        r"v has shape \(2, 1, 8, 8\) but the images measured by y \(shape \(2, 1, 3, 3\)\) "
        r"have shape \(2, 1, 6, 6\)",
    ),
]

# -- CompressiveSensing ---------------------------------------------------------------------------

CS = f"{OPS}.CompressiveSensing"


def cs_fast_oracle(A: CompressiveSensing, x: torch.Tensor) -> torch.Tensor:
    """M^T x = S T D x from the definition: random signs, orthonormal 2-D DCT-II (SciPy), pick."""
    import scipy.fft

    X = scipy.fft.dctn(x.double().numpy() * A.signs.numpy(), axes=(-2, -1), norm="ortho")
    return torch.from_numpy(X.reshape(*X.shape[:2], -1)[..., A.selected.numpy()])


def cs_built(method: str, shape=(6, 6), ratio=0.25) -> CompressiveSensing:
    return CompressiveSensing(ratio, seed=3, shape=shape, method=method)


CASES += [
    Bad(
        CS,
        "value",
        "ratio 0",
        lambda: CompressiveSensing(0),
        ValueError,
        r"ratio must be a finite number in \(0, 1\], not 0",
    ),
    Bad(
        CS,
        "value",
        "ratio 1.5",
        lambda: CompressiveSensing(1.5),
        ValueError,
        r"ratio must be a finite number in \(0, 1\], not 1\.5",
    ),
    Bad(
        CS,
        "value",
        "negative ratio",
        lambda: CompressiveSensing(-0.1),
        ValueError,
        r"ratio must be a finite number in \(0, 1\], not -0\.1",
    ),
    Bad(
        CS,
        "nan-inf",
        "ratio NaN",
        lambda: CompressiveSensing(NAN),
        ValueError,
        r"ratio must be a finite number in \(0, 1\], not nan",
    ),
    Bad(
        CS,
        "nan-inf",
        "ratio inf",
        lambda: CompressiveSensing(INF),
        ValueError,
        r"ratio must be a finite number in \(0, 1\], not inf",
    ),
    Bad(
        CS,
        "type",
        "str ratio",
        lambda: CompressiveSensing("0.5"),
        TypeError,
        r"ratio must be a finite number in \(0, 1\], not str '0\.5'",
    ),
    Bad(
        CS,
        "type",
        "tensor ratio",
        lambda: CompressiveSensing(torch.tensor(0.5)),
        TypeError,
        r"ratio must be a finite number in \(0, 1\], not Tensor tensor\(0\.5000\)",
    ),
    Bad(
        CS,
        "value",
        "seed 2**63",
        lambda: CompressiveSensing(0.5, seed=2**63),
        ValueError,
        r"seed must be an int in \[0, 2\*\*63 - 1\], not 9223372036854775808",
    ),
    Bad(
        CS,
        "value",
        "negative seed",
        lambda: CompressiveSensing(0.5, seed=-1),
        ValueError,
        r"seed must be an int in \[0, 2\*\*63 - 1\], not -1",
    ),
    Bad(
        CS,
        "type",
        "float seed",
        lambda: CompressiveSensing(0.5, seed=0.0),
        TypeError,
        r"seed must be an int in \[0, 2\*\*63 - 1\], not float",
    ),
    Bad(
        CS,
        "name",
        "unknown method",
        lambda: CompressiveSensing(0.5, method="qr"),
        ValueError,
        r'method must be "fast", "dense" or "auto", got \'qr\'',
    ),
    Bad(
        CS,
        "name",
        "method in capitals",
        lambda: CompressiveSensing(0.5, method="FAST"),
        ValueError,
        r"method must be .* got 'FAST'",
    ),
    Bad(
        CS,
        "type",
        "method None",
        lambda: CompressiveSensing(0.5, method=None),
        TypeError,
        r'method must be "fast", "dense" or "auto" \(a str\), not NoneType',
    ),
    Bad(
        CS,
        "size",
        "zero height",
        lambda: CompressiveSensing(0.5, shape=(0, 8)),
        ValueError,
        r"shape\[0\] must be an int >= 1, not 0",
    ),
    Bad(
        CS,
        "rank",
        "shape of 3 sizes",
        lambda: CompressiveSensing(0.5, shape=(8, 8, 8)),
        ValueError,
        r"shape must be None or a pair \(H, W\)",
    ),
    Bad(
        CS,
        "type",
        "float sizes",
        lambda: CompressiveSensing(0.5, shape=(8.0, 8)),
        TypeError,
        r"shape\[0\] must be an int >= 1, not float 8\.0",
    ),
    Good(
        CS,
        "type",
        "numpy int64 seed draws what the int seed draws",
        lambda: CompressiveSensing(0.25, seed=np.int64(3), shape=(6, 6), method="dense").matrix,
        lambda: cs_built("dense").matrix,
        0.0,
    ),
    Bad(
        CS,
        "size",
        "dense on 300x300",
        lambda: CompressiveSensing(0.1, shape=(300, 300), method="dense"),
        ValueError,
        r'method="dense" supports images of at most 65536 pixels, .* use method="fast"',
    ),
    Good(
        f"{CS}.forward",
        "layout",
        "dense, channels_last float64",
        lambda: cs_built("dense")(channels_last(rand(2, 3, 6, 6, dtype=F64))),
        lambda: rand(2, 3, 6, 6, dtype=F64).flatten(2) @ cs_built("dense").matrix,
        1e-14,
    ),
    Good(
        f"{CS}.forward",
        "layout",
        "fast, non-contiguous float64 (SciPy DCT)",
        lambda: cs_built("fast", (6, 8))(transposed(rand(1, 2, 6, 8, dtype=F64))),
        lambda: cs_fast_oracle(cs_built("fast", (6, 8)), rand(1, 2, 6, 8, dtype=F64)),
        1e-14,
    ),
    Good(
        f"{CS}.forward",
        "dtype",
        "fast, float32 against the float64 oracle",
        lambda: cs_built("fast", (5, 7), 0.5)(rand(1, 1, 5, 7)),
        lambda: cs_fast_oracle(cs_built("fast", (5, 7), 0.5), rand(1, 1, 5, 7)),
        1e-6,
    ),
    Good(
        f"{CS}.forward",
        "size",
        "1x1 image: one coefficient of the same magnitude",
        lambda: cs_built("fast", (1, 1), 0.5)(torch.full((1, 1, 1, 1), 0.7, dtype=F64)).abs(),
        lambda: torch.full((1, 1, 1), 0.7, dtype=F64),
        1e-15,
    ),
    Bad(
        f"{CS}.forward",
        "mismatch",
        "image of another size than shape=",
        lambda: cs_built("dense", (4, 4))(x8()),
        ValueError,
        r"x has size 8x8 but this CompressiveSensing is built for 4x4 \(from shape=\)",
    ),
    Bad(
        f"{CS}.forward",
        "dtype",
        "float16 x",
        lambda: CompressiveSensing(0.5)(x8().half()),
        TypeError,
        r"x must have dtype float32, float64, not float16",
    ),
    Bad(
        f"{CS}.forward",
        "size",
        "batch of size 0",
        lambda: CompressiveSensing(0.5)(rand(0, 1, 8, 8)),
        ValueError,
        r"x has a batch of size 0",
    ),
    Good(
        f"{CS}.adjoint",
        "layout",
        "dense, non-contiguous coefficients: dot-product identity",
        lambda: dot_adjoint_gap(
            cs_built("dense"),
            rand(2, 1, 6, 6, dtype=F64),
            rand(2, 9, 1, seed=5, dtype=F64).transpose(1, 2),
        ),
        lambda: 0.0,
        1e-13,
    ),
    Bad(
        f"{CS}.adjoint",
        "size",
        "batch of size 0 (was a silent empty image)",
        lambda: cs_built("dense").adjoint(rand(0, 1, 9)),
        ValueError,
        r"c has a dimension of size 0 \(shape \(0, 1, 9\)\)",
    ),
    Bad(
        f"{CS}.adjoint",
        "meta",
        "meta coefficients (was a silent meta image)",
        lambda: cs_built("fast").adjoint(torch.rand(1, 1, 9, device="meta")),
        ValueError,
        r"c is on the meta device",
    ),
    Bad(
        f"{CS}.adjoint",
        "mismatch",
        "wrong number of coefficients",
        lambda: cs_built("dense").adjoint(rand(1, 1, 8)),
        ValueError,
        r"c must have shape \[B, C, 9\], got shape \(1, 1, 8\)",
    ),
    Bad(
        f"{CS}.adjoint",
        "rank",
        "image instead of coefficients",
        lambda: cs_built("dense").adjoint(rand(1, 1, 6, 6)),
        ValueError,
        r"c must have shape \[B, C, 9\], got shape \(1, 1, 6, 6\)",
    ),
    Bad(
        f"{CS}.adjoint",
        "dtype",
        "bfloat16 coefficients",
        lambda: cs_built("dense").adjoint(rand(1, 1, 9).bfloat16()),
        TypeError,
        r"c must have dtype float32 or float64, not bfloat16",
    ),
    Bad(
        f"{CS}.adjoint",
        "size",
        "size not known yet",
        lambda: CompressiveSensing(0.25).adjoint(rand(1, 1, 9)),
        ValueError,
        r"the image size is not known yet: pass shape=\(H, W\) to CompressiveSensing",
    ),
    Good(
        f"{CS}.prox_l2",
        "dtype",
        "dense float64 against a dense solve",
        lambda: cs_built("dense").prox_l2(
            rand(1, 2, 6, 6, dtype=F64), rand(1, 2, 9, seed=2, dtype=F64), 0.8
        ),
        lambda: dense_prox(
            cs_built("dense").matrix.T.numpy(),
            rand(1, 2, 6, 6, dtype=F64),
            rand(1, 2, 9, seed=2, dtype=F64),
            0.8,
        ),
        1e-13,
    ),
    Bad(
        f"{CS}.prox_l2",
        "nan-inf",
        "NaN coefficients",
        lambda: cs_built("dense").prox_l2(rand(1, 1, 6, 6), torch.full((1, 1, 9), NAN), 1.0),
        ValueError,
        r"y contains NaN or Inf",
    ),
]

# -- SpectralLowpass ------------------------------------------------------------------------------

SL = f"{OPS}.SpectralLowpass"


def lowpass_oracle(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    X = np.fft.fft2(x.double().numpy()) * mask.numpy()
    return torch.from_numpy(np.fft.ifft2(X).real)


def sl_built(shape=(6, 8), fraction=0.3) -> SpectralLowpass:
    return SpectralLowpass(fraction, shape=shape)


CASES += [
    Bad(
        SL,
        "value",
        "fraction 0",
        lambda: SpectralLowpass(0),
        ValueError,
        r"fraction must be a finite number in \(0, 1\], not 0",
    ),
    Bad(
        SL,
        "value",
        "fraction 2",
        lambda: SpectralLowpass(2),
        ValueError,
        r"fraction must be a finite number in \(0, 1\], not 2",
    ),
    Bad(
        SL,
        "nan-inf",
        "fraction NaN",
        lambda: SpectralLowpass(NAN),
        ValueError,
        r"fraction must be a finite number in \(0, 1\], not nan",
    ),
    Bad(
        SL,
        "nan-inf",
        "fraction -inf",
        lambda: SpectralLowpass(-INF),
        ValueError,
        r"fraction must be a finite number in \(0, 1\], not -inf",
    ),
    Bad(
        SL,
        "type",
        "str fraction",
        lambda: SpectralLowpass("0.1"),
        TypeError,
        r"fraction must be a finite number in \(0, 1\], not str '0\.1'",
    ),
    Bad(
        SL,
        "size",
        "negative width",
        lambda: SpectralLowpass(0.1, shape=(8, -8)),
        ValueError,
        r"shape\[1\] must be an int >= 1, not -8",
    ),
    Good(
        f"{SL}.project",
        "layout",
        "channels_last float64 against a NumPy FFT",
        lambda: sl_built().project(channels_last(rand(1, 3, 6, 8, dtype=F64))),
        lambda: lowpass_oracle(sl_built().mask, rand(1, 3, 6, 8, dtype=F64)),
        1e-14,
    ),
    Good(
        f"{SL}.forward",
        "layout",
        "non-contiguous: lift(measure(x)) is the NumPy low-pass",
        lambda: sl_built((5, 7)).adjoint(sl_built((5, 7))(transposed(rand(2, 1, 5, 7, dtype=F64)))),
        lambda: lowpass_oracle(sl_built((5, 7)).mask, rand(2, 1, 5, 7, dtype=F64)),
        1e-14,
    ),
    Good(
        f"{SL}.forward",
        "size",
        "1x1 image: the pixel itself",
        lambda: SpectralLowpass(0.5)(torch.full((1, 1, 1, 1), -0.4, dtype=F64)),
        lambda: torch.full((1, 1, 1), -0.4, dtype=F64),
        1e-15,
    ),
    Bad(
        f"{SL}.forward",
        "meta",
        "meta x",
        lambda: SpectralLowpass(0.5)(torch.rand(1, 1, 8, 8, device="meta")),
        ValueError,
        r"x is on the meta device",
    ),
    Bad(
        f"{SL}.forward",
        "mismatch",
        "another size than the first image",
        lambda: (lambda A: (A(rand(1, 1, 8, 8)), A(rand(1, 1, 6, 6))))(SpectralLowpass(0.5)),
        ValueError,
        r"x has size 6x6 but this SpectralLowpass is built for 8x8 \(from the first image \(x\)\)",
    ),
    Bad(
        f"{SL}.adjoint",
        "size",
        "batch of size 0 (was an MKL FFT error)",
        lambda: sl_built().adjoint(rand(0, 1, sl_built().kept)),
        ValueError,
        r"c has a dimension of size 0",
    ),
    Bad(
        f"{SL}.adjoint",
        "meta",
        "meta coefficients (was a silent meta image)",
        lambda: sl_built().adjoint(torch.rand(1, 1, sl_built().kept, device="meta")),
        ValueError,
        r"c is on the meta device",
    ),
    Bad(
        f"{SL}.adjoint",
        "type",
        "numpy coefficients",
        lambda: sl_built().adjoint(np.zeros((1, 1, sl_built().kept))),
        TypeError,
        r"c must be a torch.Tensor of shape \[B, C, \d+\], not ndarray",
    ),
    Bad(
        f"{SL}.adjoint",
        "dtype",
        "complex coefficients",
        lambda: sl_built().adjoint(torch.ones(1, 1, sl_built().kept, dtype=torch.complex64)),
        TypeError,
        r"c must have dtype float32 or float64, not complex64",
    ),
    Bad(
        f"{SL}.adjoint",
        "rank",
        "coefficients without channels",
        lambda: sl_built().adjoint(torch.ones(1, sl_built().kept)),
        ValueError,
        r"c must have shape \[B, C, \d+\], got shape \(1, \d+\)",
    ),
    Bad(
        f"{SL}.project",
        "size",
        "zero width",
        lambda: SpectralLowpass(0.5).project(rand(1, 1, 8, 0)),
        ValueError,
        r"x has a dimension of size 0",
    ),
]

# -- batched_cg -----------------------------------------------------------------------------------

CG = f"{OPS}.batched_cg"


def spd(n=6, seed=8) -> torch.Tensor:
    """A symmetric positive-definite [n, n] float64 matrix."""
    G = rand(n, n, seed=seed, dtype=F64)
    return G @ G.T + n * torch.eye(n, dtype=F64)


def spd_apply(v: torch.Tensor) -> torch.Tensor:
    return (v.flatten(1) @ spd()).view_as(v)


def cg(**kw):
    args = {
        "apply": spd_apply,
        "rhs": rand(2, 1, 2, 3, dtype=F64),
        "x0": torch.zeros(2, 1, 2, 3, dtype=F64),
        "max_iter": 20,
        "tol": 0.0,
    }
    args.update(kw)
    return batched_cg(args.pop("apply"), args.pop("rhs"), args.pop("x0"), **args)


CASES += [
    Good(
        CG,
        "dtype",
        "float64 against numpy.linalg.solve",
        lambda: cg(),
        lambda: torch.from_numpy(
            np.linalg.solve(spd().numpy(), rand(2, 1, 2, 3, dtype=F64).flatten(1).numpy().T).T
        ).view(2, 1, 2, 3),
        1e-12,
    ),
    Good(
        CG,
        "layout",
        "non-contiguous rhs and x0",
        lambda: cg(
            rhs=transposed(rand(2, 1, 2, 3, dtype=F64)),
            x0=transposed(torch.ones(2, 1, 2, 3, dtype=F64)),
        ),
        lambda: torch.from_numpy(
            np.linalg.solve(spd().numpy(), rand(2, 1, 2, 3, dtype=F64).flatten(1).numpy().T).T
        ).view(2, 1, 2, 3),
        1e-12,
    ),
    Good(
        CG,
        "size",
        "one unknown per image: one step solves it",
        lambda: batched_cg(
            lambda v: 4 * v,
            torch.tensor([[2.0], [-1.0]], dtype=F64),
            torch.zeros(2, 1, dtype=F64),
            max_iter=1,
            tol=0.0,
        ),
        lambda: torch.tensor([[0.5], [-0.25]], dtype=F64),
        1e-15,
    ),
    Bad(
        CG,
        "value",
        "max_iter 10**6",
        lambda: cg(max_iter=10**6),
        ValueError,
        r"max_iter must be an int in \[1, 10000\]",
    ),
    Bad(
        CG,
        "value",
        "max_iter 0",
        lambda: cg(max_iter=0),
        ValueError,
        r"max_iter must be an int in \[1, 10000\] \(conjugate-gradient steps\), not 0",
    ),
    Bad(
        CG,
        "type",
        "float max_iter",
        lambda: cg(max_iter=2.5),
        TypeError,
        r"max_iter must be an int in \[1, 10000\] \(conjugate-gradient steps\), not float 2\.5",
    ),
    Bad(
        CG,
        "nan-inf",
        "tol inf",
        lambda: cg(tol=INF),
        ValueError,
        r"tol must be a finite number in \[0, 1\) \(a residual relative to the right-hand side\), not inf",
    ),
    Bad(
        CG,
        "value",
        "negative tol",
        lambda: cg(tol=-1e-6),
        ValueError,
        r"tol must be a finite number in \[0, 1\) \(a residual relative to the right-hand side\), not",
    ),
    Bad(
        CG,
        "value",
        "tol 1",
        lambda: cg(tol=1.0),
        ValueError,
        r"tol must be a finite number in \[0, 1\) \(a residual relative to the right-hand side\), not",
    ),
    Bad(
        CG,
        "type",
        "apply not callable",
        lambda: cg(apply=spd()),
        TypeError,
        r"apply must be a callable",
    ),
    Bad(
        CG,
        "type",
        "list rhs",
        lambda: cg(rhs=[1.0, 2.0]),
        TypeError,
        r"rhs must be a torch.Tensor \[B, \.\.\.\], not list",
    ),
    Bad(
        CG,
        "mismatch",
        "x0 of another batch",
        lambda: cg(x0=torch.zeros(1, 1, 2, 3, dtype=F64)),
        ValueError,
        r"x0 has shape \(1, 1, 2, 3\) but rhs has \(2, 1, 2, 3\)",
    ),
    Bad(
        CG,
        "dtype",
        "float32 x0, float64 rhs",
        lambda: cg(x0=torch.zeros(2, 1, 2, 3)),
        TypeError,
        r"x0 has dtype torch.float32 but rhs has torch.float64",
    ),
    Bad(
        CG,
        "dtype",
        "int rhs",
        lambda: cg(rhs=torch.ones(2, 1, 2, 3, dtype=torch.int64)),
        TypeError,
        r"rhs must be floating point, not torch.int64",
    ),
    Bad(
        CG,
        "dtype",
        "complex rhs",
        lambda: cg(rhs=torch.ones(2, 1, 2, 3, dtype=torch.complex128)),
        TypeError,
        r"rhs must be floating point, not torch.complex128",
    ),
    Bad(
        CG,
        "rank",
        "0-d rhs",
        lambda: cg(rhs=torch.tensor(1.0, dtype=F64)),
        ValueError,
        r"rhs must have a batch dimension",
    ),
    Bad(
        CG,
        "size",
        "empty batch",
        lambda: cg(rhs=rand(0, 1, 2, 3, dtype=F64)),
        ValueError,
        r"rhs has a batch of size 0",
    ),
    Bad(
        CG,
        "meta",
        "meta x0",
        lambda: cg(x0=torch.zeros(2, 1, 2, 3, dtype=F64, device="meta")),
        ValueError,
        r"x0 is on the meta device",
    ),
    Bad(
        CG,
        "mismatch",
        "apply drops the batch",
        lambda: cg(apply=lambda v: spd_apply(v)[:1]),
        ValueError,
        r"apply must return a tensor of x0's shape \(2, 1, 2, 3\), got \(1, 1, 2, 3\)",
    ),
    Bad(
        CG,
        "dtype",
        "apply returns float32",
        lambda: cg(apply=lambda v: spd_apply(v).float()),
        TypeError,
        r"apply must return a torch.float64 tensor \(the dtype of x0\), got torch.float32",
    ),
]

# -- L2 -------------------------------------------------------------------------------------------

L2 = "pnpfast.L2"


class DenseOperator(pnpfast.operators.LinearOperator):
    """A x = G x per plane for a dense G: no closed-form prox, so L2 takes conjugate gradients."""

    def __init__(self, G: torch.Tensor, H: int, W: int):
        self.G, self.H, self.W = G, H, W

    def forward(self, x):
        return (x.flatten(2) @ self.G.T.to(x.dtype)).view_as(x)

    def adjoint(self, y):
        return (y.flatten(2) @ self.G.to(y.dtype)).view_as(y)


def dense_op() -> DenseOperator:
    return DenseOperator(rand(12, 12, seed=9, dtype=F64) - 0.5, 3, 4)


def blur_l2(dtype=F64, **kw) -> pnpfast.L2:
    return pnpfast.L2(Blur(kern(dtype=dtype)), rand(2, 1, 5, 6, seed=2, dtype=dtype), **kw)


BLUR56 = lambda: blur_matrix(kern(dtype=F64).numpy(), 5, 6)  # noqa: E731
Y56 = lambda: rand(2, 1, 5, 6, seed=2, dtype=F64)  # noqa: E731
V56 = lambda: rand(2, 1, 5, 6, dtype=F64)  # noqa: E731


def dense_grad(A: np.ndarray, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r = x.double().numpy().reshape(*x.shape[:2], -1) @ A.T - y.double().numpy().reshape(
        *y.shape[:2], -1
    )
    return torch.from_numpy((r @ A).reshape(x.shape))


CASES += [
    Bad(
        L2,
        "value",
        "cg_max_iter 10**9",
        lambda: blur_l2(cg_max_iter=10**9),
        ValueError,
        r"cg_max_iter must be an int in \[1, 10000\] \(conjugate-gradient steps\), not 1000000000",
    ),
    Bad(
        L2,
        "value",
        "cg_max_iter 0",
        lambda: blur_l2(cg_max_iter=0),
        ValueError,
        r"cg_max_iter must be an int in \[1, 10000\]",
    ),
    Bad(
        L2,
        "value",
        "negative cg_max_iter",
        lambda: blur_l2(cg_max_iter=-1),
        ValueError,
        r"cg_max_iter must be an int in \[1, 10000\] \(conjugate-gradient steps\), not -1",
    ),
    Bad(
        L2,
        "type",
        "float cg_max_iter",
        lambda: blur_l2(cg_max_iter=100.0),
        TypeError,
        r"cg_max_iter must be an int in \[1, 10000\] \(conjugate-gradient steps\), not float 100\.0",
    ),
    Bad(
        L2,
        "type",
        "bool cg_max_iter",
        lambda: blur_l2(cg_max_iter=True),
        TypeError,
        r"cg_max_iter must be an int .*not bool",
    ),
    Bad(
        L2,
        "nan-inf",
        "cg_tol NaN",
        lambda: blur_l2(cg_tol=NAN),
        ValueError,
        r"cg_tol must be a finite number in \[0, 1\) \(a residual relative to the right-hand side\), not nan",
    ),
    Bad(
        L2,
        "value",
        "negative cg_tol",
        lambda: blur_l2(cg_tol=-1e-3),
        ValueError,
        r"cg_tol must be a finite number in \[0, 1\) \(a residual relative to the right-hand side\), not -0\.001",
    ),
    Bad(
        L2,
        "type",
        "str cg_tol",
        lambda: blur_l2(cg_tol="1e-6"),
        TypeError,
        r"cg_tol must be a finite number in \[0, 1\) \(a residual relative to the right-hand side\), not str '1e-6'",
    ),
    Bad(
        L2,
        "type",
        "operator given as a str",
        lambda: pnpfast.L2("blur", x8()),
        TypeError,
        r"operator must be a pnpfast LinearOperator, not str",
    ),
    Bad(
        L2,
        "type",
        "a bare function as operator",
        lambda: pnpfast.L2(lambda x: x, x8()),
        TypeError,
        r"operator must be a pnpfast LinearOperator, not function",
    ),
    Bad(
        L2,
        "type",
        "numpy y",
        lambda: pnpfast.L2(Blur(K3()), np.ones((1, 1, 8, 8))),
        TypeError,
        r"y must be a torch.Tensor \(a measurement\), not ndarray",
    ),
    Bad(
        L2,
        "nan-inf",
        "Inf in y",
        lambda: pnpfast.L2(Blur(K3()), torch.full((1, 1, 8, 8), INF)),
        ValueError,
        r"y contains NaN or Inf",
    ),
    Bad(
        L2,
        "mismatch",
        "3 kernels, y of 2 images",
        lambda: pnpfast.L2(Blur(torch.stack([K3()] * 3)), x8()),
        ValueError,
        r"y is not a measurement of this Blur: kernel holds 3 kernels but y has batch size 2",
    ),
    Bad(
        L2,
        "size",
        "kernel larger than y",
        lambda: pnpfast.L2(Blur(torch.ones(9, 9)), x8()),
        ValueError,
        r"y is not a measurement of this Blur: kernel of size 9x9 is larger than y",
    ),
    Bad(
        L2,
        "size",
        "y with zero channels",
        lambda: pnpfast.L2(Blur(K3()), rand(1, 0, 8, 8)),
        ValueError,
        r"y is not a measurement of this Blur: y has a dimension of size 0",
    ),
    Bad(
        L2,
        "meta",
        "meta coefficients",
        lambda: pnpfast.L2(cs_built("dense"), torch.rand(1, 1, 9, device="meta")),
        ValueError,
        r"y is not a measurement of this CompressiveSensing: y is on the meta device",
    ),
    Bad(
        L2,
        "dtype",
        "bfloat16 y",
        lambda: pnpfast.L2(Inpainting(mask8()), x8().bfloat16()),
        TypeError,
        r"y is not a measurement of this Inpainting: y must have dtype float32, float64, not bfloat16",
    ),
    Bad(
        L2,
        "dtype",
        "complex y",
        lambda: pnpfast.L2(BlockAverage(2), x8().to(torch.complex64)),
        TypeError,
        r"y is not a measurement of this BlockAverage: y must have dtype .*not complex64",
    ),
    Bad(
        L2,
        "rank",
        "3-d y",
        lambda: pnpfast.L2(Blur(K3()), rand(1, 8, 8)),
        ValueError,
        r"y is not a measurement of this Blur: y must have shape \[B, C, H, W\]",
    ),
    Bad(
        L2,
        "nan-inf",
        "kernel of 1e19s: |K^|^2 overflows float32",
        lambda: pnpfast.L2(Blur(torch.full((3, 3), 1e19)), x8()),
        ValueError,
        r"operator Blur: its Fourier multiplier squared \(\|K\^\|\^2\) or conj\(K\^\) Y\^ "
        r"overflows torch.float32",
    ),
    Good(
        f"{L2}.prox",
        "dtype",
        "Blur float64 against a dense solve",
        lambda: blur_l2().prox(V56(), 0.6),
        lambda: dense_prox(BLUR56(), V56(), Y56(), 0.6),
        1e-12,
    ),
    Good(
        f"{L2}.prox",
        "layout",
        "Blur, non-contiguous v, per-image gamma",
        lambda: blur_l2().prox(transposed(V56()), torch.tensor([0.6, 0.6], dtype=F64)),
        lambda: dense_prox(BLUR56(), V56(), Y56(), 0.6),
        1e-12,
    ),
    Good(
        f"{L2}.prox",
        "dtype",
        "Blur float32, triton backend (interpreter)",
        lambda: blur_l2(torch.float32).prox(rand(2, 1, 5, 6), 0.6, backend="triton"),
        lambda: dense_prox(
            blur_matrix(kern().double().numpy(), 5, 6),
            rand(2, 1, 5, 6),
            rand(2, 1, 5, 6, seed=2),
            0.6,
        ),
        1e-5,
    ),
    Good(
        f"{L2}.prox",
        "value",
        "CG path at cg_max_iter=10000 (the bound) against a dense solve",
        lambda: pnpfast.L2(
            dense_op(), rand(1, 1, 3, 4, seed=2, dtype=F64), cg_max_iter=10_000, cg_tol=1e-13
        ).prox(rand(1, 1, 3, 4, dtype=F64), 2.0),
        lambda: dense_prox(
            dense_op().G.numpy(),
            rand(1, 1, 3, 4, dtype=F64),
            rand(1, 1, 3, 4, seed=2, dtype=F64),
            2.0,
        ),
        1e-10,
    ),
    Good(
        f"{L2}.prox",
        "size",
        "BlockAverage on 1x1 images, factor 1",
        lambda: pnpfast.L2(BlockAverage(1), torch.full((1, 1, 1, 1), 0.5, dtype=F64)).prox(
            torch.zeros(1, 1, 1, 1, dtype=F64), 3.0
        ),
        lambda: torch.full((1, 1, 1, 1), 3.0 * 0.5 / 4.0, dtype=F64),
        1e-15,
    ),
    Bad(
        f"{L2}.prox",
        "value",
        "gamma inf",
        lambda: blur_l2().prox(V56(), INF),
        ValueError,
        r"gamma must be finite, got inf",
    ),
    Bad(
        f"{L2}.prox",
        "value",
        "negative gamma tensor",
        lambda: blur_l2().prox(V56(), torch.tensor([1.0, -1.0])),
        ValueError,
        r"gamma must be > 0, got -1.0",
    ),
    Bad(
        f"{L2}.prox",
        "meta",
        "meta gamma",
        lambda: blur_l2().prox(V56(), torch.ones(2, device="meta")),
        ValueError,
        r"gamma is on the meta device",
    ),
    Bad(
        f"{L2}.prox",
        "nan-inf",
        "NaN in v",
        lambda: blur_l2().prox(torch.full((2, 1, 5, 6), NAN, dtype=F64), 1.0),
        ValueError,
        r"v contains NaN or Inf",
    ),
    Bad(
        f"{L2}.prox",
        "mismatch",
        "v of 1 image, y of 2",
        lambda: blur_l2().prox(V56()[:1], 1.0),
        ValueError,
        r"v has shape \(1, 1, 5, 6\) but the images measured by y",
    ),
    Bad(
        f"{L2}.prox",
        "dtype",
        "float32 v, float64 y",
        lambda: blur_l2().prox(V56().float(), 1.0),
        TypeError,
        r"v has dtype torch.float32 but y has torch.float64",
    ),
    Bad(
        f"{L2}.prox",
        "meta",
        "meta v",
        lambda: blur_l2().prox(torch.rand(2, 1, 5, 6, device="meta", dtype=F64), 1.0),
        ValueError,
        r"v is on the meta device",
    ),
    Bad(
        f"{L2}.prox",
        "name",
        "unknown backend",
        lambda: blur_l2().prox(V56(), 1.0, backend="Triton"),
        ValueError,
        r"backend must be one of cuda, triton, reference, not 'Triton'",
    ),
    Good(
        f"{L2}.grad",
        "dtype",
        "BlockAverage float64: A^T (A x - y) from the dense matrix",
        lambda: pnpfast.L2(BlockAverage(2), rand(1, 2, 2, 3, seed=2, dtype=F64)).grad(
            channels_last(rand(1, 2, 4, 6, dtype=F64))
        ),
        lambda: dense_grad(
            block_sum_matrix(2, 4, 6),
            rand(1, 2, 4, 6, dtype=F64),
            rand(1, 2, 2, 3, seed=2, dtype=F64),
        ),
        1e-14,
    ),
    Good(
        f"{L2}.grad",
        "layout",
        "Blur, channels_last x",
        lambda: pnpfast.L2(Blur(kern(dtype=F64)), rand(1, 3, 5, 6, seed=2, dtype=F64)).grad(
            channels_last(rand(1, 3, 5, 6, dtype=F64))
        ),
        lambda: dense_grad(
            BLUR56(), rand(1, 3, 5, 6, dtype=F64), rand(1, 3, 5, 6, seed=2, dtype=F64)
        ),
        1e-12,
    ),
    Bad(
        f"{L2}.grad",
        "type",
        "list x",
        lambda: blur_l2().grad([0.0]),
        TypeError,
        r"x must be a torch.Tensor",
    ),
    Bad(
        f"{L2}.grad",
        "nan-inf",
        "Inf in x",
        lambda: blur_l2().grad(torch.full((2, 1, 5, 6), INF, dtype=F64)),
        ValueError,
        r"x contains NaN or Inf",
    ),
    Good(
        f"{L2}.grad_step",
        "dtype",
        "CompressiveSensing dense float64",
        lambda: pnpfast.L2(cs_built("dense"), rand(1, 1, 9, seed=2, dtype=F64)).grad_step(
            rand(1, 1, 6, 6, dtype=F64), 0.5
        ),
        lambda: (
            rand(1, 1, 6, 6, dtype=F64)
            - 0.5
            * dense_grad(
                cs_built("dense").matrix.T.numpy(),
                rand(1, 1, 6, 6, dtype=F64),
                rand(1, 1, 9, seed=2, dtype=F64),
            )
        ),
        1e-14,
    ),
    Good(
        f"{L2}.grad_step",
        "dtype",
        "Blur float32, triton backend (interpreter)",
        lambda: blur_l2(torch.float32).grad_step(rand(2, 1, 5, 6), 0.9, backend="triton"),
        lambda: (
            rand(2, 1, 5, 6).double()
            - 0.9
            * dense_grad(
                blur_matrix(kern().double().numpy(), 5, 6),
                rand(2, 1, 5, 6),
                rand(2, 1, 5, 6, seed=2),
            )
        ),
        1e-5,
    ),
    Bad(
        f"{L2}.grad_step",
        "value",
        "tau 0",
        lambda: blur_l2().grad_step(V56(), 0.0),
        ValueError,
        r"tau must be > 0, got 0.0",
    ),
    Bad(
        f"{L2}.grad_step",
        "nan-inf",
        "tau inf",
        lambda: blur_l2().grad_step(V56(), INF),
        ValueError,
        r"tau must be finite, got inf",
    ),
    Bad(
        f"{L2}.grad_step",
        "type",
        "None tau",
        lambda: blur_l2().grad_step(V56(), None),
        TypeError,
        r"tau must be a float or a tensor of length 2, not NoneType",
    ),
    Good(
        f"{L2}.value",
        "dtype",
        "Blur float64: 1/2 ||A x - y||^2 per image",
        lambda: blur_l2().value(V56()),
        lambda: torch.from_numpy(
            0.5
            * ((V56().numpy().reshape(2, -1) @ BLUR56().T - Y56().numpy().reshape(2, -1)) ** 2).sum(
                1
            )
        ),
        1e-12,
    ),
    Bad(
        f"{L2}.value",
        "mismatch",
        "x of 1 image, y of 2 (was a silent broadcast)",
        lambda: blur_l2().value(V56()[:1]),
        ValueError,
        r"x has shape \(1, 1, 5, 6\) but the images measured by y",
    ),
    Bad(
        f"{L2}.value",
        "dtype",
        "float16 x",
        lambda: blur_l2().value(V56().half()),
        TypeError,
        r"x must have dtype float32, float64, not float16",
    ),
    Bad(
        f"{L2}.value",
        "meta",
        "meta x",
        lambda: blur_l2().value(torch.rand(2, 1, 5, 6, device="meta", dtype=F64)),
        ValueError,
        r"x is on the meta device",
    ),
    Good(
        f"{L2}.lipschitz",
        "dtype",
        "Blur float64: the largest eigenvalue of the dense A^T A",
        lambda: blur_l2().lipschitz(),
        lambda: torch.full((2,), float(np.linalg.eigvalsh(BLUR56().T @ BLUR56()).max()), dtype=F64),
        1e-12,
    ),
    Bad(
        f"{L2}.lipschitz",
        "value",
        "iters 0",
        lambda: pnpfast.L2(dense_op(), rand(1, 1, 3, 4, dtype=F64)).lipschitz(0),
        ValueError,
        r"iters must be an int in \[1, 10000\], not 0",
    ),
    Bad(
        f"{L2}.lipschitz",
        "value",
        "iters 10**7",
        lambda: blur_l2().lipschitz(10**7),
        ValueError,
        r"iters must be an int in \[1, 10000\], not 10000000",
    ),
    Bad(
        f"{L2}.lipschitz",
        "type",
        "str iters",
        lambda: blur_l2().lipschitz("50"),
        TypeError,
        r"iters must be an int in \[1, 10000\], not str",
    ),
]


# Identity (denoising; deepinv's Denoising physics converts to it)
ID = "pnpfast.operators.Identity"
CASES += [
    Bad(
        f"{ID}.forward",
        "rank",
        "x 3-d",
        lambda: Identity().forward(rand(2, 2, 2)),
        ValueError,
        r"x must have shape \[B, C, H, W\] \(4 dimensions\), got shape \(2, 2, 2\)",
    ),
    Bad(
        f"{ID}.adjoint",
        "dtype",
        "y int64",
        lambda: Identity().adjoint(torch.ones(1, 1, 2, 2, dtype=torch.int64)),
        TypeError,
        r"y must have dtype float32, float64, not int64",
    ),
    Bad(
        f"{ID}.prox_l2",
        "mismatch",
        "v and y shapes",
        lambda: Identity().prox_l2(rand(1, 1, 2, 2), rand(1, 1, 2, 3), 1.0),
        ValueError,
        r"v has shape \(1, 1, 2, 2\) but the images measured by y",
    ),
    Bad(
        f"{ID}.prox_l2",
        "value",
        "gamma negative",
        lambda: Identity().prox_l2(rand(1, 1, 2, 2), rand(1, 1, 2, 2), -1.0),
        ValueError,
        r"gamma must be > 0, got -1.0",
    ),
    Good(
        f"{ID}.prox_l2",
        "value",
        "per-image gamma, closed form",
        lambda: Identity().prox_l2(
            rand(2, 3, 5, 7, dtype=F64),
            rand(2, 3, 5, 7, seed=1, dtype=F64),
            torch.tensor([0.5, 4.0], dtype=F64),
        ),
        lambda: (
            (
                rand(2, 3, 5, 7, dtype=F64)
                + torch.tensor([0.5, 4.0], dtype=F64).view(2, 1, 1, 1)
                * rand(2, 3, 5, 7, seed=1, dtype=F64)
            )
            / (1 + torch.tensor([0.5, 4.0], dtype=F64).view(2, 1, 1, 1))
        ),
        atol=1e-12,
    ),
    Good(
        f"{ID}.forward",
        "size",
        "1x1 image copied",
        lambda: Identity()(rand(1, 1, 1, 1, dtype=F64)),
        lambda: rand(1, 1, 1, 1, dtype=F64),
        atol=0,
    ),
]


@params(CASES)
def test_fuzz(case):
    check(case)
