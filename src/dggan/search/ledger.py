"""The search ledger: every candidate and every selection, in one SQLite file (stdlib sqlite3).

The driver is the only writer. Each write is its own transaction, so a crash (even ``kill -9``) leaves
the ledger as it was after the last completed write; resume reads everything back from here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from ..actions import Action
from ..errors import LedgerError
from ..genome import Genome

SCHEMA_VERSION = 1


class Status(str, Enum):
    """A candidate's state. ``done``, ``diverged`` and ``failed`` are final; only ``done`` can be kept."""

    PENDING = "pending"  # sampled, not trained yet (or waiting to be retried)
    RUNNING = "running"  # handed to an executor
    DONE = "done"  # trained and scored
    DIVERGED = "diverged"  # NaN/Inf losses or an exploding critic: an outcome of the architecture
    FAILED = "failed"  # could not be trained (e.g. a shape that cannot be built)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def finished(self) -> bool:
        return self in (Status.DONE, Status.DIVERGED, Status.FAILED)


STATUSES = tuple(s.value for s in Status)

_SCHEMA = """
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
    status TEXT NOT NULL CHECK (status IN ({statuses})),
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


_SCHEMA = _SCHEMA.replace("{statuses}", ", ".join(f"'{s}'" for s in STATUSES))
_SELECT = "SELECT c.*, EXISTS (SELECT 1 FROM kept k WHERE k.candidate = c.id) AS kept FROM candidates c"


@dataclass(frozen=True)
class CandidateRow:
    id: int
    parent: int | None
    step: int
    action: Action | None
    genome: Genome
    resolution: int
    g_params: int
    d_params: int
    status: Status
    metric: float | None
    normalized_metric: float | None
    extra: dict[str, Any]
    train_seconds: float | None
    eval_seconds: float | None
    checkpoint: str | None
    error: str | None
    seed: int
    kept: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``dggan ls --json``."""
        return {
            "id": self.id, "parent": self.parent, "step": self.step,
            "action": None if self.action is None else self.action.to_dict(),
            "resolution": self.resolution, "g_params": self.g_params, "d_params": self.d_params,
            "status": self.status.value, "metric": self.metric, "normalized_metric": self.normalized_metric,
            "kept": self.kept, "train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds,
            "checkpoint": self.checkpoint, "error": self.error, "genome_key": self.genome.key(),
            "summary": self.genome.summary(),
        }


@dataclass(frozen=True)
class FinalRow:
    candidate: int
    status: Status
    metric: float | None
    normalized_metric: float | None
    extra: dict[str, Any]
    iterations: int | None
    train_seconds: float | None
    checkpoint: str | None
    error: str | None


