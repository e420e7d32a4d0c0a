"""One self-contained HTML page for a search run: the result, the best architecture and its route, the
paper's analyses (Fig. 3), architecture views, sample grids and every candidate.

``compute`` reads the run and computes what the page shows; ``render`` turns it into HTML; ``assets``
holds the page's CSS and JavaScript. ``generate_report(RUN)`` writes RUN/report/index.html (plots
embedded as data URIs, so the page needs no network and no other file) and, beside it, the plots as PNG,
the tables as CSV and the analyses as JSON.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ReportError
from ...runs import search_lock
from .compute import Analyses, RunData, compute_analyses, read_run
from .render import PAGE_SIZE, Page, page_html, sections, write_json, write_text

__all__ = ["Analyses", "ReportError", "ReportResult", "RunData", "compute_analyses",
           "generate_report", "read_run"]


@dataclass
class ReportResult:
    path: Path  # index.html
    notes: list[str] = field(default_factory=list)  # what the page could not show, and why
    n_candidates: int = 0
    seconds: float = 0.0
    snapshot: str | None = None  # the page's banner when the search was running or unfinished


def generate_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    zoom_threshold: float = 1.2,
    replay_seeds: int = 10,
    n_samples: int = 16,
    sample_seed: int = 0,
    device: str = "cpu",
    top_n: int = PAGE_SIZE,
) -> ReportResult:
    """Build the report; ``notes`` in the result list what it could not show.

    Raises ``ReportError`` when there is nothing to report on (no folder, no ledger, an unreadable or
    other-schema ledger). A run without finished candidates still gets a page: settings, statuses and
    errors of its candidates, and a note saying what is missing.
    """
    t0 = time.perf_counter()
    taken = time.strftime("%Y-%m-%d %H:%M:%S")
    locked, pid = search_lock(run_dir)  # read before the ledger: a search that ends meanwhile is still a snapshot
    data = read_run(run_dir)
    snapshot = snapshot_banner(data, locked, pid, taken)
    out = Path(out_dir) if out_dir is not None else data.layout.report
    out.mkdir(parents=True, exist_ok=True)
    page = Page(out)
    page.notes.extend(_data_notes(data))
    analyses = compute_analyses(data, zoom_threshold, replay_seeds)
    content = sections(page, data, analyses, n_samples=n_samples, sample_seed=sample_seed, device=device,
                       top_n=top_n)
    write_json(out / "analyses.json", analyses.to_json(data))
    write_json(out / "summary.json", {
        "run": str(data.run.resolve()),
        "generated": taken,
        "snapshot": snapshot,
        "candidates": len(data.rows),
        "statuses": dict(data.statuses),
        "best": None if data.best is None else data.best.id,
        "notes": page.notes,
    })
    index = out / "index.html"
    write_text(index, page_html(data.run, content, page.notes, snapshot=snapshot, generated=taken))
    return ReportResult(index, page.notes, len(data.rows), time.perf_counter() - t0, snapshot)


def snapshot_banner(data: RunData, locked: bool, pid: int | None, taken: str) -> str | None:
    """What the page says when it shows a search that is not over: running (a search holds the run's lock), or
    stopped with candidates left to train."""
    if locked:
        who = f" (pid {pid})" if pid else ""
        return (f"Snapshot of a running search{who}, taken at {taken}: candidates still training and the steps"
                " to come are not in it. Build the report again for newer results.")
    unfinished = data.statuses.get("pending", 0) + data.statuses.get("running", 0)
    if unfinished:
        return (f"Snapshot of an unfinished search, taken at {taken}: {unfinished} candidate(s) are not trained yet"
                f" and it is not running now; continue it with `dggan search --resume {data.run}`, then build the"
                " report again.")
    return None


def _data_notes(data: RunData) -> list[str]:
    if not data.rows:
        return ["The ledger holds no candidates yet: start or resume the search, then build the report again."]
    if not data.done:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(data.statuses.items())) or "none"
        return [f"No finished candidate yet (statuses: {counts}), so the analyses and the best architecture are"
                " left out. Let the search finish some candidates (or see the errors in the candidate table),"
                " then build the report again."]
    if data.key == "metric":
        return ["No candidate has a normalized metric (the run had no ProgGAN baseline): the analyses use the raw"
                " metric, which is not comparable across resolutions."]
    return []
