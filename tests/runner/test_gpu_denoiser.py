"""pnpfast.runner.gpu_denoiser on the CPU: the shipped DRUNet under bf16 and fp16 autocast
against float64 and float32 runs of the same network, channels_last against the contiguous run,
per-image sigma in a batch, NaN/Inf detection after an fp16 overflow, a whole HQS solve, and the
CUDA-graph logic (shape-keyed cache, copy into the static buffers, replay after capture, clone of
the output, eviction, fallback) with a stand-in for the CUDA capture. The capture itself needs a
GPU (see the module docstring)."""

import copy
import math
import warnings

import pytest
import torch

import pnpfast
from pnpfast.metrics import psnr
from pnpfast.runner.gpu_denoiser import FastDenoiser, check_options, nonfinite_images


def shipped():
    """A fresh shipped noise-conditional DRUNet (channels_last converts a module in place)."""
    return pnpfast.denoisers.load()


def image(b=1, c=3, h=32, w=32, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def noisy(b=1, c=3, h=32, w=32, sigma=25 / 255, seed=0):
    x = image(b, c, h, w, seed)
    g = torch.Generator().manual_seed(seed + 1)
    return x + sigma * torch.randn(x.shape, generator=g)


# -- precision ------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision, low", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_low_precision_error_is_within_twice_a_pure_low_precision_run(precision, low):
    """flash-attention's rule (CONVENTIONS 8): against a float64 oracle (the same network in
    float64), the autocast run's error is at most twice that of the whole network cast to the
    low dtype (weights, input and every op in it). And the cast happened: the output differs
    from float32's."""
    D = shipped()
    y = noisy(2, 3, 32, 32)
    sigma = torch.tensor([15 / 255, 40 / 255])
    with torch.no_grad():
        oracle = copy.deepcopy(D).double()(y.double(), sigma.double())
        fp32 = D(y, sigma)
        fast = FastDenoiser(D, precision=precision)(y, sigma)
        pure = copy.deepcopy(D).to(low)(y.to(low), sigma.to(low)).double()
    assert y.dtype == torch.float32 and fast.dtype == torch.float32
    err = (fast.double() - oracle).abs().max().item()
    err_pure = (pure - oracle).abs().max().item()
    err_fp32 = (fp32.double() - oracle).abs().max().item()
    assert err <= 2 * err_pure, (err, err_pure)
    # the network ran in the low dtype: far from float32's own round-off (about 1e-6 here)
    assert err > 50 * err_fp32, (err, err_fp32)
    # bf16 keeps 8 mantissa bits (3.9e-3 relative); on [0, 1] images after about 20 layers the
    # largest pixel error stays under 2e-2 (measured 3e-3 to 5e-3); fp16 has 11 bits, 8x finer
    bound = 2e-2 if precision == "bf16" else 2.5e-3
    assert (fast - fp32).abs().max().item() < bound


def test_fp32_is_the_wrapped_call_and_float64_stays_float64():
    D = shipped()
    y = noisy(1, 1, 16, 24)
    with torch.no_grad():
        assert torch.equal(FastDenoiser(D)(y, 0.1), D(y, 0.1))
        out = FastDenoiser(D, precision="bf16")(y.double(), 0.1)
    assert out.dtype == torch.float64


def test_per_image_sigma_in_a_batch_matches_each_image_alone():
    D = shipped()
    y = noisy(3, 3, 24, 32, seed=3)
    sigma = torch.tensor([5.0, 25.0, 50.0]) / 255
    F = FastDenoiser(D, precision="bf16")
    with torch.no_grad():
        out = F(y, sigma)
        for b in range(3):
            alone = D(y[b : b + 1], sigma[b].item())
            err = (out[b : b + 1] - alone).abs().max().item()
            assert err < 2e-2, (b, err)  # bf16's bound above
            # and the image got its own level: another level is much further off
            other = D(y[b : b + 1], sigma[(b + 1) % 3].item())
            assert (other - alone).abs().max().item() > 5 * err


def test_a_device_whose_autocast_refuses_the_dtype_is_refused_naming_precision():
    F = FastDenoiser(shipped(), precision="bf16")
    F.dtype = torch.float64  # what CPU autocast does not take: it would warn and run float32
    with pytest.raises(ValueError, match=r"precision='bf16'.*does not take float64"):
        F(image(1, 3, 8, 8), 0.1)


def test_fp16_overflow_gives_inf_that_nonfinite_images_names():
    """A 1x1 convolution by 1e4: float32 holds 1e4 x, float16 overflows (max 65504) for
    x > 6.55. nonfinite_images names the batch's images with such pixels."""
    conv = torch.nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1e4)

    def D(x, sigma):
        return conv(x) * 1e-4

    x = torch.full((4, 1, 4, 4), 0.5)
    x[1, 0, 2, 3] = 9.0
    x[3, 0, 0, 0] = 7.0
    with torch.no_grad():
        fp32 = FastDenoiser(D)(x, 0.1)
        fp16 = FastDenoiser(D, precision="fp16")(x, 0.1)
    assert nonfinite_images(fp32) == []
    assert fp16.dtype == torch.float32
    assert nonfinite_images(fp16) == [1, 3]
    assert torch.isinf(fp16[1, 0, 2, 3]) and torch.isfinite(fp16[0]).all()


