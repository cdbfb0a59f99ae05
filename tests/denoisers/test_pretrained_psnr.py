"""Each public weight file, loaded by pnpfast, denoises as recorded in ../shared/data/MANIFEST.md.

Protocol of the MANIFEST "Verification" table: AWGN of std 25/255 drawn from one
``torch.Generator().manual_seed(0)`` over the images in sorted file order, no clipping of the
noisy input, output clamped to [0, 1], PSNR with peak 1 averaged over the images.
"""

import pytest
import torch

import pnpfast.denoisers as dn

SIGMA = 25 / 255
TOLERANCE_DB = 0.1

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def psnr(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """10 log10(1 / mean squared error), peak 1."""
    mse = (estimate.double() - reference.double()).square().mean()
    return float(10.0 * torch.log10(1.0 / mse))


def noisy_copies(images: list[torch.Tensor]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [x + SIGMA * torch.randn(x.shape, generator=generator) for x in images]


@pytest.fixture(scope="module")
def set12(image_set):
    clean = image_set("Set12", False)
    return clean, noisy_copies(clean)


@pytest.fixture(scope="module")
def set3c(image_set):
    clean = image_set("Set3C", True)
    return clean, noisy_copies(clean)


def mean_psnr(denoiser, clean, noisy) -> float:
    with torch.no_grad():
        values = [
            psnr(denoiser(y, SIGMA).clamp(0, 1), x) for x, y in zip(clean, noisy, strict=True)
        ]
    return sum(values) / len(values)


def test_noise_protocol_matches_manifest(set12, set3c):
    # MANIFEST Verification, column "PSNR noisy" at sigma 25: Set12 20.34, Set3C 20.74. Those
    # values are for the noisy image clamped to [0, 1] for the measurement (unclamped, the
    # PSNR is 20 log10(255 / 25) = 20.17 dB); the networks still get the unclamped input.
    for (clean, noisy), expected in ((set12, 20.34), (set3c, 20.74)):
        values = [psnr(y.clamp(0, 1), x) for x, y in zip(clean, noisy, strict=True)]
        assert sum(values) / len(values) == pytest.approx(expected, abs=0.01)
        unclamped = [psnr(y, x) for x, y in zip(clean, noisy, strict=True)]
        assert sum(unclamped) / len(unclamped) == pytest.approx(20.17, abs=0.01)


GRAY_CASES = [
    # MANIFEST Verification row: kadkhodaie_bfcnn/bfcnn_gray_bsd400_sigma0-100.pt | Set12 | 25
    # | 20.34 | 30.26
    pytest.param("bfcnn", "kadkhodaie_bfcnn/bfcnn_gray_bsd400_sigma0-100.pt", 30.26, id="bfcnn"),
    # MANIFEST Verification row: mohan_bias_free/bf_dncnn_gray_sigma0-55.pt | Set12 | 25
    # | 20.34 | 30.34
    pytest.param("bf-dncnn", "mohan_bias_free/bf_dncnn_gray_sigma0-55.pt", 30.34, id="bf-dncnn"),
    # MANIFEST Verification row: mohan_bias_free/dncnn_withbias_gray_sigma0-55.pt | Set12 | 25
    # | 20.34 | 30.34
    pytest.param(
        "dncnn", "mohan_bias_free/dncnn_withbias_gray_sigma0-55.pt", 30.34, id="mohan-withbias"
    ),
    # The Verification table has no row for kair/dncnn_25.pth; MANIFEST gives the published
    # value instead ("Published for this model ... Set12 sigma=25 30.436 dB"), measured with
    # other noise draws (the DnCNN rows of the table are within ~0.05 dB of their published
    # values).
    pytest.param("dncnn", "kair/dncnn_25.pth", 30.436, id="kair-dncnn25"),
    # MANIFEST Verification row: saoyan_dncnn/DnCNN-S-25.pth | Set12 | 25 | 20.34 | 30.38
    pytest.param("dncnn", "saoyan_dncnn/DnCNN-S-25.pth", 30.38, id="saoyan-S25"),
    # MANIFEST Verification row: saoyan_dncnn/DnCNN-B.pth | Set12 | 25 | 20.34 | 30.33
    pytest.param("dncnn", "saoyan_dncnn/DnCNN-B.pth", 30.33, id="saoyan-B"),
]


@pytest.mark.parametrize(("name", "weights", "expected"), GRAY_CASES)
def test_gray_network_on_set12(name, weights, expected, weights_file, set12, all_cpu_threads):
    denoiser = dn.load(name, weights_file(weights))
    assert mean_psnr(denoiser, *set12) == pytest.approx(expected, abs=TOLERANCE_DB)


def test_bfcnn_color_on_set3c(weights_file, set3c, all_cpu_threads):
    denoiser = dn.load("bfcnn", weights_file("kadkhodaie_bfcnn/bfcnn_color_bsd300_sigma0-100.pt"))
    assert denoiser.channels == 3
    # MANIFEST Verification row: kadkhodaie_bfcnn/bfcnn_color_bsd300_sigma0-100.pt | Set3C | 25
    # | 20.74 | 30.99
    assert mean_psnr(denoiser, *set3c) == pytest.approx(30.99, abs=TOLERANCE_DB)
