"""Fuzz table (issue 17) of the fused ops and their references: pnpfast.ops.fft_prox, fft_grad,
pnp_update, power_step, constrained_step and each <op>_reference.

The fused ops check only metadata (no data is read, no device synchronisation): NaN passes
through as in torch ops, empty inputs give empty outputs on every backend, and what is
structurally wrong (rank, shapes, dtypes, devices, the meta device, complex where real is
expected and the reverse, wrong Python types) is refused naming the argument. Good rows compare
with NumPy float64 written here from the formulas of the module docstrings; a handful run the
Triton backend (the interpreter on the CPU) on 8x8 inputs.
"""

import math

import numpy as np
import torch
from fuzz_cases import Bad, Good, channels_last, check, params, transposed

from pnpfast.dispatch import BackendError
from pnpfast.ops import (
    constrained_step,
    constrained_step_reference,
    fft_grad,
    fft_grad_reference,
    fft_prox,
    fft_prox_reference,
    pnp_update,
    pnp_update_reference,
    power_step,
    power_step_reference,
)

NAN, INF = float("nan"), float("inf")
F32, F64 = torch.float32, torch.float64
C64, C128 = torch.complex64, torch.complex128
OPS = "pnpfast.ops"


def rand(*shape, seed=0, dtype=F32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype.is_complex:
        return torch.randn(*shape, generator=g, dtype=dtype)
    return torch.rand(*shape, generator=g, dtype=dtype)


def np_(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.complex128 if t.is_complex() else np.float64)


def real(t) -> torch.Tensor:
    """Complex results compared as [..., 2] real tensors (fuzz_cases compares real tensors)."""
    if isinstance(t, np.ndarray):
        t = torch.from_numpy(t)
    return torch.view_as_real(t) if t.is_complex() else t


# -- fft_prox and fft_grad ------------------------------------------------------------------------


def spectral(B=2, C=1, H=8, Wr=5, Bk=1, cdtype=C64) -> dict:
    rdtype = F32 if cdtype == C64 else F64
    return {
        "v_hat": rand(B, C, H, Wr, seed=1, dtype=cdtype),
        "kty": rand(B, C, H, Wr, seed=2, dtype=cdtype),
        "k2": rand(Bk, 1, H, Wr, seed=3, dtype=rdtype),
        "gamma": rand(B, seed=4, dtype=rdtype) + 0.5,
    }


def prox_oracle(a: dict) -> torch.Tensor:
    g = np_(a["gamma"]).reshape(-1, 1, 1, 1)
    return real((np_(a["v_hat"]) + g * np_(a["kty"])) / (1 + g * np_(a["k2"])))


def prox_call(op=fft_prox, backend=None, **change):
    a = {**spectral(), **change}
    kw = {} if op is fft_prox_reference else {"backend": backend}
    return op(a["v_hat"], a["kty"], a["k2"], a["gamma"], **kw)


def grad_args(**change) -> dict:
    a = spectral()
    rdtype = a["k2"].dtype
    B = a["v_hat"].shape[0]
    return {
        "v_hat": a["v_hat"],
        "kty": a["kty"],
        "k2": a["k2"],
        "s": rand(B, seed=5, dtype=rdtype) - 0.5,
        "t": rand(B, seed=6, dtype=rdtype),
        **change,
    }


def grad_oracle(a: dict) -> torch.Tensor:
    s = np_(a["s"]).reshape(-1, 1, 1, 1)
    t = np_(a["t"]).reshape(-1, 1, 1, 1)
    return real((s * np_(a["k2"]) + t) * np_(a["v_hat"]) - s * np_(a["kty"]))


def grad_call(op=fft_grad, backend=None, **change):
    a = grad_args(**change)
    kw = {} if op is fft_grad_reference else {"backend": backend}
    return op(a["v_hat"], a["kty"], a["k2"], a["s"], a["t"], **kw)


def grad64() -> dict:
    """fft_grad's arguments in complex128 / float64, one k2 per image."""
    a = grad_args(k2=rand(2, 1, 8, 5, seed=3))
    return {k: t.to(C128 if t.is_complex() else F64) for k, t in a.items()}


FP, FPR = f"{OPS}.fft_prox", f"{OPS}.fft_prox_reference"
FG, FGR = f"{OPS}.fft_grad", f"{OPS}.fft_grad_reference"
S64 = spectral(cdtype=C128)
S_PER_IMAGE = spectral(Bk=2)
S_EMPTY = spectral(B=0)

CASES: list[Bad | Good] = [
    Good(
        FP,
        "dtype",
        "complex128 with per-image k2",
        lambda: real(prox_call(**{**spectral(Bk=2, cdtype=C128)})),
        lambda: prox_oracle(spectral(Bk=2, cdtype=C128)),
        1e-14,
    ),
    Good(
        FP,
        "layout",
        "non-contiguous v_hat (reference chosen)",
        lambda: real(prox_call(v_hat=transposed(spectral()["v_hat"]))),
        lambda: prox_oracle(spectral()),
        1e-6,
    ),
    Good(
        FP,
        "dtype",
        "complex64 on triton (interpreter)",
        lambda: real(prox_call(backend="triton", **S_PER_IMAGE)),
        lambda: prox_oracle(S_PER_IMAGE),
        1e-6,
    ),
    Good(
        FP,
        "size",
        "empty batch on triton (was IndexError): an empty result",
        lambda: real(prox_call(backend="triton", **S_EMPTY)),
        lambda: torch.zeros(0, 1, 8, 5, 2),
        0.0,
    ),
    Good(
        FP,
        "size",
        "zero channels, reference: an empty result",
        lambda: real(prox_call(**spectral(C=0))),
        lambda: torch.zeros(2, 0, 8, 5, 2),
        0.0,
    ),
    Good(
        FP,
        "size",
        "1x1 image (H = Wr = 1)",
        lambda: real(prox_call(**spectral(H=1, Wr=1))),
        lambda: prox_oracle(spectral(H=1, Wr=1)),
        1e-6,
    ),
    Bad(
        FP,
        "layout",
        "non-contiguous v_hat on triton by name",
        lambda: prox_call(backend="triton", v_hat=transposed(spectral()["v_hat"])),
        BackendError,
        r"fft_prox: backend 'triton' cannot run this call: inputs must be contiguous \(v_hat is "
        r"not: call .contiguous\(\) on it\)",
    ),
    Bad(
        FP,
        "meta",
        "all on the meta device",
        lambda: prox_call(**{k: t.to("meta") for k, t in spectral().items()}),
        ValueError,
        r"fft_prox: v_hat is on the meta device",
    ),
    Bad(
        FP,
        "meta",
        "meta gamma, the rest on the CPU",
        lambda: prox_call(gamma=spectral()["gamma"].to("meta")),
        ValueError,
        r"fft_prox: tensors on different devices: .*'gamma': device\(type='meta'\)",
    ),
    Bad(
        FP,
        "dtype",
        "real v_hat",
        lambda: prox_call(v_hat=spectral()["v_hat"].real.contiguous()),
        TypeError,
        r"fft_prox: v_hat must be complex64 or complex128, not torch.float32",
    ),
    Bad(
        FP,
        "dtype",
        "complex k2",
        lambda: prox_call(k2=spectral()["k2"].to(C64)),
        TypeError,
        r"fft_prox: k2 must be torch.float32 to match v_hat, not torch.complex64",
    ),
    Bad(
        FP,
        "dtype",
        "complex128 kty with complex64 v_hat",
        lambda: prox_call(kty=spectral()["kty"].to(C128)),
        TypeError,
        r"fft_prox: kty has dtype torch.complex128, v_hat has torch.complex64",
    ),
    Bad(
        FP,
        "dtype",
        "float64 gamma with complex64",
        lambda: prox_call(gamma=spectral()["gamma"].double()),
        TypeError,
        r"fft_prox: gamma must be torch.float32 to match v_hat, not torch.float64",
    ),
    Bad(
        FP,
        "dtype",
        "bfloat16 k2",
        lambda: prox_call(k2=spectral()["k2"].bfloat16()),
        TypeError,
        r"fft_prox: k2 must be torch.float32 to match v_hat, not torch.bfloat16",
    ),
    Bad(
        FP,
        "dtype",
        "int gamma",
        lambda: prox_call(gamma=torch.ones(2, dtype=torch.int32)),
        TypeError,
        r"fft_prox: gamma must be torch.float32 to match v_hat, not torch.int32",
    ),
    Bad(
        FP,
        "dtype",
        "bool gamma",
        lambda: prox_call(gamma=torch.ones(2, dtype=torch.bool)),
        TypeError,
        r"fft_prox: gamma must be torch.float32 to match v_hat, not torch.bool",
    ),
    Bad(
        FP,
        "rank",
        "3-d v_hat and kty",
        lambda: prox_call(v_hat=spectral()["v_hat"][0], kty=spectral()["kty"][0]),
        ValueError,
        r"fft_prox: v_hat must be \[B, C, H, Wr\], got shape \(1, 8, 5\)",
    ),
    Bad(
        FP,
        "rank",
        "3-d k2",
        lambda: prox_call(k2=spectral()["k2"][0]),
        ValueError,
        r"fft_prox: k2 must be \[1 or 2, 1, 8, 5\], got shape \(1, 8, 5\)",
    ),
    Bad(
        FP,
        "mismatch",
        "kty of another batch",
        lambda: prox_call(kty=spectral()["kty"][:1]),
        ValueError,
        r"fft_prox: kty shape \(1, 1, 8, 5\) != v_hat shape \(2, 1, 8, 5\)",
    ),
    Bad(
        FP,
        "mismatch",
        "3 kernels' k2 for 2 images",
        lambda: prox_call(k2=spectral(Bk=3, B=3)["k2"]),
        ValueError,
        r"fft_prox: k2 must be \[1 or 2, 1, 8, 5\], got shape \(3, 1, 8, 5\)",
    ),
    Bad(
        FP,
        "mismatch",
        "gamma of length 3",
        lambda: prox_call(gamma=torch.ones(3)),
        ValueError,
        r"fft_prox: gamma must have shape \(2,\), got \(3,\)",
    ),
    Bad(
        FP,
        "type",
        "a float gamma",
        lambda: prox_call(gamma=0.5),
        TypeError,
        r"fft_prox: gamma must be a tensor",
    ),
    Bad(
        FP,
        "type",
        "numpy v_hat",
        lambda: prox_call(v_hat=spectral()["v_hat"].numpy()),
        TypeError,
        r"fft_prox: v_hat must be a tensor",
    ),
    Bad(
        FP,
        "name",
        "unknown backend",
        lambda: prox_call(backend="mps"),
        ValueError,
        r"backend must be one of cuda, triton, reference, not 'mps'",
    ),
    # the reference checks what the op checks
    Good(
        FPR,
        "dtype",
        "complex128",
        lambda: real(prox_call(fft_prox_reference, **S64)),
        lambda: prox_oracle(S64),
        1e-14,
    ),
    Good(
        FPR,
        "size",
        "empty batch: an empty result",
        lambda: real(prox_call(fft_prox_reference, **S_EMPTY)),
        lambda: torch.zeros(0, 1, 8, 5, 2),
        0.0,
    ),
    Bad(
        FPR,
        "mismatch",
        "gamma of length 3 (was a torch broadcast error)",
        lambda: prox_call(fft_prox_reference, gamma=torch.ones(3)),
        ValueError,
        r"fft_prox_reference: gamma must have shape \(2,\), got \(3,\)",
    ),
    Bad(
        FPR,
        "type",
        "list v_hat",
        lambda: prox_call(fft_prox_reference, v_hat=[1.0]),
        TypeError,
        r"fft_prox_reference: v_hat must be a tensor",
    ),
    Bad(
        FPR,
        "meta",
        "all on the meta device",
        lambda: prox_call(fft_prox_reference, **{k: t.to("meta") for k, t in spectral().items()}),
        ValueError,
        r"fft_prox_reference: v_hat is on the meta device",
    ),
    Bad(
        FPR,
        "dtype",
        "float64 k2 with complex64",
        lambda: prox_call(fft_prox_reference, k2=spectral()["k2"].double()),
        TypeError,
        r"fft_prox_reference: k2 must be torch.float32 to match v_hat, not torch.float64",
    ),
    Good(
        FG,
        "dtype",
        "complex128, per-image k2",
        lambda: real(grad_call(**grad64())),
        lambda: grad_oracle(grad64()),
        1e-14,
    ),
]

CASES += [
    Good(
        FG,
        "layout",
        "non-contiguous kty (reference chosen)",
        lambda: real(grad_call(kty=transposed(grad_args()["kty"]))),
        lambda: grad_oracle(grad_args()),
        1e-6,
    ),
    Good(
        FG,
        "dtype",
        "complex64 on triton (interpreter)",
        lambda: real(grad_call(backend="triton")),
        lambda: grad_oracle(grad_args()),
        1e-6,
    ),
    Good(
        FG,
        "size",
        "empty batch on triton (was IndexError): an empty result",
        lambda: real(
            grad_call(
                backend="triton",
                v_hat=S_EMPTY["v_hat"],
                kty=S_EMPTY["kty"],
                s=torch.ones(0),
                t=torch.ones(0),
            )
        ),
        lambda: torch.zeros(0, 1, 8, 5, 2),
        0.0,
    ),
    Bad(
        FG,
        "meta",
        "all on the meta device",
        lambda: grad_call(**{k: t.to("meta") for k, t in grad_args().items()}),
        ValueError,
        r"fft_grad: v_hat is on the meta device",
    ),
    Bad(
        FG,
        "dtype",
        "complex s",
        lambda: grad_call(s=torch.ones(2, dtype=C64)),
        TypeError,
        r"fft_grad: s must be torch.float32 to match v_hat, not torch.complex64",
    ),
    Bad(
        FG,
        "dtype",
        "float16 t",
        lambda: grad_call(t=torch.ones(2, dtype=torch.float16)),
        TypeError,
        r"fft_grad: t must be torch.float32 to match v_hat, not torch.float16",
    ),
    Bad(
        FG,
        "mismatch",
        "t of length 1 for 2 images",
        lambda: grad_call(t=torch.ones(1)),
        ValueError,
        r"fft_grad: t must have shape \(2,\), got \(1,\)",
    ),
    Bad(
        FG,
        "rank",
        "0-d s",
        lambda: grad_call(s=torch.tensor(1.0)),
        ValueError,
        r"fft_grad: s must have shape \(2,\), got \(\)",
    ),
    Bad(
        FG,
        "type",
        "None t",
        lambda: grad_call(t=None),
        TypeError,
        r"fft_grad: t must be a tensor",
    ),
    Bad(
        FG,
        "name",
        "backend in capitals",
        lambda: grad_call(backend="TRITON"),
        ValueError,
        r"backend must be one of cuda, triton, reference, not 'TRITON'",
    ),
    Good(
        FGR,
        "dtype",
        "complex128",
        lambda: real(grad_call(fft_grad_reference, **grad64())),
        lambda: grad_oracle(grad64()),
        1e-14,
    ),
    Bad(
        FGR,
        "mismatch",
        "s of length 3 (was a torch broadcast error)",
        lambda: grad_call(fft_grad_reference, s=torch.ones(3)),
        ValueError,
        r"fft_grad_reference: s must have shape \(2,\), got \(3,\)",
    ),
    Bad(
        FGR,
        "dtype",
        "real v_hat",
        lambda: grad_call(fft_grad_reference, v_hat=torch.ones(2, 1, 8, 5)),
        TypeError,
        r"fft_grad_reference: v_hat must be complex64 or complex128, not torch.float32",
    ),
    Bad(
        FGR,
        "meta",
        "meta v_hat and kty, CPU k2",
        lambda: grad_call(
            fft_grad_reference,
            v_hat=grad_args()["v_hat"].to("meta"),
            kty=grad_args()["kty"].to("meta"),
        ),
        ValueError,
        r"fft_grad_reference: tensors on different devices",
    ),
]

# -- pnp_update -----------------------------------------------------------------------------------


def update_args(shape=(2, 3, 4, 5), dtype=F32, **change) -> dict:
    B = shape[0]
    a = {
        "f": rand(*shape, seed=1, dtype=dtype),
        "z": rand(*shape, seed=2, dtype=dtype),
        "x": rand(*shape, seed=3, dtype=dtype),
        "xprev": rand(*shape, seed=4, dtype=dtype),
        "coef": rand(B, 4, seed=5, dtype=dtype) - 0.5,
    }
    a.update(change)
    return a


def update_oracle(a: dict) -> tuple[torch.Tensor, torch.Tensor]:
    f, z = np_(a["f"]), np_(a["z"])
    x = np_(a["x"]) if a["x"] is not None else np.zeros_like(f)
    p = np_(a["xprev"]) if a["xprev"] is not None else np.zeros_like(f)
    c = np_(a["coef"])
    w = [c[:, i].reshape(-1, 1, 1, 1) for i in range(4)]
    out = w[0] * f + w[1] * z + w[2] * x + w[3] * p
    B = f.shape[0]
    sums = np.stack(
        [
            ((z - f) ** 2).reshape(B, -1).sum(1),
            ((x - p) ** 2).reshape(B, -1).sum(1),
            (x**2).reshape(B, -1).sum(1),
        ],
        axis=1,
    )
    return torch.from_numpy(out), torch.from_numpy(sums)


def update_call(op=pnp_update, backend=None, **change):
    a = update_args(**change) if "a" not in change else change["a"]
    kw = {} if op is pnp_update_reference else {"backend": backend}
    return op(a["f"], a["z"], a["x"], a["xprev"], a["coef"], **kw)


PU, PUR = f"{OPS}.pnp_update", f"{OPS}.pnp_update_reference"


def u64(**change) -> dict:
    return update_args(dtype=F64, **change)


def cl_args() -> dict:
    """channels_last f, z, x and a transposed xprev (same values as update_args())."""
    a = update_args()
    return {
        **a,
        "f": channels_last(a["f"]),
        "z": channels_last(a["z"]),
        "x": channels_last(a["x"]),
        "xprev": transposed(a["xprev"]),
    }


CASES += [
    Good(
        PU,
        "dtype",
        "float64",
        lambda: update_call(a=u64()),
        lambda: update_oracle(u64()),
        1e-13,
    ),
    Good(
        PU,
        "layout",
        "channels_last and non-contiguous (reference chosen)",
        lambda: update_call(a=cl_args()),
        lambda: update_oracle(update_args()),
        1e-5,
    ),
    Good(
        PU,
        "dtype",
        "float32 on triton (interpreter), x and xprev None",
        lambda: update_call(backend="triton", a=update_args(x=None, xprev=None)),
        lambda: update_oracle(update_args(x=None, xprev=None)),
        1e-5,
    ),
    Good(
        PU,
        "size",
        "1x1 images, float64",
        lambda: update_call(a=u64(shape=(3, 1, 1, 1))),
        lambda: update_oracle(u64(shape=(3, 1, 1, 1))),
        1e-14,
    ),
    Good(
        PU,
        "size",
        "empty batch: empty results",
        lambda: update_call(a=update_args(shape=(0, 1, 4, 4))),
        lambda: (torch.zeros(0, 1, 4, 4), torch.zeros(0, 3)),
        0.0,
    ),
    Bad(
        PU,
        "layout",
        "channels_last on triton by name",
        lambda: update_call(backend="triton", a=cl_args()),
        BackendError,
        r"pnp_update: backend 'triton' cannot run this call: inputs must be contiguous \(f is not",
    ),
    Bad(
        PU,
        "meta",
        "all on the meta device",
        lambda: update_call(a={k: t.to("meta") for k, t in update_args().items()}),
        ValueError,
        r"pnp_update: f is on the meta device",
    ),
    Bad(
        PU,
        "meta",
        "meta coef",
        lambda: update_call(coef=torch.ones(2, 4, device="meta")),
        ValueError,
        r"pnp_update: coef is on meta, f on cpu",
    ),
    Bad(
        PU,
        "dtype",
        "bfloat16 images",
        lambda: update_call(a=update_args(dtype=torch.bfloat16)),
        TypeError,
        r"pnp_update: f must be float32 or float64, not torch.bfloat16",
    ),
    Bad(
        PU,
        "dtype",
        "complex images",
        lambda: update_call(a=update_args(dtype=C64)),
        TypeError,
        r"pnp_update: f must be float32 or float64, not torch.complex64",
    ),
    Bad(
        PU,
        "dtype",
        "bool x",
        lambda: update_call(x=torch.ones(2, 3, 4, 5, dtype=torch.bool)),
        TypeError,
        r"pnp_update: x has dtype torch.bool, f has torch.float32",
    ),
    Bad(
        PU,
        "mismatch",
        "xprev of another channel count",
        lambda: update_call(xprev=rand(2, 1, 4, 5)),
        ValueError,
        r"pnp_update: xprev has shape \(2, 1, 4, 5\), f has \(2, 3, 4, 5\)",
    ),
    Bad(
        PU,
        "mismatch",
        "coef of 3 images for 2",
        lambda: update_call(coef=torch.ones(3, 4)),
        ValueError,
        r"pnp_update: coef must have shape \(2, 4\), got \(3, 4\)",
    ),
    Bad(
        PU,
        "rank",
        "5-d images",
        lambda: update_call(a=update_args(shape=(2, 1, 1, 4, 5))),
        ValueError,
        r"pnp_update: f must be \[B, C, H, W\], got shape \(2, 1, 1, 4, 5\)",
    ),
    Bad(
        PU,
        "type",
        "numpy z",
        lambda: update_call(z=np.zeros((2, 3, 4, 5), dtype=np.float32)),
        TypeError,
        r"pnp_update: z must be a tensor",
    ),
    Good(
        PUR,
        "dtype",
        "float64",
        lambda: update_call(pnp_update_reference, a=u64()),
        lambda: update_oracle(u64()),
        1e-13,
    ),
    Bad(
        PUR,
        "mismatch",
        "coef of 3 images (was a torch broadcast error)",
        lambda: update_call(pnp_update_reference, coef=torch.ones(3, 4)),
        ValueError,
        r"pnp_update_reference: coef must have shape \(2, 4\), got \(3, 4\)",
    ),
    Bad(
        PUR,
        "meta",
        "all on the meta device",
        lambda: update_call(
            pnp_update_reference, a={k: t.to("meta") for k, t in update_args().items()}
        ),
        ValueError,
        r"pnp_update_reference: f is on the meta device",
    ),
    Bad(
        PUR,
        "dtype",
        "int f",
        lambda: update_call(pnp_update_reference, f=torch.ones(2, 3, 4, 5, dtype=torch.int64)),
        TypeError,
        r"pnp_update_reference: f must be float32 or float64, not torch.int64",
    ),
]

# -- power_step -----------------------------------------------------------------------------------


def power_args(shape=(3, 1, 4, 4), dtype=F32, **change) -> dict:
    B = shape[0]
    u = rand(*shape, seed=1, dtype=dtype)
    state = torch.zeros(B, 4, dtype=dtype)
    state[:, 0] = 0.9  # a previous estimate
    state[:, 1] = 1 / u.flatten(1).norm(dim=1)
    state[:, 2] = 1
    state[:, 3] = 2  # past the first step: the convergence test applies
    if B > 2:
        state[2, 2] = 0  # a frozen image keeps u and its state
    a = {"w": rand(*shape, seed=2, dtype=dtype), "u": u, "state": state, "tol": 0.05, "gram": True}
    a.update(change)
    return a


def power_oracle(a: dict) -> tuple[torch.Tensor, torch.Tensor]:
    w, u, st = np_(a["w"]), np_(a["u"]), np_(a["state"])
    B = u.shape[0]
    out, new_state = u.copy(), st.copy()
    for b in range(B):
        est, scale, active, steps = st[b]
        if not active:
            continue
        dot = float((u[b] * w[b]).sum())
        wn = math.sqrt(float((w[b] ** 2).sum()))
        ray = scale * scale * dot
        new = math.sqrt(max(ray, 0.0)) if a["gram"] else abs(ray)
        converged = wn == 0 or (steps > 0 and abs(new - est) <= a["tol"] * new)
        out[b] = scale * w[b]
        new_state[b] = [
            new,
            0.0 if wn == 0 else 1 / (scale * wn),
            0.0 if converged else 1.0,
            steps + 1,
        ]
    return torch.from_numpy(out), torch.from_numpy(new_state)


def power_call(op=power_step, backend=None, **change):
    a = change.pop("a") if "a" in change else power_args(**change)
    kw = {} if op is power_step_reference else {"backend": backend}
    return op(a["w"], a["u"], a["state"], a["tol"], a["gram"], **kw)


PS, PSR = f"{OPS}.power_step", f"{OPS}.power_step_reference"


def p64(**change) -> dict:
    return power_args(dtype=F64, **change)


CASES += [
    Good(
        PS,
        "dtype",
        "float64, gram",
        lambda: power_call(a=p64()),
        lambda: power_oracle(p64()),
        1e-13,
    ),
    Good(
        PS,
        "dtype",
        "float64, not gram, tol 0.5 (converges)",
        lambda: power_call(a=p64(gram=False, tol=0.5)),
        lambda: power_oracle(p64(gram=False, tol=0.5)),
        1e-13,
    ),
    Good(
        PS,
        "layout",
        "non-contiguous w and u (reference chosen)",
        lambda: power_call(a={**p64(), "w": transposed(p64()["w"]), "u": transposed(p64()["u"])}),
        lambda: power_oracle(p64()),
        1e-13,
    ),
    Good(
        PS,
        "dtype",
        "float32 on triton (interpreter)",
        lambda: power_call(backend="triton"),
        lambda: power_oracle(power_args()),
        1e-5,
    ),
    Good(
        PS,
        "size",
        "vectors of one element per image",
        lambda: power_call(a=p64(shape=(3, 1))),
        lambda: power_oracle(p64(shape=(3, 1))),
        1e-14,
    ),
    Good(
        PS,
        "size",
        "empty batch: empty results",
        lambda: power_call(a=power_args(shape=(0, 1, 4, 4))),
        lambda: (torch.zeros(0, 1, 4, 4), torch.zeros(0, 4)),
        0.0,
    ),
    Bad(
        PS,
        "rank",
        "1-d u (was IndexError)",
        lambda: power_step(torch.ones(3), torch.ones(3), torch.zeros(3, 4)),
        ValueError,
        r"power_step: u must be \[B, \.\.\.\] with at least one dimension per image, got shape \(3,\)",
    ),
    Bad(
        PS,
        "rank",
        "0-d u",
        lambda: power_call(
            a=power_args(shape=(3, 1)) | {"u": torch.tensor(1.0), "w": torch.tensor(1.0)}
        ),
        ValueError,
        r"power_step: u must be \[B, \.\.\.\] with at least one dimension per image, got shape \(\)",
    ),
    Bad(
        PS,
        "meta",
        "all on the meta device",
        lambda: power_call(
            a={**power_args(), **{k: power_args()[k].to("meta") for k in ("w", "u", "state")}}
        ),
        ValueError,
        r"power_step: u is on the meta device",
    ),
    Bad(
        PS,
        "value",
        "negative tol",
        lambda: power_call(tol=-1e-3),
        ValueError,
        r"power_step: tol must be a finite number >= 0, not -0.001",
    ),
    Bad(
        PS,
        "nan-inf",
        "tol NaN",
        lambda: power_call(tol=NAN),
        ValueError,
        r"power_step: tol must be a finite number >= 0, not nan",
    ),
    Bad(
        PS,
        "nan-inf",
        "tol inf",
        lambda: power_call(tol=INF),
        ValueError,
        r"power_step: tol must be a finite number >= 0, not inf",
    ),
    Bad(
        PS,
        "type",
        "tensor tol (was a ValueError)",
        lambda: power_call(tol=torch.tensor(0.1)),
        TypeError,
        r"power_step: tol must be a finite number >= 0, not Tensor tensor\(0\.1000\)",
    ),
    Bad(
        PS,
        "type",
        "int gram",
        lambda: power_call(gram=1),
        TypeError,
        r"power_step: gram must be True or False, not int 1",
    ),
    Bad(
        PS,
        "dtype",
        "complex u",
        lambda: power_call(a=power_args(dtype=C64)),
        TypeError,
        r"power_step: u must be float32 or float64, not torch.complex64",
    ),
    Bad(
        PS,
        "dtype",
        "float16 u",
        lambda: power_call(a=power_args(dtype=torch.float16)),
        TypeError,
        r"power_step: u must be float32 or float64, not torch.float16",
    ),
    Bad(
        PS,
        "dtype",
        "float64 state with float32 u",
        lambda: power_call(state=power_args()["state"].double()),
        TypeError,
        r"power_step: state has dtype torch.float64, u has torch.float32",
    ),
    Bad(
        PS,
        "mismatch",
        "w of another size",
        lambda: power_call(w=rand(3, 1, 4, 5)),
        ValueError,
        r"power_step: w has shape \(3, 1, 4, 5\), u has \(3, 1, 4, 4\)",
    ),
    Bad(
        PS,
        "mismatch",
        "state of 2 images for 3",
        lambda: power_call(state=torch.zeros(2, 4)),
        ValueError,
        r"power_step: state must have shape \(3, 4\), got \(2, 4\)",
    ),
    Bad(
        PS,
        "name",
        "unknown backend",
        lambda: power_call(backend="cuda_graphs"),
        ValueError,
        r"backend must be one of cuda, triton, reference, not 'cuda_graphs'",
    ),
    Good(
        PSR,
        "dtype",
        "float64",
        lambda: power_call(power_step_reference, a=p64()),
        lambda: power_oracle(p64()),
        1e-13,
    ),
    Bad(
        PSR,
        "mismatch",
        "state of 2 images for 3 (was a torch error)",
        lambda: power_call(power_step_reference, state=torch.zeros(2, 4)),
        ValueError,
        r"power_step_reference: state must have shape \(3, 4\), got \(2, 4\)",
    ),
    Bad(
        PSR,
        "type",
        "list w",
        lambda: power_call(power_step_reference, w=[0.0]),
        TypeError,
        r"power_step_reference: w must be a tensor",
    ),
    Bad(
        PSR,
        "nan-inf",
        "tol NaN",
        lambda: power_call(power_step_reference, tol=NAN),
        ValueError,
        r"power_step_reference: tol must be a finite number >= 0",
    ),
]

# -- constrained_step -----------------------------------------------------------------------------


def step_args(shape=(2, 1, 4, 4), dtype=F32, form="mask", **change) -> dict:
    """c = 0, so no noise is drawn: out = y + h d and sigma = ||d|| / sqrt(N) are exact."""
    B, _, H, W = shape
    a = {
        "denoised": rand(*shape, seed=1, dtype=dtype),
        "y": rand(*shape, seed=2, dtype=dtype),
        "h": rand(B, seed=3, dtype=dtype),
        "c": torch.zeros(B, dtype=dtype),
        "seed": 5,
        "offset": 0,
        "lifted": None,
        "mask": None,
        "factor": 0,
        "projected": None,
    }
    if form != "none":
        a["lifted"] = rand(*shape, seed=4, dtype=dtype)
    if form == "mask":
        a["mask"] = (rand(1, 1, H, W, seed=6) > 0.5).to(dtype)
    elif form == "factor":
        a["factor"] = 2
    elif form == "projected":
        a["projected"] = rand(*shape, seed=7, dtype=dtype)
    a.update(change)
    return a


def step_oracle(a: dict) -> tuple[torch.Tensor, torch.Tensor]:
    x, y, h = np_(a["denoised"]), np_(a["y"]), np_(a["h"]).reshape(-1, 1, 1, 1)
    d = x - y
    if a["lifted"] is not None:
        if a["mask"] is not None:
            P = np_(a["mask"]) * x
        elif a["factor"]:
            s = a["factor"]
            B, C, H, W = x.shape
            means = x.reshape(B, C, H // s, s, W // s, s).mean(axis=(3, 5), keepdims=True)
            P = np.broadcast_to(means, (B, C, H // s, s, W // s, s)).reshape(x.shape)
        else:
            P = np_(a["projected"])
        d = d + np_(a["lifted"]) - P
    B = x.shape[0]
    sigma = np.sqrt((d**2).reshape(B, -1).sum(1) / (d[0].size or 1))
    return torch.from_numpy(y + h * d), torch.from_numpy(sigma)


ORDER = ("denoised", "y", "h", "c", "seed", "offset", "lifted", "mask", "factor", "projected")


def step_call(op=constrained_step, backend=None, **change):
    a = change.pop("a") if "a" in change else step_args(**change)
    kw = {} if op is constrained_step_reference else {"backend": backend}
    return op(*(a[k] for k in ORDER), **kw)


CS, CSR = f"{OPS}.constrained_step", f"{OPS}.constrained_step_reference"


def s64(**change) -> dict:
    return step_args(dtype=F64, **change)


def _noisy_sigma() -> torch.Tensor:
    """With c > 0, sigma is still ||d|| / sqrt(N) (the noise is added after it)."""
    return step_call(a=s64(form="none", c=torch.ones(2, dtype=F64)))[1]


CASES += [
    Good(
        CS, "dtype", "float64, mask", lambda: step_call(a=s64()), lambda: step_oracle(s64()), 1e-14
    ),
    Good(
        CS,
        "dtype",
        "float64, block mean factor 2",
        lambda: step_call(a=s64(form="factor")),
        lambda: step_oracle(s64(form="factor")),
        1e-14,
    ),
    Good(
        CS,
        "dtype",
        "float64, projected given",
        lambda: step_call(a=s64(form="projected")),
        lambda: step_oracle(s64(form="projected")),
        1e-14,
    ),
    Good(
        CS,
        "value",
        "c = 1: sigma unchanged by the noise",
        _noisy_sigma,
        lambda: step_oracle(s64(form="none"))[1],
        1e-14,
    ),
    Good(
        CS,
        "layout",
        "channels_last images (reference chosen)",
        lambda: step_call(
            a={
                **s64(shape=(2, 3, 4, 4)),
                **{
                    k: channels_last(s64(shape=(2, 3, 4, 4))[k])
                    for k in ("denoised", "y", "lifted")
                },
            }
        ),
        lambda: step_oracle(s64(shape=(2, 3, 4, 4))),
        1e-14,
    ),
    Good(
        CS,
        "dtype",
        "float32 on triton (interpreter), block mean",
        lambda: step_call(backend="triton", form="factor"),
        lambda: step_oracle(step_args(form="factor")),
        1e-5,
    ),
    Good(
        CS,
        "size",
        "1x1 images, no constraint",
        lambda: step_call(a=s64(shape=(2, 1, 1, 1), form="none")),
        lambda: step_oracle(s64(shape=(2, 1, 1, 1), form="none")),
        1e-15,
    ),
    Good(
        CS,
        "size",
        "empty batch: empty results",
        lambda: step_call(a=step_args(shape=(0, 1, 4, 4), form="none")),
        lambda: (torch.zeros(0, 1, 4, 4), torch.zeros(0)),
        0.0,
    ),
    Bad(
        CS,
        "meta",
        "all on the meta device (was a torch generator error)",
        lambda: step_call(
            a={
                k: v.to("meta") if isinstance(v, torch.Tensor) else v
                for k, v in step_args().items()
            }
        ),
        ValueError,
        r"constrained_step: y is on the meta device",
    ),
    Bad(
        CS,
        "meta",
        "meta mask",
        lambda: step_call(mask=torch.ones(1, 1, 4, 4, device="meta")),
        ValueError,
        r"constrained_step: mask is on meta, y on cpu",
    ),
    Bad(
        CS,
        "layout",
        "channels_last on triton by name",
        lambda: step_call(
            backend="triton",
            a={
                **step_args(shape=(2, 3, 4, 4)),
                "y": channels_last(step_args(shape=(2, 3, 4, 4))["y"]),
            },
        ),
        BackendError,
        r"constrained_step: backend 'triton' cannot run this call: inputs must be contiguous "
        r"\(y is not",
    ),
    Bad(
        CS,
        "dtype",
        "complex images",
        lambda: step_call(a=step_args(dtype=C64, form="none")),
        TypeError,
        r"constrained_step: y must be float32 or float64, not torch.complex64",
    ),
    Bad(
        CS,
        "dtype",
        "bfloat16 images",
        lambda: step_call(a=step_args(dtype=torch.bfloat16, form="none")),
        TypeError,
        r"constrained_step: y must be float32 or float64, not torch.bfloat16",
    ),
    Bad(
        CS,
        "dtype",
        "bool mask",
        lambda: step_call(mask=torch.ones(1, 1, 4, 4, dtype=torch.bool)),
        TypeError,
        r"constrained_step: mask has dtype torch.bool, y has torch.float32",
    ),
    Bad(
        CS,
        "dtype",
        "float64 h with float32 images",
        lambda: step_call(h=torch.ones(2, dtype=F64)),
        TypeError,
        r"constrained_step: h has dtype torch.float64, y has torch.float32",
    ),
    Bad(
        CS,
        "rank",
        "3-d y and denoised",
        lambda: step_call(
            a=step_args(form="none") | {"y": rand(1, 4, 4), "denoised": rand(1, 4, 4)}
        ),
        ValueError,
        r"constrained_step: y must be \[B, C, H, W\], got shape \(1, 4, 4\)",
    ),
    Bad(
        CS,
        "mismatch",
        "mask of 3 rows for 2 images",
        lambda: step_call(mask=torch.ones(3, 1, 4, 4)),
        ValueError,
        r"constrained_step: mask must be \[Bm, 1, 4, 4\] with Bm dividing 2, got shape \(3, 1, 4, 4\)",
    ),
    Bad(
        CS,
        "mismatch",
        "projected of another size",
        lambda: step_call(form="projected", projected=rand(2, 1, 4, 5)),
        ValueError,
        r"constrained_step: projected has shape \(2, 1, 4, 5\), y has \(2, 1, 4, 4\)",
    ),
    Bad(
        CS,
        "mismatch",
        "c of one image for 2",
        lambda: step_call(c=torch.zeros(1)),
        ValueError,
        r"constrained_step: c must have shape \(2,\), got \(1,\)",
    ),
    Bad(
        CS,
        "size",
        "factor larger than the image",
        lambda: step_call(form="factor", factor=8),
        ValueError,
        r"constrained_step: factor 8 must divide the image size 4x4",
    ),
    Bad(
        CS,
        "value",
        "negative factor",
        lambda: step_call(form="factor", factor=-2),
        ValueError,
        r"constrained_step: factor must be an int >= 0",
    ),
    Bad(
        CS,
        "value",
        "seed 2**63",
        lambda: step_call(seed=2**63),
        ValueError,
        r"constrained_step: seed must be an int in \[0, 2\*\*63 - 1\], not 9223372036854775808",
    ),
    Bad(
        CS,
        "value",
        "negative offset",
        lambda: step_call(offset=-1),
        ValueError,
        r"constrained_step: offset must be an int in \[0, 2\*\*63 - 1\], not -1",
    ),
    Bad(
        CS,
        "type",
        "float seed",
        lambda: step_call(seed=1.0),
        TypeError,
        r"constrained_step: seed must be an int",
    ),
    Bad(
        CS,
        "type",
        "float h",
        lambda: step_call(h=0.1),
        TypeError,
        r"constrained_step: h must be a tensor",
    ),
    Bad(
        CS,
        "name",
        "unknown backend",
        lambda: step_call(backend="ref"),
        ValueError,
        r"backend must be one of cuda, triton, reference, not 'ref'",
    ),
    Good(
        CSR,
        "dtype",
        "float64, mask",
        lambda: step_call(constrained_step_reference, a=s64()),
        lambda: step_oracle(s64()),
        1e-14,
    ),
    Bad(
        CSR,
        "meta",
        "all on the meta device (was a torch generator error)",
        lambda: step_call(
            constrained_step_reference,
            a={
                k: v.to("meta") if isinstance(v, torch.Tensor) else v
                for k, v in step_args().items()
            },
        ),
        ValueError,
        r"constrained_step_reference: y is on the meta device",
    ),
    Bad(
        CSR,
        "mismatch",
        "h of 3 images for 2 (was a torch broadcast error)",
        lambda: step_call(constrained_step_reference, h=torch.ones(3)),
        ValueError,
        r"constrained_step_reference: h must have shape \(2,\), got \(3,\)",
    ),
    Bad(
        CSR,
        "value",
        "mask and factor both given",
        lambda: step_call(constrained_step_reference, factor=2),
        ValueError,
        r"constrained_step_reference: with lifted, give exactly one of mask, factor, projected",
    ),
]


# -- NaN passes through the fused ops (no data is read), confined to the image that holds it ------


def nan_images(out) -> torch.Tensor:
    """1.0 for each image of out (the first result for tuples) that holds a NaN, else 0.0."""
    t = out[0] if isinstance(out, tuple) else out
    t = torch.view_as_real(t) if t.is_complex() else t
    return torch.isnan(t).flatten(1).any(1).double()


def finite_images(out: torch.Tensor) -> torch.Tensor:
    """1.0 for each image of out whose values are all finite, else 0.0."""
    t = torch.view_as_real(out) if out.is_complex() else out
    return torch.isfinite(t).flatten(1).all(1).double()


def with_nan(t: torch.Tensor, b: int = 1, value: float = NAN) -> torch.Tensor:
    t = t.clone()
    t[b].view(-1)[0] = value
    return t


CASES += [
    Good(
        FP,
        "nan-inf",
        "NaN gamma of image 1: only image 1 is NaN",
        lambda: nan_images(prox_call(gamma=with_nan(spectral()["gamma"]))),
        lambda: torch.tensor([0.0, 1.0], dtype=F64),
        0.0,
    ),
    Good(
        FP,
        "value",
        "negative gamma is not checked here: the formula",
        lambda: real(prox_call(gamma=torch.tensor([-0.25, 2.0]))),
        lambda: prox_oracle({**spectral(), "gamma": torch.tensor([-0.25, 2.0])}),
        1e-6,
    ),
    Good(
        FG,
        "nan-inf",
        "Inf in kty of image 0: image 0 non-finite only",
        lambda: finite_images(grad_call(kty=with_nan(grad_args()["kty"], 0, INF))),
        lambda: torch.tensor([0.0, 1.0], dtype=F64),
        0.0,
    ),
    Good(
        PU,
        "nan-inf",
        "NaN in f of image 1 (triton): only image 1 is NaN",
        lambda: nan_images(update_call(backend="triton", f=with_nan(update_args()["f"]))),
        lambda: torch.tensor([0.0, 1.0], dtype=F64),
        0.0,
    ),
    Good(
        CS,
        "nan-inf",
        "NaN in the denoised image 0: only image 0 is NaN",
        lambda: nan_images(step_call(denoised=with_nan(step_args()["denoised"], 0))),
        lambda: torch.tensor([1.0, 0.0], dtype=F64),
        0.0,
    ),
]


@params(CASES)
def test_fuzz(case):
    check(case)
