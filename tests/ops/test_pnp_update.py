"""pnp_update: the reference against an independent float64 oracle, and every fast backend
against the reference (odd sizes, per-image coefficients, x / xprev missing or given)."""

import pytest
import torch
from pnpfast_test_utils import TOLERANCES, assert_close, fast_backends

from pnpfast.dispatch import BackendError
from pnpfast.ops import pnp_update, pnp_update_reference, poisoned_outputs

SHAPES = {
    "1x1x17x23": (1, 1, 17, 23),
    "2x3x64x96": (2, 3, 64, 96),
    "3x3x40x31": (3, 3, 40, 31),
}
# which of x and xprev are given: all four combinations
PRESENT = {
    "x+xprev": (True, True),
    "x": (True, False),
    "xprev": (False, True),
    "none": (False, False),
}
# The sums add thousands of squares in a fixed but backend-specific order.
SUM_RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def update_inputs(shape, device, dtype, has_x=True, has_xprev=True):
    """Images on [0, 1] and a different coef per image."""
    f, z, x, xprev = (torch.rand(shape, dtype=dtype, device=device) for _ in range(4))
    coef = torch.randn(shape[0], 4, dtype=dtype, device=device)
    return f, z, x if has_x else None, xprev if has_xprev else None, coef


def out_tolerance(coef: torch.Tensor) -> dict[str, float]:
    """A few flops per element on inputs in [0, 1]: a few ulps of the largest partial sum,
    at most sum |coef_b|."""
    tol = dict(TOLERANCES[coef.dtype])
    scale = coef.abs().sum(1).max().item() if coef.numel() else 1.0
    tol["atol"] = max(tol["atol"], 8 * torch.finfo(coef.dtype).eps * scale)
    return tol


def assert_matches_reference(out, sums, args, what):
    ref_out, ref_sums = pnp_update_reference(*args)
    assert out.dtype == ref_out.dtype and sums.dtype == ref_sums.dtype, what
    assert out.device == ref_out.device and sums.device == ref_sums.device, what
    assert_close(out, ref_out, **out_tolerance(args[-1]), what=f"{what} out")
    assert_close(sums, ref_sums, rtol=SUM_RTOL[out.dtype], atol=0.0, what=f"{what} sums")


@pytest.mark.parametrize("present", PRESENT.values(), ids=PRESENT.keys())
def test_reference_matches_float64_oracle(present):
    """The reference against explicit loops in Python floats."""
    B, C, H, W = 2, 2, 3, 4
    f, z, x, xprev, coef = update_inputs((B, C, H, W), "cpu", torch.float64, *present)
    out, sums = pnp_update_reference(f, z, x, xprev, coef)
    assert out.shape == (B, C, H, W) and sums.shape == (B, 3)
    for b in range(B):
        a, bz, c, d = (float(v) for v in coef[b])
        residual = change = norm = 0.0
        for ch in range(C):
            for i in range(H):
                for j in range(W):
                    fv, zv = float(f[b, ch, i, j]), float(z[b, ch, i, j])
                    xv = float(x[b, ch, i, j]) if x is not None else 0.0
                    pv = float(xprev[b, ch, i, j]) if xprev is not None else 0.0
                    expected = a * fv + bz * zv + c * xv + d * pv
                    assert abs(float(out[b, ch, i, j]) - expected) < 1e-12
                    residual += (zv - fv) ** 2
                    change += (xv - pv) ** 2
                    norm += xv**2
        for k, expected in enumerate((residual, change, norm)):
            assert abs(float(sums[b, k]) - expected) <= 1e-12 * max(1.0, expected)


@pytest.mark.parametrize("present", PRESENT.values(), ids=PRESENT.keys())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_fast_backends_match_reference(device, shape, dtype, present):
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    args = update_inputs(shape, device, dtype, *present)
    for backend in backends:
        with poisoned_outputs():
            out, sums = pnp_update(*args, backend=backend)
        assert_matches_reference(out, sums, args, backend)


@pytest.mark.parametrize("present", [(True, True), (False, True)], ids=["x+xprev", "xprev"])
def test_fast_backends_take_unaligned_inputs(device, present):
    """Contiguous views that start one element into their storage (the CUDA kernel's scalar
    path on an image size that would otherwise take the vector path)."""
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    shape = (3, 3, 40, 32)
    n = torch.Size(shape).numel()
    f, z, x, xprev = (torch.rand(n + 1, device=device)[1:].view(shape) for _ in range(4))
    coef = torch.randn(3, 4, device=device)
    args = (f, z, x if present[0] else None, xprev, coef)
    for backend in backends:
        with poisoned_outputs():
            out, sums = pnp_update(*args, backend=backend)
        assert_matches_reference(out, sums, args, f"{backend} unaligned")


