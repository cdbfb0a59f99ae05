"""Sampling from the prior implicit in a blind denoiser, and its constrained form for linear
inverse problems: Kadkhodaie & Simoncelli, "Solving linear inverse problems using the prior
implicit in a denoiser", NeurIPS 2021 (Algorithms 1 and 2).

A blind least-squares denoiser's residual f(y) = D(y) - y is, by Miyasawa's result,
sigma^2 grad log p_sigma(y): a step along it is a step of gradient ascent on the log density of
the noisy images. The sampler climbs it coarse to fine, injecting fresh noise to stay a sampler:

    y_0 ~ N(0.5, sigma_0^2 I)                            (Algorithm 1)
    for t = 1, 2, ... while sigma_{t-1} >= sigma_L:
        h_t = h_0 t / (1 + h_0 (t - 1))
        d_t = f(y_{t-1})
        sigma_t^2 = ||d_t||^2 / N                         (N = C H W: the effective noise level)
        gamma_t^2 = ((1 - beta h_t)^2 - (1 - h_t)^2) sigma_t^2
        y_t = y_{t-1} + h_t d_t + gamma_t z_t,   z_t ~ N(0, I)

sigma_t, from the residual of y_{t-1}, estimates the noise level of y_{t-1}, and the noise
level of y_t is (1 - beta h_t) sigma_t (beta in (0, 1]: the fraction of the step's noise
reduction kept; beta = 1 adds no noise). Algorithm 2 samples
the images consistent with linear measurements x_c = M^T x (M of orthonormal columns, an
``OrthonormalOperator``; P = M M^T): the step moves the unmeasured part along the denoiser and
pulls the measured part onto the measurement,

    d_t = (I - P) f(y_{t-1}) + M (x_c - M^T y_{t-1}) = f - P (f + y_{t-1}) + M x_c

(one projection of f + y), starting from y_0 = M x_c + (I - P) 0.5 + N(0, sigma_0^2 I).

Every image of the batch (and every realisation of a measurement) carries its own t, h_t and
sigma_t, and stops on its own when its sigma_t drops under sigma_L (it is frozen from then on,
its last update applied). The loop is the solvers' engine (``pnpfast.solvers.engine``), with
``ImplicitPrior`` as the method: its stopping measure is sigma_t and its level sigma_L, and the
engine reads the device only every ``check_every`` iterations, to leave once every image has
stopped and to raise on a NaN or Inf sigma_t naming the images. Every 256 iterations (where
the engine reads the device anyway) the sampler checks that each running image's sigma_t still
falls as its schedule predicts; one that has stopped falling above sigma_L (a sigma_L below
what the denoiser reaches: about 2e-4 to 2e-3 for the shipped blind network on small gray
images) is a ValueError naming the images, the sigma_t reached and a sigma_L to use, instead
of thousands of iterations that end in divergence. ``max_iter`` caps the loop (an image still
above sigma_L then has ``converged`` False).

Defaults: those of the paper's inverse problems, sigma_0 = 1, sigma_L = 0.01, h_0 = 0.01,
beta = 0.01. The denoiser is called as D(y, sigma) with sigma the current [B] estimate sigma_t
(sigma_0 at first): a blind network ignores it, a noise-map network reads it. The result is the
last iterate y_T (noise level about sigma_L).
"""

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pnpfast import _validate
from pnpfast.operators.orthonormal import OrthonormalOperator
from pnpfast.ops.constrained_step import constrained_step
from pnpfast.profiling import nvtx_range
from pnpfast.solvers.engine import (
    IterationInfo,
    Problem,
    Result,
    check_max_iter,
    check_run_options,
    run,
)

PerImage = float | torch.Tensor


@dataclass
class ImplicitPriorParams:
    """sigma_0: the initial noise level (> 0); sigma_L: the final one, the stopping level (> 0);
    h0: the first step h_1 (in (0, 1]); beta: the noise injection parameter (in (0, 1]);
    floats or length-B tensors (one per measurement). realisations: samples drawn per
    measurement (>= 1); average: also return their mean; seed: the seed of the start's noise
    and the key of the steps' noise (None: both from torch's global generators)."""

    sigma_0: PerImage = 1.0
    sigma_L: PerImage = 0.01
    h0: PerImage = 0.01
    beta: PerImage = 0.01
    realisations: int = 1
    average: bool = False
    seed: int | None = None


