"""Benchmark of batched per-image Jacobian spectral norms (``pnpfast.diagnostics.spectral_norm``)
and of its fused step (op ``power_step``).

Part ``batch`` (default shape 64x3x64x64): the spectral norm of the shipped noise-conditional
denoiser's Jacobian at seeded noisy images (clean ../shared CBSD68 crops when present, else
smooth random images, plus noise of 15/255; sigma 15/255), power iteration on J^T J with the same
``iters`` and ``tol``:
    batched          one spectral_norm call for the whole batch (converged images leave it)
    per-image loop   spectral_norm on one image at a time, the way a library without batched
                     per-image stopping does it
Both report images per second and the mean steps per image; the batched estimates must match
the loop's within 1e-3 relative (both start from the same vectors). Target: batched >= 5x the images
per second of the loop for 64 images (a GPU target; the CPU number is recorded too).

Part ``step`` (default shapes 64x3x64x64 and 64x3x256x256): one power_step call on seeded u, w
and a state with every image active, providers
    torch-unfused        the torch sequence a driver would write: two reductions, the estimate,
                         the convergence test and the rescale as separate ops
    reference            pnpfast.ops.power_step(..., backend="reference")
    reference-compiled   torch.compile(power_step_reference)
    triton, cuda         on CUDA tensors only, where pnpfast.backends() reports them
Bytes moved: read u and w, write u' (3 N e), plus the state read and written (8 B e).
On a GPU, frac_copy_bw divides GB/s by the device copy bandwidth (target >= 85%).
"""

import sys
from collections.abc import Callable

import harness
import torch
from harness import (
    append_rows,
    check_close,
    common_parser,
    copy_bandwidth,
    copy_bw_line,
    fast_backend_reason,
    format_table,
    load_note,
    make_row,
    measure_many,
    parse_common,
    parse_shapes,
)

import pnpfast
from pnpfast.diagnostics import spectral_norm
from pnpfast.io import read_image
from pnpfast.ops import power_step, power_step_reference
from pnpfast.ops.power_step import initial_state

DATA = harness.DATA

OP = "spectral_norm"
DEFAULT_SHAPES = "64x3x64x64,64x3x256x256"
QUICK_SHAPES = "4x3x32x32"
BATCH_SHAPE = "64x3x64x64"
QUICK_BATCH_SHAPE = "3x1x24x24"
PROVIDERS = ("torch-unfused", "reference", "reference-compiled", "triton", "cuda")
QUICK_SKIPS = ("reference-compiled",)
RTOL = 1e-4
BATCH_RTOL = 1e-3
SPEEDUP_TARGET = 5.0
FRAC_TARGET = 0.85
TOL = 1e-3


class Skip(Exception):
    """A provider that cannot run here; the message says why."""


def torch_unfused(w, u, state, tol, gram):
    """The separate torch ops that one fused power_step replaces."""
    estimate, scale, active, steps = state.unbind(1)
    dot = torch.linalg.vecdot(u.flatten(1), w.flatten(1))
    wnorm = torch.linalg.vector_norm(w.flatten(1), dim=1)
    rayleigh = scale**2 * dot
    new = torch.sqrt(torch.clamp(rayleigh, min=0)) if gram else rayleigh.abs()
    converged = (steps > 0) & ((new - estimate).abs() <= tol * new) | (wnorm == 0)
    on = active > 0
    out = torch.where(on.view(-1, 1, 1, 1), scale.view(-1, 1, 1, 1) * w, u)
    new_scale = torch.where(wnorm == 0, 0, 1 / (scale * wnorm))
    nxt = torch.stack(
        [
            torch.where(on, new, estimate),
            torch.where(on, new_scale, scale),
            torch.where(on & converged, 0, active),
            torch.where(on, steps + 1, steps),
        ],
        1,
    )
    return out, nxt


def step_provider(name: str, args: tuple, device: str) -> Callable:
    if name == "torch-unfused":
        return lambda: torch_unfused(*args)
    if name in ("reference", "triton", "cuda"):
        if name != "reference":
            reason = fast_backend_reason(name, device)
            if reason:
                raise Skip(reason)
        return lambda: power_step(*args, backend=name)
    if name == "reference-compiled":
        compiled = torch.compile(power_step_reference, dynamic=False)
        try:
            compiled(*args)
        except Exception as exc:
            raise Skip(f"torch.compile failed: {type(exc).__name__}: {exc}") from None
        return lambda: compiled(*args)
    raise ValueError(f"unknown provider {name!r}; choose from {', '.join(PROVIDERS)}")


def run_step(shape, device, providers, *, warmup, reps) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(shape, generator=gen).to(device)
    w = torch.randn(shape, generator=gen).to(device)
    state = initial_state(u)
    state[:, 3] = 1  # a later step: the convergence test runs
    args = (w, u, state, TOL, True)
    expected = power_step_reference(*args)
    fns, checks, notes = {}, {}, {}
    for name in providers:
        try:
            fn = step_provider(name, args, device)
            got = fn()
        except Skip as skip:
            print(f"  skip {name}: {skip}", file=sys.stderr)
            continue
        errs = [check_close(g, e, RTOL) for g, e in zip(got, expected, strict=True)]
        fns[name], checks[name] = fn, all(ok for ok, _ in errs)
        notes[name] = "" if checks[name] else f"max rel err {max(e for _, e in errs):.2e}"
    timings = measure_many(fns, warmup=warmup, reps=reps, device=device, flush_l2=True)
    B, n = shape[0], u[0].numel()
    nbytes = (3 * B * n + 8 * B) * u.element_size()
    load = load_note(device)
    return [
        make_row(
            op="power_step",
            provider=name,
            shape=shape,
            dtype=u.dtype,
            timing=timings[name],
            nbytes=nbytes,
            device=device,
            correct=checks[name],
            note="; ".join(x for x in (notes[name], load) if x),
        )
        for name in fns
    ]