def test_nonfinite_images_by_hand():
    x = torch.zeros(5, 2, 3, 3)
    x[0, 1, 2, 2] = math.nan
    x[2, 0, 0, 1] = -math.inf
    x[4, 0, 1, 1] = math.inf
    assert nonfinite_images(x) == [0, 2, 4]
    assert nonfinite_images(torch.tensor([1.0, math.nan])) == [1]
    assert nonfinite_images(torch.zeros(0, 3)) == []
    assert nonfinite_images(torch.zeros(3, 2, dtype=torch.int64)) == []


def test_hqs_with_a_bf16_denoiser_restores_as_fp32_does():
    """The solver takes the wrapper (float32 in and out) and reaches the same quality: DPIR's
    HQS (8 iterations) on the bundled astronaut, 48x48, blurred by a 5x5 box."""
    x = pnpfast.data.astronaut(48)
    k = torch.ones(5, 5) / 25
    A = pnpfast.operators.Blur(k)
    g = torch.Generator().manual_seed(6)
    y = A(x) + 7.65 / 255 * torch.randn(x.shape, generator=g)
    D = shipped()
    with torch.no_grad():
        ref = pnpfast.solve(y, A, D, "hqs", sigma=7.65 / 255).x
        low = pnpfast.solve(y, A, FastDenoiser(D, precision="bf16"), "hqs", sigma=7.65 / 255).x
    assert low.dtype == torch.float32
    gap = (psnr(low.clamp(0, 1), x) - psnr(ref.clamp(0, 1), x)).abs().item()
    assert gap < 0.1, gap  # dB (measured 0.006)
    assert psnr(low.clamp(0, 1), x).item() > psnr(y.clamp(0, 1), x).item() + 2


# -- channels_last --------------------------------------------------------------------------------


def test_channels_last_equals_the_contiguous_run():
    D = shipped()
    y = noisy(2, 3, 32, 40, seed=7)
    sigma = torch.tensor([10 / 255, 30 / 255])
    with torch.no_grad():
        ref = D(y, sigma)
        F = FastDenoiser(D, channels_last=True)
        weight = D.network(3).head.weight
        assert weight.is_contiguous(memory_format=torch.channels_last)
        assert not weight.is_contiguous()  # the layout really changed (3 input channels + 1)
        out = F(y, sigma)
        both = FastDenoiser(D, precision="bf16", channels_last=True)(y, sigma)
    assert out.is_contiguous() and out.dtype == torch.float32
    assert (out - ref).abs().max().item() < 1e-5  # float round-off of another summation order
    assert (both - ref).abs().max().item() < 2e-2


# -- options --------------------------------------------------------------------------------------


def test_check_options():
    assert check_options() == ("fp32", False, False)
    assert check_options("bf16", True, True) == ("bf16", True, True)
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16, fp16.*'bf16'"):
        check_options("bfloat16")
    with pytest.raises(TypeError, match="precision must be a str"):
        check_options(torch.bfloat16)
    with pytest.raises(TypeError, match="cuda_graphs must be True or False"):
        check_options("fp32", False, 1)


