"""The shape of the installed package, read from its source: no import cycles, no unexplained long functions.

The import graph counts every ``import`` statement, at module level and inside functions alike: an
import moved into a function still makes a cycle, it only hides it until run time.
"""
from __future__ import annotations

import ast
import configparser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LONG_FUNCTION = 60        # lines, from ``def`` to the last line of the body
LONG_REASON = "# long:"


def package_modules() -> dict[str, Path]:
    """Import name -> source file of every module of the installed package (setup.cfg's package_dir)."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    options = config["options"]
    folders = dict(line.split(" = ") for line in options["package_dir"].strip().splitlines())
    modules = {}
    for package in options["packages"].split():
        root = max((name for name in folders if package == name or package.startswith(name + ".")), key=len)
        folder = REPO / folders[root] / Path(*package[len(root):].strip(".").split(".") if package != root else ())
        for path in sorted(folder.glob("*.py")):
            modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules an import statement loads (the most specific known module of each name)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
            base = ".".join(parts + ([base] if base else []))
        # ``from package import module`` loads the module; ``from module import name`` the module itself.
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    else:
        return set()
    found = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    # Importing a.b.c runs the __init__ of a.b first (the root package and the importer's own packages,
    # already running, aside): ``from avepipe.data.cache.layout import x`` loads avepipe.data.cache.
    parts = {".".join(name.split(".")[:i]) for name in found for i in range(2, name.count(".") + 1)}
    return found | {p for p in parts if p in known and not module.startswith(p + ".")}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges = set()
        for node in ast.walk(tree):
            edges |= _imported(node, module, path.stem == "__init__", set(modules))
        graph[module] = edges - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None (iterative depth-first search)."""
    state: dict[str, int] = {}      # 1: on the current path, 2: finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(step) == 1:
                return path[path.index(step):] + [step]
            elif not state.get(step):
                state[step] = 1
                path.append(step)
                stack.append(iter(sorted(graph[step])))
    return None


def long_functions(modules: dict[str, Path]) -> list[str]:
    """``file:line name (n lines)`` of every function longer than LONG_FUNCTION without a ``# long:`` reason."""
    found = []
    for path in modules.values():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            explained = LONG_REASON in lines[node.lineno - 1] or LONG_REASON in lines[node.lineno - 2]
            if length > LONG_FUNCTION and not explained:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_the_import_graph_of_the_package_has_no_cycle():
    graph = import_graph(package_modules())
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_library_function_is_longer_than_60_lines_without_a_reason():
    assert long_functions(package_modules()) == []


def test_the_checks_see_what_they_look_for(tmp_path):
    """The graph has edges from function-level and relative imports, and the cycle finder finds a planted cycle."""
    modules = package_modules()
    assert {"avepipe.cli", "avepipe.extract.folder", "avepipe.data.cache.reader", "avepipe.models.registry"} <= set(
        modules)
    graph = import_graph(modules)
    assert "avepipe.commands.base" in graph["avepipe.cli"]          # module-level import
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    inner = tmp_path / "m.py"
    inner.write_text("def f():\n    from . import sibling\n    import avepipe.errors\n")
    tree = ast.parse(inner.read_text())
    known = {"pkg", "pkg.m", "pkg.sibling", "avepipe", "avepipe.errors", "avepipe.data", "avepipe.data.cache",
             "avepipe.data.cache.layout"}
    edges = set().union(*(_imported(n, "pkg.m", False, known) for n in ast.walk(tree)))
    assert edges == {"pkg.sibling", "avepipe.errors"}
    layout = ast.parse("from avepipe.data.cache.layout import positions")
    assert _imported(layout.body[0], "avepipe.extraction", False, known) == {
        "avepipe.data.cache.layout", "avepipe.data.cache", "avepipe.data"}
    assert _imported(layout.body[0], "avepipe.data.cache.reader", False, known) == {"avepipe.data.cache.layout"}
