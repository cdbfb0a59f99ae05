"""pnpfast.interop.deepinv's accelerated physics against deepinv itself (issue 20).

Every override (A, A_adjoint, A_adjoint_A, prox_l2) of FastBlurFFT, FastDownsampling,
FastInpainting and FastDenoising is compared with the original deepinv class on the same
inputs: float64 at 1e-10 relative (the same maths, FFT rounding only), float32 at 1e-5; gamma as
a float, an int, a 0-d tensor, [1], [B, 1, 1, 1] and [B] (the last against deepinv given the
[B, 1, 1, 1] form it accepts), float32 gamma with float64 images (deepinv's DPIR does that);
shared and per-image filters, odd, even and non-square sizes. Each test also checks which path
ran (the cache says whether a fast operator was built), so that a fallback cannot pass for the
fast path. The fallbacks (per-channel filters, soft masks, padding, kwargs, z None, autograd,
other dtypes) must give deepinv's answer. The y cache is checked against the stale answers it
could give: y changed in place in every way torch counts, a new y, a view, inference tensors.

deepinv is an optional extra: every test skips, saying why, when it cannot be imported. Where
torchvision cannot be imported beside the installed torch, deepinv is imported with the
torchvision stub of benchmarks/deepinv_compat.py (the physics compared here never call it).
"""

import pytest
import torch
from pnpfast_test_utils import assert_rel

import pnpfast

F32, F64 = torch.float32, torch.float64
RTOL = {F64: 1e-10, F32: 1e-5}  # f64: FFT rounding ~1e-15; f32: ~1e-7 amplified by 1/(1+g|K|^2)


