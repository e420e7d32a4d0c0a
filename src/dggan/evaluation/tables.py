"""``dggan tables RUN``: the paper's Tables 1-3 from a run, written to ``RUN/best/tables.json`` and ``tables.md``.

- **Table 1**: the final model's scores under the paper's protocol: FID and IS of 50k samples (FID against
  the training set) when the search's metric is FID, the search's own metric otherwise.
- **Table 2**: per resolution from d0 to the target, the model the final model's route had at that
  resolution against the ProgGAN baseline's model at the same resolution *and the same training* (the
  baseline curve's point at the route model's iterations), both scored now with the same metric, and the
  improvement in % (the paper's Table 2 compares per scale the same way, without equal training).
- **Table 3**: SWD x 1e3 per Laplacian level at the target resolution and their average (ProgGAN's 16k
  images when the paper's protocol applies), the final model against ProgGAN at equal training.

Tables 1 and 3 keep IS's standard deviation (the paper reports IS as mean ± std), and every table carries the
paper's published rows (``metrics.paper``: DGGAN, ProgGAN and the other methods of its Tables 1-3) beside the
run's own, labelled as published numbers with their protocol: other data and budgets, not this run's.

All scores use the search's evaluation seed. A missing Inception weights file or dataset is a one-line
error before anything is trained or scored.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.files import atomic_write_json, atomic_write_text
from ..errors import SearchError
from ..execution.executors import Executor
from ..execution.state import Status
from ..metrics.paper import published_tables
from ..metrics.registry import parse_metric
from ..runs import RunLayout
from ..search.algorithm import route
from ..search.baseline import resolutions
from ..search.config import SearchConfig, load_run_config
from ..search.ledger import CandidateRow
from ..search.preflight import check_data
from ..search.runner import say
from ..search.view import RunView
from .compare import baseline_point, final_model, score_checkpoint, train_proggan


def protocol(config: SearchConfig, samples: int | None = None) -> dict[str, Any]:
    """The metrics of each table: the paper's (FID/IS 50k, SWD 16k) for a FID search, else the search's own.
    ``samples`` replaces every sample count (a quicker look that is no longer the paper's protocol)."""
    spec = parse_metric(config.metric)
    if spec.kind == "fid":
        plan = {"table1": ["fid50k", "is50k"], "table2": "fid50k", "table3": "swd16k"}
    else:
        plan = {"table1": [config.metric], "table2": config.metric,
                "table3": config.metric if spec.kind == "swd" else "swd16k"}
    if samples is not None:
        def resized(name: str) -> str:
            return f"{parse_metric(name).kind}{samples}"

        plan = {"table1": [resized(m) for m in plan["table1"]], "table2": resized(plan["table2"]),
                "table3": resized(plan["table3"])}
    return {**plan, "paper_protocol": samples is None and spec.kind == "fid"}


@dataclass
class Tables:
    run: str
    protocol: dict[str, Any]
    seed: int
    table1: dict[str, float]
    table2: list[dict[str, Any]]
    table3: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    table1_std: dict[str, float] = field(default_factory=dict)  # IS: its standard deviation over splits
    published: dict[str, Any] = field(default_factory=published_tables)  # the paper's rows (metrics.paper)

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "protocol": self.protocol, "seed": self.seed, "table1": self.table1,
                "table1_std": self.table1_std, "table2": self.table2, "table3": self.table3,
                "published": self.published, "notes": self.notes}

    def markdown(self) -> str:
        lines = ["Table 1: the final model (lower is better for FID and SWD, higher for IS; IS as mean ± std).",
                 "", "| metric | final model |", "|---|---|"]
        lines += [f"| {name} | {table1_value(value, self.table1_std.get(name))} |"
                  for name, value in self.table1.items()]
        lines += published_markdown(self.published["table1"])
        lines += ["", f"Table 2: {self.protocol['table2']} per resolution, the final model's route against ProgGAN"
                  " trained as long.", "",
                  "| resolution | route model | its training iterations | ours | ProgGAN | improvement |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['resolution']}x{r['resolution']} | {r['candidate']} | {r['route_iterations']:,} |"
                  f" {r['ours']:.4g} | {r['proggan']:.4g} | {r['improvement_pct']:+.0f}% |" for r in self.table2]
        t2 = self.published["table2"]
        res2 = sorted(t2["proggan"], key=int)
        lines += ["", f"Published ({t2['name']}, {t2['dataset']}; {t2['protocol']}):", "",
                  "| model | " + " | ".join(f"{r}x{r}" for r in res2) + " |", "|---|" + "---|" * len(res2),
                  "| ProgGAN | " + " | ".join(f"{t2['proggan'][r]:.4g}" for r in res2) + " |",
                  "| DGGAN | " + " | ".join(f"{t2['dggan'][r]:.4g}" for r in res2) + " |"]
        if t2.get("note"):
            lines += ["", f"Note on the published Table 2: {t2['note']}."]
        t3 = self.table3
        levels = t3["levels"]
        lines += ["", f"Table 3: SWD x 1e3 per Laplacian level at {t3['resolution']}x{t3['resolution']}"
                  f" ({t3['metric']}).", "",
                  "| model | " + " | ".join(str(lv) for lv in levels) + " | avg |",
                  "|---|" + "---|" * (len(levels) + 1)]
        for label, key in (("final model", "ours"), ("ProgGAN, equal training", "proggan")):
            row = t3[key]
            lines.append(f"| {label} | " + " | ".join(f"{row['levels'][str(lv)]:.3g}" for lv in levels)
                         + f" | {row['avg']:.3g} |")
        lines += published_markdown(self.published["table3"])
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes]) + "\n"