def test_the_wrapper_exposes_what_the_solvers_read():
    D = shipped()
    F = FastDenoiser(D, precision="fp16")
    assert F.denoiser is D and F.blind is False and F.channels is None
    assert "precision='fp16'" in repr(F)
    blind = FastDenoiser(pnpfast.denoisers.load("blind"))
    assert blind.blind is True


# -- CUDA graphs, with a stand-in for the capture --------------------------------------------------


class FakeCapture:
    """Stands in for cuda_capture: fn() runs once as warm-up and once as "capture"; the static
    output is then filled with NaN (a real capture runs nothing), and replay() runs fn() again,
    reading the static buffers, into that same output tensor."""

    def __init__(self, error: BaseException | None = None):
        self.error = error
        self.captures = 0
        self.replays = 0

    def __call__(self, fn, device):
        self.captures += 1
        if self.error is not None:
            raise self.error
        fn()
        out = fn()
        out.fill_(math.nan)

        def replay():
            self.replays += 1
            out.copy_(fn())

        return replay, out


def smooth(x, sigma):
    """A denoiser with a per-image level: x - 10 sigma (x - mean3x3(x))."""
    s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
    mean = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    return x - 10 * s * (x - mean)


def test_graphs_capture_once_per_shape_and_replay_with_new_inputs():
    cap = FakeCapture()
    F = FastDenoiser(smooth, cuda_graphs=True, _capture=cap)
    a, b = image(2, 3, 8, 8, seed=1), image(2, 3, 8, 8, seed=2)
    sa, sb = torch.tensor([0.01, 0.05]), torch.tensor([0.08, 0.02])
    out_a = F(a, sa)
    assert (cap.captures, cap.replays, F.graphs) == (1, 1, 1)  # replayed after the capture
    torch.testing.assert_close(out_a, smooth(a, sa), rtol=0, atol=1e-7)
    kept = out_a.clone()
    out_b = F(b, sb)  # the same shape: copied into the static buffers, replayed
    assert (cap.captures, cap.replays) == (1, 2)
    torch.testing.assert_close(out_b, smooth(b, sb), rtol=0, atol=1e-7)
    assert torch.equal(out_a, kept)  # a clone: the next replay did not overwrite it
    out_f = F(a, 0.03)  # a float sigma uses the same graph
    assert (cap.captures, cap.replays) == (1, 3)
    torch.testing.assert_close(out_f, smooth(a, 0.03), rtol=0, atol=1e-7)
    c = image(1, 3, 8, 12, seed=3)  # another shape: a second graph
    torch.testing.assert_close(F(c, 0.02), smooth(c, 0.02), rtol=0, atol=1e-7)
    assert (cap.captures, F.graphs) == (2, 2)
    F(a.double(), sa)  # another dtype: a third
    assert (cap.captures, F.graphs) == (3, 3)


def test_graphs_with_bf16_and_channels_last_match_the_eager_wrapper():
    D = shipped()
    y = noisy(2, 3, 16, 16, seed=9)
    sigma = torch.tensor([10 / 255, 30 / 255])
    eager = FastDenoiser(D, precision="bf16", channels_last=True)
    graphed = FastDenoiser(D, precision="bf16", channels_last=True, cuda_graphs=True,
                           _capture=FakeCapture())  # fmt: skip
    with torch.no_grad():
        want = eager(y, sigma)
        got = graphed(y, sigma)
    assert got.dtype == torch.float32 and got.is_contiguous()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_graphs_keep_at_most_eight_shapes_releasing_the_oldest():
    cap = FakeCapture()
    F = FastDenoiser(smooth, cuda_graphs=True, _capture=cap)
    for w in range(4, 13):  # 9 shapes
        F(image(1, 1, 4, w), 0.01)
    assert (cap.captures, F.graphs) == (9, 8)
    F(image(1, 1, 4, 12), 0.01)  # still held
    assert cap.captures == 9
    F(image(1, 1, 4, 4), 0.01)  # the first, released: captured again
    assert (cap.captures, F.graphs) == (10, 8)


