"""``dggan status RUN``: where a search stands, read without writing anything, so it is safe while the
search runs (the ledger is opened read-only, stats files are only read).

``compute_status`` is a pure function from the ledger's rows (and the newest training stats of the
unfinished candidates) to a ``SearchStatus``; ``read_status`` gathers its inputs from a run folder's view
(``search.view.RunView``, the ledger read once).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .._util.durations import duration
from ..errors import LedgerError
from ..execution.state import Status
from ..runs import RunLayout, search_lock
from .algorithm import best_per_resolution
from .ledger import WAITING_KEY, CandidateRow, FinalRow
from .view import RunView, run_cost

UNFINISHED = (Status.PENDING, Status.RUNNING)


@dataclass(frozen=True)
class Progress:
    """A candidate's newest line of stats.jsonl and when its file was last written (unix time)."""

    row: dict[str, float]
    mtime: float


@dataclass(frozen=True)
class BestAt:
    resolution: int
    candidate: int
    normalized_metric: float | None
    metric: float | None
    summary: str


@dataclass
class SearchStatus:
    run: str
    state: str  # running | finished | stopped (not running, unfinished) | empty (no candidate yet)
    pid: int | None  # the running search's process
    phase: str  # what it is doing: "step 2", "ProgGAN baseline", "final training", "done"
    step: int | None  # the newest step with candidates
    max_steps: int | None
    counts: dict[str, int]  # every candidate by status
    step_counts: dict[str, int]  # the newest step's candidates by status
    score: str  # what the best are ranked by, e.g. "swd512 / ProgGAN"
    best: list[BestAt]  # the best finished candidate so far at each resolution
    training: list[int]  # candidates training now (stats written since they were handed out)
    images_per_s: float | None  # of those together, from their newest stats lines
    eta_seconds: float | None  # time left in the current step
    eta_note: str  # what the estimate assumes, or why there is none
    final: str | None  # the final training's status
    taken: float = field(default_factory=time.time)
    scoring: list[int] = field(default_factory=list)  # running candidates done training, being scored now
    interrupted: int = 0  # not running: candidates a stopped search had in flight (counted as pending)
    graphs: str | None = None  # how candidates ran on CUDA graphs (``graphs_line``)
    cost: list[str] = field(default_factory=list)  # device-hours and wall time so far (cost_lines)
    final_points: list[dict[str, Any]] = field(default_factory=list)  # the final training's scored points
    waiting: str | None = None  # what the executor said while its candidates wait (SLURM: squeue's reasons)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The screen ``dggan status`` prints."""
        head = {"running": f"running (pid {self.pid or '?'}) — {self.phase}",
                "finished": "finished", "empty": "no candidate yet",
                "stopped": "not running, unfinished: continue it with `dggan search --resume RUN`"}[self.state]
        out = [f"{self.run}: {head}   [{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.taken))}]"]
        if self.step is not None:
            of = f" (max_steps {self.max_steps}, then grow_res until the target)" if self.max_steps else ""
            out.append(f"step {self.step}{of}: {_counts(self.step_counts)}")
        total = sum(self.counts.values())
        stopped = (f" ({self.interrupted} of the pending were in flight when the search stopped; --resume"
                   " continues them)") if self.interrupted else ""
        out.append(f"candidates: {total} — {_counts(self.counts)}{stopped}")
        if self.state == "running" and self.phase == "ProgGAN baseline":
            out.append(f"training now: the ProgGAN baseline (its progress: dggan status {self.run}/baseline)")
        elif self.state == "running" and self.phase == "final training":
            out.append(f"training now: the final model (into {self.run}/best)")
        elif self.state == "running":
            speed = "–" if self.images_per_s is None else f"{self.images_per_s:,.0f} images/s"
            now = ", ".join(f"c{c:05d}" for c in self.training[:8]) + (" ..." if len(self.training) > 8 else "")
            handed = self.counts.get(Status.RUNNING.value, 0)
            scored = f", {len(self.scoring)} being scored" if self.scoring else ""
            waiting = handed - len(self.training) - len(self.scoring)
            others = " (the others wait for a worker or are being scored)" if waiting > 0 else ""
            out.append(f"training now: {len(self.training)} of the {handed} running candidate(s){scored}{others},"
                       f" {speed}" + (f" ({now})" if now else ""))
            if self.waiting:
                out.append(f"waiting: {self.waiting}")
            if self.step is not None:
                left = "–" if self.eta_seconds is None else f"about {duration(self.eta_seconds)}"
                out.append(f"time left in step {self.step}: {left} ({self.eta_note})")
        if self.best:
            out.append(f"best so far ({self.score}, lower is better):")
            for b in self.best:
                value = b.normalized_metric if b.normalized_metric is not None else b.metric
                shown = "–" if value is None else f"{value:.4g}"
                out.append(f"  {b.resolution:>4}px  c{b.candidate:05d}  {shown:>8}  {b.summary}")
        final = "running" if self.state == "running" and self.phase == "final training" else "not yet"
        out.append(f"final training: {self.final or final}")
        scored = [p for p in self.final_points if p["metric"] is not None]
        if scored:
            top = min(scored, key=lambda p: (p["metric"], p["point"]))
            out.append(f"  {len(self.final_points)} point(s) scored with selection seed {top['seed']}; best: point"
                       f" {top['point'] + 1} ({top['route_iterations']:,} route iterations,"
                       f" {top['final_iterations']:,} of them final, {top['metric']:.4g})")
        if self.graphs:
            out.append(self.graphs)
        return out + self.cost


