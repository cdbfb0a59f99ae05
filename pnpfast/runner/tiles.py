"""Fitting the work to memory: batches grouped by size, sized to free memory, out-of-memory
answered by halving the batch, and a denoiser run on overlapping tiles for an image too large to
denoise whole.

* ``group(items, key, max_batch=...)``: the items in batches of equal ``key`` (e.g. the image
  size and the shapes of the per-image parameters), so that each batch stacks into one tensor.
* ``run_halving(fn, batch)``: ``fn(batch)``, and on an out-of-memory error ``fn`` on each half
  of the batch (recursively), the results concatenated in order; a single item that still runs
  out of memory re-raises, and the caller tiles it.
* ``TiledDenoiser(denoiser, tile, overlap)``: ``D(x, sigma)`` computed tile by tile and blended
  with a raised-cosine window, so that a solver's data step stays whole while the denoiser, the
  memory-hungry part, sees one tile at a time.
* ``free_memory(device)``, ``image_bytes(denoiser, shape)``, ``auto_batch_size(per_image,
  free)``: ``--batch auto``, the batch that fits the free memory, from the peak memory of one
  image measured on a probe; an underestimate costs one out-of-memory error, which
  ``run_halving`` answers.
* ``tile_schedule(height, width)``, ``overlap_for(tile)``, ``run_tiled_fallback(fn, item,
  tiles)``: an image that runs out of memory alone is retried with the denoiser on tiles,
  halving the tile until one fits.

The peers: Real-ESRGAN crops a ``tile_pad`` margin off each tile (no blending, visible seams when
the margin is short of the receptive field); chaiNNer blends 16 px overlaps and halves its tile
on out-of-memory. Here both are one window: ``margin`` pixels discarded at each inner tile edge,
then a raised-cosine ramp over the rest of the overlap.
"""

import functools
import math
import os
import traceback
import weakref
from collections.abc import Callable, Hashable, Sequence

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode  # torch imports both already
from torch.utils._pytree import tree_leaves

from pnpfast._validate import integer, number
from pnpfast.denoisers.base import Denoiser, check_denoised, check_image, sigma_per_image

__all__ = [
    "TiledDenoiser",
    "auto_batch_size",
    "free_memory",
    "group",
    "image_bytes",
    "is_out_of_memory",
    "overlap_for",
    "run_halving",
    "run_tiled_fallback",
    "tile_schedule",
]


def group(
    items: Sequence, key: Callable[[object], Hashable], *, max_batch: int | None = None
) -> list[list]:
    """The items in batches of equal ``key(item)``, each batch at most ``max_batch`` long.

    Order is deterministic and depends only on the input order: batches come in the order in
    which their key first appears, items keep their input order inside a batch, and a key with
    more than ``max_batch`` items gives consecutive batches of ``max_batch`` (the last one
    shorter). Every item is in exactly one batch. For images, a key such as
    ``(C, H, W, kernel.shape)`` makes each batch stack into one [B, C, H, W] tensor with
    per-image parameters of one shape. ``max_batch=None``: no limit.

    Errors: TypeError when ``items`` is not a sequence (list, tuple), ``key`` is not callable,
    ``key`` returns an unhashable value or a tensor, or ``max_batch`` is not an int;
    ValueError for ``max_batch`` < 1.
    """
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise TypeError(f"items must be a sequence (list or tuple), not {type(items).__name__}")
    if not callable(key):
        raise TypeError(f"key must be callable (item -> hashable key), not {type(key).__name__}")
    limit = None if max_batch is None else integer("max_batch", max_batch, 1)
    groups: dict[Hashable, list] = {}
    for i, item in enumerate(items):
        k = key(item)
        if isinstance(k, torch.Tensor):  # hashed by identity: every item would be alone
            raise TypeError(
                f"key must return a hashable value such as a tuple (tuple(t.shape)), not a "
                f"tensor (tensors hash by identity); it did for item {i}"
            )
        try:
            groups.setdefault(k, []).append(item)
        except TypeError:
            raise TypeError(
                f"key must return a hashable value (a tuple, not a list or a tensor); "
                f"for item {i} it returned {type(k).__name__}"
            ) from None
    batches = []
    for members in groups.values():
        step = limit or len(members)
        batches.extend(members[i : i + step] for i in range(0, len(members), step))
    return batches


