"""pnpfast.runner.tiles: batches grouped by key, out-of-memory halving (simulated by functions
that raise the allocators' own errors for batches above a size), and the tiled denoiser against
the untiled call: exact with a local denoiser when the margin covers its receptive radius, close
with the shipped DRUNet, and a whole solver run through it. --batch auto: the free memory read
from fake /proc and cgroup files (and a faked CUDA allocator), the peak of one image against
networks whose live activations are counted by hand and against the CPU allocator's own peak,
the batch size; the tiled fallback with a denoiser that runs out of memory above a size."""

import math

import pytest
import torch
import torch.nn.functional as F

import pnpfast
from pnpfast.metrics import psnr
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

# -- group ----------------------------------------------------------------------------------------


def test_group_by_key_keeps_first_appearance_order_and_input_order():
    items = ["a1", "b1", "a2", "c1", "b2", "a3", "a4", "a5"]
    got = group(items, key=lambda s: s[0], max_batch=2)
    assert got == [["a1", "a2"], ["a3", "a4"], ["a5"], ["b1", "b2"], ["c1"]]
    assert group(items, key=lambda s: s[0]) == [
        ["a1", "a2", "a3", "a4", "a5"],
        ["b1", "b2"],
        ["c1"],
    ]


def test_group_images_by_shape_stack():
    shapes = [(3, 8, 8), (1, 8, 8), (3, 8, 8), (3, 6, 8), (3, 8, 8)]
    images = [torch.zeros(s) for s in shapes]
    batches = group(images, key=lambda t: tuple(t.shape), max_batch=8)
    assert [len(b) for b in batches] == [3, 1, 1]
    for b in batches:
        torch.stack(b)  # equal shapes inside a batch
    flat = [id(t) for b in batches for t in b]
    assert sorted(flat) == sorted(id(t) for t in images)  # each exactly once


def test_group_errors():
    with pytest.raises(TypeError, match="key must return a hashable"):
        group([1, 2], key=lambda i: [i])
    with pytest.raises(ValueError, match="max_batch"):
        group([1], key=str, max_batch=0)
    assert group([], key=str) == []


# -- is_out_of_memory -----------------------------------------------------------------------------


def _cpu_allocator_error() -> RuntimeError:
    try:
        torch.empty(2**50, dtype=torch.uint8)  # 1 PiB: the CPU allocator refuses at once
    except RuntimeError as e:
        return e
    pytest.fail("allocating 1 PiB did not fail")


