"""What a run cost, in the currency users think in: device-hours, wall time over every session, and where
the training went (candidates, the ProgGAN baseline, the final training).

- **Device-hours**: each candidate's recorded training and scoring seconds times the devices it held: one GPU
  on CUDA (GPU-hours), its torch threads on a CPU (CPU core-hours = threads x seconds). Where it ran is read,
  in order, from the candidate's own record (``extra["device"]``/``extra["threads"]``), the session it finished
  in (``Ledger.sessions``: the heartbeat records the session's device and threads), the run's settings (an
  explicit ``device`` and ``threads``); failing all three it is counted as one CPU thread, and says so.
- **Wall time**: ``RunView.session_seconds``, every session including one ended by ``kill -9``.
- **The split**: the auto baseline's training and scoring against the candidates' and the final training's.
  The README's "about 1/K of a step" holds at paper scale (K = 20 and ~200 children per step); at demo scale
  (K = 2, a handful of children) the baseline is a much larger share, and this split says how large.

These are pure functions of a ledger's rows; a run folder's cost is read through its view
(``search.view.RunView.cost``, ``search.view.run_cost``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._util.durations import duration
from .ledger import CandidateRow, FinalRow, SessionRow

GPU, CPU = "GPU-hours", "CPU core-hours"


@dataclass(frozen=True)
class Work:
    """Recorded seconds of one piece of work and where it ran."""

    seconds: float
    device: str  # "cuda" | "cpu"
    threads: int  # devices held: 1 on CUDA, torch threads on a CPU
    assumed: bool = False  # where it ran is not recorded: one CPU thread assumed


@dataclass
class DeviceHours:
    hours: dict[str, float] = field(default_factory=dict)  # GPU-hours and/or CPU core-hours
    seconds: float = 0.0  # the recorded seconds they come from
    threads: set[int] = field(default_factory=set)  # CPU threads per candidate seen
    assumed: int = 0  # pieces of work whose device was not recorded

    def add(self, work: Work) -> None:
        unit = GPU if work.device.startswith("cuda") else CPU
        units = 1 if unit == GPU else max(1, work.threads)
        self.hours[unit] = self.hours.get(unit, 0.0) + work.seconds * units / 3600.0
        self.seconds += work.seconds
        if unit == CPU:
            self.threads.add(units)
        self.assumed += work.assumed

    def text(self) -> str:
        """``0.083 CPU core-hours (1 torch thread x 5.0 min)``."""
        if not self.hours:
            return "nothing recorded yet"
        parts = [f"{h:.3g} {unit}" for unit, h in sorted(self.hours.items())]
        how = []
        if set(self.hours) == {CPU} and len(self.threads) == 1:
            (n,) = self.threads
            how.append(f"{n} torch thread{'s' if n > 1 else ''} x {duration(self.seconds)}")
        if self.assumed:
            how.append(f"the device of {self.assumed} record(s) is not recorded: counted as CPU")
        return " + ".join(parts) + (f" ({'; '.join(how)})" if how else "")

    def to_dict(self) -> dict[str, Any]:
        return {"hours": self.hours, "seconds": self.seconds, "threads": sorted(self.threads),
                "assumed": self.assumed, "text": self.text()}


@dataclass
class CostSplit:
    """Training and scoring seconds by where they went."""

    candidates: float = 0.0
    baseline: float = 0.0  # the auto baseline (RUN/baseline), as far as the search trained it
    final: float = 0.0
    later: float = 0.0  # ProgGAN training after the search (dggan compare's): not the search's cost

    @property
    def total(self) -> float:
        return self.candidates + self.baseline + self.final

    def share(self, part: float) -> float:
        return part / self.total if self.total else 0.0

    def text(self) -> str:
        """``candidates 2.1 min (45%), ProgGAN baseline 1.8 min (38%), final training 48 s (17%)``."""
        parts = [("candidates", self.candidates), ("ProgGAN baseline", self.baseline), ("final training", self.final)]
        text = ", ".join(f"{name} {duration(s)} ({100 * self.share(s):.0f}%)" for name, s in parts
                         if s or name != "final training")
        if self.later:
            text += f"; not counted: {duration(self.later)} of ProgGAN training after the search (dggan compare)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "baseline": self.baseline, "final": self.final, "later": self.later,
                "total": self.total, "baseline_share": self.share(self.baseline), "text": self.text()}


def work_seconds(rows: Iterable[CandidateRow], final: FinalRow | None = None) -> tuple[float, float]:
    """(training, scoring) seconds recorded in a ledger: its candidates' and its final training's (the pick, the
    points and the reported score are its scoring). Every view of a run's cost adds them up here."""
    rows = list(rows)
    train = sum(r.train_seconds or 0.0 for r in rows) + ((final.train_seconds or 0.0) if final else 0.0)
    scoring = sum(r.eval_seconds or 0.0 for r in rows) + (float(final.extra.get("eval_seconds") or 0.0) if final
                                                           else 0.0)
    return train, scoring


