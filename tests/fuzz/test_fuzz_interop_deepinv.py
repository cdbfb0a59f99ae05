"""Fuzz table (issue 17 conventions) of pnpfast.interop.deepinv (issue 20): accelerate, the four
accelerated physics, to_pnpfast / from_pnpfast, PnpfastDenoiser and DeepinvDenoiser.

Bad rows: the exact exception type and a message naming the argument and what is wrong, for the
checks this module makes itself. The accelerated physics make none of their own: they are
drop-ins, and any input their fast path does not take goes to deepinv's code unchanged, with
deepinv's answer or deepinv's error; their rows are Good rows of edge inputs (per-image gamma,
non-contiguous images, 1x1 and odd sizes, fallbacks) against deepinv's original class, the oracle
of tests/interop/test_deepinv_physics.py, or a closed form written here.

deepinv is an optional extra: everything deepinv is built inside the lambdas, so the table
(``CASES``) exists without it, and the test skips, saying why, when it cannot be imported.
"""

import importlib
import importlib.util

import pytest
import torch
from fuzz_cases import Bad, Good, check, params, transposed
from pnpfast_test_utils import load_deepinv

import pnpfast

F32, F64 = torch.float32, torch.float64
M = "pnpfast.interop.deepinv"
ACC = f"{M}.accelerate"
BLUR = f"{M}.FastBlurFFT.prox_l2"
DOWN = f"{M}.FastDownsampling.prox_l2"
INP = f"{M}.FastInpainting.prox_l2"
DEN = f"{M}.FastDenoising.prox_l2"
TO = f"{M}.to_pnpfast"
FROM = f"{M}.from_pnpfast"
PD = f"{M}.PnpfastDenoiser"
DD = f"{M}.DeepinvDenoiser"


_deepinv = load_deepinv


def dp():
    """deepinv.physics (imported on first use, inside a row)."""
    return _deepinv()[0].physics


def fast():
    """pnpfast.interop.deepinv, imported after deepinv."""
    _deepinv()
    return importlib.import_module(M)


def rand(*shape, seed=0, dtype=F64) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def kern(bk=1, h=3, w=3, seed=1, dtype=F64, channels=1) -> torch.Tensor:
    k = rand(bk, 1, h, w, seed=seed, dtype=dtype) + 0.1
    return (k / k.sum(dim=(-2, -1), keepdim=True)).repeat(1, channels, 1, 1)


def blur(bk=1, h=3, w=3, C=3, H=8, W=8, channels=1):
    return dp().BlurFFT((C, H, W), filter=kern(bk, h, w, channels=channels))


def down(s=2, C=3, H=8, W=8, padding="circular", filt=None):
    f = kern() if filt is None else filt
    return dp().Downsampling((C, H, W), filter=f, factor=s, padding=padding)


def per_channel_blur():
    return dp().BlurFFT((3, 8, 8), filter=torch.cat([kern(seed=s) for s in (1, 2, 3)], dim=1))


def denoising(mask: float):
    physics = dp().Denoising()
    physics.update_parameters(mask=torch.tensor(mask))
    return physics


def inpaint(C=3, H=8, W=8, soft=False):
    m = rand(1, 1, H, W, seed=5)
    m = m if soft else (m > 0.4).to(F64)
    return dp().Inpainting((C, H, W), mask=m.expand(1, C, H, W).contiguous())


def per_image(physics, z, y, gammas):
    """deepinv's prox image by image, each with its own float gamma: the oracle of a [B] gamma."""
    return torch.cat(
        [
            physics.prox_l2(z[b : b + 1], y[b : b + 1], float(g))
            for b, g in enumerate(gammas.tolist())
        ]
    )


Z, Y = rand(2, 3, 8, 8, seed=2), rand(2, 3, 8, 8, seed=3)
YS = rand(2, 3, 4, 4, seed=4)
Z11, Y11 = Z[..., :1, :1], Y[..., :1, :1]
Z57, Y57 = Z[..., :5, :7], Y[..., :5, :7]
G2 = torch.tensor([0.1, 5.0], dtype=F64)