@pytest.mark.parametrize(
    "err, want",
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (torch.cuda.OutOfMemoryError("x"), True),
        (RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 79 GiB)"), True),
        (RuntimeError("HIP out of memory. Tried to allocate 1 GiB"), True),
        (RuntimeError("CUDA error: an illegal memory access was encountered"), False),
        (RuntimeError("shape '[2, 3]' is invalid for input of size 5"), False),
        (ValueError("CUDA out of memory"), False),
        (NotImplementedError("CUDA out of memory"), False),
        (MemoryError(), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_is_out_of_memory(err, want):
    assert is_out_of_memory(err) is want


def test_is_out_of_memory_real_cpu_allocator():
    assert is_out_of_memory(_cpu_allocator_error())


# -- run_halving ----------------------------------------------------------------------------------


class Fake:
    """Doubles each item; raises an out-of-memory error for batches longer than ``limit``."""

    def __init__(self, limit: int, error=None):
        self.limit, self.calls = limit, []
        self.error = error or (lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to"))

    def __call__(self, batch):
        self.calls.append(len(batch))
        if len(batch) > self.limit:
            raise self.error()
        return batch * 2 if isinstance(batch, torch.Tensor) else [2 * v for v in batch]


def test_halving_list_gives_the_item_by_item_results():
    fn, splits = Fake(3), []
    got = run_halving(fn, list(range(10)), on_split=splits.append)
    assert got == [2 * v for v in range(10)]
    # 10 fails -> 5 fails -> 3, 2 run; 5 fails -> 3, 2 run (first half ceil(n/2))
    assert fn.calls == [10, 5, 3, 2, 5, 3, 2]
    assert splits == [10, 5, 5]


def test_halving_no_error_is_one_call():
    fn, splits = Fake(100), []
    assert run_halving(fn, (1, 2, 3), on_split=splits.append) == [2, 4, 6]
    assert fn.calls == [3] and splits == []


def test_halving_tensor_batch_and_runtime_error_message():
    x = torch.randn(7, 2, 3, 3)
    fn = Fake(2, lambda: RuntimeError("CUDA out of memory. Tried to allocate 512.00 MiB"))
    got = run_halving(fn, x)
    torch.testing.assert_close(got, torch.cat([x[i : i + 1] * 2 for i in range(7)]))
    assert fn.calls == [7, 4, 2, 2, 3, 2, 1]


def test_halving_real_allocator_error():
    def fn(batch):
        if len(batch) > 2:
            torch.empty(2**50, dtype=torch.uint8)
        return [v + 1 for v in batch]

    assert run_halving(fn, [5, 6, 7, 8, 9]) == [6, 7, 8, 9, 10]


def test_halving_single_item_reraises_and_min_size_stops_early():
    fn = Fake(0)
    with pytest.raises(torch.OutOfMemoryError):
        run_halving(fn, [1, 2, 3])
    assert fn.calls == [3, 2, 1]  # the first single item re-raises; nothing after it runs
    fn = Fake(1)
    with pytest.raises(torch.OutOfMemoryError):
        run_halving(fn, [1, 2, 3, 4], min_size=2)
    assert fn.calls == [4, 2]


def test_halving_other_errors_propagate_at_once():
    fn = Fake(1, lambda: RuntimeError("Expected all tensors to be on the same device"))
    with pytest.raises(RuntimeError, match="same device"):
        run_halving(fn, [1, 2, 3])
    assert fn.calls == [3]


def test_halving_keeps_finished_halves():
    """A limit that changes between calls (memory freed by someone else): nothing reruns."""
    calls = []

    def fn(batch):
        calls.append(list(batch))
        if len(batch) > 1 and len(calls) in (1, 3):
            raise torch.OutOfMemoryError("CUDA out of memory.")
        return [-v for v in batch]

    assert run_halving(fn, [1, 2, 3, 4]) == [-1, -2, -3, -4]
    assert calls == [[1, 2, 3, 4], [1, 2], [3, 4], [3], [4]]


def test_halving_checks_the_result_length():
    with pytest.raises(ValueError, match="fn returned 1 results for a batch of 2"):
        run_halving(lambda b: [0], [1, 2])
    with pytest.raises(ValueError, match="batch is empty"):
        run_halving(lambda b: b, [])


# -- TiledDenoiser ------------------------------------------------------------------------------


def box(x: torch.Tensor) -> torch.Tensor:
    """3x3 mean with reflect padding (receptive radius 1)."""
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=1)


class Local(torch.nn.Module):
    """A local, sigma-dependent denoiser of receptive radius ``passes``:
    x <- (1 - a) x + a box(x), a = 10 sigma per image, applied ``passes`` times; records the
    tile shapes it sees."""

    def __init__(self, passes: int = 2, multiple: int = 1):
        super().__init__()
        self.passes, self.multiple, self.shapes = passes, multiple, []

    def forward(self, x, sigma):
        self.shapes.append(tuple(x.shape))
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise ValueError(f"size {tuple(x.shape)} is not a multiple of {self.multiple}")
        a = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1) * 10
        for _ in range(self.passes):
            x = (1 - a) * x + a * box(x)
        return x


SIZES = [(1, 1, 37, 29), (2, 3, 40, 64), (1, 1, 17, 100)]


@pytest.mark.parametrize("shape", SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiled_local_denoiser_is_exact_when_margin_covers_the_receptive_field(shape, dtype):
    x = torch.rand(shape, dtype=dtype)
    sigma = torch.linspace(0.02, 0.08, shape[0], dtype=dtype)  # one level per image
    D = Local(passes=2)
    want = D(x, sigma)
    tiled = TiledDenoiser(D, tile=16, overlap=6, margin=2)
    D.shapes.clear()
    got = tiled(x, sigma)
    assert len(D.shapes) > 1 and all(s[0] == shape[0] for s in D.shapes)  # tiles keep the batch
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got, want, atol=tol, rtol=0)
    assert got.dtype == dtype


def test_tiled_margin_short_of_the_receptive_field_is_not_exact():
    """The exactness above is the margin's doing: one pixel short of radius 2, it fails."""
    x = torch.rand(1, 1, 37, 29)
    D = Local(passes=2)
    got = TiledDenoiser(D, tile=16, overlap=6, margin=1)(x, 0.08)
    err = (got - D(x, 0.08)).abs()
    assert err.max() > 1e-3
    # tiles start at rows 0, 7, 14, 21 and columns 0, 6, 13: the top-left 7x7 pixels come from
    # the first tile alone, far from its inner edges, and stay exact
    assert err[..., :7, :7].max() == 0


def test_tile_larger_than_the_image_is_the_untiled_call():
    x = torch.rand(2, 3, 12, 9)
    D = Local()
    got = TiledDenoiser(D, tile=32, overlap=8)(x, 0.05)
    assert D.shapes == [(2, 3, 12, 9)]
    assert torch.equal(got, D(x, 0.05))


def test_multiple_pads_short_axes_and_keeps_tiles_at_multiples():
    x = torch.rand(1, 2, 10, 45)
    D = Local(passes=1, multiple=8)
    got = TiledDenoiser(D, tile=16, overlap=8, margin=2, multiple=8)(x, 0.05)
    assert all(h % 8 == 0 and w % 8 == 0 for _, _, h, w in D.shapes)
    # reflection padding of the short axis continues the box filter's own reflection
    want = Local(passes=1)(x, 0.05)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="tile must be a multiple of multiple=8"):
        TiledDenoiser(D, tile=20, overlap=4, multiple=8)


