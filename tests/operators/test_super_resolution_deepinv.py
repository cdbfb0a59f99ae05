"""SuperResolution against deepinv's ``Downsampling(img_size, filter, factor, padding="circular")``
(issue 19): forward (``A``), adjoint (``A_adjoint``) and the closed-form FFT prox (``prox_l2``,
Zhao et al. 2016) in float64 on the same inputs, for factors 2, 3 and 4, the bicubic and Gaussian
kernels, even and non-square kernels (where the centring conventions could part), shared and
per-image kernels, batch 2, one gamma per image; and deepinv's named "bicubic" and "gaussian"
filters against ours.

deepinv is an extra oracle (CI installs it with ``make deepinv``): where it cannot be imported
every test here skips, saying why (the dense float64 oracle of test_super_resolution.py runs
everywhere); ``pnpfast_test_utils.deepinv_or_skip`` loads it beside a torchvision stub where
torchvision cannot load (the operators compared here never call it).
"""

import pnpfast_test_utils
import pytest
import torch
from pnpfast_test_utils import deepinv_or_skip

import pnpfast
from pnpfast.operators import SuperResolution
from pnpfast.operators.super_resolution import bicubic_kernel, gaussian_kernel

F64 = torch.float64
RTOL = 1e-10  # float64 FFTs of images of a few hundred pixels: errors ~1e-15 relative


@pytest.fixture(scope="module")
def physics():
    """deepinv.physics, or a skip that says why not."""
    return deepinv_or_skip().physics


