"""SpectralLowpass against independent oracles: numpy.fft, hand-derived boxes, pure cosines."""

import math

import numpy as np
import pytest
import torch
from pnpfast_test_utils import check_orthonormal_operator

from pnpfast.operators.spectral_lowpass import SpectralLowpass

SIZES = [(7, 9), (8, 12), (16, 16)]


def numpy_box_mask(H, W, ry, rx):
    """|ky| <= ry and |kx| <= rx over the signed DFT frequencies, in numpy.fft.fft2 order."""
    ky = np.fft.fftfreq(H) * H
    kx = np.fft.fftfreq(W) * W
    return (np.abs(ky) <= ry)[:, None] & (np.abs(kx) <= rx)[None, :]


def numpy_lowpass(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.fft.ifft2(np.fft.fft2(x, axes=(-2, -1)) * mask, axes=(-2, -1))
    assert np.abs(out.imag).max() < 1e-12 * max(1.0, np.abs(x).max())
    return out.real


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.5, 1.0])
def test_contract(size, C, fraction):
    x = torch.rand(3, C, *size, dtype=torch.float64)
    check_orthonormal_operator(SpectralLowpass(fraction), x)


# (H, W, fraction, (ry, rx), |K|), worked out by hand from the rule in the module docstring:
# grow rows or columns, whichever has the smaller (2r + 1) / size, rows on a tie; keep the box
# whose size is nearest fraction * H * W
KNOWN_BOXES = [
    (16, 16, 0.10, (2, 2), 25),  # target 25.6: 1, 3, 9, 15, 25, 35
    (16, 16, 0.05, (2, 1), 15),  # target 12.8: 9 or 15, 15 is nearer; rows first
    (8, 12, 0.10, (1, 1), 9),  # target 9.6
    (8, 12, 0.25, (2, 2), 25),  # target 24: 15, 25, 35
    (7, 9, 0.50, (2, 3), 35),  # target 31.5: 25 or 35
    (6, 20, 0.10, (1, 2), 15),  # target 12: 1x5 = 5 or 3x5 = 15
    (8, 12, 0.99, (3, 5), 77),  # the Nyquist row and column stay out below fraction 1
    (7, 9, 0.99, (3, 4), 63),  # odd sizes have no Nyquist: the largest box is everything
    (5, 5, 0.01, (0, 0), 1),  # at least the DC term
]


@pytest.mark.parametrize(("H", "W", "fraction", "radii", "kept"), KNOWN_BOXES)
def test_box_and_projection_against_numpy(H, W, fraction, radii, kept):
    A = SpectralLowpass(fraction)
    x = torch.rand(2, 3, H, W, dtype=torch.float64)
    got = A.project(x)
    assert A.radii == radii
    assert A.kept == kept
    mask = numpy_box_mask(H, W, *radii)
    assert mask.sum() == kept
    np.testing.assert_array_equal(A.mask.numpy(), mask)
    np.testing.assert_allclose(got.numpy(), numpy_lowpass(x.numpy(), mask), atol=1e-12)
    assert A.measure(x).shape == (2, 3, kept)