# The allocators' own wording: CUDA's caching allocator ("CUDA out of memory. Tried to allocate
# ..."), ROCm's ("HIP out of memory"), MPS ("MPS backend out of memory"), and the CPU allocator
# on Linux ("DefaultCPUAllocator: can't allocate memory") and Windows ("not enough memory: you
# tried to allocate").
_OOM_MESSAGES = (
    "CUDA out of memory",
    "HIP out of memory",
    "MPS backend out of memory",
    "DefaultCPUAllocator: can't allocate memory",
    "not enough memory: you tried to allocate",
)


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says that an allocation failed for lack of memory.

    True for ``torch.OutOfMemoryError`` (``torch.cuda.OutOfMemoryError`` is the same class) and
    for a ``RuntimeError`` whose message carries an allocator's out-of-memory wording (CUDA, HIP,
    MPS, the CPU allocator); False for every other exception (a ``MemoryError`` of Python itself
    included: that is the host running out, which a smaller batch does not cure reliably).
    TypeError when ``err`` is not an exception.
    """
    if not isinstance(err, BaseException):
        raise TypeError(f"err must be an exception, not {type(err).__name__}")
    oom_type = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(err, oom_type):
        return True
    if type(err) is not RuntimeError:
        return False
    text = str(err)
    return any(m in text for m in _OOM_MESSAGES)


def _empty_cache() -> None:
    # only when this process has used CUDA: is_initialized() does not initialise it
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _length(name: str, value) -> int:
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            raise ValueError(f"{name} must be a tensor with a batch dimension, got a 0-d tensor")
        return value.shape[0]
    if isinstance(value, (list, tuple)):
        return len(value)
    raise TypeError(f"{name} must be a list, a tuple or a tensor, not {type(value).__name__}")


def _concat(parts: list):
    if all(isinstance(p, torch.Tensor) for p in parts):
        return torch.cat(parts, dim=0)
    out: list = []
    for p in parts:
        out.extend(p)
    return out


def run_halving(
    fn: Callable,
    batch: Sequence | torch.Tensor,
    *,
    min_size: int = 1,
    on_split: Callable[[int], object] | None = None,
):
    """``fn(batch)``, halving the batch on out-of-memory errors until it fits.

    ``batch`` is a list, tuple or tensor (split along dim 0); ``fn`` returns one result per
    item: a list or tuple (the halves' results are concatenated into a list) or a tensor with
    the batch as dim 0 (concatenated with ``torch.cat``). When ``fn`` raises an out-of-memory
    error (``is_out_of_memory``), the batch is split into a first half of ceil(n/2) items and a
    second of floor(n/2), the CUDA cache is emptied (when this process uses CUDA), ``on_split(n)``
    is called with the size that failed (so the caller can shrink its next batches), and each
    half runs the same way. The result is in input order: every item exactly once, the results
    of halves that succeeded are kept when a later half splits again. A batch of ``min_size``
    items or fewer is not split: its out-of-memory error is raised (the caller then tiles the
    image, see ``TiledDenoiser``). Any other exception propagates at once.

    ``fn`` is called once per attempt; with a batch of n items and a limit of m items that fit,
    about 2n/m calls in all. The retry runs outside the ``except`` block, so the failed attempt's
    tensors (held by its traceback) are freed first.

    Errors: TypeError for a non-callable ``fn`` or ``on_split``, a batch that is not a list,
    tuple or tensor, or ``min_size`` not an int; ValueError for an empty batch, ``min_size`` < 1,
    or ``fn`` returning a number of results different from the number of items.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable (batch -> results), not {type(fn).__name__}")
    if on_split is not None and not callable(on_split):
        raise TypeError(f"on_split must be callable or None, not {type(on_split).__name__}")
    min_size = integer("min_size", min_size, 1)
    n = _length("batch", batch)
    if n == 0:
        raise ValueError("batch is empty: there is nothing to run")
    return _run(fn, batch, n, min_size, on_split)


def _run(fn, batch, n, min_size, on_split):
    try:
        result = fn(batch)
    except Exception as err:
        if n <= min_size or not is_out_of_memory(err):
            raise
    else:
        got = _length("the result of fn", result)
        if got != n:
            raise ValueError(f"fn returned {got} results for a batch of {n} items (one per item)")
        return result
    _empty_cache()
    if on_split is not None:
        on_split(n)
    half = (n + 1) // 2
    first = _run(fn, batch[:half], half, min_size, on_split)
    second = _run(fn, batch[half:], n - half, min_size, on_split)
    return _concat([first, second])


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: the fewest tiles of size ``tile`` with neighbours sharing at
    least ``overlap`` pixels, spread evenly (gaps differ by at most 1, each <= tile - overlap)."""
    if length <= tile:
        return [0]
    n = 1 + math.ceil((length - tile) / (tile - overlap))
    return [(i * (length - tile)) // (n - 1) for i in range(n)]


def _ramp(overlap: int, margin: int) -> torch.Tensor:
    """The window's rising edge, in float64: 0 over ``margin`` pixels, then sin^2 rising over
    R = overlap - 2 margin pixels at the pixel centres, (d - margin + 1/2) / R, then 1.

    Two neighbours sharing exactly ``overlap`` pixels get weights summing to 1 (sin^2 + cos^2);
    with larger shares the normalisation makes the sum exact."""
    d = torch.arange(overlap, dtype=torch.float64)
    ramp_len = overlap - 2 * margin
    if ramp_len == 0:
        return (d >= margin).to(torch.float64)
    t = ((d - margin + 0.5) / ramp_len).clamp(0.0, 1.0)
    return torch.sin(0.5 * math.pi * t).square()


def _windows(length: int, tile: int, overlap: int, margin: int) -> list[tuple[int, torch.Tensor]]:
    """(start, weights) of each tile along one axis, the weights normalised so that they sum to
    1 at every pixel (float64, CPU)."""
    starts = _starts(length, tile, overlap)
    size = min(tile, length)
    ramp = _ramp(overlap, margin)
    windows = []
    for a in starts:
        w = torch.ones(size, dtype=torch.float64)
        if a > 0:  # a neighbour on the left: the inner edge fades in
            w[:overlap] *= ramp
        if a + size < length:  # and on the right
            w[size - overlap :] *= ramp.flip(0)
        windows.append((a, w))
    total = torch.zeros(length, dtype=torch.float64)
    for a, w in windows:
        total[a : a + size] += w
    # every pixel lies >= margin inside some tile since gaps <= tile - overlap <= tile - 2 margin
    assert bool((total > 0).all()), "tile windows leave a pixel uncovered"
    return [(a, w / total[a : a + size]) for a, w in windows]


@functools.lru_cache(maxsize=64)  # solvers call the denoiser on one size every iteration
def _device_windows(
    length: int, tile: int, overlap: int, margin: int, device: torch.device, dtype: torch.dtype
) -> list[tuple[int, torch.Tensor]]:
    """``_windows`` on ``device`` in ``dtype``, copied there once: every later call of a solve
    (and a CUDA-graph capture, which refuses a host-to-device copy) finds them there."""
    return [(a, w.to(device, dtype)) for a, w in _windows(length, tile, overlap, margin)]


class TiledDenoiser(Denoiser):
    """``D(x, sigma)`` of a wrapped denoiser, computed on overlapping tiles and blended.

    Along each axis of length L the tiles have size T = ``tile`` (L when L <= T), as few as
    cover the axis with neighbours sharing at least ``overlap`` pixels, spread evenly. The tile
    (i, j) is denoised whole, ``D_ij = denoiser(x[..., tile_ij], sigma)``, with the batch and the
    per-image ``sigma`` as given (tiles split space, never the batch), and the output is

        out = sum_ij (u_i (x) v_j) * D_ij,   sum_i u_i = 1 and sum_j v_j = 1 at every pixel,

    where u_i, v_j are separable 1-D windows: 0 over the ``margin`` pixels at each inner tile
    edge (an image border keeps its pixels), then a raised cosine sin^2 over the remaining
    ``overlap - 2 margin`` shared pixels, then 1; each is divided by the sum over tiles, so the
    blend is a convex combination and its weights sum to 1 exactly up to rounding.

    Exactness: a denoiser whose output pixel depends only on inputs within r pixels
    (its receptive radius; a 3x3 convolution has r = 1) gives the untiled result everywhere,
    image borders included, when ``margin >= r``: each output pixel is taken only from tiles in
    which it lies at least ``margin`` pixels inside every inner edge. Networks with larger
    receptive fields (a U-Net's reaches hundreds of pixels) are close but not equal; the
    raised cosine hides the seams. An image no larger than one tile is the untiled call.

    ``multiple``: tile sizes the denoiser needs (8 for a U-Net with three downsamplings).
    ``tile`` must be a multiple of it; a tile that spans a shorter axis is padded by reflection
    (replication when the axis is too short to reflect) at its bottom and right to the next
    multiple, and its output cropped back.

    Defaults: ``overlap`` min(32, tile // 4), ``margin`` overlap // 4 (the pixels nearest a
    tile edge, which see the most padding, are dropped; the rest blends). With the shipped
    DRUNet on a 96x96 color crop at sigma 25/255, tile 64: 69 dB PSNR against the untiled
    output at overlap 16 (67 dB with margin 0, 51 dB without overlap), 84 dB at overlap 32.
    The wrapped denoiser's potential is not tiled: the gradient-step methods (gs-pnp,
    prox-pnp-*) refuse a TiledDenoiser. Shapes: x [B, C, H, W] floating,
    sigma a float or [B] (passed to every tile call unchanged), output like x (the blend runs in
    float32 for half-precision outputs, float64 for float64, and is returned in x's dtype).

    Errors: TypeError for a denoiser that is not callable, tile, overlap, margin or multiple
    not ints; ValueError for tile < 1, overlap < 0 or >= tile, margin < 0 or 2 margin > overlap,
    multiple < 1 or a tile that is not a multiple of it; at the call, x's form as every
    denoiser, and for what the wrapped denoiser returns, as the solvers' engine: TypeError for
    a non-tensor or another dtype, ValueError for another shape or device.
    """

    def __init__(
        self,
        denoiser: Callable,
        tile: int,
        overlap: int | None = None,
        *,
        margin: int | None = None,
        multiple: int = 1,
    ) -> None:
        super().__init__()
        if not callable(denoiser):
            raise TypeError(
                f"denoiser must be callable as D(x, sigma), not {type(denoiser).__name__}"
            )
        self.tile = integer("tile", tile, 1)
        self.overlap = (
            min(32, self.tile // 4) if overlap is None else integer("overlap", overlap, 0)
        )
        if self.overlap >= self.tile:
            raise ValueError(
                f"overlap must be < tile (tiles must advance): overlap {self.overlap}, "
                f"tile {self.tile}"
            )
        self.margin = self.overlap // 4 if margin is None else integer("margin", margin, 0)
        if 2 * self.margin > self.overlap:
            raise ValueError(
                f"margin must be <= overlap / 2 (both neighbours drop it from the shared "
                f"pixels): margin {self.margin}, overlap {self.overlap}"
            )
        self.multiple = integer("multiple", multiple, 1)
        if self.tile % self.multiple:
            fit = self.tile - self.tile % self.multiple or self.multiple
            raise ValueError(
                f"tile must be a multiple of multiple={self.multiple} (the sizes the denoiser "
                f"takes), not {self.tile}: use {fit}"
            )
        self.denoiser = denoiser  # a Module is registered as a submodule (moves with .to())
        self.channels = getattr(denoiser, "channels", None)
        self.blind = getattr(denoiser, "blind", False)

    def extra_repr(self) -> str:
        return (
            f"tile={self.tile}, overlap={self.overlap}, margin={self.margin}, "
            f"multiple={self.multiple}"
        )

    def _denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        out = check_denoised(self.denoiser(x, sigma), x, "a tile")
        return out[..., :h, :w]

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        x = check_image(x, self.channels)
        # the form only (its values are the wrapped denoiser's to check: reading them syncs)
        sigma_per_image(sigma, x, check_values=False)
        H, W = x.shape[-2:]
        if max(H, W) <= self.tile:
            return self._denoise(x, sigma)
        acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        args = (self.tile, self.overlap, self.margin, x.device, acc_dtype)
        rows = [(a, u.view(-1, 1)) for a, u in _device_windows(H, *args)]
        cols = [(b, v.view(1, -1)) for b, v in _device_windows(W, *args)]
        th, tw = min(self.tile, H), min(self.tile, W)
        out = torch.zeros(x.shape, device=x.device, dtype=acc_dtype)
        for a, u in rows:
            for b, v in cols:
                d = self._denoise(x[..., a : a + th, b : b + tw], sigma)
                out[..., a : a + th, b : b + tw] += (u * v) * d.to(acc_dtype)
        return out.to(x.dtype)


# -- --batch auto: the batch that fits the free memory --------------------------------------------

# The files free_memory reads on the CPU (module constants: tests point them elsewhere).
MEMINFO = "/proc/meminfo"
CGROUP_V2 = "/sys/fs/cgroup"  # memory.max, memory.current, memory.stat (inactive_file)
CGROUP_V1 = "/sys/fs/cgroup/memory"  # memory.limit_in_bytes, memory.usage_in_bytes, memory.stat
CPU_FALLBACK_BYTES = 1 << 30  # when nothing can be read: 1 GiB, small enough to be safe
_NO_LIMIT = 1 << 60  # cgroup v1 writes 2**63 - 4096 for "no limit"


def _device(value) -> torch.device:
    if isinstance(value, str):
        try:
            dev = torch.device(value)
        except RuntimeError:
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', not {value!r}") from None
    elif isinstance(value, torch.device):
        dev = value
    else:
        raise TypeError(f"device must be a str or torch.device, not {type(value).__name__}")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(
            f"device must be a cpu or cuda device (the free memory of {dev.type} is not "
            f"measured here), not {str(dev)!r}"
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(dev)!r} was asked for but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        elif dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(dev)!r} was asked for but there are {torch.cuda.device_count()} "
                "CUDA devices"
            )
    return dev


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read_text(path)
    try:
        return int(text.strip()) if text is not None else None  # cgroup v2 "max": None
    except ValueError:
        return None


def _stat_field(path: str, name: str) -> int:
    for line in (_read_text(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if key == name and value.strip().isdigit():
            return int(value)
    return 0


def _meminfo_available() -> int | None:
    """MemAvailable of /proc/meminfo (the kernel's estimate of what can be allocated without
    swapping, page cache that can be dropped included), in bytes."""
    for line in (_read_text(MEMINFO) or "").splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                unit = parts[2].lower() if len(parts) > 2 else "b"
                return int(parts[1]) * (1024 if unit == "kb" else 1)
    return None


def _cgroup_free() -> int | None:
    """limit - (usage - inactive file pages) of this process's memory cgroup (v2, else v1), in
    bytes; None when there is no limit (or the files cannot be read). In a container
    /proc/meminfo shows the host's memory, the cgroup the container's."""
    layouts = (
        (CGROUP_V2, "memory.max", "memory.current", "inactive_file"),
        (CGROUP_V1, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
    )
    for folder, limit_file, usage_file, inactive in layouts:
        limit = _read_int(os.path.join(folder, limit_file))
        usage = _read_int(os.path.join(folder, usage_file))
        if limit is None or usage is None or limit >= _NO_LIMIT:
            continue
        # inactive file pages are page cache that the kernel reclaims before refusing memory
        reclaimable = _stat_field(os.path.join(folder, "memory.stat"), inactive)
        return max(0, limit - max(0, usage - reclaimable))
    return None


def _cpu_free() -> int:
    known = [v for v in (_meminfo_available(), _cgroup_free()) if v is not None]
    if known:
        return min(known)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX, or the names are unknown
        return CPU_FALLBACK_BYTES


def free_memory(device: str | torch.device = "cpu") -> int:
    """The bytes that a batch can still allocate on ``device``.

    CUDA: ``torch.cuda.mem_get_info(device)[0]`` (free on the device, all processes counted)
    plus what PyTorch's caching allocator holds reserved but not allocated
    (``memory_reserved - memory_allocated``), which it reuses before asking the device.
    CPU: MemAvailable of /proc/meminfo, or less when this process's memory cgroup (v2
    ``memory.max``, v1 ``memory.limit_in_bytes``, as a container sets it) leaves less:
    limit - (usage - inactive file pages); where none of these files can be read,
    ``os.sysconf`` free pages, else ``CPU_FALLBACK_BYTES`` (1 GiB). Files only: no environment
    variable is read.

    The value is a snapshot: other processes and fragmentation change it, which is why
    ``auto_batch_size`` keeps headroom and ``run_halving`` answers the out-of-memory error of
    a batch that still does not fit.

    Errors: TypeError for a device that is not a str or torch.device; ValueError for a device
    other than cpu or cuda, or a CUDA device that is not available.
    """
    dev = _device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        cached = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
        return int(free) + max(0, int(cached))
    return int(_cpu_free())


class _LiveBytes(TorchDispatchMode):
    """A dispatch mode that follows the bytes of the tensors created under it: a storage counts
    from the op that first returns it until the last tensor on it (views included) is freed;
    ``peak`` is the most counted at once. Storages that existed before (inputs, weights) and
    storages that an op's kernel frees before returning (its own workspace) are not seen."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, list[int]] = {}  # data_ptr -> [bytes, tensors on it]
        self.now = 0
        self.peak = 0

    def _release(self, ptr: int) -> None:
        entry = self.live.get(ptr)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.now -= entry[0]
            del self.live[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            try:
                storage = t.untyped_storage()
                ptr, nbytes = storage.data_ptr(), storage.nbytes()
            except (RuntimeError, NotImplementedError):  # sparse, or no storage
                continue
            if nbytes == 0:
                continue
            entry = self.live.get(ptr)
            if entry is None:
                if id(t) in inputs:  # an in-place op on a storage from before
                    continue
                entry = self.live[ptr] = [nbytes, 0]
                self.now += nbytes
                self.peak = max(self.peak, self.now)
            entry[1] += 1
            # runs when the tensor object dies (CPython frees at once; torch keeps a tensor's
            # Python object alive as long as its TensorImpl is)
            weakref.finalize(t, self._release, ptr)
        return out


# What the dispatch mode cannot see on the CPU: the scratch memory of the kernels (oneDNN's
# reorders, FFT buffers), freed before they return. Measured against the CPU allocator's own
# peak (torch.profiler's memory events, tests/runner/test_tiles.py), in images of the probe
# [1, C, h, w], 64..128 px colour, float32: allocator / tracked = 73.4 / 62.7 (shipped DRUNet),
# 72.8 / 61.3 (blind U-Net), 191.3 / 175.3 (gradient-step), 4.2 / 2.2 (Gaussian smoothing),
# 12.0 / 12.0 (TV); the scratch grows with the pixels, so it is a factor plus a few images:
# 1.25 tracked + 2 probe images covers each, 8 to 16% above it (80.3, 78.7, 221.2, 4.8; TV
# 17.0).
# Below 48 px the allocator also shows a fixed scratch per call (0.3 to 0.5 MB for the U-Nets:
# their weights reordered), paid once per batch, not per image: the headroom of auto_batch_size
# covers it.
CPU_SCRATCH_FACTOR = 1.25
CPU_SCRATCH_IMAGES = 2


def _peak_cpu(denoiser: Callable, x: torch.Tensor, sigma: float) -> int:
    with _LiveBytes() as mode:
        out = denoiser(x, sigma)
    del out
    probe = x.numel() * x.element_size()
    return math.ceil(CPU_SCRATCH_FACTOR * mode.peak) + CPU_SCRATCH_IMAGES * probe


def _peak_cuda(denoiser: Callable, x: torch.Tensor, sigma: float) -> int:
    dev = x.device
    torch.cuda.synchronize(dev)
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    out = denoiser(x, sigma)
    torch.cuda.synchronize(dev)
    peak = torch.cuda.max_memory_allocated(dev) - base
    del out
    return max(0, peak)


# Images of the data step alive at the denoiser's peak or at the data step's own, per image
# [C, H, W] in the data step's dtype (float32: 4 bytes a value), counted from
# pnpfast/fidelity.py, pnpfast/ops/fft_prox.py, pnpfast/ops/sr_prox.py and
# pnpfast/solvers/splitting.py + engine.py; summed, not maxed, to stay on the safe side:
#   held through the solve: y, A^T y (x0), the cached spectrum conj(K^) Y^ (a half spectrum,
#   complex: one image's bytes; super-resolution's fft2(A^T y) is a full one: two) and |K^|^2
#   (at most one), the iterate the step starts from, the engine's merged iterate: 6 (7 for SR);
#   the methods' extra state: ADMM's v and u, DRS's z: up to 2;
#   one prox: the spectrum of v (rfft2: one; fft2 for SR: two), the spectral pass's output
#   (one; SR: two, or none in place), the inverse FFT's output (one): 3 (5 for SR).
# 7 + 2 + 5 = 14 at most: SR with ADMM; deblurring with HQS needs 6 + 3 = 9.
DATA_STEP_IMAGES = 14.0
PROBE_PIXELS = 256 * 256


def _shape(value) -> tuple[int, int, int]:
    if isinstance(value, (list, tuple)):  # torch.Size is a tuple
        if len(value) != 3:
            raise ValueError(
                f"shape must be (C, H, W), the shape of one image, got {len(value)} entries "
                f"{tuple(value)}"
            )
        return tuple(integer(f"shape[{i}]", v, 1) for i, v in enumerate(value))
    raise TypeError(f"shape must be a tuple (C, H, W), not {type(value).__name__}")


def image_bytes(
    denoiser: Callable,
    shape: Sequence[int],
    *,
    sigma: float = 25 / 255,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    workspace_images: float = DATA_STEP_IMAGES,
    probe_pixels: int = PROBE_PIXELS,
) -> int:
    """An estimate of the peak bytes one image of shape (C, H, W) adds to a solve with
    ``denoiser``: the denoiser's peak, measured, plus the data step's images, counted.

        bytes = ceil((P + x_probe) * H W / (h w)) + ceil(workspace_images * C H W * s)

    * P: the denoiser run once, under ``torch.no_grad``, on a random probe x_probe of shape
      [1, C, h, w] on ``device`` in ``dtype``: the image itself when H W <= ``probe_pixels``,
      else a crop of about ``probe_pixels`` pixels (w = min(W, sqrt(probe_pixels)), h as many
      rows as fit). The probe's peak is scaled by the pixel ratio: a convolutional network's
      activations grow linearly with the pixels (its padding to a multiple of 8 makes a small
      probe overestimate, never under); the weights exist before the probe and are not counted
      (they are paid once, not per image). P on CUDA: ``max_memory_allocated`` during the call
      minus ``memory_allocated`` before it (after ``reset_peak_memory_stats``: the device's
      peak statistic restarts there; a caller that reports its run's peak reads it first and
      keeps the larger). P on the CPU, which has no allocator statistics: every tensor that an
      aten op returns during the call is followed from its creation until its last view dies
      (a ``TorchDispatchMode`` with weak references); the most bytes alive at once, T, is
      exact for what the ops return, skip connections of a U-Net included, but a kernel's own
      scratch memory, freed before it returns (oneDNN's reorders, FFT buffers), is not seen:
      P = 1.25 T + 2 probe images (``CPU_SCRATCH_FACTOR``, ``CPU_SCRATCH_IMAGES``), which
      the CPU allocator's own peak stayed below for every shipped denoiser measured (by 8 to
      16%; the comment above ``CPU_SCRATCH_FACTOR`` gives the numbers).
    * The data step: ``workspace_images`` images of [C, H, W] in the data step's dtype
      (s = 4 bytes for float32, 8 for float64; the data step stays float32 when the denoiser
      runs in half precision). ``DATA_STEP_IMAGES`` = 14 counts the images that the solve holds
      besides the denoiser (y, A^T y, the cached spectra, the iterates and one FFT prox's
      buffers: the module's comment above it lists them); super-resolution with ADMM needs the
      14, deblurring with HQS 9.

    ``shape`` is the shape of the images the solver iterates on: for super-resolution, the
    output (s times the measurement). ``sigma`` is the noise level the probe is denoised at.
    Measured (CPU, float32, the shipped conditional DRUNet, 256x256 colour, in images of
    [3, 256, 256], 0.79 MB each): T = 62.7 (49.3 MB), P = 80.3, and with the probe itself and
    the data step, 81.3 + 14 = 95.3 images (75 MB) per image; T is the same at 64, 128 and 256
    px (activations linear in the pixels). The probe costs one denoiser call (0.5 s here).

    An underestimate is not fatal: a batch that still runs out of memory is halved by
    ``run_halving``. The estimate is for one image; ``auto_batch_size`` turns it into a batch.

    Errors: TypeError for a denoiser that is not callable, a shape that is not a tuple of
    ints, a sigma or workspace_images that is not a number, a dtype that is not a floating
    torch.dtype, a device that is not a str or torch.device, probe_pixels not an int;
    ValueError for a shape of another length or with an entry < 1, a negative or non-finite
    sigma or workspace_images, probe_pixels < 1, a device other than cpu or cuda or one that
    is not available; what the denoiser raises for the probe propagates.
    """
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as D(x, sigma), not {type(denoiser).__name__}")
    C, H, W = _shape(shape)
    sigma = number("sigma", sigma, 0.0)
    dev = _device(device)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"dtype must be a floating torch.dtype (torch.float32), not "
            f"{dtype if isinstance(dtype, torch.dtype) else type(dtype).__name__}"
        )
    workspace_images = number("workspace_images", workspace_images, 0.0)
    probe_pixels = integer("probe_pixels", probe_pixels, 1)
    w = min(W, max(1, math.isqrt(probe_pixels)))
    h = min(H, max(1, probe_pixels // w))
    w = min(W, max(1, probe_pixels // h))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, C, h, w, generator=g).to(device=dev, dtype=dtype)
    with torch.no_grad():
        peak = (
            _peak_cuda(denoiser, x, sigma) if dev.type == "cuda" else _peak_cpu(denoiser, x, sigma)
        )
    probe = peak + x.numel() * x.element_size()
    den = -(-probe * H * W // (h * w))
    value_bytes = max(4, x.element_size())
    return den + math.ceil(workspace_images * C * H * W * value_bytes)


def auto_batch_size(
    per_image_bytes: int, free_bytes: int, *, headroom: float = 0.8, cap: int = 64
) -> int:
    """The batch size that fits: floor(headroom * free_bytes / per_image_bytes), clamped to
    [1, cap].

    ``per_image_bytes`` from ``image_bytes``, ``free_bytes`` from ``free_memory``. The headroom
    (default 0.8: a fifth kept back) covers what the estimate does not see (allocator
    fragmentation and rounding, cuFFT plans, other processes); ``cap`` (default 64) bounds the
    batch where memory would allow more: beyond a few dozen images a GPU is saturated and a
    larger batch only delays the first outputs and loses more work to a kill. A batch of 1 is
    returned even when one image does not fit: ``run_halving`` then re-raises its
    out-of-memory error and the caller tiles it (``run_tiled_fallback``); a batch that is too
    large is halved by ``run_halving``, so an estimate off either way costs retries, never
    work.

    Errors: TypeError for per_image_bytes, free_bytes or cap that is not an int, headroom that
    is not a number; ValueError for per_image_bytes < 1, free_bytes < 0, headroom outside
    (0, 1], cap < 1.
    """
    per = integer("per_image_bytes", per_image_bytes, 1)
    free = integer("free_bytes", free_bytes, 0)
    headroom = number("headroom", headroom, 0.0, 1.0, low_open=True)
    cap = integer("cap", cap, 1)
    return max(1, min(cap, math.floor(headroom * free / per)))


# -- an image too large even alone: the denoiser on tiles -----------------------------------------


def overlap_for(tile: int) -> int:
    """The overlap used with ``tile`` by ``run_tiled_fallback``: min(max(16, tile // 8),
    tile // 4).

    At least 16 pixels from tile 64 up (the shipped DRUNet at tile 64, overlap 16 is 69 dB
    from the untiled output, see ``TiledDenoiser``), an eighth of larger tiles (64 at 512:
    wider blends for the U-Net's wide receptive field at a cost of (8/7)^2 = 1.31 times the
    pixels), and never more than a quarter of the tile (below 64: the extra work stays under
    (4/3)^2 = 1.78 times). Always < tile; ``TiledDenoiser``'s margin is then overlap // 4.

    Errors: TypeError for a tile that is not an int, ValueError for tile < 1.
    """
    t = integer("tile", tile, 1)
    return min(max(16, t // 8), t // 4)


def tile_schedule(height: int, width: int, *, start: int = 512, minimum: int = 64) -> list[int]:
    """The tile sizes to try for an image of height x width that does not fit whole, largest
    first: ``start`` halved until it is smaller than the image's longer side (a tile that
    covers the image is the untiled call that just failed), then halved down to ``minimum``.

    E.g. 1000x800: [512, 256, 128, 64]; 300x200: [256, 128, 64]; 64x64: [] (no tile of at
    least ``minimum`` is smaller: tiling cannot help, the out-of-memory error stands).
    ``minimum`` 64 keeps a U-Net's tiles above its receptive field's core (DRUNet's three
    downsamplings leave 8x8 at its bottom).

    Errors: TypeError for an argument that is not an int; ValueError for one < 1 or minimum >
    start.
    """
    h = integer("height", height, 1)
    w = integer("width", width, 1)
    start = integer("start", start, 1)
    minimum = integer("minimum", minimum, 1)
    if minimum > start:
        raise ValueError(f"minimum must be <= start: minimum {minimum}, start {start}")
    side = max(h, w)
    t = start
    while t >= side:
        t //= 2
    tiles = []
    while t >= minimum:
        tiles.append(t)
        t //= 2
    return tiles


def run_tiled_fallback(fn: Callable, item, tiles: Sequence[int]) -> tuple[object, int]:
    """``(fn(item, tile, overlap_for(tile)), tile)`` for the first tile of ``tiles`` that does
    not run out of memory.

    For an image that runs out of memory even alone (``run_halving`` re-raises for one item):
    ``fn`` builds ``TiledDenoiser(denoiser, tile, overlap)`` and solves with it, so the data
    step stays whole and only the denoiser, the memory-hungry part, sees a tile at a time.
    ``tiles`` comes from ``tile_schedule``, largest first: the result is that of the largest
    tile that fits. An out-of-memory error (``is_out_of_memory``) moves on to the next tile
    after emptying the CUDA cache; when the last tile fails too, its error is raised (the image
    needs more memory than the smallest tile leaves: its data step alone may not fit). Any
    other exception propagates at once. ``item`` is passed through: one image or a batch of
    images of one size (``fn`` may itself call ``run_halving``).

    Errors: TypeError for a non-callable ``fn`` or ``tiles`` that is not a list or tuple of
    ints; ValueError for empty ``tiles`` (``tile_schedule`` found no tile smaller than the
    image: keep the original error) or a tile < 1.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable as fn(item, tile, overlap), not {type(fn).__name__}")
    if not isinstance(tiles, (list, tuple)):
        raise TypeError(f"tiles must be a list or tuple of ints, not {type(tiles).__name__}")
    if not tiles:
        raise ValueError(
            "tiles is empty: no tile is smaller than the image (tile_schedule), so tiling "
            "cannot help; raise the out-of-memory error instead"
        )
    sizes = [integer(f"tiles[{i}]", t, 1) for i, t in enumerate(tiles)]
    failed: BaseException | None = None
    for tile in sizes:
        failed = None
        try:
            return fn(item, tile, overlap_for(tile)), tile
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            # the failed attempt's tensors, held by the traceback's frames, are freed before
            # the next tile; the traceback itself is kept for the last error
            traceback.clear_frames(err.__traceback__)
            failed = err
        _empty_cache()
    raise failed
