"""Algorithm 1 (top-K greedy pruning with random action sampling) and the final training, as a thin loop
over the ledger.

The driver keeps no state of its own: at every point it reads what is done from the ledger and does the
next thing (train pending candidates, select the top-K, sample the next step's children, run the final
training). A killed search therefore resumes by simply running the loop again. The rules and the loop of
Algorithm 1 live in ``algorithm``, running candidates in ``runner``, the baseline curve in ``baseline`` and
its ProgGAN route in ``proggan``; this module only sequences them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.tensorboard import INSTALL_HINT, Board
from .._util.tensorboard import available as board_available
from .._util.threads import set_threads
from ..errors import DgganError, SearchError
from ..execution.executors import Executor, executor_for, runs_in_process
from ..execution.state import Status
from ..model.actions import Action, apply_action
from ..runs import RunLayout, run_lock
from .algorithm import (
    best_per_resolution,
    run_steps,
    seed_for,
)
from .config import SearchConfig, create_run, load_run_config
from .cost import work_seconds
from .final import FinalTraining, best_at_target
from .integrity import check_same_data
from .ledger import CandidateRow, Heartbeat
from .preflight import check_data, check_device, check_executor, check_metric, data_channels, validate_new_search
from .proggan import SearchBaseline, run_baseline
from .runner import Runner
from .view import RunView
from .watch import graphs_line

__all__ = ["Search", "SearchError", "SearchSummary", "run_baseline", "run_search"]


@dataclass
class SearchSummary:
    run_dir: Path
    steps: int
    candidates: int
    best_id: int | None  # best finished candidate at the target resolution
    best_normalized: float | None
    final_metric: float | None
    final_status: str | None
    wall_seconds: float  # this session (a resumed search counts from the resume)
    train_seconds: float  # the whole run's training and scoring, every session and the baseline included
    eval_seconds: float
    total_wall_seconds: float = 0.0  # every session of this run
    final_normalized: float | None = None
    final_route_iterations: int | None = None
    final_needed: bool = True  # whether the settings ask for a final training
    graphs: str | None = None  # how candidates ran on CUDA graphs, when any did (``watch.graphs_line``)

    @property
    def ok(self) -> bool:
        """Whether the search produced what it promises: a model at the target resolution (trained further
        when final training was asked for)."""
        if self.best_id is None:
            return False
        return self.final_status == Status.DONE if self.final_needed else True

    @property
    def problem(self) -> str:
        if self.best_id is None:
            return "no candidate finished at the target resolution (see the candidates' errors: dggan ls RUN)"
        if self.final_needed and self.final_status != Status.DONE:
            return f"the final training did not finish (status {self.final_status}; see RUN/best/error.txt)"
        return ""


class Search:
    """One run folder's search: reads the ledger, does the next thing, writes the result back. Composed of the
    ``runner`` (candidates -> executor -> ledger), the ``baseline`` it normalises by (trained on demand with the
    auto baseline) and, at the end, the ``FinalTraining``."""

    def __init__(self, run_dir: str | Path, config: SearchConfig, executor: Executor, progress: bool = True,
                 log: Callable[[str], None] | None = None):
        self.runner = Runner(run_dir, config, executor, progress, log)
        self.baseline = SearchBaseline(self.runner)
        self.layout, self.run_dir, self.ledger = self.runner.layout, self.runner.run_dir, self.runner.ledger
        self.config, self.executor, self.log = config, executor, self.runner.log
        self.rules = config.rules()
        self._board = Board(None)

    # ---------------------------------------------------------------- Algorithm 1 (algorithm.Steps)
    def candidates(self, step: int) -> Sequence[CandidateRow]:
        """Train the step's unfinished candidates (the baseline first covers their routes); its candidates."""
        rows = [r for r in self.ledger.candidates(step=step) if r.status in (Status.PENDING, Status.RUNNING)]
        if rows:
            needs: dict[int, int] = {}
            for r in rows:
                needs[r.resolution] = max(needs.get(r.resolution, 0), r.route_iterations or 0)
            self.baseline.train_to(needs)  # equal-training normalisation: the baseline covers every route of this step
            self.runner.train_candidates(rows, f"step {step}", step=step)
        return self.ledger.candidates(step=step)

    def keep(self, step: int, choose: Callable[[], list[CandidateRow]]) -> list[CandidateRow]:
        kept = self.ledger.kept(step)
        if kept is None:  # a resumed search neither selects nor logs a step twice
            kept = [r.id for r in choose()]
            self.ledger.set_kept(step, kept)
            self._log_step(step)
        if not kept:
            self.log(f"step {step}: no candidate finished, so the search cannot grow further")
        return [self.ledger.get(cid) for cid in kept]

    def grow(self, step: int, pairs: list[tuple[CandidateRow, Action]]) -> None:
        if self.ledger.candidates(step=step):
            return  # drawn before an interruption
        first_id = self.ledger.max_id() + 1
        own = self.config.iterations
        self.ledger.add_candidates([
            {"step": step, "parent": parent.id, "action": action, "seed": seed_for(self.config.seed, first_id + i),
             "genome": apply_action(parent.genome, action, self.rules.limits, self.rules.space),
             "iterations": own, "route_iterations": (parent.route_iterations or 0) + own}
            for i, (parent, action) in enumerate(pairs)])

    def best_at_target(self) -> CandidateRow | None:
        return best_at_target(self.ledger, self.config)

    # ---------------------------------------------------------------- TensorBoard
    def _open_board(self) -> Board:
        """The search's own TensorBoard log (RUN/tb/search), or a Board that does nothing."""
        if not self.config.tensorboard:
            return Board(None)
        if not board_available():
            self.log(f"TensorBoard logs are off: tensorboard is not installed ({INSTALL_HINT}; or --set"
                     " tensorboard=false to silence this)")
            return Board(None)
        return Board(self.layout.tb / "search")

    def _log_step(self, step: int) -> None:
        """After a step's selection: the best normalised metric so far per resolution (and its genome), and how
        many candidates are in each status."""
        board = self._board
        if not board.active:
            return
        rows = self.ledger.candidates()
        counts = Counter(r.status.value for r in rows)
        board.scalars({s.value: counts.get(s.value, 0) for s in Status}, step, "search/candidates/")
        best = best_per_resolution(rows)
        board.scalars({f"{res}px": r.normalized_metric for res, r in best.items()}, step, "search/best_normalized/")
        for res, r in best.items():
            board.text(f"search/best_{res}px", f"c{r.id:05d} ({r.normalized_metric:.4g}): {r.genome.summary()}", step)
        board.flush()

    # ---------------------------------------------------------------- the whole run
    def run(self) -> SearchSummary:
        start = time.perf_counter()
        device = None if self.runner.device == "worker" else self.runner.device
        # The session's wall time is on record every 30 s, so a kill -9 loses at most that (dggan status, cost).
        with run_lock(self.run_dir), Heartbeat(self.layout.ledger, device=device, threads=self.config.threads) as beat:
            if runs_in_process(self.executor):  # the candidates train with this process's threads
                threads = set_threads(self.config.threads)
                beat.threads = threads
                self.log(f"torch threads: {threads} ({'set' if self.config.threads else 'chosen from the free cores'})")
            first = self.config.initial_iterations or self.config.iterations
            self.baseline.train_to({self.config.base_resolution: first})
            if not self.ledger.candidates(step=0):
                channels = data_channels(self.config)  # 1 for greyscale data such as digits
                first_id = self.ledger.max_id() + 1
                ids = self.ledger.add_candidates([{"step": 0, "parent": None, "action": None, "genome": g,
                                                   "seed": seed_for(self.config.seed, first_id + i),
                                                   "iterations": first, "route_iterations": first}
                                                  for i, g in enumerate(self.config.initial_genomes(channels))])
                self.baseline.reuse_start(ids[0])
            with self._open_board() as self._board:
                step, _ = run_steps(self.rules, self)
                if self.config.final_iterations > 0 or self.config.baseline != "none":
                    FinalTraining(self.runner, self.baseline, self._board).train()
                    final = self.ledger.final()
                    if final is not None:
                        self._board.scalars({"final_normalized": final.normalized_metric,
                                             "final_metric": final.metric}, step, "search/")
        return self._summary(step, time.perf_counter() - start, beat)

    def _summary(self, step: int, wall: float, beat: Heartbeat) -> SearchSummary:
        """The session ran to its end: its heartbeat row says so (``completed``, what `dggan status` reads)."""
        rows = self.ledger.candidates()
        final = self.ledger.final()
        best = self.best_at_target()
        graphs = graphs_line(rows)
        if graphs is not None:  # a fallback is said where the run ends, not only in a worker's stderr
            self.log(graphs)
        train_s, eval_s = work_seconds(rows, final)
        if self.layout.baseline.ledger.exists():  # the auto baseline's work is part of this run
            sub_train, sub_eval = RunView.read(self.layout.baseline.root).work_seconds()
            train_s, eval_s = train_s + sub_train, eval_s + sub_eval
        self.ledger.note_session(beat.session, beat.started, beat.clock(), ended=True, completed=True)
        summary = SearchSummary(
            run_dir=self.run_dir, steps=step + 1, candidates=len(rows), best_id=best.id if best else None,
            best_normalized=best.normalized_metric if best else None,
            final_metric=final.metric if final else None, final_status=final.status if final else None,
            wall_seconds=wall, train_seconds=train_s, eval_seconds=eval_s,
            total_wall_seconds=self.ledger.session_seconds(),
            final_normalized=final.normalized_metric if final else None,
            final_route_iterations=final.extra.get("route_iterations") if final else None,
            final_needed=self.config.final_iterations > 0 or self.config.baseline != "none", graphs=graphs)
        return summary