@pytest.mark.parametrize("size", [(7, 9), (8, 12), (16, 16), (10, 3), (1, 6), (2, 2), (33, 64)])
@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.1, 0.25, 0.5, 0.9])
def test_kept_set_is_a_symmetric_box_near_the_target(size, fraction):
    H, W = size
    A = SpectralLowpass(fraction, shape=size)
    mask = A.mask.numpy()
    flipped = mask[(-np.arange(H)) % H][:, (-np.arange(W)) % W]  # mask at -k
    np.testing.assert_array_equal(mask, flipped)
    assert A.kept == mask.sum()
    rows, cols = mask.any(1).sum(), mask.any(0).sum()
    assert A.kept == rows * cols, "not a box"
    assert rows % 2 == 1 and cols % 2 == 1, "not centred"
    # no Nyquist frequency below fraction 1
    if H % 2 == 0:
        assert not mask[H // 2].any()
    if W % 2 == 0:
        assert not mask[:, W // 2].any()
    # one row or column pair more or less changes |K| by at most 2 max(rows, cols), so the
    # nearest box is that close to the target unless even the largest box is short of it
    target = fraction * H * W
    largest = (H - 1) // 2 * 2 + 1, (W - 1) // 2 * 2 + 1
    if (rows, cols) != largest or A.kept > target:
        assert abs(A.kept - target) <= 2 * max(rows, cols), (A.kept, target)


@pytest.mark.parametrize("size", [(64, 64), (48, 80), (63, 45)])
@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.25])
def test_kept_count_is_close_to_the_fraction_on_larger_images(size, fraction):
    A = SpectralLowpass(fraction, shape=size)
    target = fraction * size[0] * size[1]
    assert abs(A.kept - target) / target < 0.1, (A.kept, target)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_images_inside_the_subspace_are_kept_and_outside_are_removed(size):
    H, W = size
    A = SpectralLowpass(0.1, shape=size)
    ry, rx = A.radii
    i = torch.arange(H, dtype=torch.float64)[:, None]
    j = torch.arange(W, dtype=torch.float64)[None, :]

    def wave(ky, kx, phase):
        return torch.cos(2 * math.pi * (ky * i / H + kx * j / W) + phase)

    inside = sum(
        wave(ky, kx, 0.3 * ky + 0.7 * kx + 0.1)
        for ky in range(-ry, ry + 1)
        for kx in range(-rx, rx + 1)
    )
    outside = wave(ry + 1, 0, 0.4) + wave(0, rx + 1, 1.1) + wave(ry + 1, -rx - 1, 0.2)
    x = torch.stack([inside, outside, inside + outside]).unsqueeze(1)  # [3, 1, H, W]
    got = A.project(x)
    torch.testing.assert_close(got[0], inside[None], atol=1e-12, rtol=0)
    torch.testing.assert_close(got[1], torch.zeros_like(got[1]), atol=1e-12, rtol=0)
    torch.testing.assert_close(got[2], inside[None], atol=1e-12, rtol=0)
    torch.testing.assert_close(A.lift(A.measure(x)), got, atol=1e-12, rtol=0)


@pytest.mark.parametrize("size", [*SIZES, (1, 1), (2, 5)])
def test_fraction_one_keeps_everything(size):
    H, W = size
    A = SpectralLowpass(1.0)
    x = torch.rand(3, 2, H, W, dtype=torch.float64)
    torch.testing.assert_close(A.project(x), x, atol=1e-12, rtol=0)
    c = A.measure(x)
    assert A.kept == H * W and c.shape == (3, 2, H * W)
    torch.testing.assert_close(c.square().sum((-1,)), x.square().sum((-2, -1)))
    torch.testing.assert_close(A.lift(c), x, atol=1e-12, rtol=0)
    assert A.mask.all()


def test_coefficients_are_the_orthonormal_dft_coordinates():
    """On a 4x6 image with everything kept: one coordinate per self-conjugate frequency (DC,
    the Nyquist ones), two per conjugate pair, equal to Re and Im of the unitary DFT."""
    H, W = 4, 6
    x = np.random.default_rng(3).random((H, W))
    X = np.fft.fft2(x) / math.sqrt(H * W)
    c = SpectralLowpass(1.0).measure(torch.from_numpy(x)[None, None])[0, 0].numpy()
    self_conj = [X[0, 0], X[0, 3], X[2, 0], X[2, 3]]
    assert np.abs(np.imag(self_conj)).max() < 1e-12
    pairs = [
        X[ky, kx]
        for ky in range(H)
        for kx in range(W // 2 + 1)
        if (kx not in (0, 3)) or (ky == 1)  # kx = 0, 3: ky = 1 stands for the pair {1, 3}
    ]
    want = np.sort(
        np.concatenate(
            [np.real(self_conj), math.sqrt(2) * np.real(pairs), math.sqrt(2) * np.imag(pairs)]
        )
    )
    assert c.shape == (24,)
    np.testing.assert_allclose(np.sort(c), want, atol=1e-12)


def test_the_same_m_for_every_image_and_channel():
    A = SpectralLowpass(0.1)
    x = torch.rand(3, 2, 8, 12, dtype=torch.float64)
    c = A.measure(x)
    for b in range(3):
        for ch in range(2):
            torch.testing.assert_close(c[b, ch], A.measure(x[b : b + 1, ch : ch + 1])[0, 0])


def test_shape_given_or_taken_from_the_first_image():
    x = torch.rand(2, 1, 8, 12, dtype=torch.float64)
    given = SpectralLowpass(0.1, shape=(8, 12))
    assert given.shape == (8, 12) and given.kept == 9
    seen = SpectralLowpass(0.1)
    assert seen.shape is None
    c = seen.measure(x)
    assert seen.shape == (8, 12)
    torch.testing.assert_close(c, given.measure(x), atol=0, rtol=0)
    torch.testing.assert_close(seen.lift(c), given.lift(c), atol=0, rtol=0)

    other = torch.rand(2, 1, 12, 8, dtype=torch.float64)
    for A, source in ((given, "shape="), (seen, "first image")):
        with pytest.raises(ValueError, match=rf"12x8.*built for 8x12.*{source}"):
            A.measure(other)
        with pytest.raises(ValueError, match="12x8"):
            A.project(other)
        with pytest.raises(ValueError, match=r"v has shape \(2, 1, 12, 8\).*\(2, 1, 8, 12\)"):
            A.prox_l2(other, c, 1.0)


def test_project_alone_fixes_the_size():
    A = SpectralLowpass(0.25)
    A.project(torch.rand(1, 1, 7, 9, dtype=torch.float64))
    assert A.shape == (7, 9)
    with pytest.raises(ValueError, match="built for 7x9"):
        A.measure(torch.rand(1, 1, 9, 7, dtype=torch.float64))


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, math.nan, math.inf])
def test_bad_fraction_values(fraction):
    with pytest.raises(ValueError, match="fraction"):
        SpectralLowpass(fraction)


