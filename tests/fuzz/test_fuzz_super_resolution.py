"""Fuzz table (issue 17 conventions) of super-resolution (issue 19): pnpfast.operators.
SuperResolution (construction, the named kernels, forward, adjoint, its decimated Fourier
multiplier, L2's prox through it), pnpfast.ops.sr_prox_reference and pnpfast.ops.sr_prox.

Bad rows: the exact exception type and a message naming the argument and what is wrong. Good
rows compare with NumPy float64 oracles written from the definition: the dense circulant of
fuzz_cases.blur_matrix, keeping the rows of the top-left pixel of each s x s block, and dense
solves of the prox's normal equations. 8x8 images or smaller.
"""

import numpy as np
import torch
from fuzz_cases import Bad, Good, blur_matrix, channels_last, check, params, transposed

import pnpfast
from pnpfast.dispatch import BackendError
from pnpfast.operators import SuperResolution
from pnpfast.ops import sr_prox, sr_prox_reference

NAN = float("nan")
F64 = torch.float64
SR = "pnpfast.operators.SuperResolution"
SRP = "pnpfast.ops.sr_prox_reference"
SRD = "pnpfast.ops.sr_prox"


def rand(*shape, seed=0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def kern(h=3, w=3, seed=1, dtype=torch.float32) -> torch.Tensor:
    k = rand(h, w, seed=seed, dtype=dtype) + 0.1
    return k / k.sum()


def sr_matrix(k: torch.Tensor, s: int, H: int, W: int) -> np.ndarray:
    """Dense [HW / s^2, HW]: the circulant's rows of the pixels (s i, s j)."""
    A = blur_matrix(k.double().numpy(), H, W)
    rows = [r * W + c for r in range(0, H, s) for c in range(0, W, s)]
    return A[rows]


def sr_oracle(k: torch.Tensor, s: int, x: torch.Tensor) -> torch.Tensor:
    """k [h, w] shared or [B, h, w] per image; x [B, C, H, W]."""
    B, C, H, W = x.shape
    ks = k.reshape(-1, *k.shape[-2:])
    out = [
        np.einsum("ij,cj->ci", sr_matrix(ks[b % len(ks)], s, H, W), x[b].double().reshape(C, -1))
        for b in range(B)
    ]
    return torch.from_numpy(np.stack(out).reshape(B, C, H // s, W // s))


def adjoint_oracle(k: torch.Tensor, s: int, y: torch.Tensor) -> torch.Tensor:
    B, C, h, w = y.shape
    D = sr_matrix(k, s, h * s, w * s)
    out = np.einsum("ji,bcj->bci", D, y.double().reshape(B, C, -1).numpy())
    return torch.from_numpy(out.reshape(B, C, h * s, w * s))


def prox_oracle(k, s, v, y, gamma) -> torch.Tensor:
    """argmin 1/2 ||A x - y||^2 + 1/(2 gamma_b) ||x - v||^2 by dense solves, per image."""
    B, C, H, W = v.shape
    D = sr_matrix(k, s, H, W)
    out = []
    for b in range(B):
        M = D.T @ D + np.eye(H * W) / gamma[b]
        rhs = D.T @ y[b].double().reshape(C, -1).numpy().T
        rhs = rhs + v[b].double().reshape(C, -1).numpy().T / gamma[b]
        out.append(np.linalg.solve(M, rhs).T.reshape(C, H, W))
    return torch.from_numpy(np.stack(out))


def spectra(B=2, H=8, W=8, s=2, dtype=F64) -> dict:
    """Valid arguments of sr_prox_reference (an A = SuperResolution(kern(), s))."""
    cdt = torch.complex128 if dtype == F64 else torch.complex64
    k_hat, k2_mean, _ = SuperResolution(kern(), s).decimated_fourier_multiplier(
        (H, W), torch.device("cpu"), dtype
    )
    return {
        "v_hat": torch.fft.fft2(rand(B, 1, H, W, dtype=dtype)).to(cdt),
        "kty": torch.fft.fft2(rand(B, 1, H, W, seed=2, dtype=dtype)).to(cdt),
        "k_hat": k_hat,
        "k2_mean": k2_mean,
        "gamma": torch.ones(B, dtype=dtype),
        "factor": s,
    }


def srp(**changes):
    args = spectra()
    args.update(changes)
    return sr_prox_reference(**args)


def srd(**changes):
    """pnpfast.ops.sr_prox on spectra() with ``changes``; kty = fft2(A^T y) for
    y = A rand(seed 2), so the output's ifft2 is the prox of the dense oracle."""
    args = spectra()
    A = SuperResolution(kern(dtype=F64), 2)
    args["kty"] = torch.fft.fft2(A.adjoint(A(rand(2, 1, 8, 8, seed=2, dtype=F64))))
    args["k_hat"], args["k2_mean"], _ = A.decimated_fourier_multiplier(
        (8, 8), torch.device("cpu"), F64
    )
    args.update(changes)
    return sr_prox(**args)


def x8(dtype=torch.float32, B=1, C=1):
    return rand(B, C, 8, 8, dtype=dtype)


CASES = [
    # -- construction ----------------------------------------------------------------------------
    Bad(
        SR,
        "value",
        "factor 0",
        lambda: SuperResolution(kern(), 0),
        ValueError,
        r"factor must be an int >= 1",
    ),
    Bad(
        SR,
        "value",
        "factor -2",
        lambda: SuperResolution(kern(), -2),
        ValueError,
        r"factor must be an int >= 1",
    ),
    Bad(
        SR,
        "type",
        "factor 2.0",
        lambda: SuperResolution(kern(), 2.0),
        TypeError,
        r"factor must be an int >= 1 .*not float",
    ),
    Bad(
        SR,
        "type",
        "factor True",
        lambda: SuperResolution(kern(), True),
        TypeError,
        r"factor must be an int >= 1 .*not bool",
    ),
    Bad(
        SR,
        "type",
        "factor str",
        lambda: SuperResolution(kern(), "2"),
        TypeError,
        r"factor must be an int",
    ),
    Bad(
        SR,
        "nan-inf",
        "NaN kernel",
        lambda: SuperResolution(torch.full((3, 3), NAN), 2),
        ValueError,
        r"kernel contains NaN or Inf",
    ),
    Bad(
        SR,
        "value",
        "all-zero kernel",
        lambda: SuperResolution(torch.zeros(3, 3), 2),
        ValueError,
        r"kernel is all zero",
    ),
    Bad(
        SR,
        "rank",
        "kernel 4-d",
        lambda: SuperResolution(torch.ones(1, 1, 3, 3), 2),
        ValueError,
        r"kernel must have shape \[h, w\] or \[B, h, w\]",
    ),
    Bad(
        SR,
        "rank",
        "kernel 1-d",
        lambda: SuperResolution(torch.ones(3), 2),
        ValueError,
        r"kernel must have shape \[h, w\] or \[B, h, w\]",
    ),
    Bad(
        SR,
        "dtype",
        "int kernel",
        lambda: SuperResolution(torch.ones(3, 3, dtype=torch.int32), 2),
        TypeError,
        r"kernel must be floating point",
    ),
    Bad(
        SR,
        "type",
        "list kernel",
        lambda: SuperResolution([[1.0]], 2),
        TypeError,
        r"kernel must be a tensor or numpy array",
    ),
    Bad(
        SR,
        "meta",
        "meta kernel",
        lambda: SuperResolution(torch.ones(3, 3, device="meta"), 2),
        ValueError,
        r"kernel is on the meta device",
    ),
    Bad(
        f"{SR}.bicubic",
        "value",
        "factor 0",
        lambda: SuperResolution.bicubic(0),
        ValueError,
        r"factor must be an int >= 1",
    ),
    Bad(
        f"{SR}.bicubic",
        "type",
        "factor 1.5",
        lambda: SuperResolution.bicubic(1.5),
        TypeError,
        r"factor must be an int >= 1",
    ),
    Bad(
        f"{SR}.gaussian",
        "value",
        "std 0",
        lambda: SuperResolution.gaussian(2, 0.0),
        ValueError,
        r"std must be a finite number in \(0, 10000\]",
    ),
    Bad(
        f"{SR}.gaussian",
        "nan-inf",
        "std NaN",
        lambda: SuperResolution.gaussian(2, NAN),
        ValueError,
        r"std must be a finite number",
    ),
    Bad(
        f"{SR}.gaussian",
        "type",
        "std str",
        lambda: SuperResolution.gaussian(2, "1"),
        TypeError,
        r"std must be a finite number",
    ),
    Bad(
        f"{SR}.gaussian",
        "type",
        "factor bool",
        lambda: SuperResolution.gaussian(True, 1.0),
        TypeError,
        r"factor must be an int >= 1",
    ),
    # -- forward ---------------------------------------------------------------------------------
    Bad(
        f"{SR}.forward",
        "size",
        "H not divisible",
        lambda: SuperResolution(kern(), 2)(rand(1, 1, 9, 8)),
        ValueError,
        r"x has size 9x8, which is not divisible by the factor 2",
    ),
    Bad(
        f"{SR}.forward",
        "size",
        "W not divisible",
        lambda: SuperResolution(kern(), 3)(rand(1, 1, 9, 8)),
        ValueError,
        r"x has size 9x8, which is not divisible by the factor 3",
    ),
    Bad(
        f"{SR}.forward",
        "size",
        "kernel larger than x",
        lambda: SuperResolution(kern(9, 9), 2)(x8()),
        ValueError,
        r"kernel of size 9x9 is larger than x of size 8x8",
    ),
    Bad(
        f"{SR}.forward",
        "rank",
        "x 3-d",
        lambda: SuperResolution(kern(), 2)(rand(1, 8, 8)),
        ValueError,
        r"x must have shape \[B, C, H, W\]",
    ),
    Bad(
        f"{SR}.forward",
        "meta",
        "meta x",
        lambda: SuperResolution(kern(), 2)(torch.rand(1, 1, 8, 8, device="meta")),
        ValueError,
        r"x is on the meta device",
    ),
    Bad(
        f"{SR}.forward",
        "dtype",
        "float16 x",
        lambda: SuperResolution(kern(), 2)(x8().half()),
        TypeError,
        r"x must have dtype float32, float64, not float16",
    ),
    Bad(
        f"{SR}.forward",
        "dtype",
        "int x",
        lambda: SuperResolution(kern(), 2)(torch.ones(1, 1, 8, 8, dtype=torch.int64)),
        TypeError,
        r"x must have dtype float32, float64, not int64",
    ),
    Bad(
        f"{SR}.forward",
        "mismatch",
        "3 kernels, batch 2",
        lambda: SuperResolution(torch.stack([kern()] * 3), 2)(x8(B=2)),
        ValueError,
        r"kernel holds 3 kernels but x has batch size 2",
    ),
    Bad(
        f"{SR}.forward",
        "size",
        "empty batch",
        lambda: SuperResolution(kern(), 2)(rand(0, 1, 8, 8)),
        ValueError,
        r"x has a batch of size 0",
    ),
    Good(
        f"{SR}.forward",
        "dtype",
        "float64 per-image kernels",
        lambda: SuperResolution(torch.stack([kern(dtype=F64), kern(seed=3, dtype=F64)]), 2)(
            x8(F64, B=2, C=2)
        ),
        lambda: sr_oracle(
            torch.stack([kern(dtype=F64), kern(seed=3, dtype=F64)]), 2, x8(F64, B=2, C=2)
        ),
        1e-12,
    ),
    Good(
        f"{SR}.forward",
        "layout",
        "transposed x, s 3",
        lambda: SuperResolution(kern(4, 2, dtype=F64), 3)(transposed(rand(1, 2, 6, 9, dtype=F64))),
        lambda: sr_oracle(kern(4, 2, dtype=F64), 3, rand(1, 2, 6, 9, dtype=F64)),
        1e-12,
    ),
    Good(
        f"{SR}.forward",
        "layout",
        "channels_last x",
        lambda: SuperResolution(kern(dtype=F64), 2)(channels_last(x8(F64, B=2, C=3))),
        lambda: sr_oracle(kern(dtype=F64), 2, x8(F64, B=2, C=3)),
        1e-12,
    ),
    Good(
        f"{SR}.forward",
        "size",
        "kernel as large as x",
        lambda: SuperResolution(kern(8, 8, dtype=F64), 4)(x8(F64)),
        lambda: sr_oracle(kern(8, 8, dtype=F64), 4, x8(F64)),
        1e-12,
    ),
    Good(
        f"{SR}.forward",
        "size",
        "factor = image size (1x1 output)",
        lambda: SuperResolution(kern(dtype=F64), 8)(x8(F64)),
        lambda: sr_oracle(kern(dtype=F64), 8, x8(F64)),
        1e-12,
    ),
    # -- adjoint ---------------------------------------------------------------------------------
    Bad(
        f"{SR}.adjoint",
        "rank",
        "y 5-d",
        lambda: SuperResolution(kern(), 2).adjoint(rand(1, 1, 1, 4, 4)),
        ValueError,
        r"y must have shape \[B, C, H, W\]",
    ),
    Bad(
        f"{SR}.adjoint",
        "size",
        "kernel larger than the images of y",
        lambda: SuperResolution(kern(9, 9), 2).adjoint(rand(1, 1, 4, 4)),
        ValueError,
        r"kernel of size 9x9 is larger than the images of y \(4x4 upsampled by 2: 8x8\)",
    ),
    Bad(
        f"{SR}.adjoint",
        "meta",
        "meta y",
        lambda: SuperResolution(kern(), 2).adjoint(torch.rand(1, 1, 4, 4, device="meta")),
        ValueError,
        r"y is on the meta device",
    ),
    Bad(
        f"{SR}.adjoint",
        "dtype",
        "bfloat16 y",
        lambda: SuperResolution(kern(), 2).adjoint(rand(1, 1, 4, 4).bfloat16()),
        TypeError,
        r"y must have dtype float32, float64, not bfloat16",
    ),
    Bad(
        f"{SR}.adjoint",
        "mismatch",
        "2 kernels, batch 3",
        lambda: SuperResolution(torch.stack([kern()] * 2), 2).adjoint(rand(3, 1, 4, 4)),
        ValueError,
        r"kernel holds 2 kernels but y has batch size 3",
    ),
    Good(
        f"{SR}.adjoint",
        "layout",
        "transposed y",
        lambda: SuperResolution(kern(dtype=F64), 2).adjoint(
            transposed(rand(1, 2, 3, 4, dtype=F64))
        ),
        lambda: adjoint_oracle(kern(dtype=F64), 2, rand(1, 2, 3, 4, dtype=F64)),
        1e-12,
    ),
    # -- the capability read by prox_l2 and L2 ---------------------------------------------------
    Bad(
        f"{SR}.decimated_fourier_multiplier",
        "size",
        "H not divisible",
        lambda: SuperResolution(kern(), 2).decimated_fourier_multiplier(
            (9, 8), torch.device("cpu"), torch.float32
        ),
        ValueError,
        r"H = 9 is not divisible by the factor 2",
    ),
    Bad(
        f"{SR}.decimated_fourier_multiplier",
        "dtype",
        "float16",
        lambda: SuperResolution(kern(), 2).decimated_fourier_multiplier(
            (8, 8), torch.device("cpu"), torch.float16
        ),
        TypeError,
        r"dtype must be torch.float32 or torch.float64",
    ),
    Bad(
        f"{SR}.decimated_fourier_multiplier",
        "type",
        "shape (8.0, 8)",
        lambda: SuperResolution(kern(), 2).decimated_fourier_multiplier(
            (8.0, 8), torch.device("cpu"), torch.float32
        ),
        TypeError,
        r"H must be an int",
    ),
    # -- prox through L2 and prox_l2 -------------------------------------------------------------
    Bad(
        "pnpfast.L2",
        "nan-inf",
        "SR y with NaN",
        lambda: pnpfast.L2(SuperResolution(kern(), 2), torch.full((1, 1, 4, 4), NAN)),
        ValueError,
        r"y contains NaN or Inf",
    ),
    Bad(
        "pnpfast.L2",
        "size",
        "SR y too small for the kernel",
        lambda: pnpfast.L2(SuperResolution(kern(9, 9), 2), rand(1, 1, 4, 4)),
        ValueError,
        r"y is not a measurement of this SuperResolution: kernel of size 9x9",
    ),
    Bad(
        "pnpfast.L2.prox",
        "mismatch",
        "SR v of the measurement's size",
        lambda: pnpfast.L2(SuperResolution(kern(), 2), rand(1, 1, 4, 4)).prox(
            rand(1, 1, 4, 4), 1.0
        ),
        ValueError,
        r"v has shape \(1, 1, 4, 4\) but the images measured by y .* \(1, 1, 8, 8\)",
    ),
    Bad(
        "pnpfast.L2.prox",
        "value",
        "SR gamma 0",
        lambda: pnpfast.L2(SuperResolution(kern(), 2), rand(1, 1, 4, 4)).prox(x8(), 0.0),
        ValueError,
        r"gamma must be > 0",
    ),
    Bad(
        f"{SR}.prox_l2",
        "dtype",
        "v float64, y float32",
        lambda: SuperResolution(kern(), 2).prox_l2(x8(F64), rand(1, 1, 4, 4), 1.0),
        TypeError,
        r"v has dtype torch.float64 but y has torch.float32",
    ),
    Good(
        "pnpfast.L2.prox",
        "value",
        "SR per-image gamma, float64, s 2",
        lambda: pnpfast.L2(SuperResolution(kern(dtype=F64), 2), rand(2, 2, 4, 4, dtype=F64)).prox(
            x8(F64, B=2, C=2), torch.tensor([0.25, 8.0], dtype=F64)
        ),
        lambda: prox_oracle(
            kern(dtype=F64), 2, x8(F64, B=2, C=2), rand(2, 2, 4, 4, dtype=F64), [0.25, 8.0]
        ),
        1e-10,
    ),
    Good(
        f"{SR}.prox_l2",
        "layout",
        "SR transposed v, s 3",
        lambda: SuperResolution(kern(dtype=F64), 3).prox_l2(
            transposed(rand(1, 1, 6, 9, dtype=F64)), rand(1, 1, 2, 3, dtype=F64), 2.0
        ),
        lambda: prox_oracle(
            kern(dtype=F64), 3, rand(1, 1, 6, 9, dtype=F64), rand(1, 1, 2, 3, dtype=F64), [2.0]
        ),
        1e-10,
    ),
    # -- the spectral step -----------------------------------------------------------------------
    Bad(
        SRP,
        "mismatch",
        "gamma of length 3",
        lambda: srp(gamma=torch.ones(3, dtype=F64)),
        ValueError,
        r"sr_prox_reference: gamma must have shape \(2,\), got \(3,\)",
    ),
    Bad(
        SRP,
        "dtype",
        "real v_hat",
        lambda: srp(v_hat=rand(2, 1, 8, 8, dtype=F64)),
        TypeError,
        r"sr_prox_reference: v_hat must be complex64 or complex128, not torch.float64",
    ),
    Bad(
        SRP,
        "dtype",
        "float32 k2_mean",
        lambda: srp(k2_mean=spectra()["k2_mean"].float()),
        TypeError,
        r"sr_prox_reference: k2_mean must be torch.float64 to match v_hat",
    ),
    Bad(
        SRP,
        "mismatch",
        "k2_mean of the image size",
        lambda: srp(k2_mean=torch.ones(1, 1, 8, 8, dtype=F64)),
        ValueError,
        r"sr_prox_reference: k2_mean must be \[1, 1, 4, 4\]",
    ),
    Bad(
        SRP,
        "size",
        "factor 3 on 8x8",
        lambda: srp(factor=3),
        ValueError,
        r"sr_prox_reference: v_hat has size 8x8, not divisible by the factor 3",
    ),
    Bad(
        SRP,
        "type",
        "factor True",
        lambda: srp(factor=True),
        TypeError,
        r"sr_prox_reference: factor must be an int >= 1",
    ),
    Bad(
        SRP,
        "value",
        "factor 0",
        lambda: srp(factor=0),
        ValueError,
        r"sr_prox_reference: factor must be an int >= 1",
    ),
    Bad(
        SRP,
        "rank",
        "v_hat 3-d",
        lambda: srp(v_hat=spectra()["v_hat"][0]),
        ValueError,
        r"sr_prox_reference: v_hat must be \[B, C, H, W\]",
    ),
    Bad(
        SRP,
        "meta",
        "meta tensors",
        lambda: srp(**{k: v.to("meta") for k, v in spectra().items() if k != "factor"}),
        ValueError,
        r"sr_prox_reference: v_hat is on the meta device",
    ),
    Bad(
        SRP,
        "type",
        "list kty",
        lambda: srp(kty=[1.0]),
        TypeError,
        r"sr_prox_reference: kty must be a tensor",
    ),
    # -- the dispatched spectral step: the same checks under its own name, and the prox ------------
    Good(
        SRD,
        "layout",
        "spectra of the dense prox, s 2, two gammas",
        lambda: torch.fft.ifft2(srd(gamma=torch.tensor([0.5, 3.0], dtype=F64))).real,
        lambda: prox_oracle(
            kern(dtype=F64),
            2,
            rand(2, 1, 8, 8, dtype=F64),
            sr_oracle(kern(dtype=F64), 2, rand(2, 1, 8, 8, seed=2, dtype=F64)),
            [0.5, 3.0],
        ),
        1e-10,
    ),
    Bad(
        SRD,
        "size",
        "factor 3 on 8x8",
        lambda: srd(factor=3),
        ValueError,
        r"sr_prox: v_hat has size 8x8, not divisible by the factor 3",
    ),
    Bad(
        SRD,
        "dtype",
        "complex64 k_hat with complex128 v_hat",
        lambda: srd(k_hat=spectra()["k_hat"].to(torch.complex64)),
        TypeError,
        r"sr_prox: k_hat has dtype torch.complex64, v_hat has torch.complex128",
    ),
    Bad(
        SRD,
        "value",
        "backend cuda on CPU tensors",
        lambda: srd(backend="cuda"),
        BackendError,
        r"sr_prox: backend 'cuda' cannot run this call",
    ),
]


@params(CASES)
def test_fuzz(case):
    check(case)