def test_tiled_half_precision_returns_its_dtype():
    x = torch.rand(1, 1, 30, 30)
    D = Local(passes=1)
    got = TiledDenoiser(D, tile=16, overlap=4, margin=1)(x.bfloat16(), 0.05)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), D(x.bfloat16(), 0.05).float(), atol=1e-2, rtol=0)


def test_tiled_argument_errors():
    with pytest.raises(ValueError, match="overlap must be < tile"):
        TiledDenoiser(Local(), tile=8, overlap=8)
    with pytest.raises(ValueError, match="margin must be <= overlap / 2"):
        TiledDenoiser(Local(), tile=16, overlap=4, margin=3)
    with pytest.raises(TypeError, match="denoiser must be callable"):
        TiledDenoiser(3, tile=16)

    def wrong_shape(x, sigma):
        return x[..., :-1]

    with pytest.raises(ValueError, match="the denoiser returned shape"):
        TiledDenoiser(wrong_shape, tile=8, overlap=2)(torch.rand(1, 1, 20, 20), 0.1)


# Measured (CPU, float32, astronaut 96x96 color, sigma 25/255, shipped conditional DRUNet):
# PSNR of tiled against untiled 69.2 dB at tile 64, overlap 16 (margin 4, the default
# overlap // 4), 67.1 dB with margin 0, 83.9 dB at overlap 32; 51.0 dB with overlap 0
# (hard seams). Thresholds keep a margin of about 9 dB.
def test_tiled_drunet_is_close_to_untiled_and_far_better_than_no_overlap():
    D = pnpfast.denoisers.load()
    x = pnpfast.data.astronaut(96)
    g = torch.Generator().manual_seed(0)
    y = x + 25 / 255 * torch.randn(x.shape, generator=g)
    with torch.no_grad():
        want = D(y, 25 / 255)
        close = psnr(TiledDenoiser(D, tile=64, overlap=16)(y, 25 / 255), want).item()
        seams = psnr(TiledDenoiser(D, tile=64, overlap=0)(y, 25 / 255), want).item()
    assert close > 60.0, close
    assert seams < close - 10.0, (close, seams)


