"""Fuzz table (issue 17) of pnpfast.runner.gpu_denoiser: ``FastDenoiser`` (constructor options of
the wrong type or value, x and sigma at the call, cuda_graphs on the CPU, wrapped denoisers
returning the wrong type, shape or dtype, a gradient-step method refusing the wrapper),
``check_options`` and ``nonfinite_images``.

Good rows compare with oracles written here: the wrapped denoiser called on a contiguous float32
copy (fp32 is the wrapped call, whatever the input's layout), the float64 run of the same
network for bf16 on a float64 input (within bfloat16's rounding, 2e-2 after a few layers), and
hand-made batches for ``nonfinite_images``. 8x8 images, a tiny DRUNet.
"""

import copy
import functools
import math

import torch
from fuzz_cases import Bad, Good, channels_last, check, params, transposed

import pnpfast
from pnpfast.denoisers import DRUNet
from pnpfast.runner.gpu_denoiser import FastDenoiser, check_options, nonfinite_images

FD = "pnpfast.runner.gpu_denoiser.FastDenoiser"
FDF = "pnpfast.runner.gpu_denoiser.FastDenoiser.forward"
CO = "pnpfast.runner.gpu_denoiser.check_options"
NF = "pnpfast.runner.gpu_denoiser.nonfinite_images"


