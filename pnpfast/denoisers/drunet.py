"""DRUNet: a residual U-Net denoiser, noise-conditional (noise-level map input) or blind, with
bias-free and smooth-activation options.

K. Zhang, Y. Li, W. Zuo, L. Zhang, L. Van Gool, R. Timofte, "Plug-and-play image restoration
with deep denoiser prior", IEEE TPAMI 2021 (DPIR; the architecture: a U-Net whose levels are
residual blocks, strided 2x2 convolutions down, transposed 2x2 convolutions up, additive skip
connections, the noise level as an extra constant input channel, no normalisation).

The width of each level, the residual blocks per level, biases, the activation and whether the
noise level enters are options, so that one class gives the small shipped defaults, the full
DPIR network (``widths=(64, 128, 256, 512), blocks=4``) and the smooth networks that the
gradient-step and proximal denoisers differentiate (``activation="elu"`` or ``"softplus"``).
"""

import itertools
from typing import Literal

import torch
import torch.nn.functional as F

from pnpfast._validate import flag, integer
from pnpfast.denoisers._layers import (
    MAX_BLOCKS,
    MAX_LEVELS,
    conv3x3,
    load_mapped,
    network_input,
)
from pnpfast.denoisers.base import Denoiser

__all__ = ["DRUNet"]

Activation = Literal["relu", "elu", "softplus", "silu"]
ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "softplus": torch.nn.Softplus,
    "silu": torch.nn.SiLU,
}


