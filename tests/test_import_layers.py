"""The package reads top-down: no module imports, even lazily inside a function, a module that
imports it back (issue 15: borrow, fit and validate in helixsim/calibration/ imported each other)."""

import ast
from pathlib import Path

import helixsim

ROOT = Path(helixsim.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """helixsim modules imported anywhere in the file (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("helixsim")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("helixsim"):
                continue
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # "from . import roofline" imports a module
    return out


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        # importing a.b.c runs a/__init__ and a/b/__init__ too, but those edges belong to the package
        # modules themselves; here an edge is only what the file names.
        graph[name] = {m for m in _imports(path, name) if m in files and m != name}
    return graph


def cycles_within(prefix: str, graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle among modules under ``prefix`` (the package's own __init__ excluded:
    a package re-exporting its modules is not a circle)."""
    nodes = {n for n in graph if n.startswith(prefix + ".")}
    found, seen = [], set()

    def walk(start, node, path):
        for nxt in sorted(graph[node] & nodes):
            if nxt == start:
                key = frozenset(path)
                if key not in seen:
                    seen.add(key)
                    found.append(path + [start])
            elif nxt not in path and nxt > start:
                walk(start, nxt, path + [nxt])

    for n in sorted(nodes):
        walk(n, n, [n])
    return found


def test_graph_sees_a_known_edge():
    """The scanner is not blind: fit imports borrow (SIBLINGS), relatively and at the top."""
    g = import_graph()
    assert "helixsim.calibration.borrow" in g["helixsim.calibration.fit"]
    assert "helixsim.calibration.fit" in g["helixsim.calibration.transfer"]


def test_cycle_finder_finds_a_cycle():
    g = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert cycles_within("p", g) == [["p.a", "p.b", "p.c", "p.a"]]


def test_calibration_package_has_no_import_circle():
    assert cycles_within("helixsim.calibration", import_graph()) == []


def test_planning_package_has_no_import_circle():
    assert cycles_within("helixsim.planning", import_graph()) == []
