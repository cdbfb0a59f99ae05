"""Input checks shared by the fused ops: clear errors for the public call, reasons for dispatch."""

import math

import torch

REAL_OF_COMPLEX = {torch.complex64: torch.float32, torch.complex128: torch.float64}


def require(condition: bool, message: str, error: type[Exception] = ValueError) -> None:
    if not condition:
        raise error(message)


def require_not_meta(op: str, name: str, t: torch.Tensor) -> None:
    """t holds data (not on the meta device); metadata only, no sync. Fake tensors under
    torch.compile report the device they stand for, so they pass. Empty tensors are valid
    input to every fused op (an empty output, like torch ops)."""
    require(
        t.device.type != "meta",
        f"{op}: {name} is on the meta device (it holds no data): move it to cpu or cuda first",
    )


def check_spectra(
    op: str, complex_args: dict[str, torch.Tensor], real_args: dict[str, torch.Tensor], layout: str
) -> None:
    """The checks every spectral op starts with: all tensors, the first complex argument
    (v_hat) complex64 or complex128, the other complex ones of its dtype, the real ones of the
    matching real dtype, one device, v_hat of rank 4 (``layout`` names its axes) and not meta."""
    named = {**complex_args, **real_args}
    for name, t in named.items():
        require(isinstance(t, torch.Tensor), f"{op}: {name} must be a tensor", TypeError)
    v_hat = complex_args["v_hat"]
    require(
        v_hat.dtype in REAL_OF_COMPLEX,
        f"{op}: v_hat must be complex64 or complex128, not {v_hat.dtype}",
        TypeError,
    )
    real = REAL_OF_COMPLEX[v_hat.dtype]
    for name, t in complex_args.items():
        require(
            t.dtype == v_hat.dtype,
            f"{op}: {name} has dtype {t.dtype}, v_hat has {v_hat.dtype}",
            TypeError,
        )
    for name, t in real_args.items():
        require(
            t.dtype == real, f"{op}: {name} must be {real} to match v_hat, not {t.dtype}", TypeError
        )
    devices = {name: t.device for name, t in named.items()}
    require(len(set(devices.values())) == 1, f"{op}: tensors on different devices: {devices}")
    require(v_hat.dim() == 4, f"{op}: v_hat must be {layout}, got shape {tuple(v_hat.shape)}")
    require_not_meta(op, "v_hat", v_hat)


def check_spectral_args(op: str, v_hat, kty, k2, coeffs: dict[str, torch.Tensor]) -> None:
    """Validate the arguments of a spectral op; raise TypeError/ValueError naming the argument.

    v_hat, kty: [B, C, H, Wr] complex; k2: [Bk, 1, H, Wr] real with Bk in {1, B};
    every tensor in ``coeffs``: [B] real.
    """
    check_spectra(op, {"v_hat": v_hat, "kty": kty}, {"k2": k2, **coeffs}, "[B, C, H, Wr]")
    require(
        kty.shape == v_hat.shape,
        f"{op}: kty shape {tuple(kty.shape)} != v_hat shape {tuple(v_hat.shape)}",
    )
    B, _, H, Wr = v_hat.shape
    require(
        k2.dim() == 4
        and k2.shape[0] in (1, B)
        and k2.shape[1] == 1
        and tuple(k2.shape[2:]) == (H, Wr),
        f"{op}: k2 must be [1 or {B}, 1, {H}, {Wr}], got shape {tuple(k2.shape)}",
    )
    for name, t in coeffs.items():
        require(t.shape == (B,), f"{op}: {name} must have shape ({B},), got {tuple(t.shape)}")


def not_contiguous(**tensors: torch.Tensor | None) -> str | None:
    """The reason a fast path refuses the first non-contiguous tensor, naming it; None when
    all are contiguous (None entries are absent arguments)."""
    for name, t in tensors.items():
        if t is not None and not t.is_contiguous():
            return f"inputs must be contiguous ({name} is not: call .contiguous() on it)"
    return None


def fast_path_check(v_hat, kty, k2, *coeffs) -> str | None:
    """Why a Triton/CUDA spectral kernel cannot take these inputs (None when it can)."""
    names = ("gamma",) if len(coeffs) == 1 else ("s", "t")
    reason = not_contiguous(v_hat=v_hat, kty=kty, k2=k2, **dict(zip(names, coeffs, strict=True)))
    if reason:
        return reason
    if v_hat.shape[0] * v_hat.shape[1] > 65535:
        return "more than 65535 image planes in one call"
    if math.prod(v_hat.shape[2:]) * 2 >= 2**31:
        return "an image plane with 2**30 or more frequencies"
    return None
