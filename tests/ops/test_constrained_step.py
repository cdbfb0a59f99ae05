"""constrained_step: the reference against a float64 oracle built from the operators, and every
fast backend against the reference (exactly without noise, by its statistics and
reproducibility with noise), on odd sizes, batch > 1 with per-image h and c, NaN-prefilled
outputs, every projection form."""

import math

import pytest
import torch
from pnpfast_test_utils import TOLERANCES, assert_close, fast_backends

from pnpfast.dispatch import BackendError
from pnpfast.operators import BlockAverage, Inpainting, SpectralLowpass
from pnpfast.ops import constrained_step, constrained_step_reference, poisoned_outputs
from pnpfast.ops.constrained_step import block_mean, step_seed

# form -> (shape, projection arguments builder)
FORMS = {
    "free": (1, 1, 17, 23),
    "mask_shared": (2, 3, 17, 23),
    "mask_grouped": (4, 3, 40, 31),
    "mask_each": (3, 1, 20, 12),
    "block2": (2, 3, 18, 22),
    "block4": (2, 3, 64, 96),
    "block8": (3, 3, 40, 24),
    "block3": (2, 1, 12, 9),
    "projected": (2, 3, 17, 23),
}
FAST_FORMS = [form for form in FORMS if form != "block3"]  # factor 3: the reference only
SUM_RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def step_inputs(form: str, device, dtype, noise: bool = True, shape=None):
    """x_hat, y, lifted on [0, 1]; per-image h in (0, 1) and c (zero without noise); the
    projection keyword arguments of the form."""
    shape = shape or FORMS[form]
    B, _, H, W = shape
    den, y, lifted, proj = (torch.rand(shape, dtype=dtype, device=device) for _ in range(4))
    h = torch.rand(B, dtype=dtype, device=device) * 0.9 + 0.05
    c = torch.rand(B, dtype=dtype, device=device) + 0.5 if noise else torch.zeros_like(h)
    if form == "free":
        extra = {}
    elif form.startswith("mask"):
        rows = {"mask_shared": 1, "mask_grouped": B // 2, "mask_each": B}[form]
        mask = (torch.rand(rows, 1, H, W, device=device) > 0.4).to(dtype)
        extra = {"lifted": lifted, "mask": mask}
    elif form.startswith("block"):
        extra = {"lifted": lifted, "factor": int(form[5:])}
    else:
        extra = {"lifted": lifted, "projected": proj}
    return (den, y, h, c, 11, 3), extra


def assert_matches_reference(out, sigma, args, extra, what):
    ref_out, ref_sigma = constrained_step_reference(*args, **extra)
    assert out.dtype == ref_out.dtype and sigma.dtype == ref_sigma.dtype, what
    assert out.shape == ref_out.shape and sigma.shape == ref_sigma.shape, what
    assert_close(sigma, ref_sigma, rtol=SUM_RTOL[out.dtype], atol=0.0, what=f"{what} sigma")
    assert_close(out, ref_out, **TOLERANCES[out.dtype], what=f"{what} out")


def test_reference_matches_operator_oracle():
    """d = (I - P) f + M (x_c - M^T y) in float64 through each operator's own project and lift,
    against the reference's fused d = x_hat - y - P x_hat + M x_c (no noise: c = 0)."""
    B, C, H, W = 2, 3, 16, 24
    den, y, x = (torch.rand(B, C, H, W, dtype=torch.float64) for _ in range(3))
    h = torch.tensor([0.3, 0.05], dtype=torch.float64)
    c = torch.zeros(B, dtype=torch.float64)
    mask = torch.rand(B, 1, H, W) > 0.5
    cases = {
        "mask": (Inpainting(mask), {"mask": mask.double()}),
        "block": (BlockAverage(4), {"factor": 4}),
        "spectral": (SpectralLowpass(0.1), None),
    }
    for name, (A, extra) in cases.items():
        lifted = A.lift(A.measure(x))
        f = den - y
        d = f - A.project(f) + A.lift(A.measure(x) - A.measure(y))
        if extra is None:
            extra = {"projected": A.project(den)}
        out, sigma = constrained_step_reference(den, y, h, c, 0, 0, lifted=lifted, **extra)
        assert_close(out, y + h.view(-1, 1, 1, 1) * d, rtol=1e-12, atol=1e-12, what=name)
        expected = torch.tensor(
            [d[b].square().sum().item() / (C * H * W) for b in range(B)], dtype=torch.float64
        )
        assert_close(sigma, expected.sqrt(), rtol=1e-12, atol=0.0, what=name)


def test_block_mean_matches_a_python_loop():
    x = torch.rand(1, 2, 6, 9, dtype=torch.float64)
    got = block_mean(x, 3)
    for ch in range(2):
        for i in range(6):
            for j in range(9):
                r, q = 3 * (i // 3), 3 * (j // 3)
                assert (
                    abs(float(got[0, ch, i, j]) - float(x[0, ch, r : r + 3, q : q + 3].mean()))
                    < 1e-14
                )


def test_reference_noise_is_reproducible_and_keyed_by_seed_and_offset():
    args, _ = step_inputs("free", "cpu", torch.float64)
    den, y, h, c = args[:4]
    out1, _ = constrained_step_reference(den, y, h, c, 5, 9)
    out2, _ = constrained_step_reference(den, y, h, c, 5, 9)
    out3, _ = constrained_step_reference(den, y, h, c, 5, 10)
    out4, _ = constrained_step_reference(den, y, h, c, 6, 9)
    assert torch.equal(out1, out2)
    assert not torch.equal(out1, out3) and not torch.equal(out1, out4)
    assert len({step_seed(s, o) for s in range(50) for o in range(50)}) == 2500


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("form", FAST_FORMS)
def test_fast_backends_match_reference_without_noise(device, form, dtype):
    """c = 0: everything but the noise, against the reference (outputs NaN-prefilled)."""
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    args, extra = step_inputs(form, device, dtype, noise=False)
    for backend in backends:
        with poisoned_outputs():
            out, sigma = constrained_step(*args, **extra, backend=backend)
        assert_matches_reference(out, sigma, args, extra, f"{backend} {form}")


def _noise_of(backend, args, extra):
    """z = (out - out without noise) / (c sigma) per image, from one backend."""
    den, y, h, c, seed, offset = args
    with poisoned_outputs():
        out, sigma = constrained_step(*args, **extra, backend=backend)
        out0, _ = constrained_step(
            den, y, h, torch.zeros_like(c), seed, offset, **extra, backend=backend
        )
    return (out - out0) / (c * sigma).view(-1, 1, 1, 1)


@pytest.mark.parametrize("form", ["free", "mask_grouped", "block4"])
def test_fast_backend_noise_is_standard_normal_and_reproducible(device, form):
    """Per image: mean 0, variance 1, the normal's mass within 1 and 2 standard deviations,
    no correlation between neighbours or between images; the same (seed, offset) gives the
    same noise, another offset or seed other noise."""
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    shape = (2, 3, 64, 96) if form != "mask_grouped" else (4, 3, 40, 31)
    args, extra = step_inputs(form, device, torch.float64, shape=shape)
    for backend in backends:
        z = _noise_of(backend, args, extra).double()
        assert torch.isfinite(z).all(), backend
        for b in range(z.shape[0]):
            zb = z[b].flatten()
            n = zb.numel()
            se = 1 / math.sqrt(n)
            assert abs(zb.mean().item()) < 5 * se, (backend, b)
            assert abs(zb.var().item() - 1) < 5 * math.sqrt(2) * se, (backend, b)
            for k, mass in ((1, 0.6826895), (2, 0.9544997)):
                frac = (zb.abs() < k).double().mean().item()
                assert abs(frac - mass) < 5 * math.sqrt(mass * (1 - mass) / n), (backend, b, k)
            lag1 = (zb[1:] * zb[:-1]).mean().item()
            assert abs(lag1) < 5 * se, (backend, b)
        across = (z[0].flatten() * z[1].flatten()).mean().item()
        assert abs(across) < 5 / math.sqrt(z[0].numel()), backend
        again = _noise_of(backend, args, extra)
        assert torch.equal(z, again.double()), f"{backend}: same seed and offset, other noise"
        den, y, h, c, seed, offset = args
        other = _noise_of(backend, (den, y, h, c, seed, offset + 1), extra).double()
        assert abs((z * other).mean().item()) < 5 / math.sqrt(z.numel()), backend
        reseeded = _noise_of(backend, (den, y, h, c, seed + 1, offset), extra).double()
        assert abs((z * reseeded).mean().item()) < 5 / math.sqrt(z.numel()), backend


def test_stopped_images_come_out_unchanged(device):
    """h = c = 0 for an image: out is exactly y there, on every backend."""
    args, extra = step_inputs("mask_shared", device, torch.float32)
    den, y, h, c, seed, offset = args
    h[1] = 0
    c[1] = 0
    for backend in ["reference", *fast_backends(device)]:
        with poisoned_outputs():
            out, _ = constrained_step(den, y, h, c, seed, offset, **extra, backend=backend)
        assert torch.equal(out[1], y[1]), backend
        assert not torch.equal(out[0], y[0]), backend


def test_fast_backends_take_unaligned_inputs(device):
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    shape = (3, 3, 40, 32)
    n = torch.Size(shape).numel()
    den, y, lifted = (torch.rand(n + 1, device=device)[1:].view(shape) for _ in range(3))
    h = torch.rand(3, device=device)
    c = torch.zeros(3, device=device)
    for extra in ({}, {"lifted": lifted, "factor": 4}):
        for backend in backends:
            with poisoned_outputs():
                out, sigma = constrained_step(den, y, h, c, 1, 2, **extra, backend=backend)
            assert_matches_reference(
                out, sigma, (den, y, h, c, 1, 2), extra, f"{backend} unaligned"
            )


@pytest.mark.parametrize("shape", [(0, 3, 4, 8), (2, 3, 0, 8)], ids=["no_images", "empty_images"])
def test_fast_backends_on_empty_inputs(device, shape):
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    args, extra = step_inputs("block4", device, torch.float32, shape=shape)
    for backend in backends:
        out, sigma = constrained_step(*args, **extra, backend=backend)
        assert out.shape == shape and sigma.shape == (shape[0],)
        assert torch.equal(sigma, torch.zeros_like(sigma)), backend  # sigma of no pixels: 0


def test_fast_backends_are_deterministic(device):
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    args, extra = step_inputs("block4", device, torch.float32)
    for backend in backends:
        out1, sigma1 = constrained_step(*args, **extra, backend=backend)
        out2, sigma2 = constrained_step(*args, **extra, backend=backend)
        assert torch.equal(out1, out2) and torch.equal(sigma1, sigma2), backend


def _with(name, value):
    return lambda a, e: ({**a, name: value(a[name])}, e)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (_with("y", lambda t: t.int()), TypeError, "constrained_step: y "),
        (_with("denoised", lambda t: t.double()), TypeError, "constrained_step: denoised "),
        (_with("denoised", lambda t: t[:, :1]), ValueError, "constrained_step: denoised "),
        (_with("h", lambda t: t[:1]), ValueError, "constrained_step: h "),
        (_with("c", lambda t: t.double()), TypeError, "constrained_step: c "),
        (_with("y", lambda t: t[0]), ValueError, "constrained_step: y "),
        (_with("seed", lambda v: -1), ValueError, "constrained_step: seed "),
        (_with("offset", lambda v: 1.5), TypeError, "constrained_step: offset "),
        (
            lambda a, e: (a, {**e, "mask": e["mask"][:, :, :3]}),
            ValueError,
            "constrained_step: mask ",
        ),
        (lambda a, e: (a, {**e, "factor": 2}), ValueError, "exactly one of"),
        (lambda a, e: (a, {"mask": e["mask"]}), ValueError, "without lifted"),
        (lambda a, e: (a, {"lifted": e["lifted"]}), ValueError, "exactly one of"),
        (lambda a, e: (a, {"lifted": e["lifted"], "factor": 5}), ValueError, "factor 5"),
        (lambda a, e: (a, {**e, "lifted": e["lifted"].to("meta")}), ValueError, "lifted "),
    ],
    ids=[
        "y_int",
        "denoised_dtype",
        "denoised_shape",
        "h_rows",
        "c_dtype",
        "y_3d",
        "seed_negative",
        "offset_float",
        "mask_shape",
        "two_forms",
        "mask_without_lifted",
        "lifted_alone",
        "factor_not_dividing",
        "lifted_device",
    ],
)
def test_bad_arguments_name_the_argument(change, error, match):
    (den, y, h, c, seed, offset), extra = step_inputs("mask_shared", "cpu", torch.float32)
    names = {"denoised": den, "y": y, "h": h, "c": c, "seed": seed, "offset": offset}
    args, extra = change(names, extra)
    with pytest.raises(error, match=match):
        constrained_step(**args, **extra)


def test_backend_asked_by_name_that_cannot_run_raises():
    args, extra = step_inputs("free", "cpu", torch.float32)
    with pytest.raises(BackendError, match="cuda"):
        constrained_step(*args, **extra, backend="cuda")


def test_fast_paths_refuse_other_block_factors_by_name(device):
    args, extra = step_inputs("block3", device, torch.float32)
    for backend in fast_backends(device):
        with pytest.raises(BackendError, match="block factor 3"):
            constrained_step(*args, **extra, backend=backend)
    out, sigma = constrained_step(*args, **extra)  # the automatic choice: the reference
    assert_matches_reference(out, sigma, args, extra, "automatic")


def test_custom_ops_pass_opcheck(device):
    """The fast paths are registered correctly (schema, fake kernel, no aliasing) for
    torch.compile, checked with the public torch.library.opcheck."""
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    (den, y, h, c, seed, offset), extra = step_inputs(
        "mask_shared", device, torch.float32, shape=(2, 3, 8, 16)
    )
    args = (den, y, h, c, seed, offset, extra["lifted"], extra["mask"], 0, None)
    for backend in backends:
        custom = getattr(torch.ops.pnpfast, f"constrained_step_{backend}")
        torch.library.opcheck(
            custom, args, test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_static")
        )
