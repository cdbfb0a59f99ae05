"""Fuzz table (issue 17) of pnpfast.runner.tiles: ``group`` (items, key and max_batch of the
wrong type or value), ``is_out_of_memory`` (non-exceptions, look-alike messages of other
types, the CPU allocator's real error), ``run_halving`` (bad fn, batch, min_size, on_split, fn
returning the wrong count), ``TiledDenoiser`` (constructor arguments, x and sigma at the call,
wrapped denoisers returning the wrong type, shape or dtype), and the memory pieces:
``free_memory`` (devices; fake /proc/meminfo and cgroup files), ``image_bytes`` (denoiser,
shape, sigma, dtype, device, workspace_images, probe_pixels), ``auto_batch_size``,
``tile_schedule``, ``overlap_for`` and ``run_tiled_fallback`` (fn, tiles, a denoiser that runs
out of memory above a size or fails otherwise).

Good rows compare with oracles written here: the batches of ``group`` and the results of
``run_halving`` by hand, the tiled denoiser with the untiled call of a local denoiser (a 3x3
mean with replicate padding, receptive radius 1, so margin >= 1 makes tiling exact, and a
pointwise map, radius 0) on a contiguous float32 copy; ``image_bytes`` of a one-convolution
network with its live activations counted by hand; the free bytes, batch sizes and tile lists
by hand. 1x1 to 9x40 images.
"""

import functools
import math
from unittest import mock

import torch
import torch.nn.functional as F
from fuzz_cases import Bad, Good, channels_last, check, params, scratch_folder, transposed

from pnpfast.denoisers import DRUNet
from pnpfast.runner import tiles as tiles_module
from pnpfast.runner.tiles import (
    TiledDenoiser,
    auto_batch_size,
    free_memory,
    group,
    image_bytes,
    is_out_of_memory,
    overlap_for,
    run_halving,
    run_tiled_fallback,
    tile_schedule,
)

GR = "pnpfast.runner.tiles.group"
OOM = "pnpfast.runner.tiles.is_out_of_memory"
RH = "pnpfast.runner.tiles.run_halving"
TD = "pnpfast.runner.tiles.TiledDenoiser"
TDF = "pnpfast.runner.tiles.TiledDenoiser.forward"
FM = "pnpfast.runner.tiles.free_memory"
IB = "pnpfast.runner.tiles.image_bytes"
ABS = "pnpfast.runner.tiles.auto_batch_size"
TS = "pnpfast.runner.tiles.tile_schedule"
OF = "pnpfast.runner.tiles.overlap_for"
RTF = "pnpfast.runner.tiles.run_tiled_fallback"


def image(b: int = 2, c: int = 1, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def smooth(x: torch.Tensor, sigma) -> torch.Tensor:
    """(1 - a) x + a mean3x3(x), a = 10 sigma per image, replicate padding: radius 1."""
    a = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1) * 10
    return (1 - a) * x + a * F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def pointwise(x: torch.Tensor, sigma) -> torch.Tensor:
    return torch.tanh(3 * x) - torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)


def tiled(fn=smooth, tile: int = 8, overlap: int = 4, **kw) -> TiledDenoiser:
    return TiledDenoiser(fn, tile, overlap, **kw)


@functools.cache
def gray_net() -> DRUNet:
    torch.manual_seed(1)
    return DRUNet(1, (4, 8), 1).eval()


def doubled(limit: int, error=torch.OutOfMemoryError):
    """Doubles each item; an out-of-memory error for batches longer than ``limit``."""

    def fn(batch):
        if len(batch) > limit:
            raise error("CUDA out of memory. Tried to allocate 64.00 MiB")
        return batch * 2 if isinstance(batch, torch.Tensor) else [2 * v for v in batch]

    return fn


def cpu_allocator_error() -> RuntimeError:
    try:
        torch.empty(2**50, dtype=torch.uint8)  # 1 PiB: refused at once
    except RuntimeError as e:
        return e
    raise AssertionError("allocating 1 PiB did not fail")


