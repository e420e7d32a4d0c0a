"""The shape of the package, checked: ``python tools/check_imports.py`` (tests/test_structure.py runs it).

Every import inside ``src/dggan`` (at module level or inside a function: a lazy import is still a
dependency) must go *down* the layers below, never up, and the modules must form no circle. A layer may
import itself and any layer listed before it. The pure rules (``search.algorithm`` and the candidate states it
reads, ``execution.state``) import nothing else of the search or of the execution. A module that does not exist
is a problem too (a relative import left behind by a move).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[tuple[str, ...]] = [
    ("dggan.errors", "dggan._util"),
    ("dggan.runs",),
    ("dggan.model", "dggan.data", "dggan.metrics"),
    ("dggan.training",),
    ("dggan.execution",),  # running candidates on machines: the worker, executors, SLURM
    ("dggan.search",),  # Algorithm 1 and its run
    ("dggan.evaluation",),  # judging a finished run: compare, tables
    ("dggan.analysis",),
    ("dggan.cli", "dggan.__main__", "dggan"),
]
PURE = {"dggan.execution.state": (), "dggan.search.algorithm": ("dggan.execution.state",)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The dggan modules ``path`` imports (a ``from X import name`` counts as X, or X.name when that is a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "dggan"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "dggan":
                target = node.module
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if _exists(sub) else target)
    found.discard(name)
    return found


def _exists(module: str) -> bool:
    p = SRC / Path(*module.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def layer(module: str) -> int:
    best, rank = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    return rank


def problems() -> list[str]:
    graph = {module_name(p): imports(p) for p in sorted(SRC.rglob("*.py"))}
    out = []
    for mod, deps in graph.items():
        for dep in sorted(deps):
            if dep not in graph:
                out.append(f"{mod} imports {dep}, which does not exist")
            if layer(dep) > layer(mod):
                out.append(f"{mod} imports {dep}: up from layer {layer(mod)} to {layer(dep)}")
            if mod in PURE and dep.startswith(("dggan.search", "dggan.execution")) and dep not in PURE[mod]:
                out.append(f"{mod} is pure rules but imports {dep}")
    # circles: depth-first search over the graph
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(mod: str) -> None:
        state[mod] = 1
        stack.append(mod)
        for dep in sorted(graph.get(mod, ())):
            if dep == mod or dep not in graph:
                continue
            if state.get(dep) == 1:
                out.append("circle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[mod] = 2

    for mod in graph:
        if mod not in state:
            visit(mod)
    return out


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    print(f"{len(found)} problem(s) in the imports of {SRC / 'dggan'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
