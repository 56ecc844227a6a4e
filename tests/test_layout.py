"""The project's rooms, read from the source: no import circle between modules, and each folder imports only
the floors below it (runtime at the bottom; evaluation above runtime, training, export and benchmarks, so
nothing in them imports it). The root modules (cli, demo, report) stand on top of everything.
Every import counts, the ones inside functions too: a lazy import still makes a circle a reader must untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "ecgae"
# folder -> the project folders it may import from (besides itself)
MAY_IMPORT = {
    "runtime": set(),
    "training": {"runtime"},
    "export": {"runtime", "training"},
    "benchmarks": {"runtime", "training", "export"},
    "evaluation": {"runtime", "training", "export", "benchmarks"},
    "archive": {"runtime", "training", "export", "benchmarks", "evaluation"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports (resolved to module names; ``from x import y`` counts ``x.y`` when
    that is a module of ours, else ``x``)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == PACKAGE:
                named = {f"{target}.{a.name}" for a in node.names}
                found |= (named & modules) | ({target} if named - modules else set())
    return found


def _graph() -> dict[str, set[str]]:
    files = [p for p in ROOT.rglob("*.py") if not any(part.startswith(".") or part in ("tests", "demo", "build")
                                                       for part in p.relative_to(ROOT).parts)]
    modules = {_module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path, name, set(modules)) if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules, or None (depth-first search, colours white/grey/black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_itself_round_a_circle():
    cycle = _cycle({k: {m for m in v if m != PACKAGE} for k, v in _graph().items()})
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_each_folder_imports_only_the_floors_below_it():
    wrong = []
    for name, targets in _graph().items():
        folder = name.split(".")[1] if name.count(".") >= 2 else None
        if folder not in MAY_IMPORT:
            continue
        for target in targets:
            other = target.split(".")[1] if target.count(".") >= 1 and target != PACKAGE else None
            if other and other != folder and (ROOT / other).is_dir() and other not in MAY_IMPORT[folder]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_layout_check_sees_a_circle_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
