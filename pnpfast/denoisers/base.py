"""The denoiser protocol of pnpfast.

A denoiser is a ``torch.nn.Module`` called as

    x_hat = D(x, sigma)

with ``x`` of shape [B, C, H, W] on the [0, 1] scale and ``sigma`` the standard deviation of the
additive white Gaussian noise on the same scale (25/255 for the usual "sigma = 25"): a Python
float (one level for the whole batch) or a tensor of length B (one level per image). The result
has the shape and dtype of ``x``. Blind networks ignore ``sigma`` (they still check its form);
classical denoisers set their strength from it, image by image, without a Python loop over the
batch.

A denoiser checks the form of ``x`` (type, rank, floating dtype, channels, no size 0, not on the
meta device) but never reads its values, since solvers call it inside their iterations: NaN or
Inf in an image give NaN or Inf in that image's output, as torch ops do, and the solvers and
diagnostics detect them at their own synchronisation points.
"""

import torch

from pnpfast import _validate

__all__ = ["Denoiser", "check_image", "sigma_per_image"]


def check_image(x: object, channels: int | None = None) -> torch.Tensor:
    """Check that ``x`` is a floating [B, C, H, W] tensor with ``channels`` channels.

    ``channels=None`` accepts any channel count. Structural checks only: the values are not
    read, so the check never synchronises with a device. Errors name ``x``: TypeError for a
    non-tensor or a non-floating dtype, ValueError for a wrong rank or channel count, a size 0
    (batch, channels, height or width) and a tensor on the meta device.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape [B, C, H, W], not {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape [B, C, H, W] (4 dimensions), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must have a floating dtype, not {str(x.dtype).removeprefix('torch.')}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"x has {x.shape[1]} channels but this denoiser takes {channels} "
            f"(shape {tuple(x.shape)})"
        )
    if x.device.type == "meta":
        raise ValueError("x is on the meta device (it holds no data): move it to cpu or cuda first")
    if x.numel() == 0:
        what = "a batch of size 0" if x.shape[0] == 0 else "a dimension of size 0"
        raise ValueError(f"x has {what} (shape {tuple(x.shape)}): there is nothing to denoise")
    return x


def sigma_per_image(sigma: object, x: torch.Tensor, *, check_values: bool = True) -> torch.Tensor:
    """The noise level as a [B] tensor on the device and in the dtype of ``x``.

    ``sigma`` is a Python float or int (the same level for every image), a 0-d tensor, or a 1-d
    tensor of length B (one level per image; length 1 is broadcast). With ``check_values`` the
    levels must be finite and >= 0; for a tensor on an accelerator that check reads the values
    (one synchronisation), so blind networks, which ignore sigma, pass ``check_values=False``
    and only the form is checked. Errors name ``sigma``: TypeError for a wrong type (bool,
    string, complex or boolean tensor), ValueError for a wrong shape or length, a negative value,
    NaN or Inf.
    """
    return _validate.per_image(
        "sigma", sigma, x.shape[0], x, nonnegative=True, check_values=check_values
    )


def check_denoised(out: object, x: torch.Tensor, what: str = "input") -> torch.Tensor:
    """``out`` = D(x, sigma) checked against x by its metadata alone (shape, dtype, device; no
    pass over the data), so that a denoiser returning the wrong thing is named rather than an
    inner op failing later; ``what`` names x in the message ("input", "a tile")."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"the denoiser returned {type(out).__name__}, not a torch.Tensor, for {what} of "
            f"shape {tuple(x.shape)}"
        )
    if out.shape != x.shape:
        raise ValueError(
            f"the denoiser returned shape {tuple(out.shape)} for {what} of shape "
            f"{tuple(x.shape)}; D(x, sigma) must return x's shape"
        )
    if out.dtype != x.dtype:
        raise TypeError(
            f"the denoiser returned dtype {out.dtype} for {what} of dtype {x.dtype}; "
            "D(x, sigma) must return x's dtype"
        )
    if out.device != x.device:
        raise ValueError(
            f"the denoiser returned a tensor on {out.device} for {what} on {x.device}; "
            "D(x, sigma) must return a tensor on x's device"
        )
    return out


class Denoiser(torch.nn.Module):
    """Base class of every pnpfast denoiser: ``D(x, sigma) -> x_hat``.

    Shapes: x [B, C, H, W] (floating, values on the [0, 1] scale); sigma a float or a [B]
    tensor of noise standard deviations on the same scale; x_hat [B, C, H, W] with x's dtype.

    Class attributes a subclass may set:

    * ``channels``: the channel count the denoiser accepts (``None``: any).
    * ``blind``: ``True`` for a network that does not use ``sigma``.

    Subclasses implement ``forward(x, sigma)``; the helpers ``check_image`` and
    ``sigma_per_image`` give the argument checks with errors that name ``x`` and ``sigma``.
    """

    channels: int | None = None
    blind: bool = False

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward(x, sigma)")

    def check_input(self, x: object, sigma: object) -> tuple[torch.Tensor, torch.Tensor]:
        """Check ``x`` against ``self.channels`` and turn ``sigma`` into a [B] tensor.

        For a blind denoiser only the form of ``sigma`` is checked (its values are not read).
        """
        x = check_image(x, self.channels)
        return x, sigma_per_image(sigma, x, check_values=not self.blind)
