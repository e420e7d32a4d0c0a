"""Watching a search: TensorBoard logs, ``dggan status`` and the report of a running search."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from dggan.search.config import SearchConfig
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger

TINY: dict[str, Any] = {  # tests/test_search.py's tiny search
    "data": "synthetic:n=64,res=16", "metric": "swd32", "baseline": {8: 100.0, 16: 100.0},
    "initial_channels": [8], "latent_size": 8, "target_resolution": 16, "top_k": 2, "p": 0.5,
    "kernels": [3], "filters": [8, 16], "iterations": 4, "final_iterations": 2, "max_steps": 2,
    "batch_size": 8, "sample_grid": 4, "checkpoint_every": 2, "eval_batch_size": 32, "device": "cpu",
    "threads": 1, "cache_dir": None, "tables": False,
}


def tiny(**overrides: Any) -> SearchConfig:
    return SearchConfig.from_dict({**TINY, **overrides})



def events(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_logs_every_candidate_and_every_step(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    run_search(run, tiny(baseline="auto", max_steps=1, final_iterations=2), progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = ledger.candidates()
    trained = [r for r in rows if not r.extra.get("reused")]
    for r in trained:
        acc = events(run / "tb" / f"c{r.id:05d}")
        tags = set(acc.Tags()["scalars"])
        for name in ("loss_d", "loss_g", "gp", "drift", "d_real", "d_fake", "alpha", "images_per_s"):
            assert f"train/{name}" in tags
        assert [e.step for e in acc.Scalars("train/loss_d")] == [4]  # logged at its iterations
        (metric,) = acc.Scalars("metric/swd32")
        assert metric.step == 4 and metric.value == pytest.approx(r.metric, rel=1e-5)
        assert acc.Tags()["images"] == ["samples"]
    assert (run / "tb" / "best").is_dir() and (run / "tb" / "baseline" / "c00001").is_dir()
    search = events(run / "tb" / "search")
    tags = set(search.Tags()["scalars"])
    assert {"search/candidates/done", "search/candidates/pending", "search/best_normalized/8px",
            "search/best_normalized/16px", "search/final_normalized"} <= tags
    assert [e.step for e in search.Scalars("search/candidates/done")] == list(range(max(r.step for r in rows) + 1))
    done = sum(r.status == "done" for r in rows)
    assert search.Scalars("search/candidates/done")[-1].value == done
    best16 = min(r.normalized_metric for r in rows if r.status == "done" and r.resolution == 16)
    assert search.Scalars("search/best_normalized/16px")[-1].value == pytest.approx(best16, rel=1e-5)


def test_without_tensorboard_nothing_breaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails
    run = tmp_path / "run"
    summary = run_search(run, tiny(max_steps=1, final_iterations=0), progress=False)
    assert summary.candidates > 0 and not (run / "tb").exists()
    log = (run / "log.txt").read_text()
    assert log.count("tensorboard is not installed (pip install 'dggan[tb]'") == 1
    quiet = tmp_path / "quiet"
    run_search(quiet, tiny(max_steps=1, final_iterations=0, tensorboard=False), progress=False)
    assert "tensorboard" not in (quiet / "log.txt").read_text()
