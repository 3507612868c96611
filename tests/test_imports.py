"""The layers read one way: no import cycle between the modules of the library (orbitlab)
and the lab (orbitlab_lab), the library never imports the lab, and nothing below the command
line imports it.

Imports are read from the source (module level and inside functions alike, since a
function-level import is still a dependency), not from what Python happens to load.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Each package's directory: the library at the top, the lab under lab/.
PACKAGES = {"orbitlab": ROOT / "orbitlab", "orbitlab_lab": ROOT / "lab" / "orbitlab_lab"}
COMMAND_LINES = {"orbitlab.cli", "orbitlab_lab.twin.cli", "orbitlab_lab.emulate.cli"}


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], own: str = "") -> set[str]:
    """The orbitlab modules ``path`` imports (``from orbitlab.x import y`` counts ``x.y``
    when ``y`` is itself a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found - {own}


@cache
def import_graph() -> dict[str, set[str]]:
    """Each module of both packages and their modules it imports (read once per run)."""
    paths = {
        module_name(path, package): path
        for package in PACKAGES.values()
        for path in package.rglob("*.py")
    }
    return {name: imports_of(path, set(paths), name) for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a path that ends where it starts, or None.

    >>> find_cycle({"a": {"b"}, "b": {"a"}})
    ['a', 'b', 'a']
    >>> find_cycle({"a": {"b"}, "b": set()}) is None
    True
    """
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            # a package's __init__ importing its own submodules is not a layer cycle
            if target.startswith(node + "."):
                continue
            cycle = visit(target, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_the_graph_holds_every_module_of_both_packages():
    graph = import_graph()
    for name, package in PACKAGES.items():
        files = [p for p in package.rglob("*.py") if "__pycache__" not in p.parts]
        assert sum(within(module, name) for module in graph) == len(files) > 10, name


def test_no_import_cycle_between_orbitlab_modules():
    graph = import_graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


@pytest.mark.parametrize("module", sorted(set(import_graph()) - COMMAND_LINES))
def test_no_module_below_the_command_line_imports_it(module):
    graph = import_graph()
    assert not graph[module] & COMMAND_LINES, f"{module} imports {graph[module] & COMMAND_LINES}"


def test_the_cycle_finder_sees_a_function_level_import(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from orbitlab.b import x\n")
    modules = {"orbitlab.a", "orbitlab.b"}
    assert imports_of(tmp_path / "a.py", modules) == {"orbitlab.b"}


#: Lower layers never import higher ones: roles -> settings -> allocation -> model -> plan ->
#: rendering -> components -> program (the validator, checks, reads model too); the twin
#: reuses rendering; the emulator uses the twin.
ABOVE = ("orbitlab.components", "orbitlab.program", "orbitlab_lab.emulate")
NEVER_IMPORTS = {
    "orbitlab.settings": (*ABOVE, "orbitlab_lab.twin", "orbitlab.rendering", "orbitlab.plan"),
    "orbitlab.model": (
        *ABOVE,
        "orbitlab_lab.twin",
        "orbitlab.rendering",
        "orbitlab.plan",
        "orbitlab.checks",
    ),
    "orbitlab.allocation": (*ABOVE, "orbitlab_lab.twin", "orbitlab.rendering", "orbitlab.plan"),
    "orbitlab.plan": (*ABOVE, "orbitlab_lab.twin", "orbitlab.rendering"),
    "orbitlab.rendering": (*ABOVE, "orbitlab_lab.twin"),
    "orbitlab_lab.twin": ABOVE,
    "orbitlab.components": ("orbitlab.program", "orbitlab_lab.emulate", "orbitlab_lab.twin"),
    # the library is installed and deployed without the lab: no module of it imports one
    "orbitlab": ("orbitlab_lab",),
}


def test_the_role_registry_imports_no_orbitlab_module():
    """Every layer reads :mod:`orbitlab.roles`, so it stands below them all."""
    assert import_graph()["orbitlab.roles"] == set()


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("lower", sorted(NEVER_IMPORTS))
def test_lower_layers_never_import_higher_ones(lower):
    graph = import_graph()
    wrong = {
        f"{module} imports {target}"
        for module, targets in graph.items()
        if within(module, lower)
        for target in targets
        if any(within(target, higher) for higher in NEVER_IMPORTS[lower])
    }
    assert not wrong, sorted(wrong)
