"""Training the ProgGAN route (only ``grow_res``, the search's budgets and seeds) through the same code as
the candidates: the ``auto`` baseline inside a run (``RUN/baseline``), ``dggan baseline`` (a run folder of
its own) and the ProgGAN ``dggan compare`` measures against. Each is a run folder with its own ledger,
trained through a ``Runner``, so it resumes like a search.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import SearchError
from ..execution.executors import Executor, executor_for
from ..execution.state import Status
from ..model.actions import Action, apply_action
from ..runs import RunLayout, run_lock
from .algorithm import seed_for
from .baseline import BaselineCurve, Curves, baseline_config, longest_route, resolutions, static_curve
from .config import SearchConfig, create_run
from .ledger import Ledger
from .preflight import data_channels, validate_new_search
from .runner import Runner


def extend_route(runner: Runner, needs: dict[int, int], desc: str = "baseline",
                 stride: int | None = None) -> BaselineCurve:
    """Train the ProgGAN route of ``runner``'s run folder, then continue it at each resolution, scoring every
    ``iterations`` (or every ``stride``: ``dggan compare`` needs only the end point, so it trains the rest of the
    way as one task, scored once), until its route iterations reach ``needs[res]``; returns its curve."""
    config, ledger = runner.config, runner.ledger
    rules = config.rules()
    step_size = config.iterations
    first = config.initial_iterations or step_size
    top = max(needs)
    while True:
        rows = ledger.candidates()
        broken = [r for r in rows if r.status in (Status.DIVERGED, Status.FAILED)]
        if broken:
            r = broken[0]
            raise SearchError(f"the ProgGAN baseline {r.status} at {r.resolution}px (candidate {r.id} of"
                              f" {runner.run_dir}: {r.error}); candidates cannot be normalised without it. Lower"
                              " lr, or use a fixed baseline (--set baseline={res: value}) or baseline=none")
        new: list[dict[str, Any]] = []
        if not rows:
            genome = config.initial_genomes(data_channels(config))[0]
            new.append({"step": 0, "parent": None, "action": None, "genome": genome,
                        "iterations": first, "route_iterations": first})
        for res in resolutions(config):
            if not rows or res > top:
                break
            chain = sorted((r for r in rows if r.resolution == res), key=lambda r: r.route_iterations or 0)
            if not chain:
                below = sorted((r for r in rows if r.resolution == res // 2), key=lambda r: r.route_iterations or 0)
                if below and below[0].status == Status.DONE:  # ProgGAN grows right after its first budget
                    route = below[0]
                    new.append({"step": route.step + 1, "parent": route.id, "action": Action("grow_res"),
                                "genome": apply_action(route.genome, Action("grow_res"), rules.limits, rules.space),
                                "iterations": step_size, "route_iterations": (route.route_iterations or 0)
                                + step_size})
                continue
            last = chain[-1]
            need = needs.get(res, 0)
            if last.status == Status.DONE and (last.route_iterations or 0) < need:
                more = min(stride or step_size, need - (last.route_iterations or 0))
                new.append({"step": last.step + 1, "parent": last.id, "action": None, "genome": last.genome,
                            "iterations": more, "route_iterations": (last.route_iterations or 0) + more})
        if new:
            first_id = ledger.max_id() + 1
            for i, row in enumerate(new):
                row["seed"] = seed_for(config.seed, first_id + i)
            ledger.add_candidates(new)
        rows = ledger.candidates()
        status = {r.id: r.status for r in rows}
        ready = [r for r in rows if r.status in (Status.PENDING, Status.RUNNING)
                 and (r.parent is None or status[r.parent] == Status.DONE)]
        if not ready:
            return BaselineCurve.from_rows(rows, "auto")
        runner.train_candidates(ready, desc)


def route_runner(root: Path, search_config: SearchConfig, executor: Executor, progress: bool = True,
                 log: Callable[[str], None] | None = None, tb_root: Path | None = None) -> Runner:
    """The ProgGAN route of ``search_config``'s search in the run folder ``root`` (made when missing). Its
    ``curves`` are its own: ``full`` is the route's curve once ``extend_route`` has trained it."""
    sub = baseline_config(search_config)
    if not RunLayout(root).ledger.exists():
        create_run(root, sub)
    return Runner(root, sub, executor, progress, log, tb_root=tb_root, curves=Curves())


def train_route(root: Path, search_config: SearchConfig, needs: Iterable[dict[int, int]], executor: Executor,
                progress: bool = True, log: Callable[[str], None] | None = None, tb_root: Path | None = None,
                desc: str = "baseline (ProgGAN)", stride: int | None = None) -> Runner:
    """Train (further) the ProgGAN route in ``root`` until it covers each of ``needs`` in turn; returns its
    runner (its ``ledger`` holds the route's candidates). The caller holds the lock of the run it serves.
    ``stride``: see ``extend_route``."""
    runner = route_runner(root, search_config, executor, progress, log, tb_root)
    try:
        for need in needs:
            runner.curves.full = extend_route(runner, need, desc, stride)
    except BaseException:
        runner.close()
        raise
    return runner  # the caller closes it (``with train_route(...) as route:``)


