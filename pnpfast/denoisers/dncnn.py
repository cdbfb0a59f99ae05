"""DnCNN and its bias-free variant, with the state-dict layouts of the public weight files.

K. Zhang, W. Zuo, Y. Chen, D. Meng, L. Zhang, "Beyond a Gaussian denoiser: residual learning
of deep CNN for image denoising", IEEE TIP 2017 (DnCNN);
S. Mohan, Z. Kadkhodaie, E. P. Simoncelli, C. Fernandez-Granda, "Robust and interpretable blind
image denoising via bias-free convolutional neural networks", ICLR 2020 (BF-DnCNN).
"""

from typing import Literal

import torch
import torch.nn.functional as F

from pnpfast._validate import flag, integer
from pnpfast.denoisers._layers import MAX_DEPTH, conv3x3, load_mapped, network_input
from pnpfast.denoisers.base import Denoiser

__all__ = ["BiasFreeBatchNorm2d", "DnCNN"]

Norm = Literal["batch", "bias-free", "none"]
Layout = Literal["mohan", "kair", "saoyan"]

LAYOUTS: tuple[str, ...] = ("mohan", "kair", "saoyan")
_NORM_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class BiasFreeBatchNorm2d(torch.nn.BatchNorm2d):
    """The bias-free batch normalisation of Mohan et al. (ICLR 2020).

    Eval: ``h / (sqrt(running_var) + eps) * weight`` per channel (eps added after the square
    root; no mean subtraction; ``bias`` and ``running_mean`` are kept in the state dict but not
    used). Train: the same with the batch standard deviation (biased, over N, H, W) in place of
    ``sqrt(running_var)``, and ``running_var`` updated like ``BatchNorm2d`` (unbiased batch
    variance, ``momentum``). Default eps = 1e-5. Shape: [B, F, H, W] -> [B, F, H, W].
    """

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.training:
            var = h.var(dim=(0, 2, 3), unbiased=False)
            n = h.numel() // h.shape[1]
            with torch.no_grad():
                self.running_var.lerp_(var.detach() * n / max(n - 1, 1), self.momentum)
                self.num_batches_tracked.add_(1)
            sd = var.sqrt()
        else:
            sd = self.running_var.sqrt()
        return h / (sd + self.eps).view(1, -1, 1, 1) * self.weight.view(1, -1, 1, 1)