CASES = [
    # accelerate
    Bad(ACC, "type", "tensor", lambda: fast().accelerate(torch.zeros(3)), TypeError,
        r"accelerate takes a physics of exactly one of the types .*BlurFFT.*not torch\.Tensor"),
    Bad(ACC, "type", "subclass-upsampling",
        lambda: fast().accelerate(dp().Upsampling((3, 8, 8), filter="bicubic", factor=2)),
        TypeError, r"not deepinv\.physics\.blur\.Upsampling \(subclasses are refused"),
    Bad(ACC, "type", "inplace-int", lambda: fast().accelerate(blur(), inplace=1), TypeError,
        "inplace must be a bool, not int"),
    Good(ACC, "type", "already-accelerated",
         lambda: fast().accelerate(fast().accelerate(blur())).prox_l2(Z, Y, 0.5),
         lambda: blur().prox_l2(Z, Y, 0.5), atol=1e-12),
    # FastBlurFFT: edge inputs, deepinv's original (or its per-image calls) as the oracle
    Good(BLUR, "value", "gamma-per-image-[B]",
         lambda: fast().accelerate(blur()).prox_l2(Z, Y, G2),
         lambda: per_image(blur(), Z, Y, G2), atol=1e-12),
    Good(BLUR, "value", "gamma-huge", lambda: fast().accelerate(blur()).prox_l2(Z, Y, 1e12),
         lambda: blur().prox_l2(Z, Y, 1e12), atol=1e-6),
    Good(BLUR, "value", "gamma-negative-falls-back",
         lambda: fast().accelerate(blur()).prox_l2(Z, Y, -0.5),
         lambda: blur().prox_l2(Z, Y, -0.5), atol=1e-12),
    Good(BLUR, "layout", "non-contiguous-z-y",
         lambda: fast().accelerate(blur()).prox_l2(transposed(Z), transposed(Y), 0.5),
         lambda: blur().prox_l2(transposed(Z).contiguous(), transposed(Y).contiguous(), 0.5),
         atol=1e-12),
    # a normalised 1x1 filter is 1: A = I, prox = (z / gamma + y) / (1 / gamma + 1)
    Good(BLUR, "size", "1x1-image-1x1-filter",
         lambda: fast().accelerate(blur(h=1, w=1, H=1, W=1)).prox_l2(Z11, Y11, 0.5),
         lambda: (Z11 / 0.5 + Y11) / (1 / 0.5 + 1), atol=1e-12),
    Good(BLUR, "size", "odd-size-filter-as-large-as-image",
         lambda: fast().accelerate(blur(h=5, w=7, H=5, W=7)).prox_l2(Z57, Y57, 0.5),
         lambda: blur(h=5, w=7, H=5, W=7).prox_l2(Z57, Y57, 0.5), atol=1e-12),
    Good(BLUR, "mismatch", "per-image-filters-per-image-gamma",
         lambda: fast().accelerate(blur(bk=2)).prox_l2(Z, Y, G2.view(2, 1, 1, 1)),
         lambda: blur(bk=2).prox_l2(Z, Y, G2.view(2, 1, 1, 1)), atol=1e-12),
    Good(BLUR, "mismatch", "per-channel-filter-falls-back",
         lambda: fast().accelerate(per_channel_blur()).prox_l2(Z, Y, 0.5),
         lambda: per_channel_blur().prox_l2(Z, Y, 0.5), atol=1e-12),
    # gray images through a 3-channel physics: deepinv broadcasts them to 3 channels
    Good(BLUR, "mismatch", "gray-images-3-channel-physics",
         lambda: fast().accelerate(blur()).prox_l2(Z[:, :1], Y[:, :1], 0.5),
         lambda: blur().prox_l2(Z[:, :1], Y[:, :1], 0.5), atol=1e-12),
    Good(f"{M}.FastBlurFFT.A_adjoint", "mismatch", "gray-y-3-channel-physics",
         lambda: fast().accelerate(blur()).A_adjoint(Y[:, :1]),
         lambda: blur().A_adjoint(Y[:, :1]), atol=1e-12),
    Good(BLUR, "dtype", "float32-images-float64-filter-falls-back",
         lambda: fast().accelerate(blur()).prox_l2(Z.float(), Y.float(), 0.5),
         lambda: blur().prox_l2(Z.float(), Y.float(), 0.5), atol=1e-6),
    Good(BLUR, "dtype", "float32-gamma-float64-images",
         lambda: fast().accelerate(blur()).prox_l2(Z, Y, torch.tensor(0.3)),
         lambda: blur().prox_l2(Z, Y, torch.tensor(0.3)), atol=1e-12),
    # FastDownsampling
    Good(DOWN, "value", "gamma-per-image-[B]",
         lambda: fast().accelerate(down()).prox_l2(Z, YS, G2),
         lambda: per_image(down(), Z, YS, G2), atol=1e-12),
    Good(DOWN, "layout", "non-contiguous-z",
         lambda: fast().accelerate(down()).prox_l2(transposed(Z), YS, 0.5),
         lambda: down().prox_l2(transposed(Z).contiguous(), YS, 0.5), atol=1e-12),
    Good(DOWN, "size", "factor-equals-image-size",
         lambda: fast().accelerate(down(s=8)).prox_l2(Z, Y[..., :1, :1], 0.5),
         lambda: down(s=8).prox_l2(Z, Y[..., :1, :1], 0.5), atol=1e-12),
    Good(DOWN, "value", "reflect-padding-falls-back",
         lambda: fast().accelerate(down(padding="reflect")).prox_l2(Z, YS, 0.5),
         lambda: down(padding="reflect").prox_l2(Z, YS, 0.5), atol=1e-8),
    # FastInpainting
    Good(INP, "value", "gamma-per-image-[B]",
         lambda: fast().accelerate(inpaint()).prox_l2(Z, Y, G2),
         lambda: per_image(inpaint(), Z, Y, G2), atol=1e-12),
    Good(INP, "value", "soft-mask-falls-back",
         lambda: fast().accelerate(inpaint(soft=True)).prox_l2(Z, Y, 0.5),
         lambda: inpaint(soft=True).prox_l2(Z, Y, 0.5), atol=1e-12),
    Good(INP, "layout", "non-contiguous-z-y",
         lambda: fast().accelerate(inpaint()).prox_l2(transposed(Z), transposed(Y), 0.5),
         lambda: inpaint().prox_l2(transposed(Z).contiguous(), transposed(Y).contiguous(), 0.5),
         atol=1e-12),
    # FastDenoising: the closed form (y + z / gamma) / (1 + 1 / gamma) written here
    Good(DEN, "value", "gamma-per-image-[B]",
         lambda: fast().accelerate(dp().Denoising().to(F64)).prox_l2(Z, Y, G2),
         lambda: (Y + Z / G2.view(2, 1, 1, 1)) / (1 + 1 / G2.view(2, 1, 1, 1)), atol=1e-12),
    Good(DEN, "dtype", "float32-mask-float64-images-falls-back",
         lambda: fast().accelerate(dp().Denoising()).prox_l2(Z, Y, 0.5),
         lambda: (Y + Z / 0.5) / (1 + 1 / 0.5), atol=1e-6),
    # to_pnpfast
    Bad(TO, "type", "upsampling",
        lambda: fast().to_pnpfast(dp().Upsampling((3, 8, 8), filter="bicubic", factor=2)),
        TypeError, r"physics must be exactly one of .*not deepinv\.physics\.blur\.Upsampling"),
    Bad(TO, "type", "a-tensor", lambda: fast().to_pnpfast(torch.zeros(3)), TypeError,
        r"physics must be exactly one of .*not torch\.Tensor"),
    Bad(TO, "value", "per-channel-filter", lambda: fast().to_pnpfast(per_channel_blur()),
        ValueError, r"physics is a deepinv\.physics\.BlurFFT whose filter .* differs between chan"),
    Bad(TO, "value", "no-filter", lambda: fast().to_pnpfast(dp().BlurFFT((3, 8, 8))),
        ValueError, r"physics is a deepinv\.physics\.BlurFFT without a filter"),
    Bad(TO, "value", "reflect-padding", lambda: fast().to_pnpfast(down(padding="reflect")),
        ValueError, r"physics is a deepinv\.physics\.Downsampling with padding='reflect'"),
    Bad(TO, "value", "soft-mask", lambda: fast().to_pnpfast(inpaint(soft=True)), ValueError,
        r"physics is a deepinv\.physics\.Inpainting with a soft mask"),
    Bad(TO, "value", "denoising-mask-2",
        lambda: fast().to_pnpfast(denoising(mask=2.0)),
        ValueError, r"physics is a deepinv\.physics\.Denoising whose mask is not 1"),
    Good(TO, "size", "blur-1x1",
         lambda: fast().to_pnpfast(blur(h=1, w=1, H=1, W=1)).forward(Z[..., :1, :1]),
         lambda: Z[..., :1, :1] * float(kern(h=1, w=1)), atol=1e-12),
    # from_pnpfast
    Bad(FROM, "type", "block-average",
        lambda: fast().from_pnpfast(pnpfast.operators.BlockAverage(2), (3, 8, 8)), TypeError,
        "operator must be a pnpfast Blur, SuperResolution, Inpainting .* not BlockAverage"),
    Bad(FROM, "type", "img-size-string",
        lambda: fast().from_pnpfast(pnpfast.operators.Identity(), "3x8x8"), TypeError,
        r"img_size must be a tuple \(C, H, W\).*not str"),
    Bad(FROM, "rank", "img-size-2", lambda: fast().from_pnpfast(pnpfast.operators.Identity(), (8, 8)),
        ValueError, r"img_size must be deepinv's image size \(C, H, W\), got \(8, 8\)"),
    Bad(FROM, "value", "img-size-zero",
        lambda: fast().from_pnpfast(pnpfast.operators.Identity(), (3, 0, 8)), ValueError,
        r"img_size\[1\] must be an int >= 1"),
    Bad(FROM, "type", "img-size-float",
        lambda: fast().from_pnpfast(pnpfast.operators.Identity(), (3, 8.0, 8)), TypeError,
        r"img_size\[1\] must be an int >= 1"),
    Bad(FROM, "size", "kernel-larger-than-image",
        lambda: fast().from_pnpfast(pnpfast.operators.Blur(kern(h=5, w=5)[0, 0]), (3, 4, 8)),
        ValueError, r"img_size \(3, 4, 8\) is smaller than the kernel 5x5"),
    Bad(FROM, "mismatch", "mask-size",
        lambda: fast().from_pnpfast(pnpfast.operators.Inpainting(torch.ones(8, 8)), (3, 8, 6)),
        ValueError, r"img_size \(3, 8, 6\) does not match the mask's size 8x8"),
    Bad(FROM, "value", "not-divisible",
        lambda: fast().from_pnpfast(pnpfast.operators.SuperResolution(kern()[0, 0], 3), (3, 8, 8)),
        ValueError, r"img_size \(3, 8, 8\) is not divisible by the factor 3"),
    Bad(FROM, "dtype", "float16",
        lambda: fast().from_pnpfast(pnpfast.operators.Identity(), (3, 8, 8), dtype=torch.float16), TypeError,
        r"dtype must be torch\.float32 or torch\.float64, not torch\.float16"),
    Good(FROM, "dtype", "float64-blur",
         lambda: fast().from_pnpfast(pnpfast.operators.Blur(kern()[0, 0]), (3, 8, 8),
                                     dtype=F64).A(Z),
         lambda: blur().A(Z), atol=1e-12),
    Good(FROM, "size", "identity-1x1",
         lambda: fast().from_pnpfast(pnpfast.operators.Identity(), (1, 1, 1)).A(Z[:, :1, :1, :1].float()),
         lambda: Z[:, :1, :1, :1].float(), atol=0),
    # PnpfastDenoiser
    Bad(PD, "type", "not-callable", lambda: fast().PnpfastDenoiser("drunet"), TypeError,
        "denoiser must be callable as D\\(x, sigma\\), not str"),
    Bad(PD, "size", "sigma-noise-map",
        lambda: fast().PnpfastDenoiser(pnpfast.denoisers.GaussianSmoothing())(Z, rand(2, 1, 8, 8)),
        ValueError, r"sigma has shape \(2, 1, 8, 8\).*not a noise map"),
    Bad(PD, "mismatch", "sigma-3-for-batch-2",
        lambda: fast().PnpfastDenoiser(pnpfast.denoisers.GaussianSmoothing())(Z, torch.ones(3)),
        ValueError, r"sigma has shape \(3,\).*tensor of 1 or 2 values"),
    Bad(PD, "type", "sigma-list",
        lambda: fast().PnpfastDenoiser(pnpfast.denoisers.GaussianSmoothing())(Z, [0.1, 0.2]),
        TypeError, "sigma must be a float or a tensor of one level per image, not list"),
    Bad(PD, "dtype", "sigma-complex",
        lambda: fast().PnpfastDenoiser(pnpfast.denoisers.GaussianSmoothing())(
            Z, torch.tensor(0.1j)), TypeError, "sigma must be a real tensor, not torch.complex64"),
    Bad(PD, "type", "x-list",
        lambda: fast().PnpfastDenoiser(pnpfast.denoisers.GaussianSmoothing())([1.0], 0.1),
        TypeError, r"x must be a \[B, C, H, W\] tensor, not list"),
    Bad(PD, "rank", "x-3d",
        lambda: fast().PnpfastDenoiser(pnpfast.denoisers.GaussianSmoothing())(Z[0], 0.1),
        ValueError, r"x must have shape \[B, C, H, W\], got \(3, 8, 8\)"),
    Good(PD, "value", "sigma-[B,1,1,1]-float32",
         lambda: fast().PnpfastDenoiser(pnpfast.denoisers.GaussianSmoothing())(
             Z, G2.float().view(2, 1, 1, 1) / 50),
         lambda: pnpfast.denoisers.GaussianSmoothing()(Z, (G2.float() / 50).double()), atol=0),
    # DeepinvDenoiser
    Bad(DD, "type", "not-callable", lambda: fast().DeepinvDenoiser(3), TypeError,
        r"model must be callable as model\(x, sigma\), not int"),
    Bad(DD, "type", "blind-string", lambda: fast().DeepinvDenoiser(lambda x, s: x, blind="no"),
        TypeError, "blind"),
    Bad(DD, "value", "channels-0", lambda: fast().DeepinvDenoiser(lambda x, s: x, channels=0),
        ValueError, r"channels must be an int >= 1"),
    Bad(DD, "value", "sigma-negative",
        lambda: fast().DeepinvDenoiser(lambda x, s: x)(Z, -0.1), ValueError, "sigma must be >= 0"),
    Bad(DD, "nan-inf", "sigma-nan",
        lambda: fast().DeepinvDenoiser(lambda x, s: x)(Z, float("nan")), ValueError,
        "sigma must be finite"),
    Bad(DD, "mismatch", "channels",
        lambda: fast().DeepinvDenoiser(lambda x, s: x, channels=1)(Z, 0.1), ValueError,
        "x has 3 channels but this denoiser takes 1"),
    Bad(DD, "meta", "x-meta",
        lambda: fast().DeepinvDenoiser(lambda x, s: x)(torch.empty(1, 3, 4, 4, device="meta"), 0.1),
        ValueError, "x is on the meta device"),
    Good(DD, "value", "sigma-per-image-reaches-model-as-[B]",
         lambda: fast().DeepinvDenoiser(lambda x, s: x * s.view(-1, 1, 1, 1))(Z, G2),
         lambda: Z * G2.view(2, 1, 1, 1), atol=0),
]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _need_deepinv():
    deepinv, why = _deepinv()
    if deepinv is None:
        pytest.skip(why)


@params(CASES)
def test_fuzz(case):
    check(case)