@pytest.mark.parametrize("shape", [(0, 3, 4, 5), (2, 3, 0, 5)], ids=["no_images", "empty_images"])
def test_fast_backends_on_empty_inputs(device, shape):
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    args = update_inputs(shape, device, torch.float32)
    for backend in backends:
        with poisoned_outputs():
            out, sums = pnp_update(*args, backend=backend)
        assert out.shape == shape and sums.shape == (shape[0], 3)
        assert torch.equal(sums, torch.zeros_like(sums))


def test_aliased_inputs(device):
    """The momentum step reads one tensor as f, z and x."""
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    x = torch.rand(2, 3, 16, 20, device=device)
    xprev = torch.rand_like(x)
    m = torch.tensor([0.3, 0.7], device=device)
    coef = torch.stack([torch.zeros_like(m), torch.zeros_like(m), 1 + m, -m], dim=1)
    for backend in backends:
        out, sums = pnp_update(x, x, x, xprev, coef, backend=backend)
        assert_matches_reference(out, sums, (x, x, x, xprev, coef), f"{backend} aliased")
        assert_close(out, x + m.view(-1, 1, 1, 1) * (x - xprev), rtol=1e-5, atol=1e-6)


def test_fast_backends_are_deterministic(device):
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    args = update_inputs((2, 3, 64, 96), device, torch.float32)
    for backend in backends:
        out1, sums1 = pnp_update(*args, backend=backend)
        out2, sums2 = pnp_update(*args, backend=backend)
        assert torch.equal(sums1, sums2), backend
        assert torch.equal(out1, out2), backend


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda a: {**a, "coef": a["coef"][:, :3]}, ValueError, "pnp_update: coef "),
        (lambda a: {**a, "coef": a["coef"][:1]}, ValueError, "pnp_update: coef "),
        (lambda a: {**a, "z": a["z"].double()}, TypeError, "pnp_update: z "),
        (lambda a: {**a, "coef": a["coef"].double()}, TypeError, "pnp_update: coef "),
        (lambda a: {**a, "f": a["f"].int()}, TypeError, "pnp_update: f "),
        (lambda a: {**a, "xprev": a["xprev"].to("meta")}, ValueError, "pnp_update: xprev "),
        (lambda a: {**a, "x": a["x"].tolist()}, TypeError, "pnp_update: x "),
        (lambda a: {**a, "z": 0.5}, TypeError, "pnp_update: z "),
        (lambda a: {**a, "x": a["x"][:, :1]}, ValueError, "pnp_update: x "),
        (lambda a: {**a, "f": a["f"][0]}, ValueError, "pnp_update: f "),
    ],
    ids=[
        "coef_columns",
        "coef_rows",
        "z_dtype",
        "coef_dtype",
        "f_int",
        "xprev_device",
        "x_list",
        "z_float",
        "x_shape",
        "f_3d",
    ],
)
def test_bad_arguments_name_the_argument(change, error, match):
    f, z, x, xprev, coef = update_inputs((2, 3, 4, 5), "cpu", torch.float32)
    args = change({"f": f, "z": z, "x": x, "xprev": xprev, "coef": coef})
    with pytest.raises(error, match=match):
        pnp_update(**args)


def test_backend_asked_by_name_that_cannot_run_raises():
    args = update_inputs((2, 3, 4, 5), "cpu", torch.float32)
    with pytest.raises(BackendError, match="cuda"):
        pnp_update(*args, backend="cuda")  # not built here, or CPU tensors


def test_non_contiguous_inputs_refuse_by_name_and_fall_back(device):
    f, z, x, xprev, coef = update_inputs((2, 3, 8, 16), device, torch.float32)
    f_nc = f.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not f_nc.is_contiguous()
    for backend in fast_backends(device):
        with pytest.raises(BackendError, match="contiguous"):
            pnp_update(f_nc, z, x, xprev, coef, backend=backend)
    out, sums = pnp_update(f_nc, z, x, xprev, coef)  # the automatic choice runs, and is right
    assert_matches_reference(out, sums, (f, z, x, xprev, coef), "automatic")


@pytest.mark.parametrize("present", [(True, True), (False, False)], ids=["x+xprev", "none"])
def test_custom_ops_pass_opcheck(device, present):
    """The fast paths are registered correctly (schema, fake kernel, no aliasing) for
    torch.compile, checked with the public torch.library.opcheck."""
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    args = update_inputs((2, 3, 9, 14), device, torch.float32, *present)
    for backend in backends:
        custom = getattr(torch.ops.pnpfast, f"pnp_update_{backend}")
        # the ops are not differentiable; skip the autograd registration test
        torch.library.opcheck(
            custom, args, test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_static")
        )
