"""Jacobian diagnostics of denoisers: per-image spectral norms, asymmetry, Lipschitz constants.

The convergence theory of PnP asks things of the Jacobian J = dD/dx of the denoiser at the
images it sees: a spectral norm under 1 for I - D (Ryu et al., ICML 2019; the proximal denoiser
of Hurault, Leclaire, Papadakis, ICML 2022), a symmetric J for RED to be a gradient (Reehorst &
Schniter, IEEE TCI 2019). These functions measure them for a whole batch at once: the Jacobian
of a denoiser that treats images independently is block diagonal, so one batched
Jacobian-vector product gives every image's product.

D is called as D(x, sigma) when sigma is given, else D(x); it must treat the images of a batch
independently (a network in eval mode: batch-norm statistics in training mode couple them).
Products go through torch.func: J^T u by a vector-Jacobian product that reuses one forward pass,
J u by a forward-mode product.
"""

import inspect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pnpfast import _validate
from pnpfast.ops.power_step import initial_state, power_step
from pnpfast.profiling import nvtx_range

log = logging.getLogger("pnpfast")

_COMPACT_BELOW = 0.75  # rebuild the products on the active images once fewer than this share are
# upper bounds of the counts: each is a loop of Jacobian products (Lanczos also stores ``steps``
# copies of x), so a typo such as 10**9 would run or allocate without end instead of failing
MAX_ITERS = 100_000
MAX_PROBES = 10_000
MAX_STEPS = 1_000
_SUB_BATCH = " on a sub-batch of x (if D cannot take one, pass compact=False)"


@dataclass
class SpectralNorm:
    """What ``spectral_norm`` returns.

    norm: [B] the estimate of the largest singular value of J_b (with the graph to D's parameters
    in differentiable mode); iterations: [B] int64 power-iteration steps each image took;
    error_bound: [B] an a-posteriori bound from the residual of the last checked step (see
    ``spectral_norm``): some singular value of J_b (eigenvalue, in symmetric mode) lies within
    error_bound of norm; inf where no step was checked; converged: [B] bool, True where
    error_bound <= tol * norm; vector: [B, ...] the last unit iterate v_b (the top right singular
    vector of J_b once converged).
    """

    norm: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    vector: torch.Tensor
    error_bound: torch.Tensor


def _bind(
    D: Callable, sigma: torch.Tensor | float | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    return D if sigma is None else (lambda z: D(z, sigma))


def _per_image(sigma, B: int, like: torch.Tensor, op: str = "spectral_norm"):
    """sigma as given (None or a float), or a [B] tensor on x's device; the values must be
    finite and >= 0 (read once here, at the boundary)."""
    if sigma is None:
        return sigma
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, torch.Tensor)):
        raise TypeError(
            f"{op}: sigma must be None, a float or a tensor of shape ({B},), "
            f"not {type(sigma).__name__}"
        )
    if not isinstance(sigma, torch.Tensor):
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"{op}: sigma must be a finite number >= 0, got {sigma}")
        return sigma
    if sigma.is_complex() or sigma.dtype == torch.bool:
        raise TypeError(f"{op}: sigma must be real, not {sigma.dtype}")
    if sigma.device.type == "meta":
        raise ValueError(f"{op}: sigma is on the meta device (it holds no data)")
    if sigma.dim() != 0 and sigma.shape != (B,):
        raise ValueError(
            f"{op}: sigma must be a float or have shape ({B},), got {tuple(sigma.shape)}"
        )
    sigma = sigma.to(dtype=like.dtype, device=like.device)
    if not bool(((sigma >= 0) & torch.isfinite(sigma)).all()):
        raise ValueError(f"{op}: sigma must be finite and >= 0, got {sigma.tolist()}")
    return sigma


