"""Fuzz table (issue 17 conventions) of SuperResolution.upsample and centre_offset (issue 19,
the start of hqs's super-resolution recipe) and of hqs's SR defaults in pnpfast.solve.

Good rows use oracles written from the definitions: torch's bicubic interpolate for the bicubic
kernel (the same grid), the interpolation property (a kernel centred on the kept pixel puts
y[i, j] back at (s i, s j)), a kernel's centroid counted by hand.
"""

import torch
from fuzz_cases import Bad, Good, channels_last, check, params, transposed

import pnpfast
from pnpfast.operators import SuperResolution

F64 = torch.float64
UP = "pnpfast.operators.SuperResolution.upsample"
OFF = "pnpfast.operators.SuperResolution.centre_offset"


def rand(*shape, seed=0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def gauss(s=2) -> SuperResolution:
    return SuperResolution.gaussian(s, 1.0)


def bicubic_interp(y: torch.Tensor, s: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(y, scale_factor=s, mode="bicubic", align_corners=False)


def identity(x, sigma):
    return x


CASES = [
    Bad(UP, "type", "list", lambda: gauss().upsample([[1.0]]), TypeError, r"y must be a torch"),
    Bad(UP, "rank", "2-D y", lambda: gauss().upsample(torch.ones(4, 4)), ValueError, r"y must"),
    Bad(
        UP,
        "dtype",
        "int32 y",
        lambda: gauss().upsample(torch.ones(1, 1, 4, 4, dtype=torch.int32)),
        TypeError,
        r"y must have dtype float32, float64, not int32",
    ),
    Bad(
        UP,
        "dtype",
        "complex64 y",
        lambda: gauss().upsample(torch.ones(1, 1, 4, 4, dtype=torch.complex64)),
        TypeError,
        r"y must have dtype float32, float64, not complex64",
    ),
    Bad(
        UP,
        "mismatch",
        "3 images, 2 kernels",
        lambda: SuperResolution(rand(2, 3, 3) + 0.1, 2).upsample(torch.ones(3, 1, 4, 4)),
        ValueError,
        r"kernel holds 2 kernels but y has batch size 3",
    ),
    Bad(
        UP,
        "size",
        "7x7 kernel, 2x2 y at factor 2",
        lambda: gauss().upsample(torch.ones(1, 1, 2, 2)),
        ValueError,
        r"kernel of size 7x7 is larger than the images of y",
    ),
    Good(
        UP,
        "size",
        "bicubic x3 on 5x6 float64 = interpolate",
        lambda: SuperResolution.bicubic(3).upsample(rand(2, 3, 5, 6, dtype=F64)),
        lambda: bicubic_interp(rand(2, 3, 5, 6, dtype=F64), 3),
        1e-12,
    ),
    Good(
        UP,
        "size",
        "constant 5x5 y, factor 4",
        lambda: SuperResolution.bicubic(4).upsample(torch.full((1, 2, 5, 5), 0.3, dtype=F64)),
        lambda: torch.full((1, 2, 20, 20), 0.3, dtype=F64),
        1e-12,
    ),
    Good(
        UP,
        "layout",
        "channels_last y",
        lambda: SuperResolution.bicubic(2).upsample(channels_last(rand(1, 3, 6, 6))),
        lambda: bicubic_interp(rand(1, 3, 6, 6), 2),
        1e-5,
    ),
    Good(
        UP,
        "layout",
        "transposed y",
        lambda: SuperResolution.bicubic(2).upsample(transposed(rand(1, 2, 6, 8))),
        lambda: bicubic_interp(transposed(rand(1, 2, 6, 8)).contiguous(), 2),
        1e-5,
    ),
    Good(
        UP,
        "value",
        "centred kernel: y back at the kept pixels",
        lambda: gauss(3).upsample(rand(2, 1, 4, 5, dtype=F64))[..., ::3, ::3],
        lambda: rand(2, 1, 4, 5, dtype=F64),
        1e-12,
    ),
    Good(
        OFF,
        "value",
        "per-image: a delta one tap right of the centre; bicubic x2 (9x9)",
        lambda: SuperResolution(
            torch.stack([delta(4, 5), SuperResolution.bicubic(2).kernel[0]]), 2
        ).centre_offset(),
        lambda: torch.tensor([[0.0, -1.0], [0.5, 0.5]], dtype=F64),
        1e-12,
    ),
    Good(
        "pnpfast.solve",
        "value",
        "hqs, SuperResolution x2, nothing set: 24 iterations",
        lambda: (
            pnpfast.solve(
                gauss().forward(rand(2, 1, 8, 8)), gauss(), identity, "hqs", sigma=0.0
            ).iterations
        ),
        lambda: torch.tensor([24, 24]),
        0,
    ),
]


def delta(i: int, j: int) -> torch.Tensor:
    k = torch.zeros(9, 9, dtype=F64)
    k[i, j] = 1.0
    return k


@params(CASES)
def test_fuzz(case):
    check(case)