def test_solve_with_tiled_denoiser_matches_untiled():
    """HQS on a blurred gray crop: only the denoiser is tiled, the data step stays whole.

    Measured (CPU, float32): tiled (tile 32, overlap 16) against untiled 64.8 dB (44.0 dB with
    overlap 0); PSNR to the truth 32.74 dB tiled, 32.72 dB untiled."""
    x = pnpfast.data.camera(64)
    A = pnpfast.operators.Blur(pnpfast.data.motion_kernel())
    g = torch.Generator().manual_seed(1)
    y = A(x) + 0.01 * torch.randn(x.shape, generator=g)
    D = pnpfast.denoisers.load()
    with torch.no_grad():
        whole = pnpfast.solve(y, A, D, "hqs", sigma=0.01, max_iter=4).x
        tiled = pnpfast.solve(y, A, TiledDenoiser(D, 32, 16), "hqs", sigma=0.01, max_iter=4).x
    gap = psnr(tiled, whole).item()
    assert gap > 55.0, gap
    assert abs(psnr(tiled, x).item() - psnr(whole, x).item()) < 0.05


def test_default_overlap_and_margin():
    small, large = TiledDenoiser(Local(), 32), TiledDenoiser(Local(), 256)
    assert (small.overlap, small.margin) == (8, 2)
    assert (large.overlap, large.margin) == (32, 8)
    assert TiledDenoiser(Local(), 1).overlap == 0


def test_gradient_step_methods_refuse_a_tiled_denoiser():
    x = pnpfast.data.camera(16)
    A = pnpfast.operators.Blur(pnpfast.data.motion_kernel())
    D = TiledDenoiser(pnpfast.denoisers.load("gradient-step"), 8, 4)
    with pytest.raises(TypeError, match=r"needs a gradient-step denoiser .* got TiledDenoiser"):
        pnpfast.solve(A(x), A, D, "gs-pnp", sigma=0.01, max_iter=2)


# -- free_memory ----------------------------------------------------------------------------------


@pytest.fixture
def fake_files(tmp_path, monkeypatch):
    """Points free_memory at a fake /proc/meminfo and fake cgroup folders (absent by default)."""
    meminfo = tmp_path / "meminfo"
    v2, v1 = tmp_path / "cg2", tmp_path / "cg1"
    v2.mkdir()
    v1.mkdir()
    monkeypatch.setattr(tiles_module, "MEMINFO", str(meminfo))
    monkeypatch.setattr(tiles_module, "CGROUP_V2", str(v2))
    monkeypatch.setattr(tiles_module, "CGROUP_V1", str(v1))
    return meminfo, v2, v1


MEMINFO_TEXT = (
    "MemTotal:       32000000 kB\nMemFree:         1000000 kB\nMemAvailable:    2500000 kB\n"
)


def test_free_memory_cpu_reads_memavailable(fake_files):
    meminfo, _, _ = fake_files
    meminfo.write_text(MEMINFO_TEXT)
    assert free_memory("cpu") == 2_500_000 * 1024
    assert free_memory(torch.device("cpu")) == 2_500_000 * 1024


def test_free_memory_cpu_cgroup_v2_limit_below_the_host(fake_files):
    meminfo, v2, _ = fake_files
    meminfo.write_text(MEMINFO_TEXT)
    (v2 / "memory.max").write_text("1000000000\n")
    (v2 / "memory.current").write_text("700000000\n")
    (v2 / "memory.stat").write_text("anon 500000000\ninactive_file 100000000\nactive_file 5\n")
    # 1e9 - (7e8 - 1e8 reclaimable page cache)
    assert free_memory("cpu") == 400_000_000
    (v2 / "memory.max").write_text("max\n")  # no limit: the host's figure
    assert free_memory("cpu") == 2_500_000 * 1024