def _seconds(r: CandidateRow) -> float:
    return sum(work_seconds([r]))


def _final_seconds(final: FinalRow | None) -> float:
    return sum(work_seconds([], final))


def after(rows: Iterable[CandidateRow], until: float | None) -> tuple[list[CandidateRow], list[CandidateRow]]:
    """(rows recorded by ``until``, rows recorded after it); every row counts as the search's without ``until``."""
    rows = list(rows)
    if until is None:
        return rows, []
    return [r for r in rows if (r.updated or 0.0) <= until], [r for r in rows if (r.updated or 0.0) > until]


def cost_split(rows: list[CandidateRow], final: FinalRow | None, baseline_rows: Iterable[CandidateRow] = (),
               baseline_final: FinalRow | None = None, until: float | None = None) -> CostSplit:
    """The run's training and scoring seconds: its candidates, the auto baseline's (its rows and any final
    training it had) and the final training (with its scoring). With ``until`` (when the search's last
    session ended), baseline rows recorded after it are later work (``dggan compare`` extends the baseline)."""
    mine, later = after(baseline_rows, until)
    return CostSplit(candidates=sum(_seconds(r) for r in rows),
                     baseline=sum(_seconds(r) for r in mine) + _final_seconds(baseline_final),
                     final=_final_seconds(final), later=sum(_seconds(r) for r in later))


def where_it_ran(extra: dict[str, Any], when: float | None, sessions: Sequence[SessionRow],
                 settings: dict[str, Any]) -> tuple[str, int, bool]:
    """(device, threads, assumed) of one piece of work finished at ``when`` (module docstring's order)."""
    threads = settings.get("threads")
    if extra.get("device"):
        return str(extra["device"]), int(extra.get("threads") or threads or 1), False
    if when is not None:
        # A row's last update is when its result was recorded, inside the session that recorded it. A session that
        # has not ended (running now, or killed) lasts until the next one starts: its heartbeat is up to 30 s old,
        # so a row it recorded since would otherwise fall outside every session.
        ordered = sorted(sessions, key=lambda s: s.started)
        for i, s in enumerate(ordered):
            nxt = ordered[i + 1].started if i + 1 < len(ordered) else math.inf
            end = s.last_seen + 1.0 if s.ended else nxt
            if s.device and s.started <= when <= end:
                return str(s.device), int(s.threads or threads or 1), False
    device = str(settings.get("device") or "auto")
    if device != "auto" and (device.startswith("cuda") or threads):
        return device, int(threads or 1), False
    return "cpu", int(threads or 1), True


def device_hours(rows: list[CandidateRow], final: FinalRow | None, settings: dict[str, Any],
                 sessions: Sequence[SessionRow] = (), baseline_rows: Iterable[CandidateRow] = (),
                 baseline_final: FinalRow | None = None) -> DeviceHours:
    """Device-hours of every recorded training and scoring of the run, baseline included."""
    out = DeviceHours()
    for r in [*rows, *baseline_rows]:
        if _seconds(r):
            out.add(Work(_seconds(r), *where_it_ran(r.extra, r.updated, sessions, settings)))
    for f in (final, baseline_final):
        if f is not None and _final_seconds(f):
            out.add(Work(_final_seconds(f), *where_it_ran(f.extra, None, sessions[-1:], settings)))
    return out


@dataclass
class RunCost:
    split: CostSplit
    device_hours: DeviceHours
    wall_seconds: float  # every session, a killed one up to its last heartbeat
    sessions: int
    unfinished_sessions: int  # running now, or ended without a clean close (kill -9, power loss)

    def lines(self) -> list[str]:
        """For the summary, ``dggan status`` and the report."""
        killed = (f", {self.unfinished_sessions} of them running or ended without a clean close"
                  if self.unfinished_sessions else "")
        out = [f"Cost: training and scoring, baseline included, {self.device_hours.text()}; wall time"
               f" {duration(self.wall_seconds)} over {self.sessions} session(s){killed}."]
        if self.split.baseline:
            out.append(f"Where it went: {self.split.text()}. (At paper scale the ProgGAN baseline is about 1/K of a"
                       " step; at small K and short budgets it is a large share, as here.)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split.to_dict(), "device_hours": self.device_hours.to_dict(),
                "wall_seconds": self.wall_seconds, "sessions": self.sessions,
                "unfinished_sessions": self.unfinished_sessions}