ORDER = (Status.DONE, Status.RUNNING, Status.PENDING, Status.FAILED, Status.DIVERGED, Status.PRUNED)


def _counts(counts: dict[str, int]) -> str:
    """``3 done, 2 running, 4 pending, 0 failed`` (diverged and pruned only when there are some)."""
    return ", ".join(f"{counts.get(s.value, 0)} {s.value}" for s in ORDER
                     if counts.get(s.value, 0) or s not in (Status.DIVERGED, Status.PRUNED))


def compute_status(rows: list[CandidateRow], final: FinalRow | None, settings: dict[str, Any], *, run: str = "",
                   locked: bool = False, pid: int | None = None, completed: bool = False,
                   progress: dict[int, Progress] | None = None, baseline_unfinished: int = 0,
                   now: float | None = None) -> SearchStatus:
    """Where a search stands, from its ledger rows and the newest stats of its unfinished candidates.
    ``locked``: a search holds the run (it is running); ``completed``: a search session ran to its end."""
    progress = progress or {}
    now = time.time() if now is None else now
    interrupted = 0
    if not locked:  # nothing runs: what a stopped search had in flight waits for --resume, as the README says
        interrupted = sum(r.status == Status.RUNNING for r in rows)
        rows = [replace(r, status=Status.PENDING) if r.status == Status.RUNNING else r for r in rows]
    counts = _count(rows)
    step = max((r.step for r in rows), default=None)
    current = [r for r in rows if r.step == step]
    unfinished = [r for r in rows if r.status in UNFINISHED]
    # Training now: handed to the executor and writing stats since (a batch is marked running all at once).
    since = [r for r in rows if r.status == Status.RUNNING and r.id in progress
             and progress[r.id].mtime >= (r.updated or 0)]
    # Stats at (or past) its budget: its training is over and it is being scored.
    scoring = [r for r in since if (r.iterations or 0) > 0
               and progress[r.id].row.get("iteration", 0) >= (r.iterations or 0)]
    training = [r for r in since if r not in scoring]
    speeds = [progress[r.id].row.get("images_per_s") for r in training]
    speed = sum(s for s in speeds if isinstance(s, (int, float))) if training else None

    final_needed = int(settings.get("final_iterations") or 0) > 0 or settings.get("baseline", "auto") != "none"
    if locked:
        state = "running"
    elif not rows:
        state = "empty"
    elif completed and not unfinished:
        state = "finished"
    else:
        state = "stopped"
    if state == "finished":
        phase = "done"
    elif any(r.status == Status.RUNNING for r in rows):
        phase = f"step {step}"
    elif baseline_unfinished:
        phase = "ProgGAN baseline"
    elif rows and not unfinished and final is None and final_needed:
        phase = "final training"
    else:
        phase = f"step {step}" if step is not None else "starting"

    eta, note = _eta(current, step, rows, progress, max(1, len(training) + len(scoring)), settings)
    if not phase.startswith("step"):
        eta, note = None, f"no step estimate during the {phase}"
    metric = str(settings.get("metric", "metric"))
    normalized = any(r.normalized_metric is not None for r in rows)
    return SearchStatus(
        run=run, state=state, pid=pid if locked else None, phase=phase, step=step,
        max_steps=settings.get("max_steps"), counts=counts, step_counts=_count(current),
        score=f"{metric} / ProgGAN" if normalized else metric, best=_best(rows, normalized),
        training=[r.id for r in training], images_per_s=speed, eta_seconds=eta if state == "running" else None,
        eta_note=note, final=None if final is None else final.status.value, taken=now,
        scoring=[r.id for r in scoring], interrupted=interrupted, graphs=graphs_line(rows))


