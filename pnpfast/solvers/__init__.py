"""``pnpfast.solve``: one entry point over every PnP method, on one shared engine.

Methods: "hqs" (DPIR), "admm", "drs" (Douglas-Rachford), "pgd", "fista" (PnP), and the RED
family (``solvers/red.py``): "red-sd" (steepest descent), "red-fp" (fixed point), "red-admm",
"red-pg", "red-apg", "red-dpg" (proximal gradient: plain, accelerated, dynamic L_k) and "red-gd" (gradient descent on
the unweighted data term), and the provably convergent methods (``solvers/convergent.py``):
"gs-pnp" (proximal gradient with a gradient-step denoiser and per-image backtracking),
"prox-pnp-pgd" and "prox-pnp-drs" (with a proximal denoiser) and "pnp-reg" (gradient descent
with a learned regulariser gradient). Each method's own parameters are a dataclass in its module
(``HQSParams``, ``ADMMParams``, ``DRSParams``, ``PGDParams``; ``REDSDParams`` for red-sd and
red-gd, ``REDFPParams``, ``REDADMMParams``, ``REDPGParams`` for red-pg and red-apg,
``REDDPGParams``, ``GSPnPParams``, ``ProxPnPParams`` for prox-pnp-pgd and prox-pnp-drs, ``PnPReGParams``);
unknown names raise TypeError. "implicit-prior" is the sampler of Kadkhodaie & Simoncelli
(``solvers/implicit_prior.py``, ``ImplicitPriorParams``). Every method follows the protocol of
``engine.Method`` and runs on ``engine.run``; ``solve`` returns an ``engine.Result`` whatever
the method (``SampleResult`` is another name for it).
"""

import dataclasses
from collections.abc import Callable

import torch

from pnpfast import _validate
from pnpfast.fidelity import L2
from pnpfast.operators.base import LinearOperator, require_linear_operator
from pnpfast.operators.super_resolution import super_resolution_factor
from pnpfast.solvers import convergent, implicit_prior, red
from pnpfast.solvers.convergent import GSPnPParams, PnPReGParams, ProxPnPParams
from pnpfast.solvers.engine import (
    IterationInfo,
    Method,
    Problem,
    Result,
    check_max_iter,
    check_run_options,
    run,
)
from pnpfast.solvers.implicit_prior import (
    ImplicitPrior,
    ImplicitPriorParams,
    SampleResult,
    sample,
)
from pnpfast.solvers.proximal_gradient import FISTA, PGD, PGDParams
from pnpfast.solvers.red import (
    REDADMMParams,
    REDDPGParams,
    REDFPParams,
    REDPGParams,
    REDSDParams,
)
from pnpfast.solvers.splitting import ADMM, DRS, HQS, ADMMParams, DRSParams, HQSParams

#: the largest noise level solve accepts, per dtype (sigma^2 with the methods' factors stays finite)
SIGMA_MAX = {torch.float32: 1e18, torch.float64: 1e150}

METHODS = {cls.name: cls for cls in (HQS, ADMM, DRS, PGD, FISTA, *red.METHODS, *convergent.METHODS)}
SAMPLER = ImplicitPrior.name


