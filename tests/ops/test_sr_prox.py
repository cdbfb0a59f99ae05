"""sr_prox: every fast backend against the reference, and the reference against an independent
float64 oracle (the normal equations solved densely per group of aliased frequencies)."""

import pytest
import torch
from pnpfast_test_utils import TOLERANCES, assert_close, fast_backends

from pnpfast.dispatch import BackendError
from pnpfast.ops import poisoned_outputs, sr_prox, sr_prox_reference

# Interpreter grids stay tiny: (shape [B, C, H, W], factor); odd sizes and non-square ones
CASES = {
    "1x1x8x8_s2": ((1, 1, 8, 8), 2),
    "1x1x8x8_s4": ((1, 1, 8, 8), 4),
    "2x3x12x12_s2": ((2, 3, 12, 12), 2),
    "2x3x12x12_s3": ((2, 3, 12, 12), 3),
    "3x1x9x15_s3": ((3, 1, 9, 15), 3),
    "2x2x5x7_s1": ((2, 2, 5, 7), 1),
}


def sr_inputs(shape, factor, dtype, per_image_kernel, device="cpu"):
    B, C, H, W = shape
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    v = torch.randn(B, C, H, W, dtype=cdtype, device=device)
    kty = torch.randn(B, C, H, W, dtype=cdtype, device=device)
    Bk = B if per_image_kernel else 1
    k_hat = torch.randn(Bk, 1, H, W, dtype=cdtype, device=device)
    k2_mean = torch.rand(Bk, 1, H // factor, W // factor, dtype=dtype, device=device) * 2
    gamma = torch.rand(B, dtype=dtype, device=device) * 3 + 0.05  # a different gamma per image
    return v, kty, k_hat, k2_mean, gamma


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("per_image_kernel", [False, True], ids=["shared_k", "per_image_k"])
def test_fast_backends_match_reference(device, case, dtype, per_image_kernel):
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    shape, s = case
    args = sr_inputs(shape, s, dtype, per_image_kernel, device)
    want = sr_prox_reference(*args, s)
    for backend in backends:
        with poisoned_outputs():
            out = sr_prox(*args, s, backend=backend)
        assert_close(out, want, **TOLERANCES[dtype], what=f"sr_prox {backend} s={s}")


@pytest.mark.parametrize("s", [1, 2, 3, 4])
def test_fast_backends_on_larger_planes(device, s):
    """Planes of more low-resolution frequencies than one CUDA block or Triton program covers
    (h w = 17 x 19 > 256 at every factor), so that several blocks share a plane; per-image
    kernels."""
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    args = sr_inputs((2, 1, 17 * s, 19 * s), s, torch.float32, True, device)
    want = sr_prox_reference(*args, s)
    for backend in backends:
        with poisoned_outputs():
            out = sr_prox(*args, s, backend=backend)
        assert_close(out, want, **TOLERANCES[torch.float32], what=f"sr_prox {backend} s={s}")


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 3, 0, 4)], ids=["no_images", "empty_images"])
def test_fast_backends_on_empty_inputs(device, shape):
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    args = sr_inputs(shape, 2, torch.float32, False, device)
    for backend in backends:
        out = sr_prox(*args, 2, backend=backend)
        assert out.shape == shape and out.dtype == torch.complex64, backend


def test_cuda_kernel_takes_unaligned_views():
    """torch.ops.pnpfast_C.sr_prox_out called directly on float views that start one element
    into their storage (not aligned to a complex number: the kernel's scalar-access path), and
    its argument checks naming the argument."""
    import pnpfast

    if not torch.cuda.is_available() or not pnpfast.backends()["cuda"].available:
        pytest.skip("needs a CUDA device and the extension pnpfast._C")
    B, C, H, W, s = 2, 3, 9, 15, 3
    v, kty, k_hat, k2_mean, gamma = sr_inputs((B, C, H, W), s, torch.float32, True, "cuda")
    want = sr_prox_reference(v, kty, k_hat, k2_mean, gamma, s)

    def unaligned(z):
        flat = torch.full((z.numel() * 2 + 1,), float("nan"), device="cuda")[1:]
        return flat.view(*z.shape, 2).copy_(torch.view_as_real(z))

    out = unaligned(torch.zeros_like(v))
    torch.ops.pnpfast_C.sr_prox_out(
        unaligned(v), unaligned(kty), unaligned(k_hat), k2_mean, gamma, s, out
    )
    got = torch.view_as_complex(out.clone())  # clone: offset 0, as view_as_complex needs
    assert_close(got, want, **TOLERANCES[torch.float32], what="sr_prox_out unaligned")

    real = [torch.view_as_real(t) for t in (v, kty, k_hat)]
    with pytest.raises(RuntimeError, match="factor must be 1, 2, 3 or 4"):
        torch.ops.pnpfast_C.sr_prox_out(*real, k2_mean, gamma, 5, torch.empty_like(real[0]))
    with pytest.raises(RuntimeError, match="k2_mean must be"):
        torch.ops.pnpfast_C.sr_prox_out(*real, k2_mean[..., :-1].contiguous(), gamma, s, out)
    with pytest.raises(RuntimeError, match="out must not share memory with v"):
        torch.ops.pnpfast_C.sr_prox_out(*real, k2_mean, gamma, s, real[0])