def run_baseline(run_dir: str | Path, config: SearchConfig, *, executor: Executor | None = None,
                 progress: bool = True) -> BaselineCurve:
    """``dggan baseline``: the ProgGAN route of ``config``'s search in a run folder of its own, continued at
    every resolution as far as that search can reach (``longest_route``), for ``--set baseline=RUN``."""
    run_dir = Path(run_dir)
    validate_new_search(baseline_config(config), run_dir)
    first = config.initial_iterations or config.iterations
    reach = longest_route(config)
    needs = {res: min(reach, first + (config.max_steps or 0) * config.iterations + k * config.iterations)
             for k, res in enumerate(resolutions(config))}
    needs[config.target_resolution] = reach
    own = executor is None
    executor = executor or executor_for(config, run_dir)
    try:
        with route_runner(run_dir, config, executor, progress) as runner, run_lock(run_dir):
            return extend_route(runner, needs)
    finally:
        if own:
            executor.close()


class SearchBaseline:
    """The ProgGAN baseline a search divides its scores by: a fixed curve, or (``auto``) the ProgGAN route trained
    in RUN/baseline on demand, as far as the search's candidates reach. It owns the runner's ``curves``."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.config, self.ledger, self.layout = runner.config, runner.ledger, runner.layout
        runner.curves.full = runner.curves.rungs = static_curve(self.config)

    @property
    def curves(self) -> Curves:
        return self.runner.curves

    def train_to(self, needs: dict[int, int] | None = None) -> BaselineCurve:
        """The baseline curve, its route trained further first (``auto``) where it does not cover ``needs``
        ({res: route iterations}); with no needs, as far as it was trained (its first budget at least)."""
        curves, config = self.curves, self.config
        curve = curves.full
        if curve is not None and (not needs or config.baseline != "auto"
                                  or all(curve.covers(r, i) for r, i in needs.items())):
            if config.baseline != "auto" and self.ledger.get_meta("baseline") is None:
                self.ledger.set_meta("baseline", curve.to_json())  # what the report shows as used
            return curve
        if config.baseline != "auto":
            raise SearchError("internal: a static baseline has no curve")  # static_curve always returns one
        stored = self.ledger.get_meta("baseline")
        if stored and curve is None:
            curve = curves.full = BaselineCurve.from_json(stored)
            rungs = self.ledger.get_meta("baseline_rungs")
            curves.rungs = BaselineCurve.from_json(rungs) if rungs else curve
            if not needs or all(curve.covers(r, i) for r, i in needs.items()):
                return curve
        first = config.initial_iterations or config.iterations
        least = {res: first + k * config.iterations for k, res in enumerate(resolutions(config))}
        wanted = {res: max(i, (needs or {}).get(res, 0)) for res, i in least.items()}
        runner = self.runner
        with train_route(self.layout.baseline.root, config, [wanted], runner.executor, runner.progress,
                         runner.log, tb_root=self.layout.tb / "baseline") as proggan:
            assert proggan.curves.full is not None
            curves.full = proggan.curves.full
            # Intermediate rungs are compared with the baseline's own scores at the same fraction of its budget.
            curves.rungs = BaselineCurve.from_rungs(proggan.ledger.candidates(), proggan.ledger.rungs(),
                                                    config.rung_metric or config.metric, "auto")
        self.ledger.set_meta("baseline_rungs", curves.rungs.to_json())
        self.ledger.set_meta("baseline", curves.full.to_json())
        return curves.full

    def reuse_start(self, candidate: int) -> None:
        """With the auto baseline, the first initial candidate is exactly the baseline's first one (same genome,
        seed and budget): take its result instead of training it twice."""
        sub = self.layout.baseline
        if self.config.baseline != "auto" or not sub.ledger.exists():
            return
        row = self.ledger.get(candidate)
        with Ledger.open(sub.ledger, readonly=True) as ledger:
            twin = next((r for r in ledger.candidates(step=0, status=Status.DONE)
                         if r.genome == row.genome and r.seed == row.seed), None)
        if twin is None or twin.metric is None or twin.checkpoint is None:
            return
        normalized, info = self.train_to().normalize(twin.metric, row.resolution, row.route_iterations)
        self.ledger.update(candidate, status=Status.DONE, metric=twin.metric, normalized_metric=normalized,
                           extra={**twin.extra, **info, "reused": f"baseline candidate {twin.id}"},
                           train_seconds=0.0, eval_seconds=0.0,
                           checkpoint=self.layout.relative(sub.resolve(twin.checkpoint)))
