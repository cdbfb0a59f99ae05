"""The production runner: restore a work list of images in batches, resumably (issue 21).

    config = RunConfig(task="deblur", operator="blur:k.npy", noise=7.65, batch_size=8)
    report = restore(["photos/"], "restored", config)
    print(report.as_dict())

``restore`` collects the work list (``worklist.collect``), keeps this rank's share
(``worklist.shard``), opens this rank's ledger ``output_dir/.pnpfast-ledger.rank{r}.jsonl``
(``ledger.Ledger``: a rerun skips what is done; other settings are refused naming the setting,
unless ``overwrite``), and then, a window of images at a time (at most 64 images or 1 GiB of
pixels, the next window read by a thread while this one is solved): reads them
(``pnpfast.io.read_image_file``: bit depth and alpha kept), groups them into batches of equal
(channels, height, width, method, parameters, operator shape) of at most ``batch_size``
(``tiles.group``; "auto": what free memory holds, ``tiles.image_bytes`` measured once per
size), restores each batch with one ``pnpfast.solve`` call

    y = the image as read (the input IS the measurement),  sigma_b = noise_b / 255,
    x = solve(y, A, D, method, sigma=[sigma_b], max_iter, **params),

under ``tiles.run_halving`` (an out-of-memory error halves the batch and retries it; an image
that runs out of memory alone is retried with the denoiser on the largest tile that fits, the
data step whole; bf16/fp16 that made the batch NaN or Inf is retried in fp32), and hands the
outputs to writer threads, which write each one atomically with the input's bit depth and
alpha (``write_image_file``) and record it in the ledger right after its file is written
(sha256 and the read / solve / write seconds) while the next batch is solved. At most one
batch is being written while the next is solved: on a GPU the PNG encoding of a batch costs
more than its solve (benchmarks/bench_restore.py).

The operator per task, each image with its own parameters:

* ``deblur``: ``Blur`` with a [B, h, w] stack of kernels (on the CPU batches have one kernel
  size; on GPUs kernels of several sizes share a batch, each zero-padded about its centre tap
  to the largest: the same circular blur); the kernel of an image is its manifest ``kernel``
  or blur ``operator``, else ``config.operator``.
* ``sr``: ``SuperResolution`` with one kernel and factor per batch (batches are grouped by the
  canonical operator text); an image's manifest ``operator`` or ``factor`` (with the run's
  kernel, bicubic by default) overrides ``config.operator``. The output is ``factor`` times
  larger; the alpha channel is upsampled by pixel replication (nearest neighbour, each
  low-resolution alpha value covers its factor x factor block), which keeps alpha values exact.
* ``inpainting``: ``Inpainting`` with a [B, 1, H, W] stack of masks (mask image, first channel
  >= 0.5 = observed), the manifest ``mask`` else ``config.mask``; y is the image times its mask.
* ``denoise``: ``Identity``.

* the sampler (method "implicit-prior") takes no noise level: y is a noiseless measurement;
  the output is the mean of its realisations with ``params={"average": True}``, else the first.

Resuming: the ledger's settings are ``RunConfig.settings()`` (with the sha256 of the operator's
kernel file, the mask file and the manifest), so an edited kernel is a new run too. Besides its
own ledger, a rank skips what the other ranks' ledgers of the same settings finished (intact
outputs), so a rerun with another world size redoes nothing.

Failures: an unreadable file, a mask of another size, a kernel that cannot be read, a batch
whose solve raises anything but out-of-memory, an output format that cannot hold the image's
bit depth or alpha (``extension="jpg"`` for an RGBA PNG: choose png or tif, or drop alpha
first) are recorded as failed with the reason, and the run goes on.

Stopping: during ``restore`` (in the main thread) a first SIGINT asks to stop after the current
batch, a second one interrupts at once. A KeyboardInterrupt raised inside a solve or by the
progress callback stops at once, losing only the batch being solved. Either way the outputs
being written are finished and recorded, the ledger holds every finished image and the report
says ``interrupted``. A SIGKILL loses at most the batch being solved and the one being written
(outputs on disk without their ledger line are redone by the rerun).
"""

import dataclasses
import functools
import math
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pnpfast import _validate
from pnpfast._atomic import remove_stale_temporaries
from pnpfast.operators.spec import NAMED_KERNELS, OperatorSpec
from pnpfast.runner import gpu_denoiser, tiles, worklist
from pnpfast.runner import ledger as _ledger

__all__ = ["TASKS", "RunConfig", "RunReport", "restore"]

TASKS = ("deblur", "sr", "inpainting", "denoise")
_SPEC_NAME = {"deblur": "blur", "sr": "sr"}
LEDGER_NAME = ".pnpfast-ledger.rank{rank}.jsonl"
AUTO = "auto"
AUTO_BATCH_CAP = 64  # batch_size="auto": the most images per batch, whatever memory allows
# deblur: images with kernels of different sizes share a batch, each kernel zero-padded to the
# largest (Levin's eight kernels would otherwise make eight small batches). None: on GPUs,
# where a full batch pays; on the CPU a batch of several sizes measured no faster
PAD_KERNELS: bool | None = None
AUTO_TILE_START, AUTO_TILE_MIN = 512, 64  # the tiles tried for an image too large alone
WINDOW_BYTES = 1 << 30  # pixels read ahead of the batches: 1 GiB (7 12-MP RGB images in float32)
_SAMPLER = "implicit-prior"

PathLike = str | os.PathLike


def _kind(value) -> str:
    return type(value).__name__


def _optional_path(name: str, value) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or Path) or None, not {_kind(value)}")
    if not os.fspath(value):
        raise ValueError(f"{name} must be a file path, not an empty string")
    return Path(value)