@pytest.mark.parametrize("fraction", ["0.1", True, None, torch.tensor(0.1)])
def test_bad_fraction_types(fraction):
    with pytest.raises(TypeError, match="fraction"):
        SpectralLowpass(fraction)


@pytest.mark.parametrize(
    ("shape", "error"),
    [((8,), ValueError), ((8, 12, 3), ValueError), ((0, 4), ValueError), ((8, -1), ValueError),
     ((8.0, 12), TypeError), ((8, True), TypeError), ("8x12", ValueError)],
)  # fmt: skip
def test_bad_shapes(shape, error):
    with pytest.raises(error, match="shape"):
        SpectralLowpass(0.1, shape=shape)


def test_bad_arguments_to_measure_and_lift():
    A = SpectralLowpass(0.1)
    with pytest.raises(ValueError, match="not known yet"):
        A.lift(torch.zeros(1, 1, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="not known yet"):
        _ = A.kept
    with pytest.raises(ValueError, match="not known yet"):
        _ = A.mask
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        A.measure(np.zeros((1, 1, 8, 12)))
    with pytest.raises(ValueError, match=r"x must have shape \[B, C, H, W\]"):
        A.measure(torch.zeros(8, 12, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must have dtype"):
        A.measure(torch.zeros(1, 1, 8, 12, dtype=torch.int64))
    A.measure(torch.zeros(1, 1, 8, 12, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"c must have shape \[B, C, 9\].*\(1, 1, 10\)"):
        A.lift(torch.zeros(1, 1, 10, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"c must have shape \[B, C, 9\]"):
        A.lift(torch.zeros(1, 9, dtype=torch.float64))
    with pytest.raises(TypeError, match="c must have dtype"):
        A.lift(torch.zeros(1, 1, 9, dtype=torch.complex128))
    with pytest.raises(TypeError, match=r"c must be a torch\.Tensor"):
        A.lift(np.zeros((1, 1, 9)))


@pytest.mark.parametrize("fraction", [0.1, 1.0])
def test_float32_on_device_keeps_dtype_and_device(device, fraction):
    A = SpectralLowpass(fraction)
    x64 = torch.rand(3, 3, 8, 12, dtype=torch.float64)
    x = x64.to(device=device, dtype=torch.float32)
    c, p = A.measure(x), A.project(x)
    lifted = A.lift(c)
    for t in (c, p, lifted):
        assert t.dtype == torch.float32 and t.device.type == device
    assert c.shape == (3, 3, A.kept) and p.shape == x.shape
    ref = numpy_lowpass(x64.numpy(), A.mask.numpy())
    np.testing.assert_allclose(p.cpu().double().numpy(), ref, atol=2e-6)
    np.testing.assert_allclose(lifted.cpu().double().numpy(), ref, atol=2e-6)
    torch.testing.assert_close(c.cpu().double(), A.measure(x64), atol=2e-6, rtol=0)