def run_search(run_dir: str | Path, config: SearchConfig | None = None, *, resume: bool = False,
               executor: Executor | None = None, progress: bool = True,
               runtime: dict[str, Any] | None = None) -> SearchSummary:
    """Start (``config``) or resume (``resume=True``) a search in ``run_dir`` and run it to the end, then
    score the paper's tables (``tables``) for its final model.

    ``runtime`` changes, on resume, settings that say where the search runs (threads, executor, workers,
    device) without touching what it computes.
    """
    run_dir = Path(run_dir).resolve()  # paths written into the run (best/metrics.json) are absolute
    if resume:
        config = load_run_config(run_dir)
        if runtime:
            config = SearchConfig.from_dict({**config.to_dict(), **runtime}, source="--resume settings")
        check_device(config)
        check_executor(config)
        check_data(config)  # the files may have moved since the run started
        check_same_data(run_dir, config)  # ... or been replaced at the same path
        check_metric(config)
    elif config is None:
        raise SearchError("run_search needs a config for a new run (or resume=True)")
    else:
        validate_new_search(config, run_dir)  # before any folder is made or work is done
        create_run(run_dir, config)
        check_same_data(run_dir, config)  # records the data's fingerprint
    own = executor is None
    executor = executor or executor_for(config, run_dir)
    search = None
    try:
        search = Search(run_dir, config, executor, progress)
        try:
            summary = search.run()
        except DgganError as exc:
            if not RunLayout(run_dir).ledger.is_file():  # nothing is left to resume: do not promise it
                raise SearchError(f"the run folder {run_dir} (or its ledger) was deleted while the search ran"
                                  f" ({str(exc).split(';')[0]}); what it had trained went with it: start a new"
                                  " search with --run-dir") from None
            raise
        return summary
    finally:
        if search is not None:
            search.runner.close()
        if own:
            executor.close()
