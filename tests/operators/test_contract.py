"""The contract every pnpfast operator meets: the dot-product adjoint test, the measurement shape
(``image_shape`` inverts the output shape), each closed-form prox against the general conjugate-
gradient path, the capabilities it declares, and no import of the layers above it."""

import ast
from pathlib import Path

import pytest
import torch
from pnpfast_test_utils import assert_close

import pnpfast
from pnpfast.operators import (
    BlockAverage,
    Blur,
    CompressiveSensing,
    Identity,
    Inpainting,
    LinearOperator,
    SpectralLowpass,
)

F64 = torch.float64
B, C, H, W = 2, 3, 12, 16


def blur():
    k = torch.rand(B, 5, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    return Blur(k / k.sum((1, 2), keepdim=True))


OPERATORS = {
    "blur": blur,
    "inpainting": lambda: Inpainting.random((B, H, W), 0.4, seed=2),
    "block_average": lambda: BlockAverage(4),
    "spectral_lowpass": lambda: SpectralLowpass(0.2, shape=(H, W)),
    "cs_fast": lambda: CompressiveSensing(0.3, seed=3, shape=(H, W), method="fast"),
    "cs_dense": lambda: CompressiveSensing(0.3, seed=3, shape=(H, W), method="dense"),
    "identity": Identity,
}
MEASUREMENT_SHAPES = {
    "blur": (B, C, H, W),
    "inpainting": (B, C, H, W),
    "block_average": (B, C, H // 4, W // 4),
    "spectral_lowpass": (B, C, SpectralLowpass(0.2, shape=(H, W)).kept),
    "cs_fast": (B, C, 58),  # round(0.3 * 192)
    "cs_dense": (B, C, 58),
    "identity": (B, C, H, W),
}

operators = pytest.mark.parametrize("name", list(OPERATORS))


def rand(*shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


@operators
def test_adjoint_dot_product(name):
    """<A x, y> = <x, A^T y> per image, for random x and random measurements y."""
    A = OPERATORS[name]()
    x = rand(B, C, H, W, seed=4)
    y = rand(*MEASUREMENT_SHAPES[name], seed=5)
    lhs = (A(x) * y).flatten(1).sum(1)
    rhs = (x * A.adjoint(y)).flatten(1).sum(1)
    assert_close(lhs, rhs, rtol=1e-11, atol=1e-11, what="<A x, y> vs <x, A^T y>")


@operators
def test_measurement_shape_and_image_shape(name):
    A = OPERATORS[name]()
    y = A(rand(B, C, H, W, seed=6))
    assert tuple(y.shape) == MEASUREMENT_SHAPES[name]
    assert A.image_shape(y) == (B, C, H, W)
    assert tuple(A.adjoint(y).shape) == (B, C, H, W)
    assert pnpfast.L2(A, y).image_shape == (B, C, H, W)


@operators
def test_prox_l2_closed_form_matches_conjugate_gradients(name):
    """scico's check: the structural fast path and the general path solve the same problem."""
    A = OPERATORS[name]()
    v = rand(B, C, H, W, seed=7)
    y = rand(*MEASUREMENT_SHAPES[name], seed=8)
    gamma = torch.tensor([0.3, 4.0], dtype=F64)
    want = A.prox_l2_cg(v, y, gamma, max_iter=300, tol=1e-14)
    assert_close(A.prox_l2(v, y, gamma), want, rtol=1e-9, atol=1e-9, what="prox_l2")
    data = pnpfast.L2(A, y)
    assert_close(data.prox(v, gamma), want, rtol=1e-9, atol=1e-9, what="L2.prox")
    assert_close(data.grad(v), A.adjoint(A(v) - y), rtol=1e-11, atol=1e-11, what="L2.grad")


@operators
def test_declared_capabilities(name):
    """Blur alone is FFT-diagonal (its multiplier is what forward applies); the orthonormal
    operators are partial isometries (A^T A A^T = A^T) whose gram is A^T A."""
    A = OPERATORS[name]()
    x = rand(B, C, H, W, seed=9)
    k_hat = A.fourier_multiplier((H, W), x.device, x.dtype)
    assert (k_hat is not None) == (name == "blur")
    if k_hat is not None:
        assert_close(
            torch.fft.irfft2(torch.fft.rfft2(x) * k_hat, s=(H, W)), A(x), rtol=0, atol=1e-12
        )
    assert A.partial_isometry == (name != "blur")
    assert_close(A.gram(x), A.adjoint(A(x)), rtol=1e-11, atol=1e-12, what="gram")
    if A.partial_isometry:
        y = rand(*MEASUREMENT_SHAPES[name], seed=10)
        aty = A.adjoint(y)
        assert_close(A.gram(aty), aty, rtol=1e-10, atol=1e-11, what="A^T A A^T y")


@pytest.mark.parametrize(
    "make, y_shape, error, match",
    [
        (blur, (B, C, H * W), ValueError, r"y must have shape \[B, C, H, W\]"),
        (blur, (3, C, H, W), ValueError, "kernel holds 2 kernels but y has batch size 3"),
        (OPERATORS["inpainting"], (B, C, H, W + 1), ValueError, "mask has size 12x16 but y"),
        (OPERATORS["block_average"], (B, C, 3), ValueError, r"y must have shape \[B, C, H, W\]"),
        (OPERATORS["spectral_lowpass"], (B, C, 7), ValueError, r"y must have shape \[B, C, "),
        (OPERATORS["cs_fast"], (B, C, H, W), ValueError, r"y must have shape \[B, C, 58\]"),
        (
            lambda: SpectralLowpass(0.2),
            (B, C, 40),
            ValueError,
            r"size is not known yet \(y holds coefficients, not an image\): pass shape=",
        ),
    ],
    ids=[
        "blur_rank",
        "blur_batch",
        "mask_size",
        "block_rank",
        "lowpass_count",
        "cs_image",
        "lowpass_unsized",
    ],
)
def test_a_measurement_of_the_wrong_shape_is_a_clear_error(make, y_shape, error, match):
    A = make()
    y = torch.zeros(y_shape, dtype=F64)
    with pytest.raises(error, match=match):
        A.image_shape(y)
    with pytest.raises(error, match=match):
        pnpfast.L2(A, y)


def test_operators_import_neither_fidelity_nor_solvers():
    """Data flows one way (solvers -> fidelity -> operators -> ops): no operator module imports
    pnpfast.fidelity or pnpfast.solvers, at the top or inside a function."""
    folder = Path(pnpfast.operators.__file__).parent
    banned = ("pnpfast.fidelity", "pnpfast.solvers")
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found += [f"{path.name}: {n}" for n in names if n.startswith(banned)]
    assert not found, found


def test_the_base_class_declares_nothing():
    A = LinearOperator()
    assert A.fourier_multiplier((4, 4), torch.device("cpu"), F64) is None
    assert not A.partial_isometry
