"""The extension check (.ci/check_extension.py) in the CPU environment, without pnpfast._C.

The real check runs in the CUDA venv of .ci/check_extension.sh against the built extension. Here
its parts are fed the registry that csrc/bindings.cpp declares (its ``m.def`` schema strings,
parsed by torch), or a broken copy of it, to show that the Python side and the bindings agree
today and that each kind of drift is caught.
"""

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load_checker():
    spec = importlib.util.spec_from_file_location(
        "check_extension", ROOT / ".ci" / "check_extension.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ce = _load_checker()


def bindings_schemas() -> dict[str, str]:
    """name -> schema string of every ``m.def("...")`` in csrc/bindings.cpp (adjacent string
    literals joined, as the C++ compiler does)."""
    text = (ROOT / "csrc" / "bindings.cpp").read_text()
    found = {}
    for call in re.finditer(r'm\.def\(\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\)', text):
        schema = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', call.group(1)))
        found[schema.split("(", 1)[0]] = schema
    return found


def parse(schemas: dict[str, str]) -> dict[str, torch._C.FunctionSchema]:
    return {name: torch._C.parse_schema(f"{ce.LIBRARY}::{s}") for name, s in schemas.items()}


@pytest.fixture(scope="module")
def calls():
    return ce.expected_calls(ce.fast_paths())


@pytest.fixture(scope="module")
def declared() -> dict[str, str]:
    schemas = bindings_schemas()
    assert len(schemas) >= 6, f"found only {sorted(schemas)} in csrc/bindings.cpp"
    return schemas


def test_fast_paths_are_found_from_the_dispatch_table():
    paths = ce.fast_paths()
    names = {p.qualname for p in paths}
    # the FusedOps of pnpfast/ops, each with a cuda and a triton fast path
    ops = {"fft_prox", "fft_grad", "pnp_update", "constrained_step", "power_step", "sr_prox"}
    assert {f"pnpfast::{op}_{b}" for op in ops for b in ("cuda", "triton")} <= names
    assert ce.fake_problems(paths) == []


def test_recorded_calls_cover_optional_arguments(calls):
    kinds = {(c.name, c.kinds) for c in calls}
    pnp = {k for n, k in kinds if n == "pnp_update_out"}
    assert {k[2:4] for k in pnp} == {
        ("None", "None"),
        ("Tensor", "None"),
        ("None", "Tensor"),
        ("Tensor", "Tensor"),
    }
    power = next(c for c in calls if c.name == "power_step_out")
    assert power.kinds[3:5] == ("float", "bool")
    # out and partial are outputs; the inputs and sigma (computed from partial) are read
    noise = next(c for c in calls if c.name == "constrained_step_noise_")
    assert noise.written == (True, False, False, False)
    step = next(c for c in calls if c.name == "constrained_step_out")
    assert step.written[-2:] == (True, True) and not any(step.written[:-2])


def test_python_side_matches_bindings_cpp(calls, declared):
    assert ce.schema_problems(calls, parse(declared)) == []


def _edit(declared, name, old, new):
    assert old in declared[name], (name, old)
    return parse({**declared, name: declared[name].replace(old, new)})


def test_a_missing_op_fails(calls, declared):
    registry = parse({n: s for n, s in declared.items() if n != "fft_grad_out"})
    problems = ce.schema_problems(calls, registry)
    assert problems and all("fft_grad_out, which is not registered" in p for p in problems)


def test_an_argument_of_another_type_fails(calls, declared):
    registry = _edit(declared, "power_step_out", "float tol", "int tol")
    problems = ce.schema_problems(calls, registry)
    assert problems and all("with a float as argument 3 (tol: int)" in p for p in problems)
    # an int where the schema takes a float is accepted (the dispatcher converts it)
    widened = _edit(declared, "constrained_step_out", "int factor", "float factor")
    assert ce.schema_problems(calls, widened) == []


def test_a_required_tensor_where_the_python_side_passes_none_fails(calls, declared):
    registry = _edit(declared, "pnp_update_out", "Tensor? x,", "Tensor x,")
    problems = ce.schema_problems(calls, registry)
    assert problems and all("with a None as argument 2 (x: Tensor)" in p for p in problems)


def test_an_output_not_marked_written_fails(calls, declared):
    registry = _edit(declared, "fft_prox_out", "Tensor(a!) out", "Tensor out")
    problems = ce.schema_problems(calls, registry)
    assert problems and all("does not mark written" in p for p in problems)


def test_an_input_marked_written_fails(calls, declared):
    registry = _edit(declared, "power_step_out", "Tensor state,", "Tensor(d!) state,")
    problems = ce.schema_problems(calls, registry)
    assert problems and all("an input as argument 2 (state)" in p for p in problems)


def test_an_extra_argument_without_default_fails(calls, declared):
    registry = _edit(declared, "fft_prox_out", "Tensor(a!) out)", "Tensor(a!) out, int extra)")
    problems = ce.schema_problems(calls, registry)
    assert problems and all("without extra, which has no default" in p for p in problems)
    with_default = _edit(
        declared, "fft_prox_out", "Tensor(a!) out)", "Tensor(a!) out, int extra=0)"
    )
    assert ce.schema_problems(calls, with_default) == []


def test_fewer_arguments_or_a_result_fail(calls, declared):
    fewer = _edit(declared, "fft_grad_out", "Tensor s, Tensor t,", "Tensor s,")
    assert any(
        "with 6 arguments; its schema takes 5" in p for p in ce.schema_problems(calls, fewer)
    )
    result = _edit(declared, "fft_grad_out", "-> ()", "-> Tensor")
    assert any("result the Python side ignores" in p for p in ce.schema_problems(calls, result))


def test_a_registered_op_never_called_fails(calls, declared):
    registry = parse({**declared, "old_op": "old_op(Tensor x) -> ()"})
    assert ce.schema_problems(calls, registry) == [
        "pnpfast_C::old_op is registered but the Python side never calls it"
    ]


def test_a_fused_op_without_samples_fails(monkeypatch):
    monkeypatch.delitem(ce.SAMPLES, "power_step")
    with pytest.raises(KeyError, match="'power_step' has no sample inputs: add them to SAMPLES"):
        ce.expected_calls(ce.fast_paths())


@pytest.fixture
def stand_in_library(declared):
    """The bindings' schemas defined in this process (no extension here), removed afterwards."""
    lib = torch.library.Library(ce.LIBRARY, "DEF")
    for schema in declared.values():
        lib.define(schema)
    yield parse(declared)
    lib._destroy()


def test_registry_and_dispatch_checks_read_the_process(stand_in_library):
    assert set(ce.registered_schemas()) == set(stand_in_library)
    # defined without any kernel: each lacks the CUDA kernel the extension must register
    problems = ce.dispatch_problems(sorted(stand_in_library))
    assert problems == [f"pnpfast_C::{n} has no CUDA kernel" for n in sorted(stand_in_library)]


def test_opcheck_on_cpu_catches_a_wrong_fake(stand_in_library):
    path = next(p for p in ce.fast_paths() if p.qualname == "pnpfast::fft_grad_cuda")
    fake = path.custom_op._abstract_fn
    with ce.cpu_sizing(), ce.cpu_stand_ins(stand_in_library):
        assert ce.run_opcheck(path, "cpu", torch.float32) == []
        # a fake whose output has another shape than the real one
        path.custom_op.register_fake(lambda v, *rest: torch.empty_like(v[:, :1]))
        try:
            failures = ce.run_opcheck(path, "cpu", torch.float32)
        finally:
            path.custom_op.register_fake(fake)
    assert failures and any("mismatched tensor metadata" in f for f in failures)
    assert all("test_faketensor" in f or "test_aot" in f for f in failures)


DUMP = """
Fatbin elf code:
================
arch = sm_80
identifier = /x/src/csrc/a.cu

Resource usage:
 Function _Z1kv:
  REG:40 STACK:0 SHARED:96 LOCAL:0 CONSTANT[0]:424 TEXTURE:0 SURFACE:0 SAMPLER:0
 Function _Z1jv:
  REG:32 STACK:16 SHARED:96 LOCAL:16 CONSTANT[0]:424 TEXTURE:0 SURFACE:0 SAMPLER:0

Fatbin elf code:
================
arch = sm_90
identifier = /x/src/csrc/a.cu

Resource usage:
 Function _Z1kv:
  REG:32 STACK:0 SHARED:96 LOCAL:0 CONSTANT[0]:424 TEXTURE:0 SURFACE:0 SAMPLER:0
"""


def test_binary_check_finds_local_memory_and_missing_code():
    problems = ce.binary_problems(DUMP, ["a.cu", "b.cu"], ["sm_80", "sm_90"])
    assert problems == [
        "a.cu (sm_80) _Z1jv: STACK:16 LOCAL:16 (spills or local memory)",
        "the built library has no sm_80 code for b.cu",
        "the built library has no sm_90 code for b.cu",
    ]
    clean = DUMP.replace("STACK:16", "STACK:0").replace("LOCAL:16", "LOCAL:0")
    assert ce.binary_problems(clean, ["a.cu"], ["sm_80", "sm_90"]) == []
    assert ce.cuda_archs("8.0;9.0") == ["sm_80", "sm_90"]
    assert ce.cuda_archs("8.6 9.0+PTX") == ["sm_86", "sm_90"]


def test_ptx_check_finds_missing_ptx_and_reads_setup_default():
    listing = "PTX file    1: a.sm_90.ptx\nPTX file    2: b.sm_80.ptx\n"
    assert ce.ptx_archs("8.0;9.0+PTX") == ["sm_90"]
    assert ce.ptx_archs("8.0;9.0") == []
    assert ce.ptx_problems(listing, ["a.cu", "b.cu"], ["sm_90"]) == [
        "the built library has no sm_90 PTX for b.cu"
    ]
    assert ce.ptx_problems(listing, ["a.cu"], ["sm_90"]) == []
    # setup.py's default ships machine code for sm_80 and sm_90, and PTX for newer GPUs
    assert ce.default_arch_list() == "8.0;9.0+PTX"
