"""Per-kernel resources of the CUDA sources, read off ``ptxas -v`` (.ci/check_cuda.sh).

    python .ci/cuda_resources.py OUT.jsonl SOURCE:ARCH:LOG [SOURCE:ARCH:LOG ...]

Each LOG is the stderr of ``nvcc -c -arch=ARCH -Xptxas -v ... SOURCE``. For every entry function
ptxas reports, one row with the fixed columns of ``COLUMNS`` is printed as a table and written to
OUT (the whole file is replaced, rows sorted by source, kernel and arch, so that a rerun on
unchanged sources rewrites the same bytes). ``git_sha`` is the last commit that changed csrc/
(``+dirty`` when csrc/ has uncommitted changes), not HEAD, for the same reason.

Exit status 1 when a kernel spills registers or uses local memory (a stack frame), when a log
reports no kernel, or when two kernels of one source and arch have the same short name.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COLUMNS = (  # the names of benchmarks/results/triton_resources.jsonl where they mean the same
    "kind",  # "cuda" (csrc/*.cu, this script)
    "source",
    "kernel",  # demangled, namespaces and parameter list dropped
    "cc",  # 80, 90
    "arch",  # sm_80, sm_90
    "registers",
    "spill_stores",  # bytes
    "spill_loads",  # bytes
    "stack",  # bytes of stack frame (local memory)
    "shared_static",  # bytes of static shared memory per block
    "cmem",  # bytes of constant bank 0 (kernel parameters); None where ptxas omits it (sm_90)
    "barriers",
    "ptxas",  # nvcc's version, which its ptxas shares
    "git_sha",
)

_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\w+)'")
_PROPS = re.compile(r"Function properties for (\S+)")
_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_BARRIERS = re.compile(r"used (\d+) barriers")
_SMEM = re.compile(r"(\d+) bytes smem")
_CMEM0 = re.compile(r"(\d+) bytes cmem\[0\]")


def parse_ptxas(text: str) -> list[dict]:
    """Rows (mangled, arch, registers, spills, stack, smem, cmem, barriers) from ``ptxas -v``.

    ptxas prints, per entry function: "Compiling entry function 'NAME' for 'sm_XX'", then
    "Function properties for NAME" with "S bytes stack frame, T bytes spill stores, L bytes
    spill loads", then "Used R registers, [used B barriers,] ... [M bytes smem,] C bytes
    cmem[0]". Lines of device functions (not entries) are ignored.
    """
    rows: list[dict] = []
    current: dict | None = None
    props_for: str | None = None
    for line in text.splitlines():
        if m := _ENTRY.search(line):
            current = {"mangled": m.group(1), "arch": m.group(2)}
            rows.append(current)
            props_for = None
            continue
        if m := _PROPS.search(line):
            props_for = m.group(1)
            continue
        if current is None:
            continue
        if (m := _STACK.search(line)) and props_for == current["mangled"]:
            current["stack"] = int(m.group(1))
            current["spill_stores"] = int(m.group(2))
            current["spill_loads"] = int(m.group(3))
            continue
        if (m := _USED.search(line)) and "registers" not in current:
            current["registers"] = int(m.group(1))
            b = _BARRIERS.search(line)
            s = _SMEM.search(line)
            c = _CMEM0.search(line)
            current["barriers"] = int(b.group(1)) if b else 0
            current["shared_static"] = int(s.group(1)) if s else 0
            current["cmem"] = int(c.group(1)) if c else None
    for row in rows:
        for key in ("stack", "spill_stores", "spill_loads"):
            row.setdefault(key, 0)  # ptxas omits the properties line of a kernel without any
        if "registers" not in row:
            raise ValueError(f"ptxas reported no register count for {row['mangled']}")
    return rows


def short_name(demangled: str) -> str:
    """``void pnpfast::(anonymous namespace)::k<float, 4>(float const*, long)`` -> ``k<float, 4>``."""
    name = demangled.removeprefix("void ")
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):  # the parameter list: the first "(" outside template brackets
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0 and not name.startswith("(anonymous", i):
            cut = i
            break
    name = name[:cut]
    return re.sub(r"(pnpfast::|\(anonymous namespace\)::|detail::)", "", name)


def demangle(names: list[str]) -> list[str]:
    """c++filt, one name a line; the names unchanged where it is missing."""
    try:
        out = subprocess.run(
            ["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return names
    return out if len(out) == len(names) else names


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return ""


def csrc_sha() -> str:
    sha = _git("log", "-1", "--format=%h", "--", "csrc") or "unknown"
    return f"{sha}+dirty" if _git("status", "--porcelain", "--", "csrc") else sha


def nvcc_version() -> str:
    try:
        out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    m = re.search(r"release [\d.]+, V([\d.]+)", out)
    return m.group(1) if m else "unknown"


def build_rows(logs: list[tuple[str, str, str]], ptxas: str, sha: str) -> list[dict]:
    """Rows of ``COLUMNS`` from (source, arch, ptxas log text); ValueError for a log without
    a kernel of its arch or with one kernel twice."""
    rows = []
    for source, arch, text in logs:
        parsed = [r for r in parse_ptxas(text) if r["arch"] == arch]
        if not parsed:
            raise ValueError(f"{source} ({arch}): ptxas -v reported no kernel")
        names = demangle([r["mangled"] for r in parsed])
        seen = set()
        for r, name in zip(parsed, names, strict=True):
            # the short name, not the mangled one: that holds a per-compilation id of the
            # anonymous namespace and would change the file on every run
            r.update(kind="cuda", source=source, kernel=short_name(name), ptxas=ptxas, git_sha=sha)
            r["cc"] = int(arch.removeprefix("sm_"))
            if r["kernel"] in seen:
                raise ValueError(f"{source} ({arch}): kernel {r['kernel']} reported twice")
            seen.add(r["kernel"])
            rows.append({c: r[c] for c in COLUMNS})
    rows.sort(key=lambda r: (r["source"], r["kernel"], r["arch"]))
    return rows


def problems(rows: list[dict]) -> list[str]:
    """One line per kernel that spills or has a stack frame (local memory)."""
    return [
        f"{r['source']} {r['arch']} {r['kernel']}: {r['spill_stores']} bytes spill stores, "
        f"{r['spill_loads']} bytes spill loads, {r['stack']} bytes stack frame"
        for r in rows
        if r["spill_stores"] or r["spill_loads"] or r["stack"]
    ]


def table(rows: list[dict]) -> str:
    head = ("source", "arch", "regs", "spill st/ld", "stack", "smem", "cmem", "bar", "kernel")
    lines = [head]
    for r in rows:
        lines.append(
            (
                r["source"].removeprefix("csrc/"),
                r["arch"],
                str(r["registers"]),
                f"{r['spill_stores']}/{r['spill_loads']}",
                str(r["stack"]),
                str(r["shared_static"]),
                "-" if r["cmem"] is None else str(r["cmem"]),
                str(r["barriers"]),
                r["kernel"],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True))
        + "  "
        + line[-1]
        for line in lines
    )


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    logs = []
    for spec in argv[1:]:
        source, arch, log = spec.split(":", 2)
        logs.append((source, arch, Path(log).read_text(errors="replace")))
    try:
        rows = build_rows(logs, nvcc_version(), csrc_sha())
    except ValueError as exc:
        print(f"cuda_resources: {exc}", file=sys.stderr)
        return 1
    print(table(rows))
    write_jsonl(out, rows)
    print(f"cuda_resources: {len(rows)} kernels written to {out}")
    bad = problems(rows)
    for line in bad:
        print(f"cuda_resources: spills or local memory: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