@functools.cache
def _convergent_methods() -> frozenset[str]:
    """The methods whose backtracking calls the denoiser's potential (built once: it is asked
    per batch)."""
    import pnpfast.solvers as solvers

    return frozenset(m.name for m in solvers.convergent.METHODS)


class _DryDenoiser:
    """The identity, with a zero potential: enough for every method to check its parameters."""

    def __call__(self, x, sigma):
        return x

    def potential_and_gradient(self, x, sigma):
        return x.new_zeros(x.shape[0]), torch.zeros_like(x)


def check_method_params(method: str, params: Mapping[str, object]) -> None:
    """Check the values of a method's parameters before a run, not at its first batch.

    The methods check their parameters where they use them (``schedule``), so the check is
    a one-iteration solve of an 8x8 image (Identity for the PnP methods, a random half mask
    for the sampler) with an identity denoiser: well under a millisecond, and torch's
    random state is left as it was. Errors: the method's own ValueError / TypeError (the
    parameter named), prefixed with ``params:``.
    """
    import pnpfast.solvers as solvers
    from pnpfast.operators import Identity, Inpainting

    y = torch.full((1, 1, 8, 8), 0.5)
    try:
        with torch.random.fork_rng(devices=[]):
            if method == solvers.SAMPLER:
                mask = torch.arange(64).reshape(1, 1, 8, 8) % 2 == 0
                solvers.solve(y, Inpainting(mask), _DryDenoiser(), method, max_iter=1, **params)
            else:
                solvers.solve(
                    y, Identity(), _DryDenoiser(), method, sigma=0.03, max_iter=1, **params
                )
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"params: {exc}") from None
    except FloatingPointError:  # the values are valid; one step of them overflows an 8x8 image
        pass