def rand(*shape, seed: int) -> torch.Tensor:
    return torch.rand(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def positive(h: int, w: int, seed: int) -> torch.Tensor:
    k = rand(h, w, seed=seed) + 0.05
    return k / k.sum()


def kernels(kind: str, s: int, per_image: bool) -> torch.Tensor:
    """[1, h, w] shared or [2, h, w] one per image. "even" (2s x 2s) and "non-square"
    (5 x 2s) are the shapes whose centre tap h // 2 is off the middle: there the conventions of
    the two libraries could differ. deepinv's circular conv_transpose2d fails for kernels of
    width or height 2 (a size-0 slice in _apply_transpose_padding), so none is used here."""
    if kind == "bicubic":
        first = bicubic_kernel(s)
        second = positive(*first.shape, seed=s)
    elif kind == "gaussian":
        first = gaussian_kernel(float(s))
        second = gaussian_kernel(0.6 * s, size=first.shape[-1])
    elif kind == "even":
        first, second = positive(2 * s, 2 * s, seed=10 + s), positive(2 * s, 2 * s, seed=20 + s)
    else:
        first, second = positive(5, 2 * s, seed=30 + s), positive(5, 2 * s, seed=40 + s)
    return torch.stack([first, second]) if per_image else first[None]


def assert_rel(got: torch.Tensor, want: torch.Tensor, what: str, rtol: float = RTOL) -> None:
    pnpfast_test_utils.assert_rel(got, want, what, rtol)


@pytest.mark.parametrize("per_image", [False, True], ids=["shared", "per-image"])
@pytest.mark.parametrize("kind", ["bicubic", "gaussian", "even", "non-square"])
@pytest.mark.parametrize("s", [2, 3, 4])
def test_forward_adjoint_and_prox_match_deepinv(physics, s, kind, per_image):
    B, C, H, W = 2, 3, 9 * s, 7 * s  # odd sizes for s = 3, non-square throughout
    k = kernels(kind, s, per_image)
    A = SuperResolution(k, s)
    D = physics.Downsampling(
        img_size=(C, H, W), filter=k[:, None].clone(), factor=s, padding="circular", device="cpu"
    )
    x, z = rand(B, C, H, W, seed=1), rand(B, C, H, W, seed=2)
    y = rand(B, C, H // s, W // s, seed=3)
    gamma = torch.tensor([0.3, 2.5], dtype=F64)

    assert_rel(A(x), D.A(x), "forward")
    assert_rel(A.adjoint(y), D.A_adjoint(y), "adjoint")
    want = D.prox_l2(z, y, gamma.view(B, 1, 1, 1))
    assert_rel(pnpfast.L2(A, y).prox(z, gamma), want, "L2(A, y).prox, per-image gamma")
    assert_rel(A.prox_l2(z, y, gamma), want, "A.prox_l2, per-image gamma")
    assert_rel(pnpfast.L2(A, y).prox(z, 0.7), D.prox_l2(z, y, 0.7), "L2(A, y).prox, gamma 0.7")


def named(physics, name: str, s: int, shape: tuple[int, int, int]):
    """Downsampling with deepinv's named filter (float32), rebuilt with that filter in float64
    (Module.to(float64) would drop the imaginary part of its cached spectra)."""
    filt = physics.Downsampling(img_size=shape, filter=name, factor=s, device="cpu").filter
    return physics.Downsampling(
        img_size=shape, filter=filt.to(F64), factor=s, padding="circular", device="cpu"
    )


def _cubic(t: torch.Tensor) -> torch.Tensor:
    a = t.abs()
    inner = (1.5 * a - 2.5) * a * a + 1
    outer = ((-0.5 * a + 2.5) * a - 4) * a + 2
    return torch.where(a <= 1, inner, torch.where(a < 2, outer, torch.zeros_like(a)))


@pytest.mark.parametrize("s", [2, 3, 4])
def test_deepinv_bicubic_filter_and_its_grid(physics, s):
    """deepinv's filter="bicubic" is 4 s taps of Keys' cubic (a = -0.5) at (t - 2 s + 0.5) / s
    (float32); with the top-left decimation it samples MATLAB's output grid for s = 2, one
    high-resolution pixel away from it for s = 4 (the (s - 2) / 2 shift of the SuperResolution
    module docstring), and half a pixel away for s = 3. Float32 filter: 1e-6 relative."""
    B, C, H, W = 1, 2, 8 * s, 6 * s
    D = named(physics, "bicubic", s, (C, H, W))
    w = _cubic((torch.arange(4 * s, dtype=F64) - 2 * s + 0.5) / s)
    want = torch.outer(w, w) / torch.outer(w, w).sum()
    assert_rel(D.filter[0, 0], want, "deepinv's bicubic filter", rtol=1e-6)

    x = rand(B, C, H, W, seed=s)
    ours = SuperResolution.bicubic(s)
    if s % 2 == 0:
        shift = (s - 2) // 2
        assert_rel(D.A(x), ours(torch.roll(x, (shift, shift), (2, 3))), "grid", rtol=1e-6)
    else:  # half a pixel: no roll reaches it, and the two differ
        assert (D.A(x) - ours(x)).abs().max() > 1e-3


@pytest.mark.parametrize("s", [2, 3, 4])
def test_deepinv_gaussian_filter_is_ours_truncated_wider(physics, s):
    """deepinv's filter="gaussian" (std = factor) is our Gaussian formula on 2 int(s / 0.3 + 1)
    + 1 taps (15, 23, 29 for s = 2, 3, 4) where SuperResolution.gaussian(s) keeps 2 ceil(3 s) + 1
    (13, 19, 25): with that size the two operators agree (deepinv's float32 filter: 1e-6), at the
    default sizes they differ by the tail beyond 3 std."""
    B, C, H, W = 1, 2, 10 * s, 8 * s
    D = named(physics, "gaussian", s, (C, H, W))
    size = D.filter.shape[-1]
    assert size == 2 * int(s / 0.3 + 1) + 1
    assert gaussian_kernel(float(s)).shape[-1] == 2 * 3 * s + 1
    assert_rel(D.filter[0, 0], gaussian_kernel(float(s), size=size), "filter", rtol=1e-6)
    x = rand(B, C, H, W, seed=s)
    same_size = SuperResolution(gaussian_kernel(float(s), size=size), s)
    assert_rel(same_size(x), D.A(x), "forward, deepinv's size", rtol=1e-6)
    assert (SuperResolution.gaussian(s)(x) - D.A(x)).abs().max() > 1e-6