# The sampler returns the solvers' Result: x [B R, C, H, W] the samples, measurement-major (the
# R realisations of measurement b are rows b R .. b R + R - 1); iterations [B R]; converged
# [B R], True where sigma_t went under sigma_L within max_iter; mean [B, C, H, W] the mean of
# each measurement's R samples (with ``average``), else None; history: with ``history``,
# "sigma" [T, B R] (sigma_t, NaN after an image stopped) and, with x_true, "psnr" [T, B R] of
# y_t against x_true. The old name stays for code that names it.
SampleResult = Result


#: realisations per measurement: each is a row of the batch the sampler runs at once
MAX_REALISATIONS = 65536


def _params(p: ImplicitPriorParams, batch: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
    """The per-image parameters as [batch] tensors, validated."""
    out = {
        "sigma_0": _validate.per_image("sigma_0", p.sigma_0, batch, like, positive=True),
        "sigma_L": _validate.per_image("sigma_L", p.sigma_L, batch, like, positive=True),
        "h0": _validate.per_image("h0", p.h0, batch, like, positive=True, upper=1.0),
        "beta": _validate.per_image("beta", p.beta, batch, like, positive=True, upper=1.0),
    }
    # the sampler lowers the noise level from sigma_0 to sigma_L: sigma_L >= sigma_0 would stop
    # every image after its first step, still at noise level sigma_0
    above = out["sigma_L"] >= out["sigma_0"]
    if bool(above.any()):  # the values were read above already: no further sync of note
        images = above.nonzero().flatten().tolist()
        raise ValueError(
            f"sigma_L must be < sigma_0 (the sampler lowers the noise level from sigma_0 to "
            f"sigma_L), but sigma_L >= sigma_0 for images {images}"
        )
    return out


_SEED_MAX = 2**63 - 1  # the fused step's counter-based noise takes a key in [0, 2**63)


def _generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    if seed is None:
        return None
    seed = _validate.integer("seed", seed, 0, _SEED_MAX, hint="(or None)")
    return torch.Generator(device=device).manual_seed(seed)


def _noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


@dataclass
class _Constraint:
    """How the fused step applies the measurements: lifted = M x_c [B, C, H, W], and P as a
    mask, a block factor, or (neither) through ``project``."""

    lifted: torch.Tensor
    project: Callable[[torch.Tensor], torch.Tensor]
    mask: torch.Tensor | None = None
    factor: int = 0

    def step_args(self, denoised: torch.Tensor) -> dict:
        if self.mask is not None:
            return {"lifted": self.lifted, "mask": self.mask}
        if self.factor:
            return {"lifted": self.lifted, "factor": self.factor}
        return {"lifted": self.lifted, "projected": self.project(denoised).contiguous()}


def _step_key(seed: int | None) -> int:
    """The key of the step noise: the seed, or a draw from torch's global CPU generator."""
    if seed is not None:
        return seed
    return int(torch.randint(0, 2**62, (1,)).item())


@dataclass
class SamplerState:
    x: torch.Tensor  # y_t
    sigma: torch.Tensor  # [B] sigma_t, the denoiser's noise level (frozen once an image stops)
    steps: torch.Tensor  # [B] int64 t, the steps each image has taken


class ImplicitPrior:
    """The sampler as a method of the engine: one denoiser call and one fused step per
    iteration (``pnpfast.ops.constrained_step``, its noise keyed by (key, iteration)). It takes
    the active mask: a stopped image gets h = c = 0, so the step leaves it unchanged and the
    engine need not merge. Built by ``sample`` and ``solve_constrained`` from validated [B]
    parameters (``_params``), the constraint (None for Algorithm 1) and the noise key."""

    name = "implicit-prior"
    Params = ImplicitPriorParams
    default_max_iter = 10000
    default_tol = 0.0  # not read: each image stops when sigma_t < sigma_L (``threshold``)
    default_denoiser = "blind"
    takes_active = True
    measure = "sigma"
    history_fields = ()

    def __init__(
        self, params: dict[str, torch.Tensor], constraint: _Constraint | None, key: int
    ) -> None:
        self.params = params
        self.constraint = constraint
        self.key = key

    # Stall check: every ``stall_window`` iterations (a multiple of the engine's check_every,
    # so that its one host read falls where the engine syncs anyway) an image still running
    # must have lowered its smallest sigma_t so far by a quarter of the log-decrease its
    # schedule predicts since the last check that judged it (the noise level of y_t is
    # (1 - beta h_t) sigma_t), and by a factor 2 at least when that prediction is steeper. With the shipped blind network
    # sigma_t falls about 100x per 64 iterations until it reaches the network's floor (about
    # 2e-4 to 6e-4 on a 16x16 gray image at the defaults), then wanders and eventually diverges:
    # a sigma_L under that floor never stops the loop.
    stall_window = 256

    def init(self, problem: Problem) -> SamplerState:
        self.threshold = self.params["sigma_L"]
        x0 = problem.x0
        self._lowest = self.params["sigma_0"].clone()  # [B] smallest sigma_t so far
        self._lowest_before = self._lowest.clone()  # [B] that at the last stall check
        self._predicted = torch.zeros_like(self._lowest)  # [B] sum of log(1 - beta h_t)
        steps = torch.zeros(x0.shape[0], dtype=torch.int64, device=x0.device)
        return SamplerState(x=x0, sigma=self.params["sigma_0"].clone(), steps=steps)

    def step(
        self, problem: Problem, state: SamplerState, k: int, active: torch.Tensor
    ) -> SamplerState:
        y = state.x
        h0, beta = self.params["h0"], self.params["beta"]
        t = (state.steps + 1).to(y.dtype)  # each image's own t
        h = h0 * t / (1 + h0 * (t - 1))
        c = ((1 - beta * h).square() - (1 - h).square()).clamp_min(0).sqrt()
        running = active.to(y.dtype)
        denoised = problem.denoise(y, state.sigma)  # its form is checked there
        denoised = denoised.contiguous()  # the fused step's fast paths read flat images
        with nvtx_range("pnpfast/sampler_step"):
            extra = {} if self.constraint is None else self.constraint.step_args(denoised)
            y, sigma_t = constrained_step(
                denoised, y, h * running, c * running, self.key, k, **extra,
                backend=problem.backend,
            )  # fmt: skip
        sigma_t = torch.where(torch.isfinite(sigma_t), sigma_t, math.nan)  # NaN: diverged
        self._lowest = torch.where(active, torch.fmin(self._lowest, sigma_t), self._lowest)
        # clamped: beta = h = 1 predicts a fall to 0 (log -inf), and -inf * 0 would be NaN
        self._predicted += torch.log1p(-beta * h).clamp_min(-50.0).mul(running)
        if (k + 1) % self.stall_window == 0:
            self._check_stall(active & (sigma_t >= self.threshold), k + 1)
        return SamplerState(
            x=y, sigma=torch.where(active, sigma_t, state.sigma), steps=state.steps + active.long()
        )

    def _check_stall(self, running: torch.Tensor, iteration: int) -> None:
        """Raise when an image still running has stopped lowering sigma_t (see stall_window)."""
        # judged only once the schedule predicts a fall by 4x at least: a smaller one is within
        # the scatter of the smallest sigma_t of a small image (about 25% on 8x8)
        ready = self._predicted <= math.log(0.25)
        needed = torch.exp(self._predicted / 4).clamp_min(0.5)
        stalled = running & ready & (self._lowest > self._lowest_before * needed)
        self._lowest_before = torch.where(ready, self._lowest, self._lowest_before)
        self._predicted = torch.where(ready, 0.0, self._predicted)
        if not bool(stalled.any()):  # the one host read, where the engine syncs anyway
            return
        images = stalled.nonzero().flatten().tolist()
        reached = self._lowest[stalled].tolist()
        target = self.threshold[stalled].tolist()
        raise ValueError(
            f"{self.name}: sigma_t of images {images} has stopped falling by iteration "
            f"{iteration} (smallest sigma_t reached {[float(f'{r:.3g}') for r in reached]}, "
            f"sigma_L {[float(f'{t:.3g}') for t in target]}): sigma_L is below what the denoiser "
            f"reaches; use sigma_L >= {2 * max(reached):.2g}"
        )

    def output(self, state: SamplerState) -> torch.Tensor:
        return state.x


def _device_tensor(device, dtype: torch.dtype) -> torch.Tensor:
    """An empty tensor on ``device`` (None: the CPU): ValueError naming ``device`` when torch
    cannot place data there (an unknown name, the meta device, cuda without a GPU)."""
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or a torch.device, not {type(device).__name__}")
    try:
        like = torch.empty(0, device="cpu" if device is None else device, dtype=dtype)
    except (RuntimeError, AssertionError) as err:  # torch's own words for what is missing
        raise ValueError(f"device {device!r} cannot hold the samples: {err}") from None
    if like.device.type == "meta":
        raise ValueError(
            "device is the meta device (it holds no data): draw the samples on cpu or cuda"
        )
    return like


def _run(
    denoiser: Callable,
    y0: torch.Tensor,
    measurement: torch.Tensor,
    params: dict[str, torch.Tensor],
    *,
    constraint: _Constraint | None,
    key: int,
    max_iter: int,
    history: bool,
    x_true: torch.Tensor | None,
    callback: Callable[[IterationInfo], None] | None,
    backend: str | None,
) -> Result:
    """The engine's loop from y_0 with the ImplicitPrior method."""
    problem = Problem(
        y=measurement,
        data=None,
        denoiser=denoiser,
        sigma=params["sigma_0"],
        x0=y0,
        backend=backend,
    )
    method = ImplicitPrior(params, constraint, key)
    return run(
        method,
        problem,
        max_iter=max_iter,
        tol=0.0,
        x_true=x_true,
        history=history,
        callback=callback,
    )


def _repeat(t: torch.Tensor, r: int) -> torch.Tensor:
    return t.repeat_interleave(r, dim=0) if r > 1 else t


def sample(
    denoiser: Callable,
    shape: tuple[int, int, int, int],
    *,
    sigma_0: PerImage = 1.0,
    sigma_L: PerImage = 0.01,
    h0: PerImage = 0.01,
    beta: PerImage = 0.01,
    seed: int | None = None,
    max_iter: int = 10000,
    history: bool = False,
    callback: Callable[[IterationInfo], None] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    backend: str | None = None,
) -> Result:
    """Draw B images from the prior implicit in a blind denoiser (Algorithm 1 of Kadkhodaie &
    Simoncelli, NeurIPS 2021; see the module docstring).

    denoiser: D(y, sigma) -> denoised y, [B, C, H, W] in and out (its residual D(y) - y is the
    step direction); shape: (B, C, H, W); sigma_0, sigma_L, h0, beta: floats or length-B
    tensors (defaults: the paper's inverse-problem values; the paper draws its unconstrained
    samples with a larger beta, e.g. 0.5, for less noise on the way); seed: reproducible noise;
    max_iter: iteration cap; history: record sigma_t; callback: called with an IterationInfo
    (x = y_t, rel_change = sigma_t) after every iteration; device, dtype: of the samples;
    backend: force "reference", "triton" or "cuda" for the fused step (its noise depends on the
    backend; a seed reproduces a run on the same backend). Returns a Result (``mean``
    None). Raises ValueError when sigma_t of an image stops falling above sigma_L (see the
    module docstring).
    """
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as D(x, sigma), not {type(denoiser).__name__}")
    if not isinstance(shape, (tuple, list, torch.Size)) or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape
    ):
        raise TypeError(f"shape must be a tuple of four ints (B, C, H, W), not {shape!r}")
    if len(shape) != 4 or not all(s >= 1 for s in shape):
        raise ValueError(f"shape must be four positive integers (B, C, H, W), not {shape!r}")
    shape = tuple(int(s) for s in shape)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, not {dtype}")
    check_max_iter(max_iter)
    check_run_options(history, callback)
    like = _device_tensor(device, dtype)
    device = like.device
    p = ImplicitPriorParams(sigma_0=sigma_0, sigma_L=sigma_L, h0=h0, beta=beta, seed=seed)
    params = _params(p, shape[0], like)
    generator = _generator(seed, device)
    y0 = 0.5 + params["sigma_0"].view(-1, 1, 1, 1) * _noise(
        torch.empty(tuple(shape), device=device, dtype=dtype), generator
    )
    return _run(
        denoiser,
        y0,
        y0,
        params,
        constraint=None,
        key=_step_key(seed),
        max_iter=max_iter,
        history=history,
        x_true=None,
        callback=callback,
        backend=backend,
    )


