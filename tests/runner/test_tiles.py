"""pnpfast.runner.tiles: batches grouped by key, out-of-memory halving (simulated by functions
that raise the allocators' own errors for batches above a size), and the tiled denoiser against
the untiled call: exact with a local denoiser when the margin covers its receptive radius, close
with the shipped DRUNet, and a whole solver run through it."""

import pytest
import torch
import torch.nn.functional as F

import pnpfast
from pnpfast.metrics import psnr
from pnpfast.runner.tiles import TiledDenoiser, group, is_out_of_memory, run_halving

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
