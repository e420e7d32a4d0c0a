"""The README is a front door: short, its commands the ones CI runs, its Python snippet runnable, and every
link in it and in docs/ pointing at a file that exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def front_door() -> str:
    return README.read_text()


def test_the_readme_is_a_front_door_with_the_commands_ci_runs() -> None:
    text = front_door()
    assert len(text.splitlines()) <= 200
    assert "dggan search --preset demo --run-dir runs/demo && dggan report runs/demo" in text
    assert "\npython -m pytest\n" in text


def test_the_readmes_python_snippet_loads_a_final_model_and_samples(tmp_path: Path) -> None:
    from searches import tiny

    from dggan.search.driver import run_search

    (snippet,) = re.findall(r"```python\n(.*?)```", front_door(), flags=re.S)
    run_search(tmp_path / "runs" / "demo", tiny(max_steps=1), progress=False)  # RUN/best, as the demo leaves it
    (tmp_path / "snippet.py").write_text(snippet)
    done = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "samples.png").stat().st_size > 0


def test_every_relative_link_of_the_readme_and_the_docs_exists() -> None:
    broken = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken
