"""The shape of the archsearch package: small files, no import cycles, no private cross-folder imports.

The rules, as checked here (the source is read with ``ast``; nothing is imported):

1. **File size.** No ``.py`` file under ``archsearch/`` is longer than :data:`MAX_LINES` lines.
2. **No import cycles** between modules of the package. A module's imports are all its ``import``
   and ``from ... import`` statements, those inside functions included (a function-level import
   that closes a loop only hides the cycle until the function runs: ``search/_optuna.py`` calling
   ``from ._ray import ...`` while ``_ray`` imports ``_optuna`` is a cycle), except those under
   ``if TYPE_CHECKING:`` (they never run; its ``else:`` branch counts). Relative imports are
   resolved against the importing module's package. ``from P import name`` is an edge to the
   submodule ``P.name`` where that file exists, else to the module ``P`` (a package's
   ``__init__``). Importing ``a.b.c`` also runs ``a`` and ``a.b``, but those implicit
   parent-package imports are not edges (otherwise every package that imports its own submodules
   would be a cycle). A cycle is a set of modules that reach each other through these edges; each
   one is reported with one concrete loop, naming the file and line of every import on it.
3. **No private names across folders.** A module may import a private name (a module or a symbol
   whose name starts with one underscore) only from its own folder (its own package directory).
   From another folder, the parent's and the subpackages' included, it imports through that
   folder's public ``__init__``: ``from ..spec import load_spec``, not ``from ..spec._load import
   load_spec`` nor ``from ..spec import _helper``. Every import counts for this rule, those inside
   functions and under ``TYPE_CHECKING`` too. A private component shared with the importer's own
   folder path (a module inside ``_impl/`` importing from ``_impl/sub/``) is not counted again.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "archsearch"
MAX_LINES = 500


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. archsearch.spec._load
    file: Path
    is_package: bool  # an __init__.py

    @property
    def folder(self) -> str:
        """The dotted name of the package directory holding the file."""
        return self.name if self.is_package else self.name.rpartition(".")[0]

    @property
    def rel(self) -> str:
        return str(self.file.relative_to(ROOT))


@dataclass(frozen=True)
class Import:
    line: int
    target: str  # the dotted module the statement loads (a submodule where ``name`` is one)
    name: str | None  # the symbol of ``from target import name``; None for ``import target``
    runs: bool  # False under ``if TYPE_CHECKING:`` (rule 2 leaves those out)
    text: str  # the statement as written, for messages


def _modules() -> dict[str, Module]:
    out: dict[str, Module] = {}
    for file in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(file.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = Module(".".join(parts), file, is_package)
    return out


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(body: list[ast.stmt], runs: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Every import statement below ``body``, with whether it can run (not under TYPE_CHECKING)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, runs
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _statements(node.body, False)
            yield from _statements(node.orelse, runs)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    stmts = [
                        c for c in children if isinstance(c, ast.stmt | ast.excepthandler | ast.match_case)
                    ]
                    for child in stmts:
                        if isinstance(child, ast.stmt):
                            yield from _statements([child], runs)
                        else:
                            yield from _statements(child.body, runs)


def _resolve_from(module: Module, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.name if module.is_package else module.name.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def _imports(module: Module) -> list[Import]:
    tree = ast.parse(module.file.read_text(encoding="utf-8"), str(module.file))
    out: list[Import] = []
    for node, runs in _statements(tree.body, True):
        text = ast.unparse(node)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    out.append(Import(node.lineno, alias.name, None, runs, text))
            continue
        source = _resolve_from(module, node)
        if source != PACKAGE and not source.startswith(PACKAGE + "."):
            continue
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            target = sub if sub in MODULES else source
            out.append(Import(node.lineno, target, alias.name, runs, text))
    return out


IMPORTS = {name: _imports(module) for name, module in MODULES.items()}


# --------------------------------------------------------------------------- rule 1: file size


def test_no_file_in_the_package_is_longer_than_500_lines():
    offences = []
    for module in MODULES.values():
        lines = len(module.file.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            offences.append(f"{module.rel}: {lines} lines (at most {MAX_LINES})")
    assert not offences, "files too long:\n" + "\n".join(offences)


# --------------------------------------------------------------------------- rule 2: import cycles


def _graph() -> dict[str, dict[str, Import]]:
    """module -> {imported module: the first import statement that loads it}."""
    graph: dict[str, dict[str, Import]] = {name: {} for name in MODULES}
    for name, imports in IMPORTS.items():
        for imp in imports:
            if imp.runs and imp.target in MODULES and imp.target != name:
                graph[name].setdefault(imp.target, imp)
    return graph


def _strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative), components of more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _loop(graph: dict[str, dict[str, Import]], component: list[str]) -> list[str]:
    """The shortest loop from the component's first module back to itself (breadth first)."""
    inside = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in inside:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no loop in {component}")  # pragma: no cover - a component has one