def with_files(meminfo: str, cgroup_v2: dict[str, str] | None = None) -> int:
    """free_memory("cpu") with /proc/meminfo and the cgroup v2 folder replaced by these files
    (no cgroup v1)."""
    folder = scratch_folder("runner_tiles")
    (folder / "meminfo").write_text(meminfo)
    (folder / "cg2").mkdir()
    for name, text in (cgroup_v2 or {}).items():
        (folder / "cg2" / name).write_text(text)
    with (
        mock.patch.object(tiles_module, "MEMINFO", str(folder / "meminfo")),
        mock.patch.object(tiles_module, "CGROUP_V2", str(folder / "cg2")),
        mock.patch.object(tiles_module, "CGROUP_V1", str(folder / "none")),
    ):
        return free_memory("cpu")


def conv16(c: int = 1):
    """conv c->16 (3x3): its output (16 channels) is the only activation; D(x, sigma)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(c, 16, 3, padding=1)
    proj = torch.nn.Conv2d(16, c, 1)
    return lambda x, sigma: proj(conv(x))


def conv16_bytes(c: int, h: int, w: int, dtype_bytes: int = 4) -> int:
    """image_bytes of conv16 with no data step, by hand: the 16-channel activation and the
    c-channel output alive together (T), times 1.25, plus 2 images of scratch and the input."""
    px = h * w * dtype_bytes
    return math.ceil(1.25 * (16 + c) * px) + 3 * c * px


class Hungry:
    """Pointwise; a CUDA out-of-memory error for inputs of more than ``limit`` pixels (B H W)."""

    def __init__(self, limit: int):
        self.limit = limit

    def __call__(self, x, sigma):
        if x.shape[0] * x.shape[-2] * x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return pointwise(x, sigma)


def fallback(limit: int, x: torch.Tensor, tiles: list[int]):
    return run_tiled_fallback(
        lambda item, t, o: TiledDenoiser(Hungry(limit), t, o)(item, 0.1), x, tiles
    )


CASES = [
    # ---- group -----------------------------------------------------------------------------
    Bad(
        GR,
        "type",
        "items-str",
        lambda: group("abc", key=str),
        TypeError,
        r"items must be a sequence",
    ),
    Bad(
        GR,
        "type",
        "items-generator",
        lambda: group((i for i in range(3)), key=str),
        TypeError,
        r"items must be a sequence \(list or tuple\), not generator",
    ),
    Bad(
        GR,
        "type",
        "key-not-callable",
        lambda: group([1], key=3),
        TypeError,
        r"key must be callable",
    ),
    Bad(
        GR,
        "type",
        "key-returns-list",
        lambda: group([1, 2], key=lambda i: [i]),
        TypeError,
        r"key must return a hashable value .* for item 0 it returned list",
    ),
    Bad(
        GR,
        "type",
        "key-returns-tensor",
        lambda: group([torch.zeros(2)], key=lambda t: torch.tensor(t.shape)),
        TypeError,
        r"key must return a hashable value such as a tuple .* not a tensor",
    ),
    Bad(
        GR,
        "value",
        "max_batch-0",
        lambda: group([1], key=str, max_batch=0),
        ValueError,
        r"max_batch must be an int >= 1, not 0",
    ),
    Bad(
        GR,
        "type",
        "max_batch-float",
        lambda: group([1], key=str, max_batch=2.0),
        TypeError,
        r"max_batch must be an int >= 1, not float 2.0",
    ),
    Bad(
        GR,
        "type",
        "max_batch-bool",
        lambda: group([1], key=str, max_batch=True),
        TypeError,
        r"max_batch must be an int >= 1, not bool True",
    ),
    Good(GR, "size", "empty", lambda: group([], key=str), lambda: []),
    Good(
        GR,
        "value",
        "parity-max_batch-2",
        lambda: group((1, 2, 3, 4, 5, 7, 9), key=lambda i: i % 2, max_batch=2),
        lambda: [[1, 3], [5, 7], [9], [2, 4]],
    ),
    Good(
        GR,
        "value",
        "max_batch-1",
        lambda: group([3, 1, 2], key=lambda i: 0, max_batch=1),
        lambda: [[3], [1], [2]],
    ),
    # ---- is_out_of_memory ------------------------------------------------------------------
    Bad(
        OOM,
        "type",
        "str",
        lambda: is_out_of_memory("CUDA out of memory"),
        TypeError,
        r"err must be an exception, not str",
    ),
    Bad(
        OOM, "type", "none", lambda: is_out_of_memory(None), TypeError, r"err must be an exception"
    ),
    Good(
        OOM,
        "type",
        "real-cpu-allocator",
        lambda: is_out_of_memory(cpu_allocator_error()),
        lambda: True,
    ),
    Good(
        OOM,
        "type",
        "subclass-with-oom-text",
        lambda: is_out_of_memory(NotImplementedError("CUDA out of memory")),
        lambda: False,
    ),
    Good(OOM, "type", "memory-error", lambda: is_out_of_memory(MemoryError()), lambda: False),
    # ---- run_halving -----------------------------------------------------------------------
    Bad(RH, "type", "fn-none", lambda: run_halving(None, [1]), TypeError, r"fn must be callable"),
    Bad(
        RH,
        "type",
        "on_split-int",
        lambda: run_halving(doubled(1), [1], on_split=1),
        TypeError,
        r"on_split must be callable or None, not int",
    ),
    Bad(
        RH,
        "type",
        "batch-dict",
        lambda: run_halving(doubled(1), {1: 2}),
        TypeError,
        r"batch must be a list, a tuple or a tensor, not dict",
    ),
    Bad(
        RH,
        "size",
        "batch-0d-tensor",
        lambda: run_halving(doubled(1), torch.tensor(1.0)),
        ValueError,
        r"batch must be a tensor with a batch dimension",
    ),
    Bad(
        RH,
        "size",
        "batch-empty",
        lambda: run_halving(doubled(1), []),
        ValueError,
        r"batch is empty",
    ),
    Bad(
        RH,
        "size",
        "batch-empty-tensor",
        lambda: run_halving(doubled(1), torch.zeros(0, 3)),
        ValueError,
        r"batch is empty",
    ),
    Bad(
        RH,
        "value",
        "min_size-0",
        lambda: run_halving(doubled(1), [1], min_size=0),
        ValueError,
        r"min_size must be an int >= 1, not 0",
    ),
    Bad(
        RH,
        "type",
        "min_size-float",
        lambda: run_halving(doubled(1), [1], min_size=1.5),
        TypeError,
        r"min_size must be an int >= 1, not float 1.5",
    ),
    Bad(
        RH,
        "value",
        "fn-drops-an-item",
        lambda: run_halving(lambda b: b[1:], [1, 2, 3]),
        ValueError,
        r"fn returned 2 results for a batch of 3 items",
    ),
    Bad(
        RH,
        "type",
        "fn-returns-int",
        lambda: run_halving(lambda b: 0, [1, 2]),
        TypeError,
        r"the result of fn must be a list, a tuple or a tensor, not int",
    ),
    Bad(
        RH,
        "size",
        "single-item-still-out-of-memory",
        lambda: run_halving(doubled(0), [1, 2, 3]),
        torch.OutOfMemoryError,
        r"CUDA out of memory",
    ),
    Bad(
        RH,
        "value",
        "min_size-stops-halving",
        lambda: run_halving(doubled(1, RuntimeError), [1, 2, 3, 4], min_size=2),
        RuntimeError,
        r"CUDA out of memory",
    ),
    Good(
        RH,
        "size",
        "one-item",
        lambda: run_halving(doubled(1), torch.ones(1, 2)),
        lambda: torch.full((1, 2), 2.0),
    ),
    Good(
        RH,
        "layout",
        "transposed-tensor-halved",
        lambda: run_halving(doubled(2), transposed(image(5, 1, 3, 4))),
        lambda: image(5, 1, 3, 4) * 2,
    ),
    Good(
        RH,
        "value",
        "tuple-halved-to-singles",
        lambda: run_halving(doubled(1, RuntimeError), (1, 2, 3, 4, 5)),
        lambda: [2, 4, 6, 8, 10],
    ),
    # ---- TiledDenoiser ---------------------------------------------------------------------
    Bad(
        TD, "type", "denoiser-str", lambda: tiled("drunet"), TypeError, r"denoiser must be callable"
    ),
    Bad(
        TD,
        "value",
        "tile-0",
        lambda: tiled(tile=0, overlap=0),
        ValueError,
        r"tile must be an int >= 1, not 0",
    ),
    Bad(
        TD,
        "type",
        "tile-float",
        lambda: tiled(tile=8.0),
        TypeError,
        r"tile must be an int >= 1, not float",
    ),
    Bad(
        TD,
        "type",
        "tile-bool",
        lambda: tiled(tile=True, overlap=0),
        TypeError,
        r"tile must be an int",
    ),
    Bad(
        TD,
        "value",
        "overlap-negative",
        lambda: tiled(overlap=-1),
        ValueError,
        r"overlap must be an int >= 0",
    ),
    Bad(
        TD,
        "value",
        "overlap-equals-tile",
        lambda: tiled(tile=8, overlap=8),
        ValueError,
        r"overlap must be < tile \(tiles must advance\): overlap 8, tile 8",
    ),
    Bad(
        TD,
        "value",
        "margin-negative",
        lambda: tiled(margin=-1),
        ValueError,
        r"margin must be an int >= 0",
    ),
    Bad(
        TD,
        "value",
        "margin-over-half-overlap",
        lambda: tiled(overlap=4, margin=3),
        ValueError,
        r"margin must be <= overlap / 2 .*: margin 3, overlap 4",
    ),
    Bad(
        TD,
        "value",
        "multiple-0",
        lambda: tiled(multiple=0),
        ValueError,
        r"multiple must be an int >= 1",
    ),
    Bad(
        TD,
        "value",
        "tile-not-a-multiple",
        lambda: tiled(tile=12, overlap=4, multiple=8),
        ValueError,
        r"tile must be a multiple of multiple=8 .* not 12: use 8",
    ),
    Bad(
        TDF,
        "rank",
        "x-3d",
        lambda: tiled()(torch.rand(1, 8, 8), 0.1),
        ValueError,
        r"x must have shape \[B, C, H, W\]",
    ),
    Bad(
        TDF,
        "dtype",
        "x-int",
        lambda: tiled()(torch.ones(1, 1, 8, 8, dtype=torch.int64), 0.1),
        TypeError,
        r"x must have a floating dtype, not int64",
    ),
    Bad(
        TDF,
        "meta",
        "x-meta",
        lambda: tiled()(torch.empty(1, 1, 8, 8, device="meta"), 0.1),
        ValueError,
        r"x is on the meta device",
    ),
    Bad(
        TDF,
        "size",
        "x-batch-0",
        lambda: tiled()(torch.rand(0, 1, 8, 8), 0.1),
        ValueError,
        r"x has a batch of size 0",
    ),
    Bad(
        TDF,
        "mismatch",
        "x-3-channels-gray-network",
        lambda: tiled(gray_net())(image(1, 3, 8, 8), 0.1),
        ValueError,
        r"x has 3 channels but this denoiser takes 1",
    ),
    Bad(
        TDF,
        "mismatch",
        "sigma-length-3-batch-2",
        lambda: tiled()(image(2), torch.tensor([0.1, 0.1, 0.1])),
        ValueError,
        r"sigma must be a float or a tensor of length 2",
    ),
    Bad(
        TDF,
        "type",
        "sigma-str",
        lambda: tiled()(image(2), "0.1"),
        TypeError,
        r"sigma must be a float",
    ),
    Bad(
        TDF,
        "nan-inf",
        "sigma-nan",
        lambda: tiled()(image(2), float("nan")),
        ValueError,
        r"sigma must be finite, got nan",
    ),
    Bad(
        TDF,
        "nan-inf",
        "sigma-nan-tensor-drunet",
        lambda: tiled(gray_net())(image(2, 1, 12, 12), torch.tensor([0.1, float("nan")])),
        ValueError,
        r"sigma must be finite, got nan",
    ),
    Bad(
        TDF,
        "denoiser",
        "returns-tuple",
        lambda: tiled(lambda x, s: (x,))(image(1, 1, 12, 12), 0.1),
        TypeError,
        r"the denoiser returned tuple, not a torch.Tensor, for a tile of shape \(1, 1, 8, 8\)",
    ),
    Bad(
        TDF,
        "denoiser",
        "returns-cropped",
        lambda: tiled(lambda x, s: x[..., 1:, :])(image(1, 1, 12, 12), 0.1),
        ValueError,
        r"the denoiser returned shape \(1, 1, 7, 8\) for a tile of shape \(1, 1, 8, 8\)",
    ),
    Bad(
        TDF,
        "denoiser",
        "returns-float64",
        lambda: tiled(lambda x, s: x.double())(image(1, 1, 12, 12), 0.1),
        TypeError,
        r"the denoiser returned dtype torch.float64 for a tile of dtype torch.float32",
    ),
    Bad(
        TDF,
        "denoiser",
        "single-tile-returns-wrong-shape",
        lambda: tiled(lambda x, s: x[:1])(image(2, 1, 6, 6), 0.1),
        ValueError,
        r"the denoiser returned shape \(1, 1, 6, 6\)",
    ),
    Good(
        TDF,
        "size",
        "1x1-image-single-tile",
        lambda: tiled()(image(2, 3, 1, 1), 0.05),
        lambda: smooth(image(2, 3, 1, 1), 0.05),
        1e-7,
    ),
    Good(
        TDF,
        "size",
        "9x40-one-tile-high",
        lambda: tiled(margin=1)(image(2, 1, 9, 40), torch.tensor([0.02, 0.07])),
        lambda: smooth(image(2, 1, 9, 40), torch.tensor([0.02, 0.07])),
        1e-6,
    ),
    Good(
        TDF,
        "size",
        "tile-1-overlap-0-pointwise",
        lambda: tiled(pointwise, tile=1, overlap=0)(image(1, 2, 5, 7), 0.1),
        lambda: pointwise(image(1, 2, 5, 7), 0.1),
        1e-7,
    ),
    Good(
        TDF,
        "value",
        "sigma-per-image-13x17",
        lambda: tiled(margin=1)(image(3, 2, 13, 17), torch.tensor([0.0, 0.05, 0.09])),
        lambda: smooth(image(3, 2, 13, 17), torch.tensor([0.0, 0.05, 0.09])),
        1e-6,
    ),
    Good(
        TDF,
        "dtype",
        "float64",
        lambda: tiled(margin=1)(image(2, 1, 15, 15).double(), 0.05),
        lambda: smooth(image(2, 1, 15, 15).double(), 0.05),
        1e-12,
    ),
    Good(
        TDF,
        "dtype",
        "bfloat16",
        lambda: tiled(margin=1)(image(1, 1, 15, 15).bfloat16(), 0.05).float(),
        lambda: smooth(image(1, 1, 15, 15), 0.05),
        # bfloat16 keeps 8 bits: inputs and each of the few ops round at 2**-9 relative
        2e-2,
    ),
    Good(
        TDF,
        "layout",
        "channels_last",
        lambda: tiled(margin=1)(channels_last(image(2, 3, 14, 11)), 0.05),
        lambda: smooth(image(2, 3, 14, 11), 0.05),
        1e-6,
    ),
    Good(
        TDF,
        "layout",
        "transposed",
        lambda: tiled(margin=1)(transposed(image(2, 1, 14, 11)), 0.05),
        lambda: smooth(image(2, 1, 14, 11), 0.05),
        1e-6,
    ),
    Good(
        TDF,
        "value",
        "multiple-8-pads-short-axis",
        # the 5-pixel axis is padded by reflection to 8: away from that border (radius 1) the
        # replicate-padded mean is untouched
        lambda: tiled(margin=1, multiple=8)(image(1, 1, 5, 20), 0.05)[..., :4, :],
        lambda: smooth(image(1, 1, 5, 20), 0.05)[..., :4, :],
        1e-6,
    ),  # ---- free_memory -----------------------------------------------------------------------
    Bad(FM, "type", "device-int", lambda: free_memory(0), TypeError, r"device must be a str or"),
    Bad(
        FM,
        "name",
        "device-unknown",
        lambda: free_memory("gpu"),
        ValueError,
        r"device must be 'cpu', 'cuda' or 'cuda:N', not 'gpu'",
    ),
    Bad(
        FM,
        "meta",
        "device-meta",
        lambda: free_memory("meta"),
        ValueError,
        r"device must be a cpu or cuda device .*, not 'meta'",
    ),
    Bad(
        FM,
        "value",
        "device-cuda-99",
        # "CUDA is not available" here, "there are N CUDA devices" on a GPU machine
        lambda: free_memory("cuda:99"),
        ValueError,
        r"device 'cuda:99' was asked for but",
    ),
    Good(
        FM,
        "value",
        "meminfo-kb",
        lambda: with_files("MemTotal: 9 kB\nMemAvailable:   1234 kB\n"),
        lambda: 1234 * 1024,
    ),
    Good(
        FM,
        "value",
        "cgroup-v2-limit-below-meminfo",
        lambda: with_files(
            "MemAvailable: 1000000 kB\n",
            {
                "memory.max": "5000\n",
                "memory.current": "4000\n",
                "memory.stat": "inactive_file 500\n",
            },
        ),
        lambda: 5000 - (4000 - 500),
    ),
    Good(
        FM,
        "file",
        "meminfo-garbled-cgroup-used",
        lambda: with_files("MemAvailable: lots\n", {"memory.max": "300", "memory.current": "100"}),
        lambda: 200,
    ),
    # ---- image_bytes -----------------------------------------------------------------------
    Bad(
        IB,
        "type",
        "denoiser-str",
        lambda: image_bytes("drunet", (1, 8, 8)),
        TypeError,
        r"denoiser must be callable as D\(x, sigma\), not str",
    ),
    Bad(
        IB,
        "type",
        "shape-int",
        lambda: image_bytes(pointwise, 64),
        TypeError,
        r"shape must be a tuple \(C, H, W\), not int",
    ),
    Bad(
        IB,
        "rank",
        "shape-4-entries",
        lambda: image_bytes(pointwise, (1, 1, 8, 8)),
        ValueError,
        r"shape must be \(C, H, W\), the shape of one image, got 4 entries",
    ),
    Bad(
        IB,
        "size",
        "shape-height-0",
        lambda: image_bytes(pointwise, (1, 0, 8)),
        ValueError,
        r"shape\[1\] must be an int >= 1, not 0",
    ),
    Bad(
        IB,
        "type",
        "shape-float",
        lambda: image_bytes(pointwise, (1, 8.0, 8)),
        TypeError,
        r"shape\[1\] must be an int >= 1, not float 8.0",
    ),
    Bad(
        IB,
        "nan-inf",
        "sigma-nan",
        lambda: image_bytes(pointwise, (1, 8, 8), sigma=float("nan")),
        ValueError,
        r"sigma must be a finite number >= 0, not nan",
    ),
    Bad(
        IB,
        "value",
        "sigma-negative",
        lambda: image_bytes(pointwise, (1, 8, 8), sigma=-0.1),
        ValueError,
        r"sigma must be a finite number >= 0, not -0.1",
    ),
    Bad(
        IB,
        "type",
        "sigma-tensor",
        lambda: image_bytes(pointwise, (1, 8, 8), sigma=torch.tensor([0.1])),
        TypeError,
        r"sigma must be a finite number >= 0, not Tensor",
    ),
    Bad(
        IB,
        "dtype",
        "dtype-int64",
        lambda: image_bytes(pointwise, (1, 8, 8), dtype=torch.int64),
        TypeError,
        r"dtype must be a floating torch.dtype \(torch.float32\), not torch.int64",
    ),
    Bad(
        IB,
        "type",
        "dtype-str",
        lambda: image_bytes(pointwise, (1, 8, 8), dtype="float32"),
        TypeError,
        r"dtype must be a floating torch.dtype .*, not str",
    ),
    Bad(
        IB,
        "meta",
        "device-meta",
        lambda: image_bytes(pointwise, (1, 8, 8), device="meta"),
        ValueError,
        r"device must be a cpu or cuda device",
    ),
    Bad(
        IB,
        "value",
        "workspace_images-negative",
        lambda: image_bytes(pointwise, (1, 8, 8), workspace_images=-1),
        ValueError,
        r"workspace_images must be a finite number >= 0, not -1",
    ),
    Bad(
        IB,
        "nan-inf",
        "workspace_images-inf",
        lambda: image_bytes(pointwise, (1, 8, 8), workspace_images=math.inf),
        ValueError,
        r"workspace_images must be a finite number >= 0, not inf",
    ),
    Bad(
        IB,
        "value",
        "probe_pixels-0",
        lambda: image_bytes(pointwise, (1, 8, 8), probe_pixels=0),
        ValueError,
        r"probe_pixels must be an int >= 1, not 0",
    ),
    Bad(
        IB,
        "mismatch",
        "shape-3-channels-gray-network",
        # the denoiser's own check of the probe propagates
        lambda: image_bytes(gray_net(), (3, 8, 8)),
        ValueError,
        r"x has 3 channels but this denoiser takes 1",
    ),
    Good(
        IB,
        "size",
        "1x1-image",
        lambda: image_bytes(conv16(1), (1, 1, 1), workspace_images=0),
        lambda: conv16_bytes(1, 1, 1),
    ),
    Good(
        IB,
        "size",
        "9x40-probed-on-9x4",
        # 36 probe pixels: a 6x6 crop, scaled by 10 (activations linear in the pixels)
        lambda: image_bytes(conv16(3), (3, 9, 40), workspace_images=0, probe_pixels=36),
        lambda: conv16_bytes(3, 9, 40),
    ),
    Good(
        IB,
        "dtype",
        "float64-data-step-8-bytes",
        lambda: (
            image_bytes(pointwise, (2, 5, 7), dtype=torch.float64, workspace_images=3)
            - image_bytes(pointwise, (2, 5, 7), dtype=torch.float64, workspace_images=0)
        ),
        lambda: 3 * 2 * 5 * 7 * 8,
    ),
    Good(
        IB,
        "dtype",
        "bfloat16-data-step-stays-float32",
        lambda: (
            image_bytes(pointwise, (1, 6, 6), dtype=torch.bfloat16, workspace_images=2)
            - image_bytes(pointwise, (1, 6, 6), dtype=torch.bfloat16, workspace_images=0)
        ),
        lambda: 2 * 36 * 4,
    ),
    # ---- auto_batch_size -------------------------------------------------------------------
    Bad(
        ABS,
        "value",
        "per_image_bytes-0",
        lambda: auto_batch_size(0, 1000),
        ValueError,
        r"per_image_bytes must be an int >= 1, not 0",
    ),
    Bad(
        ABS,
        "type",
        "per_image_bytes-float",
        lambda: auto_batch_size(1e6, 10**9),
        TypeError,
        r"per_image_bytes must be an int >= 1, not float",
    ),
    Bad(
        ABS,
        "value",
        "free_bytes-negative",
        lambda: auto_batch_size(10, -1),
        ValueError,
        r"free_bytes must be an int >= 0, not -1",
    ),
    Bad(
        ABS,
        "type",
        "free_bytes-none",
        lambda: auto_batch_size(10, None),
        TypeError,
        r"free_bytes must be an int >= 0, not NoneType",
    ),
    Bad(
        ABS,
        "value",
        "headroom-0",
        lambda: auto_batch_size(10, 100, headroom=0),
        ValueError,
        r"headroom must be a finite number in \(0, 1\], not 0",
    ),
    Bad(
        ABS,
        "value",
        "headroom-above-1",
        lambda: auto_batch_size(10, 100, headroom=1.5),
        ValueError,
        r"headroom must be a finite number in \(0, 1\], not 1.5",
    ),
    Bad(
        ABS,
        "nan-inf",
        "headroom-nan",
        lambda: auto_batch_size(10, 100, headroom=float("nan")),
        ValueError,
        r"headroom must be a finite number in \(0, 1\], not nan",
    ),
    Bad(
        ABS,
        "value",
        "cap-0",
        lambda: auto_batch_size(10, 100, cap=0),
        ValueError,
        r"cap must be an int >= 1, not 0",
    ),
    Bad(
        ABS,
        "type",
        "cap-bool",
        lambda: auto_batch_size(10, 100, cap=True),
        TypeError,
        r"cap must be an int >= 1, not bool True",
    ),
    Good(ABS, "value", "floor", lambda: auto_batch_size(100, 1099, headroom=1.0), lambda: 10),
    Good(ABS, "value", "none-fits-gives-1", lambda: auto_batch_size(10**9, 10), lambda: 1),
    Good(ABS, "value", "free-0-gives-1", lambda: auto_batch_size(1, 0), lambda: 1),
    Good(ABS, "value", "capped", lambda: auto_batch_size(1, 2**40), lambda: 64),
    # ---- tile_schedule ---------------------------------------------------------------------
    Bad(
        TS,
        "size",
        "height-0",
        lambda: tile_schedule(0, 8),
        ValueError,
        r"height must be an int >= 1, not 0",
    ),
    Bad(
        TS,
        "type",
        "width-float",
        lambda: tile_schedule(8, 8.0),
        TypeError,
        r"width must be an int >= 1, not float 8.0",
    ),
    Bad(
        TS,
        "value",
        "start-0",
        lambda: tile_schedule(8, 8, start=0),
        ValueError,
        r"start must be an int >= 1, not 0",
    ),
    Bad(
        TS,
        "value",
        "minimum-above-start",
        lambda: tile_schedule(800, 800, start=64, minimum=128),
        ValueError,
        r"minimum must be <= start: minimum 128, start 64",
    ),
    Good(TS, "size", "1x1", lambda: tile_schedule(1, 1, start=4, minimum=1), lambda: []),
    Good(
        TS,
        "size",
        "1000x800",
        lambda: tile_schedule(1000, 800),
        lambda: [512, 256, 128, 64],
    ),
    Good(TS, "size", "tall-70x3", lambda: tile_schedule(70, 3), lambda: [64]),
    # ---- overlap_for -----------------------------------------------------------------------
    Bad(OF, "value", "tile-0", lambda: overlap_for(0), ValueError, r"tile must be an int >= 1"),
    Bad(
        OF,
        "type",
        "tile-str",
        lambda: overlap_for("64"),
        TypeError,
        r"tile must be an int >= 1, not str",
    ),
    Good(OF, "value", "512", lambda: overlap_for(512), lambda: 64),
    Good(OF, "value", "64", lambda: overlap_for(64), lambda: 16),
    Good(OF, "size", "1", lambda: overlap_for(1), lambda: 0),
    # ---- run_tiled_fallback ----------------------------------------------------------------
    Bad(
        RTF,
        "type",
        "fn-none",
        lambda: run_tiled_fallback(None, image(1), [8]),
        TypeError,
        r"fn must be callable as fn\(item, tile, overlap\)",
    ),
    Bad(
        RTF,
        "type",
        "tiles-int",
        lambda: run_tiled_fallback(lambda i, t, o: i, image(1), 8),
        TypeError,
        r"tiles must be a list or tuple of ints, not int",
    ),
    Bad(
        RTF,
        "type",
        "tiles-generator",
        lambda: run_tiled_fallback(lambda i, t, o: i, image(1), (t for t in [8])),
        TypeError,
        r"tiles must be a list or tuple of ints, not generator",
    ),
    Bad(
        RTF,
        "size",
        "tiles-empty",
        lambda: run_tiled_fallback(lambda i, t, o: i, image(1), []),
        ValueError,
        r"tiles is empty: no tile is smaller than the image",
    ),
    Bad(
        RTF,
        "value",
        "tiles-0",
        lambda: run_tiled_fallback(lambda i, t, o: i, image(1), [8, 0]),
        ValueError,
        r"tiles\[1\] must be an int >= 1, not 0",
    ),
    Bad(
        RTF,
        "type",
        "tiles-float",
        lambda: run_tiled_fallback(lambda i, t, o: i, image(1), [8.0]),
        TypeError,
        r"tiles\[0\] must be an int >= 1, not float 8.0",
    ),
    Bad(
        RTF,
        "size",
        "smallest-tile-still-out-of-memory",
        lambda: fallback(3, image(1, 1, 16, 16), [8, 4, 2]),
        torch.OutOfMemoryError,
        r"CUDA out of memory",
    ),
    Bad(
        RTF,
        "denoiser",
        "other-error-propagates",
        lambda: run_tiled_fallback(
            lambda i, t, o: TiledDenoiser(lambda x, s: x[..., 1:, :], t, o)(i, 0.1),
            image(1, 1, 12, 12),
            [8],
        ),
        ValueError,
        r"the denoiser returned shape \(1, 1, 7, 8\)",
    ),
    Good(
        RTF,
        "size",
        "largest-tile-that-fits-9x40",
        # 2 images: tile 32 (2 x 9 x 32 pixels) does not fit in 300, tile 16 does
        lambda: fallback(300, image(2, 1, 9, 40), tile_schedule(9, 40, start=64, minimum=4)),
        lambda: (pointwise(image(2, 1, 9, 40), 0.1), 16),
        1e-6,
    ),
    Good(
        RTF,
        "layout",
        "channels_last-first-tile-fits",
        lambda: fallback(10**6, channels_last(image(1, 3, 14, 11)), [8, 4]),
        lambda: (pointwise(image(1, 3, 14, 11), 0.1), 8),
        1e-6,
    ),
]


@params(CASES)
def test_fuzz(case):
    check(case)
