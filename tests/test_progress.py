"""Progress without a terminal: plain lines instead of a tqdm bar that draws nothing (nohup, batch logs)."""

from __future__ import annotations

import io
import time

import pytest

from dggan._util import progress as P


def test_a_line_per_finished_item_with_the_count() -> None:
    out = io.StringIO()
    bar = P.PlainProgress(total=3, desc="step 1", unit="cand", stream=out, heartbeat=None)
    for _ in range(3):
        bar.set_postfix_str("best swd32/ProgGAN 0.912")
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert [line.split(" [")[0] for line in lines] == [
        f"step 1: {i}/3 cand done, best swd32/ProgGAN 0.912" for i in (1, 2, 3)]


def test_lines_are_rate_limited_but_the_last_always_comes() -> None:
    out = io.StringIO()
    now = [0.0]
    bar = P.PlainProgress(total=4, desc="s", unit="cand", stream=out, heartbeat=None, min_interval=30,
                          clock=lambda: now[0])
    for t in (1.0, 2.0, 40.0, 41.0):
        now[0] = t
        bar.update(1)
    assert [line.split(" [")[0] for line in out.getvalue().splitlines()] == ["s: 3/4 cand done", "s: 4/4 cand done"]


def test_a_heartbeat_while_nothing_finishes() -> None:
    out = io.StringIO()
    with P.PlainProgress(total=2, desc="step 0", unit="cand", stream=out, heartbeat=0.05):
        deadline = time.time() + 5
        while "0/2 cand done" not in out.getvalue() and time.time() < deadline:
            time.sleep(0.01)
    assert "step 0: 0/2 cand done" in out.getvalue()


def test_tqdm_on_a_terminal_plain_lines_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P.sys, "stderr", io.StringIO())  # not a TTY
    plain = P.progress_bar(total=2, desc="d", unit="cand", disable=None)
    assert isinstance(plain, P.PlainProgress)
    plain.close()
    off = P.progress_bar(total=2, desc="d", unit="cand", disable=True)  # --no-progress: nothing at all
    assert not isinstance(off, P.PlainProgress)
    off.close()


def test_tqdm_arguments_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(P.sys, "stderr", out)
    bar = P.progress_bar(total=10, desc="train", unit="it", initial=4, position=1, leave=False, min_interval=3600)
    bar.update(1)  # within the interval: no line
    bar.update(5)  # the last always comes
    bar.close()
    assert out.getvalue().splitlines()[0].startswith("train: 10/10 it done")
    assert len(out.getvalue().splitlines()) == 1


def test_a_plain_line_says_the_iterations_and_the_time_left(tmp_path) -> None:
    """compare's piped progress said "rung 2/2: 0/1 cand done [8.0 min]" dozens of times: the lines now carry the
    iterations the batch has trained (from each task's stats.jsonl) and the time left at that rate."""
    import json
    from types import SimpleNamespace

    from dggan.search.runner import IterationProgress

    folder = tmp_path / "c00012"
    folder.mkdir()
    (folder / "stats.jsonl").write_text(json.dumps({"iteration": 4800}) + "\n")  # where it continues from
    task = SimpleNamespace(out_dir=str(folder), until=None, train=SimpleNamespace(iterations=6200), continue_from=None)
    now = [0.0]
    detail = IterationProgress([task], clock=lambda: now[0])  # type: ignore[list-item]
    assert detail() == "0/1,400 iterations"
    with open(folder / "stats.jsonl", "a") as f:
        f.write(json.dumps({"iteration": 5500}) + "\n")
    now[0] = 70.0  # 700 iterations in 70 s: 700 more take 70 s
    assert detail() == "700/1,400 iterations, about 70 s left"
    out = io.StringIO()
    bar = P.PlainProgress(total=1, desc="ProgGAN for comparison", unit="cand", stream=out, heartbeat=None,
                          detail=detail)
    bar._write()
    assert out.getvalue().startswith("ProgGAN for comparison: 0/1 cand done; 700/1,400 iterations, about 70 s"
                                     " left [")