def import_cycles() -> list[str]:
    """One message per cycle: its modules, then one loop through them, edge by edge."""
    graph = _graph()
    messages = []
    for component in _strongly_connected(graph):
        loop = _loop(graph, component)
        edges = [
            f"    {MODULES[a].rel}:{graph[a][b].line}: {graph[a][b].text}  ({a} -> {b})"
            for a, b in itertools.pairwise(loop)
        ]
        messages.append(
            f"import cycle among {len(component)} modules: {', '.join(component)}\n"
            f"  for example {' -> '.join(loop)}:\n" + "\n".join(edges)
        )
    return messages


def test_no_import_cycles_between_modules_of_the_package():
    cycles = import_cycles()
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(cycles)


# --------------------------------------------------------------------------- rule 3: private names


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def private_imports() -> list[str]:
    """One message per import statement that takes a private module or symbol from another folder."""
    found: dict[tuple[str, int, str], list[str]] = {}
    for name, module in MODULES.items():
        own = module.folder.split(".")
        for imp in IMPORTS[name]:
            target = MODULES.get(imp.target)
            folder = target.folder if target is not None else imp.target.rpartition(".")[0]
            if folder == module.folder:
                continue
            parts = imp.target.split(".")
            shared = 0
            while shared < min(len(own), len(parts)) and own[shared] == parts[shared]:
                shared += 1
            what = []
            if any(_private(p) for p in parts[shared:]):
                what.append(f"private module {imp.target}")
            if imp.name is not None and _private(imp.name) and not imp.target.endswith("." + imp.name):
                what.append(f"private name {imp.name} of {imp.target}")
            messages = found.setdefault((module.rel, imp.line, imp.text), [])
            messages += [w for w in what if w not in messages]
    return [
        f"{rel}:{line}: {text}\n    takes {'; '.join(what)} from another folder "
        f"(go through that folder's public __init__ or a public module)"
        for (rel, line, text), what in sorted(found.items())
        if what
    ]


def test_no_module_imports_a_private_name_from_another_folder():
    found = private_imports()
    assert not found, f"{len(found)} private cross-folder import(s):\n" + "\n".join(found)


# --------------------------------------------------------------------------- the checker itself


def test_the_checker_reads_the_whole_package():
    assert f"{PACKAGE}.spec" in MODULES and MODULES[f"{PACKAGE}.spec"].is_package
    assert len(MODULES) > 20 and sum(len(v) for v in IMPORTS.values()) > 100


def test_the_checker_finds_a_cycle_and_a_private_import_in_a_made_up_graph(monkeypatch):
    graph = {"a": {}, "b": {}, "c": {}, "d": {}}
    imp = Import(1, "", None, True, "import x")
    graph["a"]["b"] = graph["b"]["c"] = graph["c"]["a"] = graph["c"]["d"] = imp
    assert _strongly_connected(graph) == [["a", "b", "c"]]
    assert _loop(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    graph["d"]["d"] = imp
    assert _strongly_connected(graph) == [["a", "b", "c"]]  # a module importing itself is no cycle


def test_the_checker_counts_function_level_imports_but_not_type_checking_ones():
    source = (
        "from typing import TYPE_CHECKING\n"
        "import a\n"
        "if TYPE_CHECKING:\n"
        "    import b\n"
        "else:\n"
        "    import c\n"
        "try:\n"
        "    import d\n"
        "except ImportError:\n"
        "    import e\n"
        "class K:\n"
        "    import f\n"
        "    def g(self):\n"
        "        import g\n"
    )
    found = [(ast.unparse(node), runs) for node, runs in _statements(ast.parse(source).body, True)]
    assert found == [
        ("from typing import TYPE_CHECKING", True),
        ("import a", True),
        ("import b", False),
        ("import c", True),
        ("import d", True),
        ("import e", True),
        ("import f", True),
        ("import g", True),
    ]
