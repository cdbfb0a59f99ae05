"""The denoiser in low precision, channels_last and CUDA graphs (issue 21, "precision and speed").

    D = FastDenoiser(pnpfast.denoisers.load(), precision="bf16", channels_last=True)
    x_hat = D(x, sigma)                 # x float32 in, float32 out; the network ran in bfloat16

Only the denoiser changes: the data steps of a solver see float32 in and out, so the
closed-form proximal maps, the FFTs and the stopping rule keep their precision. What each
precision costs in PSNR on the runner's default job is measured by
``benchmarks/quality_precision.py`` (rows in ``benchmarks/results/precision.jsonl``).

* ``precision``: "fp32" runs the network as it is; "bf16" and "fp16" run it under
  ``torch.autocast(x.device.type, dtype)`` (convolutions and matrix products in that dtype,
  reductions and normalisations kept in float32 by autocast's own lists), and the output is cast
  back to x's dtype. bfloat16 has float32's range (8 exponent bits) and 8 bits of mantissa:
  about 3e-3 relative rounding, no overflow. float16 has 11 bits of mantissa (5e-4) but
  overflows above 65504: a network whose activations grow past it returns Inf, which the solvers
  report as a FloatingPointError naming the images (``nonfinite_images`` finds them in a batch);
  the runner then reruns that batch in fp32. CPU autocast takes both with torch 2.13, but
  float16 convolutions on a CPU without float16 arithmetic are very slow (60x float32 on this
  project's AMD EPYC: use bf16 there); a device whose autocast does not take the dtype is
  refused at the call with a ValueError naming ``precision``. Measured on the runner's default
  job (HQS with the shipped DRUNet, 6 CBSD68 crops of 128x128, Levin kernels, noise 7.65/255;
  fp32 restores them to 28.78 dB): bf16 costs 0.002 dB on average (per image -0.010 to
  +0.004 dB, largest pixel difference 6.6e-3), fp16 0.0003 dB (5.5e-4).
* ``channels_last``: the wrapped module's 4-D parameters are converted to
  ``torch.channels_last`` once (in place: the module is shared with its other users, for whom
  the values are unchanged) and every input is given in that layout, the layout tensor cores and
  cuDNN's NHWC kernels prefer; the output is returned contiguous (NCHW), so the data steps see
  the usual layout. Values equal the contiguous run's up to float round-off.
* ``cuda_graphs``: for each (device, shape, dtype) of x, D(x, sigma) is captured once into a
  ``torch.cuda.CUDAGraph`` reading static input and sigma buffers (after warm-up calls on a side
  stream, as PyTorch's CUDA-graph documentation requires), and later calls copy x and sigma into
  those buffers, replay the graph and return a clone of its static output. A solver calls its
  denoiser on one shape every iteration, so each batch shape is captured once and replayed
  max_iter - 1 times: the host's launch overhead and the denoiser's own synchronisations (a
  sigma check reads the values) are gone from the replays. At most 8 shapes are kept (each
  graph holds its own memory pool); the oldest is released first. Autocast's weight cache is
  off (``cache_enabled=False``), which capture requires. A graph cannot carry gradients: a call
  with x requiring grad under grad mode runs eagerly. If capture raises (a denoiser that
  synchronises with the host or launches work on other streams, an unsupported op), a
  RuntimeWarning says so once and this wrapper runs eagerly from then on; an out-of-memory error
  during capture is raised as it is, so that the runner's halving answers it.

What has not run without a GPU (this machine has none): the CUDA capture itself
(``_cuda_capture``: the side-stream warm-up, ``torch.cuda.graph``, the replay), the speed of any
of the three options on a GPU, and whether the shipped denoisers capture cleanly. The shape-keyed
cache, the copy into the static buffers, the clone of the output, the eviction and the fallback
are tested on the CPU with a stand-in for ``_cuda_capture`` (the ``_capture`` argument) that runs
the function where the graph would replay it.
"""

import warnings
from collections import OrderedDict
from collections.abc import Callable

import torch

from pnpfast._validate import flag
from pnpfast.denoisers.base import Denoiser, check_denoised, check_image, sigma_per_image
from pnpfast.runner.tiles import is_out_of_memory

__all__ = ["PRECISIONS", "FastDenoiser", "check_options", "nonfinite_images"]

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_WARMUP = 3  # the calls before capture, as in PyTorch's CUDA-graph documentation
_MAX_GRAPHS = 8


