"""deepinv's own DPIR and PGD with deepinv's physics and with pnpfast's drop-in (op ``deepinv``).

Problem: images cut from ``pnpfast.data`` (the astronaut, or the cameraman for one channel), one
crop per image at seeded offsets, of the requested shape (default 8x3x256x256, float32, the
CPU, one thread: ``--threads``, default 1), degraded by

    blur   deepinv.physics.BlurFFT(img_size, filter=motion_kernel()[None, None]) (15x15, 30 deg)
    sr2    deepinv.physics.Downsampling(img_size, filter=<x2 bicubic>[None, None], factor=2,
           padding="circular")

plus white Gaussian noise of std 0.03. Each problem runs with deepinv's physics (provider
``.../original``) and with ``pnpfast.interop.deepinv.accelerate(physics)`` (``.../accelerated``),
the same y, the same model object type, under ``torch.no_grad()``:

    dpir   deepinv.optim.DPIR(sigma=0.03, denoiser=D): HQS, 8 iterations, deepinv's schedule
    pgd    deepinv.optim.PGD(data_fidelity=L2(), prior=PnP(D), stepsize=1.0, g_param=0.05,
           max_iter=8, early_stop=False): the gradient path (L2.grad = A^T A x - A^T y)

and two denoisers D: ``identity`` (a deepinv Denoiser returning its input: the time of
everything that is not the denoiser, what the accelerated physics can change) and
``conditional`` (pnpfast's shipped noise-conditional DRUNet through
``pnpfast.interop.deepinv.PnpfastDenoiser``: end to end). Rows: op ``deepinv``, provider
``<algorithm>/<problem>/<denoiser>/<original|accelerated>``; the default runs dpir/blur,
dpir/sr2 and pgd/blur (``--problems``) with both denoisers (``--denoisers``).

Correctness: before timing, the two outputs must agree to max |out - ref| <= 1e-4 * max |ref|
(float32; with the identity denoiser DPIR's x-update amplifies FFT rounding where the kernel's
spectrum nearly vanishes, ~2e-5; tests/interop/test_deepinv_algorithms.py checks every iterate);
an accelerated row that fails is timed but marked incorrect, and no speed-up is claimed.

Timing: ``harness.measure_many``, the two providers of a problem interleaved call by call
(``--reps``, default 20 for identity rows after ``--warmup`` calls; ``--e2e-reps`` for the
conditional ones, default 5, after one; the correctness call comes first, never timed), median
and p20/p80 per provider. Every call gets a y that the accelerated physics has not cached (two
copies of y alternate), as when a user restores a new measurement, so its first A^T y is paid
each time. The machine is shared: only ratios within one run mean something, and every row
notes the load average.

Phases (op ``deepinv-phases``, skipped by ``--no-phases``), the calls deepinv's loops make,
timed alone and interleaved on the same inputs, provider
``<call>/<problem>/<original|accelerated>``:

    prox_l2       physics.prox_l2(z, y, gamma), gamma a 0-d float32 tensor as DPIR passes it
                  (accelerated: y's terms cached by the first call, as in the loop)
    A_adjoint     physics.A_adjoint(y) (DPIR's init calls it twice; accelerated: a copy of the
                  cached A^T y)
    A_adjoint-new-y   the same for a y the physics has not cached (two copies alternate; the
                  accelerated provider on a clone of its own, so the other calls keep their y)
    A_adjoint_A   physics.A_adjoint_A(x) (PGD's gradient)
    grad          deepinv.optim.data_fidelity.L2().grad(x, y, physics) = A^T A x - A^T y
    relaxation    the iterator's relaxation_step(u, v, beta=1) = 1 u + 0 v, which deepinv's HQS
                  and PGD run every iteration (not the physics': the same in both; provider
                  ``relaxation/<problem>/deepinv``)

and a printed in-loop profile of each algorithm with the identity denoiser (``profile_run``):
deepinv's steps wrapped with timers inside a real run (init = A^T y twice, the f-step and the
physics calls inside it, the g-step, relaxation_step, the rest = deepinv's Python bookkeeping),
the median of ``--reps`` runs per provider, a new y each run.

Memory (``--keep-memory``): on this workplace's VM a page fault costs ~1.6 us, and glibc gives
every freed block above its mmap threshold back to the system, so each fresh image-sized tensor
faults its pages in again (the shipped denoiser's call on 8x3x256x256 spends 1.0 of its 1.7 s in
the kernel). ``--keep-memory`` sets glibc's M_MMAP_THRESHOLD to 1 GiB and M_TRIM_THRESHOLD to
2 GiB - 1 (``mallopt``) before the benchmark's tensors are made, so freed memory is reused
without faults; its rows have ops ``deepinv/kept-memory`` and ``deepinv-phases/kept-memory``.
The default keeps glibc's behaviour, what a user of this machine gets; there a DPIR run with
the shipped denoiser takes ~13 s, ~8 s of it in ~4.8 million page faults whose count varies by
a few percent from run to run for either provider, more than the ~0.1 s the physics saves, so
the end-to-end rows of the default mode resolve "no slower" only to about +-2%.

Targets (issue 20, CPU): accelerated >= 1.5x faster than original with the identity denoiser,
and no slower end to end (conditional denoiser).

    python benchmarks/bench_deepinv.py                  # 8x3x256x256, 1 thread, ~10 minutes
    python benchmarks/bench_deepinv.py --quick --shapes 2x3x32x32 --out /tmp/deepinv.jsonl
"""

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from deepinv_compat import import_deepinv
from harness import (
    check_close,
    check_known,
    common_parser,
    glibc_mallopt,
    measure_many,
    parse_common,
    parse_list,
    quantile,
    report_rows,
    timing_rows,
)

