"""Benchmark of pnpfast.functional against the steps of the codebases it replaces (op
``functional``): what a user of DPIR/KAIR, GS-PnP, Prox-PnP or Kadkhodaie & Simoncelli's sampler
gains by swapping in the functional API, timed the way their loops call the step.

Every ``<problem>/original`` provider is the peers' mathematics written here with torch's complex
FFTs (our code: their step, their argument conventions, their order of operations; the legacy
``torch.rfft(onesided=False)`` layout of the original code is replaced by ``torch.fft.fft2``,
which torch 2 requires); every ``<problem>/accelerated`` provider is the pnpfast.functional call
that replaces it. Each provider's output is checked against ``<problem>/original`` before timing
(max |out - ref| <= 1e-4 max |ref|); the calls of one problem are timed interleaved
(``harness.time_checked`` / ``measure_many``), median and p20/p80. ``report.py`` shows the
speed-up of ``<problem>/accelerated`` against ``<problem>/original``; the script prints every
ratio. Default: 8x3x256x256 float32 (the sampler 8x3x64x64), run with ``--threads 1`` on the
CPU for the committed rows.

Problems (``--problems``, default all; y = S_sf(k * x) + noise, circular convolution, k with its
tap (h // 2, w // 2) at the origin, S_sf keeps the top-left pixel of each sf x sf block):

    dpir-deblur       sf = 1, k = pnpfast.data.motion_kernel() (15x15 at 30 degrees): one DPIR
                      data step z = (A^T A + alpha I)^-1 (A^T y + alpha x), alpha a [1, 1, 1, 1]
                      tensor (DPIR: ``rhos[i].float().repeat(1, 1, 1, 1)``; its schedule is the
                      same for every image, so the batch of 8 goes through in one call).
        original            DPIR/KAIR ``data_solution(x, FB, FBC, F2B, FBFy, alpha, sf)`` with
                            sf = 1, as their deblurring loop calls it: FR = FBFy + fft2(alpha x),
                            the mean of FB FR over the sf x sf blocks of the spectrum (their
                            ``splits``), invWBR = FBR / (mean F2B + alpha), FX = (FR - FBC
                            invWBR.repeat(1, 1, sf, sf)) / alpha, real(ifft2(FX)); F2B complex
                            (their ``r2c(cabs2(FB))``)
        original-sf1-form   the sf = 1 simplification a careful user would write instead:
                            real(ifft2((FBFy + fft2(alpha x)) / (F2B + alpha))), F2B real
        accelerated         functional.data_solution(x, FB, FBC, F2B, FBFy, alpha, 1) on
                            functional.pre_calculate's spectra (rfft2, the fused fft_prox
                            pass, irfft2)
    dpir-sr           sf = 2, k = SuperResolution.bicubic(2)'s 9x9 kernel: the same step
        original            their data_solution with sf = 2 (Zhao et al.'s block form)
        accelerated         functional.data_solution(..., 2) (fft2, the fused sr_prox pass,
                            irfft2 of the half spectrum)
    dpir-deblur-loop, dpir-sr-loop   DPIR's whole loop around the data step, ``--loop-iters``
                      iterations (default 8) with an identity denoiser (the time that is not
                      the denoiser's): x_0 = y (deblurring) or bicubic upsampling of y (SR,
                      torch's interpolate, the same call for both), the spectra computed once
                      per restoration (their ``pre_calculate`` / functional.pre_calculate),
                      then per iteration i the data step with alpha = rho_i, DPIR's schedule
                      rho_i = 0.23 sigma_n^2 / sigma_i^2, sigma_i log-spaced from 49/255 to
                      sigma_n = 7.65/255
        original            their p2o, pre_calculate and data_solution
        accelerated         functional.pre_calculate and functional.data_solution
    gspnp-prox        sf = 1, motion kernel: GS-PnP's ``prox_solution_L2(x, FB, FBC, F2B, FBFy,
                      stepsize, sf)`` with a stepsize per image (its backtracking adapts the
                      step of each image on its own), stepsizes 0.5-2
        original            their function once per image, as their code runs (one image, a
                            Python float stepsize turned into alpha = torch.tensor([1 /
                            stepsize]).repeat(1, 1, 1, 1)), the results concatenated
        original-batched    their formula once on the batch with alpha = 1 / stepsize as a
                            [B, 1, 1, 1] tensor (what a user would write to batch it)
        accelerated         functional.prox_solution_L2(..., stepsize [B], 1)
    proxpnp-grad, proxpnp-grad-sr    Prox-PnP's ``grad_solution(x, FB, FBC, F2B, FBFy, sf)``,
                      the gradient A^T (A x - y) of its data term, sf = 1 (motion kernel) and
                      sf = 2 (bicubic kernel)
        original            their four FFTs: FB fft2(x), real ifft2, downsample, upsample,
                            FBC fft2(.) - FBFy, real ifft2
        accelerated         functional.grad_solution (= data_grad): rfft2, the fused fft_grad
                            pass, irfft2 for sf = 1; fft2, the alias mean, irfft2 for sf > 1
    sampler           Kadkhodaie & Simoncelli's ``univ_inv_sol`` (Algorithm 2) on random-pixel
                      inpainting (30% of the pixels kept per image, the same mask for the 3
                      channels; M_T(x) = M(x) = mask x, their inpainting task), shape
                      ``--sampler-shape`` (default 8x3x64x64), a cheap fixed "network": the
                      residual of a 3x3 box filter, model(y) = y - box3x3(y) (a depthwise
                      conv2d, zero padding), the same callable for every provider; sig_0 = 1, h0 = 0.01, ``--sampler-iters``
                      iterations (default 30; sig_L = 1e-6 is not reached, so every image runs
                      them all); freq = 0 (no prints, no intermediate list)
        original            their loop, one image at a time as their code runs: the first
                            model call, then per step h_t = h0 t / (1 + h0 (t - 1)),
                            d = f - M(M_T(f)) + M(M_T(y)) - M(x_c), sigma = ||d|| / sqrt(N),
                            gamma = sigma sqrt((1 - beta h)^2 - (1 - h)^2), y = y - h d + gamma
                            randn, the host test sigma > sig_L, and y - model(y) at the end
        original-batched    the same loop written once on the batch (per-image norms and
                            gammas)
        accelerated         functional.constrained_sample(model, x_c, M_T, M, sig_0, sig_L, h0,
                            beta, seed=0, max_iter=iters) (one fused constrained step per
                            iteration)
        network             the iters + 1 network calls alone (on a fixed y, checked against
                            one call): subtracted from the medians for the printed ratios
                            "without the network"
                      Checked with beta = 1 (no noise after the start; the start's noise is the
                      same draw for every provider), timed with their default beta = 0.01.

Memory on the CPU (``--malloc``, default ``steady``): glibc is told to serve every allocation
up to 32 MiB from its heap and never to trim it (``steady_malloc``), so that a provider's time
does not depend on which one ran before it in the interleaved order; ``--malloc default`` keeps
glibc's own policy (large blocks mapped afresh, a page fault per 4 KiB on first touch), which
slows the original formulas, whose temporaries are full complex spectra, more than the
accelerated calls. The rows' note says which.

Bytes moved (per call, from benchmarks/perf_model.py where a model exists; e = 4 bytes, N =
B C H W, each FFT counted as one pass, the same count given to every provider of a problem, so
``original``'s GB/s is an effective rate on the traffic of pnpfast's sequence):
    dpir-deblur, gspnp-prox   prox_l2_fft_traffic (rfft2, fft_prox pass, irfft2: about 7 N e
                              plus |K^|^2 and alpha)
    dpir-sr                   prox_l2_sr_traffic, factor 2 (about 11 N e plus K^, its alias mean
                              and alpha)
    proxpnp-grad              prox_l2_fft_traffic with the fft_grad pass in place of fft_prox's
                              (one more per-image scalar)
    proxpnp-grad-sr, the loops, sampler   no whole-call model, bytes left empty: the grad at
                              sf > 1 is torch ops around the FFTs (at least fft2, the alias
                              mean and real_ifft2, about 8 N e); a loop moves --loop-iters data
                              steps (at 8x3x256x256, 8 x 44.4 = 355 MB for sf = 1, 8 x 69.8 =
                              559 MB for sf = 2) plus pre_calculate; the sampler moves per
                              iteration perf_model's constrained_step "mask" form (2.5 MB at
                              8x3x64x64) plus the network's reads and writes

Targets: none set by issue 20 for this script. pnpfast.functional's module docstring quotes,
from helper runs on this CPU, 2.7-4.7x (sf = 1) and 1.5-3.6x (sf = 2) for the data step against
DPIR's formula under glibc's default allocator; the dpir-deblur and dpir-sr rows measure the
same comparison, and their note says which allocator ran.
"""

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from harness import (
    check_close,
    check_known,
    common_parser,
    copy_bandwidth,
    correct_median,
    glibc_mallopt,
    measure_many,
    parse_common,
    parse_list,
    parse_shapes,
    report_rows,
    time_checked,
    timing_rows,
)
from perf_model import (
    H200,
    fft_grad_traffic,
    fft_prox_traffic,
    prox_l2_fft_traffic,
    prox_l2_sr_traffic,
)