@dataclass
class RunConfig:
    """The settings of a production run (see the module docstring).

    Fields:
        task: "deblur", "sr", "inpainting" or "denoise".
        operator: deblur and sr: the forward model as text (``pnpfast.operators.OperatorSpec``):
            "blur:K.npy", "sr:bicubic:x2"; may be None when every image has its own kernel
            (deblur) or factor (sr) in the manifest. Refused for inpainting and denoise.
        mask: inpainting: the mask image shared by every image without a manifest mask.
        noise: noise standard deviation on the 0..255 scale, in (0, 255] (7.65 = 3%); None
            when every image has its own in the manifest.
        method: a ``pnpfast.solve`` method (default "hqs"); params: its parameters (mapping).
        max_iter: the iteration cap (None: the method's default).
        denoiser: None (the method's shipped denoiser), a name for
            ``pnpfast.denoisers.load`` (with ``weights``), or a denoiser object D(x, sigma).
        weights: a weight file for a named network denoiser.
        device: "cpu", "cuda", "cuda:1", ... or a torch.device.
        batch_size: the most images per solve call (an int >= 1; None: 8 on a GPU, 1 on the
            CPU, where a batch measured slower per image than one image at a time:
            benchmarks/bench_restore.py), or "auto": as many as
            free memory holds (``tiles.image_bytes`` measured once per image size with the
            run's denoiser, ``tiles.free_memory``, ``tiles.auto_batch_size``), at most 64.
        tile, overlap: run the denoiser on tiles of ``tile`` pixels sharing ``overlap``
            (``tiles.TiledDenoiser``); None: whole images, and an image that runs out of
            memory even alone is retried on tiles (``tiles.tile_schedule``: 512, 256, ...
            down to 64 pixels, the largest that fits; the ledger line and the report say
            which).
        precision: "fp32", "bf16" or "fp16": the dtype the denoiser's network runs in
            (``gpu_denoiser.FastDenoiser``, torch.autocast); the data steps stay float32. A
            batch whose solve goes NaN or Inf in bf16/fp16 is rerun in fp32 (the report's
            ``fp32_reruns``). Refused for gs-pnp and prox-pnp-* (their backtracking compares
            the network's potentials: they always run in fp32, also from a manifest).
        channels_last: the denoiser's input and weights in torch.channels_last (faster
            convolutions on GPUs with tensor cores; the same values up to round-off).
        cuda_graphs: replay the denoiser of each batch shape from a CUDA graph (launch
            overhead gone; CUDA devices only).
        extension: the outputs' extension ("png", "tif"); None keeps each input's.
        bit_depth: 8 or 16 for every output; None keeps each input's.
        overwrite: redo every image, even when the ledger says it is done or its settings differ.

    ``settings()`` is what the ledger fingerprints: everything that changes an output (not
    the device, batch size, channels_last, cuda_graphs or overwrite flag: a batch gives what
    each image gives alone, and the others change float round-off only).
    Errors: TypeError for a field of the wrong type, ValueError for a wrong value, each naming
    the field.
    """

    task: str
    operator: str | None = None
    mask: PathLike | None = None
    noise: float | None = None
    method: str = "hqs"
    params: Mapping[str, object] = field(default_factory=dict)
    max_iter: int | None = None
    denoiser: str | Callable | None = None
    weights: PathLike | None = None
    device: str | torch.device = "cpu"
    batch_size: int | str | None = None
    tile: int | None = None
    overlap: int | None = None
    extension: str | None = None
    bit_depth: int | None = None
    overwrite: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    cuda_graphs: bool = False

    def __post_init__(self):
        if not isinstance(self.task, str):
            raise TypeError(
                f"task must be a str, one of {', '.join(TASKS)}, not {_kind(self.task)}"
            )
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        self._spec = None
        if self.operator is not None:
            if self.task not in _SPEC_NAME:
                raise ValueError(
                    f"operator applies to the tasks deblur and sr, not to {self.task!r}"
                    + (" (give mask)" if self.task == "inpainting" else "")
                )
            if not isinstance(self.operator, str):
                raise TypeError(
                    f"operator must be a str such as 'blur:k.npy' or 'sr:bicubic:x2', not "
                    f"{_kind(self.operator)}"
                )
            try:
                spec = OperatorSpec.parse(self.operator)
            except ValueError as exc:
                raise ValueError(f"operator: {exc}") from None
            if spec.name != _SPEC_NAME[self.task]:
                raise ValueError(
                    f"operator {self.operator!r} is a {spec.name} operator; task {self.task!r} "
                    f"takes '{_SPEC_NAME[self.task]}:...'"
                )
            if spec.kernel not in NAMED_KERNELS:  # absolute: the same file from any folder
                spec = dataclasses.replace(spec, kernel=os.path.abspath(spec.kernel))
            self._spec = spec
        self.mask = _optional_path("mask", self.mask)
        if self.mask is not None and self.task != "inpainting":
            raise ValueError(f"mask applies to the task inpainting only, not to {self.task!r}")
        if self.noise is not None:
            self.noise = _validate.number(
                "noise", self.noise, 0, 255, low_open=True, hint="(the 0..255 scale: 7.65)"
            )
        # Settings checks the method name and that each parameter belongs to it
        checked = worklist.Settings(method=self.method, params=self.params)
        self.params = checked.params_dict()
        check_method_params(self.method, self.params)
        if self.max_iter is not None:
            self.max_iter = _validate.integer("max_iter", self.max_iter, 1)
        d = self.denoiser
        if d is not None and not isinstance(d, str) and not callable(d):
            raise TypeError(
                f"denoiser must be None, a name for pnpfast.denoisers.load or a denoiser "
                f"D(x, sigma), not {_kind(d)}"
            )
        self.weights = _optional_path("weights", self.weights)
        if isinstance(self.device, str):
            try:
                device = torch.device(self.device)
            except RuntimeError:
                raise ValueError(
                    f"device must be 'cpu', 'cuda', 'cuda:N' or another torch device, not "
                    f"{self.device!r}"
                ) from None
        elif isinstance(self.device, torch.device):
            device = self.device
        else:
            raise TypeError(f"device must be a str or torch.device, not {_kind(self.device)}")
        self.device = device
        if self.batch_size is None:
            self.batch_size = 1 if device.type == "cpu" else 8
        if isinstance(self.batch_size, str):
            if self.batch_size != AUTO:
                raise ValueError(
                    f"batch_size must be an int >= 1 or 'auto', not {self.batch_size!r}"
                )
        else:
            self.batch_size = _validate.integer("batch_size", self.batch_size, 1)
        if self.tile is not None:
            self.tile = _validate.integer("tile", self.tile, 1)
        if self.overlap is not None:
            if self.tile is None:
                raise ValueError("overlap applies with tile only: give tile too, or no overlap")
            self.overlap = _validate.integer("overlap", self.overlap, 0, self.tile - 1)
        self.extension = worklist._extension(self.extension)
        if self.bit_depth is not None:
            depth = _validate.integer("bit_depth", self.bit_depth, 1)
            if depth not in (8, 16):
                raise ValueError(f"bit_depth must be 8, 16 or None (keep), not {depth}")
            self.bit_depth = depth
        self.overwrite = _validate.flag("overwrite", self.overwrite)
        self.precision, self.channels_last, self.cuda_graphs = gpu_denoiser.check_options(
            self.precision, self.channels_last, self.cuda_graphs
        )
        if self.precision != "fp32" and self.method in _convergent_methods():
            raise ValueError(
                f"precision {self.precision!r} does not apply to method {self.method!r}: its "
                "backtracking compares the network's potentials, which need fp32; use "
                "precision='fp32' (the default)"
            )
        if self.cuda_graphs and device.type != "cuda":
            raise ValueError(f"cuda_graphs needs a CUDA device, not {device}")

    def _denoiser_text(self) -> str | None:
        d = self.denoiser
        if d is None or isinstance(d, str):
            return d
        cls = type(d)
        extra = d.extra_repr() if isinstance(d, torch.nn.Module) else ""
        return f"{cls.__module__}.{cls.__qualname__}({extra})"

    def settings(self) -> dict[str, object]:
        """The run's settings as JSON data, for the ledger's fingerprint."""
        out = {
            "task": self.task,
            "operator": None if self._spec is None else str(self._spec),
            "mask": None if self.mask is None else str(self.mask.resolve()),
            "noise": self.noise,
            "method": self.method,
            "params": dict(self.params),
            "max_iter": self.max_iter,
            "denoiser": self._denoiser_text(),
            "weights": None if self.weights is None else str(self.weights.resolve()),
            "tile": self.tile,
            "overlap": self.overlap,
            "extension": self.extension,
            "bit_depth": self.bit_depth,
        }
        if self.precision != "fp32":  # absent in fp32: the ledgers of earlier runs still match
            out["precision"] = self.precision
        # the files' contents too: an edited kernel or mask under the same name is a new run
        files = {"operator": None if self._spec is None else self._spec.kernel, "mask": self.mask}
        for name, path in files.items():
            if path is not None and os.path.isfile(path):
                out[f"{name}_sha256"] = _ledger.file_sha256(path)
        return out