def table1_value(value: float, std: float | None) -> str:
    """``8.64 ± 0.06`` for IS (mean ± std, as the paper reports it), else the value."""
    return f"{value:.4g}" if std is None else f"{value:.4g} ± {std:.2g}"


def _cell(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def published_columns(table: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of a published table (``metrics.paper``): Table 1 by FID and IS, Table 3 by resolution,
    FID and SWD per level."""
    rows = table["rows"]
    if table["name"] == "Table 1":  # IS printed with two decimals, as in the paper
        return (["model", "source", "FID", "Inception Score"],
                [[r["model"], r["source"], _cell(r["fid"]),
                  "-" if r["is_mean"] is None else f"{r['is_mean']:.2f}" + (
                      "" if r["is_std"] is None else f" ± {r['is_std']:.2f}")] for r in rows])
    levels = sorted({int(lv) for r in rows for lv in (r["swd"] or {})}, reverse=True)
    return (["model", "source", "resolution", "FID", *[f"SWD {lv}" for lv in levels], "SWD avg"],
            [[r["model"] + (f" ({r['note']})" if r["note"] else ""), r["source"],
              f"{r['resolution']}x{r['resolution']}", _cell(r["fid"]),
              *[_cell((r["swd"] or {}).get(str(lv)), 3) for lv in levels], _cell(r["swd_avg"], 3)] for r in rows])


def published_markdown(table: dict[str, Any]) -> list[str]:
    headers, cells = published_columns(table)
    return (["", f"Published ({table['name']}, {table['dataset']}; {table['protocol']}):", "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(row) + " |" for row in cells])


def check_tables(config: SearchConfig, plan: dict[str, Any]) -> None:
    """Everything the tables need, before any work: the data and, for FID/IS, the Inception weights."""
    from ..metrics.fid import get_inception

    check_data(config)
    if any(parse_metric(m).needs_inception for m in [*plan["table1"], plan["table2"]]):
        from ..errors import MetricError

        try:
            get_inception(config.inception_weights, "cpu")
        except MetricError as exc:
            raise SearchError(f"tables: {exc} (--set inception_weights=PATH when the search runs)") from None


def route_models(rows: list[CandidateRow], final_candidate: int) -> dict[int, CandidateRow]:
    """The model the final model's route had at each resolution: its last candidate there."""

    out: dict[int, CandidateRow] = {}
    for r in route(rows, final_candidate):
        out[r.resolution] = r
    return out


def tables_after_search(run_dir: str | Path, *, executor: Executor | None = None,
                        progress: bool = True) -> Tables | None:
    """The tables of a finished search whose settings ask for them (``tables``, the default), unless they are
    there already; None when there is nothing to score. ``dggan search`` calls it after ``run_search``."""
    layout = RunLayout(run_dir)
    config = load_run_config(layout.root)
    if not config.tables or layout.tables_json.exists():
        return None
    final = RunView.read(layout.root).final
    if final is None or final.status != Status.DONE:
        return None
    say(layout, "scoring the paper's tables (dggan tables) into RUN/best/tables.md", progress)
    return tables(run_dir, executor=executor, progress=progress)


def tables(run_dir: str | Path, *, samples: int | None = None, executor: Executor | None = None,
           progress: bool = True) -> Tables:
    layout = RunLayout(run_dir)
    config = load_run_config(layout.root)
    plan = protocol(config, samples)
    check_tables(config, plan)
    final, rows, final_route = final_model(layout, config)
    target = config.target_resolution
    models = route_models(rows, final.candidate)
    missing = [r for r in resolutions(config) if r not in models]
    if missing:
        raise SearchError(f"the final model's route has no model at {missing}px; is this run complete?")
    # The route model's iterations at each resolution; at the target, the final model's (after final training).
    routes = {res: int(models[res].route_iterations or 0) for res in resolutions(config)}
    routes[target] = final_route
    sub, base_rows, notes = train_proggan(layout, config, [routes], executor=executor, progress=progress)
    if samples is not None:
        notes.append(f"every metric used {samples} samples (--samples), not the paper's protocol")
    device = config.resolved_device()
    seed = config.seed
    final_ckpt = layout.resolve(final.checkpoint or "")

    @functools.cache
    def proggan_at(res: int) -> Path:
        point = baseline_point(base_rows, res, routes[res])
        if (point.route_iterations or 0) != routes[res]:
            notes.append(f"{res}px: ProgGAN has no model at exactly {routes[res]:,} iterations; the nearest after"
                         f" it ({point.route_iterations:,}) stands in")
        return sub.resolve(point.checkpoint or sub.checkpoint(point.id))

    # The tables share metrics (a SWD search scores the final model with the same metric in all three, a FID
    # search with fid50k in Tables 1 and 2): each checkpoint is scored once per metric.
    @functools.cache
    def score(path: Path, metric: str) -> dict[str, Any]:
        return score_checkpoint(path, config, seed, device, metric)

    table1 = {m: float(score(final_ckpt, m)["value"]) for m in plan["table1"]}
    table1_std = {m: float(score(final_ckpt, m)["is_std"]) for m in plan["table1"] if "is_std" in score(final_ckpt, m)}
    table2 = []
    for res in resolutions(config):
        ours_ckpt = final_ckpt if res == target else layout.resolve(models[res].checkpoint or
                                                                    layout.checkpoint(models[res].id))
        ours = float(score(ours_ckpt, plan["table2"])["value"])
        theirs = float(score(proggan_at(res), plan["table2"])["value"])
        table2.append({"resolution": res, "candidate": "final" if res == target else models[res].id,
                       "route_iterations": routes[res], "ours": ours, "proggan": theirs,
                       "improvement_pct": 100.0 * (theirs - ours) / theirs if theirs else 0.0})
    swd_ours = score(final_ckpt, plan["table3"])
    swd_theirs = score(proggan_at(target), plan["table3"])
    levels = sorted((int(k) for k in swd_ours["swd_levels"]), reverse=True)
    table3 = {"metric": plan["table3"], "resolution": target, "levels": levels,
              "ours": {"levels": swd_ours["swd_levels"], "avg": swd_ours["swd_avg"]},
              "proggan": {"levels": swd_theirs["swd_levels"], "avg": swd_theirs["swd_avg"]}}
    result = Tables(str(layout.root), plan, seed, table1, table2, table3, notes, table1_std)
    atomic_write_json(layout.tables_json, result.to_dict())
    atomic_write_text(layout.tables_md, result.markdown())
    return result