def graphs_line(rows: list[CandidateRow]) -> str | None:
    """How the finished candidates ran with CUDA graphs, from their ledger rows' ``extra["graphs"]`` (the worker
    records it), e.g. ``graphs: 12 graphed, 1 fell back (c00007: capture failed: ...)``; None when no candidate
    used graphs (a CPU run, or ``cuda_graphs`` off). Also the sentence for a search's summary."""
    modes: dict[str, int] = {}
    notes = []
    for r in rows:
        record = r.extra.get("graphs") if isinstance(r.extra, dict) else None
        if not isinstance(record, dict):
            continue
        mode = str(record.get("mode", "?"))
        modes[mode] = modes.get(mode, 0) + 1
        if mode in ("fell back", "retried eagerly"):
            notes.append(f"c{r.id:05d}: {str(record.get('why', ''))[:100]}")
    if not modes.get("graphed") and not notes:
        return None
    counts = ", ".join(f"{n} {mode}" for mode, n in sorted(modes.items(), key=lambda kv: (-kv[1], kv[0])))
    shown = "; ".join(notes[:3]) + (f"; {len(notes) - 3} more" if len(notes) > 3 else "")
    return f"graphs: {counts}" + (f" ({shown})" if shown else "")


def _count(rows: list[CandidateRow]) -> dict[str, int]:
    out = {s.value: 0 for s in Status}
    for r in rows:
        out[r.status.value] += 1
    return out


def _best(rows: list[CandidateRow], normalized: bool) -> list[BestAt]:
    best = best_per_resolution(rows, "normalized_metric" if normalized else "metric")
    return [BestAt(res, r.id, r.normalized_metric, r.metric, r.genome.summary()) for res, r in best.items()]


def _eta(current: list[CandidateRow], step: int | None, rows: list[CandidateRow], progress: dict[int, Progress],
         parallel: int, settings: dict[str, Any]) -> tuple[float | None, str]:
    """Seconds left in the current step: each unfinished candidate takes the mean time (training and scoring)
    of the step's finished ones (the previous step's while none has finished), less the share of its own
    iterations already trained, and ``parallel`` train at once, as now."""
    left = [r for r in current if r.status in UNFINISHED]
    if not left:
        return 0.0, "nothing left in this step"
    basis, where = _durations(current), f"step {step}"
    if not basis and step:
        basis, where = _durations([r for r in rows if r.step == step - 1]), f"step {step - 1}"
    if not basis:
        return None, "no estimate until a candidate of this step finishes"
    mean = sum(basis) / len(basis)
    work = 0.0
    for r in left:
        budget = r.iterations or int(settings.get("iterations") or 0)
        trained = progress[r.id].row.get("iteration", 0) if r.id in progress else 0
        done = min(1.0, trained / budget) if budget else 0.0
        work += mean * (1.0 - done)
    note = (f"{len(left)} unfinished candidate(s), each taking the mean of {len(basis)} finished one(s) of {where}"
            f" ({mean:.0f} s) less what it has trained, {parallel} at once as now")
    return work / parallel, note


def _durations(rows: list[CandidateRow]) -> list[float]:
    return [(r.train_seconds or 0.0) + (r.eval_seconds or 0.0) for r in rows
            if r.status == Status.DONE and r.train_seconds and not r.extra.get("reused")]