def rand(*shape, seed: int, dtype=F64) -> torch.Tensor:
    return torch.rand(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def kernel(bk: int, h: int, w: int, seed: int, dtype=F64, channels: int = 1) -> torch.Tensor:
    k = rand(bk, 1, h, w, seed=seed, dtype=dtype) + 0.05
    return (k / k.sum(dim=(-2, -1), keepdim=True)).repeat(1, channels, 1, 1)


def assert_close(got, want, what: str, rtol: float) -> None:
    assert isinstance(got, torch.Tensor), f"{what}: got {type(got).__name__}"
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert_rel(got, want, what, rtol)


def fast_op(physics):
    """The accelerated operator the physics built, or the reason it has none."""
    return physics._pnpfast_cache().op


def assert_fast(physics) -> None:
    op = fast_op(physics)
    assert op is not None and not isinstance(op, str), f"the fast path did not run: {op!r}"


@pytest.fixture
def prox_calls(dinv, monkeypatch):
    """A list that grows on every call of deepinv's own prox_l2 code (DecomposablePhysics',
    Downsampling's, LinearPhysics'), so a test can tell the fast path from the fallback."""
    calls = []
    for owner in (
        dinv.physics.LinearPhysics,
        dinv.physics.DecomposablePhysics,
        dinv.physics.Downsampling,
    ):
        original = owner.__dict__["prox_l2"]

        def counted(self, *args, _original=original, _name=owner.__name__, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(owner, "prox_l2", counted)
    return calls


def fast_prox(calls, physics, *args, **kwargs):
    """physics.prox_l2(...), asserting that deepinv's prox code did not run."""
    n = len(calls)
    out = physics.prox_l2(*args, **kwargs)
    assert len(calls) == n, f"deepinv's prox_l2 ran ({calls[n:]}): the fast path did not"
    return out


def slow_prox(calls, physics, *args, **kwargs):
    """physics.prox_l2(...), asserting that deepinv's prox code ran (a fallback)."""
    n = len(calls)
    out = physics.prox_l2(*args, **kwargs)
    assert len(calls) > n, "the fast path ran where deepinv's code must"
    return out


def gammas(B: int, dtype):
    """(name, gamma given to the accelerated physics, the same gamma as deepinv accepts it)."""
    per = torch.linspace(0.2, 3.0, B, dtype=dtype)
    return [
        ("float", 0.7, 0.7),
        ("int", 2, 2),
        ("0-d", torch.tensor(0.4, dtype=dtype), torch.tensor(0.4, dtype=dtype)),
        ("0-d f32", torch.tensor(0.4, dtype=F32), torch.tensor(0.4, dtype=F32)),
        ("[1]", torch.tensor([1.3], dtype=dtype), torch.tensor([1.3], dtype=dtype)),
        ("[B,1,1,1]", per.view(B, 1, 1, 1), per.view(B, 1, 1, 1)),
        ("[B,1,1,1] f32", per.to(F32).view(B, 1, 1, 1), per.to(F32).view(B, 1, 1, 1)),
        ("[B]", per, per.view(B, 1, 1, 1)),
    ]


# ------------------------------------------------------------------------------- BlurFFT

BLUR_CASES = [  # (batch, channels, H, W, kernel batch, kh, kw, filter channels)
    pytest.param(2, 3, 32, 40, 1, 5, 5, 1, id="shared-odd-2x3x32x40"),
    pytest.param(2, 3, 32, 40, 2, 4, 6, 1, id="per-image-even-nonsquare"),
    pytest.param(1, 3, 17, 23, 1, 3, 3, 3, id="odd-size-3ch-filter"),
    pytest.param(2, 1, 16, 21, 2, 7, 2, 1, id="gray-odd-width"),
]


def blur_pair(dinv, fast, C, H, W, bk, kh, kw, fc, dtype, seed=0):
    k = kernel(bk, kh, kw, seed, dtype, channels=fc)
    original = dinv.physics.BlurFFT((C, H, W), filter=k)
    return original, fast.accelerate(original)


def check_overrides(original, accel, prox_calls, x, y, z, tol) -> None:
    """A_adjoint (computed, then cached), A_adjoint_A and prox_l2 for every gamma form of the
    accelerated physics against deepinv's, the fast path taken."""
    assert_close(accel.A_adjoint(y), original.A_adjoint(y), "A_adjoint", tol)
    assert_fast(accel)
    assert_close(accel.A_adjoint(y), original.A_adjoint(y), "A_adjoint (cached)", tol)
    assert_close(accel.A_adjoint_A(x), original.A_adjoint_A(x), "A_adjoint_A", tol)
    for name, g, g_deepinv in gammas(x.shape[0], x.dtype):
        got = fast_prox(prox_calls, accel, z, y, g)
        assert_close(got, original.prox_l2(z, y, g_deepinv), f"prox_l2 gamma {name}", tol)
    assert_fast(accel)


@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("B,C,H,W,bk,kh,kw,fc", BLUR_CASES)
def test_blur_overrides_match_deepinv(dinv, fast, prox_calls, B, C, H, W, bk, kh, kw, fc, dtype):
    original, accel = blur_pair(dinv, fast, C, H, W, bk, kh, kw, fc, dtype)
    x = rand(B, C, H, W, seed=1, dtype=dtype)
    y = original.A(x) + 0.02 * rand(B, C, H, W, seed=2, dtype=dtype)
    z = rand(B, C, H, W, seed=3, dtype=dtype)
    check_overrides(original, accel, prox_calls, x, y, z, RTOL[dtype])


def test_blur_per_image_gamma_is_per_image(dinv, fast, prox_calls):
    """gamma [B] gives image b the prox with gamma_b alone (deepinv's [B] fails; the oracle is
    one deepinv call per image)."""
    original, accel = blur_pair(dinv, fast, 3, 16, 20, 1, 3, 3, 1, F64)
    y, z = rand(3, 3, 16, 20, seed=4), rand(3, 3, 16, 20, seed=5)
    g = torch.tensor([0.1, 1.0, 10.0], dtype=F64)
    got = fast_prox(prox_calls, accel, z, y, g)
    for b in range(3):
        want = original.prox_l2(z[b : b + 1], y[b : b + 1], float(g[b]))
        assert_close(got[b : b + 1], want, f"image {b}", RTOL[F64])


def test_blur_fallbacks_give_deepinvs_answer(dinv, fast, prox_calls):
    # a filter whose channels differ: pnpfast blurs every channel alike, so deepinv's code runs
    k = torch.cat([kernel(1, 3, 3, s) for s in (1, 2, 3)], dim=1)
    original = dinv.physics.BlurFFT((3, 16, 18), filter=k)
    accel = fast.accelerate(original)
    y, z = (rand(2, 3, 16, 18, seed=s) for s in (7, 8))
    got = slow_prox(prox_calls, accel, z, y, 0.5)
    assert_close(got, original.prox_l2(z, y, 0.5), "per-channel", 1e-12)
    assert "channels" in fast_op(accel)

    original, accel = blur_pair(dinv, fast, 3, 16, 18, 1, 3, 3, 1, F64)
    # z None, images of another dtype than the buffers, a gamma shape deepinv broadcasts its
    # own way, an unknown keyword: deepinv's answers, whatever they are
    want = original.prox_l2(None, y, 0.5)
    assert_close(slow_prox(prox_calls, accel, None, y, 0.5), want, "z None", 1e-12)
    yf, zf = y.float(), z.float()
    want = original.prox_l2(zf, yf, 0.5)
    assert_close(slow_prox(prox_calls, accel, zf, yf, 0.5), want, "f32 prox", 1e-12)
    g11 = torch.tensor([[0.5]], dtype=F64)
    want = original.prox_l2(z, y, g11)
    assert_close(slow_prox(prox_calls, accel, z, y, g11), want, "gamma [1, 1]", 1e-12)
    want = original.prox_l2(z, y, 0.5, solver="CG")
    assert_close(slow_prox(prox_calls, accel, z, y, 0.5, solver="CG"), want, "kwargs", 1e-12)
    want = original.prox_l2(z, y, -0.5)
    assert_close(slow_prox(prox_calls, accel, z, y, -0.5), want, "gamma < 0", 1e-12)


def test_blur_autograd_falls_back_and_differentiates(dinv, fast):
    original, accel = blur_pair(dinv, fast, 3, 16, 18, 1, 3, 3, 1, F64)
    y = rand(2, 3, 16, 18, seed=9)
    z1 = rand(2, 3, 16, 18, seed=10).requires_grad_()
    z2 = z1.detach().clone().requires_grad_()
    accel.prox_l2(z1, y, 0.3).square().sum().backward()
    original.prox_l2(z2, y, 0.3).square().sum().backward()
    assert_close(z1.grad, z2.grad, "gradient", RTOL[F64])


def test_blur_is_a_drop_in(dinv, fast):
    original, accel = blur_pair(dinv, fast, 3, 16, 18, 2, 3, 3, 1, F64)
    assert type(accel) is fast.FastBlurFFT
    assert isinstance(accel, dinv.physics.BlurFFT)
    assert isinstance(accel, dinv.physics.DecomposablePhysics)
    assert type(original) is dinv.physics.BlurFFT, "accelerate must not change its argument"
    assert accel.noise_model is not original.noise_model  # a clone, as deepinv's clone()
    assert type(accel.noise_model) is type(original.noise_model)
    twin = accel.clone()
    assert type(twin) is fast.FastBlurFFT and fast_op(twin) is None
    x, y, z = (rand(2, 3, 16, 18, seed=s) for s in (11, 12, 13))
    assert_close(twin.prox_l2(z, y, 0.5), original.prox_l2(z, y, 0.5), "clone", RTOL[F64])
    # the noise model travels too: a seeded generator is cloned in its state, so the noisy
    # forward of both draws the same noise
    noisy = dinv.physics.BlurFFT(
        (3, 16, 18),
        filter=original.filter,
        noise_model=dinv.physics.GaussianNoise(0.1, rng=torch.Generator().manual_seed(3)),
    )
    noisy_fast = fast.accelerate(noisy)
    assert_close(noisy_fast(x), noisy(x), "noisy forward", RTOL[F64])
    composed = accel * accel  # deepinv's LinearPhysics.__mul__
    assert_close(composed.A(x), original.A(original.A(x)), "A A", RTOL[F64])
    # deepinv's own constructor works on the class
    built = fast.FastBlurFFT(img_size=(3, 16, 18), filter=original.filter)
    assert_close(built.prox_l2(z, y, 0.5), original.prox_l2(z, y, 0.5), "built", RTOL[F64])
    assert_fast(built)
    same = fast.accelerate(original, inplace=True)
    assert same is original and type(original) is fast.FastBlurFFT
    assert fast.accelerate(same) is not same and type(fast.accelerate(same)) is fast.FastBlurFFT


def test_blur_to_and_double_follow_deepinv(dinv, fast, prox_calls):
    # deepinv's .to(float64) casts the complex phase buffer to real (a deepinv quirk): the
    # accelerated copy must drop its cache and give deepinv's answer, whatever it is
    original, accel = blur_pair(dinv, fast, 3, 16, 18, 1, 3, 3, 1, F32)
    x, y, z = (rand(2, 3, 16, 18, seed=s, dtype=F32) for s in (14, 15, 16))
    accel.prox_l2(z, y, 0.5)
    assert_fast(accel)
    with pytest.warns(UserWarning):
        accel = accel.to(F64)
        original = original.to(F64)
    x, y, z = x.double(), y.double(), z.double()
    want = original.prox_l2(z, y, 0.5)
    assert_close(slow_prox(prox_calls, accel, z, y, 0.5), want, ".to", 1e-12)


def test_blur_new_filter_invalidates(dinv, fast):
    original, accel = blur_pair(dinv, fast, 3, 16, 18, 1, 3, 3, 1, F64)
    x, y, z = (rand(2, 3, 16, 18, seed=s) for s in (17, 18, 19))
    accel.prox_l2(z, y, 0.5)
    accel.A_adjoint(y)
    new = kernel(1, 5, 5, seed=20)
    accel.update_parameters(filter=new)
    original.update_parameters(filter=new)
    assert_close(accel.prox_l2(z, y, 0.5), original.prox_l2(z, y, 0.5), "updated", RTOL[F64])
    assert_close(accel.A_adjoint(y), original.A_adjoint(y), "updated A^T", RTOL[F64])
    other = kernel(2, 3, 4, seed=21)
    accel.A(x, filter=other)  # deepinv's A, which stores the new filter
    original.A(x, filter=other)
    assert_close(accel.prox_l2(z, y, 0.5), original.prox_l2(z, y, 0.5), "after A", RTOL[F64])
    assert_close(accel.A_adjoint(y), original.A_adjoint(y), "A^T after A", RTOL[F64])
    assert_fast(accel)
    # the buffers changed in place (deepinv's mask and phase are what its A reads)
    with torch.no_grad():
        accel.mask.mul_(0.5)
        original.mask.mul_(0.5)
    assert_close(accel.prox_l2(z, y, 0.5), original.prox_l2(z, y, 0.5), "mask.mul_", RTOL[F64])


def test_blur_y_cache_sees_every_change(dinv, fast):
    original, accel = blur_pair(dinv, fast, 3, 16, 18, 1, 3, 3, 1, F64)
    z = rand(2, 3, 16, 18, seed=22)
    y = rand(2, 3, 16, 18, seed=23)

    def check(what, yy=None):
        yy = y if yy is None else yy
        assert_close(accel.prox_l2(z, yy, 0.5), original.prox_l2(z, yy, 0.5), what, RTOL[F64])
        assert_close(accel.A_adjoint(yy), original.A_adjoint(yy), what + " A^T", RTOL[F64])

    check("first")
    check("hit")
    y.add_(0.25)
    check("y.add_")
    y[0] = rand(3, 16, 18, seed=24)
    check("y[0] =")
    with torch.no_grad():
        y.mul_(2)
    check("no_grad mul_")
    y[:, :, 1:3].zero_()  # through a view of y
    check("write through a view")
    y.data.mul_(3)  # not counted by torch: documented, needs clear_cache()
    accel.clear_cache()
    check("after .data and clear_cache")
    # the caller drops y and the allocator may hand its memory to the next tensor of its size:
    # the new y must not be taken for the old one (the cache holds the old one alive anyway)
    del y
    y = torch.empty(2, 3, 16, 18, dtype=F64).copy_(rand(2, 3, 16, 18, seed=25))
    check("a new y, maybe at the old address")
    check("a view of y", y.view(2, 3, 16, 18))
    check("a slice of y", y[:, :, :, :])
    check("y as float32 (other dtype: fallback)", y.float())
    out = accel.A_adjoint(y)
    out.fill_(7.0)  # the caller owns what A_adjoint returns
    check("after writing into A_adjoint's output")
    with torch.inference_mode():
        yi, zi = y.clone(), z.clone()
        got = accel.prox_l2(zi, yi, 0.5)
        assert_close(got, original.prox_l2(zi, yi, 0.5), "inference y", RTOL[F64])
        yi.add_(1.0)
        got = accel.prox_l2(zi, yi, 0.5)
        assert_close(got, original.prox_l2(zi, yi, 0.5), "inference y add_", RTOL[F64])
        assert_close(accel.A_adjoint(yi), original.A_adjoint(yi), "inference A^T", RTOL[F64])
    assert accel._pnpfast_cache().y is not yi, "an inference tensor has no version: never cached"


def test_blur_adjointness(dinv, fast):
    _, accel = blur_pair(dinv, fast, 3, 17, 20, 2, 4, 5, 1, F64)
    u = rand(2, 3, 17, 20, seed=26)
    assert abs(float(accel.adjointness_test(u))) < 1e-10


def test_accelerate_refuses_other_types(dinv, fast):
    up = dinv.physics.Upsampling(img_size=(3, 16, 16), filter="bicubic", factor=2)
    with pytest.raises(TypeError, match=r"BlurFFT.*Upsampling"):
        fast.accelerate(up)

    class MyBlur(dinv.physics.BlurFFT):
        pass

    with pytest.raises(TypeError, match="subclasses"):
        fast.accelerate(MyBlur((3, 8, 8), filter=kernel(1, 3, 3, 0)))
    with pytest.raises(TypeError, match=r"not torch\.Tensor"):
        fast.accelerate(torch.zeros(3))
    with pytest.raises(TypeError, match="inplace"):
        fast.accelerate(dinv.physics.BlurFFT((3, 8, 8), filter=kernel(1, 3, 3, 0)), inplace=1)


# -------------------------------------------------------------------------- Downsampling

DOWN_CASES = [  # (batch, channels, H, W, factor, kernel batch, kh, kw, img_size given)
    pytest.param(2, 3, 32, 40, 2, 1, 5, 5, True, id="x2-shared-2x3x32x40"),
    pytest.param(2, 3, 24, 36, 3, 2, 6, 6, True, id="x3-per-image-even"),
    pytest.param(2, 1, 32, 24, 4, 1, 5, 8, False, id="x4-nonsquare-dynamic-size"),
]


def down_pair(dinv, fast, C, H, W, s, bk, kh, kw, sized, dtype, seed=0):
    k = kernel(bk, kh, kw, seed, dtype)
    original = dinv.physics.Downsampling(
        (C, H, W) if sized else None, filter=k, factor=s, padding="circular"
    )
    return original, fast.accelerate(original)


@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("B,C,H,W,s,bk,kh,kw,sized", DOWN_CASES)
def test_downsampling_overrides_match_deepinv(
    dinv, fast, prox_calls, B, C, H, W, s, bk, kh, kw, sized, dtype
):
    original, accel = down_pair(dinv, fast, C, H, W, s, bk, kh, kw, sized, dtype)
    x = rand(B, C, H, W, seed=1, dtype=dtype)
    y = original.A(x) + 0.02 * rand(B, C, H // s, W // s, seed=2, dtype=dtype)
    z = rand(B, C, H, W, seed=3, dtype=dtype)
    check_overrides(original, accel, prox_calls, x, y, z, RTOL[dtype])


def test_downsampling_fallbacks_give_deepinvs_answer(dinv, fast, prox_calls):
    x, z = rand(2, 3, 16, 16, seed=30), rand(2, 3, 16, 16, seed=31)
    k3 = torch.cat([kernel(1, 3, 3, s) for s in (1, 2, 3)], dim=1)
    for what, kwargs in [
        ("reflect padding", {"filter": kernel(1, 3, 3, 4), "padding": "reflect"}),
        ("per-channel filter", {"filter": k3, "padding": "circular"}),
    ]:
        original = dinv.physics.Downsampling((3, 16, 16), factor=2, **kwargs)
        accel = fast.accelerate(original)
        y = original.A(x)
        assert_close(accel.A_adjoint(y), original.A_adjoint(y), what + " A^T", 1e-12)
        want = original.prox_l2(z, y, 0.5)
        got = slow_prox(prox_calls, accel, z, y, 0.5)
        assert_close(got, want, what, 1e-8)  # CG: both run the same iterations
    original, accel = down_pair(dinv, fast, 3, 16, 16, 2, 1, 3, 3, True, F64)
    y = original.A(x)
    want = original.prox_l2(z, y, 0.5, use_fft=False)
    got = slow_prox(prox_calls, accel, z, y, 0.5, use_fft=False)
    assert_close(got, want, "use_fft=False", 1e-8)
    # an image of another size than img_size: deepinv's own error
    with pytest.raises(RuntimeError):
        original.prox_l2(rand(2, 3, 8, 8, seed=32), y[..., :4, :4], 0.5)
    with pytest.raises(RuntimeError):
        accel.prox_l2(rand(2, 3, 8, 8, seed=32), y[..., :4, :4], 0.5)
    # no filter: deepinv's prox cannot run (Fh is None); the accelerated one says the same
    bare = dinv.physics.Downsampling((3, 16, 16), filter=None, factor=2)
    with pytest.raises(TypeError):
        bare.prox_l2(z, bare.A(x), 0.5)
    with pytest.raises(TypeError):
        fast.accelerate(bare).prox_l2(z, bare.A(x), 0.5)


def test_downsampling_cache_and_parameters(dinv, fast):
    original, accel = down_pair(dinv, fast, 3, 16, 20, 2, 1, 3, 3, True, F64)
    x, z = rand(2, 3, 16, 20, seed=33), rand(2, 3, 16, 20, seed=34)
    y = original.A(x)

    def check(what):
        assert_close(accel.prox_l2(z, y, 0.5), original.prox_l2(z, y, 0.5), what, RTOL[F64])
        assert_close(accel.A_adjoint(y), original.A_adjoint(y), what + " A^T", RTOL[F64])

    check("first")
    cached = accel._pnpfast_cache().y
    accel.A_adjoint_A(x)  # A^T (A x) must not take the cached y's place
    assert accel._pnpfast_cache().y is cached
    y.mul_(0.5)
    check("y.mul_")
    new = kernel(1, 5, 5, seed=35)
    accel.update_parameters(filter=new)
    original.update_parameters(filter=new)
    check("new filter")
    other = kernel(1, 4, 4, seed=36)
    accel.A(x, filter=other)  # deepinv's A, which stores the new filter
    original.A(x, filter=other)
    check("after A(x, filter=other)")
    assert_fast(accel)
    # deepinv's .to(float32) casts its complex Fh buffer to real (torch's Module.to) and every
    # later Fh with it, so the original is wrong from then on; the accelerated one computes from
    # the filter: the oracle is a physics built in float32
    accel = accel.to(F32)
    oracle = dinv.physics.Downsampling((3, 16, 20), filter=other.float(), factor=2)
    x, y, z = x.float(), y.float(), z.float()
    assert_close(accel.prox_l2(z, y, 0.5), oracle.prox_l2(z, y, 0.5), ".to(f32)", RTOL[F32])
    assert_fast(accel)
    u = rand(2, 3, 16, 20, seed=37, dtype=F32)
    assert abs(float(accel.adjointness_test(u))) < 1e-5


# ---------------------------------------------------------------------------- Inpainting


@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("mask_kind", ["shared", "per-image", "per-channel"])
def test_inpainting_prox_matches_deepinv(dinv, fast, prox_calls, mask_kind, dtype):
    B, C, H, W = 2, 3, 17, 23
    shape = {"shared": (1, 1, H, W), "per-image": (B, 1, H, W), "per-channel": (1, C, H, W)}
    mask = (rand(*shape[mask_kind], seed=40) > 0.4).to(dtype).expand(-1, C, -1, -1)
    original = dinv.physics.Inpainting((C, H, W), mask=mask.contiguous())
    accel = fast.accelerate(original)
    x, z = rand(B, C, H, W, seed=41, dtype=dtype), rand(B, C, H, W, seed=42, dtype=dtype)
    y = original.A(x) + 0.01
    for name, g, g_deepinv in gammas(B, dtype):
        got = fast_prox(prox_calls, accel, z, y, g)
        assert_close(got, original.prox_l2(z, y, g_deepinv), f"prox_l2 gamma {name}", RTOL[dtype])
    assert_fast(accel)


def test_inpainting_fallbacks_and_drop_in(dinv, fast, prox_calls):
    B, C, H, W = 2, 3, 16, 16
    x, z = rand(B, C, H, W, seed=43), rand(B, C, H, W, seed=44)
    soft = rand(1, C, H, W, seed=45)
    original = dinv.physics.Inpainting((C, H, W), mask=soft)
    accel = fast.accelerate(original)
    y = original.A(x)
    want = original.prox_l2(z, y, 0.5)
    assert_close(slow_prox(prox_calls, accel, z, y, 0.5), want, "soft mask", 1e-12)
    assert "soft" in fast_op(accel)
    # deepinv's random mask (a float split ratio), and its __mul__ that builds self.__class__
    original = dinv.physics.Inpainting((C, H, W), mask=0.6, rng=torch.Generator().manual_seed(0))
    original = original.to(F64)
    accel = fast.accelerate(original)
    y = original.A(x)
    want = original.prox_l2(z, y, 0.5)
    assert_close(fast_prox(prox_calls, accel, z, y, 0.5), want, "ratio", RTOL[F64])
    product = accel * fast.accelerate(original)
    assert type(product) is fast.FastInpainting
    want = original * original
    want = want.prox_l2(z, y, 0.5)
    assert_close(fast_prox(prox_calls, product, z, y, 0.5), want, "mask product", RTOL[F64])
    mixed = accel * original  # a plain Inpainting on the right: still deepinv's mask product
    assert type(mixed) is fast.FastInpainting
    assert_close(fast_prox(prox_calls, mixed, z, y, 0.5), want, "mixed product", RTOL[F64])
    assert type(original * accel) is dinv.physics.Inpainting  # deepinv's own __mul__
    with torch.no_grad():
        accel.mask[:, :, :4] = 0.25  # the mask turned soft in place: deepinv's code again
        original.mask[:, :, :4] = 0.25
    want = original.prox_l2(z, y, 0.5)
    assert_close(slow_prox(prox_calls, accel, z, y, 0.5), want, "soft in place", 1e-12)
    demosaic = dinv.physics.Demosaicing((3, 8, 8))
    with pytest.raises(TypeError, match="Demosaicing"):
        fast.accelerate(demosaic)


# ----------------------------------------------------------------------------- Denoising


@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
def test_denoising_prox_matches_deepinv(dinv, fast, prox_calls, dtype):
    B, C, H, W = 2, 3, 16, 20
    original = dinv.physics.Denoising().to(dtype)
    accel = fast.accelerate(original)
    y, z = rand(B, C, H, W, seed=50, dtype=dtype), rand(B, C, H, W, seed=51, dtype=dtype)
    for name, g, g_deepinv in gammas(B, dtype):
        got = fast_prox(prox_calls, accel, z, y, g)
        assert_close(got, original.prox_l2(z, y, g_deepinv), f"prox_l2 gamma {name}", RTOL[dtype])
    assert_fast(accel)


def test_denoising_fallbacks(dinv, fast, prox_calls):
    y, z = rand(2, 3, 8, 8, seed=52), rand(2, 3, 8, 8, seed=53)
    original = dinv.physics.Denoising()  # a float32 mask with float64 images: deepinv's code
    accel = fast.accelerate(original)
    want = original.prox_l2(z, y, 0.5)
    assert_close(slow_prox(prox_calls, accel, z, y, 0.5), want, "f32 mask", 0)
    original, accel = original.to(F64), accel.to(F64)
    accel.update_parameters(mask=torch.tensor(2.0, dtype=F64))
    original.update_parameters(mask=torch.tensor(2.0, dtype=F64))
    want = original.prox_l2(z, y, 0.5)
    assert_close(slow_prox(prox_calls, accel, z, y, 0.5), want, "mask 2", 0)
    assert accel.noise_model.sigma == original.noise_model.sigma


# --------------------------------------------------------------------------- conversions


def test_to_pnpfast_gives_the_same_operator(dinv, fast):

    B, C, H, W = 2, 3, 24, 20
    x, z = rand(B, C, H, W, seed=60), rand(B, C, H, W, seed=61)
    mask = (rand(B, 1, H, W, seed=62) > 0.5).to(F64).expand(-1, C, -1, -1).contiguous()
    cases = [
        (dinv.physics.BlurFFT((C, H, W), filter=kernel(2, 4, 5, 63)), pnpfast.operators.Blur),
        (
            dinv.physics.Downsampling((C, H, W), filter=kernel(1, 5, 5, 64), factor=2),
            pnpfast.operators.SuperResolution,
        ),
        (dinv.physics.Inpainting((C, H, W), mask=mask), pnpfast.operators.Inpainting),
        (dinv.physics.Denoising().to(F64), pnpfast.operators.Identity),
    ]
    for physics, kind in cases:
        for source in (physics, fast.accelerate(physics)):
            op = fast.to_pnpfast(source)
            what = type(source).__name__
            assert type(op) is kind, what
            y = physics.A(x)
            assert_close(op.forward(x), physics.A(x), what + " forward", RTOL[F64])
            assert_close(op.adjoint(y), physics.A_adjoint(y), what + " adjoint", RTOL[F64])
            want = physics.prox_l2(z, y, 0.5)
            assert_close(op.prox_l2(z, y, 0.5), want, what + " prox_l2", RTOL[F64])
            got = pnpfast.L2(op, y).prox(z, torch.full((B,), 0.5, dtype=F64))
            assert_close(got, want, what + " L2.prox", RTOL[F64])
    bare = dinv.physics.Downsampling((C, H, W), filter=None, factor=2)
    got = fast.to_pnpfast(bare).forward(x.float())
    assert_close(got, bare.A(x.float()), "no filter", RTOL[F32])


def test_to_pnpfast_says_why_not(dinv, fast):
    k3 = torch.cat([kernel(1, 3, 3, s) for s in (1, 2, 3)], dim=1)
    with pytest.raises(ValueError, match=r"filter .* differs between channels"):
        fast.to_pnpfast(dinv.physics.BlurFFT((3, 8, 8), filter=k3))
    with pytest.raises(ValueError, match="without a filter"):
        fast.to_pnpfast(dinv.physics.BlurFFT((3, 8, 8)))
    with pytest.raises(ValueError, match="padding='reflect'"):
        fast.to_pnpfast(dinv.physics.Downsampling((3, 8, 8), filter=k3, padding="reflect"))
    soft = rand(1, 8, 8, seed=0).expand(3, 8, 8)
    with pytest.raises(ValueError, match="soft mask"):
        fast.to_pnpfast(dinv.physics.Inpainting((3, 8, 8), mask=soft))
    with pytest.raises(ValueError, match=r"mask .* differs between channels"):
        bayer = dinv.physics.Demosaicing((3, 8, 8)).mask
        fast.to_pnpfast(dinv.physics.Inpainting((3, 8, 8), mask=bayer))
    with pytest.raises(TypeError, match="Upsampling"):
        fast.to_pnpfast(dinv.physics.Upsampling((3, 8, 8), filter="bicubic", factor=2))


def test_from_pnpfast_round_trip(dinv, fast):

    C, H, W = 3, 24, 20
    x = rand(2, C, H, W, seed=70)
    ops = [
        pnpfast.operators.Blur(kernel(2, 4, 5, 71)[:, 0]),
        pnpfast.operators.SuperResolution(kernel(1, 5, 5, 72)[:, 0], 2),
        pnpfast.operators.Inpainting(rand(H, W, seed=73) > 0.5),
        pnpfast.operators.Identity(),
    ]
    kinds = [fast.FastBlurFFT, fast.FastDownsampling, fast.FastInpainting, fast.FastDenoising]
    for op, kind in zip(ops, kinds, strict=True):
        physics = fast.from_pnpfast(op, (C, H, W), dtype=F64)
        assert type(physics) is kind
        assert_close(physics.A(x), op.forward(x), kind.__name__, RTOL[F64])
        back = fast.to_pnpfast(physics)
        assert type(back) is type(op)
        assert_close(back.forward(x), op.forward(x), kind.__name__ + " round trip", RTOL[F64])
        single = fast.from_pnpfast(op, (C, H, W))  # float32, deepinv's default
        got = single.A(x.float())
        assert got.dtype == F32, f"{kind.__name__}: float32 images gave {got.dtype}"
        assert_close(got, op.forward(x).float(), kind.__name__ + " float32", RTOL[F32])
    with pytest.raises(ValueError, match="img_size"):
        fast.from_pnpfast(ops[0], (24, 20))
    with pytest.raises(ValueError, match="divisible"):
        fast.from_pnpfast(ops[1], (3, 25, 20))
    with pytest.raises(TypeError, match="BlockAverage"):
        fast.from_pnpfast(pnpfast.operators.BlockAverage(2), (3, 8, 8))
    with pytest.raises(
        TypeError, match=r"dtype must be torch\.float32 or torch\.float64, not torch\.float16"
    ):
        fast.from_pnpfast(ops[0], (C, H, W), dtype=torch.float16)


# ------------------------------------------------------------------------------- devices


def test_every_class_on_every_device(dinv, fast, device, prox_calls):
    """float32 on each device (on a GPU the fused Triton/CUDA kernels run), gamma a float32
    0-d CPU tensor as deepinv's DPIR makes it when not given a device."""
    B, C, H, W = 2, 3, 16, 20
    x = rand(B, C, H, W, seed=80, dtype=F32).to(device)
    z = rand(B, C, H, W, seed=81, dtype=F32).to(device)
    mask = (rand(1, C, H, W, seed=82, dtype=F32) > 0.5).to(F32)
    physics = [
        dinv.physics.BlurFFT((C, H, W), filter=kernel(2, 5, 4, 83, F32), device=device),
        dinv.physics.Downsampling(
            (C, H, W), filter=kernel(1, 4, 4, 84, F32), factor=2, device=device
        ),
        dinv.physics.Inpainting((C, H, W), mask=mask, device=device),
        dinv.physics.Denoising(device=device),
    ]
    per = torch.tensor([0.3, 2.0], dtype=F32)
    for original in physics:
        accel = fast.accelerate(original)
        what = type(original).__name__
        y = original.A(x)
        for name, g in [
            ("0-d cpu", torch.tensor(0.7)),
            ("float", 0.7),
            ("[B,1,1,1]", per.to(device).view(B, 1, 1, 1)),
        ]:
            want = original.prox_l2(z, y, g)
            got = fast_prox(prox_calls, accel, z, y, g)
            assert_close(got, want, f"{what} gamma {name} on {device}", RTOL[F32])
        if isinstance(accel, fast.FastBlurFFT | fast.FastDownsampling):  # overridden there
            assert_close(accel.A_adjoint(y), original.A_adjoint(y), what + " A^T", RTOL[F32])


def test_solve_and_l2_point_a_deepinv_physics_at_its_conversion(dinv):
    """pnpfast.solve(y, physics, ...) with a deepinv physics: a TypeError that names the
    conversion, from pnpfast.solve and from pnpfast.L2 alike (neither imports deepinv)."""
    physics = dinv.physics.BlurFFT(img_size=(1, 8, 8), filter=torch.ones(1, 1, 3, 3) / 9)
    y = torch.rand(1, 1, 8, 8)
    for call in (
        lambda: pnpfast.solve(y, physics, lambda x, s: x, "hqs", sigma=0.1),
        lambda: pnpfast.L2(physics, y),
    ):
        with pytest.raises(TypeError, match=r"not BlurFFT \(a deepinv physics: convert it with "):
            call()
    with pytest.raises(TypeError, match=r"^operator must be a pnpfast LinearOperator, not str$"):
        pnpfast.L2("blur", y)