from pnpfast import functional
from pnpfast.data import motion_kernel
from pnpfast.operators.super_resolution import bicubic_kernel

OP = "functional"
DEFAULT_SHAPES = "8x3x256x256"
QUICK_SHAPES = "2x3x32x32"
DEFAULT_SAMPLER_SHAPE = "8x3x64x64"
QUICK_SAMPLER_SHAPE = "2x3x16x16"
RTOL = 1e-4
SIGMA_N = 7.65 / 255  # DPIR's schedule: the noise level of y
LAM = 0.23  # DPIR's lambda
SIG_L = 1e-6  # below what the sampler reaches in --sampler-iters steps: a fixed count
KEEP = 0.3  # fraction of the pixels the inpainting mask keeps

PROBLEMS = {
    "dpir-deblur": ("original", "original-sf1-form", "accelerated"),
    "dpir-sr": ("original", "accelerated"),
    "dpir-deblur-loop": ("original", "accelerated"),
    "dpir-sr-loop": ("original", "accelerated"),
    "gspnp-prox": ("original", "original-batched", "accelerated"),
    "proxpnp-grad": ("original", "accelerated"),
    "proxpnp-grad-sr": ("original", "accelerated"),
    "sampler": ("original", "original-batched", "accelerated", "network"),
}
PROVIDERS = tuple(f"{p}/{v}" for p, variants in PROBLEMS.items() for v in variants)
SF = {"dpir-sr": 2, "dpir-sr-loop": 2, "proxpnp-grad-sr": 2}