def solve(
    y: torch.Tensor,
    operator: LinearOperator,
    denoiser: Callable | None = None,
    method: str = "hqs",
    *,
    sigma: float | torch.Tensor | None = None,
    max_iter: int | None = None,
    tol: float | None = None,
    x0: torch.Tensor | None = None,
    x_true: torch.Tensor | None = None,
    history: bool = False,
    callback: Callable[[IterationInfo], None] | None = None,
    backend: str | None = None,
    **method_params,
) -> Result:
    """Restore ``y = A x + noise`` with a PnP method; every image of the batch independently.

    y: the measurement A x + noise, float32/float64, of the operator's output shape ([B, C, H, W]
    for Blur and Inpainting, [B, C, H/s, W/s] for BlockAverage(s), [B, C, m] for
    SpectralLowpass and CompressiveSensing; the images are [B, C, H, W], ``A.image_shape(y)``);
    operator: a pnpfast LinearOperator;
    denoiser: called as D(x, sigma) with sigma a [B] tensor, or None for the shipped denoiser
    the method is meant for (``pnpfast.denoisers.load`` of the method class's
    ``default_denoiser``: "conditional" for hqs, admm, drs, pgd, fista and the red-* methods;
    "blind" for implicit-prior; "gradient-step" for gs-pnp; "proximal" for prox-pnp-*; none is shipped
    for pnp-reg, which then raises TypeError); sigma: noise level of y (float or
    length-B tensor, same scale as y, at most 1e18 in float32 and 1e150 in float64; for the RED methods the measurement noise sigma_n of their
    data term ||A x - y||^2 / (2 sigma_n^2), floored at 0.255/255); max_iter, tol: iteration cap
    and per-image relative-change tolerance (max_iter an int in [1, 2**63 - 1], tol a finite
    float >= 0; method defaults: hqs 8 (24 for SuperResolution) and 0, red-sd and red-gd
    200, gs-pnp 400 (40 for SuperResolution) and 1e-5 on the relative change of its objective,
    prox-pnp-* 300 (prox-pnp-pgd 40 for SuperResolution) and
    1e-6, pnp-reg 500 and 1e-5, the others 100 (pgd, fista: 40 for SuperResolution) or 50,
    and 1e-4); x0: start, an image
    (default A^T y; with a SuperResolution of factor >= 2, ``A.upsample(y)``: ``L2.start``); x_true: ground truth, records PSNR per
    iteration in ``history``; history: also record the relative change without x_true;
    callback: called with an IterationInfo after every iteration; backend: force "reference", "triton" or "cuda" for the fused ops.
    Method parameters: see HQSParams, ADMMParams, DRSParams (drs: u = prox_{gamma f}(z),
    x = D(2 u - z, sigma_d), z <- z + beta (x - u), output x; ADMM's defaults, beta 1),
    PGDParams (pgd and fista), REDSDParams (red-sd,
    red-gd), REDFPParams, REDADMMParams, REDPGParams (red-pg, red-apg), REDDPGParams,
    GSPnPParams (gs-pnp), ProxPnPParams (prox-pnp-pgd, prox-pnp-drs; for these three the
    denoiser must be a pnpfast.denoisers.GradientStep), PnPReGParams (pnp-reg: the "denoiser"
    is the regulariser-gradient network G, called as G(x, 0)).
    Returns a Result (x, iterations, converged, history; mean for the sampler's ``average``).
    """
    if not isinstance(method, str):
        names = ", ".join(sorted([*METHODS, SAMPLER]))
        raise TypeError(f"method must be a str, one of {names}, not {type(method).__name__}")
    check_run_options(history, callback)
    if method == SAMPLER:
        return _solve_sampler(
            y,
            operator,
            denoiser,
            sigma,
            max_iter,
            tol,
            x0,
            x_true,
            history,
            callback,
            backend,
            method_params,
        )
    if method not in METHODS:
        names = ", ".join(sorted([*METHODS, SAMPLER]))
        raise ValueError(f"method must be one of {names}, not {method!r}")
    if sigma is None:
        raise TypeError(f"method {method!r} needs sigma, the noise level of y")
    cls = METHODS[method]
    accepted = {f.name for f in dataclasses.fields(cls.Params)}
    unknown = sorted(set(method_params) - accepted)
    if unknown:
        raise TypeError(
            f"method {method!r} does not take {', '.join(unknown)}; its parameters are "
            f"{', '.join(sorted(accepted))}"
        )
    require_linear_operator(operator)
    data = L2(operator, y)  # checks y against the operator: A x has y's shape
    denoiser = _denoiser_for(cls, denoiser, y)
    B = y.shape[0]
    # the methods square sigma and scale it (admm's sigma_d = 5 sigma, RED's lam = 1 / sigma_d^2):
    # past these bounds that overflows and a default the caller never set is blamed
    upper = SIGMA_MAX[y.dtype]
    sigma_t = _validate.per_image("sigma", sigma, B, y, nonnegative=True, upper=upper)
    if max_iter is None:  # a method may have its own for super-resolution (engine.Method)
        max_iter = cls.default_max_iter
        if getattr(cls, "sr_max_iter", None) and super_resolution_factor(operator):
            max_iter = cls.sr_max_iter
    max_iter = check_max_iter(max_iter)
    tol = cls.default_tol if tol is None else tol
    # tol = inf would stop every image after one iteration: max_iter=1 says that
    tol = _validate.number("tol", tol, 0)
    for name, t in (("x0", x0), ("x_true", x_true)):
        if t is not None:
            _validate.image(name, t)
            _validate.same_device_dtype(y=y, **{name: t})
            if tuple(t.shape) != data.image_shape:
                raise ValueError(
                    f"{name} has shape {tuple(t.shape)} but the images measured by y (shape "
                    f"{tuple(y.shape)}) have shape {data.image_shape}"
                )
    problem = Problem(
        y=y,
        data=data,
        denoiser=denoiser,
        sigma=sigma_t,
        x0=data.start if x0 is None else x0,
        backend=backend,
        tol=float(tol),
    )
    solver = cls(cls.Params(**method_params), max_iter)
    return run(
        solver,
        problem,
        max_iter=max_iter,
        tol=float(tol),
        x_true=x_true,
        history=history,
        callback=callback,
    )