def _check_x(name: str, x) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: x must be a tensor, not {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name}: x must be float32 or float64, not {x.dtype}")
    if x.dim() < 2:
        raise ValueError(
            f"{name}: x must be [B, ...] with a batch dimension, got shape {tuple(x.shape)}"
        )
    if x.device.type == "meta":
        raise ValueError(
            f"{name}: x is on the meta device (it holds no data): move it to cpu or cuda first"
        )
    if x.numel() == 0:
        what = "a batch of size 0" if x.shape[0] == 0 else "a dimension of size 0"
        raise ValueError(f"{name}: x has {what} (shape {tuple(x.shape)}): nothing to measure")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: x has NaN or Inf values")


def _check_D(name: str, D) -> None:
    if not callable(D):
        raise TypeError(
            f"{name}: D must be a callable D(x, sigma) (a denoiser), not {type(D).__name__}"
        )


def _check_output(op: str, out, x: torch.Tensor, square: bool, hint: str = "") -> None:
    """D's output at x: a floating tensor in x's dtype, with x's batch size (gram mode) or
    x's shape (square: symmetric power iteration, asymmetry, Lanczos, I - D)."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{op}: D must return a tensor, it returned {type(out).__name__}")
    if out.dtype != x.dtype:
        raise TypeError(
            f"{op}: D returned dtype {out.dtype} for x of dtype {x.dtype}; it must return x's dtype"
        )
    if out.shape[:1] != x.shape[:1] or (square and out.shape != x.shape):
        want = f"shape {tuple(x.shape)}" if square else f"batch size {x.shape[0]}"
        raise ValueError(
            f"{op}: D must map x of shape {tuple(x.shape)} to an output of {want}, got "
            f"{tuple(out.shape)}{hint}"
        )


class _Products:
    """M u for the images in ``rows``: J^T J u (gram) or J u (symmetric J, one product)."""

    def __init__(
        self, D, x, sigma, gram: bool, op: str = "spectral_norm", square: bool = False, hint=""
    ):
        self.f = _bind(D, sigma)
        self.x = x
        self.gram = gram

        def f(z):
            out = self.f(z)
            _check_output(op, out, x, square or not gram, hint)
            return out

        _, self.vjp = torch.func.vjp(f, x)

    def jvp(self, u: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(self.f, (self.x,), (u,))[1]

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        if self.gram:
            return self.vjp(self.jvp(u))[0]
        return self.vjp(u)[0]  # J^T u = J u when J is symmetric


def spectral_norm(
    D: Callable,
    x: torch.Tensor,
    sigma: torch.Tensor | float | None = None,
    iters: int = 50,
    tol: float = 1e-3,
    *,
    symmetric: bool = False,
    differentiable: bool = False,
    seed: int = 0,
    v0: torch.Tensor | None = None,
    check_every: int = 8,
    compact: bool = True,
    backend: str | None = None,
) -> SpectralNorm:
    """Per-image largest singular value of the Jacobian of D at x, by batched power iteration.

    General J: power iteration on J^T J (a forward-mode and a reverse-mode product per step),
    estimate ||J v||. ``symmetric=True`` (the caller states J = J^T, as for a gradient-step
    denoiser or I - D of one): power iteration on J (one product per step), estimate |<v, J v>|,
    the eigenvalue of largest modulus. Each step's normalisation and estimate run in the fused
    ``pnpfast.ops.power_step``. After the first step, every ``check_every`` steps and after the
    last, the residual r = ||M v - rho v|| of the step (rho = <v, M v>, v the unit iterate) gives
    ``error_bound``: since M is symmetric, an eigenvalue of M lies within r of rho, so a singular
    value of J (gram: |s - ||J v||| <= min(sqrt(r), r / ||J v||)) or an eigenvalue of J
    (symmetric: ||lambda| - |rho|| <= r) lies within error_bound of the estimate. An image stops
    (``converged``) once error_bound <= tol * estimate. What the estimate guarantees:

    - it is a lower bound on ||J_b|| (gram mode always; symmetric mode when J is symmetric);
    - within error_bound of it lies a singular value of J_b (an eigenvalue), so on convergence
      the estimate is within the relative tol of one;
    - it is the largest one only when v has reached the top singular vector: power iteration
      from a random start does so with probability 1 as iterations grow, but a bound from one
      vector cannot tell a singular value close under the top from the top (use
      ``lanczos_edges`` for a clustered top). A relative change of the estimate is no bound: on
      Gaussian smoothing of a 16x16 image (norm 1) it stopped at 0.984.

    At the same points one host synchronisation counts the images still going and those whose
    estimate or bound is NaN or Inf (a FloatingPointError names them); once under 3/4 of the
    batch is going, the products are rebuilt on those images alone, so converged images stop
    costing work. That calls D on a sub-batch of x (and of a [B] sigma): set ``compact=False`` for
    a D that cannot take one (a closure over per-image parameters other than sigma). At most
    ``iters`` steps per image (1 to ``MAX_ITERS``); tol finite and >= 0.

    ``differentiable=True``: the iterations run without a graph, then one more product with the
    graph gives norm = ||J v|| (or |<v, J v>|) differentiable with respect to D's parameters, for
    training penalties (Hurault et al. 2022, Pesquet et al. 2021).

    x: [B, ...] float32 or float64; sigma: None, a float, or [B]. The starting vectors are ``v0``
    (like x, non-zero for every image; e.g. the ``vector`` of an earlier call, a warm start) or
    else Gaussian, drawn from ``seed`` (in [0, 2**63 - 1]; the same per batch whatever the
    device). D must return a tensor of x's dtype with x's batch size (x's shape in symmetric
    mode); errors name the function and the argument.
    """
    _check_D("spectral_norm", D)
    _check_x("spectral_norm", x)
    _validate.integer("spectral_norm: iters", iters, 1, MAX_ITERS)
    _validate.integer("spectral_norm: check_every", check_every, 1, MAX_ITERS)
    _validate.number("spectral_norm: tol", tol, 0)
    for arg, value in (
        ("symmetric", symmetric),
        ("differentiable", differentiable),
        ("compact", compact),
    ):
        _validate.flag(f"spectral_norm: {arg}", value)
    _validate.seed("spectral_norm: seed", seed)
    B = x.shape[0]
    sigma = _per_image(sigma, B, x)
    x = x.detach()
    gram = not symmetric
    gen = torch.Generator().manual_seed(seed)
    if v0 is None:
        u = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    elif not isinstance(v0, torch.Tensor) or v0.shape != x.shape:
        got = tuple(v0.shape) if isinstance(v0, torch.Tensor) else type(v0).__name__
        raise ValueError(
            f"spectral_norm: v0 must be a tensor of x's shape {tuple(x.shape)}, got {got}"
        )
    elif not v0.is_floating_point():
        raise TypeError(f"spectral_norm: v0 must be a floating tensor like x, not {v0.dtype}")
    elif v0.device.type == "meta":
        raise ValueError("spectral_norm: v0 is on the meta device (it holds no data)")
    else:
        u = v0.detach().to(device=x.device, dtype=x.dtype).contiguous()
        if not torch.isfinite(u).all():
            raise ValueError("spectral_norm: v0 has NaN or Inf values")
        zero = (u.flatten(1) == 0).all(1)
        if zero.any():  # power iteration cannot leave a zero vector: the estimate would be 0
            raise ValueError(
                f"spectral_norm: v0 is zero for images {zero.nonzero().squeeze(1).tolist()}; "
                "start from a non-zero vector (or v0=None for random ones)"
            )
    state = initial_state(u)
    bound = torch.full((B,), torch.inf, dtype=x.dtype, device=x.device)
    conv = torch.zeros(B, dtype=torch.bool, device=x.device)
    # full-batch results, filled as rows leave
    done_u, done_state, done_bound, done_conv = (
        u.clone(),
        state.clone(),
        bound.clone(),
        conv.clone(),
    )
    rows = torch.arange(B, device=x.device)

    def subset(s, idx):
        return s[idx] if isinstance(s, torch.Tensor) and s.dim() == 1 else s

    with torch.no_grad(), nvtx_range("pnpfast/spectral_norm"):
        M = _Products(D, x, sigma, gram, square=symmetric)
        for k in range(iters):
            sync = (k + 1) % check_every == 0 and k + 1 < iters
            check = k == 0 or sync or k + 1 == iters
            if check:
                # the kernel (tol 0) freezes an image only on an exactly repeated estimate or
                # M v = 0; such an image takes this step again so that its bound is measured
                steps = state[:, 3]
                state = state.clone()
                state[:, 2] = torch.where(conv, 0, torch.where(steps > 0, 1, state[:, 2]))
                u_prev, s_prev, on = u, state[:, 1], state[:, 2] > 0
            with nvtx_range("pnpfast/spectral_norm/product"):
                w = M(u).contiguous()
            with nvtx_range("pnpfast/spectral_norm/step"):
                u, state = power_step(w, u, state, 0.0, gram, backend=backend)
            if not check:
                continue
            with nvtx_range("pnpfast/spectral_norm/bound"):
                bound = torch.where(on, _residual_bound(u_prev, u, s_prev, gram), bound)
                conv = torch.where(on, bound <= tol * state[:, 0], conv)
                state[:, 2] = torch.where(conv, 0, state[:, 2])
            if sync:
                pending = ~conv & ((state[:, 2] > 0) | (state[:, 3] > 0))
                bad = _bad_rows(state, bound)
                # the one host sync every check_every steps: images still going, non-finite ones
                n_active, n_bad = torch.stack([pending.sum(), bad.sum()]).tolist()
                if n_bad:
                    _raise_non_finite("spectral_norm", rows[bad])
                if n_active == 0:
                    break
                if compact and n_active < _COMPACT_BELOW * len(rows):
                    done_u[rows], done_state[rows] = u, state
                    done_bound[rows], done_conv[rows] = bound, conv
                    keep = pending.nonzero().squeeze(1)
                    rows, u, state = rows[keep], u[keep], state[keep]
                    bound, conv = bound[keep], conv[keep]
                    M = _Products(
                        D, x[rows], subset(sigma, rows), gram, square=symmetric, hint=_SUB_BATCH
                    )
        done_u[rows], done_state[rows] = u, state
        done_bound[rows], done_conv[rows] = bound, conv

    scale = done_state[:, 1].view(-1, *[1] * (x.dim() - 1))
    vector = done_u * scale
    norm = done_state[:, 0].clone()
    if differentiable:
        with nvtx_range("pnpfast/spectral_norm/differentiable"):
            jv = torch.func.jvp(_bind(D, sigma), (x,), (vector,))[1]
            norm = jv.flatten(1).norm(dim=1) if gram else (vector * jv).flatten(1).sum(1).abs()
    bad = _bad_rows(done_state, done_bound) | ~torch.isfinite(norm.detach())
    if bad.any():  # the caller reads the result: one sync at the end, no extra pass
        _raise_non_finite("spectral_norm", bad.nonzero().squeeze(1))
    steps = done_state[:, 3].to(torch.int64)
    return SpectralNorm(
        norm=norm, iterations=steps, converged=done_conv, vector=vector, error_bound=done_bound
    )


def _residual_bound(
    u_prev: torch.Tensor, u: torch.Tensor, scale: torch.Tensor, gram: bool
) -> torch.Tensor:
    """[B] bound on the distance from the estimate to a singular value of J (eigenvalue of J in
    symmetric mode), from the step that took the unit v = scale * u_prev to u = M v.

    For symmetric M, rho = <v, M v> and r = ||M v - rho v|| leave an eigenvalue lambda of M in
    [rho - r, rho + r] (Parlett, The Symmetric Eigenvalue Problem, thm 4.5.1). Symmetric mode:
    the estimate is |rho|, so ||lambda| - |rho|| <= r. Gram mode (M = J^T J, estimate
    sqrt(rho)): |sqrt(lambda) - sqrt(rho)| <= min(sqrt(r), r / sqrt(rho))."""
    v = scale.view(-1, 1) * u_prev.flatten(1)
    mv = u.flatten(1)
    rho = (v * mv).sum(1)
    r = (mv - rho.view(-1, 1) * v).norm(dim=1)
    if not gram:
        return r
    est = rho.clamp_min(0).sqrt()
    inf = torch.full_like(r, torch.inf)
    return torch.minimum(r.sqrt(), torch.where(est > 0, r / est.clamp_min(1e-300), inf))


def _bad_rows(state: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """[B] bool: a non-finite estimate, scale or bound (a NaN or Inf Jacobian product)."""
    return ~torch.isfinite(state[:, 0]) | ~torch.isfinite(state[:, 1]) | torch.isnan(bound)


def _raise_non_finite(op: str, images: torch.Tensor) -> None:
    raise FloatingPointError(
        f"{op}: the Jacobian products of D are NaN or Inf for images {images.tolist()} "
        "(D returns non-finite values or derivatives at these x)"
    )


def jacobian_asymmetry(
    D: Callable,
    x: torch.Tensor,
    sigma: torch.Tensor | float | None = None,
    probes: int = 4,
    seed: int = 0,
) -> torch.Tensor:
    """Per-image asymmetry of the Jacobian of D at x: the mean over ``probes`` Gaussian v of
    ||(J - J^T) v|| / ||J v||, shape [B]. Zero exactly when J is symmetric, the condition under
    which RED's update is the gradient of its regulariser (Reehorst & Schniter 2019).
    ``probes`` from 1 to ``MAX_PROBES``; D must map x to x's shape and dtype.
    """
    _check_D("jacobian_asymmetry", D)
    _check_x("jacobian_asymmetry", x)
    _validate.integer("jacobian_asymmetry: probes", probes, 1, MAX_PROBES)
    _validate.seed("jacobian_asymmetry: seed", seed)
    x = x.detach()
    sigma = _per_image(sigma, x.shape[0], x, "jacobian_asymmetry")
    M = _Products(D, x, sigma, True, "jacobian_asymmetry", square=True)
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    bad = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    with torch.no_grad(), nvtx_range("pnpfast/jacobian_asymmetry"):
        for _ in range(probes):
            v = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
            jv = M.jvp(v)
            jtv = M.vjp(v)[0]
            num = (jv - jtv).flatten(1).norm(dim=1)
            den = jv.flatten(1).norm(dim=1)
            bad |= ~torch.isfinite(num) | ~torch.isfinite(den)
            total += torch.where(den > 0, num / den.clamp_min(torch.finfo(x.dtype).tiny), 0)
    if bad.any():  # one read at the end, of [B] flags the probes computed anyway
        _raise_non_finite("jacobian_asymmetry", bad.nonzero().squeeze(1))
    return total / probes


@dataclass
class LanczosEdges:
    """What ``lanczos_edges`` returns: per image [B], the smallest and largest Ritz values of J_b
    (inner bounds on its extreme eigenvalues) and norm = max(|smallest|, |largest|), a lower
    bound on ||J_b|| that is tight far sooner than power iteration's when the top of the
    spectrum is clustered (with the graph to D's parameters in differentiable mode); steps: [B]
    int64, the Krylov dimension each image reached (less than asked where its Krylov space
    became invariant, and then the Ritz values are exact); vector: [B, ...] the unit Ritz vector
    of the Ritz value of largest modulus."""

    smallest: torch.Tensor
    largest: torch.Tensor
    norm: torch.Tensor
    steps: torch.Tensor
    vector: torch.Tensor


def lanczos_edges(
    D: Callable,
    x: torch.Tensor,
    sigma: torch.Tensor | float | None = None,
    steps: int = 40,
    *,
    seed: int = 0,
    differentiable: bool = False,
) -> LanczosEdges:
    """Extreme eigenvalues of a symmetric Jacobian J_b of D at every x_b, by batched Lanczos.

    For J = J^T (a gradient-step denoiser, or I - D of one: the Hessian of its potential) the
    k-step Lanczos recursion q_{j+1} beta_{j+1} = J q_j - alpha_j q_j - beta_j q_{j-1},
    alpha_j = <q_j, J q_j>, builds the tridiagonal T_k = Q_k^T J Q_k of J on the Krylov space
    span{q_1, J q_1, ..., J^{k-1} q_1}; the extreme eigenvalues of T_k (Ritz values) converge to
    J's from inside, at a rate set by the gap relative to the whole spectrum's width rather than
    by the ratio |lambda_2 / lambda_1| of power iteration (Golub & Van Loan, Matrix Computations,
    ch. 10). That matters for ||Hess g|| of a proximal denoiser at high noise, where many
    eigenvalues crowd just under the largest and power iteration creeps up for hundreds of
    steps. One Jacobian-vector product per step for the whole batch; full reorthogonalisation
    against the stored q_j (memory: ``steps`` copies of x). J is not checked for symmetry: use
    ``jacobian_asymmetry`` for that.

    ``differentiable=True``: the recursion runs without a graph, then one product with the
    graph at the Ritz vector v of largest modulus gives norm = |<v, J v>|, differentiable with
    respect to D's parameters (a training penalty that sees the clustered top of the spectrum).

    x: [B, ...] float32 or float64 (the recursion runs in float64); sigma: None, a float, or
    [B]; q_1 Gaussian from ``seed``; ``steps`` from 1 to ``MAX_STEPS`` (and at most the size of
    one image); D must map x to x's shape and dtype.
    """
    _check_D("lanczos_edges", D)
    _check_x("lanczos_edges", x)
    _validate.integer("lanczos_edges: steps", steps, 1, MAX_STEPS)
    _validate.seed("lanczos_edges: seed", seed)
    _validate.flag("lanczos_edges: differentiable", differentiable)
    B = x.shape[0]
    sigma = _per_image(sigma, B, x, "lanczos_edges")
    x = x.detach()
    n = x[0].numel()
    steps = min(steps, n)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.device).flatten(1)
    Q = torch.zeros(B, steps, n, dtype=torch.float64, device=x.device)  # the Lanczos vectors
    Q[:, 0] = q / q.norm(dim=1, keepdim=True)
    alpha = torch.zeros(B, steps, dtype=torch.float64, device=x.device)
    beta = torch.zeros(B, steps, dtype=torch.float64, device=x.device)
    size = torch.full((B,), steps, dtype=torch.int64, device=x.device)
    with torch.no_grad(), nvtx_range("pnpfast/lanczos_edges"):
        M = _Products(D, x, sigma, False, "lanczos_edges")
        for j in range(steps):
            w = M(Q[:, j].view(x.shape).to(x.dtype)).flatten(1).to(torch.float64)
            alpha[:, j] = (Q[:, j] * w).sum(1)
            done = Q[:, : j + 1]
            for _ in range(2):  # twice is enough (Parlett, The Symmetric Eigenvalue Problem)
                w = w - torch.einsum("bkn,bk->bn", done, torch.einsum("bkn,bn->bk", done, w))
            if j + 1 == steps:
                break
            b = w.norm(dim=1)
            # the recursion's scale so far: a b that small says the Krylov space is invariant
            ref = torch.maximum(alpha[:, : j + 1].abs().amax(1), beta[:, : j + 1].amax(1))
            invariant = b <= 1e-10 * ref
            size = torch.where(invariant & (size == steps), j + 1, size)
            beta[:, j] = torch.where(size > j + 1, b, 0)
            Q[:, j + 1] = torch.where(
                size.view(-1, 1) > j + 1, w / b.clamp_min(1e-300).view(-1, 1), 0
            )
    bad = ~torch.isfinite(alpha).all(1) | ~torch.isfinite(beta).all(1)
    if bad.any():  # the read before the per-image eigenproblems, which sync anyway
        _raise_non_finite("lanczos_edges", bad.nonzero().squeeze(1))
    smallest, largest = [], []
    ritz = torch.zeros(B, steps, dtype=torch.float64)
    for i in range(B):  # the small tridiagonal eigenproblems, one per image
        k = int(size[i])
        off = beta[i, : k - 1]
        T = torch.diag(alpha[i, :k]) + torch.diag(off, 1) + torch.diag(off, -1)
        theta, Y = torch.linalg.eigh(T.cpu())
        smallest.append(theta[0])
        largest.append(theta[-1])
        ritz[i, :k] = Y[:, 0] if -theta[0] > theta[-1] else Y[:, -1]
    ritz = ritz.to(x.device)
    vector = torch.einsum("bkn,bk->bn", Q, ritz).view(x.shape).to(x.dtype)
    smallest = torch.stack(smallest).to(device=x.device, dtype=x.dtype)
    largest = torch.stack(largest).to(device=x.device, dtype=x.dtype)
    norm = torch.maximum(smallest.abs(), largest.abs())
    if differentiable:
        with nvtx_range("pnpfast/lanczos_edges/differentiable"):
            jv = torch.func.jvp(_bind(D, sigma), (x,), (vector,))[1]
            norm = (vector * jv).flatten(1).sum(1).abs()
        if not torch.isfinite(norm.detach()).all():
            _raise_non_finite("lanczos_edges", (~torch.isfinite(norm.detach())).nonzero()[:, 0])
    return LanczosEdges(smallest=smallest, largest=largest, norm=norm, steps=size, vector=vector)


def residual_lipschitz(
    D: Callable,
    x: torch.Tensor,
    sigma: torch.Tensor | float | None = None,
    *,
    method: str = "power",
    **options,
) -> SpectralNorm | LanczosEdges:
    """Per-image spectral norm of the Jacobian of I - D at x (its local Lipschitz constant):
    ``spectral_norm`` of z -> z - D(z) (``method="power"``; ``options`` as there,
    ``symmetric=True`` for a gradient-step denoiser, where I - D is the gradient of its
    potential), or ``lanczos_edges`` of it (``method="lanczos"``, only for such a denoiser;
    ``options``: steps, seed). Either result has ``.norm``, [B]."""

    def residual(z, *s):
        out = D(z, *s)
        # z - D(z) would broadcast a wrong batch or size silently, or fail inside torch
        _check_output("residual_lipschitz", out, z, square=True)
        return z - out

    if method not in ("power", "lanczos"):
        raise ValueError(f"residual_lipschitz: method must be 'power' or 'lanczos', not {method!r}")
    _check_D("residual_lipschitz", D)
    run = spectral_norm if method == "power" else lanczos_edges
    takes = [n for n in inspect.signature(run).parameters if n not in ("D", "x", "sigma")]
    unknown = [k for k in options if k not in takes]
    if unknown:
        raise TypeError(
            f"residual_lipschitz: {', '.join(map(repr, unknown))} is not an option of "
            f"method={method!r} ({run.__name__}); it takes {', '.join(takes)}"
        )
    try:
        return run(residual, x, sigma, **options)
    except (FloatingPointError, ValueError, TypeError) as e:
        if type(e) not in (FloatingPointError, ValueError, TypeError) or str(e).startswith(
            "residual_lipschitz:"
        ):
            raise  # a subclass (e.g. a backend error) keeps its own type and message
        raise type(e)(f"residual_lipschitz: {e}") from e