# -- the peers' steps, written here with torch 2's complex FFTs -----------------------------


def their_p2o(psf: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Their PSF-to-OTF: zero-pad [N, C, h, w] to shape, roll the centre tap (h // 2, w // 2)
    to the origin, fft2, zero imaginary parts below their roundoff bound."""
    otf = psf.new_zeros(psf.shape[:-2] + tuple(shape))
    otf[..., : psf.shape[2], : psf.shape[3]].copy_(psf)
    for axis, size in enumerate(psf.shape[2:]):
        otf = torch.roll(otf, -(size // 2), dims=axis + 2)
    otf = torch.fft.fft2(otf)
    dims = torch.tensor(psf.shape, dtype=psf.dtype)
    n_ops = torch.sum(dims * torch.log2(dims))
    imag = torch.where(otf.imag.abs() < n_ops * 2.22e-16, 0.0, otf.imag)
    return torch.complex(otf.real, imag)


def their_upsample(x: torch.Tensor, sf: int) -> torch.Tensor:
    z = x.new_zeros(x.shape[0], x.shape[1], x.shape[2] * sf, x.shape[3] * sf)
    z[..., ::sf, ::sf].copy_(x)
    return z


def their_pre_calculate(y: torch.Tensor, k: torch.Tensor, sf: int):
    """FB, FBC, F2B (complex, zero imaginary part: their r2c(cabs2(FB))), FBFy for [N, 1, h, w]
    kernels k."""
    H, W = y.shape[-2] * sf, y.shape[-1] * sf
    FB = their_p2o(k, (H, W))
    FBC = FB.conj().resolve_conj()
    F2B = (FB.real.square() + FB.imag.square()).to(FB.dtype)
    FBFy = FBC * torch.fft.fft2(their_upsample(y, sf))
    return FB, FBC, F2B, FBFy


def their_block_mean(a: torch.Tensor, sf: int) -> torch.Tensor:
    """Their ``splits`` (the sf x sf distinct blocks of the spectrum stacked on a last axis)
    followed by the mean over that axis: [N, C, H, W] -> [N, C, H / sf, W / sf]."""
    b = torch.stack(torch.chunk(a, sf, dim=2), dim=4)
    b = torch.cat(torch.chunk(b, sf, dim=3), dim=4)
    return torch.mean(b, dim=-1)


def their_data_solution(x, FB, FBC, F2B, FBFy, alpha, sf: int) -> torch.Tensor:
    """DPIR/KAIR data_solution (= Prox-PnP prox_solution): alpha a [N, 1, 1, 1] tensor."""
    FR = FBFy + torch.fft.fft2(alpha * x)
    x1 = FB * FR
    FBR = their_block_mean(x1, sf)
    invW = their_block_mean(F2B, sf)
    invWBR = FBR / (invW + alpha)
    FCBinvWBR = FBC * invWBR.repeat(1, 1, sf, sf)
    FX = (FR - FCBinvWBR) / alpha
    return torch.real(torch.fft.ifft2(FX))


def sf1_form(x, F2B_real, FBFy, alpha) -> torch.Tensor:
    """The sf = 1 closed form without the block machinery."""
    return torch.real(torch.fft.ifft2((FBFy + torch.fft.fft2(alpha * x)) / (F2B_real + alpha)))


def their_prox_solution_L2(x, FB, FBC, F2B, FBFy, stepsize: float, sf: int) -> torch.Tensor:
    """GS-PnP prox_solution_L2: a Python float stepsize, alpha = 1 / stepsize as [1, 1, 1, 1]
    (their caller takes the real part of the inverse FFT; taken here)."""
    alpha = torch.tensor([1 / stepsize], dtype=x.dtype).repeat(1, 1, 1, 1).to(x.device)
    return their_data_solution(x, FB, FBC, F2B, FBFy, alpha, sf)


def their_grad_solution(x, FB, FBC, F2B, FBFy, sf: int) -> torch.Tensor:
    """Prox-PnP grad_solution: A^T A x - A^T y with four FFTs."""
    FBFx = FB * torch.fft.fft2(x)
    AFx = torch.real(torch.fft.ifft2(FBFx))[..., ::sf, ::sf]
    STAFx = their_upsample(AFx, sf)
    FX = FBC * torch.fft.fft2(STAFx) - FBFy
    return torch.real(torch.fft.ifft2(FX))


def dpir_rhos(iters: int, dtype: torch.dtype) -> torch.Tensor:
    """DPIR's rho schedule: rho_i = lambda sigma_n^2 / sigma_i^2, sigma_i log-spaced from
    49/255 down to sigma_n."""
    sigmas = torch.logspace(math.log10(49 / 255), math.log10(SIGMA_N), iters, dtype=torch.float64)
    return (LAM * SIGMA_N**2 / sigmas**2).to(dtype)


def box_residual(y: torch.Tensor) -> torch.Tensor:
    """The stand-in network: the residual of a 3x3 box filter (zero padding), a depthwise
    convolution as a network's layer runs it."""
    C = y.shape[1]
    return y - nnf.conv2d(y, y.new_full((C, 1, 3, 3), 1 / 9), padding=1, groups=C)


def their_sampler_one(model, x_c, mask, start_noise, sig_0, sig_L, h0, beta, iters, gen):
    """univ_inv_sol on one (C, H, W) measurement, freq = 0, at most ``iters`` steps."""

    def M_T(v):
        return v * mask

    M = M_T
    lifted = M(x_c)
    C, H, W = lifted.shape
    N = C * H * W
    e = torch.ones_like(lifted)
    y = ((e - M(M_T(e))) * 0.5 + lifted + sig_0 * start_noise).unsqueeze(0)
    f_y = model(y)
    sigma = torch.norm(f_y) / math.sqrt(N)
    t = 1
    while sigma > sig_L and t <= iters:
        h = h0 * t / (1 + h0 * (t - 1))
        f_y = model(y)
        d = f_y - M(M_T(f_y[0])) + (M(M_T(y[0])) - lifted)
        sigma = torch.norm(d) / math.sqrt(N)
        gamma = sigma * math.sqrt((1 - beta * h) ** 2 - (1 - h) ** 2)
        noise = torch.randn(C, H, W, generator=gen, dtype=y.dtype).to(y.device)
        y = y - h * d + gamma * noise
        t += 1
    return (y - model(y)).squeeze(0)


def their_sampler(model, x_c, mask, start_noise, sig_0, sig_L, h0, beta, iters, seed=1):
    """Their per-image loop over a batch."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        outs = [
            their_sampler_one(
                model, x_c[b], mask[b], start_noise[b], sig_0, sig_L, h0, beta, iters, gen
            )
            for b in range(x_c.shape[0])
        ]
    return torch.stack(outs)


def their_sampler_batched(model, x_c, mask, start_noise, sig_0, sig_L, h0, beta, iters, seed=1):
    """Their loop written once on the batch: per-image norms and gammas, one randn per step."""
    gen = torch.Generator().manual_seed(seed)
    B = x_c.shape[0]
    lifted = x_c * mask
    N = lifted[0].numel()
    e = torch.ones_like(lifted)
    with torch.no_grad():
        y = (e - e * mask) * 0.5 + lifted + sig_0 * start_noise
        sigma = torch.linalg.vector_norm(model(y).reshape(B, -1), dim=1) / math.sqrt(N)
        t = 1
        while bool((sigma > sig_L).any()) and t <= iters:
            h = h0 * t / (1 + h0 * (t - 1))
            f_y = model(y)
            d = f_y - f_y * mask + (y * mask - lifted)
            sigma = torch.linalg.vector_norm(d.reshape(B, -1), dim=1) / math.sqrt(N)
            gamma = sigma * math.sqrt((1 - beta * h) ** 2 - (1 - h) ** 2)
            noise = torch.randn(y.shape, generator=gen, dtype=y.dtype).to(y.device)
            y = y - h * d + gamma.view(B, 1, 1, 1) * noise
            t += 1
        return y - model(y)


# -- inputs ----------------------------------------------------------------------------------


@dataclass
class Inputs:
    sf: int
    k: torch.Tensor  # [1, 1, kh, kw]
    y: torch.Tensor  # [B, C, H / sf, W / sf]
    x: torch.Tensor  # [B, C, H, W], the current iterate
    theirs: tuple  # their FB, FBC, F2B (complex), FBFy
    ours: tuple  # functional.pre_calculate's FB, FBC, F2B (real), FBFy
    stepsize: torch.Tensor  # [B] float64 in [0.5, 2]


def setup(shape: tuple[int, ...], sf: int, dtype: torch.dtype, device: str, seed: int = 0):
    """Seeded inputs: y = S(k * x0) + noise from a uniform random x0, an iterate x, per-image
    stepsizes, and both sets of spectra (theirs and functional.pre_calculate's)."""
    B, C, H, W = shape
    gen = torch.Generator().manual_seed(seed)
    k = motion_kernel() if sf == 1 else bicubic_kernel(sf)
    k = k.to(dtype).view(1, 1, *k.shape[-2:])
    x0 = torch.rand(shape, generator=gen, dtype=dtype)
    Kx = torch.fft.ifft2(their_p2o(k, (H, W)) * torch.fft.fft2(x0)).real
    y = Kx[..., ::sf, ::sf] + SIGMA_N * torch.randn(
        B, C, H // sf, W // sf, generator=gen, dtype=dtype
    )
    x = torch.rand(shape, generator=gen, dtype=dtype)
    stepsize = 0.5 * 4.0 ** torch.rand(B, generator=gen, dtype=torch.float64)
    k, y, x = (t.to(device) for t in (k, y, x))
    theirs = their_pre_calculate(y, k, sf)
    ours = functional.pre_calculate(y, k, sf)
    return Inputs(sf, k, y, x, theirs, ours, stepsize)


def nbytes_for(problem: str, shape: tuple[int, ...], elem: int) -> int | None:
    """Bytes moved by one call (module docstring), from benchmarks/perf_model.py."""
    if problem in ("dpir-deblur", "gspnp-prox"):
        return prox_l2_fft_traffic(shape, elem, "triton", H200).bytes
    if problem == "dpir-sr":
        return prox_l2_sr_traffic(shape, elem, "triton", H200, factor=2).bytes
    if problem == "proxpnp-grad":
        whole = prox_l2_fft_traffic(shape, elem, "triton", H200).bytes
        return (
            whole
            - fft_prox_traffic(shape, elem, "triton", H200).bytes
            + fft_grad_traffic(shape, elem, "triton", H200).bytes
        )
    return None


def step_provider(
    problem: str, variant: str, inp: Inputs, loop_iters: int
) -> Callable[[], torch.Tensor]:
    """The call timed for a provider of one of the FFT problems."""
    x, sf = inp.x, inp.sf
    FB, FBC, F2Bc, FBFy = inp.theirs
    oFB, oFBC, oF2B, oFBFy = inp.ours
    alpha = dpir_rhos(8, x.dtype)[2].repeat(1, 1, 1, 1).to(x.device)  # iteration 3 of DPIR's 8
    if problem in ("dpir-deblur", "dpir-sr"):
        if variant == "original":
            return lambda: their_data_solution(x, FB, FBC, F2Bc, FBFy, alpha, sf)
        if variant == "original-sf1-form":
            F2B_real = F2Bc.real.contiguous()
            return lambda: sf1_form(x, F2B_real, FBFy, alpha)
        return lambda: functional.data_solution(x, oFB, oFBC, oF2B, oFBFy, alpha, sf)
    if problem in ("dpir-deblur-loop", "dpir-sr-loop"):
        y, k = inp.y, inp.k
        rhos = [r.repeat(1, 1, 1, 1).to(x.device) for r in dpir_rhos(loop_iters, x.dtype)]
        pre, step = (
            (their_pre_calculate, their_data_solution)
            if variant == "original"
            else (functional.pre_calculate, functional.data_solution)
        )

        def loop() -> torch.Tensor:
            if sf == 1:
                z = y
            else:
                z = nnf.interpolate(y, scale_factor=sf, mode="bicubic", align_corners=False)
            spectra = pre(y, k, sf)
            for rho in rhos:
                z = step(z, *spectra, rho, sf)
                # the denoiser (identity here) would run on z
            return z

        return loop
    if problem == "gspnp-prox":
        steps = inp.stepsize.tolist()
        if variant == "original":

            def per_image() -> torch.Tensor:
                return torch.cat(
                    [
                        their_prox_solution_L2(x[b : b + 1], FB, FBC, F2Bc, FBFy[b : b + 1], s, sf)
                        for b, s in enumerate(steps)
                    ]
                )

            return per_image
        if variant == "original-batched":
            alpha_b = (1 / inp.stepsize).to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
            return lambda: their_data_solution(x, FB, FBC, F2Bc, FBFy, alpha_b, sf)
        tau = inp.stepsize.to(device=x.device, dtype=x.dtype)
        return lambda: functional.prox_solution_L2(x, oFB, oFBC, oF2B, oFBFy, tau, sf)
    if problem in ("proxpnp-grad", "proxpnp-grad-sr"):
        if variant == "original":
            return lambda: their_grad_solution(x, FB, FBC, F2Bc, FBFy, sf)
        return lambda: functional.grad_solution(x, oFB, oFBC, oF2B, oFBFy, sf)
    raise ValueError(f"unknown problem {problem!r}")


def rows_for(problem, shape, dtype, device, timings, checks, notes, extra: str) -> list[dict]:
    elem = torch.empty((), dtype=dtype).element_size()
    return timing_rows(
        OP, timings, checks, notes, shape=shape, dtype=dtype, device=device,
        nbytes=nbytes_for(problem, shape, elem), extra_notes=(extra,),
    )  # fmt: skip


def run_step_problem(problem, shape, dtype, device, providers, *, warmup, reps, loop_iters):
    sf = SF.get(problem, 1)
    inp = setup(shape, sf, dtype, device)
    original = step_provider(problem, "original", inp, loop_iters)
    expected = original()

    def make(name: str):
        variant = name.split("/", 1)[1]
        fn = original if variant == "original" else step_provider(problem, variant, inp, loop_iters)
        return fn, expected, ""

    timings, checks, notes = time_checked(
        providers, make, RTOL, device=device, warmup=warmup, reps=reps
    )
    kernel = "motion 15x15" if sf == 1 else f"bicubic {tuple(inp.k.shape[-2:])}"
    extra = f"sf {sf}, {kernel}"
    if problem.endswith("-loop"):
        extra += f", {loop_iters} iterations, identity denoiser"
    return rows_for(problem, shape, dtype, device, timings, checks, notes, extra)


def sampler_inputs(shape, dtype, device, seed: int = 0):
    B, C, H, W = shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=gen, dtype=dtype)
    mask = (torch.rand(B, 1, H, W, generator=gen) < KEEP).to(dtype).expand(B, C, H, W)
    mask = mask.contiguous().to(device)
    x_c = x.to(device) * mask
    # constrained_sample's start noise with seed=0 (torch.randn from Generator().manual_seed(0)
    # of the images' shape), reused by the written-out loops so that all start alike
    start_gen = torch.Generator(device=device).manual_seed(0)
    start = torch.randn(shape, generator=start_gen, device=device, dtype=dtype)
    return x_c, mask, start


def sampler_fns(variant, x_c, mask, start, beta, iters) -> Callable[[], torch.Tensor]:
    args = (box_residual, x_c, mask, start, 1.0, SIG_L, 0.01, beta, iters)
    if variant == "original":
        return lambda: their_sampler(*args)
    if variant == "original-batched":
        return lambda: their_sampler_batched(*args)
    if variant == "network":
        y = start + x_c

        def network() -> torch.Tensor:
            for _ in range(iters + 1):
                r = box_residual(y)
            return r

        return network

    def M_T(v):
        return v * mask

    def accelerated() -> torch.Tensor:
        return functional.constrained_sample(
            box_residual, x_c, M_T, M_T, 1.0, SIG_L, 0.01, beta, seed=0, max_iter=iters
        )

    return accelerated


def run_sampler(shape, dtype, device, providers, *, warmup, reps, iters):
    """Check every provider against the original with beta = 1, then time them with beta =
    0.01, interleaved."""
    x_c, mask, start = sampler_inputs(shape, dtype, device)
    expected = sampler_fns("original", x_c, mask, start, 1.0, iters)()
    fns, checks, notes = {}, {}, {}
    for name in providers:
        variant = name.split("/", 1)[1]
        if variant == "network":
            fn = sampler_fns(variant, x_c, mask, start, 1.0, iters)
            correct, _ = check_close(fn(), box_residual(start + x_c), RTOL)
            checks[name], notes[name] = correct, f"the {iters + 1} network calls alone"
            fns[name] = fn
            continue
        out = sampler_fns(variant, x_c, mask, start, 1.0, iters)()
        correct, err = check_close(out, expected, RTOL)
        notes[name] = "" if correct else f"output differs from the original: max rel err {err:.2e}"
        checks[name] = correct
        fns[name] = sampler_fns(variant, x_c, mask, start, 0.01, iters)
    timings = measure_many(fns, warmup=warmup, reps=reps, device=device, flush_l2=True)
    extra = (
        f"{iters} iterations, beta 0.01 (checked at beta 1), inpainting {KEEP:.0%} kept, "
        "3x3 box residual network"
    )
    return rows_for("sampler", shape, dtype, device, timings, checks, notes, extra)


def ratio_lines(problem: str, rows: list[dict]) -> list[str]:
    """accelerated against every other provider of the problem: the ratio of the medians, and
    for the sampler also of the times without the network's calls (median minus the median of
    ``sampler/network``)."""
    acc = correct_median(rows, f"{problem}/accelerated")
    net = correct_median(rows, f"{problem}/network")
    lines = []
    for r in rows:
        if r["provider"] in (f"{problem}/accelerated", f"{problem}/network"):
            continue
        other = correct_median(rows, r["provider"])
        if not (acc and other):
            lines.append(f"{problem}: no speed-up claimed against {r['provider']} (incorrect)")
            continue
        ratio = other / acc
        slower = " (slower)" if ratio < 1 else ""
        line = f"{problem}/accelerated vs {r['provider']}: {ratio:.2f}x speed-up{slower}"
        if net and acc > net and other > net:
            line += f"; without the network: {(other - net) / (acc - net):.2f}x"
        lines.append(line)
    return lines


def steady_malloc() -> str:
    """Make glibc serve every allocation up to 32 MiB (its largest mmap threshold) from the heap
    and never give heap memory back, so that the CPU timings do not depend on which provider
    ran before: by default glibc maps each large block afresh (a page fault per 4 KiB on first
    touch) and, in interleaved runs, the per-image providers' many smaller blocks change when it
    does (measured: GS-PnP's batched formula took 60-73 ms right after the per-image one, 31 ms
    alone, 23 ms with this). Returns a note for the rows ("" where glibc is not there)."""
    ok = glibc_mallopt(32 * 2**20, 2**30)
    return "glibc malloc: no mmap, no trim" if ok else ""


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.splitlines()[0], default_shapes=DEFAULT_SHAPES, name=OP)
    parser.add_argument(
        "--problems",
        default=",".join(PROBLEMS),
        help=f"comma-separated problems (default all: {', '.join(PROBLEMS)})",
    )
    parser.add_argument(
        "--sampler-shape",
        default=None,
        help=f"BxCxHxW of the sampler (default {DEFAULT_SAMPLER_SHAPE}; "
        f"{QUICK_SAMPLER_SHAPE} with --quick)",
    )
    parser.add_argument("--sampler-iters", type=int, default=None, help="default 30 (3 quick)")
    parser.add_argument("--loop-iters", type=int, default=8, help="DPIR loop iterations")
    parser.add_argument(
        "--malloc",
        choices=("steady", "default"),
        default="steady",
        help="CPU: glibc's heap without mmap and trimming (steady, default; see steady_malloc) "
        "or as the process starts",
    )
    args, providers, reps, warmup = parse_common(parser, argv, PROVIDERS)
    problems = parse_list(args.problems)
    check_known(parser, "problems", problems, PROBLEMS)
    if args.loop_iters < 1:
        parser.error(f"--loop-iters must be >= 1, got {args.loop_iters}")
    shapes = args.shapes
    if args.quick and shapes == parse_shapes(DEFAULT_SHAPES):
        shapes = parse_shapes(QUICK_SHAPES)
    default_sampler = QUICK_SAMPLER_SHAPE if args.quick else DEFAULT_SAMPLER_SHAPE
    sampler_shape = parse_shapes(args.sampler_shape or default_sampler)[0]
    iters = args.sampler_iters or (3 if args.quick else 30)
    if iters < 1:
        parser.error(f"--sampler-iters must be >= 1, got {iters}")
    for shape in [*shapes, sampler_shape]:
        if len(shape) != 4 or shape[2] % 2 or shape[3] % 2 or min(shape[2:]) < 16:
            parser.error(f"shape {'x'.join(map(str, shape))} is not BxCxHxW, H, W even, >= 16")
    device, dtype = args.device, torch.float32
    malloc_note = ""
    if torch.device(device).type == "cpu" and args.malloc == "steady":
        malloc_note = steady_malloc()
    bw = copy_bandwidth(device)
    print(f"{OP} on {device}: copy bandwidth {bw:.1f} GB/s, {reps} reps after {warmup} warmup")
    for problem in problems:
        chosen = [p for p in providers if p.startswith(f"{problem}/")]
        if not chosen:
            continue
        if problem == "sampler":
            runs = [
                run_sampler(
                    sampler_shape, dtype, device, chosen, warmup=warmup, reps=reps, iters=iters
                )
            ]
        else:
            runs = [
                run_step_problem(
                    problem,
                    shape,
                    dtype,
                    device,
                    chosen,
                    warmup=warmup,
                    reps=reps,
                    loop_iters=args.loop_iters,
                )
                for shape in shapes
            ]
        for rows in runs:
            for r in rows:
                r["note"] = "; ".join(n for n in (r["note"], malloc_note) if n)
            report_rows(args.out, rows, problem, ratio_lines(problem, rows))
    print(f"\nrows appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