def batch_images(shape, device) -> torch.Tensor:
    """Seeded noisy images: random crops of the CBSD68 images from ../shared/data when present
    (gray: their luminance), else smooth random images, plus noise of 15/255."""
    B, C, H, W = shape
    gen = torch.Generator().manual_seed(0)
    paths = sorted((DATA / "images" / "CBSD68").glob("*.png"))
    if paths:
        crops = []
        for b in range(B):
            img = read_image(paths[b % len(paths)])[:, :3]
            if C == 1:
                img = (img * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(
                    1, keepdim=True
                )
            i = int(torch.randint(img.shape[-2] - H + 1, (1,), generator=gen))
            j = int(torch.randint(img.shape[-1] - W + 1, (1,), generator=gen))
            crops.append(img[..., i : i + H, j : j + W])
        clean = torch.cat(crops)
    else:
        low = torch.rand(B, C, max(1, H // 8), max(1, W // 8), generator=gen)
        clean = torch.nn.functional.interpolate(low, size=(H, W), mode="bilinear")
    noisy = clean + (15 / 255) * torch.randn(clean.shape, generator=gen)
    return noisy.to(device)


def run_batch(shape, device, *, iters, reps) -> tuple[list[dict], list[str]]:
    D = pnpfast.denoisers.load().to(device).eval()
    x = batch_images(shape, device)
    sigma = 15 / 255
    B = shape[0]

    v0 = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(device)

    def batched():
        return spectral_norm(D, x, sigma, iters=iters, tol=TOL, v0=v0)

    def loop():
        return [
            spectral_norm(D, x[b : b + 1], sigma, iters=iters, tol=TOL, v0=v0[b : b + 1])
            for b in range(B)
        ]

    res_b, res_l = batched(), loop()  # the results compared; also the warm-up
    timings = measure_many(
        {"batched": batched, "per-image loop": loop}, warmup=0, reps=reps, device=device
    )
    norm_l = torch.cat([r.norm for r in res_l])
    steps = {
        "batched": res_b.iterations.double().mean().item(),
        "per-image loop": torch.cat([r.iterations for r in res_l]).double().mean().item(),
    }
    ok, err = check_close(res_b.norm, norm_l, BATCH_RTOL)
    load = load_note(device)
    rows, ips = [], {}
    for name, timing in timings.items():
        ips[name] = B / (timing.median_ms * 1e-3)
        note = (
            f"{ips[name]:.2f} images/s; {steps[name]:.1f} steps per image; iters {iters}, tol {TOL}"
        )
        if not ok:
            note += f"; batched vs loop max rel err {err:.2e}"
        rows.append(
            make_row(
                op=OP,
                provider=name,
                shape=shape,
                dtype=x.dtype,
                timing=timing,
                nbytes=None,
                device=device,
                correct=ok,
                note="; ".join(n for n in (note, load) if n),
            )
        )
    ratio = ips["batched"] / ips["per-image loop"]
    where = "" if torch.device(device).type == "cuda" else " (the target is for a GPU)"
    verdict = "met" if ratio >= SPEEDUP_TARGET else "MISSED"
    lines = [
        f"batched vs per-image loop: {ratio:.2f}x the images per second "
        f"(target >= {SPEEDUP_TARGET:.0f}x: {verdict}){where}",
        f"median norm {res_b.norm.median().item():.4f}; batched vs loop max rel diff {err:.1e}",
    ]
    return rows, lines


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.splitlines()[0], default_shapes=DEFAULT_SHAPES, name=OP)
    parser.add_argument("--part", choices=("batch", "step", "all"), default="all")
    parser.add_argument(
        "--batch-shape", type=parse_shapes, default=None, help=f"default {BATCH_SHAPE}"
    )
    parser.add_argument("--iters", type=int, default=50, help="power-iteration steps at most")
    args, providers, reps, warmup = parse_common(parser, argv, PROVIDERS, QUICK_SKIPS)
    device = args.device
    if args.part in ("batch", "all"):
        (shape,) = args.batch_shape or parse_shapes(
            QUICK_BATCH_SHAPE if args.quick else BATCH_SHAPE
        )
        batch_reps = 1 if args.quick else 3
        print(f"spectral_norm on {device}: {shape}, {batch_reps} timed runs each")
        rows, lines = run_batch(shape, device, iters=args.iters, reps=batch_reps)
        append_rows(args.out, rows)
        print(format_table(rows))
        for line in lines:
            print("  " + line)
    if args.part in ("step", "all"):
        shapes = args.shapes
        if args.quick and shapes == parse_shapes(DEFAULT_SHAPES):
            shapes = parse_shapes(QUICK_SHAPES)
        bw = copy_bandwidth(device)
        print(
            f"\npower_step on {device}: copy bandwidth {bw:.1f} GB/s, {reps} reps after {warmup} warmup"
        )
        for shape in shapes:
            rows = run_step(shape, device, providers, warmup=warmup, reps=reps)
            append_rows(args.out, rows)
            print(format_table(rows))
            if torch.device(device).type == "cuda":
                for r in rows:
                    if r["provider"] in ("triton", "cuda") and r["correct"] and r["frac_copy_bw"]:
                        print("  " + copy_bw_line(r["provider"], r["frac_copy_bw"], FRAC_TARGET))
    print(f"\nrows appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
