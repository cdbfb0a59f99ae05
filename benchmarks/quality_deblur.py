"""Restoration quality of DPIR-style HQS deblurring on Set3C with the 8 Levin et al. kernels.

Degradation (after DPIR's deblurring script): each clean 8-bit image x (on [0, 1]) is blurred by
circular convolution (pnpfast Blur, = scipy.ndimage.convolve(..., mode="wrap")), rounded to 8-bit
levels, and AWGN of std sigma is added from torch.Generator().manual_seed(0). Restoration:
``pnpfast.solve(y, Blur(k), D, "hqs", sigma=sigma)`` with DPIR's defaults (8 iterations, sigma_k
from 49/255 to sigma, lam = 0.23). All 24 (image, kernel) pairs of one noise level run as one
batch with per-image kernels (the Levin kernels, zero-padded to 27x27 around their centre).

PSNR per image on the [0, 1] scale against the clean image (no border cropping), of the final
iterate and of the best intermediate iterate. Rows go to benchmarks/results/deblur_quality.jsonl.
Needs ../shared/data (Set3C, kernels/levin09, and for ``--denoiser bfcnn`` the public color
BF-CNN weights, its default ``--weights``).

    python benchmarks/quality_deblur.py [--denoiser conditional] [--weights PATH] [--device cpu]
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

import pnpfast
from pnpfast.io import read_image

DATA = harness.DATA
DEFAULT_WEIGHTS = DATA / "weights" / "kadkhodaie_bfcnn" / "bfcnn_color_bsd300_sigma0-100.pt"
NOISE_LEVELS = (2.55, 7.65)


def levin_kernels(size: int = 27) -> tuple[torch.Tensor, list[str]]:
    kernels, names = [], []
    for i in range(1, 9):
        k = torch.from_numpy(np.load(DATA / "kernels" / "levin09" / f"levin09_k{i}.npy")).double()
        pad_y, pad_x = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
        kernels.append(torch.nn.functional.pad(k, (pad_x, pad_x, pad_y, pad_y)))
        names.append(f"k{i}")
    return torch.stack(kernels), names


def degrade(x: torch.Tensor, A, noise: float) -> torch.Tensor:
    """The degradation of DPIR's deblurring script on a float64 batch: blur by the operator A,
    round to 8-bit levels, add AWGN of std noise/255 from torch.Generator().manual_seed(0)."""
    blurred = torch.round(A(x) * 255) / 255
    g = torch.Generator().manual_seed(0)
    return blurred + noise / 255 * torch.randn(blurred.shape, generator=g, dtype=torch.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--denoiser",
        default="conditional",
        help="a pnpfast.denoisers.load name (default: the shipped noise-conditional one)",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="weight file (default: the public color BF-CNN for bfcnn, none otherwise)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=str(harness.results_path("deblur_quality")))
    args = parser.parse_args(argv)
    if args.weights is None and args.denoiser == "bfcnn":
        args.weights = str(DEFAULT_WEIGHTS)
    if not DATA.is_dir():
        print(f"needs the test data at {DATA}", file=sys.stderr)
        return 2

    paths = sorted((DATA / "images" / "Set3C").glob("*.png"))
    clean = torch.cat([read_image(p) for p in paths]).double()  # [3, 3, 256, 256]
    kernels, kernel_names = levin_kernels()
    n_img, n_k = clean.shape[0], kernels.shape[0]
    x = clean.repeat_interleave(n_k, dim=0)  # image-major: (img0,k1..k8), (img1,k1..k8), ...
    k = kernels.repeat(n_img, 1, 1)
    A = pnpfast.operators.Blur(k)
    denoiser = pnpfast.denoisers.load(args.denoiser, weights=args.weights, device=args.device)
    env = harness.environment(args.device)
    rows = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for noise in NOISE_LEVELS:
        y = degrade(x, A, noise)
        y32, x32 = y.float().to(args.device), x.float().to(args.device)
        start = time.perf_counter()
        with torch.no_grad():
            res = pnpfast.solve(y32, A, denoiser, "hqs", sigma=noise / 255, x_true=x32)
        seconds = time.perf_counter() - start
        final = pnpfast.metrics.psnr(res.x.clamp(0, 1), x32).cpu()
        best = res.history["psnr"].max(0).values.cpu()
        level = []
        for i in range(x.shape[0]):
            level.append(
                {
                    "task": "deblur",
                    "dataset": "Set3C",
                    "image": paths[i // n_k].stem,
                    "kernel": kernel_names[i % n_k],
                    "noise_255": noise,
                    "method": "hqs",
                    "denoiser": f"{args.denoiser}:{Path(args.weights).name if args.weights else 'shipped'}",
                    "iterations": int(res.iterations[i]),
                    "psnr": round(float(final[i]), 3),
                    "best_iterate_psnr": round(float(best[i]), 3),
                    "batch_seconds": round(seconds, 2),
                    **env,
                }
            )
        with out.open("a") as f:  # each noise level is saved as soon as it is done
            f.writelines(json.dumps(r) + "\n" for r in level)
        rows += level
        print(
            f"noise {noise}/255: mean PSNR {final.mean():.2f} dB ({seconds:.1f} s for the batch of {x.shape[0]})"
        )
    print(format_table(rows))
    return 0


def format_table(rows: list[dict]) -> str:
    """Markdown: one row per (image, noise), one column per kernel, plus the mean."""
    kernels = sorted({r["kernel"] for r in rows}, key=lambda s: int(s[1:]))
    lines = [
        "| image | noise (/255) | " + " | ".join(kernels) + " | mean |",
        "|---|---|" + "---|" * (len(kernels) + 1),
    ]
    keys = sorted({(r["noise_255"], r["image"]) for r in rows})
    for noise, image in keys:
        vals = {
            r["kernel"]: r["psnr"] for r in rows if r["image"] == image and r["noise_255"] == noise
        }
        mean = sum(vals.values()) / len(vals)
        lines.append(
            f"| {image} | {noise} | "
            + " | ".join(f"{vals[k]:.2f}" for k in kernels)
            + f" | {mean:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
