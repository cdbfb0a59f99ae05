"""Studies of provably convergent PnP: the gradient-step, proximal and regulariser-gradient
networks (denoising PSNR, the Lipschitz constant of I - D), GS-PnP and Prox-PnP deblurring, and
the batched throughput of GS-PnP's per-image backtracking.

Parts (``--part``, several allowed; default all). Networks come from ``--weights KIND=PATH``
(KIND one of gs, prox, reg-D, reg-G; pnpfast weight files, e.g. a run's ``best.pt``); without
``--weights``, the shipped ``load("gradient-step")`` and ``load("proximal")`` where installed:

denoise
    PSNR on CBSD68 (BSD68 for gray networks) at sigma 15, 25, 50 (/255; ``--sigmas``) of every
    given denoiser (gs, prox, reg-D) and of the shipped conditional default, by the protocol of
    bench_denoisers.py (seeded noise, clamped output, mean PSNR over the images;
    ``--max-images`` keeps the first N).
lipschitz
    The spectral norm of the Jacobian of I - D (= Hess g, symmetric: power iteration on it) of
    the gs and prox networks at every noisy CBSD68 (gray: BSD68) image (``--crop`` pixel centre
    crops), at the noise level of the image, with ``pnpfast.diagnostics.residual_lipschitz``
    (``--power-iters`` steps at most, tol 1e-4), and with ``lanczos_edges``
    (``--lanczos-steps``, 0 for none), whose estimate is tight far sooner where many eigenvalues
    crowd under the largest (high sigma): mean and max per sigma. Both are lower bounds. The
    proximal denoiser needs max < 1.
deblur
    Hurault et al.'s deblurring: each clean image (Set3C, and CBSD68 with ``--max-images``;
    ``--deblur-set NAME``, repeated, chooses the sets) is
    blurred by circular convolution with each of the 10 kernels (the 8 Levin et al. kernels, the
    9x9 uniform and the 25x25 Gaussian of std 1.6 of RED) and gets AWGN of 2.55, 7.65 and
    12.75 /255 (seeded); all (image, kernel) pairs of a level run as one batch with per-image
    kernels. gs: ``gs-pnp`` with lam 0.1, sigma_d 1.8 sigma, tau 1/lam, gamma 0.1, eta 0.9, up
    to ``--max-iter`` (400) iterations, tol 1e-5 on F; prox: ``prox-pnp-drs`` with the paper's
    per-level (lam, sigma_d / sigma) = (5, 2), (1.5, 1), (1, 0.75), alpha 0.5, and
    ``prox-pnp-pgd`` with lam 0.99, sigma_d max(sigma / 2, 1.9/255); reg-G: ``pnp-reg`` with
    lam 1 and mu 1 / ||A^T A||. PSNR per image, kernel and level; F against iteration is
    plotted to ``--plot`` (default benchmarks/results/convergent_objective.png).
throughput
    GS-PnP (gs network, or a random smooth one without weights) on a batch of ``--batch`` (8)
    degraded Set3C crops with different kernels and noise levels, against the same images one at
    a time: images per second (``--max-iter`` iterations at tol 0, so both do the same steps).
    Target on a GPU: the batch >= 4x the images per second of batch size 1.

Rows go to ``--out`` (default benchmarks/results/convergent.jsonl), each part's rows appended as
soon as a (part, network, level) is done; each row names the ``--weights`` and ``--tag``.
Needs ../shared/data (``--data``); exits 2 without it.

    python benchmarks/bench_convergent.py --weights gs=runs/gs/best.pt --weights prox=... \\
        [--part deblur] [--crop 128] [--max-iter 400] [--device cuda]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from bench_denoisers import denoise_set, set_images

import pnpfast
from pnpfast.diagnostics import residual_lipschitz

DATA = harness.DATA
PARTS = ("denoise", "lipschitz", "deblur", "throughput")
KINDS = ("gs", "prox", "reg-D", "reg-G")
SIGMAS = (15, 25, 50)
NOISE_LEVELS = (2.55, 7.65, 12.75)
DRS_SETTINGS = {2.55: (5.0, 2.0), 7.65: (1.5, 1.0), 12.75: (1.0, 0.75)}  # (lam, sigma_d / sigma)
SPEEDUP_TARGET = 4.0
KERNEL_SIZE = 27


def hurault_kernels(data: Path) -> tuple[torch.Tensor, list[str]]:
    """The 8 Levin kernels, RED's 9x9 uniform and 25x25 Gaussian, zero-padded to 27x27."""
    arrays = [np.load(data / "kernels" / "levin09" / f"levin09_k{i}.npy") for i in range(1, 9)]
    names = [f"levin{i}" for i in range(1, 9)]
    for name in ("red_uniform_9x9", "red_gaussian_25x25_std1.6"):
        arrays.append(np.load(data / "kernels" / "red" / f"{name}.npy"))
        names.append(name.removeprefix("red_").split("_")[0])
    out = []
    for k in arrays:
        k = torch.from_numpy(np.asarray(k, dtype=np.float64))
        py, px = (KERNEL_SIZE - k.shape[0]) // 2, (KERNEL_SIZE - k.shape[1]) // 2
        out.append(
            torch.nn.functional.pad(
                k, (px, KERNEL_SIZE - k.shape[1] - px, py, KERNEL_SIZE - k.shape[0] - py)
            )
        )
    return torch.stack(out), names