def newest_line(path: Path) -> Progress | None:
    """The last complete JSON line of a stats.jsonl (read from its end), or None."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 8192))
            tail = f.read()
            mtime = os.fstat(f.fileno()).st_mtime
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        try:
            row = json.loads(line)
        except ValueError:  # a line being written, or cut by the 8 KiB window
            continue
        if isinstance(row, dict):
            return Progress(row, mtime)
    return None


def final_training_curve(run_dir: str | Path | RunView) -> list[dict[str, Any]]:
    """The final training's metric at each of its scored points (selection seed), with ProgGAN's at the same
    route iterations and which point became RUN/best (``chosen``) and RUN/best/last (``last``): what a report
    plots. ProgGAN is scored with the point's own seed (``proggan_same_seed``; a run from before that was scored
    by the baseline curve, the search's seed: then only the shapes compare). Empty before the final training
    scored any point. Read-only (a run folder or its view)."""
    view = run_dir if isinstance(run_dir, RunView) else RunView.read(run_dir)
    final = view.final
    candidate = final.candidate if final is not None else view.meta_json("final_pick", {}).get("candidate")
    points = [g for g in view.scores("point") if candidate is None or g.candidate == candidate]
    if not points:
        return []
    # final iterations count from the picked model, not from the first scored point (which may come later)
    start = view.candidate(points[0].candidate).route_iterations or 0
    chosen = (final.extra.get("snapshot") or {}).get("point") if final is not None else None
    last = max(g.index for g in points)
    return [{"point": g.index, "candidate": g.candidate, "iterations": g.iterations,
             "route_iterations": g.route_iterations, "final_iterations": (g.route_iterations or 0) - start,
             "metric": g.metric, "normalized": g.normalized_metric, "proggan": g.extra.get("baseline"),
             "seed": g.seed, "proggan_same_seed": bool(g.extra.get("baseline_same_seed")),
             "chosen": g.index == chosen, "last": g.index == last} for g in points]


def read_status(run_dir: str | Path) -> SearchStatus:
    """The status of the search in ``run_dir``; LedgerError when it is not a run folder."""
    layout = RunLayout(run_dir)
    if not layout.ledger.is_file():
        raise LedgerError(f"{layout.root}: no {layout.ledger.name} here, so this is not a search run folder (or the"
                          " search has not started yet); pass the folder given to `dggan search --run-dir`")
    view = RunView.read(layout.root)
    locked, pid = view.locked, view.pid
    parent = RunLayout(layout.root.resolve().parent)
    is_baseline = layout.root.resolve() == parent.baseline.root and parent.ledger.is_file()
    if not locked and is_baseline:
        locked, pid = search_lock(parent.root)  # RUN/baseline is written by the search that holds RUN's lock
    rows = view.rows
    completed = view.completed  # a session ran to its end
    waiting = _waiting_message(view.get_meta(WAITING_KEY)) if locked else None
    if is_baseline:  # extended by its search on demand, it records no sessions: finished when nothing is left
        completed = completed or not any(r.status in UNFINISHED for r in rows)
    progress = {}
    for r in rows:
        if r.status in UNFINISHED:
            line = newest_line(layout.model(r.id).stats)
            if line is not None:
                progress[r.id] = line
    baseline_unfinished = 0
    if locked and view.baseline is not None:
        baseline_unfinished = sum(r.status in UNFINISHED for r in view.baseline.rows)
    status = compute_status(rows, view.final, view.settings, run=str(layout.root), locked=locked, pid=pid,
                            completed=completed, progress=progress, baseline_unfinished=baseline_unfinished)
    status.cost = cost_lines(view)
    return replace(status, final_points=final_training_curve(view), waiting=waiting)


def _waiting_message(raw: str | None) -> str | None:
    """The executor's last word on waiting candidates (``runner._waiting``), with how long ago it was said."""
    try:
        said = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return None
    if not isinstance(said, dict) or not said.get("message"):
        return None
    return f"{said['message']} ({duration(max(0.0, time.time() - float(said.get('at') or 0)))} ago)"


def cost_lines(run: RunLayout | RunView) -> list[str]:
    """The run's device-hours and wall time so far, every session counted (``search.cost``)."""
    cost = run_cost(run if isinstance(run, RunView) else run.root)
    return [] if cost is None else cost.lines()
