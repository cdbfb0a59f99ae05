"""Compile every Triton kernel specialisation that pnpfast's launchers use, for sm_80 and sm_90,
ahead of time and without a GPU; fail on a compile error, a register spill, local memory, or a
kernel that no case reached.

    python .ci/aot_triton.py [--jobs N] [--ptx-dir DIR] [--results PATH] [--only OP ...]
                             [--record-only] [--list-cases]

1. Record. The public ops (``pnpfast.ops.<op>(..., backend="triton")``) run on small CPU tensors
   over the table ``launcher_cases()``: one row per branch of each launcher (dtype, per-image or
   shared kernel, with or without x/xprev, each kind of the constrained step, every block size
   and tile width, shapes that make the integer arguments 1, multiples of 16 and neither).
   Triton is not in interpreter mode: every launch goes through the real ``JITFunction.run``,
   so the argument types, the constexprs, the launch options (num_warps) and the
   specialisation attributes come from Triton's own binder, the one a GPU launch runs. A
   stand-in CUDA driver (``_CompileOnlyDriver``) supplies the target (sm_90), device 0 and
   stream 0, and Triton's ``knobs.runtime.jit_cache_hook`` records each launch and returns
   True, so Triton compiles nothing and launches nothing there. pnpfast's dispatcher is told
   that CPU tensors may take the triton path (as under the interpreter).

2. Specialisations. Triton specialises an integer argument equal to 1 into a constexpr, and marks
   a pointer whose address and an integer whose value is a multiple of 16 with
   ``tt.divisibility = 16`` (the code can then use 128-bit accesses). Integers are the same on
   the CPU and the GPU (their type too: i32, or i64 from 2**31 on; the noise kernel's seed is a
   63-bit hash, so i64: the i32 of a hash below 2**31, one call in 2**32, is not compiled). Pointers: PyTorch's CPU allocator aligns to 64 bytes and its CUDA caching
   allocator to 512, so a fresh tensor is 16-byte aligned on both and the recorded attribute is
   what a GPU launch of the same tensors sees. A caller may also pass contiguous views at any
   offset (``x[1:]`` of an odd-sized image): for that, every recorded specialisation is also
   compiled in its ``unaligned`` variant, with no pointer and no integer divisible by 16, the
   slowest code and usually the most registers. (Mixed cases, some pointers aligned and some
   not, lie between the two and are not compiled.)

3. Compile each specialisation for sm_80 and sm_90 (``triton.compile(ASTSource(...),
   target=GPUTarget("cuda", cc, 32))``) in ``--jobs`` processes with a fresh Triton cache, read
   ptxas's report (registers, spill stores and loads, stack frame) and the cubin's resource
   usage (cuobjdump: registers, local memory, static shared memory; Triton's metadata: the
   dynamic shared memory a launch requests). Triton's own ptxas and cuobjdump do this (the
   tools a GPU user's Triton uses, not the system CUDA). ``warps_per_sm`` is the occupancy that
   the registers and shared memory allow (``resident_warps``).

4. Coverage. Every ``@triton.jit`` function defined in ``kernels/*.py`` (found by importing
   each module of ``pnpfast.kernels``, so a new op's kernels are picked up without editing this
   file) must be launched by some case, or be called by a launched kernel (a device function
   such as ``_add_noise``). Every case must launch the kernels it names with the constexprs it
   names. A kernel that no case reaches fails the check: add rows to ``launcher_cases()`` for its
   launcher. ``--list-cases`` prints each case and the specialisations it launched.

Writes one row per (specialisation, cc) with the columns ``COLUMNS`` to ``--results``
(default benchmarks/results/triton_resources.jsonl, rewritten on each run), prints the table,
and with ``--ptx-dir`` writes each PTX (and cubin) there, named ``<kernel>-<spec>-sm<cc>``.
Exit status 1 when any check fails. tests/test_aot_triton.py proves that the checks can fail.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import hashlib
import importlib
import importlib.metadata
import io
import json
import math
import multiprocessing
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "triton_resources.jsonl"
CCS = (80, 90)
RECORD_CC = 90  # the target the binder sees while recording; specialisation does not depend on it
COLUMNS = (
    "kernel",  # module:function
    "spec",  # short stable id of the specialisation (kernel, types, constexprs, attrs, options)
    "specialisation",  # readable: dtype, constexprs, arguments equal to 1, divisibility
    "variant",  # "launched" (as recorded) or "unaligned" (no divisibility attributes)
    "cc",  # 80 or 90
    "arch",  # the ptxas target: sm_80, sm_90a
    "num_warps",
    "registers",
    "spill_stores",  # bytes
    "spill_loads",  # bytes
    "stack",  # bytes of stack frame
    "local",  # bytes of local memory
    "shared_static",  # bytes in the cubin (sm_90 reserves 1 KiB per block)
    "shared_dynamic",  # bytes Triton requests at launch
    "warps_per_sm",  # resident warps per SM that the registers and shared memory allow
    "ptx_lines",
    "case",  # the first launcher_cases() row that launched it
    "n_cases",  # how many rows launched it
    "triton",
    "torch",
    "ptxas",
    "git_sha",
)


# --------------------------------------------------------------------------------------------
# Specialisations


@dataclasses.dataclass(frozen=True)
class Spec:
    """One compilable specialisation of one kernel: what ``JITFunction.run`` would compile.

    ``signature``: (name, type) per parameter ("*fp32", "i32", "fp32", "constexpr");
    ``constexprs``: (index, value) of the constexpr parameters, declared or specialised (an
    integer equal to 1); ``divisible``: indices of the arguments with tt.divisibility = 16;
    ``options``: (name, value) of the launch options that change the code (num_warps, ...).
    """

    module: str
    name: str
    signature: tuple[tuple[str, str], ...]
    constexprs: tuple[tuple[int, object], ...]
    divisible: tuple[int, ...]
    options: tuple[tuple[str, object], ...]
    variant: str = "launched"

    @property
    def kernel(self) -> str:
        return f"{self.module}:{self.name}"

    @property
    def spec_id(self) -> str:
        key = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(key.encode()).hexdigest()[:10]

    def unaligned(self) -> Spec:
        """The same launch with no 16-byte aligned pointer and no integer divisible by 16."""
        return dataclasses.replace(self, divisible=(), variant="unaligned")

    def describe(self) -> str:
        """dtype, constexprs (declared and =1), divisibility: one readable cell of the table."""
        types = [t for _, t in self.signature]
        dtypes = sorted({t[1:] for t in types if t.startswith("*")})
        consts = dict(self.constexprs)
        parts = ["/".join(dtypes)]
        parts += [
            f"{name}={consts[i]}" for i, (name, _) in enumerate(self.signature) if i in consts
        ]
        candidates = [
            i
            for i, t in enumerate(types)
            if i not in consts and (t.startswith("*") or t[0] in "iu")
        ]
        div = set(self.divisible)
        if candidates and div >= set(candidates):
            parts.append("div16=all")
        elif not div:
            parts.append("div16=none")
        else:
            parts.append("div16=" + ",".join(self.signature[i][0] for i in sorted(div)))
        return " ".join(parts)

    def to_json(self) -> dict:
        return {
            "kernel": self.kernel,
            "signature": dict(self.signature),
            "constexprs": {self.signature[i][0]: v for i, v in self.constexprs},
            "divisible": [self.signature[i][0] for i in self.divisible],
            "options": dict(self.options),
            "variant": self.variant,
        }


_OPTIONS = ("num_warps", "num_ctas", "num_stages", "enable_fp_fusion", "launch_cooperative_grid")


def _spec_from_hook(fn, compile_kwargs: dict) -> Spec:
    signature = tuple((p, t) for p, t in compile_kwargs["signature"].items())
    for _, t in signature:
        if isinstance(t, tuple):  # tuple arguments: none of pnpfast's kernels take them
            raise ValueError(f"{fn}: tuple arguments are not supported by this check")
    constexprs = tuple(
        sorted((path[0], _plain(v)) for path, v in compile_kwargs["constants"].items())
    )
    (attrs,) = compile_kwargs["configs"]
    divisible = tuple(
        sorted(path[0] for path, a in attrs.items() if ["tt.divisibility", 16] in list(a))
    )
    options = tuple((k, compile_kwargs[k]) for k in _OPTIONS)
    return Spec(fn.fn.__module__, fn.fn.__name__, signature, constexprs, divisible, options)


def _plain(value):
    value = getattr(value, "value", value)  # tl.constexpr
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    raise ValueError(f"constexpr value {value!r} of type {type(value).__name__} is not supported")


# --------------------------------------------------------------------------------------------
# Recording


def _compile_only_driver():
    import torch
    from triton.backends.compiler import GPUTarget  # noqa: TID251
    from triton.backends.driver import DriverBase  # noqa: TID251

    class _CompileOnlyDriver(DriverBase):
        """What JITFunction.run asks of a driver before it compiles: a target, a device and a
        stream. Nothing here touches a GPU; launching is never reached (the hook stops it)."""

        @classmethod
        def is_active(cls) -> bool:
            return False

        def map_python_to_cpp_type(self, ty: str) -> str:
            return ty

        def get_current_target(self):
            return GPUTarget("cuda", RECORD_CC, 32)

        def get_active_torch_device(self):
            return torch.device("cpu")

        def get_benchmarker(self):
            raise RuntimeError("the compile-only driver cannot run kernels")

        def get_current_device(self) -> int:
            return 0

        def set_current_device(self, device: int) -> None:
            pass

        def get_current_stream(self, device: int | None = None) -> int:
            return 0

    return _CompileOnlyDriver()


@dataclasses.dataclass
class Launch:
    spec: Spec
    case: str


@dataclasses.dataclass
class Recording:
    launches: list[Launch] = dataclasses.field(default_factory=list)
    case: str = ""  # the case running now: each launch is attributed to it


@contextlib.contextmanager
def recording() -> Iterator[Recording]:
    """Inside: every Triton launch is recorded (appended to ``launches`` of the yielded
    Recording) instead of being compiled and run, and pnpfast's dispatcher lets CPU tensors
    take the triton path."""
    from triton import knobs  # noqa: TID251
    from triton.runtime import driver  # noqa: TID251
    from triton.runtime.jit import JITFunction  # noqa: TID251

    import pnpfast._env as env

    rec = Recording()
    touched: list[JITFunction] = []

    def hook(*, fn, compile, **_) -> bool:
        jit = fn.jit_function
        if not isinstance(jit, JITFunction):
            raise TypeError(f"{jit!r} is not a JITFunction (is TRITON_INTERPRET set?)")
        touched.append(jit)
        rec.launches.append(Launch(_spec_from_hook(jit, compile), rec.case))
        return True  # Triton then skips compiling and launching

    previous_driver = driver._active
    previous_hook = knobs.runtime.jit_cache_hook
    previous_interp = env.triton_interpreter
    driver.set_active(_compile_only_driver())
    knobs.runtime.jit_cache_hook = hook
    env.triton_interpreter = lambda: True
    try:
        yield rec
    finally:
        driver._active = previous_driver
        knobs.runtime.jit_cache_hook = previous_hook
        env.triton_interpreter = previous_interp
        for jit in touched:  # their binders hold the stand-in target
            jit.device_caches.clear()


@dataclasses.dataclass(frozen=True)
class Case:
    """One branch of one launcher: ``call`` runs a public op with backend="triton" on CPU
    tensors; ``expect`` names each kernel it must launch, with the constexprs it must have
    (a subset: {"_step_flat_kernel": {"KIND": 1}})."""

    op: str
    branch: str
    call: Callable[[], object]
    expect: dict[str, dict[str, object]]

    @property
    def id(self) -> str:
        return f"{self.op}: {self.branch}"


def record(cases: Iterable[Case]) -> tuple[list[Launch], list[str]]:
    """Run every case under ``recording``; return the launches and the problems (a case that
    raised, launched nothing, or missed a kernel or constexpr it expects)."""
    problems: list[str] = []
    with recording() as rec:
        launches = rec.launches
        for case in cases:
            rec.case = case.id
            start = len(launches)
            try:
                case.call()
            except Exception as exc:  # report every case, then fail
                problems.append(f"{case.id}: raised {type(exc).__name__}: {exc}")
                continue
            got = launches[start:]
            if not got:
                problems.append(f"{case.id}: launched no Triton kernel")
            for name, consts in case.expect.items():
                hits = [
                    launch
                    for launch in got
                    if launch.spec.name == name
                    and all(
                        launch.spec.to_json()["constexprs"].get(k) == v for k, v in consts.items()
                    )
                ]
                if not hits:
                    problems.append(
                        f"{case.id}: expected a launch of {name} with {consts}, got "
                        f"{[(g.spec.name, g.spec.to_json()['constexprs']) for g in got]}"
                    )
    return launches, problems


# --------------------------------------------------------------------------------------------
# Coverage


def defined_kernels(package: str = "pnpfast.kernels") -> dict[str, object]:
    """Every @triton.jit function defined in the modules of ``package``: {module:name: fn}."""
    from triton.runtime.jit import JITFunction  # noqa: TID251

    pkg = importlib.import_module(package)
    found = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"{package}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, JITFunction) and obj.fn.__module__ == module.__name__:
                found[f"{module.__name__}:{obj.fn.__name__}"] = obj
    return found


def _callees(fn, kernels: dict[str, object]) -> set[str]:
    """The kernels of ``kernels`` that ``fn``'s body names (``helper(...)`` or
    ``module.helper(...)``): its device functions."""
    by_obj = {id(obj): key for key, obj in kernels.items()}
    scope = fn.fn.__globals__
    out = set()
    for node in ast.walk(ast.parse(fn.src)):
        obj = None
        if isinstance(node, ast.Name):
            obj = scope.get(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            base = scope.get(node.value.id)
            if isinstance(base, types.ModuleType):
                obj = getattr(base, node.attr, None)
        if obj is not None and obj is not fn and id(obj) in by_obj:
            out.add(by_obj[id(obj)])
    return out


def missing_kernels(kernels: dict[str, object], launched: Iterable[str]) -> list[str]:
    """The kernels that no launch reached, directly or as a device function of a launched
    kernel (transitively)."""
    reached = set(launched) & set(kernels)
    todo = list(reached)
    while todo:
        for callee in _callees(kernels[todo.pop()], kernels):
            if callee not in reached:
                reached.add(callee)
                todo.append(callee)
    return sorted(set(kernels) - reached)


# --------------------------------------------------------------------------------------------
# Compiling and reading the resources


_PTXAS_USED = re.compile(r"Used (\d+) registers")
_PTXAS_SPILL = re.compile(
    r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads"
)
_CUOBJDUMP = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


def _resolve(spec: Spec):
    return getattr(importlib.import_module(spec.module), spec.name)


def compile_spec(spec: Spec, cc: int, fn=None, ptx_dir: str | None = None) -> dict:
    """Compile ``spec`` for sm_<cc>; return its resources (see COLUMNS) or {"error": ...}."""
    import triton  # noqa: TID251
    from triton import knobs  # noqa: TID251
    from triton.backends.compiler import GPUTarget  # noqa: TID251
    from triton.backends.nvidia.compiler import get_ptxas  # noqa: TID251
    from triton.compiler import ASTSource  # noqa: TID251

    fn = fn if fn is not None else _resolve(spec)
    src = ASTSource(
        fn,
        dict(spec.signature),
        {(i,): v for i, v in spec.constexprs},
        {(i,): [["tt.divisibility", 16]] for i in spec.divisible},
    )
    options = dict(spec.options)
    options.pop("launch_cooperative_grid", None)  # a launch flag; it does not change the code
    log = io.StringIO()
    previous = knobs.nvidia.dump_ptxas_log
    knobs.nvidia.dump_ptxas_log = True  # Triton prints ptxas -v's report on stdout
    try:
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(src, target=GPUTarget("cuda", cc, 32), options=options)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
    finally:
        knobs.nvidia.dump_ptxas_log = previous
    report = log.getvalue()
    used = _PTXAS_USED.search(report)
    spill = _PTXAS_SPILL.search(report)
    if not (used and spill):
        return {"error": f"no ptxas -v report in the compile output: {report[:500]!r}"}
    cuobjdump = Path(get_ptxas(cc).path).with_name("cuobjdump")
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "k.cubin"
        cubin.write_bytes(compiled.asm["cubin"])
        dump = subprocess.run(
            [str(cuobjdump), "--dump-resource-usage", str(cubin)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    usage = _CUOBJDUMP.search(dump)
    if not usage:
        return {"error": f"no resource usage from cuobjdump: {dump[:500]!r}"}
    ptx = compiled.asm["ptx"]
    if ptx_dir:
        stem = Path(ptx_dir) / f"{spec.name}-{spec.spec_id}-sm{cc}"
        stem.with_suffix(".ptx").write_text(ptx)
        stem.with_suffix(".cubin").write_bytes(compiled.asm["cubin"])
    return {
        "arch": re.search(r"\.target (\S+)", ptx).group(1),
        "registers": int(used.group(1)),
        "reg_cubin": int(usage.group(1)),
        "stack": int(spill.group(1)),
        "spill_stores": int(spill.group(2)),
        "spill_loads": int(spill.group(3)),
        "local": int(usage.group(4)),
        "shared_static": int(usage.group(3)),
        "shared_dynamic": int(compiled.metadata.shared),
        "ptx_lines": ptx.count("\n"),
    }


# Per SM on sm_80 (A100) and sm_90 (H100, H200): 65536 registers, given to a warp in units of
# 256; at most 64 warps and 32 blocks; 164 / 228 KiB of shared memory, 1 KiB reserved per block.
_SHARED_PER_SM = {80: 164 * 1024, 90: 228 * 1024}


def resident_warps(cc: int, registers: int, num_warps: int, shared: int) -> int:
    """Warps of this kernel that fit on one SM at once (blocks of ``num_warps`` warps)."""
    per_warp = -(-registers * 32 // 256) * 256
    blocks = min(65536 // (per_warp * num_warps), 64 // num_warps, 32)
    blocks = min(blocks, _SHARED_PER_SM[cc] // (shared + 1024))
    return blocks * num_warps


def _worker_init(cache_dir: str) -> None:
    os.environ["TRITON_INTERPRET"] = "0"
    os.environ["TRITON_CACHE_DIR"] = cache_dir


def _compile_job(args: tuple[Spec, int, str | None]) -> tuple[Spec, int, dict]:
    spec, cc, ptx_dir = args
    return spec, cc, compile_spec(spec, cc, ptx_dir=ptx_dir)


def compile_all(
    specs: Iterable[Spec], ccs: Iterable[int], jobs: int, ptx_dir: str | None
) -> list[tuple[Spec, int, dict]]:
    """Compile every (spec, cc) in ``jobs`` processes, each with a fresh Triton cache (so ptxas
    runs and reports for every one); results in input order."""
    work = [(spec, cc, ptx_dir) for spec in specs for cc in ccs]
    with tempfile.TemporaryDirectory(prefix="aot_triton_cache_") as cache:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            jobs, mp_context=ctx, initializer=_worker_init, initargs=(cache,)
        ) as pool:
            return list(pool.map(_compile_job, work, chunksize=4))


def resource_problems(spec: Spec, cc: int, res: dict) -> list[str]:
    """Why this compiled specialisation fails the check (none when it passes)."""
    where = f"{spec.kernel} [{spec.describe()}, {spec.variant}] sm_{cc}"
    if "error" in res:
        return [f"{where}: does not compile: {res['error']}"]
    out = []
    if res["spill_stores"] or res["spill_loads"]:
        out.append(
            f"{where}: spills ({res['spill_stores']} bytes stored, {res['spill_loads']} loaded; "
            f"{res['registers']} registers)"
        )
    if res["stack"] or res["local"]:
        out.append(f"{where}: uses local memory ({res['stack']} bytes stack, {res['local']} local)")
    return out


# --------------------------------------------------------------------------------------------
# The cases: every branch of every launcher, through the public ops


def launcher_cases() -> list[Case]:
    """The table of launcher branches. To cover a new op's kernels, add its rows here."""
    import torch
    from pnpfast.kernels.constrained_step import TILE
    from pnpfast.kernels.sr_prox import TILE as SR_TILE

    import pnpfast.ops as ops
    from pnpfast.ops.constrained_step import FAST_FACTORS
    from pnpfast.ops.power_step import initial_state
    from pnpfast.ops.sr_prox import FAST_FACTORS as SR_FACTORS

    cases: list[Case] = []
    T = "triton"
    dtypes = {"fp32": torch.float32, "fp64": torch.float64}
    complex_of = {torch.float32: torch.complex64, torch.float64: torch.complex128}
    # image shapes [B, C, H, W]; the comments give n = C H W and the blocks of 4096 per image
    shapes = {
        "1x1x5x7": (1, 1, 5, 7),  # n 35 (odd), 1 block (the constexpr 1)
        "2x3x17x23": (2, 3, 17, 23),  # n 1173 (odd), 1 block
        "2x4x64x96": (2, 4, 64, 96),  # n 24576 (16 | n), 6 blocks
        "1x1x256x256": (1, 1, 256, 256),  # n 65536 (16 | n), 16 blocks (16 | blocks)
        "3x1x100x131": (3, 1, 100, 131),  # n 13100, 4 blocks
    }

    def rand(shape, dtype):
        return torch.rand(shape, dtype=dtype)

    # fft_prox, fft_grad: spectra [B, C, H, Wr]; |K^|^2 shared (Bk = 1: stride 0) or per image
    spectra = {
        "1x1x5x3": (1, 1, 5, 3),  # C = 1, plane 30 floats
        "2x3x5x7": (2, 3, 5, 7),  # plane 70, k2 stride 35
        "2x4x8x8": (2, 4, 8, 8),  # plane 128, k2 stride 64: multiples of 16
        "2x1x64x33": (2, 1, 64, 33),  # plane 4224 (3 blocks of 2048)
    }
    for dname, dtype in dtypes.items():
        cdtype = complex_of[dtype]
        for sname, (B, C, H, Wr) in spectra.items():
            for k2name, Bk in (("shared k2", 1), ("per-image k2", B)):
                if Bk == 1 and B == 1 and k2name == "per-image k2":
                    continue

                def spectral(B=B, C=C, H=H, Wr=Wr, Bk=Bk, cdtype=cdtype, dtype=dtype):
                    v = torch.randn(B, C, H, Wr, dtype=cdtype)
                    kty = torch.randn(B, C, H, Wr, dtype=cdtype)
                    k2 = rand((Bk, 1, H, Wr), dtype)
                    return v, kty, k2, rand((B,), dtype)

                branch = f"{dname} {k2name} {sname}"
                cases.append(
                    Case(
                        "fft_prox",
                        branch,
                        lambda s=spectral: ops.fft_prox(*s(), backend=T),
                        {"_fft_prox_kernel": {"BLOCK": 2048}},
                    )
                )
                cases.append(
                    Case(
                        "fft_grad",
                        branch,
                        lambda s=spectral, B=B, dtype=dtype: ops.fft_grad(
                            *s()[:3], rand((B,), dtype), rand((B,), dtype), backend=T
                        ),
                        {"_fft_grad_kernel": {"BLOCK": 2048}},
                    )
                )

    # sr_prox: full spectra [B, C, H, W]; every compiled factor, K^ shared or per image, sizes
    # whose integer arguments are 1 / odd, and multiples of 16 (h = H / s, w = W / s too)
    for dname, dtype in dtypes.items():
        cdtype = complex_of[dtype]
        for s in SR_FACTORS:
            s2 = 1 << (s * s - 1).bit_length()
            for B, C, H, W in ((1, 1, 3 * s, 5 * s), (2, 3, 16 * s, 32 * s)):
                for kname, Bk in (("shared k", 1), ("per-image k", B)):
                    if Bk == 1 and B == 1 and kname == "per-image k":
                        continue

                    def sr(B=B, C=C, H=H, W=W, Bk=Bk, s=s, cdtype=cdtype, dtype=dtype):
                        v = torch.randn(B, C, H, W, dtype=cdtype)
                        kty = torch.randn(B, C, H, W, dtype=cdtype)
                        k_hat = torch.randn(Bk, 1, H, W, dtype=cdtype)
                        k2m = rand((Bk, 1, H // s, W // s), dtype)
                        return ops.sr_prox(v, kty, k_hat, k2m, rand((B,), dtype), s, backend=T)

                    cases.append(
                        Case(
                            "sr_prox",
                            f"{dname} s={s} {kname} {B}x{C}x{H}x{W}",
                            sr,
                            {"_sr_prox_kernel": {"S": s, "S2": s2, "BLOCK": SR_TILE // s2}},
                        )
                    )

    for dname, dtype in dtypes.items():
        for sname, shape in shapes.items():
            B = shape[0]
            # pnp_update: x and xprev each present or not
            for has_x in (False, True):
                for has_xprev in (False, True):

                    def update(shape=shape, dtype=dtype, has_x=has_x, has_xprev=has_xprev):
                        f, z = rand(shape, dtype), rand(shape, dtype)
                        x = rand(shape, dtype) if has_x else None
                        xprev = rand(shape, dtype) if has_xprev else None
                        return ops.pnp_update(f, z, x, xprev, rand((shape[0], 4), dtype), backend=T)

                    cases.append(
                        Case(
                            "pnp_update",
                            f"{dname} x={has_x} xprev={has_xprev} {sname}",
                            update,
                            {"_pnp_update_kernel": {"HAS_X": has_x, "HAS_XPREV": has_xprev}},
                        )
                    )
            # power_step: the pass, and the finish with gram or not
            for gram in (False, True):

                def power(shape=shape, dtype=dtype, gram=gram):
                    u = rand(shape, dtype)
                    state = initial_state(u)
                    return ops.power_step(rand(shape, dtype), u, state, 1e-3, gram, backend=T)

                cases.append(
                    Case(
                        "power_step",
                        f"{dname} gram={gram} {sname}",
                        power,
                        {"_power_pass_kernel": {}, "_power_finish_kernel": {"GRAM": gram}},
                    )
                )
            # constrained_step, flat kernel: no constraint, mask (one per image or shared), P x
            forms = {
                "none (KIND 0)": ({}, 0),
                "mask per image (KIND 1)": ({"mask": B}, 1),
                "mask shared (KIND 1)": ({"mask": 1}, 1),
                "projected (KIND 2)": ({"projected": True}, 2),
            }
            for fname, (form, kind) in forms.items():
                if form.get("mask") == 1 and B == 1:
                    continue

                def flat(shape=shape, dtype=dtype, form=form):
                    d, y = rand(shape, dtype), rand(shape, dtype)
                    h, c = rand((shape[0],), dtype), rand((shape[0],), dtype)
                    kw = {}
                    if form:
                        kw["lifted"] = rand(shape, dtype)
                    if "mask" in form:
                        kw["mask"] = (rand((form["mask"], 1, *shape[2:]), dtype) > 0.5).to(dtype)
                    if "projected" in form:
                        kw["projected"] = rand(shape, dtype)
                    return ops.constrained_step(d, y, h, c, 7, 3, backend=T, **kw)

                cases.append(
                    Case(
                        "constrained_step",
                        f"{dname} {fname} {sname}",
                        flat,
                        {"_step_flat_kernel": {"KIND": kind}, "_noise_kernel": {}},
                    )
                )
        # constrained_step, block-mean kernel: every block size and every tile width TW (the
        # launcher's _tile_blocks: min(TILE / s^2, next power of 2 of W / s), W = s 2^k up to
        # one past the cap) on one block row of 2x3 planes; the widest also on 3 block rows of
        # one plane (C = 1 and the partial count change the integer specialisations)
        for s in FAST_FACTORS:
            top = int(math.log2(TILE // (s * s))) + 1
            for k in range(top + 1):
                W = s * 2**k
                for B, C, rows in ((2, 3, 1), (1, 1, 3))[: 2 if k == top else 1]:
                    shape = (B, C, rows * s, W)
                    tw = min(TILE // (s * s), 2**k)

                    def block(shape=shape, dtype=dtype, s=s):
                        d, y = rand(shape, dtype), rand(shape, dtype)
                        h, c = rand((shape[0],), dtype), rand((shape[0],), dtype)
                        lifted = rand(shape, dtype)
                        return ops.constrained_step(
                            d, y, h, c, 7, 3, lifted=lifted, factor=s, backend=T
                        )

                    cases.append(
                        Case(
                            "constrained_step",
                            f"{dname} block mean s={s} TW={tw} {'x'.join(map(str, shape))}",
                            block,
                            {"_step_block_kernel": {"S": s, "TW": tw}, "_noise_kernel": {}},
                        )
                    )
    return cases


# --------------------------------------------------------------------------------------------
# Reporting


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_sha() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results")
    return f"{sha}+dirty" if dirty else sha


def _ptxas_version() -> str:
    from triton.backends.nvidia.compiler import get_ptxas  # noqa: TID251

    out = subprocess.run(
        [get_ptxas(90).path, "--version"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"release (\S+), V(\S+)", out)
    return found.group(2) if found else "unknown"


def make_rows(
    compiled: list[tuple[Spec, int, dict]], cases_of: dict[Spec, list[str]]
) -> list[dict]:
    import torch

    env = {
        "triton": _version("triton"),
        "torch": torch.__version__,
        "ptxas": _ptxas_version(),
        "git_sha": _git_sha(),
    }
    rows = []
    for spec, cc, res in compiled:
        row = {
            "kernel": spec.kernel,
            "spec": spec.spec_id,
            "specialisation": spec.describe(),
            "variant": spec.variant,
            "cc": cc,
            "num_warps": dict(spec.options)["num_warps"],
            "case": cases_of[spec][0],
            "n_cases": len(cases_of[spec]),
            **env,
        }
        if "registers" in res:
            row["warps_per_sm"] = resident_warps(
                cc, res["registers"], row["num_warps"], res["shared_dynamic"] + res["shared_static"]
            )
        for col in COLUMNS:
            row.setdefault(col, res.get(col))
        rows.append({c: row[c] for c in COLUMNS})
    return rows


def table(rows: list[dict]) -> str:
    """One line per specialisation: registers / spills / shared for each cc side by side."""
    by_spec: dict[str, dict] = {}
    for r in rows:
        entry = by_spec.setdefault(
            r["spec"],
            {"kernel": r["kernel"].split(":")[1], "spec": r["specialisation"], "v": r["variant"]},
        )
        spills = "-" if r["registers"] is None else f"{r['spill_stores']}/{r['spill_loads']}"
        entry[r["cc"]] = (
            r["registers"],
            spills,
            r["shared_dynamic"],
            r["shared_static"],
            r["warps_per_sm"],
        )
    header = ["kernel", "specialisation", "variant"]
    for cc in CCS:
        header += [f"regs{cc}", f"spill{cc}", f"smem{cc}", f"warps{cc}"]
    lines = []
    for e in sorted(by_spec.values(), key=lambda e: (e["kernel"], e["spec"], e["v"])):
        line = [e["kernel"], e["spec"], e["v"]]
        for cc in CCS:
            regs, spills, dyn, static, warps = e.get(cc, (None, "-", None, None, None))
            line += [regs if regs is not None else "ERR", spills, f"{dyn}+{static}", warps]
        lines.append(line)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    out = []
    for i, line in enumerate([header, *lines]):
        out.append("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def summary(rows: list[dict]) -> str:
    """Per kernel and cc: specialisations, the most registers and spill bytes."""
    agg: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        agg.setdefault((r["kernel"].split(":")[1], r["cc"]), []).append(r)
    lines = []
    for (kernel, cc), rs in sorted(agg.items()):
        ok = [r for r in rs if r["registers"] is not None]
        regs = [r["registers"] for r in ok]
        spills = [r["spill_stores"] + r["spill_loads"] + r["stack"] + r["local"] for r in ok]
        warps = [r["warps_per_sm"] for r in ok]
        lines.append(
            f"  {kernel:<22} sm_{cc}  {len(rs):3d} specs  registers {min(regs, default=0)}-"
            f"{max(regs, default=0)}  spill+local bytes {max(spills, default=0)}  warps/SM "
            f"{min(warps, default=0)}-{max(warps, default=0)}  failed {len(rs) - len(ok)}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--ptx-dir", help="write each PTX and cubin here (not committed)")
    parser.add_argument(
        "--results",
        help=f"JSONL to rewrite (default {RESULTS.relative_to(ROOT)}, none with --only; '' none)",
    )
    parser.add_argument("--only", nargs="+", help="only the cases of these ops (no coverage check)")
    parser.add_argument(
        "--record-only", action="store_true", help="print the recorded specialisations as JSON"
    )
    parser.add_argument(
        "--list-cases", action="store_true", help="print each case and the launches it records"
    )
    args = parser.parse_args(argv)
    if args.results is None:
        args.results = "" if args.only else str(RESULTS)
    t0 = time.perf_counter()
    # Triton decides when a kernel is defined whether it is interpreted: the real JITFunction
    # is needed here, whatever the caller's environment says
    os.environ["TRITON_INTERPRET"] = "0"

    cases = launcher_cases()
    if args.only:
        unknown = set(args.only) - {c.op for c in cases}
        if unknown:
            parser.error(
                f"--only: no cases for {sorted(unknown)} (ops: {sorted({c.op for c in cases})})"
            )
        cases = [c for c in cases if c.op in args.only]
    launches, problems = record(cases)
    if args.list_cases:
        for case in cases:
            hits = [launch.spec for launch in launches if launch.case == case.id]
            print(case.id)
            for spec in hits:
                print(f"    {spec.name} {spec.describe()}")
    cases_of: dict[Spec, list[str]] = {}
    for launch in launches:
        ids = cases_of.setdefault(launch.spec, [])
        if launch.case not in ids:
            ids.append(launch.case)
    specs = list(cases_of)
    for spec in specs:
        # the unaligned variant, unless a launch already had no divisibility attribute
        if spec.divisible and dataclasses.replace(spec, divisible=()) not in cases_of:
            ids = cases_of.setdefault(spec.unaligned(), [])
            ids += [c for c in cases_of[spec] if c not in ids]
    if not args.only:
        kernels = defined_kernels()
        for name in missing_kernels(kernels, {s.kernel for s in specs}):
            problems.append(
                f"{name}: no case launched it (nor a launched kernel calling it); add rows for "
                f"its launcher to launcher_cases() in .ci/aot_triton.py"
            )
    t_record = time.perf_counter() - t0
    if args.record_only:
        print(json.dumps([{**s.to_json(), "cases": c} for s, c in cases_of.items()], indent=1))
        for p in problems:
            print(f"aot_triton: FAIL {p}", file=sys.stderr)
        return 1 if problems else 0
    print(
        f"aot_triton: {len(cases)} cases, {len(launches)} launches, {len(specs)} specialisations "
        f"launched, {len(cases_of)} with the unaligned variants, recorded in {t_record:.1f} s"
    )

    if args.ptx_dir:
        Path(args.ptx_dir).mkdir(parents=True, exist_ok=True)
    compiled = compile_all(list(cases_of), CCS, max(1, args.jobs), args.ptx_dir)
    for spec, cc, res in compiled:
        problems += resource_problems(spec, cc, res)
    rows = make_rows(compiled, cases_of)
    print(table(rows))
    print("aot_triton: per kernel")
    print(summary(rows))
    if args.results:
        path = Path(args.results)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(path)
        print(f"aot_triton: wrote {len(rows)} rows to {path}")
    elapsed = time.perf_counter() - t0
    for p in problems:
        print(f"aot_triton: FAIL {p}", file=sys.stderr)
    status = f"{len(problems)} problems" if problems else "ok"
    print(
        f"aot_triton: {status}: {len(compiled)} compilations ({len(cases_of)} specialisations x "
        f"{len(CCS)} targets) in {elapsed:.0f} s with {args.jobs} jobs"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