def centre_crop(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return x
    H, W = x.shape[-2:]
    h, w = min(size, H), min(size, W)
    return x[..., (H - h) // 2 : (H - h) // 2 + h, (W - w) // 2 : (W - w) // 2 + w]


def load_networks(items: list[str], device: str) -> dict[str, torch.nn.Module]:
    """The --weights networks; without any, the shipped gradient-step and proximal ones."""
    nets = {}
    if not items:
        for kind, name in (("gs", "gradient-step"), ("prox", "proximal")):
            try:
                nets[kind] = pnpfast.denoisers.load(name, device=device)
            except FileNotFoundError as exc:
                print(f"no {kind} network: {exc}", file=sys.stderr)
        return nets
    for item in items:
        kind, sep, path = item.partition("=")
        if not sep or kind not in KINDS:
            raise SystemExit(f"bad --weights {item!r}: use KIND=PATH with KIND one of {KINDS}")
        net = pnpfast.denoisers.load(weights=path, device=device).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        nets[kind] = net
    return nets


def append(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def test_set(net) -> str:
    """BSD68 for a gray network, CBSD68 for a color one (or one that takes both)."""
    return "BSD68" if getattr(net, "channels", None) == 1 else "CBSD68"


def part_denoise(args, nets, env) -> list[dict]:
    models = {k: nets[k] for k in ("gs", "prox", "reg-D") if k in nets}
    models["conditional (shipped)"] = pnpfast.denoisers.load(device=args.device)
    gray = any(test_set(n) == "BSD68" for n in models.values())
    rows = []
    for name, net in models.items():
        set_name = "BSD68" if gray else test_set(net)
        images = set_images(args.data, set_name, args.max_images)
        for s in args.sigmas:
            scores = denoise_set(net, images, s, args.device)
            rows.append(
                {
                    "part": "denoise",
                    "network": name,
                    "set": set_name,
                    "sigma255": s,
                    **scores,
                    **env,
                }
            )
            print(
                f"denoise {name} sigma {s}: {scores['psnr']:.2f} dB over {scores['images']} images"
            )
        append(args.out, rows[-len(args.sigmas) :])
    return rows


def part_lipschitz(args, nets, env) -> list[dict]:
    rows = []
    for kind in ("gs", "prox"):
        if kind not in nets:
            continue
        set_name = test_set(nets[kind])
        images = set_images(args.data, set_name, args.max_images)
        for s in args.sigmas:
            gen = torch.Generator().manual_seed(0)
            noisy = []
            for _, x in images:
                x = centre_crop(x, args.crop)
                noisy.append(x + s / 255 * torch.randn(x.shape, generator=gen))
            norms, steps, lanczos = [], [], []
            # one batched estimate per image size (every image when cropped)
            for shape in dict.fromkeys(tuple(y.shape) for y in noisy):
                batch = torch.cat([y for y in noisy if tuple(y.shape) == shape]).to(args.device)
                r = residual_lipschitz(
                    nets[kind], batch, s / 255, iters=args.power_iters, tol=1e-4, symmetric=True
                )
                norms += r.norm.tolist()
                steps += r.iterations.tolist()
                for chunk in batch.split(8) if args.lanczos_steps else ():  # its basis: memory
                    lanczos += residual_lipschitz(
                        nets[kind], chunk, s / 255, method="lanczos", steps=args.lanczos_steps
                    ).norm.tolist()
            row = {
                "part": "lipschitz",
                "network": kind,
                "set": set_name,
                "sigma255": s,
                "images": len(norms),
                "crop": args.crop,
                "mean": round(float(np.mean(norms)), 4),
                "max": round(float(np.max(norms)), 4),
                "mean_steps": round(float(np.mean(steps)), 1),
            }
            text = f"power mean {row['mean']:.3f} max {row['max']:.3f}"
            if lanczos:
                row["lanczos_steps"] = args.lanczos_steps
                row["lanczos_mean"] = round(float(np.mean(lanczos)), 4)
                row["lanczos_max"] = round(float(np.max(lanczos)), 4)
                text += f"; Lanczos ({args.lanczos_steps} steps) mean {row['lanczos_mean']:.3f}"
                text += f" max {row['lanczos_max']:.3f}"
            row.update(under_1=bool(max(norms + lanczos) < 1), **env)
            rows.append(row)
            append(args.out, [row])
            print(f"lipschitz {kind} sigma {s}: ||J_(I-D)|| {text}")
    return rows


def degraded_batch(args, set_name: str, noise: float, max_images: int | None):
    """(names, clean x, Blur A, y) of every (image, kernel) pair, image-major."""
    kernels, knames = hurault_kernels(args.data)
    imgs = set_images(args.data, set_name, max_images)
    crops = [centre_crop(x, args.crop) for _, x in imgs]
    size = min(c.shape[-2] for c in crops), min(c.shape[-1] for c in crops)
    clean = torch.cat([c[..., : size[0], : size[1]] for c in crops]).double()
    n_k = kernels.shape[0]
    x = clean.repeat_interleave(n_k, dim=0)
    A = pnpfast.operators.Blur(kernels.repeat(len(imgs), 1, 1))
    gen = torch.Generator().manual_seed(0)
    y = A(x) + noise / 255 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    names = [(stem, k) for stem, _ in imgs for k in knames]
    return names, x, A, y


def deblur_runs(nets, noise):
    """(label, network, method, params) of the deblurring runs at one noise level."""
    sigma = noise / 255
    runs = []
    if "gs" in nets:
        runs.append(("gs-pnp", nets["gs"], "gs-pnp", {"lam": 0.1}))
    if "prox" in nets:
        lam, ratio = DRS_SETTINGS[noise]
        drs = {"lam": lam, "sigma_d": ratio * sigma, "alpha": 0.5}
        runs.append(("prox-pnp-drs", nets["prox"], "prox-pnp-drs", drs))
        pgd = {"lam": 0.99, "sigma_d": max(sigma / 2, 1.9 / 255)}
        runs.append(("prox-pnp-pgd", nets["prox"], "prox-pnp-pgd", pgd))
    if "reg-G" in nets:
        runs.append(("pnp-reg", nets["reg-G"], "pnp-reg", {"lam": 1.0}))
    return runs


def part_deblur(args, nets, env) -> list[dict]:
    names = args.deblur_sets or ["Set3C"] + (["CBSD68"] if args.max_images else [])
    sets = [(name, None if name == "Set3C" else args.max_images) for name in names]
    rows, curves = [], {}
    for set_name, limit in sets:
        for noise in NOISE_LEVELS:
            names, x, A, y = degraded_batch(args, set_name, noise, limit)
            y32, x32 = y.float().to(args.device), x.float().to(args.device)
            for label, net, method, params in deblur_runs(nets, noise):
                start = time.perf_counter()
                res = pnpfast.solve(
                    y32,
                    A,
                    net,
                    method,
                    sigma=noise / 255,
                    max_iter=args.max_iter,
                    x_true=x32,
                    **params,
                )
                seconds = time.perf_counter() - start
                final = pnpfast.metrics.psnr(res.x.clamp(0, 1), x32).cpu()
                level = [
                    {
                        "part": "deblur",
                        "set": set_name,
                        "image": image,
                        "kernel": kernel,
                        "noise_255": noise,
                        "method": label,
                        "iterations": int(res.iterations[i]),
                        "converged": bool(res.converged[i]),
                        "psnr": round(float(final[i]), 3),
                        "crop": args.crop,
                        "batch_seconds": round(seconds, 2),
                        **env,
                    }
                    for i, (image, kernel) in enumerate(names)
                ]
                append(args.out, level)
                rows += level
                if "objective" in res.history:
                    curves[(set_name, noise, label)] = res.history["objective"].cpu()
                print(
                    f"deblur {set_name} {label} noise {noise}: mean PSNR {final.mean():.2f} dB, "
                    f"iterations {res.iterations.float().mean():.0f} ({seconds:.0f} s, batch {len(names)})"
                )
    if curves:
        plot_objective(curves, args.plot)
    print(deblur_table(rows))
    return rows


def plot_objective(curves: dict, path: Path) -> None:
    """F against iteration of every image of each run, F / F_0 on a log scale."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        print(f"objective plot skipped: matplotlib is not installed ({exc}; pip install .[bench])")
        return

    runs = list(dict.fromkeys((k[0], k[2]) for k in curves))  # (set, method): one row each
    levels = sorted({k[1] for k in curves})
    fig, axes = plt.subplots(
        len(runs), len(levels), figsize=(3.6 * len(levels), 2.8 * len(runs)), squeeze=False
    )
    for i, (set_name, label) in enumerate(runs):
        for j, noise in enumerate(levels):
            ax = axes[i][j]
            F = curves.get((set_name, noise, label))
            if F is not None:
                ax.plot((F / F[:1]).numpy(), linewidth=0.7)
                ax.set_yscale("log")
            ax.set_title(f"{label}, {set_name}, noise {noise}/255", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[i][0].set_ylabel("F / F(x_1)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("iteration", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"objective plot: {path}")


def deblur_table(rows: list[dict]) -> str:
    """Markdown: mean PSNR over the images per (set, method, noise), one column per kernel."""
    kernels = list(dict.fromkeys(r["kernel"] for r in rows))
    lines = ["| set | method | noise | " + " | ".join(kernels) + " | mean |"]
    lines.append("|---|---|---|" + "---|" * (len(kernels) + 1))
    order = ("gs-pnp", "prox-pnp-drs", "prox-pnp-pgd", "pnp-reg")
    keys = dict.fromkeys((r["set"], r["method"], r["noise_255"]) for r in rows)
    for key in sorted(keys, key=lambda k: (k[0], order.index(k[1]) if k[1] in order else 9, k[2])):
        sel = [r for r in rows if (r["set"], r["method"], r["noise_255"]) == key]
        per = [np.mean([r["psnr"] for r in sel if r["kernel"] == k]) for k in kernels]
        cells = " | ".join(f"{v:.2f}" for v in per)
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {cells} | {np.mean(per):.2f} |")
    return "\n".join(lines)


def part_throughput(args, nets, env) -> list[dict]:
    if "gs" in nets:
        net, what = nets["gs"], "gs weights"
    else:
        torch.manual_seed(0)
        inner = pnpfast.denoisers.DRUNet(3, (32, 64, 128), 1, activation="elu", residual=True)
        net, what = pnpfast.denoisers.GradientStep(inner).to(args.device).eval(), "random weights"
    kernels, _ = hurault_kernels(args.data)
    _, clean = set_images(args.data, "Set3C", None)[0]
    x = centre_crop(clean, args.crop).repeat(args.batch, 1, 1, 1).double()
    A = pnpfast.operators.Blur(kernels[torch.arange(args.batch) % kernels.shape[0]])
    noise = torch.tensor(
        [NOISE_LEVELS[i % 3] / 255 for i in range(args.batch)], dtype=torch.float64
    )
    gen = torch.Generator().manual_seed(0)
    y = A(x) + noise.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    y, noise = y.float().to(args.device), noise.float().to(args.device)
    kw = {"max_iter": args.throughput_iters, "tol": 0.0, "lam": 0.1}

    def batched():
        return pnpfast.solve(y, A, net, "gs-pnp", sigma=noise, **kw)

    def alone():
        return [
            pnpfast.solve(
                y[b : b + 1],
                pnpfast.operators.Blur(A.kernel[b]),
                net,
                "gs-pnp",
                sigma=noise[b : b + 1],
                **kw,
            )
            for b in range(args.batch)
        ]

    timings = harness.measure_many(
        {"batch": batched, "one at a time": alone}, warmup=1, reps=args.reps, device=args.device
    )
    times = {k: t.median_ms * 1e-3 for k, t in timings.items()}
    ips = {k: args.batch / v for k, v in times.items()}
    ratio = ips["batch"] / ips["one at a time"]
    row = {
        "part": "throughput",
        "network": what,
        "batch": args.batch,
        "crop": args.crop,
        "iterations": args.throughput_iters,
        "images_per_s_batch": round(ips["batch"], 3),
        "images_per_s_alone": round(ips["one at a time"], 3),
        "speedup": round(ratio, 2),
        **env,
    }
    append(args.out, [row])
    where = "" if torch.device(args.device).type == "cuda" else " (the target is for a GPU)"
    verdict = "met" if ratio >= SPEEDUP_TARGET else "MISSED"
    print(
        f"throughput: batch of {args.batch} {ips['batch']:.2f} images/s, one at a time "
        f"{ips['one at a time']:.2f}: {ratio:.2f}x (target >= {SPEEDUP_TARGET:.0f}x: {verdict}){where}"
    )
    return [row]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", action="append", choices=PARTS, help="default: all")
    p.add_argument("--weights", action="append", default=[], metavar="KIND=PATH")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--max-images", type=int, default=None, help="first N images of CBSD68")
    p.add_argument("--deblur-set", dest="deblur_sets", action="append", choices=("Set3C", "CBSD68"))
    p.add_argument("--crop", type=int, default=None, help="centre crops of this size")
    p.add_argument(
        "--sigmas",
        type=lambda t: [float(v) for v in t.split(",")],
        default=list(SIGMAS),
        help="noise levels (/255) of the denoise and lipschitz parts (default 15,25,50)",
    )
    p.add_argument("--max-iter", type=int, default=400)
    p.add_argument("--power-iters", type=int, default=50)
    p.add_argument("--lanczos-steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--throughput-iters", type=int, default=20)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--tag", default="", help="a note stored in every row (which run, which step)")
    p.add_argument("--out", type=Path, default=harness.results_path("convergent"))
    p.add_argument("--plot", type=Path, default=harness.RESULTS_DIR / "convergent_objective.png")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.data / "images").is_dir():
        print(f"needs the test data at {args.data} (--data)", file=sys.stderr)
        return 2
    nets = load_networks(args.weights, args.device)
    env = harness.environment(args.device)
    env["weights"] = args.weights or "shipped"
    if args.tag:
        env["tag"] = args.tag
    for part in args.part or PARTS:
        {
            "denoise": part_denoise,
            "lipschitz": part_lipschitz,
            "deblur": part_deblur,
            "throughput": part_throughput,
        }[part](args, nets, env)
    print(f"rows appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