def _denoiser_for(cls, denoiser, y: torch.Tensor) -> Callable:
    """``denoiser``, checked, or for None the method's shipped one on y's device."""
    if denoiser is not None:
        if not callable(denoiser):
            raise TypeError(
                f"denoiser must be callable as D(x, sigma), not {type(denoiser).__name__}"
            )
        return denoiser
    if cls.default_denoiser is None:
        raise TypeError(
            f"no shipped denoiser fits method {cls.name!r}: pass denoiser= (see "
            f"{cls.Params.__name__})"
        )
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, not {type(y).__name__}")
    # imported here, not at the top: only a call without a denoiser reads weight files
    from pnpfast.denoisers import load

    return load(cls.default_denoiser, device=y.device)


def _solve_sampler(
    y, operator, denoiser, sigma, max_iter, tol, x0, x_true, history, callback, backend, params
) -> Result:
    """method="implicit-prior": Algorithm 2 of Kadkhodaie & Simoncelli (solvers/implicit_prior.py)."""
    accepted = {f.name for f in dataclasses.fields(ImplicitPriorParams)}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise TypeError(
            f"method {SAMPLER!r} does not take {', '.join(unknown)}; its parameters are "
            f"{', '.join(sorted(accepted))}"
        )
    for name, value, why in (
        ("sigma", sigma, "it samples from noiseless measurements y = M^T x"),
        ("tol", tol, "it stops each image when its sigma_t falls under sigma_L"),
        ("x0", x0, "it starts from M y + (I - M M^T) 0.5 plus noise of std sigma_0"),
    ):
        if value is not None:
            raise TypeError(f"method {SAMPLER!r} does not take {name}: {why}")
    if isinstance(y, torch.Tensor):  # before the sampler reads y (or loads onto its device)
        _validate.not_empty("y", y)
    denoiser = _denoiser_for(ImplicitPrior, denoiser, y)
    return implicit_prior.solve_constrained(
        y,
        operator,
        denoiser,
        params=ImplicitPriorParams(**params),
        max_iter=ImplicitPrior.default_max_iter if max_iter is None else max_iter,
        history=history,
        x_true=x_true,
        callback=callback,
        backend=backend,
    )


__all__ = [
    "ADMMParams",
    "DRSParams",
    "GSPnPParams",
    "HQSParams",
    "ImplicitPriorParams",
    "IterationInfo",
    "Method",
    "PGDParams",
    "PnPReGParams",
    "ProxPnPParams",
    "REDADMMParams",
    "REDDPGParams",
    "REDFPParams",
    "REDPGParams",
    "REDSDParams",
    "Result",
    "SampleResult",
    "sample",
    "solve",
]