class Ledger:
    def __init__(self, path: str | Path, conn: sqlite3.Connection):
        self.path = Path(path)
        self._conn = conn

    # ------------------------------------------------------------------ open / create
    @classmethod
    def create(cls, path: str | Path, settings: dict[str, Any]) -> Ledger:
        """A new ledger, built under a temp name and renamed into place: readers never see it half made."""
        path = Path(path)
        if path.exists():
            raise LedgerError(f"{path}: a ledger already exists here; resume it instead of creating a new one")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(str(tmp))
        with conn:
            conn.executescript(_SCHEMA)
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION)),
                ("settings", json.dumps(settings, sort_keys=True)),
                ("created", str(time.time())),
            ])
        conn.close()
        os.replace(tmp, path)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path, readonly: bool = False) -> Ledger:
        path = Path(path)
        if not path.is_file():
            raise LedgerError(f"{path}: no ledger here (is this a dggan run folder?)")
        conn: sqlite3.Connection | None = None
        try:
            conn = cls._connect(path, readonly=readonly)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.Error as exc:  # random bytes, a truncated file, a read-only folder for the WAL
            if conn is not None:
                conn.close()
            raise LedgerError(f"{path}: not a dggan ledger, or a damaged one ({exc}); if the file was damaged, restore"
                              " it from a backup (the candidates' folders still hold their checkpoints)") from None
        if row is None or int(row["value"]) != SCHEMA_VERSION:
            conn.close()
            found = None if row is None else row["value"]
            raise LedgerError(f"{path}: ledger schema version {found} is not supported (this dggan reads"
                              f" version {SCHEMA_VERSION}); use the dggan release that wrote it")
        return cls(path, conn)

    @staticmethod
    def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        else:
            conn = sqlite3.connect(str(path), timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")  # readers (ls, report) never block the driver
            conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.row_factory = sqlite3.Row
        return conn

    def set_durable(self, durable: bool) -> None:
        """fsync every write (the default) or not (for throwaway ledgers such as synthetic test data)."""
        self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    def settings(self) -> dict[str, Any]:
        return json.loads(self._meta("settings") or "{}")

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    def set_meta(self, key: str, value: str) -> None:
        with self._conn:
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        return self._meta(key)

    # ------------------------------------------------------------------ candidates
    def add_candidate(self, *, step: int, genome: Genome, parent: int | None, action: Action | None,
                      seed: int) -> int:
        return self.add_candidates([{"step": step, "genome": genome, "parent": parent, "action": action,
                                     "seed": seed}])[0]

    def add_candidates(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert several candidates in one transaction (a step's children appear all at once or not at all)."""
        now = time.time()
        ids = []
        with self._conn:
            for row in rows:
                genome: Genome = row["genome"]
                action = row.get("action")
                cur = self._conn.execute(
                    "INSERT INTO candidates (parent, step, action, genome, genome_key, resolution, g_params,"
                    " d_params, status, seed, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                    (row.get("parent"), row["step"],
                     None if action is None else json.dumps(action.to_dict(), sort_keys=True),
                     genome.to_json(indent=None), genome.key(), genome.resolution, genome.g_params(),
                     genome.d_params(), row.get("seed", 0), now, now))
                ids.append(int(cur.lastrowid))
        return ids

    def update(self, candidate: int, **fields: Any) -> None:
        self.update_many([candidate], **fields)

    def update_many(self, candidates: list[int], **fields: Any) -> None:
        """Set the same fields on several candidates, in one transaction."""
        allowed = {"status", "metric", "normalized_metric", "extra", "train_seconds", "eval_seconds", "checkpoint",
                   "error"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update ledger field(s) {sorted(bad)}")
        if "status" in fields:
            fields["status"] = Status(fields["status"]).value  # raises on an unknown status
        if "extra" in fields:
            fields["extra"] = json.dumps(fields["extra"], sort_keys=True)
        cols = ", ".join(f"{k} = ?" for k in fields)
        now = time.time()
        with self._conn:
            self._conn.executemany(f"UPDATE candidates SET {cols}, updated = ? WHERE id = ?",
                                   [(*fields.values(), now, cid) for cid in candidates])

    def candidates(self, step: int | None = None, status: Status | str | None = None) -> list[CandidateRow]:
        query = _SELECT
        clauses, args = [], []
        if step is not None:
            clauses.append("c.step = ?")
            args.append(step)
        if status is not None:
            clauses.append("c.status = ?")
            args.append(Status(status).value)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        rows = self._conn.execute(query + " ORDER BY c.id", args).fetchall()
        return [_row(r, self.path) for r in rows]

    def get(self, candidate: int) -> CandidateRow:
        row = self._conn.execute(_SELECT + " WHERE c.id = ?", (candidate,)).fetchone()
        if row is None:
            raise LedgerError(f"{self.path}: no candidate {candidate}")
        return _row(row, self.path)

    def max_id(self) -> int:
        return int(self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM candidates").fetchone()[0])

    def best_normalized(self) -> float | None:
        row = self._conn.execute("SELECT MIN(normalized_metric) FROM candidates WHERE status = 'done'").fetchone()
        return row[0]

    def max_step(self) -> int | None:
        row = self._conn.execute("SELECT MAX(step) FROM candidates").fetchone()
        return None if row[0] is None else int(row[0])

    # ------------------------------------------------------------------ selection
    def set_kept(self, step: int, ranked: Iterable[int]) -> None:
        """Record a step's top-K (best first) and that the selection was made, in one transaction."""
        with self._conn:
            self._conn.execute("DELETE FROM kept WHERE step = ?", (step,))
            self._conn.executemany("INSERT INTO kept (step, candidate, rank) VALUES (?, ?, ?)",
                                   [(step, cid, rank) for rank, cid in enumerate(ranked)])
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (f"selected:{step}",))

    def kept(self, step: int) -> list[int] | None:
        """The ranked ids kept at ``step``, or None when that selection has not been made yet."""
        rows = self._conn.execute("SELECT candidate FROM kept WHERE step = ? ORDER BY rank", (step,)).fetchall()
        if rows:
            return [int(r["candidate"]) for r in rows]
        made = self._meta(f"selected:{step}")
        return [] if made else None

    # ------------------------------------------------------------------ final training
    def set_final(self, *, candidate: int, status: Status | str, metric: float | None = None,
                  normalized_metric: float | None = None, extra: dict[str, Any] | None = None,
                  iterations: int | None = None, train_seconds: float | None = None,
                  checkpoint: str | None = None, error: str | None = None) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO final (id, candidate, status, metric, normalized_metric, extra, iterations,"
                " train_seconds, checkpoint, error, updated) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (candidate, Status(status).value, metric, normalized_metric, json.dumps(extra or {}), iterations,
                 train_seconds,
                 checkpoint, error, time.time()))

    def final(self) -> FinalRow | None:
        r = self._conn.execute("SELECT * FROM final WHERE id = 1").fetchone()
        if r is None:
            return None
        return FinalRow(candidate=r["candidate"], status=Status(r["status"]), metric=r["metric"],
                        normalized_metric=r["normalized_metric"], extra=json.loads(r["extra"] or "{}"),
                        iterations=r["iterations"], train_seconds=r["train_seconds"], checkpoint=r["checkpoint"],
                        error=r["error"])


def _row(r: sqlite3.Row, path: Path) -> CandidateRow:
    return CandidateRow(
        id=r["id"], parent=r["parent"], step=r["step"],
        action=None if r["action"] is None else Action.from_dict(json.loads(r["action"])),
        genome=Genome.from_json(r["genome"], source=f"{path} candidate {r['id']}"), resolution=r["resolution"],
        g_params=r["g_params"], d_params=r["d_params"], status=Status(r["status"]), metric=r["metric"],
        normalized_metric=r["normalized_metric"], extra=json.loads(r["extra"] or "{}"),
        train_seconds=r["train_seconds"], eval_seconds=r["eval_seconds"], checkpoint=r["checkpoint"],
        error=r["error"], seed=r["seed"], kept=bool(r["kept"]))