def test_free_memory_cpu_cgroup_v1(fake_files):
    meminfo, _, v1 = fake_files
    meminfo.write_text(MEMINFO_TEXT)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    (v1 / "memory.usage_in_bytes").write_text("100\n")
    assert free_memory("cpu") == 2_500_000 * 1024
    (v1 / "memory.limit_in_bytes").write_text("3000\n")
    (v1 / "memory.stat").write_text("inactive_file 7\ntotal_inactive_file 40\n")
    assert free_memory("cpu") == 3000 - (100 - 40)
    (v1 / "memory.usage_in_bytes").write_text("5000\n")  # over the limit: nothing free
    assert free_memory("cpu") == 0


def test_free_memory_cpu_falls_back_to_sysconf_then_a_default(fake_files, monkeypatch):
    pages = {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(tiles_module.os, "sysconf", lambda name: pages[name])
    assert free_memory("cpu") == 4_096_000

    def unknown(name):
        raise ValueError(f"unrecognized configuration name {name}")

    monkeypatch.setattr(tiles_module.os, "sysconf", unknown)
    assert free_memory("cpu") == tiles_module.CPU_FALLBACK_BYTES == 2**30


def test_free_memory_cpu_of_this_machine_is_plausible():
    free = free_memory("cpu")
    assert isinstance(free, int)
    assert 0 < free < 2**50


def test_free_memory_cuda_adds_the_caching_allocators_unused_reserve(monkeypatch):
    """The arithmetic of the CUDA branch, with the allocator's answers faked (no GPU here)."""
    cuda = torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "device_count", lambda: 2)
    monkeypatch.setattr(cuda, "current_device", lambda: 1)
    seen = []

    def mem_get_info(dev):
        seen.append(dev)
        return (5_000, 80_000)

    monkeypatch.setattr(cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(cuda, "memory_reserved", lambda dev: 3_000)
    monkeypatch.setattr(cuda, "memory_allocated", lambda dev: 1_200)
    assert free_memory("cuda") == 5_000 + 3_000 - 1_200
    assert seen == [torch.device("cuda", 1)]  # "cuda" is the current device
    assert free_memory("cuda:0") == 6_800 and seen[-1] == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="there are 2 CUDA devices"):
        free_memory("cuda:2")


# -- image_bytes ----------------------------------------------------------------------------------


class Chain(torch.nn.Module):
    """conv C->16, ReLU, conv 16->8, in-place ReLU, conv 8->C: at most two activations are
    alive at once, the largest pair being the 16-channel conv output and its ReLU (32 ch)."""

    def __init__(self, c: int):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(c, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 8, 3, padding=1),
            torch.nn.ReLU(inplace=True),
            torch.nn.Conv2d(8, c, 3, padding=1),
        )

    def forward(self, x, sigma):
        return self.net(x)