@dataclass
class RunReport:
    """What a run did (this rank's share).

    ``done``: images restored now; ``skipped``: images the ledger had as done; ``failed``:
    [{"key", "reason"}]; ``total``: this rank's images; ``images_per_s``: done / wall seconds;
    ``seconds``: {"read", "solve", "denoiser", "data", "write", "total"}: reading
    images (and kernels, masks), the solve calls, the denoiser's share of them (not measured
    for gs-pnp, prox-pnp-* and pnp-reg: 0), ``data`` = solve - denoiser (the data steps and the
    batch's set-up), writing outputs with their ledger lines, and the wall time; ``peak_memory_bytes``: CUDA's
    max_memory_allocated on a CUDA device, else the process's peak resident size (getrusage);
    ``interrupted``: stopped by a KeyboardInterrupt / SIGINT before the end;
    ``auto_batch``: with batch_size "auto", the size chosen for each image size ("CxHxW");
    ``tiled``: the tile each image size ("CxHxW") needed after running out of memory alone;
    ``fp32_reruns``: the images whose batch went NaN or Inf in bf16/fp16, rerun in fp32.
    """

    done: int = 0
    skipped: int = 0
    failed: list[dict] = field(default_factory=list)
    total: int = 0
    images_per_s: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: int = 0
    device: str = "cpu"
    versions: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    rank: int = 0
    world_size: int = 1
    ledger: str = ""
    auto_batch: dict[str, int] = field(default_factory=dict)
    tiled: dict[str, int] = field(default_factory=dict)
    fp32_reruns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """The report as JSON data."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# one image on its way through the run


@dataclass
class _Entry:
    item: worklist.WorkItem
    image: object  # pnpfast.io.ImageFile
    sigma: float
    method: str
    params: dict
    op_key: tuple  # what must be equal inside a batch
    op_data: object  # kernel [h, w], mask [1, 1, H, W], an OperatorSpec, or None
    read_s: float


def _versions() -> dict[str, str]:
    import pnpfast

    return {
        "pnpfast": pnpfast.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import resource
    except ImportError:  # Windows
        return 0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # macOS: bytes, Linux: KiB


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{_kind(exc)}: {text[0] if text else ''}"


class _Resources:
    """Kernels, masks, operators and denoisers, each read or built once per run."""

    def __init__(self, config: RunConfig, device: torch.device):
        self.config = config
        self.device = device
        self._kernels: dict[str, torch.Tensor] = {}
        self._masks: dict[str, torch.Tensor] = {}
        self._denoisers: dict[str, Callable] = {}
        self._wrapped: dict[tuple, Callable] = {}
        # the decoder threads ask for kernels and masks at once: one reads, the others wait
        self._files = threading.Lock()

    def kernel(self, spec: OperatorSpec) -> torch.Tensor:
        text = str(spec)
        with self._files:
            if text not in self._kernels:
                self._kernels[text] = spec.kernel_tensor().to(torch.float32)
            return self._kernels[text]

    def mask(self, path: Path) -> torch.Tensor:
        from pnpfast.io import read_image_file

        text = str(path)
        with self._files:
            if text not in self._masks:
                m = read_image_file(path).pixels[:, :1] >= 0.5
                if not bool(m.any()):  # refused here, or the whole batch would fail with it
                    raise ValueError(f"the mask {path} measures no pixel (all below 0.5)")
                self._masks[text] = m
            return self._masks[text]

    def denoiser(
        self, method: str, *, tile: tuple[int, int] | None = None, fp32: bool = False
    ) -> Callable:
        """The denoiser ``method`` calls: the run's (or the method's shipped one), in the run's
        precision and memory format (``FastDenoiser``; fp32 with ``fp32``, and always for
        the convergent methods), on tiles (the run's ``tile``, else ``tile`` = (tile,
        overlap) when an image ran out of memory alone). Built once per combination: a
        FastDenoiser keeps its CUDA graphs from batch to batch."""
        c = self.config
        convergent = method in _convergent_methods()
        precision = "fp32" if fp32 or convergent else c.precision
        fast = (precision, c.channels_last and not convergent, c.cuda_graphs)
        if c.tile is not None:
            tile = (c.tile, c.overlap)
        key = (method, fast, tile)
        if key not in self._wrapped:
            den = self._base_denoiser(method)
            if fast != ("fp32", False, False) and not convergent:
                p, cl, graphs = fast
                den = gpu_denoiser.FastDenoiser(
                    den, precision=p, channels_last=cl, cuda_graphs=graphs and not fp32
                )
            if tile is not None:
                den = tiles.TiledDenoiser(den, *tile)
            self._wrapped[key] = den
        return self._wrapped[key]

    def _base_denoiser(self, method: str) -> Callable:
        d = self.config.denoiser
        if d is not None and not isinstance(d, str):
            den = d
        else:
            if d is None and self.config.weights is None:
                from pnpfast.solvers import METHODS, SAMPLER, ImplicitPrior

                cls = ImplicitPrior if method == SAMPLER else METHODS[method]
                name = cls.default_denoiser
                if name is None:
                    raise ValueError(
                        f"method {method!r} has no shipped denoiser: give denoiser and weights"
                    )
            else:
                name = d
            key = f"{name}|{self.config.weights}"
            if key not in self._denoisers:
                from pnpfast.denoisers import load

                self._denoisers[key] = load(name, self.config.weights, device=self.device)
            den = self._denoisers[key]
        return den


def _item_spec(config: RunConfig, s: worklist.Settings) -> OperatorSpec:
    """The deblur or sr operator of an image: its own, else the run's with its overrides."""
    want = _SPEC_NAME[config.task]
    if s.operator is not None:
        if s.operator.name != want:
            raise ValueError(
                f"operator {str(s.operator)!r} of the manifest is not a {want} operator (task "
                f"{config.task})"
            )
        return s.operator
    base = config._spec
    if config.task == "deblur":
        if s.kernel is not None:
            return OperatorSpec("blur", kernel=str(s.kernel))
        if base is None:
            raise ValueError("no blur kernel: give operator ('blur:K.npy') or a manifest kernel")
        return base
    kernel = str(s.kernel) if s.kernel is not None else (base.kernel if base else "bicubic")
    factor = s.factor if s.factor is not None else (base.factor if base else None)
    if factor is None:
        raise ValueError("no factor: give operator ('sr:bicubic:x2') or a manifest factor")
    same = base is not None and kernel == base.kernel
    return OperatorSpec(
        "sr",
        kernel=kernel,
        factor=factor,
        std=base.std if same else None,
        key=base.key if same else None,
        index=base.index if same else 0,
    )