def check_options(
    precision: str = "fp32", channels_last: bool = False, cuda_graphs: bool = False
) -> tuple[str, bool, bool]:
    """The options of ``FastDenoiser`` checked: (precision, channels_last, cuda_graphs).

    For a configuration object to refuse bad options before any work (the runner's RunConfig).
    Errors: TypeError for a precision that is not a str or a flag that is not a bool;
    ValueError for a precision other than "fp32", "bf16", "fp16". Each names the argument.
    """
    if not isinstance(precision, str):
        raise TypeError(
            f"precision must be a str, one of {', '.join(PRECISIONS)}, not "
            f"{type(precision).__name__}"
        )
    if precision not in PRECISIONS:
        hint = (
            " (bfloat16 is 'bf16', float16 'fp16')" if precision.lower() not in PRECISIONS else ""
        )
        raise ValueError(
            f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}{hint}"
        )
    return precision, flag("channels_last", channels_last), flag("cuda_graphs", cuda_graphs)


def nonfinite_images(x: torch.Tensor) -> list[int]:
    """The indices b (ascending) of the images x[b] holding a NaN or an Inf.

    x: a tensor with the batch as dim 0 ([B, C, H, W], or [B] of per-image values). Reads the
    values: one pass and, on a GPU, one synchronisation; call it after a batch, not inside
    iterations. Errors: TypeError for a non-tensor, ValueError for a 0-d tensor or a tensor on
    the meta device.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor with the batch first, not {type(x).__name__}")
    if x.dim() == 0:
        raise ValueError("x must have a batch dimension (dim 0), got a 0-d tensor")
    if x.device.type == "meta":
        raise ValueError("x is on the meta device (it holds no data): there is nothing to read")
    if x.numel() == 0:
        return []
    bad = ~torch.isfinite(x.detach()).reshape(x.shape[0], -1).all(dim=1)
    return bad.nonzero().flatten().tolist()


def _cuda_capture(
    fn: Callable[[], torch.Tensor], device: torch.device
) -> tuple[Callable[[], None], torch.Tensor]:
    """Capture ``fn()`` (which reads static buffers on ``device``) into a CUDA graph.

    Warm-up: ``fn()`` runs ``_WARMUP`` times on a side stream that waits for the current one
    (so cuDNN picks its algorithms and the caching allocator sees the sizes outside capture),
    then the current stream waits for it; then ``fn()`` is captured by ``torch.cuda.graph``.
    Returns (replay, out): ``replay()`` re-runs the captured work on the current stream and
    writes ``out``, the static output. ``out`` holds no result until the first replay (capture
    records the kernels without running them). Needs a CUDA device; not run on this project's
    CPU machines (see the module docstring).
    """
    with torch.cuda.device(device):
        current = torch.cuda.current_stream(device)
        side = torch.cuda.Stream(device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(_WARMUP):
                fn()
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()
    return graph.replay, out  # the bound method keeps the graph (and its memory pool) alive


class _Graph:
    """One captured shape: the static input and sigma buffers, the replay, the static output."""

    def __init__(self, x: torch.Tensor, sigma: torch.Tensor):
        self.x = torch.empty_like(x, memory_format=torch.contiguous_format)
        self.sigma = torch.empty_like(sigma)
        self.replay: Callable[[], None] | None = None
        self.out: torch.Tensor | None = None

    def load(self, x: torch.Tensor, sigma: torch.Tensor) -> None:
        self.x.copy_(x)
        self.sigma.copy_(sigma)


class FastDenoiser(Denoiser):
    """``D(x, sigma)`` of a wrapped denoiser in ``precision``, with ``channels_last`` and
    ``cuda_graphs`` (see the module docstring for what each does and costs).

    Shapes: x [B, C, H, W] floating, sigma a float or a [B] tensor (passed to the wrapped
    denoiser as given; under ``cuda_graphs`` as a [B] tensor in x's dtype, the static buffer),
    output like x: same shape, dtype (float32 for a float32 x, whatever precision the network
    ran in) and device, contiguous.

    Attributes: ``denoiser`` (the wrapped one: the runner reruns a batch in fp32 with it),
    ``precision``, ``dtype`` (the autocast dtype, None for fp32), ``channels_last``,
    ``cuda_graphs``, ``channels`` and ``blind`` (the wrapped denoiser's, which the solvers
    read), ``graphs`` (the number of shapes captured now) and ``fallback`` (None, or why
    capture failed and the wrapper runs eagerly). ``potential_and_gradient`` is not wrapped: the
    gradient-step methods (gs-pnp, prox-pnp-*) refuse a FastDenoiser, as they refuse a
    TiledDenoiser; their backtracking compares potentials and wants the network's precision.

    ``_capture`` (tests only): a function (fn, device) -> (replay, out) used instead of
    ``_cuda_capture``; with it, devices other than CUDA are accepted under ``cuda_graphs``.

    Errors: TypeError for a denoiser that is not callable, a precision that is not a str, a flag
    that is not a bool; ValueError for another precision; at the call, x's form as every
    denoiser, ValueError naming ``cuda_graphs`` for an x not on a CUDA device and naming
    ``precision`` for a device whose autocast does not take that dtype; for what the wrapped
    denoiser returns, as the solvers' engine (TypeError for a non-tensor or, in fp32, another
    dtype; ValueError for another shape or device).
    """

    def __init__(
        self,
        denoiser: Callable,
        *,
        precision: str = "fp32",
        channels_last: bool = False,
        cuda_graphs: bool = False,
        _capture: Callable | None = None,
    ) -> None:
        super().__init__()
        if not callable(denoiser):
            raise TypeError(
                f"denoiser must be callable as D(x, sigma), not {type(denoiser).__name__}"
            )
        self.precision, self.channels_last, self.cuda_graphs = check_options(
            precision, channels_last, cuda_graphs
        )
        self.dtype = _DTYPES[self.precision]
        if self.channels_last and isinstance(denoiser, torch.nn.Module):
            denoiser.to(memory_format=torch.channels_last)  # 4-D weights only; values unchanged
        self.denoiser = denoiser  # a Module is registered as a submodule (moves with .to())
        self.channels = getattr(denoiser, "channels", None)
        self.blind = getattr(denoiser, "blind", False)
        self._capture = _cuda_capture if _capture is None else _capture
        self._any_device = _capture is not None
        self._graphs: OrderedDict[tuple, _Graph] = OrderedDict()
        self.fallback: str | None = None

    @property
    def graphs(self) -> int:
        """The number of input shapes captured now."""
        return len(self._graphs)

    def extra_repr(self) -> str:
        return (
            f"precision={self.precision!r}, channels_last={self.channels_last}, "
            f"cuda_graphs={self.cuda_graphs}"
        )

    def _autocast(self, device_type: str):
        if not torch.amp.is_autocast_available(device_type):
            raise ValueError(
                f"precision={self.precision!r} needs torch.autocast, which torch does not offer "
                f"on {device_type}: use precision='fp32' there"
            )
        return torch.autocast(device_type, dtype=self.dtype, cache_enabled=False)

    def _run(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """The eager call: x in channels_last if asked, the network under autocast if asked."""
        inp = x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
        if self.dtype is None:
            out = self.denoiser(inp, sigma)
        else:
            with warnings.catch_warnings():  # an unsupported dtype only warns: refused below
                warnings.simplefilter("ignore", UserWarning)
                context = self._autocast(x.device.type)
            with context:
                if not torch.is_autocast_enabled(x.device.type):
                    raise ValueError(
                        f"precision={self.precision!r}: torch.autocast on {x.device.type} does "
                        f"not take {str(self.dtype).removeprefix('torch.')}; use "
                        f"precision='fp32'" + (" or 'bf16'" if self.precision == "fp16" else "")
                    )
                out = self.denoiser(inp, sigma)
            if isinstance(out, torch.Tensor) and out.is_floating_point():
                out = out.to(x.dtype)  # the data steps stay in x's precision
        out = check_denoised(out, x)
        return out.contiguous() if self.channels_last else out

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        x = check_image(x, self.channels)
        if not self.cuda_graphs:
            return self._run(x, sigma)
        if x.device.type != "cuda" and not self._any_device:
            raise ValueError(
                f"cuda_graphs=True needs x on a CUDA device, not on {x.device}: use "
                f"cuda_graphs=False (CUDA graphs exist only on NVIDIA GPUs)"
            )
        if self.fallback is not None or (torch.is_grad_enabled() and x.requires_grad):
            return self._run(x, sigma)
        return self._graphed(x, sigma)

    def _graphed(self, x: torch.Tensor, sigma) -> torch.Tensor:
        s = sigma_per_image(sigma, x, check_values=False)  # [B] in x's dtype, on its device
        key = (x.device, tuple(x.shape), x.dtype)
        g = self._graphs.get(key)
        if g is None:
            g = _Graph(x, s)
            g.load(x, s)

            def fn(g=g):
                with torch.no_grad():
                    return self._run(g.x, g.sigma)

            try:
                g.replay, g.out = self._capture(fn, x.device)
            except Exception as err:
                if is_out_of_memory(err):
                    raise
                text = str(err).strip().splitlines()
                self.fallback = f"{type(err).__name__}: {text[0] if text else ''}"
                self._graphs.clear()
                warnings.warn(
                    f"cuda_graphs: capturing the denoiser failed ({self.fallback}); it runs "
                    "without CUDA graphs from now on",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return self._run(x, sigma)
            self._graphs[key] = g
            if len(self._graphs) > _MAX_GRAPHS:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
            g.load(x, s)
        g.replay()  # also after capture: capture records the work without running it
        return g.out.clone()
