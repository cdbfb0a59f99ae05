"""fft_prox and fft_grad: every fast backend against the reference, and the reference against
an independent float64 oracle."""

import pytest
import torch
from pnpfast_test_utils import TOLERANCES, assert_close, fast_backends

from pnpfast.ops import fft_grad, fft_grad_reference, fft_prox, fft_prox_reference, poisoned_outputs

SHAPES = {
    "1x1x17x23": (1, 1, 17, 23),
    "2x3x64x96": (2, 3, 64, 96),
    "3x3x40x31": (3, 3, 40, 31),
    "4x1x9x64": (4, 1, 9, 64),
}


def spectral_inputs(shape, device, dtype, per_image_kernel):
    B, C, H, W = shape
    Wr = W // 2 + 1
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    v = torch.randn(B, C, H, Wr, dtype=cdtype, device=device)
    kty = torch.randn(B, C, H, Wr, dtype=cdtype, device=device)
    k2 = torch.rand(B if per_image_kernel else 1, 1, H, Wr, dtype=dtype, device=device) * 2
    gamma = torch.rand(B, dtype=dtype, device=device) * 3 + 0.05  # a different gamma per image
    return v, kty, k2, gamma


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("per_image_kernel", [False, True], ids=["shared_k", "per_image_k"])
def test_fast_backends_match_reference(device, shape, dtype, per_image_kernel):
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    v, kty, k2, gamma = spectral_inputs(shape, device, dtype, per_image_kernel)
    s = -gamma
    t = torch.rand_like(gamma) + 0.5
    tol = TOLERANCES[dtype]
    for backend in backends:
        with poisoned_outputs():
            out = fft_prox(v, kty, k2, gamma, backend=backend)
            grad = fft_grad(v, kty, k2, s, t, backend=backend)
        assert_close(out, fft_prox_reference(v, kty, k2, gamma), **tol, what=f"fft_prox {backend}")
        assert_close(grad, fft_grad_reference(v, kty, k2, s, t), **tol, what=f"fft_grad {backend}")


def test_reference_matches_float64_oracle():
    """The reference against an elementwise loop in Python complex arithmetic."""
    v, kty, k2, gamma = spectral_inputs((2, 2, 3, 4), "cpu", torch.float64, True)
    out = fft_prox_reference(v, kty, k2, gamma)
    grad = fft_grad_reference(v, kty, k2, gamma, 1 - gamma)
    for b in range(2):
        for c in range(2):
            for i in range(3):
                for j in range(3):
                    g, kk = float(gamma[b]), float(k2[b, 0, i, j])
                    vv, ky = complex(v[b, c, i, j]), complex(kty[b, c, i, j])
                    assert abs(complex(out[b, c, i, j]) - (vv + g * ky) / (1 + g * kk)) < 1e-12
                    expected = (g * kk + 1 - g) * vv - g * ky
                    assert abs(complex(grad[b, c, i, j]) - expected) < 1e-12


def test_prox_is_the_argmin_per_frequency():
    """At every frequency the output minimises 1/2 |k x - y|^2 + 1/(2 gamma) |x - v|^2: its
    derivative k2 x - kty + (x - v) / gamma vanishes."""
    v, kty, k2, gamma = spectral_inputs((3, 2, 5, 8), "cpu", torch.float64, True)
    x = fft_prox_reference(v, kty, k2, gamma)
    g = gamma.view(-1, 1, 1, 1)
    residual = k2 * x - kty + (x - v) / g
    assert residual.abs().max() < 1e-10


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda a: {**a, "gamma": a["gamma"][:1]}, ValueError, "gamma"),
        (lambda a: {**a, "k2": a["k2"].double()}, TypeError, "k2"),
        (lambda a: {**a, "kty": a["kty"][:, :1]}, ValueError, "kty"),
        (lambda a: {**a, "v_hat": a["v_hat"].real}, TypeError, "v_hat"),
        (lambda a: {**a, "k2": a["k2"][..., :-1]}, ValueError, "k2"),
    ],
    ids=["gamma_len", "k2_dtype", "kty_shape", "v_real", "k2_shape"],
)
def test_bad_arguments_name_the_argument(change, error, match):
    v, kty, k2, gamma = spectral_inputs((2, 3, 8, 8), "cpu", torch.float32, True)
    args = change({"v_hat": v, "kty": kty, "k2": k2, "gamma": gamma})
    with pytest.raises(error, match=match):
        fft_prox(**args)


def test_non_contiguous_inputs_fall_back_or_refuse():
    v, kty, k2, gamma = spectral_inputs((2, 3, 8, 16), "cpu", torch.float32, False)
    v_nc = v.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not v_nc.is_contiguous()
    # automatic choice: runs (on the reference here) and is right
    assert_close(
        fft_prox(v_nc, kty, k2, gamma), fft_prox_reference(v, kty, k2, gamma), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("op", ["fft_prox", "fft_grad"])
def test_custom_ops_pass_opcheck(device, op):
    """The fast paths are registered correctly (schema, fake kernel, no aliasing) for
    torch.compile, checked with the public torch.library.opcheck."""
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    v, kty, k2, gamma = spectral_inputs((2, 3, 9, 14), device, torch.float32, True)
    args = (v, kty, k2, gamma) if op == "fft_prox" else (v, kty, k2, gamma, 1 - gamma)
    for backend in backends:
        custom = getattr(torch.ops.pnpfast, f"{op}_{backend}")
        # the ops are not differentiable; skip the autograd registration test
        torch.library.opcheck(
            custom, args, test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_static")
        )