def solve_constrained(
    measurement: torch.Tensor,
    operator: OrthonormalOperator,
    denoiser: Callable,
    *,
    params: ImplicitPriorParams,
    max_iter: int,
    history: bool,
    x_true: torch.Tensor | None,
    callback: Callable[[IterationInfo], None] | None,
    backend: str | None = None,
) -> Result:
    """Algorithm 2: samples consistent with x_c = M^T x for every measurement of the batch.

    measurement: x_c = operator.measure(x), whatever shape the operator's coefficients have,
    batch first; the image shape is that of operator.lift(x_c). The operator must act on every
    channel alike (all of pnpfast's do): the R realisations of a measurement are projected
    together as R C channels of one image, so per-image masks and the like need no copies.
    x_true: [B, C, H, W] ground truth for the PSNR history (each realisation against its
    measurement's image). The fused step applies P itself for masks and block averages
    (``operator.fused_projection``) and takes P x_hat from ``operator.project`` otherwise.
    ``pnpfast.solve(..., method="implicit-prior")`` calls this.
    """
    if not isinstance(operator, OrthonormalOperator):
        raise TypeError(
            "method 'implicit-prior' needs an operator with an orthonormal view "
            "(pnpfast.operators.Inpainting, BlockAverage, SpectralLowpass, CompressiveSensing), "
            f"not {type(operator).__name__}"
        )
    if not isinstance(measurement, torch.Tensor) or not measurement.is_floating_point():
        what = measurement.dtype if isinstance(measurement, torch.Tensor) else type(measurement)
        raise TypeError(
            f"y (the measurement M^T x) must be a float32 or float64 tensor, not {what}"
        )
    if measurement.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"y must be float32 or float64, not {measurement.dtype}")
    try:  # the operator says whether y is one of its measurements (rank, size, batch)
        operator.image_shape(measurement, "y")
    except (TypeError, ValueError) as err:
        raise type(err)(f"y is not a measurement of this {type(operator).__name__}: {err}") from err
    if not bool(torch.isfinite(measurement).all()):
        raise ValueError("y (the measurement) contains NaN or Inf")
    R = _validate.integer("realisations", params.realisations, 1, MAX_REALISATIONS)
    _validate.flag("average", params.average)
    check_max_iter(max_iter)
    check_run_options(history, callback)
    B = measurement.shape[0]
    lifted = operator.lift(measurement)  # M x_c: [B, C, H, W]
    if x_true is not None:
        _validate.image("x_true", x_true)
        _validate.same_device_dtype(y=measurement, x_true=x_true)
        if x_true.shape != lifted.shape:
            raise ValueError(
                f"x_true has shape {tuple(x_true.shape)} but the images are {tuple(lifted.shape)}"
            )
    base = _params(params, B, lifted)
    per = {name: _repeat(v, R) for name, v in base.items()}
    C, H, W = lifted.shape[1:]

    def project(x: torch.Tensor) -> torch.Tensor:
        # the operators act on every channel alike, so realisations ride along as channels
        return operator.project(x.reshape(B, R * C, H, W)).reshape(B * R, C, H, W)

    lifted = _repeat(lifted, R)
    generator = _generator(params.seed, lifted.device)
    half = torch.full_like(lifted, 0.5)
    noise = _noise(lifted, generator)
    y0 = lifted + half - project(half) + per["sigma_0"].view(-1, 1, 1, 1) * noise
    constraint = _Constraint(lifted.contiguous(), project, **operator.fused_projection(lifted))
    res = _run(
        denoiser,
        y0,
        measurement,
        per,
        constraint=constraint,
        key=_step_key(params.seed),
        max_iter=max_iter,
        history=history,
        x_true=None if x_true is None else _repeat(x_true, R),
        callback=callback,
        backend=backend,
    )
    if params.average:
        res.mean = res.x.view(B, R, *res.x.shape[1:]).mean(1)
    return res


__all__ = ["ImplicitPrior", "ImplicitPriorParams", "SampleResult", "sample", "solve_constrained"]