def dense_oracle(v, kty, k_hat, gamma, s):
    """Per image, channel and low-resolution frequency (u, v): the s^2 aliased frequencies
    z_a = (u + p h, v + q w) obey (conj(k) k^T / s^2 + I / gamma) x = kty + v / gamma (the
    normal equations of 1/2 ||S K x - y||^2 + 1/(2 gamma) ||x - v||^2 in the Fourier domain,
    where S^T S averages each alias group); solved with a dense complex solve."""
    B, C, H, W = v.shape
    h, w = H // s, W // s
    out = torch.empty_like(v)
    for b in range(B):
        g = float(gamma[b])
        kb = k_hat[b if k_hat.shape[0] > 1 else 0, 0]
        for c in range(C):
            for u in range(h):
                for vv in range(w):
                    rows = [u + p * h for p in range(s) for q in range(s)]
                    cols = [vv + q * w for p in range(s) for q in range(s)]
                    k = kb[rows, cols]
                    M = torch.outer(k.conj(), k) / s**2 + torch.eye(s * s, dtype=k.dtype) / g
                    rhs = kty[b, c, rows, cols] + v[b, c, rows, cols] / g
                    out[b, c, rows, cols] = torch.linalg.solve(M, rhs)
    return out


@pytest.mark.parametrize(
    "shape, s",
    [((1, 1, 8, 8), 2), ((2, 2, 12, 12), 3), ((2, 1, 6, 9), 3), ((1, 1, 8, 12), 4)],
    ids=["8x8_s2", "12x12_s3", "6x9_s3", "8x12_s4"],
)
def test_reference_matches_dense_float64_oracle(shape, s):
    v, kty, k_hat, _, gamma = sr_inputs(shape, s, torch.float64, per_image_kernel=True)
    B, _, H, W = shape
    # k2_mean as the operator caches it: the mean of |K^|^2 over each alias group, by loops
    h, w = H // s, W // s
    k2_mean = torch.zeros(B, 1, h, w, dtype=torch.float64)
    for p in range(s):
        for q in range(s):
            k2_mean += k_hat[:, :, p * h : (p + 1) * h, q * w : (q + 1) * w].abs() ** 2 / s**2
    out = sr_prox_reference(v, kty, k_hat, k2_mean, gamma, s)
    assert_close(out, dense_oracle(v, kty, k_hat, gamma, s), rtol=1e-10, atol=1e-10, what="ref")


def test_batch_is_each_image_alone():
    args = sr_inputs((3, 2, 12, 12), 3, torch.float64, per_image_kernel=True)
    v, kty, k_hat, k2_mean, gamma = args
    out = sr_prox(*args, 3)
    for b in range(3):
        one = sr_prox_reference(
            v[b : b + 1], kty[b : b + 1], k_hat[b : b + 1], k2_mean[b : b + 1], gamma[b : b + 1], 3
        )
        assert_close(out[b : b + 1], one, rtol=1e-12, atol=1e-12, what=f"image {b}")


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda a: {**a, "gamma": a["gamma"][:1]}, ValueError, "gamma"),
        (lambda a: {**a, "k2_mean": a["k2_mean"].double()}, TypeError, "k2_mean"),
        (lambda a: {**a, "kty": a["kty"][:, :1]}, ValueError, "kty"),
        (lambda a: {**a, "v_hat": a["v_hat"].real}, TypeError, "v_hat"),
        (lambda a: {**a, "k_hat": a["k_hat"].abs()}, TypeError, "k_hat"),
        (lambda a: {**a, "k_hat": a["k_hat"][..., :-1]}, ValueError, "k_hat"),
        (lambda a: {**a, "k2_mean": a["k2_mean"][..., :-1]}, ValueError, "k2_mean"),
        (lambda a: {**a, "factor": 5}, ValueError, "factor 5"),
        (lambda a: {**a, "factor": 0}, ValueError, "factor"),
        (lambda a: {**a, "factor": 2.0}, TypeError, "factor"),
    ],
    ids=[
        "gamma_len",
        "k2_mean_dtype",
        "kty_shape",
        "v_real",
        "k_hat_real",
        "k_hat_shape",
        "k2_mean_shape",
        "factor_not_dividing",
        "factor_0",
        "factor_float",
    ],
)
def test_bad_arguments_name_the_argument(change, error, match):
    v, kty, k_hat, k2_mean, gamma = sr_inputs((2, 3, 12, 12), 2, torch.float32, True)
    args = change(
        {"v_hat": v, "kty": kty, "k_hat": k_hat, "k2_mean": k2_mean, "gamma": gamma, "factor": 2}
    )
    with pytest.raises(error, match=match):
        sr_prox(**args)