def _plan(config: RunConfig, item: worklist.WorkItem, res: _Resources):
    """(sigma, method, params, op_key, op_data) of one image; its shape is added after reading."""
    s = item.settings
    noise = s.noise if s.noise is not None else config.noise
    method = s.method or config.method
    if noise is None:
        if method != _SAMPLER:
            raise ValueError("no noise level: give noise (0..255) or a manifest noise")
        noise = 0.0  # the sampler conditions on noiseless measurements: it takes no sigma
    params = dict(s.params) if s.method not in (None, config.method) else dict(config.params)
    if s.method in (None, config.method):
        params.update(s.params_dict())
    if config.task == "deblur":
        kernel = res.kernel(_item_spec(config, s))
        shape = () if _pads_kernels(config.device) else tuple(kernel.shape)
        return noise / 255.0, method, params, ("blur", *shape), kernel
    if config.task == "sr":
        spec = _item_spec(config, s)
        return noise / 255.0, method, params, ("sr", str(spec)), spec
    if config.task == "inpainting":
        path = s.mask if s.mask is not None else config.mask
        if path is None:
            raise ValueError("no mask: give mask or a manifest mask")
        return noise / 255.0, method, params, ("mask",), res.mask(path)
    return noise / 255.0, method, params, ("identity",), None


def _pads_kernels(device: torch.device) -> bool:
    """Whether deblur batches mix kernel sizes, each zero-padded to the batch's largest."""
    return PAD_KERNELS if PAD_KERNELS is not None else device.type != "cpu"


def _common_size(kernels: list[torch.Tensor]) -> list[torch.Tensor]:
    """The kernels zero-padded to the largest height and width among them, the centre tap
    (h // 2, w // 2) kept at the new centre (H // 2, W // 2): the same circular blur."""
    H = max(k.shape[-2] for k in kernels)
    W = max(k.shape[-1] for k in kernels)
    out = []
    for k in kernels:
        h, w = k.shape[-2:]
        top, left = H // 2 - h // 2, W // 2 - w // 2
        out.append(torch.nn.functional.pad(k, (left, W - w - left, top, H - h - top)))
    return out


def _operator(task: str, entries: list[_Entry], res: _Resources):
    from pnpfast.operators import Blur, Identity, Inpainting, SuperResolution

    device = res.device
    if task == "deblur":
        return Blur(torch.stack(_common_size([e.op_data for e in entries])).to(device))
    if task == "sr":
        spec = entries[0].op_data
        return SuperResolution(res.kernel(spec).to(device), spec.factor)
    if task == "inpainting":
        return Inpainting(torch.cat([e.op_data for e in entries]).to(device))
    return Identity()


class _Timed:
    """A denoiser that adds up the time of its calls: perf_counter on the CPU, CUDA events on a
    GPU (read once, after the batch has synchronised), so the loop gains no device sync.
    Attributes are the wrapped denoiser's (the engine's checks see it unchanged)."""

    def __init__(self, inner: Callable, device: torch.device):
        self._inner = inner
        self._cuda = device.type == "cuda"
        self._events: list = []
        self.seconds = 0.0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __call__(self, x, sigma):
        if self._cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = self._inner(x, sigma)
            end.record()
            self._events.append((start, end))
            return out
        t0 = time.perf_counter()
        out = self._inner(x, sigma)
        self.seconds += time.perf_counter() - t0
        return out

    def total(self) -> float:
        """The seconds spent in the denoiser (synchronises with the device's events)."""
        self.seconds += sum(a.elapsed_time(b) for a, b in self._events) / 1000.0
        self._events = []
        return self.seconds


def _solve_batch(
    config: RunConfig,
    res: _Resources,
    entries: list[_Entry],
    timers: list | None = None,
    *,
    tile: tuple[int, int] | None = None,
    fp32: bool = False,
) -> list:
    import pnpfast.solvers as solvers

    device = config.device
    y = torch.cat([e.image.pixels for e in entries]).to(device)
    op = _operator(config.task, entries, res)
    if config.task == "inpainting":
        y = y * op.mask.to(y.dtype)  # the batch's masks, stacked on the device by _operator
    method = entries[0].method
    kwargs = dict(entries[0].params)
    if config.max_iter is not None:
        kwargs["max_iter"] = config.max_iter
    if method != solvers.SAMPLER:
        kwargs["sigma"] = torch.tensor([e.sigma for e in entries], dtype=y.dtype, device=device)
    denoiser = res.denoiser(method, tile=tile, fp32=fp32)
    # the provably convergent methods call the denoiser's potential: they get the real object
    if timers is not None and method not in _convergent_methods():
        denoiser = _Timed(denoiser, device)
        timers.append(denoiser)
    result = solvers.solve(y, op, denoiser, method, **kwargs)
    x = result.x if result.mean is None else result.mean
    if x.shape[0] != len(entries):  # the sampler's realisations, measurement-major: the first
        x = x[:: x.shape[0] // len(entries)]
    x = x.detach().to("cpu", torch.float32)
    return [x[i : i + 1] for i in range(len(entries))]


def _write(config: RunConfig, entry: _Entry, x: torch.Tensor) -> None:
    from pnpfast.io import write_image_file

    f = entry.image
    alpha = f.alpha
    if alpha is not None and alpha.shape[-2:] != x.shape[-2:]:  # sr: replicate each value
        s = x.shape[-1] // alpha.shape[-1]
        alpha = alpha.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)
    depth = config.bit_depth if config.bit_depth is not None else f.bit_depth
    entry.item.output.parent.mkdir(parents=True, exist_ok=True)
    write_image_file(entry.item.output, x, alpha=alpha, bit_depth=depth)


