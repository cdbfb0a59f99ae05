"""No import cycles inside pnpfast, read from the source (no module is imported).

The graph: one node per module of ``pnpfast/`` (a package is the node of its ``__init__.py``),
plus ``kernels/`` as ``pnpfast.kernels`` (how setup.py installs it). Every ``import`` and
``from ... import`` statement counts, at module level and inside functions alike (a
function-level import that dodges a cycle at import time is still a cycle of the design), and
``if TYPE_CHECKING`` blocks count too. Edges:

* ``import pnpfast.a.b`` and ``from pnpfast.a.b import name``: an edge to ``pnpfast.a.b``;
  ``from pnpfast.a import b`` (relative forms resolved the same way) is an edge to the submodule
  ``pnpfast.a.b`` when ``b`` is one, else to ``pnpfast.a`` itself (its ``__init__`` defines or
  re-exports ``b``).
* Importing ``pnpfast.a.b`` also runs the ``__init__`` of its packages, so it adds an edge to
  ``pnpfast.a`` too, except to the importer's own packages (and to ``pnpfast`` itself, which
  every module sits in): a package importing its submodules, and those importing their
  siblings, is the ordinary shape of a package and no cycle. A submodule that imports a name
  defined or re-exported by its own package's ``__init__`` (``from pnpfast.denoisers import
  load`` inside ``pnpfast/denoisers/``) does make an edge back to the package, and so a cycle.

The test fails naming one cycle per strongly connected component.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# source folders and the package names they install as (setup.py's package_dir)
SOURCES = {"pnpfast": ROOT / "pnpfast", "pnpfast.kernels": ROOT / "kernels"}


def module_files(sources: dict[str, pathlib.Path]) -> dict[str, pathlib.Path]:
    """{dotted module name: file} for every .py file under the source folders."""
    found = {}
    for package, folder in sources.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def import_graph(sources: dict[str, pathlib.Path]) -> dict[str, set[str]]:
    """{module: modules it imports} over the modules of ``sources`` (see the module docstring)."""
    files = module_files(sources)
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    # the longest prefix that is one of our modules
                    for k in range(len(parts), 0, -1):
                        if ".".join(parts[:k]) in files:
                            targets.add(".".join(parts[:k]))
                            break
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base not in files:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in files else base)
        own = {*_ancestors(name), name}
        for target in list(targets):
            targets.update(a for a in _ancestors(target) if a not in own and a in files)
        graph[name] = targets - {name}
    return graph


def components(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm,
    iterative): each holds every module on some cycle with the others."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.add(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(component)
    return found


def a_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle ``[m0, m1, ..., m0]`` through the smallest name of ``component``
    (breadth-first search inside the component)."""
    first = min(component)
    parent: dict[str, str | None] = {first: None}
    frontier = [first]
    closing = None
    while frontier and closing is None:
        nxt = []
        for node in frontier:
            if first in graph[node]:
                closing = node
                break
            for child in sorted(graph[node] & component):
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    path = []
    node = closing
    while node is not None:
        path.append(node)
        node = parent[node]
    return [*reversed(path), first]


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component, sorted."""
    return sorted(a_cycle(graph, c) for c in components(graph))


def test_no_import_cycles():
    graph = import_graph(SOURCES)
    # the graph is really read: known edges of each kind are in it
    assert "pnpfast._validate" in graph["pnpfast.metrics"]  # from pnpfast import _validate
    assert "pnpfast.denoisers.base" in graph["pnpfast.denoisers"]  # a package's own submodule
    # pnpfast.train.loop imports pnpfast.denoisers.architectures, so runs pnpfast/denoisers/__init__
    edges = {"pnpfast.denoisers", "pnpfast.denoisers.architectures"}
    assert edges <= graph["pnpfast.train.loop"]
    found = sorted(components(graph), key=min)
    assert not found, "import cycles in pnpfast (a cycle, then every module on one with it):\n" + (
        "\n".join(
            " -> ".join(a_cycle(graph, c)) + "\n    {" + ", ".join(sorted(c)) + "}" for c in found
        )
    )


def test_top_level_parts_import_one_way():
    """The same graph with each subpackage (and top-level module) of pnpfast as one node: data
    flows one way between them too (solvers -> denoisers, never back; train -> denoisers)."""
    graph = import_graph(SOURCES)

    def part(name: str) -> str:
        return ".".join(name.split(".")[:2])

    coarse: dict[str, set[str]] = {}
    for name, targets in graph.items():
        coarse.setdefault(part(name), set()).update(part(t) for t in targets)
    coarse = {p: targets - {p} for p, targets in coarse.items()}
    assert "pnpfast.denoisers" in coarse["pnpfast.train"]
    found = sorted(components(coarse), key=min)
    assert not found, "import cycles between parts of pnpfast:\n" + "\n".join(
        " -> ".join(a_cycle(coarse, c)) for c in found
    )


def _write(folder: pathlib.Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # a function-level import closes the cycle
        (
            {
                "__init__.py": "",
                "a.py": "from pkg import b\n",
                "b.py": "def f():\n    from pkg.a import x\n",
            },
            [["pkg.a", "pkg.b", "pkg.a"]],
        ),
        # a relative import, through a subpackage's __init__ that re-exports a name
        (
            {
                "__init__.py": "",
                "a.py": "from .sub import thing\n",
                "sub/__init__.py": "from .inner import thing\n",
                "sub/inner.py": "from ..a import y\n",
            },
            [["pkg.a", "pkg.sub", "pkg.sub.inner", "pkg.a"]],
        ),
        # a submodule importing a name of its own package's __init__
        (
            {"__init__.py": "from pkg.m import f\n", "m.py": "from pkg import g\n"},
            [["pkg", "pkg.m", "pkg"]],
        ),
        # a package importing its submodules, which import their siblings: no cycle
        (
            {
                "__init__.py": "from pkg.sub import f\n",
                "sub/__init__.py": "from pkg.sub.m import f\n",
                "sub/m.py": "import pkg.sub.n\nfrom pkg.sub import n\n",
                "sub/n.py": "from pkg import other\n",
                "other.py": "",
            },
            [],
        ),
        # importing pkg.sub.m from outside runs pkg.sub's __init__: that edge counts
        (
            {
                "__init__.py": "",
                "a.py": "import pkg.sub.m\n",
                "sub/__init__.py": "from pkg.sub.n import f\n",
                "sub/m.py": "",
                "sub/n.py": "def f():\n    import pkg.a\n",
            },
            [["pkg.a", "pkg.sub", "pkg.sub.n", "pkg.a"]],
        ),
    ],
    ids=["function-level", "relative-via-init", "back-to-own-init", "no-cycle", "parent-init"],
)
def test_cycle_finder_on_small_packages(tmp_path, files, expected):
    _write(tmp_path / "pkg", files)
    assert find_cycles(import_graph({"pkg": tmp_path / "pkg"})) == expected
