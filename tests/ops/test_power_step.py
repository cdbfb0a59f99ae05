"""power_step: the reference against explicit float64 formulas, and every fast backend against
the reference (odd sizes, per-image states: active, frozen, converging, zero product)."""

import math

import pytest
import torch
from pnpfast_test_utils import TOLERANCES, assert_close, devices, fast_backends

from pnpfast.dispatch import BackendError
from pnpfast.ops import poisoned_outputs, power_step, power_step_reference
from pnpfast.ops.power_step import initial_state

SHAPES = {
    "1x1x17x23": (1, 1, 17, 23),
    "2x3x17x23": (2, 3, 17, 23),
    "5x3x40x31": (5, 3, 40, 31),
}
SUM_RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def step_inputs(shape, device, dtype, seed=0):
    """u, w = M u for a random diagonal M >= 0, and a state with one image of each kind: the
    first step, a later step, a frozen image, and (B >= 4) an image whose product is zero."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(shape, generator=g, dtype=dtype)
    w = torch.rand(shape, generator=g, dtype=dtype) * u
    state = initial_state(u)
    B = shape[0]
    if B > 1:
        state[1, 0], state[1, 3] = 0.3, 4  # a later step, previous estimate 0.3
    if B > 2:
        state[2, 2], state[2, 3] = 0, 7  # frozen
    if B > 3:
        w[3] = 0
        state[3, 3] = 2
    return w.to(device), u.to(device), state.to(device)


@pytest.mark.parametrize("gram", [True, False], ids=["gram", "symmetric"])
def test_reference_matches_float64_formulas(gram):
    """One step against the formulas of the module docstring, in Python floats per image."""
    w, u, state = step_inputs((5, 2, 3, 4), "cpu", torch.float64)
    tol = 0.5
    out, nxt = power_step_reference(w, u, state, tol, gram)
    for b in range(5):
        est, s, active, steps = (float(v) for v in state[b])
        ub, wb = u[b].flatten().tolist(), w[b].flatten().tolist()
        if not active:
            assert torch.equal(out[b], u[b]) and torch.equal(nxt[b], state[b]), b
            continue
        dot = sum(p * q for p, q in zip(ub, wb, strict=True))
        wn = math.sqrt(sum(q * q for q in wb))
        rayleigh = s * s * dot
        new = math.sqrt(max(rayleigh, 0.0)) if gram else abs(rayleigh)
        conv = wn == 0 or (steps > 0 and abs(new - est) <= tol * new)
        want = [new, 0.0 if wn == 0 else 1 / (s * wn), 0.0 if conv else 1.0, steps + 1]
        assert nxt[b].tolist() == pytest.approx(want, rel=1e-12, abs=0), b
        assert_close(out[b], s * w[b], rtol=1e-15, atol=0, what=f"image {b}")
    # the zero product froze its image with estimate 0; the first step never converges
    assert nxt[3, 0] == 0 and nxt[3, 2] == 0 and nxt[0, 2] == 1


def test_iterating_the_reference_finds_the_top_eigenvalue():
    """Steps on a diagonal M (eigenvalues known) converge to the largest per image."""
    g = torch.Generator().manual_seed(1)
    d = torch.rand(3, 50, generator=g, dtype=torch.float64)
    u = torch.randn(3, 50, generator=g, dtype=torch.float64)
    state = initial_state(u)
    for _ in range(2000):
        u, state = power_step_reference(d * u, u, state, 1e-13, False)
    assert_close(state[:, 0], d.max(1).values, rtol=1e-9, atol=0, what="estimate")
    assert (state[:, 2] == 0).all()


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("gram", [True, False], ids=["gram", "symmetric"])
def test_fast_backends_match_reference(device, dtype, shape, gram):
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    w, u, state = step_inputs(shape, device, dtype)
    ref_out, ref_state = power_step_reference(w, u, state, 0.05, gram)
    for backend in backends:
        with poisoned_outputs():
            out, nxt = power_step(w, u, state, 0.05, gram, backend=backend)
        assert_close(out, ref_out, **TOLERANCES[dtype], what=f"{backend} out")
        assert_close(nxt, ref_state, rtol=SUM_RTOL[dtype], atol=0, what=f"{backend} state")


@pytest.mark.parametrize("device", devices())
def test_triton_many_blocks_per_image(device):
    """Several blocks and partial slots per image, summed in order by the finish kernel."""
    if "triton" not in fast_backends(device):
        pytest.skip(f"triton cannot run on {device} here")
    from pnpfast.kernels.power_step import partial_blocks, power_step_triton

    w, u, state = step_inputs((4, 3, 40, 31), device, torch.float64)
    block = 256
    out = torch.full_like(u, float("nan"))
    nxt = torch.full_like(state, float("nan"))
    partial = torch.full(
        (4, partial_blocks(u[0].numel(), block), 2), float("nan"), dtype=u.dtype, device=device
    )
    assert partial.shape[1] == 15
    power_step_triton(w, u, state, 0.05, True, out, nxt, partial, block=block)
    ref_out, ref_state = power_step_reference(w, u, state, 0.05, True)
    assert_close(out, ref_out, **TOLERANCES[torch.float64], what="out")
    assert_close(nxt, ref_state, rtol=1e-12, atol=0, what="state")


@pytest.mark.parametrize("device", devices())
def test_empty_inputs(device):
    for backend in ["reference", *fast_backends(device)]:
        u = torch.zeros(0, 3, 5, 5, device=device)
        out, nxt = power_step(u, u, initial_state(u), backend=backend)
        assert out.shape == u.shape and nxt.shape == (0, 4), backend
        u = torch.zeros(2, 0, device=device)  # images with no elements: frozen from the start
        state = initial_state(u)
        assert (state[:, 2] == 0).all()
        out, nxt = power_step(u, u, state, backend=backend)
        assert out.shape == (2, 0) and torch.equal(nxt, state), backend


@pytest.mark.parametrize("device", devices())
def test_non_contiguous_inputs(device):
    """Refused by a fast path asked for by name; the automatic choice gives the reference."""
    w, u, state = step_inputs((2, 3, 9, 14), device, torch.float32)
    wt, ut = w.transpose(2, 3), u.transpose(2, 3)
    for backend in fast_backends(device):
        with pytest.raises(BackendError, match="contiguous"):
            power_step(wt, ut, state, backend=backend)
    out, nxt = power_step(wt, ut, state)
    ref_out, ref_state = power_step_reference(wt.contiguous(), ut.contiguous(), state, 1e-3, True)
    assert torch.equal(out, ref_out) and torch.equal(nxt, ref_state)


def test_errors_name_the_argument():
    w, u, state = step_inputs((2, 1, 4, 4), "cpu", torch.float32)
    with pytest.raises(TypeError, match="u must be float32 or float64"):
        power_step(w.half(), u.half(), state.half())
    with pytest.raises(TypeError, match="w has dtype"):
        power_step(w.double(), u, state)
    with pytest.raises(ValueError, match="w has shape"):
        power_step(w[:, :, :3], u, state)
    with pytest.raises(ValueError, match=r"state must have shape \(2, 4\)"):
        power_step(w, u, state[:, :3])
    with pytest.raises(ValueError, match="tol must be a finite number"):
        power_step(w, u, state, tol=-1.0)
    with pytest.raises(ValueError, match="tol must be a finite number"):
        power_step(w, u, state, tol=float("nan"))
    with pytest.raises(TypeError, match=r"power_step: gram must be True or False, not int 1"):
        power_step(w, u, state, gram=1)
    with pytest.raises(TypeError, match="state must be a tensor"):
        power_step(w, u, [0, 1, 1, 0])


@pytest.mark.parametrize("device", devices())
def test_custom_ops_pass_opcheck(device):
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    w, u, state = step_inputs((2, 3, 9, 14), device, torch.float32)
    for backend in backends:
        custom = getattr(torch.ops.pnpfast, f"power_step_{backend}")
        torch.library.opcheck(
            custom,
            (w, u, state, 0.01, True),
            test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_static"),
        )