def test_fast_path_refusals_fall_back_or_raise(device):
    """A factor the kernels are not compiled for, and a non-contiguous input: the automatic
    choice runs the reference (right answer), an explicit fast request raises naming the
    reason."""
    v, kty, k_hat, k2_mean, gamma = sr_inputs((1, 1, 10, 10), 5, torch.float64, False, device)
    want = sr_prox_reference(v, kty, k_hat, k2_mean, gamma, 5)
    assert_close(sr_prox(v, kty, k_hat, k2_mean, gamma, 5), want, rtol=1e-12, atol=1e-12)
    for backend in fast_backends(device):
        with pytest.raises(BackendError, match="factor 5"):
            sr_prox(v, kty, k_hat, k2_mean, gamma, 5, backend=backend)
    v, kty, k_hat, k2_mean, gamma = sr_inputs((2, 3, 8, 16), 2, torch.float32, False, device)
    v_nc = v.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not v_nc.is_contiguous()
    want = sr_prox_reference(v, kty, k_hat, k2_mean, gamma, 2)
    assert_close(sr_prox(v_nc, kty, k_hat, k2_mean, gamma, 2), want, rtol=1e-6, atol=1e-6)
    for backend in fast_backends(device):
        with pytest.raises(BackendError, match="v_hat is not"):
            sr_prox(v_nc, kty, k_hat, k2_mean, gamma, 2, backend=backend)


def test_cuda_backend_asked_by_name_that_cannot_run_raises():
    args = sr_inputs((2, 3, 8, 8), 2, torch.float32, False)
    with pytest.raises(BackendError, match="backend 'cuda' cannot run"):
        sr_prox(*args, 2, backend="cuda")  # not built here, or CPU tensors


def test_custom_op_passes_opcheck(device):
    """The fast paths are registered correctly (schema, fake kernel, no aliasing) for
    torch.compile, checked with the public torch.library.opcheck."""
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    args = sr_inputs((2, 3, 9, 12), 3, torch.float32, True, device)
    for backend in backends:
        torch.library.opcheck(
            getattr(torch.ops.pnpfast, f"sr_prox_{backend}"),
            (*args, 3),
            test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_static"),
        )


@pytest.mark.parametrize("s", [2, 3])
def test_l2_prox_takes_the_fast_path(device, s, monkeypatch):
    """pnpfast.L2 of a SuperResolution runs its prox through sr_prox: each fast backend gives the
    reference's images (per-image kernels and gammas, 2x3x12x12), and the Triton launcher is
    called once per triton prox."""
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    import pnpfast.kernels.sr_prox as launcher

    import pnpfast
    from pnpfast.operators import SuperResolution

    launches = []
    real_launcher = launcher.sr_prox_triton

    def counted(*args):
        launches.append(args[5])  # the factor
        return real_launcher(*args)

    monkeypatch.setattr(launcher, "sr_prox_triton", counted)

    k = torch.rand(2, 5, 5, dtype=torch.float64) + 0.1
    A = SuperResolution((k / k.sum(dim=(-2, -1), keepdim=True)).to(device), s)
    x = torch.rand(2, 3, 12, 12, dtype=torch.float64, device=device)
    f = pnpfast.L2(A, A(x))
    v = torch.rand_like(x)
    gamma = torch.tensor([0.3, 2.0], dtype=torch.float64, device=device)
    want = f.prox(v, gamma, backend="reference")
    for backend in backends:
        with poisoned_outputs():
            got = f.prox(v, gamma, backend=backend)
        assert_close(got, want, **TOLERANCES[torch.float64], what=f"L2.prox {backend} s={s}")
    assert launches == [s] * backends.count("triton")


def test_overwrite_v_writes_the_reference_result_into_v_hat_only():
    """overwrite_v=True: the reference returns X^ in v_hat's own memory, equal to the result of
    a call that leaves v_hat alone; a fast backend (Triton, under the interpreter here) returns
    a new tensor and leaves v_hat unchanged; a non-bool is a TypeError."""
    g = torch.Generator().manual_seed(11)
    B, C, H, W, s = 2, 3, 6, 9, 3

    def cplx(*shape):
        return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g))

    v, kty, k_hat = cplx(B, C, H, W), cplx(B, C, H, W), cplx(B, 1, H, W)
    k2_mean = torch.rand(B, 1, H // s, W // s, generator=g)
    gamma = torch.rand(B, generator=g) + 0.5
    expected = sr_prox_reference(v, kty, k_hat, k2_mean, gamma, s)
    v_work = v.clone()
    out = sr_prox(v_work, kty, k_hat, k2_mean, gamma, s, backend="reference", overwrite_v=True)
    assert out.data_ptr() == v_work.data_ptr()
    torch.testing.assert_close(out, expected)
    v_fast = v.clone()
    out = sr_prox(v_fast, kty, k_hat, k2_mean, gamma, s, backend="triton", overwrite_v=True)
    assert out.data_ptr() != v_fast.data_ptr() and torch.equal(v_fast, v)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="overwrite_v must be True or False, not int 1"):
        sr_prox(v, kty, k_hat, k2_mean, gamma, s, overwrite_v=1)