class DnCNN(Denoiser):
    """DnCNN (Zhang et al., TIP 2017) and BF-DnCNN (Mohan et al., ICLR 2020), blind.

    ``depth`` 3x3 convolutions: ``first`` C -> F and ReLU; ``depth - 2`` blocks
    ``hidden[i]`` F -> F, ``norms[i]``, ReLU; ``last`` F -> C. The network output is the
    residual r(y) and the denoiser returns ``D(y, sigma) = y - r(y)``; ``sigma`` is ignored.

    Options (each public weight file is one combination; the loader reads them from the keys):

    * ``bias``: biases in the convolutions.
    * ``norm="batch"``: ``torch.nn.BatchNorm2d`` (eval: ``(h - mean) / sqrt(var + 1e-5) * w + b``);
      ``norm="bias-free"``: ``BiasFreeBatchNorm2d`` (eval: ``h / (sqrt(var) + 1e-5) * w``);
      ``norm="none"``: no normalisation (batch norm already folded into the convolutions).

    ===========================  =====  ===========  =====  ==========================
    weights                      depth  norm         bias   state-dict layout
    ===========================  =====  ===========  =====  ==========================
    Mohan et al. BF-DnCNN        20     bias-free    no     ``"mohan"``
    Mohan et al. DnCNN           20     batch        yes    ``"mohan"``
    KAIR dncnn_25                17     none         yes    ``"kair"``
    SaoYan DnCNN-S / DnCNN-B     17/20  batch        no     ``"saoyan"``
    ===========================  =====  ===========  =====  ==========================

    With ``bias=False`` and ``norm`` in ("bias-free", "none") the network is positively
    homogeneous: ``D(a y) = a D(y)`` for a > 0. Defaults: ``channels=1``, ``depth=17``,
    ``features=64``, ``bias=True``, ``norm="batch"``. Shapes: y [B, C, H, W], any H, W; the
    network runs in the dtype of its weights and returns the dtype of y.
    """

    blind = True

    def __init__(
        self,
        channels: int = 1,
        depth: int = 17,
        features: int = 64,
        *,
        bias: bool = True,
        norm: Norm = "batch",
    ) -> None:
        super().__init__()
        integer("channels", channels, 1)
        integer("depth", depth, 3, MAX_DEPTH)
        integer("features", features, 1)
        flag("bias", bias)
        if not isinstance(norm, str) or norm not in ("batch", "bias-free", "none"):
            raise ValueError(f"norm must be 'batch', 'bias-free' or 'none', not {norm!r}")
        self.channels = channels
        self.depth = depth
        self.features = features
        self.bias = bias
        self.norm = norm
        self.first = conv3x3(channels, features, bias)
        self.hidden = torch.nn.ModuleList(
            conv3x3(features, features, bias) for _ in range(depth - 2)
        )
        norm_class = {"batch": torch.nn.BatchNorm2d, "bias-free": BiasFreeBatchNorm2d}.get(norm)
        self.norms = torch.nn.ModuleList(
            [] if norm_class is None else [norm_class(features) for _ in range(depth - 2)]
        )
        self.last = conv3x3(features, channels, bias)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, bias={self.bias}, norm={self.norm!r}"

    def config(self) -> dict:
        """The constructor arguments, enough to rebuild the architecture."""
        return {
            "arch": "dncnn",
            "channels": self.channels,
            "depth": self.depth,
            "features": self.features,
            "bias": self.bias,
            "norm": self.norm,
        }

    def residual(self, y: torch.Tensor) -> torch.Tensor:
        """The network output r(y), the noise estimate: [B, C, H, W] -> [B, C, H, W]."""
        h = F.relu(self.first(y))
        for i, conv in enumerate(self.hidden):
            h = conv(h)
            if len(self.norms):
                h = self.norms[i](h)
            h = F.relu(h)
        return self.last(h)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """``x - r(x)``; sigma is checked for its form and otherwise ignored."""
        x, _ = self.check_input(x, sigma)
        y = network_input(x, self.first.weight)
        return (y - self.residual(y)).to(x.dtype)

    def _layer_names(self, layout: str) -> tuple[str, list[str], list[str], str]:
        n = self.depth - 2
        if layout == "mohan":
            if self.norm == "none":
                raise ValueError("the 'mohan' layout has normalisation layers; norm='none' given")
            return (
                "first_layer",
                [f"hidden_layer_list.{i}" for i in range(n)],
                [f"bn_layer_list.{i}" for i in range(n)],
                "last_layer",
            )
        if layout == "kair":
            if self.norm != "none":
                raise ValueError(f"the 'kair' layout has no normalisation; norm={self.norm!r}")
            # nn.Sequential of conv, ReLU pairs: the convolutions sit at the even indices
            return ("model.0", [f"model.{2 * (i + 1)}" for i in range(n)], [], f"model.{2 * n + 2}")
        if layout == "saoyan":
            if self.norm == "none":
                raise ValueError("the 'saoyan' layout has normalisation layers; norm='none' given")
            # nn.Sequential: conv, ReLU, then (conv, norm, ReLU) triples, then the last conv
            return (
                "dncnn.0",
                [f"dncnn.{2 + 3 * i}" for i in range(n)],
                [f"dncnn.{3 + 3 * i}" for i in range(n)],
                f"dncnn.{3 * n + 2}",
            )
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")

    def file_keys(self, layout: Layout) -> dict[str, str]:
        """The key mapping file -> module for a state dict in ``layout``.

        ``"mohan"``: ``first_layer``, ``hidden_layer_list.i``, ``bn_layer_list.i``,
        ``last_layer``. ``"kair"``: ``model.{0, 2, ..., 2 (depth-1)}``. ``"saoyan"``:
        ``dncnn.0``, ``dncnn.{2 + 3 i}`` (conv), ``dncnn.{3 + 3 i}`` (norm),
        ``dncnn.{3 (depth-2) + 2}`` (without the ``module.`` prefix of nn.DataParallel).
        """
        first, hidden, norms, last = self._layer_names(layout)
        params = ("weight", "bias") if self.bias else ("weight",)
        mapping = {f"{first}.{p}": f"first.{p}" for p in params}
        for i, name in enumerate(hidden):
            mapping.update({f"{name}.{p}": f"hidden.{i}.{p}" for p in params})
            if norms:
                mapping.update({f"{norms[i]}.{p}": f"norms.{i}.{p}" for p in _NORM_KEYS})
        mapping.update({f"{last}.{p}": f"last.{p}" for p in params})
        return mapping

    def load_weights(self, state: dict[str, torch.Tensor], layout: Layout) -> "DnCNN":
        """Load a state dict in ``layout`` (see ``file_keys``) into this module.

        Strict: a missing or unexpected key or a wrong shape raises ValueError listing them;
        only ``num_batches_tracked``, absent from files saved before PyTorch 0.4.1, may be
        missing.
        """
        mapping = self.file_keys(layout)
        optional = frozenset(k for k in mapping if k.endswith(".num_batches_tracked"))
        load_mapped(self, state, mapping, optional=optional)
        return self
