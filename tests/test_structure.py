"""The package's shape: imports go down the layers, never up, and form no circle (tools/check_imports.py);
every run-folder file name is spelled in ``dggan.runs`` only."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_checker():
    spec = importlib.util.spec_from_file_location("check_imports", ROOT / "tools" / "check_imports.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_imports_go_down_and_form_no_circle() -> None:
    assert load_checker().problems() == []


def test_the_checker_sees_an_upward_import_and_a_circle(tmp_path: Path, monkeypatch) -> None:
    checker = load_checker()
    pkg = tmp_path / "dggan"
    (pkg / "model").mkdir(parents=True)
    (pkg / "search").mkdir()
    for init in (pkg, pkg / "model", pkg / "search"):
        (init / "__init__.py").write_text("")
    (pkg / "model" / "genome.py").write_text("from ..search.driver import x\n")
    (pkg / "search" / "driver.py").write_text("def f():\n    from ..model.genome import y\n")
    (pkg / "search" / "algorithm.py").write_text("from .ledger import Status\n")
    (pkg / "search" / "ledger.py").write_text("")
    monkeypatch.setattr(checker, "SRC", tmp_path)
    found = checker.problems()
    assert any("dggan.model.genome imports dggan.search.driver: up" in p for p in found)
    assert any(p.startswith("circle:") and "dggan.search.driver" in p for p in found)
    assert any("dggan.search.algorithm is pure rules but imports dggan.search.ledger" in p for p in found)


RUN_FILES = ("stats.jsonl", "genome.json", "inheritance.json", "error.txt", "metrics.json", "tables.json",
             "tables.md", "compare.json", "compare.md", "samples.png", "options.json", "compare-baseline",
             "ledger.sqlite", "checkpoint.safetensors", "result.json", "graphs_error.txt")


def test_run_folder_names_live_in_runs_only() -> None:
    names = "|".join(re.escape(n) for n in RUN_FILES)
    pattern = re.compile(r"""["'](""" + names + r""")["']""")
    spelled = [f"{p.relative_to(ROOT)}: {m.group(1)}" for p in sorted((ROOT / "src" / "dggan").rglob("*.py"))
               if p.name != "runs.py" for m in pattern.finditer(p.read_text())]
    assert spelled == []