import pnpfast

OP = "deepinv"
PHASES_OP = "deepinv-phases"
DEFAULT_SHAPES = "8x3x256x256"
NOISE = 0.03
PGD_STEPSIZE = 1.0
PGD_SIGMA = 0.05
PGD_ITERS = 8
RTOL = 1e-4
PROVIDERS = ("original", "accelerated")
PROBLEMS = ("dpir/blur", "dpir/sr2", "pgd/blur")
DENOISERS = ("identity", "conditional")
PHYSICS = ("blur", "sr2")
TARGETS = {"identity": 1.5, "conditional": 1.0}
E2E_REPS = 5


def images(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """[B, C, H, W] float32 on [0, 1]: B crops of the astronaut (C = 3) or the cameraman
    (C = 1) at seeded offsets; C = 2 or > 3 repeats the gray image."""
    B, C, H, W = shape
    source = pnpfast.data.astronaut() if C == 3 else pnpfast.data.camera()
    if C not in (1, 3):
        source = source.expand(-1, C, -1, -1)
    full_h, full_w = source.shape[-2:]
    if not (full_h >= H and full_w >= W):
        raise ValueError(f"shape {shape}: H and W must be at most {full_h}x{full_w}")
    g = torch.Generator().manual_seed(seed)
    crops = []
    for _ in range(B):
        i = int(torch.randint(0, full_h - H + 1, (1,), generator=g))
        j = int(torch.randint(0, full_w - W + 1, (1,), generator=g))
        crops.append(source[:, :, i : i + H, j : j + W])
    return torch.cat(crops).contiguous()


def make_physics(dinv, kind: str, shape: tuple[int, ...]):
    """deepinv's physics of ``kind`` for images of ``shape`` (module docstring)."""
    img = tuple(shape[1:])
    if kind == "blur":
        k = pnpfast.data.motion_kernel()
        return dinv.physics.BlurFFT(img_size=img, filter=k[None, None])
    if kind == "sr2":
        k = pnpfast.operators.SuperResolution.bicubic(2).kernel[0].float()
        return dinv.physics.Downsampling(
            img_size=img, filter=k[None, None], factor=2, padding="circular"
        )
    raise ValueError(f"unknown physics {kind!r}; choose from {', '.join(PHYSICS)}")


def measurement(physics, x: torch.Tensor, seed: int = 1) -> torch.Tensor:
    with torch.no_grad():
        ax = physics.A(x)
    g = torch.Generator().manual_seed(seed)
    return ax + NOISE * torch.randn(ax.shape, generator=g, dtype=ax.dtype)


def make_denoiser(dinv, interop, name: str):
    if name == "identity":

        class Identity(dinv.models.Denoiser):
            """D(x, sigma) = x: a run with it times everything but the denoiser."""

            def forward(self, x, sigma, *args, **kwargs):
                return x

        return Identity()
    if name == "conditional":
        return interop.PnpfastDenoiser(pnpfast.denoisers.load())
    raise ValueError(f"unknown denoiser {name!r}; choose from {', '.join(DENOISERS)}")


def make_model(dinv, algorithm: str, denoiser):
    if algorithm == "dpir":
        return dinv.optim.DPIR(sigma=NOISE, denoiser=denoiser)
    if algorithm == "pgd":
        return dinv.optim.PGD(
            data_fidelity=dinv.optim.data_fidelity.L2(),
            prior=dinv.optim.prior.PnP(denoiser=denoiser),
            stepsize=PGD_STEPSIZE,
            g_param=PGD_SIGMA,
            max_iter=PGD_ITERS,
            early_stop=False,
        )
    raise ValueError(f"unknown algorithm {algorithm!r}")


@dataclass
class Problem:
    """One physics on one batch: deepinv's physics, the accelerated one, x, y, and two more
    copies of y (``fresh_y`` alternates them, so that every call sees a y the accelerated
    physics has not cached, as when a user restores a new measurement)."""

    kind: str
    shape: tuple[int, ...]
    original: object
    accelerated: object
    x: torch.Tensor
    y: torch.Tensor
    copies: tuple[torch.Tensor, torch.Tensor]
    turns: dict[str, int] = field(default_factory=dict)

    def physics(self, provider: str):
        return self.original if provider == "original" else self.accelerated

    def fresh_y(self, caller: str) -> torch.Tensor:
        """The copy of y that ``caller`` did not get last time."""
        self.turns[caller] = turn = self.turns.get(caller, 0) + 1
        return self.copies[turn % 2]


def setup(dinv, interop, kind: str, shape: tuple[int, ...]) -> Problem:
    x = images(shape)
    original = make_physics(dinv, kind, shape)
    accelerated = interop.accelerate(original)
    y = measurement(original, x)
    return Problem(kind, shape, original, accelerated, x, y, (y.clone(), y.clone()))


def run_algorithm(
    dinv, interop, problem: Problem, algorithm: str, denoiser: str, providers, *, warmup, reps, op
) -> list[dict]:
    """The rows of one (algorithm, problem, denoiser): each provider checked, then timed
    interleaved."""
    den = make_denoiser(dinv, interop, denoiser)
    prefix = f"{algorithm}/{problem.kind}/{denoiser}"
    fns, correct, notes = {}, {}, {}
    expected = None
    for provider in ("original", "accelerated"):
        model = make_model(dinv, algorithm, den)
        physics = problem.physics(provider)

        def call(model=model, physics=physics, provider=provider) -> torch.Tensor:
            with torch.no_grad():
                return model(problem.fresh_y(provider), physics)

        out = call()
        if provider == "original":
            expected = out
        ok, err = check_close(out, expected, RTOL)
        if provider in providers:
            name = f"{prefix}/{provider}"
            fns[name], correct[name] = call, ok
            if provider == "accelerated":
                notes[name] = f"max rel diff {err:.1e} vs original" + ("" if ok else ", WRONG")
    timings = measure_many(fns, warmup=warmup, reps=reps, device="cpu")
    return timing_rows(
        op, timings, correct, notes, shape=problem.shape, dtype=torch.float32, device="cpu"
    )


def phase_calls(dinv, problem: Problem, provider: str) -> dict[str, Callable[[], torch.Tensor]]:
    """The calls of deepinv's loops on ``provider``'s physics (module docstring)."""
    physics, x, y = problem.physics(provider), problem.x, problem.y
    # a copy of its own for the new-y calls, so that they never evict y from the cache the
    # other calls use
    other = physics.clone()
    z = x + 0.01
    gamma = torch.tensor(2.5)  # 0-d float32, as DPIR passes its stepsize
    fidelity = dinv.optim.data_fidelity.L2()
    return {
        f"prox_l2/{problem.kind}/{provider}": lambda: physics.prox_l2(z, y, gamma),
        f"A_adjoint/{problem.kind}/{provider}": lambda: physics.A_adjoint(y),
        f"A_adjoint-new-y/{problem.kind}/{provider}": lambda: other.A_adjoint(
            problem.fresh_y(provider)
        ),
        f"A_adjoint_A/{problem.kind}/{provider}": lambda: physics.A_adjoint_A(x),
        f"grad/{problem.kind}/{provider}": lambda: fidelity.grad(x, y, physics),
    }


def run_phases(dinv, problem: Problem, providers, *, warmup, reps, op) -> list[dict]:
    """Per-call timings of the phases, both providers interleaved, outputs checked."""
    calls = {p: phase_calls(dinv, problem, p) for p in providers}
    fns, correct, notes = {}, {}, {}
    reference = phase_calls(dinv, problem, "original")
    with torch.no_grad():
        for p in providers:
            for (name, fn), ref_fn in zip(calls[p].items(), reference.values(), strict=True):
                ok, err = check_close(fn(), ref_fn(), RTOL)
                fns[name], correct[name] = fn, ok
                if p == "accelerated":
                    notes[name] = f"max rel diff {err:.1e} vs original"
        iterator = dinv.optim.optim_iterators.HQSIteration()
        u, v = problem.x, problem.x + 0.01
        relax = f"relaxation/{problem.kind}/deepinv"
        fns[relax] = lambda: iterator.relaxation_step(u, v, 1.0)
        correct[relax] = True
        notes[relax] = "deepinv's relaxation_step(u, v, 1.0), run by HQS and PGD every iteration"
        timings = measure_many(fns, warmup=warmup, reps=reps, device="cpu")
    return timing_rows(
        op, timings, correct, notes, shape=problem.shape, dtype=torch.float32, device="cpu"
    )


def _ms(row: dict) -> str:
    return f"{row['median_ms']:.4g} ms ({row['p20_ms']:.4g}-{row['p80_ms']:.4g})"


def ratio_lines(rows: list[dict]) -> list[str]:
    """original / accelerated per problem, with the target verdicts."""
    by = {r["provider"]: r for r in rows}
    lines = []
    for name, acc in by.items():
        if not name.endswith("/accelerated"):
            continue
        orig = by.get(name.removesuffix("accelerated") + "original")
        if orig is None:
            continue
        prefix = name.removesuffix("/accelerated")
        denoiser = prefix.rsplit("/", 1)[-1]
        if not acc["correct"]:
            lines.append(f"{prefix}: accelerated output differs from the original, no speed-up")
            continue
        ratio = orig["median_ms"] / acc["median_ms"]
        spread = f"original {_ms(orig)}, accelerated {_ms(acc)}"
        target = TARGETS.get(denoiser)
        verdict = ""
        if target is not None:
            verdict = f" (target >= {target:.1f}x: {'met' if ratio >= target else 'MISSED'})"
        overlap = acc["p20_ms"] <= orig["p80_ms"] and orig["p20_ms"] <= acc["p80_ms"]
        noise = "; the p20-p80 ranges overlap (a difference within the noise)" if overlap else ""
        lines.append(f"{prefix}: {ratio:.2f}x{verdict}; {spread}{noise}")
    return lines


class _Clock:
    """Wall time of calls, summed per name (CPU, one thread: calls are synchronous); a call
    made inside another timed call is also summed as "<name> in <outer>"."""

    def __init__(self):
        self.ms: dict[str, float] = {}
        self.stack: list[str] = []

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            keys = [name] + [f"{name} in {outer}" for outer in self.stack[-1:]]
            self.stack.append(name)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = (time.perf_counter() - t0) * 1e3
                self.stack.pop()
                for key in keys:
                    self.ms[key] = self.ms.get(key, 0.0) + dt

        return timed


def profile_run(dinv, interop, problem: Problem, algorithm: str, provider: str, reps: int):
    """Median per run (ms) of where one identity-denoiser run's time goes, measured inside
    deepinv's loop by wrapping its steps: ``init`` (init_iterate_fn: A^T y twice), ``f-step``
    (the data step: fStepHQS = L2.prox, fStepPGD = x - stepsize L2.grad), of which ``physics in
    f-step`` (the calls of prox_l2 / A_adjoint / A_adjoint_A made inside it), ``g-step`` (the
    PnP prior: the identity call), ``relaxation`` (relaxation_step) and ``rest`` (the total
    less those: deepinv's Python bookkeeping)."""
    model = make_model(dinv, algorithm, make_denoiser(dinv, interop, "identity"))
    physics = problem.physics(provider).clone()  # instance attributes below stay off the bench's
    fixed, it = model.fixed_point, model.fixed_point.iterator
    runs = []
    for _ in range(max(1, reps) + 1):
        clock = _Clock()
        fixed.init_iterate_fn = clock.wrap("init", model.init_iterate_fn)
        it.f_step.forward = clock.wrap("f-step", type(it.f_step).forward.__get__(it.f_step))
        it.g_step.forward = clock.wrap("g-step", type(it.g_step).forward.__get__(it.g_step))
        it.relaxation_step = clock.wrap("relaxation", type(it).relaxation_step.__get__(it))
        for name in ("prox_l2", "A_adjoint", "A_adjoint_A"):
            setattr(
                physics, name, clock.wrap("physics", getattr(type(physics), name).__get__(physics))
            )
        y = problem.fresh_y(f"profile/{provider}")
        t0 = time.perf_counter()
        with torch.no_grad():
            model(y, physics)
        total = (time.perf_counter() - t0) * 1e3
        ms = clock.ms
        ms["rest"] = total - sum(ms.get(k, 0.0) for k in ("init", "f-step", "g-step", "relaxation"))
        ms["total"] = total
        runs.append(ms)
    runs = runs[1:]  # the first run is a warm-up
    keys = ("total", "init", "f-step", "physics in f-step", "g-step", "relaxation", "rest")
    return {k: quantile([r.get(k, 0.0) for r in runs], 0.5) for k in keys}


def profile_lines(dinv, interop, problem: Problem, algorithms, providers, reps: int) -> list[str]:
    """The in-loop profile of ``algorithms`` with the identity denoiser, both providers."""
    lines = []
    for algorithm in algorithms:
        for provider in providers:
            m = profile_run(dinv, interop, problem, algorithm, provider, reps)
            lines.append(
                f"{algorithm}/{problem.kind}/identity/{provider} in-loop, median of {reps} runs: "
                f"total {m['total']:.1f} ms = init {m['init']:.1f} + f-step {m['f-step']:.1f} "
                f"(physics calls {m['physics in f-step']:.1f}) + g-step {m['g-step']:.1f} "
                f"+ relaxation {m['relaxation']:.1f} + rest {m['rest']:.1f}"
            )
    return lines


def keep_memory() -> None:
    """glibc: serve large blocks from the heap and never trim it (module docstring)."""
    if not glibc_mallopt(1 << 30, (1 << 31) - 1):
        raise RuntimeError("glibc's mallopt refused the thresholds of --keep-memory")


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.splitlines()[0], default_shapes=DEFAULT_SHAPES, name=OP)
    parser.set_defaults(threads=1, device="cpu")
    parser.add_argument(
        "--problems",
        type=parse_list,
        default=list(PROBLEMS),
        help=f"algorithm/physics pairs (default {','.join(PROBLEMS)})",
    )
    parser.add_argument(
        "--denoisers",
        type=parse_list,
        default=list(DENOISERS),
        help=f"denoisers (default {','.join(DENOISERS)})",
    )
    parser.add_argument(
        "--e2e-reps",
        type=int,
        default=None,
        help=f"timed calls of the conditional-denoiser rows (default {E2E_REPS}, quick 1)",
    )
    parser.add_argument("--no-phases", action="store_true", help="skip the per-phase timings")
    parser.add_argument(
        "--keep-memory",
        action="store_true",
        help="glibc keeps freed memory (mallopt; see the module docstring)",
    )
    args, providers, reps, warmup = parse_common(parser, argv, PROVIDERS)
    if args.device != "cpu":
        parser.error("this benchmark runs on the CPU (deepinv's physics as a CPU user runs them)")
    check_known(parser, "problems", args.problems, PROBLEMS)
    check_known(parser, "denoisers", args.denoisers, DENOISERS)
    for shape in args.shapes:
        if len(shape) != 4 or shape[2] % 2 or shape[3] % 2:
            parser.error(f"shape {'x'.join(map(str, shape))} is not BxCxHxW with even H and W")
    e2e_reps = args.e2e_reps or (1 if args.quick else E2E_REPS)
    ops = (OP, PHASES_OP)
    if args.keep_memory:
        keep_memory()
        ops = (f"{OP}/kept-memory", f"{PHASES_OP}/kept-memory")
    dinv, note = import_deepinv()
    if dinv is None:
        print(f"deepinv benchmark skipped: {note}", file=sys.stderr)
        return 0
    import pnpfast.interop.deepinv as interop

    if note:
        print(note)
    threads = torch.get_num_threads()
    memory = "glibc keeps freed memory" if args.keep_memory else "glibc's default allocator"
    print(
        f"{ops[0]} on the CPU, {threads} thread(s), {memory}: {reps} reps ({e2e_reps} end to end)"
    )
    for shape in args.shapes:
        kinds = [k for k in PHYSICS if any(p.endswith("/" + k) for p in args.problems)]
        for kind in kinds:
            problem = setup(dinv, interop, kind, shape)
            algorithms = [p.split("/")[0] for p in args.problems if p.endswith("/" + kind)]
            for algorithm in algorithms:
                for denoiser in args.denoisers:
                    # the conditional rows take seconds per call: one warm-up call (after the
                    # correctness call) is enough
                    n, w = (e2e_reps, 1) if denoiser == "conditional" else (reps, warmup)
                    rows = run_algorithm(
                        dinv,
                        interop,
                        problem,
                        algorithm,
                        denoiser,
                        providers,
                        warmup=w,
                        reps=n,
                        op=ops[0],
                    )
                    report_rows(args.out, rows, "", ratio_lines(rows))
            if not args.no_phases:
                rows = run_phases(dinv, problem, providers, warmup=warmup, reps=reps, op=ops[1])
                profile = profile_lines(dinv, interop, problem, algorithms, providers, reps)
                lines = ratio_lines(rows) + profile
                report_rows(args.out, rows, f"phases of {kind}", lines)
    print(f"\nrows appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
