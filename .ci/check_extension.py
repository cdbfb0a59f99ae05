"""Check the built pnpfast._C against what the Python layer expects, without a GPU.

    python .ci/check_extension.py      (run by .ci/check_extension.sh in its CUDA venv)

What the Python side expects is derived from it, not listed here:

1. The fused ops are the ``FusedOp`` objects of the modules of ``pnpfast.ops``; the fast path of
   each backend is a ``torch.library`` custom op (``pnpfast::<op>_cuda``, ``pnpfast::<op>_triton``)
   with a fake kernel, and the CUDA one calls ops of the extension's library ``pnpfast_C``.
2. The calls into ``pnpfast_C`` are recorded by running the Python body of every
   ``pnpfast::<op>_cuda`` on small CPU inputs (``SAMPLES``, covering each optional argument given
   and not; an op without samples fails the check) with ``torch.ops.pnpfast_C`` replaced by a
   recorder. Each call records the C++ op, the kind of each positional argument (Tensor, None,
   int, float, bool) and which tensors are outputs: those allocated by ``empty_output``
   (pnpfast/ops/_alloc.py, the one place where fast paths allocate their outputs), or views of
   them. Any other tensor (an input, or one computed from the outputs of an earlier call) is read.
3. Against the registry of ``pnpfast_C`` (every op's schema): every op called is registered; its
   schema takes the arguments in that order with compatible types (Tensor -> Tensor or Tensor?,
   None -> an optional type, int -> int or SymInt (or float), float -> float, bool -> bool; any
   further schema argument has a default); exactly the allocated tensors are marked written
   ``(a!)`` (the custom ops declare ``mutates_args=()``, so an input must not be); it returns
   nothing (the Python side ignores a result); and no registered op goes uncalled.
4. Every registered ``pnpfast_C`` op has a CUDA kernel, and no other backend's (CPU, Meta); the
   built library holds code for every csrc/*.cu and every arch of TORCH_CUDA_ARCH_LIST, and no
   kernel in it spills or uses local memory (``cuobjdump --dump-resource-usage``, where found).
5. ``torch.library.opcheck`` on every custom op, with the sub-tests that need no GPU:
   * meta inputs, for ``_cuda`` and ``_triton``: the custom op's Meta kernel is its fake, so
     test_schema, test_autograd_registration, test_faketensor and test_aot_dispatch_dynamic all
     run the fake alone (outputs' metadata, aliasing and mutation annotations, tracing with
     dynamic shapes);
   * CPU inputs, for ``_cuda``: the ``pnpfast_C`` ops get CPU stand-ins for this process only
     (each writes a fixed value into the tensors its schema marks ``(a!)``), so the real Python
     body runs, its calls are bound by the dispatcher to the extension's own schemas (a wrong
     count or type raises), and all four sub-tests compare the fake with real outputs.
   What needs a GPU: the CUDA kernels' values (tests on a GPU machine, benchmarks/gpu_check.sh).

The functions take their inputs (ops, registry) as arguments so that tests/test_check_extension.py
can feed them a registry parsed from csrc/bindings.cpp or a broken one, in the CPU environment.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import torch

LIBRARY = "pnpfast_C"  # the extension's operator library (TORCH_LIBRARY in csrc/bindings.cpp)
OPCHECK_TESTS = (
    "test_schema",
    "test_autograd_registration",
    "test_faketensor",
    "test_aot_dispatch_dynamic",
)
SM_COUNT = 132  # stands in for the GPU's SM count where the Python side sizes partial sums


# ---- the Python side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FastPath:
    op: str  # the FusedOp's name, e.g. "fft_prox"
    backend: str  # "cuda" or "triton"
    custom_op: object  # torch._library.custom_ops.CustomOpDef
    module: str  # where the FusedOp lives

    @property
    def qualname(self) -> str:
        return f"{self.custom_op._namespace}::{self.custom_op._name}"


def fast_paths() -> list[FastPath]:
    """Every fast path of every FusedOp in the modules of pnpfast.ops, sorted."""
    import pnpfast.ops
    from pnpfast.dispatch import FusedOp

    found = []
    for info in pkgutil.iter_modules(pnpfast.ops.__path__):
        module = importlib.import_module(f"pnpfast.ops.{info.name}")
        for value in vars(module).values():
            if isinstance(value, FusedOp):
                for backend, (fn, _check) in value.impls.items():
                    found.append(FastPath(value.name, backend, fn, module.__name__))
    return sorted(found, key=lambda p: (p.op, p.backend))


def _images(B, C, H, W, device, dtype, gen):
    return torch.randn(B, C, H, W, device=device, dtype=dtype, generator=gen)


def _fft_prox_samples(device, dtype, gen):
    B, C, H, W = 2, 3, 5, 6
    Wr = W // 2 + 1
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128

    def spectrum():
        return torch.randn(B, C, H, Wr, device=device, dtype=cdtype, generator=gen)

    gamma = torch.rand(B, device=device, dtype=dtype, generator=gen) + 0.1
    for bk in (1, B):
        k2 = torch.rand(bk, 1, H, Wr, device=device, dtype=dtype, generator=gen)
        yield f"k2[{bk}]", (spectrum(), spectrum(), k2, gamma)


def _fft_grad_samples(device, dtype, gen):
    for label, (v, kty, k2, gamma) in _fft_prox_samples(device, dtype, gen):
        yield label, (v, kty, k2, -gamma, gamma + 0.5)


def _pnp_update_samples(device, dtype, gen):
    shape = (2, 3, 5, 6)
    f, z = _images(*shape, device, dtype, gen), _images(*shape, device, dtype, gen)
    coef = torch.randn(2, 4, device=device, dtype=dtype, generator=gen)
    for has_x in (False, True):
        for has_xprev in (False, True):
            x = _images(*shape, device, dtype, gen) if has_x else None
            xprev = _images(*shape, device, dtype, gen) if has_xprev else None
            yield f"x={has_x},xprev={has_xprev}", (f, z, x, xprev, coef)


def _constrained_step_samples(device, dtype, gen):
    B, C, H, W = 2, 3, 4, 8
    den, y = _images(B, C, H, W, device, dtype, gen), _images(B, C, H, W, device, dtype, gen)
    lifted = _images(B, C, H, W, device, dtype, gen)
    h = torch.rand(B, device=device, dtype=dtype, generator=gen)
    c = torch.rand(B, device=device, dtype=dtype, generator=gen)
    mask = (torch.rand(1, 1, H, W, device=device, generator=gen) > 0.5).to(dtype)
    projected = _images(B, C, H, W, device, dtype, gen)
    yield "no projection", (den, y, h, c, 7, 1, None, None, 0, None)
    yield "mask", (den, y, h, c, 7, 2, lifted, mask, 0, None)
    yield "factor 2", (den, y, h, c, 7, 3, lifted, None, 2, None)
    yield "projected", (den, y, h, c, 7, 4, lifted, None, 0, projected)


def _power_step_samples(device, dtype, gen):
    shape = (2, 3, 5, 6)
    w, u = _images(*shape, device, dtype, gen), _images(*shape, device, dtype, gen)
    # (estimate, scale, active, steps): one image running, one frozen
    state = torch.tensor([[1.0, 1.0, 1.0, 3.0], [2.0, 0.5, 0.0, 9.0]], dtype=dtype).to(device)
    for gram in (True, False):
        yield f"gram={gram}", (w, u, state, 1e-3, gram)


def _sr_prox_samples(device, dtype, gen):
    # every compiled factor, on sizes it divides that are neither square nor powers of two
    # (odd where the factor is), with a kernel shared by the batch and one per image
    B, C = 2, 3
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128

    def spectrum(*shape):
        return torch.randn(*shape, device=device, dtype=cdtype, generator=gen)

    gamma = torch.rand(B, device=device, dtype=dtype, generator=gen) + 0.1
    for s, H, W in ((1, 5, 7), (2, 6, 10), (3, 9, 15), (4, 8, 12)):
        for bk in (1, B):
            k2m = torch.rand(bk, 1, H // s, W // s, device=device, dtype=dtype, generator=gen)
            v, kty, k_hat = spectrum(B, C, H, W), spectrum(B, C, H, W), spectrum(bk, 1, H, W)
            yield f"s={s},{H}x{W},k_hat[{bk}]", (v, kty, k_hat, k2m, gamma, s)


# Inputs per FusedOp name: generators of (label, args) on (device, dtype, generator). Every fused
# op needs an entry; between them they give each optional argument and each form.
SAMPLES: dict[str, Callable[..., Iterator[tuple[str, tuple]]]] = {
    "constrained_step": _constrained_step_samples,
    "fft_grad": _fft_grad_samples,
    "fft_prox": _fft_prox_samples,
    "pnp_update": _pnp_update_samples,
    "power_step": _power_step_samples,
    "sr_prox": _sr_prox_samples,
}


def samples(op: str, device: str, dtype: torch.dtype) -> list[tuple[str, tuple]]:
    """The sample inputs of fused op ``op``; KeyError naming SAMPLES when it has none."""
    if op not in SAMPLES:
        raise KeyError(f"fused op {op!r} has no sample inputs: add them to SAMPLES in {__file__}")
    gen = torch.Generator().manual_seed(0)
    on_cpu = SAMPLES[op]("cpu", dtype, gen)
    return [(label, tuple(_to(a, device) for a in args)) for label, args in on_cpu]


def _to(a, device):
    return a.to(device) if isinstance(a, torch.Tensor) else a


@dataclass(frozen=True)
class Call:
    """One call into the extension: op name, argument kinds, which arguments it writes."""

    name: str
    kinds: tuple[str, ...]  # "Tensor", "None", "int", "float", "bool" (or a type name)
    written: tuple[bool, ...]  # per argument: an output (allocated by empty_output)
    caller: str  # "pnpfast::fft_prox_cuda [k2[1], torch.float32]"


def _kind(value) -> str:
    if isinstance(value, torch.Tensor):
        return "Tensor"
    if value is None:
        return "None"
    if isinstance(value, bool):  # before int: bool is an int
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return type(value).__name__


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


class _Recorder:
    """Stands in for torch.ops.pnpfast_C: records each call and does nothing. ``outputs``
    holds the storages that empty_output allocated during the call of the custom op."""

    def __init__(self, outputs: set[int], caller: str, calls: list[Call]):
        self._outputs, self._caller, self._calls = outputs, caller, calls

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        def record(*args, **kwargs):
            if kwargs:
                raise TypeError(f"{self._caller} passes keywords to {LIBRARY}.{name}: {kwargs}")
            kinds = tuple(_kind(a) for a in args)
            written = tuple(
                isinstance(a, torch.Tensor) and _storage(a) in self._outputs for a in args
            )
            self._calls.append(Call(name, kinds, written, self._caller))

        return record


@contextlib.contextmanager
def _replaced_library(stand_in) -> Iterator[None]:
    """torch.ops.pnpfast_C is ``stand_in`` inside; the Python side looks it up at each call."""
    had = LIBRARY in vars(torch.ops)
    previous = vars(torch.ops).get(LIBRARY)
    setattr(torch.ops, LIBRARY, stand_in)
    try:
        yield
    finally:
        if had:
            setattr(torch.ops, LIBRARY, previous)
        else:
            delattr(torch.ops, LIBRARY)


@contextlib.contextmanager
def _tracked_outputs(module, outputs: set[int]) -> Iterator[None]:
    """``module.empty_output`` adds the storage of each tensor it returns to ``outputs``."""
    alloc = importlib.import_module("pnpfast.ops._alloc")
    if getattr(module, "empty_output", None) is not alloc.empty_output:
        raise RuntimeError(
            f"{module.__name__} does not allocate its outputs with pnpfast.ops._alloc.empty_output"
        )

    def tracked(*args, **kwargs):
        out = alloc.empty_output(*args, **kwargs)
        outputs.add(_storage(out))
        return out

    module.empty_output = tracked
    try:
        yield
    finally:
        module.empty_output = alloc.empty_output


@contextlib.contextmanager
def cpu_sizing() -> Iterator[None]:
    """The Python side sizes the CUDA partial-sum buffers from the GPU's SM count: a fixed
    count stands in for it on a machine without a GPU."""
    alloc = importlib.import_module("pnpfast.ops._alloc")
    previous = alloc._sm_count
    alloc._sm_count = lambda index: SM_COUNT
    try:
        yield
    finally:
        alloc._sm_count = previous


def expected_calls(paths: list[FastPath]) -> list[Call]:
    """Every call into pnpfast_C that the CUDA fast paths make on the sample inputs (float32
    and float64), recorded by running their Python bodies on the CPU."""
    calls: list[Call] = []
    with cpu_sizing():
        for path in paths:
            if path.backend != "cuda":
                continue
            module = importlib.import_module(path.module)
            public = getattr(module, path.op)
            for dtype in (torch.float32, torch.float64):
                for label, args in samples(path.op, "cpu", dtype):
                    public(*args, backend="reference")  # the samples are valid inputs
                    caller = f"{path.qualname} [{label}, {dtype}]"
                    outputs: set[int] = set()
                    n = len(calls)
                    with (
                        _tracked_outputs(module, outputs),
                        _replaced_library(_Recorder(outputs, caller, calls)),
                    ):
                        path.custom_op._init_fn(*args)
                    if len(calls) == n:
                        raise RuntimeError(f"{caller} made no call into {LIBRARY}")
    return calls


# ---- the registry ------------------------------------------------------------------------------


def registered_schemas() -> dict[str, torch._C.FunctionSchema]:
    """name -> schema of every op of the pnpfast_C library registered in this process."""
    prefix = f"{LIBRARY}::"
    names = sorted(
        {
            n[len(prefix) :].split(".")[0]
            for n in torch._C._dispatch_get_all_op_names()
            if n.startswith(prefix)
        }
    )
    return {name: getattr(getattr(torch.ops, LIBRARY), name).default._schema for name in names}


def _compatible(kind: str, arg: torch._C.Argument) -> bool:
    t = arg.type
    optional = isinstance(t, torch._C.OptionalType)
    base = str(t.getElementType() if optional else t)
    if kind == "None":
        return optional
    return {
        "Tensor": base == "Tensor",
        "int": base in ("int", "SymInt", "float"),
        "float": base == "float",
        "bool": base == "bool",
    }.get(kind, False)


def _writes(arg: torch._C.Argument) -> bool:
    return arg.alias_info is not None and arg.alias_info.is_write


def schema_problems(calls: list[Call], registry: dict[str, torch._C.FunctionSchema]) -> list[str]:
    """What does not match between the recorded calls and the registry (empty when all do)."""
    problems: list[str] = []
    seen: set[tuple] = set()
    for call in calls:
        key = (call.name, call.kinds, call.written)
        if key in seen:
            continue
        seen.add(key)
        where = f"{call.caller} calls {LIBRARY}::{call.name}"
        schema = registry.get(call.name)
        if schema is None:
            problems.append(f"{where}, which is not registered")
            continue
        args = schema.arguments
        if len(call.kinds) > len(args):
            problems.append(
                f"{where} with {len(call.kinds)} arguments; its schema takes {len(args)}: {schema}"
            )
            continue
        for arg in args[len(call.kinds) :]:
            if not arg.has_default_value():
                problems.append(f"{where} without {arg.name}, which has no default: {schema}")
        for i, (kind, written, arg) in enumerate(zip(call.kinds, call.written, args, strict=False)):
            if not _compatible(kind, arg):
                problems.append(
                    f"{where} with a {kind} as argument {i} ({arg.name}: {arg.type}): {schema}"
                )
            elif kind == "Tensor" and written and not _writes(arg):
                problems.append(
                    f"{where} with an output as argument {i} ({arg.name}), which the schema does "
                    f"not mark written (Tensor(a!)): {schema}"
                )
            elif kind == "Tensor" and not written and _writes(arg):
                problems.append(
                    f"{where} with an input as argument {i} ({arg.name}), which the schema marks "
                    f"written; the custom op declares that it mutates nothing: {schema}"
                )
        if schema.returns:
            problems.append(f"{where}, whose result the Python side ignores: {schema}")
    called = {c.name for c in calls}
    for name in sorted(set(registry) - called):
        problems.append(f"{LIBRARY}::{name} is registered but the Python side never calls it")
    return problems


def dispatch_problems(names: list[str]) -> list[str]:
    """Each op of the extension has a CUDA kernel and no CPU or Meta kernel of its own."""
    problems = []
    for name in names:
        qualname = f"{LIBRARY}::{name}"
        if not torch._C._dispatch_has_kernel_for_dispatch_key(qualname, "CUDA"):
            problems.append(f"{qualname} has no CUDA kernel")
        for key in ("CPU", "Meta"):
            if torch._C._dispatch_has_kernel_for_dispatch_key(qualname, key):
                problems.append(f"{qualname} has a {key} kernel; the extension registers CUDA only")
    return problems


def fake_problems(paths: list[FastPath]) -> list[str]:
    """Every fast path is a registered custom op of pnpfast with a fake kernel."""
    problems = []
    for path in paths:
        ns = getattr(torch.ops, path.custom_op._namespace)
        if not hasattr(ns, path.custom_op._name):
            problems.append(f"{path.qualname} ({path.module}) is not registered")
        if path.custom_op._abstract_fn is None:
            problems.append(f"{path.qualname} ({path.module}) has no fake kernel")
    return problems


# ---- the binary --------------------------------------------------------------------------------


def find_cuobjdump() -> str | None:
    """cuobjdump from PATH, CUDA_HOME, or the copy that triton bundles (a toolkit without it)."""
    candidates = [shutil.which("cuobjdump")]
    if os.environ.get("CUDA_HOME"):
        candidates.append(str(Path(os.environ["CUDA_HOME"]) / "bin" / "cuobjdump"))
    spec = find_spec("triton")
    if spec and spec.origin:
        candidates.append(
            str(Path(spec.origin).parent / "backends" / "nvidia" / "bin" / "cuobjdump")
        )
    return next((c for c in candidates if c and Path(c).is_file()), None)


def binary_problems(dump: str, sources: list[str], archs: list[str]) -> list[str]:
    """From ``cuobjdump --dump-resource-usage`` of the built library: every source has code for
    every arch, and no kernel has a stack frame or local memory (the build's own flags, -O3
    -lineinfo, are not those of .ci/check_cuda.sh, so its binary is checked too)."""
    problems = []
    found: set[tuple[str, str]] = set()
    arch = source = function = None
    for line in dump.splitlines():
        line = line.strip()
        if line.startswith("arch = "):
            arch = line.removeprefix("arch = ")
        elif line.startswith("identifier = "):
            source = line.removeprefix("identifier = ").rsplit("/", 1)[-1]
            found.add((source, arch))
        elif line.startswith("Function "):
            function = line.removeprefix("Function ").rstrip(":")
        elif line.startswith("REG:") and function:
            usage = dict(item.split(":", 1) for item in line.split())
            if int(usage.get("STACK", 0)) or int(usage.get("LOCAL", 0)):
                problems.append(
                    f"{source} ({arch}) {function}: STACK:{usage.get('STACK')} "
                    f"LOCAL:{usage.get('LOCAL')} (spills or local memory)"
                )
    for src in sources:
        for a in archs:
            if (src, a) not in found:
                problems.append(f"the built library has no {a} code for {src}")
    return problems


def cuda_archs(arch_list: str) -> list[str]:
    """TORCH_CUDA_ARCH_LIST ("8.0;9.0", "8.0 9.0+PTX") as sm_XX names."""
    names = []
    for item in arch_list.replace(" ", ";").split(";"):
        item = item.strip().removesuffix("+PTX")
        if item:
            names.append("sm_" + item.replace(".", ""))
    return names


def ptx_archs(arch_list: str) -> list[str]:
    """The entries of TORCH_CUDA_ARCH_LIST marked +PTX, as sm_XX names."""
    return cuda_archs(";".join(i for i in arch_list.replace(" ", ";").split(";") if "+PTX" in i))


def default_arch_list() -> str:
    """setup.py's DEFAULT_ARCHS, read from the file (importing setup.py would run the build)."""
    tree = ast.parse((Path(__file__).resolve().parent.parent / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "DEFAULT_ARCHS" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise RuntimeError("setup.py defines no DEFAULT_ARCHS")


def ptx_problems(listing: str, sources: list[str], archs: list[str]) -> list[str]:
    """Each source must embed PTX for each +PTX arch (cuobjdump --list-ptx lines name the file
    and the arch, e.g. "PTX file    1: _C....fft_prox.sm_90.ptx")."""
    return [
        f"the built library has no {a} PTX for {src}"
        for src in sources
        for a in archs
        if not any(src.removesuffix(".cu") in line and a in line for line in listing.splitlines())
    ]


# ---- opcheck -----------------------------------------------------------------------------------


@contextlib.contextmanager
def cpu_stand_ins(registry: dict[str, torch._C.FunctionSchema]) -> Iterator[None]:
    """CPU kernels for the pnpfast_C ops, for this process only: each writes 0.25 into the
    tensors its schema marks (a!) (a fixed value, so traced and eager runs agree)."""
    lib = torch.library.Library(LIBRARY, "IMPL")

    def stand_in(schema):
        written = [i for i, a in enumerate(schema.arguments) if _writes(a)]

        def kernel(*args):
            for i in written:
                args[i].fill_(0.25)

        return kernel

    try:
        for name, schema in registry.items():
            lib.impl(name, stand_in(schema), "CPU")
        yield
    finally:
        lib._destroy()


def run_opcheck(path: FastPath, device: str, dtype: torch.dtype) -> list[str]:
    """opcheck with every sub-test on each sample; one line per failure."""
    failures = []
    for label, args in samples(path.op, device, dtype):
        results = torch.library.opcheck(
            path.custom_op, args, test_utils=OPCHECK_TESTS, raise_exception=False
        )
        for test, result in results.items():
            if result != "SUCCESS":
                first = str(result).strip().splitlines()[:3]
                failures.append(
                    f"{path.qualname} [{label}, {device}, {dtype}] {test}: {' / '.join(first)}"
                )
    return failures


def main() -> int:
    import pnpfast._C  # noqa: F401  (registers the pnpfast_C ops; needs no GPU)

    print(
        f"check_extension: torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"GPU present: {torch.cuda.is_available()}, pnpfast._C from {sys.modules['pnpfast._C'].__file__}"
    )
    paths = fast_paths()
    registry = registered_schemas()
    calls = expected_calls(paths)
    print(f"check_extension: fast paths: {', '.join(p.qualname for p in paths)}")
    for name, schema in registry.items():
        n = sum(c.name == name for c in calls)
        print(f"check_extension: registered {schema}  ({n} recorded calls)")
    problems = [
        *fake_problems(paths),
        *schema_problems(calls, registry),
        *dispatch_problems(sorted(registry)),
    ]
    cuobjdump = find_cuobjdump()
    if cuobjdump is None:
        print("check_extension: cuobjdump not found; the built binary's resources are not checked")
    else:
        library = sys.modules["pnpfast._C"].__file__
        dump = subprocess.run(
            [cuobjdump, "--dump-resource-usage", library], capture_output=True, text=True
        ).stdout
        csrc = Path(__file__).resolve().parent.parent / "csrc"
        sources = sorted(p.name for p in csrc.glob("*.cu"))
        arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST") or default_arch_list()
        archs = cuda_archs(arch_list)
        binary = binary_problems(dump, sources, archs)
        listing = subprocess.run(
            [cuobjdump, "--list-ptx", library], capture_output=True, text=True
        ).stdout
        binary += ptx_problems(listing, sources, ptx_archs(arch_list))
        problems += binary
        kernels = dump.count("Function ")
        print(
            f"check_extension: the built library holds {kernels} kernels for {', '.join(archs)} "
            f"from {len(sources)} sources ({cuobjdump})"
        )
    if problems:
        for p in problems:
            print(f"check_extension: FAILED: {p}", file=sys.stderr)
        return 1
    print(f"check_extension: ok  {len(calls)} calls match the schemas of {len(registry)} ops")

    failures: list[str] = []
    runs = 0
    for dtype in (torch.float32, torch.float64):
        for path in paths:
            failures += run_opcheck(path, "meta", dtype)
            runs += 1
    with cpu_sizing(), cpu_stand_ins(registry):
        for dtype in (torch.float32, torch.float64):
            for path in paths:
                if path.backend == "cuda":
                    failures += run_opcheck(path, "cpu", dtype)
                    runs += 1
    if failures:
        for f in failures:
            print(f"check_extension: FAILED opcheck: {f}", file=sys.stderr)
        return 1
    print(
        f"check_extension: ok  opcheck ({', '.join(OPCHECK_TESTS)}) on {runs} (op, device, dtype) "
        "runs: every fast path on meta, the CUDA ones on CPU with stand-in kernels"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