def image(b: int = 2, c: int = 3, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


@functools.cache
def net() -> DRUNet:
    torch.manual_seed(1)
    return DRUNet(3, (4, 8), 1).eval().requires_grad_(False)


def fast(**kw) -> FastDenoiser:
    return FastDenoiser(net(), **kw)


def float64_run(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The tiny network in float64 on x (float64 weights): the high-precision oracle."""
    return copy.deepcopy(net()).double()(x, sigma)


def returning(value):
    return lambda x, sigma: value(x)


def batch_with(values: dict[int, float], b: int = 4) -> torch.Tensor:
    x = torch.zeros(b, 2, 3, 3)
    for i, v in values.items():
        x[i, 1, 2, 0] = v
    return x


def gs_pnp_with_the_wrapper():
    D = FastDenoiser(pnpfast.denoisers.load("gradient-step"), precision="bf16")
    y = image(1, 3, 8, 8)
    return pnpfast.solve(y, pnpfast.operators.Identity(), D, "gs-pnp", sigma=0.05, max_iter=2)


CASES = [
    # ---- FastDenoiser(...) ------------------------------------------------------------------
    Bad(FD, "type", "denoiser-int", lambda: FastDenoiser(3), TypeError,
        r"denoiser must be callable as D\(x, sigma\), not int"),
    Bad(FD, "type", "precision-dtype", lambda: fast(precision=torch.bfloat16), TypeError,
        r"precision must be a str, one of fp32, bf16, fp16, not dtype"),
    Bad(FD, "value", "precision-half", lambda: fast(precision="half"), ValueError,
        r"precision must be one of fp32, bf16, fp16, not 'half'"),
    Bad(FD, "name", "precision-upper-case", lambda: fast(precision="BF16"), ValueError,
        r"precision must be one of fp32, bf16, fp16, not 'BF16'"),
    Bad(FD, "name", "precision-bfloat16", lambda: fast(precision="bfloat16"), ValueError,
        r"precision must be one of .*not 'bfloat16' \(bfloat16 is 'bf16'"),
    Bad(FD, "type", "channels_last-int", lambda: fast(channels_last=1), TypeError,
        r"channels_last must be True or False"),
    Bad(FD, "type", "cuda_graphs-str", lambda: fast(cuda_graphs="yes"), TypeError,
        r"cuda_graphs must be True or False"),
    # ---- FastDenoiser.forward: x and sigma ------------------------------------------------------
    Bad(FDF, "rank", "x-3d", lambda: fast(precision="bf16")(image()[0], 0.1), ValueError,
        r"x must have shape \[B, C, H, W\]"),
    Bad(FDF, "dtype", "x-int", lambda: fast()(torch.ones(1, 3, 8, 8, dtype=torch.int64), 0.1),
        TypeError, r"x must have a floating dtype, not int64"),
    Bad(FDF, "meta", "x-meta", lambda: fast()(torch.empty(1, 3, 8, 8, device="meta"), 0.1),
        ValueError, r"x is on the meta device"),
    Bad(FDF, "size", "x-batch-0", lambda: fast(precision="bf16")(image(0), 0.1), ValueError,
        r"x has a batch of size 0"),
    Bad(FDF, "mismatch", "x-channels", lambda: fast(precision="bf16")(image(1, 2), 0.1),
        ValueError, r"x has 2 channels but this denoiser takes 3"),
    Bad(FDF, "mismatch", "sigma-length", lambda: fast(precision="bf16")(image(), torch.ones(3)),
        ValueError, r"sigma must be a float or a tensor of length 2"),
    Bad(FDF, "nan-inf", "sigma-nan", lambda: fast(precision="bf16")(image(), math.nan),
        ValueError, r"sigma must be finite"),
    Bad(FDF, "value", "sigma-negative", lambda: fast(precision="fp16")(image(), -0.1),
        ValueError, r"sigma must be >= 0"),
    Bad(FDF, "value", "cuda_graphs-on-cpu", lambda: fast(cuda_graphs=True)(image(), 0.1),
        ValueError, r"cuda_graphs=True needs x on a CUDA device, not on cpu: use cuda_graphs=False"),
    # ---- FastDenoiser.forward: what the wrapped denoiser returns -------------------------------
    Bad(FDF, "denoiser", "returns-list",
        lambda: FastDenoiser(returning(lambda x: [x]), precision="bf16")(image(), 0.1),
        TypeError, r"the denoiser returned list, not a torch.Tensor"),
    Bad(FDF, "denoiser", "returns-cropped",
        lambda: FastDenoiser(returning(lambda x: x[..., 1:]), precision="bf16")(image(), 0.1),
        ValueError, r"the denoiser returned shape \(2, 3, 8, 7\) for input of shape"),
    Bad(FDF, "denoiser", "fp32-returns-float64",
        lambda: FastDenoiser(returning(lambda x: x.double()))(image(), 0.1),
        TypeError, r"the denoiser returned dtype torch.float64 for input of dtype torch.float32"),
    Bad(FDF, "denoiser", "gs-pnp-refuses-the-wrapper", gs_pnp_with_the_wrapper, TypeError,
        r"method 'gs-pnp' needs a gradient-step denoiser with potential_and_gradient.*"
        r"got FastDenoiser"),
    Good(FDF, "layout", "channels_last-input-fp32",
         lambda: fast()(channels_last(image(seed=2)), 0.1),
         lambda: net()(image(seed=2), 0.1), atol=1e-6),
    Good(FDF, "layout", "transposed-input-channels_last-option",
         lambda: FastDenoiser(copy.deepcopy(net()), channels_last=True)(
             transposed(image(seed=3)), 0.1),
         lambda: net()(image(seed=3), 0.1), atol=1e-5),
    Good(FDF, "dtype", "float64-input-bf16",
         lambda: fast(precision="bf16")(image(seed=4).double(), 0.1),
         lambda: float64_run(image(seed=4).double(), 0.1), atol=2e-2),
    Good(FDF, "size", "1x1-image-fp16",
         lambda: FastDenoiser(lambda x, s: x * 0.5, precision="fp16")(
             torch.full((1, 1, 1, 1), 0.25), 0.1),
         lambda: torch.full((1, 1, 1, 1), 0.125), atol=0),
    # ---- check_options ----------------------------------------------------------------------
    Bad(CO, "type", "precision-none", lambda: check_options(None), TypeError,
        r"precision must be a str, one of fp32, bf16, fp16, not NoneType"),
    Bad(CO, "value", "precision-fp8", lambda: check_options("fp8"), ValueError,
        r"precision must be one of fp32, bf16, fp16, not 'fp8'"),
    Bad(CO, "type", "channels_last-str", lambda: check_options("fp32", "no"), TypeError,
        r"channels_last must be True or False"),
    Good(CO, "value", "all-set", lambda: check_options("fp16", True, True) == ("fp16", True, True),
         lambda: True, atol=0),
    # ---- nonfinite_images -------------------------------------------------------------------
    Bad(NF, "type", "list", lambda: nonfinite_images([1.0, math.nan]), TypeError,
        r"x must be a torch.Tensor with the batch first, not list"),
    Bad(NF, "rank", "0-d", lambda: nonfinite_images(torch.tensor(math.nan)), ValueError,
        r"x must have a batch dimension \(dim 0\), got a 0-d tensor"),
    Bad(NF, "meta", "meta", lambda: nonfinite_images(torch.empty(2, 3, device="meta")),
        ValueError, r"x is on the meta device"),
    Good(NF, "nan-inf", "nan-and-inf", lambda: nonfinite_images(
        batch_with({1: math.nan, 3: -math.inf})), lambda: [1, 3], atol=0),
    Good(NF, "nan-inf", "float16-overflow",
         lambda: nonfinite_images(torch.tensor([[6e4], [7e4]]).half()), lambda: [1], atol=0),
    Good(NF, "size", "empty-batch", lambda: nonfinite_images(torch.zeros(0, 3, 4, 4)),
         lambda: [], atol=0),
]  # fmt: skip


@params(CASES)
def test_fuzz(case):
    check(case)
