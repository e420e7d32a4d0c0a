"""docs/extending.md, proved: a loss and a metric kind defined here, outside the package, registered by name, and a
tiny search that trains with the one and ranks with the other."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from searches import tiny
from torch import nn

import dggan.metrics.registry as metric_registry
import dggan.training.loss as loss_registry
from dggan.metrics import MetricJob, evaluate, parse_metric, register_metric
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger
from dggan.training.loss import Autocast, Loss, Terms, register_loss


# The loss of docs/extending.md: the hinge loss (Lim & Ye 2017; BigGAN's), with a margin as its one option.
@dataclass(frozen=True)
class Hinge(Loss):
    margin: float = 1.0
    stats: ClassVar[tuple[str, ...]] = ("d_real", "d_fake")

    def critic(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor, autocast: Autocast,
               one_pass: bool = True) -> Terms:
        with autocast():
            d_real, d_fake = D(real).float(), D(fake).float()
        loss = F.relu(self.margin - d_real).mean() + F.relu(self.margin + d_fake).mean()
        return Terms(loss, {"d_real": d_real.mean(), "d_fake": d_fake.mean()})

    def generator(self, D: nn.Module, fake: torch.Tensor, autocast: Autocast) -> torch.Tensor:
        with autocast():
            return -D(fake).float().mean()


# The metric kind of docs/extending.md: how far the mean colour of the generated images is from the real ones'.
def colour_distance(job: MetricJob) -> dict[str, Any]:
    def mean_colour(batches: Iterator[torch.Tensor]) -> torch.Tensor:
        return torch.cat([b.float().mean(dim=(2, 3)) for b in batches]).mean(0) / 255

    fake, real = mean_colour(job.fakes()), mean_colour(job.real_batches())
    return {"value": float((fake - real).abs().sum()), "num_real": min(job.num_real, len(job.real_source()))}


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both registered from here, as a user's module would at import; the registries are put back afterwards."""
    monkeypatch.setattr(loss_registry, "_LOSSES", dict(loss_registry._LOSSES))
    monkeypatch.setattr(metric_registry, "_KINDS", dict(metric_registry._KINDS))
    register_loss("hinge")(Hinge)
    register_metric("colour", lower_is_better=True, real="subset")(colour_distance)


def test_a_loss_and_a_metric_from_outside_run_a_search(registered: None, tmp_path: Path) -> None:
    assert parse_metric("colour1k").num_real == 1000 and not parse_metric("colour1k").needs_inception
    run = tmp_path / "run"
    config = tiny(loss="hinge", loss_options={"margin": 0.5}, metric="colour32", max_steps=1, final_iterations=2)
    run_search(run, config, progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = ledger.candidates()
    assert rows and all(r.status.value == "done" and r.metric is not None and r.metric >= 0 for r in rows)
    stats = [json.loads(text) for path in (run / "candidates").glob("*/stats.jsonl")
             for text in path.read_text().splitlines()]
    assert stats and all({"loss_d", "loss_g", "d_real", "d_fake"} <= set(row) and "gp" not in row for row in stats)
    best = json.loads((run / "best" / "metrics.json").read_text())  # the final model, scored by the toy metric
    assert best["status"] == "done" and best["extra"]["kind"] == "colour" and best["metric"] >= 0


def test_a_registered_metric_is_evaluated_by_its_function(registered: None) -> None:
    real = torch.full((8, 3, 8, 8), 0.0)

    class Source:  # the least an ImageSource offers evaluate for a "subset" kind
        name, resolution, channels = "grey", 8, 3

        def __len__(self) -> int:
            return len(real)

        def get(self, idx: Any) -> Any:
            return (real[torch.as_tensor(idx)] * 127.5 + 127.5).round().to(torch.uint8).numpy()

    white = evaluate("colour8", lambda n: torch.ones(n, 3, 8, 8), Source(), 8, progress=False)  # type: ignore[arg-type]
    assert white["value"] == pytest.approx(3 * (1 - 128 / 255)) and white["kind"] == "colour"
    assert white["lower_is_better"] and white["num_real"] == 8


def test_bad_registrations_say_what_to_fix(registered: None) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_metric("colour", lower_is_better=False)(lambda job: {"value": 0.0})
    with pytest.raises(ValueError, match="lower-case letters"):
        register_metric("fid2", lower_is_better=True)
    with pytest.raises(ValueError, match="already registered"):
        register_loss("hinge")(dataclass(frozen=True)(type("Hinge2", (Loss,), {})))


def test_the_doc_shows_the_code_tested_here() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text()
    for example in (Hinge, colour_distance):
        for line in inspect.getsource(example).splitlines():
            assert line.strip() in doc, f"docs/extending.md lacks {line.strip()!r} of the tested {example.__name__}"
