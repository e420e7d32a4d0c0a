"""The HTML report: a 2,000-candidate run, bad run folders, sample grids from real checkpoints, the CLI,
and a headless-browser check of the page (skipped when chromium is not installed)."""

from __future__ import annotations

import base64
import csv
import io
import json
import shutil
import sqlite3
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from fixtures.synthetic_ledger import write_synthetic_run
from PIL import Image
from searches import tiny
from typer.testing import CliRunner

from dggan.analysis import ReportError, generate_report
from dggan.analysis import plots as P
from dggan.model.actions import Action, apply_action
from dggan.model.genome import Genome
from dggan.model.networks import Generator
from dggan.search.ledger import Ledger
from dggan.training.checkpoint import save_checkpoint

# The result first, the settings collapsed at the end (issue: "the result first").
SECTIONS = ["result", "overview", "best", "route", "capacity", "actions", "pruning", "replay", "tree", "samples",
            "candidates", "settings"]
BIG = 2000


class _Dom(HTMLParser):
    """Section ids, <img> sources and the rows of the candidate table, from (rendered) HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.imgs: list[dict[str, str]] = []
        self.rows: list[list[str]] = []
        self.info = ""
        self._in_cands = self._in_body = self._in_td = self._in_info = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.sections.append(a.get("id", ""))
        elif tag == "img":
            self.imgs.append(a)
        elif tag == "table":
            self._in_cands = a.get("id") == "cand-table"
        elif tag == "tbody" and self._in_cands:
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._in_td = True
            self.rows[-1].append("")
        elif tag == "span" and a.get("id") == "cand-info":
            self._in_info = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._in_cands = False
        elif tag == "td":
            self._in_td = False
        elif tag == "span":
            self._in_info = False

    def handle_data(self, data: str) -> None:
        if self._in_td:
            self.rows[-1][-1] += data
        if self._in_info:
            self.info += data


def parse(text: str) -> _Dom:
    dom = _Dom()
    dom.feed(text)
    return dom


def png_of(src: str) -> Image.Image:
    assert src.startswith("data:image/png;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    img.load()
    return img


# ---------------------------------------------------------------------- a 2,000-candidate run
@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = write_synthetic_run(tmp_path_factory.mktemp("big") / "run", BIG, seed=0)
    generate_report(run, replay_seeds=10)
    return run


def test_report_of_2000_candidates(big_run: Path) -> None:
    run = big_run
    out = run / "report"
    text = (out / "index.html").read_text()
    dom = parse(text)
    assert dom.sections == SECTIONS
    names = {i["id"] for i in dom.imgs}
    assert names == {"img-architecture", "img-capacity", "img-action_effects", "img-pruning_risk", "img-replay",
                     "img-search_tree"}
    for i in dom.imgs:  # every image is inlined and a real PNG, and the same PNG lies beside the page
        img = png_of(i["src"])
        assert img.width > 300 and img.height > 200
        assert (out / f"{i['alt']}.png").read_bytes() == base64.b64decode(i["src"].split(",", 1)[1])
    assert "src=\"http" not in text and "<link" not in text  # nothing fetched from the network
    # No JavaScript: the best 50 by normalized metric; the script's data holds all of them.
    assert len(dom.rows) == 50
    norms = [float(r[7]) for r in dom.rows]
    assert norms == sorted(norms)
    data = json.loads(text.split('<script id="cand-data" type="application/json">')[1].split("</script>")[0])
    assert len(data["rows"]) == BIG and data["columns"][7] == "normalized"
    with open(out / "candidates.csv") as f:
        assert sum(1 for _ in csv.reader(f)) == BIG + 1
    analyses = json.loads((out / "analyses.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        final = ledger.final()
    assert analyses["best"] == final.candidate == summary["best"]
    assert analyses["route"][-1] == final.candidate
    assert len(analyses["action_effects"]) == 25 and len(analyses["pruning_risk"]) == 11
    # The synthetic model makes large D kernels worse; the analysis must find that.
    eff = {e["label"]: e for e in analyses["action_effects"]}
    d3 = np.mean([eff[f"D k3 f{f}"]["improved_share"] for f in (32, 64, 128, 256)])
    d7 = np.mean([eff[f"D k7 f{f}"]["improved_share"] for f in (32, 64, 128, 256)])
    assert d3 > d7 + 0.15
    full = [c for c in analyses["replay"]["cells"] if c["k"] == 20 and c["p"] == 1.0][0]
    assert full["best_mean"] == pytest.approx(analyses["replay"]["actual"]["best_score"])
    # Only the sample grids are missing (no checkpoints in a synthetic run), and the page says so.
    assert len(summary["notes"]) == 1 and "sample grid" in summary["notes"][0]
    assert "Skipped final model" in text
    for name in ("route.csv", "capacity.csv", "action_effects.csv", "pruning_risk.csv", "replay.csv"):
        assert (out / name).stat().st_size > 50


def test_plots_are_pngs() -> None:
    genome = apply_action(Genome.base(channels={4: 64, 8: 64, 16: 64, 32: 64}), Action("grow_d", 7, 128))
    png = P.plot_architecture(genome, "t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------- bad input
def test_no_such_folder(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no such run folder"):
        generate_report(tmp_path / "nope")


def test_folder_without_ledger(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no ledger.sqlite here"):
        generate_report(tmp_path)
    assert not (tmp_path / "report").exists()
    write_synthetic_run(tmp_path / "00003-search", 5)
    with pytest.raises(ReportError, match="00003-search"):  # pointed at the runs root: name the runs inside
        generate_report(tmp_path)


def test_old_schema_and_garbage(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    conn = sqlite3.connect(tmp_path / "old" / "ledger.sqlite")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '0')")
    conn.commit()
    conn.close()
    with pytest.raises(ReportError, match="schema version 0 is not supported"):
        generate_report(tmp_path / "old")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "ledger.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ReportError, match="not a dggan ledger"):
        generate_report(tmp_path / "junk")


def test_run_without_finished_candidates(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    base = Genome.base(channels={4: 32, 8: 32, 16: 32})
    with Ledger.create(run / "ledger.sqlite", {"top_k": 4, "p": 0.5, "metric": "swd512"}) as ledger:
        a = ledger.add_candidate(step=0, genome=base, parent=None, action=None, seed=0)
        b = ledger.add_candidate(step=0, genome=base, parent=None, action=None, seed=1)
        c = ledger.add_candidate(step=0, genome=base, parent=None, action=None, seed=2)
        ledger.update(a, status="failed", error="RuntimeError: CUDA out of memory <at> step 3")
        ledger.update(b, status="running")
        ledger.update(c, status="diverged", error="loss became NaN")
    result = generate_report(run)
    assert result.path == run / "report" / "index.html" and result.n_candidates == 3
    assert any("No finished candidate yet" in n and "failed 1" in n for n in result.notes)
    text = result.path.read_text()
    dom = parse(text)
    assert dom.sections == SECTIONS
    assert text.count("Needs finished candidates") == 7  # best, route, the 4 analyses, samples
    assert "swd512" in text  # settings are shown
    statuses = sorted(r[5] for r in dom.rows)
    assert statuses == ["diverged", "failed", "running"]
    assert "CUDA out of memory &lt;at&gt; step 3" in text  # errors shown, escaped
    assert [i["id"] for i in dom.imgs] == ["img-search_tree"]


def test_empty_ledger(tmp_path: Path) -> None:
    Ledger.create(tmp_path / "ledger.sqlite", {}).close()
    result = generate_report(tmp_path)
    assert any("no candidates yet" in n for n in result.notes)
    assert parse(result.path.read_text()).sections == SECTIONS


# ---------------------------------------------------------------------- samples from real checkpoints
def _save_generator(path: Path, genome: Genome, seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    G = Generator(genome)
    save_checkpoint(path, genome, {"fade_in": False}, {f"G_ema.{k}": v for k, v in G.state_dict().items()})


def test_sample_grids(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    g8 = Genome.base(latent_size=8, channels={4: 8, 8: 8, 16: 8}, max_resolution=16)
    g8b = apply_action(g8, Action("grow_g", 3, 32))
    g16 = apply_action(g8b, Action("grow_res"))
    with Ledger.create(run / "ledger.sqlite", {"top_k": 1, "p": 1.0}) as ledger:
        ids = [ledger.add_candidate(step=0, genome=g8, parent=None, action=None, seed=0)]
        grow = Action("grow_g", 3, 32)
        ids.append(ledger.add_candidate(step=1, genome=g8b, parent=ids[0], action=grow, seed=1))
        ids.append(ledger.add_candidate(step=2, genome=g16, parent=ids[1], action=Action("grow_res"), seed=2))
        for cid, norm in zip(ids, (1.0, 0.9, 0.8), strict=True):
            ledger.update(cid, status="done", metric=norm, normalized_metric=norm,
                          checkpoint=f"candidates/c{cid:05d}/checkpoint.safetensors")
        ledger.set_final(candidate=ids[2], status="done", metric=0.7, normalized_metric=0.7)
    # 8px: the route's last 8px model (ids[1]) lost its checkpoint but kept samples.png; 16px and final: real.
    saved = Image.new("RGB", (40, 30), (200, 10, 10))
    (run / "candidates" / f"c{ids[1]:05d}").mkdir(parents=True)
    saved.save(run / "candidates" / f"c{ids[1]:05d}" / "samples.png")
    (run / "candidates" / f"c{ids[2]:05d}").mkdir(parents=True)
    _save_generator(run / "candidates" / f"c{ids[2]:05d}" / "checkpoint.safetensors", g16, 0)
    (run / "best").mkdir()
    _save_generator(run / "best" / "checkpoint.safetensors", g16, 1)

    result = generate_report(run, n_samples=9, replay_seeds=2)
    assert result.notes == []
    dom = parse(result.path.read_text())
    imgs = {i["id"]: png_of(i["src"]) for i in dom.imgs}
    assert imgs["img-samples_8px"].size == (40, 30)  # the saved samples.png, as is
    assert imgs["img-samples_16px"].size == (3 * 66 + 2, 3 * 66 + 2)  # 3x3 grid, 16px upscaled to 64, pad 2
    assert imgs["img-samples_final"].size == imgs["img-samples_16px"].size
    a = np.asarray(imgs["img-samples_16px"], dtype=float)
    assert a.std() > 1.0  # real generator output, not a blank image
    assert not np.array_equal(a, np.asarray(imgs["img-samples_final"], dtype=float))  # different weights
    # Same seed, same latents: rebuilding gives the same grid.
    again = parse(generate_report(run, n_samples=9, replay_seeds=2).path.read_text())
    assert {i["id"]: i["src"] for i in again.imgs}["img-samples_16px"] == next(
        i["src"] for i in dom.imgs if i["id"] == "img-samples_16px")

    (run / "best" / "checkpoint.safetensors").unlink()
    result = generate_report(run, n_samples=4, replay_seeds=2)
    assert len(result.notes) == 1 and "1 sample grid(s) skipped" in result.notes[0]
    assert "Skipped final model (RUN/best): no checkpoint at" in result.path.read_text()


# ---------------------------------------------------------------------- a real (tiny) search
@pytest.mark.filterwarnings("error:No artists with labels:UserWarning")
def test_report_of_a_real_tiny_search(tmp_path: Path) -> None:
    from dggan.search.driver import run_search

    config = tiny(final_snapshots=3)  # the final training scored at 3 points: the report plots them
    run = tmp_path / "run"
    run_search(run, config, progress=False)
    result = generate_report(run, n_samples=4, replay_seeds=2)
    assert result.notes == []  # every checkpoint was there
    text = result.path.read_text()
    dom = parse(text)
    assert dom.sections == SECTIONS
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = ledger.candidates()
        final = ledger.final()
    analyses = json.loads((run / "report" / "analyses.json").read_text())
    assert analyses["best"] == final.candidate and analyses["K"] == 2 and analyses["p"] == 0.5
    by_id = {r.id: r for r in rows}
    route = analyses["route"]
    assert by_id[route[0]].parent is None and all(by_id[b].parent == a for a, b in zip(route, route[1:], strict=False))
    imgs = {i["id"] for i in dom.imgs}
    assert {"img-samples_8px", "img-samples_16px", "img-samples_final", "img-final_training"} <= imgs
    with (run / "report" / "final_training.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3  # the final training's three scored points
    assert "8px: 100, 16px: 100" in text  # the baseline the search used
    assert len(dom.rows) == len(rows)


# ---------------------------------------------------------------------- CLI
def test_cli(tmp_path: Path) -> None:
    from dggan.cli import app

    run = write_synthetic_run(tmp_path / "run", 40, seed=3)
    res = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "rep"), "--replay-seeds", "2"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().endswith(str(tmp_path / "rep" / "index.html"))
    assert (tmp_path / "rep" / "index.html").is_file() and not (run / "report").exists()
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "no ledger.sqlite here" in res.output


# ---------------------------------------------------------------------- browser
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium); browser check skipped")


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


@needs_chromium
def test_browser_renders_dom(big_run: Path, tmp_path: Path) -> None:
    run = big_run
    url = (run / "report" / "index.html").resolve().as_uri()
    dom = parse(chromium(tmp_path, "--dump-dom", url).stdout)
    assert dom.sections == SECTIONS
    assert len(dom.imgs) == 6 and all(png_of(i["src"]).width > 300 for i in dom.imgs)
    # The script ran: first page of all candidates, sorted by normalized metric.
    assert dom.info == f"1–50 of {BIG}"
    assert len(dom.rows) == 50
    norms = [float(r[7]) for r in dom.rows]
    assert norms == sorted(norms)
    # Filter, sort and page from the URL: diverged candidates by id, descending.
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        diverged = sorted((r.id for r in ledger.candidates(status="diverged")), reverse=True)
    dom = parse(chromium(tmp_path, "--dump-dom", url + "#status=diverged&sort=id&desc=1").stdout)
    assert [int(r[0]) for r in dom.rows] == diverged[:50]
    assert {r[5] for r in dom.rows} == {"diverged"}
    assert dom.info == f"1–{min(50, len(diverged))} of {len(diverged)} (filtered from {BIG})"
    dom = parse(chromium(tmp_path, "--dump-dom", url + "#q=D%20k7%20f1024&page=2").stdout)
    assert dom.rows and all(r[3] == "D k7 f1024" for r in dom.rows) and dom.info.startswith("51–")


@needs_chromium
def test_browser_screenshot(big_run: Path, tmp_path: Path) -> None:
    run = big_run
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,3000",
             (run / "report" / "index.html").resolve().as_uri())
    img = Image.open(shot).convert("RGB")
    assert img.size == (1400, 3000)
    a = np.asarray(img, dtype=float)
    assert tuple(a[20, 20]) == pytest.approx((0x26, 0x32, 0x38), abs=3)  # the header's colour: the CSS applied
    assert a.std() > 20  # text and plots, not a blank page
    # The first plot (the architecture, in "Best architecture") is drawn within the first 3000 pixels:
    # look for its orange grown-layer boxes.
    orange = (np.abs(a - np.array([0xFF, 0xB3, 0x47])).sum(axis=2) < 30).sum()
    assert orange > 500


class _Scripts(HTMLParser):
    """The text of every <script> element, as a browser's tokenizer splits it (one piece per element)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: dict[str, str] | None = None
        self.pieces: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.open = {k: v or "" for k, v in attrs}
            self.pieces.setdefault(self.open.get("id", ""), [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.open = None

    def handle_data(self, data: str) -> None:
        if self.open is not None:
            self.pieces[self.open.get("id", "")].append(data)


def test_inline_json_survives_any_ledger_text(tmp_path: Path) -> None:
    from dggan.analysis.report.render import inline_json

    hostile = 'x <!-- <script> a </script> b & c > d </SCRIPT  \u2028 "q"'
    assert json.loads(inline_json(json.dumps({"e": hostile}))) == {"e": hostile}
    assert not set("<>&") & set(inline_json(json.dumps(hostile)))
    run = write_synthetic_run(tmp_path / "run", 12, seed=3)
    with sqlite3.connect(run / "ledger.sqlite") as conn:
        conn.execute("UPDATE candidates SET error = ? WHERE id = 2", (hostile,))
    page = generate_report(run, replay_seeds=1).path.read_text()
    parser = _Scripts()
    parser.feed(page)
    parser.close()
    assert len(parser.pieces["cand-data"]) == 1  # one piece: nothing in the data ended or reopened the element
    # html.parser does not model a browser's "<!--" + "<script" state (the real trap), so also: no "<" at all.
    assert not set("<>&") & set(parser.pieces["cand-data"][0])
    data = json.loads(parser.pieces["cand-data"][0])
    errors = {row[0]: row[data["columns"].index("error")] for row in data["rows"]}
    assert errors[2] == hostile


# ---------------------------------------------------------------------- pictures that do not mislead (#30)
def test_commands_in_backticks_are_code_and_published_tables_of_other_data_are_collapsed() -> None:
    from dggan.analysis.report import render
    from dggan.metrics.paper import published_tables

    assert render._text("run `dggan compare runs/demo` <now>") == \
        "run <code>dggan compare runs/demo</code> &lt;now&gt;"  # was shown with its backticks
    table1 = published_tables()["table1"]
    assert render._published_html(table1, "digits").startswith('<details class="published">')
    assert render._published_html(table1, "cifar10:/data/c10").startswith('<p class="muted">Published (Table 1')


def test_the_overview_counts_the_final_trainings_scoring_as_the_cost_split_does() -> None:
    """It read "candidate 8: done, 0 s" beside "final training 22 s" in the split: the ProgGAN route's final
    training trains nothing (the baseline had), and its 22 s are the scoring of its points."""
    from dggan.analysis.report import render
    from dggan.execution.state import Status
    from dggan.search.ledger import FinalRow

    final = FinalRow(8, Status.DONE, 12.3, 1.0, {"proggan_route": True, "eval_seconds": 22.0}, 4200, 0.0, "b", None)
    text = render._final_text(final)
    assert "22 s" in text and "scoring 22 s" in text and "training 0 s" in text and "ProgGAN route" in text


@pytest.mark.usefixtures("fake_checkpoints")
def test_the_replay_of_the_runs_own_k_and_p_reaches_the_runs_best_grown_candidate(tmp_path: Path) -> None:
    """The ProgGAN route enters only the final pick (no replay draws it): the real search's row of the replay is
    its best grown candidate, so its own K and p retrace it, and the route is reported on its own."""
    from fixtures.fake_executor import CurveExecutor

    from dggan.analysis import analyses
    from dggan.analysis.report.compute import _replay, read_run
    from dggan.search.driver import run_search

    run = tmp_path / "run"
    run_search(run, tiny(baseline="auto", max_steps=2, final_pick_candidates=3), executor=CurveExecutor(penalty=0.5),
               progress=False)
    data = read_run(run)
    route = next(r for r in data.rows if r.extra.get("proggan_route"))
    index = analyses.ReplayIndex(data.rows, data.key, settings=data.settings, rungs=data.rungs)
    actual = index.actual()
    assert actual.best_id != route.id and actual.best_score > route.normalized_metric
    own = index.run(data.k, data.p, int(data.settings["seed"]))
    assert own.best_id == actual.best_id and own.best_score == actual.best_score
    replay = _replay(data, 2)
    assert replay["proggan_route"] == {"id": route.id, "score": pytest.approx(1.0)}
    assert replay["actual"].cost == sum(1 for r in data.rows if r.status.finished and not r.extra.get("proggan_route"))


def test_the_tree_goes_round_the_steps_a_route_skips_and_narrow_axes_get_readable_ticks() -> None:
    from matplotlib.figure import Figure

    xs, ys = P._around((0, 2), (3, 0))
    assert (xs[0], ys[0]) == (0, 2) and (xs[-1], ys[-1]) == (3, 0)
    # between the steps it skips the path stays above rank 0, where no node is (it ran through ranks 1 and 0)
    assert all(y < 0 for x, y in zip(xs, ys, strict=True) if 0 < x < 3)
    ax = Figure().subplots()
    P._ratio_axis(ax, [1.05, 1.2, 1.3])  # one power of two in range gave one tick
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert len(ticks) >= 2 and all(P._ratio_label(t) for t in ticks)
    ax = Figure().subplots()
    P._score_axis(ax, [0.9, 1.0, 1.4])  # a log axis over less than a decade read "1.2x10^0"
    assert ax.get_yscale() == "linear"
    P._score_axis(ax, [0.5, 40.0])
    assert ax.get_yscale() == "log"