class _Stop:
    """SIGINT during a run: the first one asks to stop after the current batch, a second one
    raises KeyboardInterrupt at once."""

    def __init__(self):
        self.asked = False
        self._old = None

    def _handler(self, signum, frame):
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _inputs_arg(inputs):
    if inputs is None:
        return []
    return inputs


def _done_elsewhere(folder: Path, mine: Path, fingerprint: str) -> set[str]:
    """Keys done in the other ranks' ledgers of this run (same fingerprint) whose output is
    intact: a rerun with another world size does not redo them."""
    keys: set[str] = set()
    for path in sorted(folder.glob(LEDGER_NAME.format(rank="*"))):
        if path == mine:
            continue
        header, records, _ = _ledger.read_ledger(path)
        if header is not None and header.get("fingerprint") == fingerprint:
            keys.update(_ledger.done_records(records, folder))
    return keys


def _batch_key(e: _Entry) -> tuple:
    """Images with equal keys stack into one batch: size, method, parameters, operator shape."""
    return (tuple(e.image.pixels.shape[1:]), e.method, tuple(sorted(e.params.items())), e.op_key)


def _io_threads(device: torch.device) -> int:
    """Threads that decode inputs, and as many that write outputs: half the cores torch's own
    threads leave free each (at least 1; on a GPU the host's cores but one are free), at most
    8."""
    cores = os.cpu_count() or 1
    busy = 1 if device.type != "cpu" else torch.get_num_threads()
    return max(1, min(8, (cores - busy) // 2))


def _shape_text(e: _Entry) -> str:
    return "x".join(map(str, e.image.pixels.shape[1:]))


def _finish(writes: list[futures.Future]) -> None:
    """Wait for writes; one that raised (its ledger line could not be written: the image is
    neither done nor failed) raises here instead of being lost with its future."""
    for f in writes:
        f.result()


class _Runner:
    """The state of one restore call: the ledger, the report, the timings, the batch size
    (halved for the rest of the run after an out-of-memory error; with "auto", one per image
    size, measured), the tile of each image size that ran out of memory alone."""

    def __init__(self, config, progress):
        self.config = config
        self.progress = progress
        self.res = _Resources(config, config.device)
        self.seconds = {"read": 0.0, "solve": 0.0, "denoiser": 0.0, "write": 0.0}
        self.auto = config.batch_size == AUTO
        self.batch_size = AUTO_BATCH_CAP if self.auto else config.batch_size
        self.sizes: dict[tuple, int] = {}  # batch key -> batch size ("auto")
        self.tile_of: dict[tuple, tuple[int, int]] = {}  # batch key -> (tile, overlap)
        self.cuda_peak = 0  # tiles.image_bytes resets CUDA's peak statistics: kept here
        # outputs are encoded and written by threads while the next batch is solved (PNG's
        # deflate and the fsyncs release the GIL): on a GPU the I/O would otherwise cost
        # more than the solve (benchmarks/bench_restore.py)
        self.lock = threading.Lock()
        self.io_threads = _io_threads(config.device)
        self.writers = futures.ThreadPoolExecutor(
            max_workers=self.io_threads, thread_name_prefix="pnpfast-write"
        )
        self.decoders = futures.ThreadPoolExecutor(
            max_workers=self.io_threads, thread_name_prefix="pnpfast-read"
        )
        self.pending: list[futures.Future] = []

    def begin(self, book, report, started: float) -> None:
        """Begin the work with this ledger and report, timed from ``started``."""
        self.book = book
        self.report = report
        self.started = started
        self.finished = report.skipped
        self._shown = self.finished

    def check_resources(self) -> None:
        """Read the run's own kernel and mask and load its denoiser: a bad one is an error
        before any image, not N failed images."""
        config = self.config
        if config._spec is not None:
            self.res.kernel(config._spec)
        if config.mask is not None:
            self.res.mask(config.mask)
        try:
            self.res.denoiser(config.method)
        except (ValueError, TypeError, FileNotFoundError) as exc:
            if type(exc) not in (ValueError, TypeError, FileNotFoundError):
                raise  # the loaders' own errors name the denoiser already
            raise type(exc)(f"denoiser: cannot load it: {exc}") from exc

    def fail(self, item: worklist.WorkItem, reason: str) -> None:
        with self.lock:  # the writer threads fail images too
            self.book.fail(item.key, reason)
            self.report.failed.append({"key": item.key, "reason": reason})
            self.finished += 1

    def tick(self) -> None:
        """Call progress when something finished since the last call."""
        if self.progress is not None and self.finished != self._shown:
            self._shown = self.finished
            self.progress(self.finished, self.report.total, time.perf_counter() - self.started)

    def read(
        self, todo: list[worklist.WorkItem], start: int, count: int
    ) -> tuple[list[_Entry], int]:
        """Read images from ``todo[start]`` on, until ``count`` images or ``WINDOW_BYTES`` of
        pixels; (the entries read, in order, the index to go on from). Several are decoded at
        once (one a thread); unreadable ones are failed."""
        entries = []
        held = 0
        i = start
        step = self.io_threads
        while i < len(todo) and i - start < count and held < WINDOW_BYTES:
            part = todo[i : min(i + step, start + count)]
            i += len(part)
            for e in self.decoders.map(self._read_one, part):
                if e is not None:
                    held += e.image.pixels.numel() * e.image.pixels.element_size()
                    entries.append(e)
                    # one reader thread adds up: no lock (the writers hold it for their fsyncs)
                    self.seconds["read"] += e.read_s
        return entries, i

    def _read_one(self, item: worklist.WorkItem) -> _Entry | None:
        """One image and its plan; None (and the image failed) when it cannot be read."""
        from pnpfast.io import ImageReadError, read_image_file

        t0 = time.perf_counter()
        try:
            f = read_image_file(item.source)
            sigma, method, params, op_key, op_data = _plan(self.config, item, self.res)
            if self.config.task == "inpainting" and op_data.shape[-2:] != f.pixels.shape[-2:]:
                raise ValueError(
                    f"the mask is {tuple(op_data.shape[-2:])} but the image is "
                    f"{tuple(f.pixels.shape[-2:])}"
                )
        except (ImageReadError, ValueError, TypeError, OSError) as exc:
            self.fail(item, _one_line(exc))
            return None
        return _Entry(item, f, sigma, method, params, op_key, op_data, time.perf_counter() - t0)

    def size_for(self, e: _Entry) -> int:
        """The batch size for images like ``e``: the run's, or with "auto" what free memory
        holds, measured once per batch key with the run's denoiser (``tiles.image_bytes``)."""
        if not self.auto:
            return self.batch_size
        key = _batch_key(e)
        if key not in self.sizes:
            c, h, w = e.image.pixels.shape[1:]
            s = e.op_data.factor if self.config.task == "sr" else 1
            device = self.config.device
            if device.type == "cuda":
                self.cuda_peak = max(self.cuda_peak, torch.cuda.max_memory_allocated(device))
            # the fp32 network: bf16 needs less, so the estimate errs on the safe side
            den = self.res._base_denoiser(e.method)
            per = tiles.image_bytes(
                den, (c, h * s, w * s), sigma=max(e.sigma, 1 / 255), device=device
            )
            free = tiles.free_memory(device)
            self.sizes[key] = tiles.auto_batch_size(per, free, cap=AUTO_BATCH_CAP)
            self.report.auto_batch[_shape_text(e)] = self.sizes[key]
        return min(self.batch_size, self.sizes[key])

    def _shrink(self, key: tuple, n: int) -> None:
        if self.auto:
            self.sizes[key] = max(1, min(self.sizes.get(key, n), n // 2))
        else:
            self.batch_size = max(1, min(self.batch_size, n // 2))

    def _solve(self, chunk: list[_Entry], tile, timers: list) -> tuple[list, bool]:
        """The batch's outputs (halving it on out-of-memory) and whether it was rerun in fp32
        because bf16/fp16 made it NaN or Inf."""
        key = _batch_key(chunk[0])

        def attempt(fp32: bool) -> list:
            return tiles.run_halving(
                lambda es: _solve_batch(self.config, self.res, es, timers, tile=tile, fp32=fp32),
                chunk,
                on_split=lambda n: self._shrink(key, n),
            )

        if self.config.precision == "fp32":
            return attempt(False), False
        try:
            xs = attempt(False)
            if not gpu_denoiser.nonfinite_images(torch.cat(xs)):
                return xs, False
        except FloatingPointError:  # the engine's check: an iterate went NaN or Inf
            pass
        return attempt(True), True

    def _tiled(self, chunk: list[_Entry], timers: list, oom: str):
        """An image size that ran out of memory even one image at a time: the denoiser on
        the largest tile that fits (``tiles.tile_schedule``), the data step whole."""
        e = chunk[0]
        h, w = e.image.pixels.shape[-2:]
        s = e.op_data.factor if self.config.task == "sr" else 1
        schedule = tiles.tile_schedule(h * s, w * s, start=AUTO_TILE_START, minimum=AUTO_TILE_MIN)
        if not schedule:  # the image is no larger than the smallest tile: tiling cannot help
            raise RuntimeError(oom)
        (xs, rerun), t = tiles.run_tiled_fallback(
            lambda es, t, o: self._solve(es, (t, o), timers), chunk, schedule
        )
        self.tile_of[_batch_key(e)] = (t, tiles.overlap_for(t))
        self.report.tiled[_shape_text(e)] = t
        return xs, rerun

    def run(self, chunk: list[_Entry]) -> None:
        """Solve one batch (halving it on out-of-memory, tiling an image that runs out of
        memory alone, rerunning it in fp32 when low precision made it NaN), write and record
        each output."""
        t0 = time.perf_counter()
        timers: list[_Timed] = []
        tile = self.tile_of.get(_batch_key(chunk[0]))
        oom = None
        try:
            xs, rerun = self._solve(chunk, tile, timers)
        except Exception as exc:  # this batch fails, the run goes on
            if not (tiles.is_out_of_memory(exc) and self.config.tile is None and tile is None):
                for e in chunk:
                    self.fail(e.item, _one_line(exc))
                return
            oom = _one_line(exc)  # outside the except: the failed attempt's tensors are freed
        if oom is not None:
            try:
                xs, rerun = self._tiled(chunk, timers, oom)
            except Exception as exc:
                for e in chunk:
                    self.fail(e.item, _one_line(exc))
                return
            tile = self.tile_of[_batch_key(chunk[0])]
        extra = {}
        if tile is not None:
            extra["tile"] = tile[0]
        if rerun:
            extra["precision"] = "fp32"
            self.report.fp32_reruns.extend(e.item.key for e in chunk)
        solve_s = (time.perf_counter() - t0) / len(chunk)
        self.seconds["solve"] += solve_s * len(chunk)
        self.seconds["denoiser"] += sum(t.total() for t in timers)
        previous = self.pending
        self.pending = [
            self.writers.submit(self._write, e, x, solve_s, extra)
            for e, x in zip(chunk, xs, strict=True)
        ]
        _finish(previous)  # written while this batch was solved

    def drain(self) -> None:
        """Wait for the outputs still being written."""
        _finish(self.pending)
        self.pending = []

    def _write(self, e: _Entry, x: torch.Tensor, solve_s: float, extra: dict) -> None:
        """Write one output and then its ledger line (a writer thread)."""
        t0 = time.perf_counter()
        try:
            _write(self.config, e, x)
        except Exception as exc:  # this image fails, the run goes on
            self.fail(e.item, _one_line(exc))
            return
        write_s = time.perf_counter() - t0
        with self.lock:
            self.seconds["write"] += write_s
            self.book.record(
                e.item.key,
                e.item.output,
                read=round(e.read_s, 6),
                solve=round(solve_s, 6),
                write=round(write_s, 6),
                **extra,
            )
            self.report.done += 1
            self.finished += 1


def restore(
    inputs: PathLike | Sequence[PathLike],
    output_dir: PathLike,
    config: RunConfig,
    *,
    manifest: PathLike | None = None,
    rank: int = 0,
    world_size: int = 1,
    progress: Callable[[int, int, float], object] | None = None,
) -> RunReport:
    """Restore every input image into ``output_dir`` (see the module docstring).

    Args:
        inputs: files, folders, glob patterns, ``@list.txt`` (``worklist.collect``); may be
            None or empty with a manifest (its rows are the work list).
        output_dir: the output folder (created); outputs mirror the input tree; the ledger
            ``.pnpfast-ledger.rank{rank}.jsonl`` lies in it.
        config: a RunConfig.
        manifest: a CSV or JSONL file of per-image settings.
        rank, world_size: this process's share of the work list (``worklist.shard``).
        progress: called after each batch (and after images that failed to read) as
            ``progress(finished, total, elapsed_seconds)``, finished counting the skipped,
            done and failed images of this rank.

    Returns:
        A RunReport.

    Raises:
        TypeError, ValueError: a bad argument (named); the inputs as ``worklist.collect``;
            ``ledger.SettingsMismatchError`` (a ValueError naming each differing setting) when
            the ledger was written with other settings and ``config.overwrite`` is False;
            a device that is not available.
        FileNotFoundError: a missing input, manifest, or file of ``config`` (the operator's
            kernel, the mask, the weights; the field is named).
        pnpfast.io.KernelReadError, pnpfast.io.ImageReadError (ValueErrors naming the file):
            the run's kernel or mask cannot be read; and what ``pnpfast.denoisers.load``
            raises for the run's denoiser. These are checked before the first image, and only
            when there is work to do; a per-image kernel or mask of the manifest that cannot
            be read fails its image only.
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a pnpfast.runner.run.RunConfig, not {_kind(config)}")
    if progress is not None and not callable(progress):
        raise TypeError(
            f"progress must be callable (done, total, elapsed) or None, not {_kind(progress)}"
        )
    world_size = _validate.integer("world_size", world_size, 1)
    rank = _validate.integer("rank", rank, 0, world_size - 1, hint=f"(world_size is {world_size})")
    device = config.device
    _validate.cuda_device_present(device)
    spec = config._spec
    files = {
        "operator": spec.kernel if spec is not None and spec.kernel not in NAMED_KERNELS else None,
        "mask": config.mask,
        "weights": config.weights,
    }
    for name, path in files.items():
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"{name}: no such file {os.fspath(path)}")
    items = worklist.collect(
        _inputs_arg(inputs), output_dir, manifest=manifest, extension=config.extension
    )
    mine = worklist.shard(items, rank, world_size)
    out_dir = Path(output_dir)
    ledger_path = out_dir / LEDGER_NAME.format(rank=rank)
    runner = _Runner(config, progress)
    checked = False
    if mine and (config.overwrite or not ledger_path.exists()):  # nothing can be done yet:
        runner.check_resources()  # a bad kernel or denoiser leaves no folder nor ledger
        checked = True
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = config.settings()
    if manifest is not None:
        settings["manifest"] = _ledger.file_sha256(manifest)
    book = _ledger.Ledger(ledger_path, settings, overwrite=config.overwrite)

    report = RunReport(
        total=len(mine),
        device=str(device),
        versions=_versions(),
        rank=rank,
        world_size=world_size,
        ledger=str(ledger_path),
    )
    done = set(book.done)
    if not config.overwrite:
        done |= _done_elsewhere(out_dir, ledger_path, book.fingerprint)
    todo = [it for it in mine if it.key not in done]
    remove_stale_temporaries(it.output for it in todo)  # a write a SIGKILL cut short
    report.skipped = len(mine) - len(todo)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    runner.begin(book, report, start)
    if todo and not checked:  # a rerun loads what it needs only when work is left
        runner.check_resources()
    reader = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pnpfast-read")
    with _Stop() as stop:
        try:
            # images are read a window at a time: enough to fill batches of mixed sizes,
            # few enough to hold in memory (at most WINDOW_BYTES of pixels, one image at least)
            window = max(2 * runner.batch_size, 64)
            ahead = reader.submit(runner.read, todo, 0, window) if todo else None
            while ahead is not None:
                entries, i = ahead.result()
                # the next window is read while this one is solved
                ahead = reader.submit(runner.read, todo, i, window) if i < len(todo) else None
                runner.tick()
                for batch in tiles.group(entries, _batch_key):
                    while batch:
                        n = runner.size_for(batch[0])
                        runner.run(batch[:n])
                        batch = batch[n:]
                        runner.tick()
                        if stop.asked:
                            raise KeyboardInterrupt
            runner.drain()
        except KeyboardInterrupt:
            report.interrupted = True
        finally:  # the outputs being written are finished and recorded, whatever stopped the run
            reader.shutdown(wait=True, cancel_futures=True)
            runner.writers.shutdown(wait=True)
            runner.decoders.shutdown(wait=True)
    if not report.interrupted:
        try:
            runner.tick()  # the last batch's outputs
        except KeyboardInterrupt:
            report.interrupted = True
    seconds = dict(runner.seconds)
    seconds["data"] = max(0.0, seconds["solve"] - seconds["denoiser"])
    total = time.perf_counter() - start
    report.seconds = {**{k: round(v, 6) for k, v in seconds.items()}, "total": round(total, 6)}
    report.images_per_s = report.done / total if total > 0 and math.isfinite(total) else 0.0
    report.peak_memory_bytes = max(_peak_memory(device), runner.cuda_peak)
    return report
