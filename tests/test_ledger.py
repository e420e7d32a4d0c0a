"""The ledger: schema version 2, and version-1 ledgers read as they are and migrated in place."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dggan.cli import app
from dggan.errors import LedgerError
from dggan.execution.state import Status
from dggan.model.actions import Action, apply_action
from dggan.model.genome import Genome
from dggan.search.ledger import SCHEMA_VERSION, Ledger

# The version-1 schema as dggan 0.1 wrote it.
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    parent INTEGER REFERENCES candidates(id),
    step INTEGER NOT NULL,
    action TEXT,
    genome TEXT NOT NULL,
    genome_key TEXT NOT NULL,
    resolution INTEGER NOT NULL,
    g_params INTEGER NOT NULL,
    d_params INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'diverged', 'failed')),
    metric REAL,
    normalized_metric REAL,
    extra TEXT,
    train_seconds REAL,
    eval_seconds REAL,
    checkpoint TEXT,
    error TEXT,
    seed INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS candidates_step ON candidates(step);
CREATE TABLE IF NOT EXISTS kept (
    step INTEGER NOT NULL,
    candidate INTEGER NOT NULL REFERENCES candidates(id),
    rank INTEGER NOT NULL,
    PRIMARY KEY (step, candidate)
);
CREATE TABLE IF NOT EXISTS final (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    candidate INTEGER NOT NULL REFERENCES candidates(id),
    status TEXT NOT NULL,
    metric REAL,
    normalized_metric REAL,
    extra TEXT,
    iterations INTEGER,
    train_seconds REAL,
    checkpoint TEXT,
    error TEXT,
    updated REAL NOT NULL
);
"""


BASE = Genome.base(latent_size=8, channels={4: 8, 8: 8, 16: 8, 32: 8})


def write_v1_ledger(path: Path) -> Path:
    """A finished three-candidate search as dggan 0.1 left it: initial, a G child, its grow_res child."""
    child = apply_action(BASE, Action("grow_g", 3, 32))
    grand = apply_action(child, Action("grow_res"))
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    settings = {"iterations": 300, "initial_iterations": 500, "top_k": 2, "p": 0.5, "target_resolution": 16}
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", "1"), ("settings", json.dumps(settings)),
                                                       ("baseline", json.dumps({"8": 2.0, "16": 4.0}))])
    for cid, parent, step, action, genome, metric in [(1, None, 0, None, BASE, 10.0),
                                                      (2, 1, 1, {"kind": "grow_g", "kernel": 3, "filters": 32}, child,
                                                       8.0),
                                                      (3, 2, 2, {"kind": "grow_res"}, grand, 12.0)]:
        conn.execute("INSERT INTO candidates (id, parent, step, action, genome, genome_key, resolution, g_params,"
                     " d_params, status, metric, normalized_metric, extra, seed, created, updated)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'done', ?, ?, '{}', ?, 0, 0)",
                     (cid, parent, step, None if action is None else json.dumps(action), genome.to_json(indent=None),
                      genome.key(), genome.resolution, genome.g_params(), genome.d_params(), metric,
                      metric / (2.0 if genome.resolution == 8 else 4.0), cid))
    conn.execute("INSERT INTO kept VALUES (0, 1, 0), (1, 2, 0), (2, 3, 0)")
    conn.commit()
    conn.close()
    return path


def test_a_version_1_ledger_is_read_as_it_is(tmp_path: Path) -> None:
    path = write_v1_ledger(tmp_path / "ledger.sqlite")
    before = path.read_bytes()
    with Ledger.open(path, readonly=True) as ledger:
        rows = ledger.candidates()
        assert ledger.version == 1 and ledger.rungs() == []
    assert [r.route_iterations for r in rows] == [None, None, None]
    assert rows[2].action == Action("grow_res") and rows[1].normalized_metric == 4.0
    result = CliRunner().invoke(app, ["ls", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.output)] == [1, 2, 3]
    assert path.read_bytes() == before  # reading changed nothing


def test_a_version_1_ledger_is_migrated_in_place_when_written(tmp_path: Path) -> None:
    path = write_v1_ledger(tmp_path / "ledger.sqlite")
    before = path.read_bytes()
    with Ledger.open(path) as ledger:
        assert ledger.version == SCHEMA_VERSION == 2
        rows = ledger.candidates()
        # Budgets from the run's settings: 500 for the initial candidate, 300 per step after it.
        assert [(r.iterations, r.route_iterations) for r in rows] == [(500, 500), (300, 800), (300, 1100)]
        assert [r.normalized_metric for r in rows] == [5.0, 4.0, 3.0] and ledger.kept(1) == [2]
        ledger.update(3, status=Status.PRUNED)  # the new status is accepted
        ledger.add_rung(candidate=3, rung=0, iterations=100, route_iterations=900, metric=1.0, normalized_metric=0.5)
        assert ledger.rungs(3)[0].route_iterations == 900
    assert (tmp_path / "ledger.sqlite.v1").read_bytes() == before  # the old file is kept beside it
    with Ledger.open(path, readonly=True) as ledger:
        assert ledger.version == 2 and ledger.get(3).status == Status.PRUNED


def test_unreadable_ledgers_are_one_line_errors(tmp_path: Path) -> None:
    junk = tmp_path / "ledger.sqlite"
    junk.write_bytes(b"random bytes, not sqlite" * 50)
    with pytest.raises(LedgerError, match="not a dggan ledger, or a damaged one"):
        Ledger.open(junk)
    good = write_v1_ledger(tmp_path / "good.sqlite")
    good.write_bytes(good.read_bytes()[:2048])  # truncated
    with pytest.raises(LedgerError):
        Ledger.open(good, readonly=True).candidates()


def test_a_version_1_run_opens_in_the_report(tmp_path: Path) -> None:
    from dggan.analysis.report import generate_report

    write_v1_ledger(tmp_path / "ledger.sqlite")
    result = generate_report(tmp_path, replay_seeds=2)
    text = result.path.read_text()
    assert "8px: 2, 16px: 4" in text  # its fixed baseline, as version 1 stored it
    assert (tmp_path / "ledger.sqlite").read_bytes()[:16] == b"SQLite format 3\x00"
    with Ledger.open(tmp_path / "ledger.sqlite", readonly=True) as ledger:
        assert ledger.version == 1  # the report only read it
