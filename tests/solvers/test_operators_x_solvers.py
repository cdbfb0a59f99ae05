"""Every operator with every method of ``pnpfast.solve``: it runs, from measurements of the
operator's own output shape, and returns finite images of the image shape that beat A^T y, or it
raises an error that says why the method cannot take the operator.

The reasonable case: the truth is piecewise constant on 4 x 4 blocks (offset by one pixel, so
that no operator's A^T y recovers it), the denoiser is the orthogonal projection onto such
images (linear, symmetric, idempotent: a denoiser, a gradient-step denoiser of the potential
1/2 ||(I - P) x||^2 and, scaled, a regulariser gradient all at once), and the measurements are
noisy. Every method with this prior lands far closer to the truth than A^T y (by 10 dB and more
when this was written); the test asks for 3 dB per image.
"""

import pytest
import torch
import torch.nn.functional as F

import pnpfast
from pnpfast.denoisers import GradientStep
from pnpfast.operators import (
    BlockAverage,
    Blur,
    CompressiveSensing,
    Identity,
    Inpainting,
    SpectralLowpass,
    SuperResolution,
)
from pnpfast.solvers import METHODS

F64 = torch.float64
B, C, H, W = 2, 1, 16, 16
S = 4  # the block size of the truth and of the prior
SIGMA = 0.02  # the noise level of the measurements
GAIN_DB = 3.0
# Denoising (A = I) with the RED and PnP-ReG weightings of a projection prior shrinks the part of
# y off the prior's range by 1 / (1 + lam sigma^2), about 0.7 at their defaults: a gain of 1.7 to
# 2.9 dB, by design of the objective (the other methods gain over 3 dB)
GAIN_DB_FOR = {"identity": 1.0}


class BlockProjection(torch.nn.Module):
    """P x: the mean over each 4 x 4 block of a grid offset by one pixel (circularly)."""

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        x = torch.roll(x, (-1, -1), (-2, -1))
        p = F.avg_pool2d(x, S).repeat_interleave(S, -2).repeat_interleave(S, -1)
        return torch.roll(p, (1, 1), (-2, -1))


