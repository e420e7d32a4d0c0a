"""What a plain ``pip install dggan`` gets: every import the package makes is declared in pyproject.toml, the
optional ones (extras) only inside the functions that need them, and the CLI's --version and -h."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "dggan"
# Import names that differ from their distribution's name.
DISTRIBUTION = {"PIL": "pillow", "sklearn": "scikit-learn", "torch_fidelity": "torch-fidelity", "yaml": "pyyaml"}


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """(the core dependencies, extra -> its dependencies), by distribution name, from pyproject.toml."""
    tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}

    return names(project["dependencies"]), {k: names(v) for k, v in project["optional-dependencies"].items()}


def third_party_imports(path: Path) -> dict[str, bool]:
    """Top-level import name -> whether any import of it runs when the module is imported (not in a function)."""
    tree = ast.parse(path.read_text(), str(path))
    at_import: set[int] = set()

    def visit(nodes: list[ast.stmt]) -> None:  # the module body and its blocks, but no function bodies
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue  # never runs
            at_import.add(id(node))
            for field in ("body", "orelse", "finalbody", "handlers"):
                visit(getattr(node, field, []) or [])
            if isinstance(node, ast.ClassDef):
                visit(node.body)

    visit(tree.body)
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "dggan":
                continue
            found[top] = found.get(top, False) or id(node) in at_import
    return found


def test_every_import_is_declared_and_extras_load_lazily() -> None:
    core, extras = declared()
    optional = set().union(*extras.values()) - core
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        for name, eager in third_party_imports(path).items():
            dist = DISTRIBUTION.get(name, name).lower()
            where = path.relative_to(ROOT)
            if dist in core:
                continue
            if dist not in optional:
                problems.append(f"{where} imports {name}, which pyproject.toml does not declare")
            elif eager:
                problems.append(f"{where} imports {name} (an extra) when it is imported: a plain install breaks")
    assert problems == []


def test_the_import_check_sees_an_undeclared_and_an_eager_optional_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import click\nimport os\ntry:\n    import ray\nexcept ImportError:\n    ray = None\n"
                      "def f():\n    import submitit\n    from sklearn.datasets import load_digits\n")
    assert third_party_imports(module) == {"click": True, "ray": True, "submitit": False, "sklearn": False}


def test_version_and_short_help() -> None:
    from typer.testing import CliRunner

    from dggan import __version__
    from dggan.cli import app

    runner = CliRunner()
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.strip() == f"dggan {__version__}"
    for args in (["-h"], ["search", "-h"], ["genome", "grow", "-h"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and result.output.startswith("Usage: "), (args, result.output)
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "preferred-citation" in (ROOT / "CITATION.cff").read_text()