class _ResBlock(torch.nn.Module):
    """``h + conv(act(conv(h)))`` at a fixed width (``res`` = conv, act, conv)."""

    def __init__(self, width: int, bias: bool, activation: str) -> None:
        super().__init__()
        self.res = torch.nn.Sequential(
            conv3x3(width, width, bias), ACTIVATIONS[activation](), conv3x3(width, width, bias)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.res(h)


class DRUNet(Denoiser):
    """Residual U-Net denoiser ``D(x, sigma)``, gray or color, noise-conditional or blind.

    With widths ``w_0 .. w_{L-1}`` and ``blocks`` residual blocks per level::

        h_0     = head([x, sigma 1])                       3x3 conv, (C + 1) or C -> w_0
        h_{l+1} = down_l(h_l)      l = 0 .. L-2             ``blocks`` res. blocks at w_l, then
                                                           a 2x2 conv, stride 2, w_l -> w_{l+1}
        u       = body(h_{L-1})                            ``blocks`` res. blocks at w_{L-1}
        u       = up_l(u + h_{l+1})  l = L-2 .. 0          2x2 transposed conv, stride 2,
                                                           w_{l+1} -> w_l, then res. blocks
        D(x)    = tail(u + h_0)                            3x3 conv, w_0 -> C

    where a residual block is ``h + conv(act(conv(h)))``. The output is the denoised image
    itself (no global residual), as in DPIR; with ``residual=True`` the network learns the
    correction instead, ``D(x) = x + tail(u + h_0)``, so that the identity (what a denoiser
    should be at low noise) is the zero map: a small network trained briefly then keeps fine
    detail at low sigma, which the last iterations of DPIR's schedule need. ``noise_map`` (default True) appends a channel
    holding each image's sigma; with ``noise_map=False`` the network is blind and ignores sigma.
    ``bias=False`` removes every bias; blind, bias-free and with ``activation="relu"`` the network
    is positively homogeneous, ``D(a x) = a D(x)`` for a > 0 (Mohan et al., ICLR 2020), which the
    implicit-prior sampler relies on. The defaults are DPIR's DRUNet (32.6 M parameters; its
    public files load with ``load_weights``).

    Any H, W: the input is padded by reflection up to a multiple of ``2**(L-1)`` and the result
    cropped back (the padding is linear, so homogeneity holds). Shapes: x [B, C, H, W], sigma a
    float or a [B] tensor on the [0, 1] scale, result [B, C, H, W] in x's dtype; the network
    runs in the dtype of its weights.
    """

    def __init__(
        self,
        channels: int = 1,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        blocks: int = 4,
        *,
        noise_map: bool = True,
        bias: bool = False,
        activation: Activation = "relu",
        residual: bool = False,
    ) -> None:
        super().__init__()
        integer("channels", channels, 1)
        if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
            raise TypeError(
                f"widths must be a tuple of ints (one per level), not {type(widths).__name__}"
            )
        widths = tuple(widths)
        if any(isinstance(w, bool) or not isinstance(w, int) for w in widths):
            raise TypeError(f"widths must be a tuple of ints, got {widths}")
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be a non-empty tuple of positive ints, got {widths}")
        if len(widths) > MAX_LEVELS:
            raise ValueError(
                f"widths must have at most {MAX_LEVELS} levels (the input is padded to a "
                f"multiple of 2**(levels - 1)), got {len(widths)}"
            )
        integer("blocks", blocks, 0, MAX_BLOCKS)
        for name, value in (("noise_map", noise_map), ("bias", bias), ("residual", residual)):
            flag(name, value)
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}"
            )
        self.channels = channels
        self.widths = widths
        self.blocks = blocks
        self.noise_map = noise_map
        self.bias = bias
        self.activation = activation
        self.residual = residual
        self.blind = not noise_map

        def res_blocks(width: int) -> list[torch.nn.Module]:
            return [_ResBlock(width, bias, activation) for _ in range(blocks)]

        pairs = list(itertools.pairwise(widths))
        self.head = conv3x3(channels + int(noise_map), widths[0], bias)
        self.downs = torch.nn.ModuleList(
            torch.nn.Sequential(*res_blocks(w), torch.nn.Conv2d(w, w_next, 2, 2, bias=bias))
            for w, w_next in pairs
        )
        self.body = torch.nn.Sequential(*res_blocks(widths[-1]))
        self.ups = torch.nn.ModuleList(
            torch.nn.Sequential(
                torch.nn.ConvTranspose2d(w_next, w, 2, 2, bias=bias), *res_blocks(w)
            )
            for w, w_next in pairs
        )
        self.tail = conv3x3(widths[0], channels, bias)

    def config(self) -> dict:
        """The constructor arguments, enough to rebuild the architecture."""
        return {
            "arch": "drunet",
            "channels": self.channels,
            "widths": list(self.widths),
            "blocks": self.blocks,
            "noise_map": self.noise_map,
            "bias": self.bias,
            "activation": self.activation,
            "residual": self.residual,
        }

    def network(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The U-Net on prepared input: x [B, C, H, W] in the weights' dtype and device, sigma
        [B] in the same dtype (unused when blind). H and W are padded here as needed."""
        height, width = x.shape[-2:]
        multiple = 2 ** (len(self.widths) - 1)
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        if pad_h or pad_w:
            # reflection needs pad < size; replicate covers tiny images
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        if self.noise_map:
            level = sigma.view(-1, 1, 1, 1).expand(x.shape[0], 1, *x.shape[-2:])
            x = torch.cat([x, level], dim=1)
        h = [self.head(x)]
        for down in self.downs:
            h.append(down(h[-1]))
        u = self.body(h[-1])
        for k in reversed(range(len(self.ups))):
            u = self.ups[k](u + h[k + 1])
        out = self.tail(u + h[0])
        if self.residual:
            out = out + x[:, : self.channels]
        return out[..., :height, :width]

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        x, level = self.check_input(x, sigma)
        y = network_input(x, self.head.weight)
        return self.network(y, level.to(y.dtype)).to(x.dtype)

    def file_keys(self, layout: str = "kair") -> dict[str, str]:
        """The key mapping file -> module for a state dict in ``layout`` (only ``"kair"``).

        ``"kair"`` is KAIR's ``UNetRes`` (the DPIR DRUNet files ``drunet_gray.pth``,
        ``drunet_color.pth``): ``m_head``; ``m_down{k+1}.{i}.res.{0,2}`` (residual blocks) and
        ``m_down{k+1}.{blocks}`` (2x2 strided conv) for ``downs.{k}``; ``m_body.{i}.res.{0,2}``;
        ``m_up{k+1}.0`` (2x2 transposed conv) and ``m_up{k+1}.{i+1}.res.{0,2}`` for ``ups.{k}``;
        ``m_tail``. Each with ``.weight``, and ``.bias`` when the module has biases. Listed in
        the order the layers run. Raises ValueError for another layout.
        """
        if layout != "kair":
            raise ValueError(f"layout must be 'kair' (KAIR's UNetRes), not {layout!r}")
        params = ("weight", "bias") if self.bias else ("weight",)
        mapping: dict[str, str] = {}

        def add(file_prefix: str, module_prefix: str) -> None:
            mapping.update({f"{file_prefix}.{p}": f"{module_prefix}.{p}" for p in params})

        def add_blocks(file_prefix: str, module_prefix: str, first: int) -> None:
            for i in range(first, first + self.blocks):
                for j in (0, 2):  # conv, activation, conv: the convolutions at 0 and 2
                    add(f"{file_prefix}.{i}.res.{j}", f"{module_prefix}.{i}.res.{j}")

        add("m_head", "head")
        for k in range(len(self.downs)):
            add_blocks(f"m_down{k + 1}", f"downs.{k}", 0)
            add(f"m_down{k + 1}.{self.blocks}", f"downs.{k}.{self.blocks}")
        add_blocks("m_body", "body", 0)
        for k in reversed(range(len(self.ups))):
            add(f"m_up{k + 1}.0", f"ups.{k}.0")
            add_blocks(f"m_up{k + 1}", f"ups.{k}", 1)
        add("m_tail", "tail")
        return mapping

    def load_weights(self, state: dict[str, torch.Tensor], layout: str = "kair") -> "DRUNet":
        """Load a state dict in ``layout`` (see ``file_keys``) into this module; returns self.

        Strict: a missing or unexpected key or a wrong shape raises one ValueError listing
        them (e.g. a color file into a gray network, or a file with biases into ``bias=False``).
        The file's activation is not recorded; DPIR's files were trained with ReLU.
        """
        load_mapped(self, state, self.file_keys(layout))
        return self