def truth() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    blocks = 0.2 + 0.6 * torch.rand(B, C, H // S, W // S, generator=g, dtype=F64)
    x = blocks.repeat_interleave(S, -2).repeat_interleave(S, -1)
    return torch.roll(x, (1, 1), (-2, -1))


def blur() -> Blur:
    k = torch.rand(B, 3, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    return Blur(k / k.sum((1, 2), keepdim=True))


OPERATORS = {
    "blur": blur,
    "inpainting": lambda: Inpainting.random((B, H, W), 0.5, seed=2),
    "block_average": lambda: BlockAverage(2),
    "spectral_lowpass": lambda: SpectralLowpass(0.15, shape=(H, W)),
    "compressive_sensing": lambda: CompressiveSensing(0.3, seed=3, shape=(H, W)),
    # per-image 3 x 3 kernels, then keeping every second pixel: the closed-form FFT prox
    "super_resolution": lambda: SuperResolution(blur().kernel, 2),
    "identity": Identity,  # denoising
}
SAMPLER = "implicit-prior"

# (operator, method) -> (error, match): the pairs whose maths does not allow them
ERRORS = {
    ("blur", SAMPLER): (TypeError, "'implicit-prior' needs an operator with an orthonormal view"),
    ("super_resolution", SAMPLER): (
        TypeError,
        "'implicit-prior' needs an operator with an orthonormal view",
    ),
    ("identity", SAMPLER): (
        TypeError,
        "'implicit-prior' needs an operator with an orthonormal view",
    ),
}
# known solver faults, strict: an xfail that starts passing fails, so it is removed with the fix
KNOWN: dict[tuple[str, str], str] = {}


def measure(A) -> tuple[torch.Tensor, torch.Tensor]:
    x = truth()
    clean = A(x)
    g = torch.Generator().manual_seed(5)
    return x, clean + SIGMA * torch.randn(clean.shape, generator=g, dtype=F64)


def run(method: str, A, y: torch.Tensor, **kw) -> pnpfast.Result:
    P = BlockProjection()
    if method == SAMPLER:
        return pnpfast.solve(
            y, A, P, method, h0=0.1, seed=0, max_iter=500, backend="reference", **kw
        )
    if method in ("gs-pnp", "prox-pnp-pgd", "prox-pnp-drs"):
        denoiser = GradientStep(BlockProjection()).double()
    elif method == "pnp-reg":
        # lam sigma^2 G(x) = 0.25 (I - P) x: the gradient of a quadratic regulariser
        def denoiser(x, s):
            return (x - P(x, s)) * (0.25 / SIGMA**2)
    else:
        denoiser = P
    kw.setdefault("max_iter", min(METHODS[method].default_max_iter, 40))
    return pnpfast.solve(y, A, denoiser, method, sigma=SIGMA, backend="reference", **kw)


def cases():
    for op in OPERATORS:
        for method in [*sorted(METHODS), SAMPLER]:
            marks = []
            if (op, method) in KNOWN:
                marks = [pytest.mark.xfail(reason=KNOWN[op, method], strict=True)]
            yield pytest.param(op, method, id=f"{op}-{method}", marks=marks)


@pytest.mark.parametrize("op, method", list(cases()))
def test_every_operator_with_every_method(op, method):
    A = OPERATORS[op]()
    x, y = measure(A)
    if (op, method) in ERRORS:
        error, match = ERRORS[op, method]
        with pytest.raises(error, match=match):
            run(method, A, y)
        return
    res = run(method, A, y)
    assert res.x.shape == x.shape and res.x.dtype == x.dtype
    assert torch.isfinite(res.x).all()
    gain = pnpfast.metrics.psnr(res.x, x) - pnpfast.metrics.psnr(A.adjoint(y), x)
    assert (gain > GAIN_DB_FOR.get(op, GAIN_DB)).all(), (
        f"PSNR gain over A^T y per image: {gain.tolist()} dB"
    )


@pytest.mark.parametrize("op", ["block_average", "compressive_sensing"])
def test_the_default_start_is_the_adjoint_of_y(op):
    A = OPERATORS[op]()
    _, y = measure(A)
    default = run("hqs", A, y, max_iter=1)
    assert torch.equal(default.x, run("hqs", A, y, max_iter=1, x0=A.adjoint(y)).x)
    zero = torch.zeros(B, C, H, W, dtype=F64)
    assert not torch.equal(default.x, run("hqs", A, y, max_iter=1, x0=zero).x)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_super_resolution_starts_from_the_upsampled_measurement(method):
    """With a SuperResolution of factor >= 2 every method starts from A.upsample(y) (DPIR's and
    GS-PnP's SR start), not from A^T y, which is y zero-filled."""
    A = OPERATORS["super_resolution"]()
    _, y = measure(A)
    default = run(method, A, y, max_iter=1)
    assert torch.equal(default.x, run(method, A, y, max_iter=1, x0=A.upsample(y)).x)
    assert not torch.equal(default.x, run(method, A, y, max_iter=1, x0=A.adjoint(y)).x)


@pytest.mark.parametrize("name", ["x0", "x_true"])
def test_a_start_or_truth_of_the_measurement_shape_is_an_error(name):
    A = BlockAverage(2)
    _, y = measure(A)  # [2, 1, 8, 8] measures [2, 1, 16, 16] images
    with pytest.raises(
        ValueError,
        match=rf"{name} has shape \(2, 1, 8, 8\) but the images measured by y \(shape "
        r"\(2, 1, 8, 8\)\) have shape \(2, 1, 16, 16\)",
    ):
        run("hqs", A, y, **{name: y})


@pytest.mark.parametrize(
    "make, y_shape, match",
    [
        (lambda: SpectralLowpass(0.15), (B, C, 35), r"not known yet \(y holds coefficients"),
        (OPERATORS["compressive_sensing"], (B, C, 70), r"y must have shape \[B, C, 77\]"),
        (OPERATORS["compressive_sensing"], (B, C, H, W), r"y must have shape \[B, C, 77\]"),
        (blur, (B, C, H * W), r"y must have shape \[B, C, H, W\]"),
        (OPERATORS["inpainting"], (B, C, 8, 8), "mask has size 16x16 but y has size 8x8"),
    ],
    ids=["lowpass_unsized", "cs_count", "cs_image", "blur_rank", "mask_size"],
)
@pytest.mark.parametrize("method", ["hqs", "red-sd"])
def test_a_measurement_the_operator_cannot_make_is_a_clear_error(make, y_shape, match, method):
    with pytest.raises(ValueError, match=match):
        run(method, make(), torch.zeros(y_shape, dtype=F64))