def test_a_failed_capture_warns_once_and_runs_eagerly_from_then_on():
    cap = FakeCapture(RuntimeError("operation not permitted when stream is capturing"))
    F = FastDenoiser(smooth, cuda_graphs=True, _capture=cap)
    x = image(2, 1, 8, 8)
    with pytest.warns(RuntimeWarning, match="capturing the denoiser failed.*not permitted"):
        out = F(x, 0.05)
    torch.testing.assert_close(out, smooth(x, 0.05), rtol=0, atol=0)
    assert F.fallback.startswith("RuntimeError: operation not permitted")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = F(image(1, 1, 8, 16), 0.02)  # no second warning, no second capture
    assert cap.captures == 1 and F.graphs == 0


def test_an_out_of_memory_capture_is_raised_for_the_runner_to_halve_the_batch():
    cap = FakeCapture(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    F = FastDenoiser(smooth, cuda_graphs=True, _capture=cap)
    with pytest.raises(torch.OutOfMemoryError):
        F(image(4, 1, 8, 8), 0.05)
    assert F.fallback is None
    cap.error = None  # a smaller batch fits: graphs go on
    x = image(2, 1, 8, 8)
    torch.testing.assert_close(F(x, 0.05), smooth(x, 0.05), rtol=0, atol=1e-7)
    assert F.graphs == 1


def test_graphs_leave_gradients_to_the_eager_call():
    cap = FakeCapture()
    F = FastDenoiser(smooth, cuda_graphs=True, _capture=cap)
    x = image(1, 1, 6, 6).requires_grad_()
    F(x, 0.05).square().sum().backward()
    assert cap.captures == 0
    x2 = x.detach().clone().requires_grad_()
    smooth(x2, 0.05).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=0, atol=0)


def test_graphs_refuse_a_cpu_tensor_without_the_stand_in():
    F = FastDenoiser(smooth, cuda_graphs=True)
    with pytest.raises(ValueError, match=r"cuda_graphs=True needs x on a CUDA device, not on cpu"):
        F(image(1, 1, 8, 8), 0.05)


# -- on a GPU (skipped here): the real capture -----------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@needs_cuda
def test_cuda_graphs_capture_the_shipped_denoiser_once_and_replay_it():
    """The shipped DRUNet captures (its sigma check skips the value read during capture), each
    replay equals the eager call on new inputs and levels, and outputs are not overwritten."""
    D = shipped().to("cuda")
    graphed = FastDenoiser(D, cuda_graphs=True)
    outs, wants = [], []
    with torch.no_grad():
        for seed in range(3):
            y = noisy(2, 3, 64, 64, seed=seed).cuda()
            s = torch.tensor([5.0 + 10 * seed, 30.0], device="cuda") / 255
            outs.append(graphed(y, s))
            wants.append(D(y, s))
    assert graphed.fallback is None and graphed.graphs == 1
    for got, want in zip(outs, wants, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.cuda
@needs_cuda
def test_hqs_with_bf16_channels_last_cuda_graphs_on_a_gpu():
    x = pnpfast.data.astronaut(64).cuda()
    A = pnpfast.operators.Blur(torch.ones(5, 5, device="cuda") / 25)
    g = torch.Generator(device="cuda").manual_seed(6)
    y = A(x) + 7.65 / 255 * torch.randn(x.shape, generator=g, device="cuda")
    D = shipped().to("cuda")
    F = FastDenoiser(D, precision="bf16", channels_last=True, cuda_graphs=True)
    with torch.no_grad():
        ref = pnpfast.solve(y, A, D, "hqs", sigma=7.65 / 255).x
        low = pnpfast.solve(y, A, F, "hqs", sigma=7.65 / 255).x
    assert F.fallback is None and F.graphs == 1
    assert low.dtype == torch.float32
    gap = (psnr(low.clamp(0, 1), x) - psnr(ref.clamp(0, 1), x)).abs().item()
    assert gap < 0.1, gap
