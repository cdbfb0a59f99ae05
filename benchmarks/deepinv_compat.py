"""Import deepinv for the benchmarks, with a stand-in for torchvision where it cannot load.

deepinv imports torchvision when it is imported, although the operators the benchmarks compare
against (``deepinv.physics.BlurFFT``) never call it. On a machine where torchvision has no
working wheel for the installed torch, ``import_deepinv()`` puts a permissive stub package named
``torchvision`` into ``sys.modules`` and tries again. The stub answers any attribute or
submodule with a placeholder class; calling or instantiating a placeholder raises, so a code path
that really needs torchvision fails loudly instead of computing something wrong.

The stub is installed only when the first import fails because torchvision itself cannot be
imported, and it is left in place afterwards (deepinv's modules keep references to it).
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

STUB_NAME = "torchvision"


class _PlaceholderMeta(type):
    """Metaclass of the placeholders: any class attribute is another placeholder."""

    def __getattr__(cls, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls.__qualname__}.{name}", cls.__module__)

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(
            f"{cls.__module__}.{cls.__qualname__} is part of a torchvision stub installed by "
            "benchmarks/deepinv_compat.py; install a working torchvision to use it"
        )

    def __iter__(cls):
        return iter(())


def _placeholder(qualname: str, module: str) -> type:
    name = qualname.rsplit(".", 1)[-1]
    return _PlaceholderMeta(name, (), {"__qualname__": qualname, "__module__": module})


class _StubModule(types.ModuleType):
    """A stub module whose missing attributes are placeholders."""

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        value = _placeholder(name, self.__name__)
        setattr(self, name, value)
        return value


class _StubLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []  # a package, so that any submodule can be imported
        if spec.name == STUB_NAME:
            module.__version__ = "0.0.0+pnpfast-stub"
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _StubFinder(importlib.abc.MetaPathFinder):
    """Finds ``torchvision`` and every ``torchvision.*`` module as a stub."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname == STUB_NAME or fullname.startswith(STUB_NAME + "."):
            return importlib.machinery.ModuleSpec(fullname, _StubLoader(), is_package=True)
        return None


def _torchvision_error() -> Exception | None:
    try:
        importlib.import_module(STUB_NAME)
    except Exception as exc:
        return exc
    return None


def install_torchvision_stub() -> None:
    """Put the stub finder first on sys.meta_path and drop any half-imported torchvision."""
    if not any(isinstance(f, _StubFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StubFinder())
    for name in [m for m in sys.modules if m == STUB_NAME or m.startswith(STUB_NAME + ".")]:
        del sys.modules[name]


def _forget_deepinv() -> None:
    for name in [m for m in sys.modules if m == "deepinv" or m.startswith("deepinv.")]:
        del sys.modules[name]


def import_deepinv() -> tuple[types.ModuleType | None, str]:
    """Import deepinv; returns (module, note) or (None, why it cannot be imported).

    The note is empty when deepinv imported normally and says so when the torchvision stub
    was needed.
    """
    try:
        return importlib.import_module("deepinv"), ""
    except Exception as first:
        failure = first
    tv_error = _torchvision_error()
    if tv_error is None:
        return None, f"deepinv cannot be imported: {type(failure).__name__}: {failure}"
    _forget_deepinv()
    install_torchvision_stub()
    try:
        module = importlib.import_module("deepinv")
    except Exception as second:
        return None, (
            f"deepinv cannot be imported even with a torchvision stub: "
            f"{type(second).__name__}: {second}"
        )
    version = getattr(module, "__version__", "?")
    return module, f"deepinv {version} with a torchvision stub ({type(tv_error).__name__})"
