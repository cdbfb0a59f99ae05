"""Markdown tables of the benchmark results in benchmarks/results/*.jsonl.

One table per op, built from the latest row of each (op, provider, shape, dtype, device). The
speed-up of a provider is the median of its reference divided by its own median, measured on
the same device, shape and dtype: the reference of ``reference-compiled``, ``triton``,
``deepinv`` or ``fft-only`` is ``reference``; the reference of ``<family>/<backend>`` (e.g.
``spectral-pass/triton``) is ``<family>/reference``, and that of ``<problem>/accelerated``
(bench_deepinv) is ``<problem>/original``. A row whose correctness check failed gets no speed-up.

    python benchmarks/report.py                    print the tables
    python benchmarks/report.py --update-readme    also rewrite the block between
                                                   <!-- bench:start --> and <!-- bench:end -->
                                                   in README.md (exit 1 if the markers are missing)
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
import perf_model

ROOT = Path(__file__).resolve().parent.parent
START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
KEY = ("op", "provider", "shape", "dtype", "device")


def load_rows(results_dir: Path) -> list[dict]:
    """Every timing row (one with an ``op``) of every *.jsonl file under ``results_dir``, in file
    then line order; other result files (restoration quality) are not timing tables."""
    return [
        row
        for path in sorted(results_dir.glob("*.jsonl"))
        for row in harness.read_jsonl(path)
        if "op" in row
    ]


def latest(rows: list[dict]) -> list[dict]:
    """The latest row per (op, provider, shape, dtype, device): newest timestamp, then last."""
    chosen: dict[tuple, tuple[str, int, dict]] = {}
    for i, row in enumerate(rows):
        key = tuple(row.get(k) for k in KEY)
        rank = (str(row.get("timestamp") or ""), i)
        if key not in chosen or rank >= chosen[key][:2]:
            chosen[key] = (*rank, row)
    return [entry[2] for entry in chosen.values()]


def reference_of(provider: str) -> str:
    if provider.endswith("/accelerated"):  # bench_deepinv: <problem>/accelerated vs /original
        return provider.removesuffix("accelerated") + "original"
    if "/" in provider:
        return provider.split("/", 1)[0] + "/reference"
    return "reference"


def _shape_key(shape: str) -> tuple:
    try:
        dims = tuple(int(s) for s in shape.split("x"))
    except (AttributeError, ValueError):
        return (float("inf"), str(shape))
    numel = 1
    for d in dims:
        numel *= d
    return (numel, shape)


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def op_table(rows: list[dict]) -> str:
    """The markdown table of one op's rows."""
    medians = {
        (r["provider"], r["shape"], r["dtype"], r["device"]): r["median_ms"]
        for r in rows
        if r.get("correct") and r.get("median_ms")
    }
    first_seen: dict[str, int] = {}
    for r in rows:
        first_seen.setdefault(r["provider"], len(first_seen))
    order = sorted(
        rows,
        key=lambda r: (
            str(r["device"]),
            _shape_key(r["shape"]),
            str(r["dtype"]),
            first_seen[r["provider"]],
        ),
    )
    lines = [
        "| provider | shape | median ms (p20-p80) | GB/s | % of copy bw | speed-up vs reference "
        "| device | git sha |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in order:
        ref = medians.get((reference_of(r["provider"]), r["shape"], r["dtype"], r["device"]))
        if not r.get("correct"):
            speedup = "incorrect"
        elif ref and r.get("median_ms"):
            speedup = f"{ref / r['median_ms']:.2f}x"
        else:
            speedup = "-"
        frac = r.get("frac_copy_bw")
        timing = (
            f"{_num(r.get('median_ms'), '.3f')} "
            f"({_num(r.get('p20_ms'), '.3f')}-{_num(r.get('p80_ms'), '.3f')})"
        )
        cells = [
            str(r["provider"]),
            f"{r['shape']} {r['dtype']}",
            timing,
            _num(r.get("gbps"), ".1f"),
            _num(None if frac is None else 100 * frac, ".0f"),
            speedup,
            str(r["device"]),
            str(r.get("git_sha")),
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def render(rows: list[dict]) -> str:
    """One '### <op>' section with its table per op, ops in alphabetical order, then the GPU
    rows that benchmarks/perf_model.py models, measured against modelled."""
    rows = latest(rows)
    if not rows:
        return "No benchmark results yet."
    ops = sorted({str(r["op"]) for r in rows})
    sections = [f"### {op}\n\n{op_table([r for r in rows if r['op'] == op])}" for op in ops]
    vs_model = perf_model.comparison_table(rows)
    if vs_model:
        sections.append(f"### measured vs modelled (benchmarks/perf_model.py)\n\n{vs_model}")
    return "\n\n".join(sections)


def update_readme(path: Path, text: str, *, start: str = START, end: str = END) -> bool:
    """Replace what lies between the markers ``start`` and ``end`` in ``path``; False when they
    are missing."""
    content = path.read_text() if path.exists() else ""
    i = content.find(start)
    j = content.find(end, i + len(start)) if i >= 0 else -1
    if i < 0 or j < 0:
        return False
    new = content[: i + len(start)] + "\n" + text + "\n" + content[j:]
    path.write_text(new)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Markdown tables of benchmarks/results/*.jsonl")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument(
        "--update-readme",
        action="store_true",
        help=f"rewrite the block between {START} and {END} in --readme",
    )
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = p.parse_args(argv)
    text = render(load_rows(args.results))
    print(text)
    if args.update_readme:
        if not update_readme(args.readme, text):
            print(
                f"{args.readme}: no {START} ... {END} block; add the markers to the README "
                "first, nothing was written",
                file=sys.stderr,
            )
            return 1
        print(f"\nupdated the benchmark block of {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