class Skip(torch.nn.Module):
    """a = conv C->8, b = conv 8->8, out = conv 16->C of cat(a, b): a U-Net's skip keeps a
    alive while b, the concatenation and the output exist: 8 + 8 + 16 + C channels at once."""

    def __init__(self, c: int):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = torch.nn.Conv2d(c, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = torch.nn.Conv2d(16, c, 3, padding=1)

    def forward(self, x, sigma):
        a = self.c1(x)
        b = self.c2(a)
        return self.c3(torch.cat([a, b], dim=1))


def freed_between(x, sigma):
    """Allocates 10 images, frees them, then 6: the peak is 10 images (+ the output), not 16."""
    big = x.repeat(10, 1, 1, 1)
    s = big.sum(0, keepdim=True)  # 1 image
    del big
    mid = x.repeat(6, 1, 1, 1).view(6, -1)  # a view keeps its storage alive
    return s + mid.mean(0).view_as(x)  # mean: 1 image, sum: 1 image


def expected(tracked_channels: int, c: int, h: int, w: int) -> int:
    """image_bytes with no data step: 1.25 T + 2 probe images (scratch) + the probe itself."""
    px = h * w * 4
    return math.ceil(1.25 * tracked_channels * px) + 3 * c * px


@pytest.mark.parametrize("c", [1, 3])
def test_image_bytes_counts_the_live_activations_of_a_chain(c):
    got = image_bytes(Chain(c), (c, 24, 20), workspace_images=0)
    assert got == expected(32, c, 24, 20)


def test_image_bytes_keeps_a_skip_connection_alive():
    c = 3
    # a, b, cat(a, b) and the output are alive together; "two consecutive activations plus the
    # input" (16 + 3 channels) would undercount
    assert image_bytes(Skip(c), (c, 16, 24), workspace_images=0) == expected(
        8 + 8 + 16 + c, c, 16, 24
    )


def test_image_bytes_frees_what_the_denoiser_frees():
    # peak: the 10 copies (10 images) and their sum (1); later mid (6), s (1), mean (1), out (1)
    got = image_bytes(freed_between, (2, 8, 8), workspace_images=0)
    assert got == expected(11 * 2, 2, 8, 8)


def test_image_bytes_scales_a_probe_by_the_pixels():
    """A 64x48 image probed on 16x12 = 192 pixels: 16 times fewer, the same per pixel."""
    whole = image_bytes(Chain(1), (1, 64, 48), workspace_images=0, probe_pixels=64 * 48)
    probed = image_bytes(Chain(1), (1, 64, 48), workspace_images=0, probe_pixels=200)
    assert whole == expected(32, 1, 64, 48)
    assert probed == whole
    seen = []

    def spy(x, sigma):
        seen.append(tuple(x.shape))
        return x * 1.0

    image_bytes(spy, (3, 1000, 10), probe_pixels=4096)  # a thin image: all its columns
    image_bytes(spy, (3, 300, 500), probe_pixels=4096)
    assert seen == [(1, 3, 409, 10), (1, 3, 64, 64)]


def test_image_bytes_adds_the_data_step():
    c, h, w = 3, 12, 10
    base = image_bytes(Chain(c), (c, h, w), workspace_images=0)
    assert image_bytes(Chain(c), (c, h, w)) - base == 14 * c * h * w * 4  # DATA_STEP_IMAGES
    assert image_bytes(Chain(c), (c, h, w), workspace_images=2.5) - base == 2.5 * c * h * w * 4
    net64 = Chain(c).double()
    base64 = image_bytes(net64, (c, h, w), dtype=torch.float64, workspace_images=0)
    assert image_bytes(net64, (c, h, w), dtype=torch.float64, workspace_images=1) - base64 == (
        c * h * w * 8
    )


def _allocator_peak(fn) -> int:
    """The CPU allocator's peak during fn(), from torch.profiler's memory events (every
    allocation and free, kernels' scratch included)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    sizes = []

    def walk(e):
        if e.tag == torch._C._profiler._EventType.Allocation:
            sizes.append((e.start_time_ns, e.extra_fields.alloc_size))
        for child in e.children:
            walk(child)

    for root in prof.profiler.kineto_results.experimental_event_tree():
        walk(root)
    now = peak = 0
    for _, size in sorted(sizes):  # frees are negative sizes
        now += size
        peak = max(peak, now)
    return peak


@pytest.mark.parametrize("name", ["conditional", "gaussian"])
def test_image_bytes_covers_the_cpu_allocators_peak(name):
    """The denoiser's share of image_bytes is above what the CPU allocator really used, and
    not far above (the scratch allowance is 1.25 T + 2 images: measured 8 to 16% over)."""
    D = pnpfast.denoisers.load(name)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        D(x, 0.1)  # first-call set-up (weight reorders, caches) is not per image

        def call():
            out = D(x, 0.1)
            del out

        real = _allocator_peak(call) + x.nbytes
    est = image_bytes(D, (3, 64, 64), sigma=0.1, workspace_images=0)
    assert real <= est <= 1.3 * real, (real, est)


def test_image_bytes_of_the_shipped_drunet_is_linear_in_the_pixels():
    D = pnpfast.denoisers.load()
    small = image_bytes(D, (3, 32, 32), workspace_images=0)
    large = image_bytes(D, (3, 64, 64), workspace_images=0)
    assert abs(large / small - 4) < 0.01, (small, large)
    # measured: 80.3 + 1 probe images of the input (see image_bytes)
    assert 75 < small / (3 * 32 * 32 * 4) < 90


# -- auto_batch_size ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "per, free, kw, want",
    [
        (100, 1000, {}, 8),  # floor(0.8 * 1000 / 100)
        (100, 1000, {"headroom": 1.0}, 10),
        (100, 1099, {"headroom": 1.0}, 10),  # floor, not round
        (300, 1000, {"headroom": 0.9}, 3),
        (10**9, 10**6, {}, 1),  # not even one fits: 1 (halving re-raises, the caller tiles)
        (1, 10**12, {}, 64),  # the cap
        (1, 10**12, {"cap": 3}, 3),
        (7, 0, {}, 1),
    ],
)
def test_auto_batch_size(per, free, kw, want):
    assert auto_batch_size(per, free, **kw) == want


def test_auto_batch_size_from_measured_images():
    per = image_bytes(Chain(3), (3, 32, 32))
    assert auto_batch_size(per, 10 * per, headroom=0.5) == 5
    assert auto_batch_size(per, 10 * per - 1, headroom=0.5) == 4


# -- tile_schedule, overlap_for, run_tiled_fallback ---------------------------------------------


@pytest.mark.parametrize(
    "h, w, kw, want",
    [
        (1000, 800, {}, [512, 256, 128, 64]),
        (512, 300, {}, [256, 128, 64]),  # a 512 tile covers 512: the untiled call
        (513, 300, {}, [512, 256, 128, 64]),
        (300, 200, {}, [256, 128, 64]),
        (64, 64, {}, []),
        (65, 10, {}, [64]),
        (40, 40, {"start": 32, "minimum": 4}, [32, 16, 8, 4]),
        (100, 100, {"start": 48, "minimum": 8}, [48, 24, 12]),
        (5000, 5000, {"start": 1024, "minimum": 1024}, [1024]),
    ],
)
def test_tile_schedule(h, w, kw, want):
    assert tile_schedule(h, w, **kw) == want


@pytest.mark.parametrize(
    "tile, want", [(1024, 128), (512, 64), (256, 32), (128, 16), (64, 16), (32, 8), (8, 2), (1, 0)]
)
def test_overlap_for(tile, want):
    assert overlap_for(tile) == want
    TiledDenoiser(Local(), tile, overlap_for(tile))  # always a valid tiling


class Hungry:
    """A pointwise denoiser that runs out of memory, as CUDA would, for an input of more than
    ``limit`` pixels in all (B H W > limit); records the shapes it saw."""

    def __init__(self, limit: int, error=None):
        self.limit, self.shapes = limit, []
        self.error = error or (lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to"))

    def __call__(self, x, sigma):
        self.shapes.append(tuple(x.shape))
        b, _, h, w = x.shape
        if b * h * w > self.limit:
            raise self.error()
        return pointwise(x, sigma)


def pointwise(x, sigma):
    return torch.tanh(3 * x) - torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1) * x


def test_tiled_fallback_finds_the_largest_tile_that_fits():
    x = torch.rand(2, 3, 40, 37)
    sigma = torch.tensor([0.05, 0.1])
    den = Hungry(limit=2 * 100)  # 2 images of 10x10 pixels at most
    with pytest.raises(torch.OutOfMemoryError):
        den(x, sigma)  # whole, it does not fit
    sched = tile_schedule(40, 37, start=32, minimum=4)
    assert sched == [32, 16, 8, 4]
    den.shapes.clear()
    got, tile = run_tiled_fallback(
        lambda item, t, o: TiledDenoiser(den, t, o)(item, sigma), x, sched
    )
    assert tile == 8 and overlap_for(8) == 2
    # 32 fails at its first tile, 16 too, 8 runs through
    assert den.shapes[:2] == [(2, 3, 32, 32), (2, 3, 16, 16)]
    assert all(s == (2, 3, 8, 8) for s in den.shapes[2:])
    direct = TiledDenoiser(Hungry(limit=10**9), 8, 2)(x, sigma)
    assert torch.equal(got, direct)
    # and, the denoiser being pointwise, the untiled result (blend weights sum to 1 up to
    # rounding)
    torch.testing.assert_close(got, pointwise(x, sigma), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "error",
    [
        lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        lambda: RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0)"),
    ],
    ids=["OutOfMemoryError", "RuntimeError"],
)
def test_tiled_fallback_reraises_when_even_the_smallest_tile_fails(error):
    den = Hungry(limit=3, error=error)
    tried = []

    def fn(item, t, o):
        tried.append(t)
        return TiledDenoiser(den, t, o)(item, 0.1)

    with pytest.raises(type(error()), match="CUDA out of memory"):
        run_tiled_fallback(fn, torch.rand(1, 1, 20, 20), [16, 8, 4, 2])
    assert tried == [16, 8, 4, 2]


def test_tiled_fallback_other_errors_propagate_at_once():
    tried = []

    def fn(item, t, o):
        tried.append(t)
        raise RuntimeError("Expected all tensors to be on the same device")

    with pytest.raises(RuntimeError, match="same device"):
        run_tiled_fallback(fn, None, [64, 32])
    assert tried == [64]


def test_tiled_fallback_after_halving_one_image_per_batch():
    """The runner's path: a batch halves down to one image, which still does not fit; then
    the batch is tiled (tiles keep the batch, so run_halving goes on inside each tile size)."""
    x = torch.rand(4, 1, 24, 24)
    den = Hungry(limit=200)  # at most 200 pixels (batch included) at once
    with pytest.raises(torch.OutOfMemoryError):
        run_halving(lambda b: den(b, 0.05), x)  # 4, 2, then 1 image of 576 pixels
    den.shapes.clear()
    got, tile = run_tiled_fallback(
        lambda item, t, o: run_halving(lambda b: TiledDenoiser(den, t, o)(b, 0.05), item),
        x,
        tile_schedule(24, 24, start=16, minimum=4),
    )
    # tile 16: one image's tile is 256 pixels, halving re-raises; tile 8: 4 x 64 fails,
    # 2 x 64 = 128 fits
    assert tile == 8
    assert den.shapes[:4] == [(4, 1, 16, 16), (2, 1, 16, 16), (1, 1, 16, 16), (4, 1, 8, 8)]
    assert set(den.shapes[4:]) == {(2, 1, 8, 8)}
    torch.testing.assert_close(got, pointwise(x, 0.05), atol=1e-6, rtol=0)


def test_solve_with_the_tiled_fallback_equals_the_untiled_solve():
    """HQS whose denoiser (local, radius 1) runs out of memory on 32x32: the fallback tiles only
    the denoiser (the data step stays whole), and the margin covers the radius, so the solve
    equals the untiled one."""
    x = pnpfast.data.camera(32)
    A = pnpfast.operators.Blur(pnpfast.data.motion_kernel())
    g = torch.Generator().manual_seed(2)
    y = A(x) + 0.01 * torch.randn(x.shape, generator=g)
    local = Local(passes=1)

    def hungry(v, sigma):
        if v.shape[-2] * v.shape[-1] > 20 * 20:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return local(v, sigma)

    def solve(den):
        return pnpfast.solve(y, A, den, "hqs", sigma=0.01, max_iter=3).x

    with pytest.raises(torch.OutOfMemoryError):
        solve(hungry)
    got, tile = run_tiled_fallback(
        lambda item, t, o: solve(TiledDenoiser(hungry, t, o)),
        y,
        tile_schedule(32, 32, start=64, minimum=8),
    )
    assert tile == 16 and overlap_for(16) == 4  # margin 1 = the radius
    torch.testing.assert_close(got, solve(local), atol=1e-5, rtol=0)
