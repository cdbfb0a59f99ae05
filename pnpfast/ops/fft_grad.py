"""The fused spectral pass of a gradient (or gradient step) of a circular-convolution data term.

For f(x) = 1/2 ||k * x - y||^2, grad f(x) = k^T (k * x - y), in the Fourier domain
|K^|^2 X^ - conj(K^) Y^. One pass computes the per-image affine combination

    out^ = (s_b |K^|^2 + t_b) V^ - s_b conj(K^) Y^

so that s = 1, t = 0 gives grad f, and s = -tau, t = 1 gives the gradient step
v - tau grad f(v) of PnP-PGD/FISTA (Kamilov et al., "Plug-and-Play Methods for Integrating
Physical and Learned Models in Computational Imaging", IEEE SPM 2023), each in one rfft2,
this pass, and one irfft2.

Shapes: v_hat, kty [B, C, H, Wr] complex; k2 [Bk, 1, H, Wr] real, Bk in {1, B}; s, t [B] real.
"""

import torch

from pnpfast.dispatch import FusedOp
from pnpfast.ops._alloc import empty_output
from pnpfast.ops._checks import check_spectral_args, fast_path_check


def fft_grad_reference(
    v_hat: torch.Tensor, kty: torch.Tensor, k2: torch.Tensor, s: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Readable torch: (s k2 + t) v_hat - s kty, s and t broadcast per image. Its arguments
    are checked as ``fft_grad``'s are (metadata only: NaN passes through)."""
    check_spectral_args("fft_grad_reference", v_hat, kty, k2, {"s": s, "t": t})
    return _fft_grad_unchecked(v_hat, kty, k2, s, t)


def _fft_grad_unchecked(v_hat, kty, k2, s, t) -> torch.Tensor:
    # the reference after fft_grad has checked the arguments
    s = s.view(-1, 1, 1, 1)
    t = t.view(-1, 1, 1, 1)
    return (s * k2 + t) * v_hat - s * kty


@torch.library.custom_op("pnpfast::fft_grad_triton", mutates_args=())
def _fft_grad_triton(
    v_hat: torch.Tensor, kty: torch.Tensor, k2: torch.Tensor, s: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    from pnpfast.kernels.fft_grad import fft_grad_triton

    out = empty_output(v_hat)
    if out.numel() == 0:  # nothing to launch: a grid with no programs
        return out
    fft_grad_triton(
        torch.view_as_real(v_hat), torch.view_as_real(kty), k2, s, t, torch.view_as_real(out)
    )
    return out


@torch.library.custom_op("pnpfast::fft_grad_cuda", mutates_args=())
def _fft_grad_cuda(
    v_hat: torch.Tensor, kty: torch.Tensor, k2: torch.Tensor, s: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    out = empty_output(v_hat)
    if out.numel() == 0:  # nothing to launch: a grid with no programs
        return out
    torch.ops.pnpfast_C.fft_grad_out(
        torch.view_as_real(v_hat), torch.view_as_real(kty), k2, s, t, torch.view_as_real(out)
    )
    return out


@_fft_grad_triton.register_fake
@_fft_grad_cuda.register_fake
def _fft_grad_fake(v_hat, kty, k2, s, t):
    return torch.empty_like(v_hat)


_op = FusedOp(
    "fft_grad",
    _fft_grad_unchecked,
    {"triton": (_fft_grad_triton, fast_path_check), "cuda": (_fft_grad_cuda, fast_path_check)},
)


def fft_grad(
    v_hat: torch.Tensor,
    kty: torch.Tensor,
    k2: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    backend: str | None = None,
) -> torch.Tensor:
    """(s k2 + t) v_hat - s kty per image, on the fastest backend that accepts it."""
    check_spectral_args("fft_grad", v_hat, kty, k2, {"s": s, "t": t})
    return _op(v_hat, kty, k2, s, t, backend=backend)
