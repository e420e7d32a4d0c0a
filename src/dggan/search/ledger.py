"""The search ledger: every candidate, every rung score and every selection, in one SQLite file.

The driver is the only writer. Each write is its own transaction, so a crash (even ``kill -9``) leaves
the ledger as it was after the last completed write; resume reads everything back from here.

Schema version 2 (this release) adds, per candidate, its own training budget (``iterations``) and the
cumulative iterations along its route (``route_iterations``: its ancestors' plus its own, what equal-
training normalisation compares), the ``pruned`` status and the ``rungs`` table of successive halving.
A version-1 ledger is read as it is (``dggan ls``, ``dggan report``) and migrated in place, after a copy
to ``ledger.sqlite.v1``, when a search resumes it.

The ``heartbeats`` table (created on first use, so any version-2 ledger takes it without a migration) holds
one row per search session, rewritten by its heartbeat (``Heartbeat``, ``note_session``): a session ended by
``kill -9`` still counts up to its last beat in ``session_seconds``. It is the one record of a run's sessions: the
driver sets a session's ``completed`` (a column added on first use to a table made before it) when the session
ran to its end. Runs made before that listed their completed sessions in the ``sessions`` meta key, still read.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._util.files import readable
from .._util.plugins import import_plugins
from ..errors import ConfigError, InvalidActionError, LedgerError
from ..execution.state import STATUSES, Status
from ..model.actions import Action
from ..model.genome import Genome

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)



_CANDIDATES = """
CREATE TABLE {name} (
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
    iterations INTEGER,
    route_iterations INTEGER,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
""".replace("{statuses}", ", ".join(f"'{s}'" for s in STATUSES))

_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""" + _CANDIDATES.replace("{name}", "candidates") + """
CREATE INDEX candidates_step ON candidates(step);
CREATE TABLE kept (
    step INTEGER NOT NULL,
    candidate INTEGER NOT NULL REFERENCES candidates(id),
    rank INTEGER NOT NULL,
    PRIMARY KEY (step, candidate)
);
CREATE TABLE final (
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
""" + """
CREATE TABLE rungs (
    candidate INTEGER NOT NULL REFERENCES candidates(id),
    rung INTEGER NOT NULL,
    iterations INTEGER NOT NULL,
    route_iterations INTEGER,
    metric REAL,
    normalized_metric REAL,
    extra TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (candidate, rung)
);
"""

_HEARTBEATS = """
CREATE TABLE IF NOT EXISTS heartbeats (
    session TEXT PRIMARY KEY,
    started REAL NOT NULL,
    last_seen REAL NOT NULL,
    ended INTEGER NOT NULL DEFAULT 0,
    device TEXT,
    threads INTEGER,
    completed INTEGER NOT NULL DEFAULT 0
);
"""

# Added lazily by the first final pick or snapshot (a schema-2 ledger without it reads as having none).
_FINAL_SCORES = """
CREATE TABLE IF NOT EXISTS final_scores (
    kind TEXT NOT NULL,
    candidate INTEGER NOT NULL REFERENCES candidates(id),
    idx INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    iterations INTEGER NOT NULL,
    route_iterations INTEGER,
    metric REAL,
    normalized_metric REAL,
    extra TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (kind, candidate, idx)
);
"""

_SELECT = "SELECT c.*, EXISTS (SELECT 1 FROM kept k WHERE k.candidate = c.id) AS kept FROM candidates c"
_UPDATABLE = frozenset({"status", "metric", "normalized_metric", "extra", "train_seconds", "eval_seconds", "checkpoint",
                        "error", "iterations", "route_iterations"})


DAMAGED_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB


def is_damage(exc: sqlite3.Error) -> bool:
    """A damaged file (a page overwritten, not a database), as opposed to a full disk or a busy lock."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in DAMAGED_CODES
    return type(exc) is sqlite3.DatabaseError or "malformed" in str(exc) or "not a database" in str(exc)


def damaged(path: Path, exc: sqlite3.Error) -> LedgerError:
    return LedgerError(f"{path}: the ledger is damaged ({exc}); restore it from a backup (the candidates' folders"
                       " still hold their checkpoints)")


class _GuardedCursor(sqlite3.Cursor):
    """A cursor whose damage errors, wherever a query meets a bad page (its first step or a later fetch), are
    one LedgerError naming the file, not a traceback."""

    def _guard(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except sqlite3.Error as exc:
            if is_damage(exc):
                raise damaged(self.connection.path, exc) from None  # type: ignore[attr-defined]
            raise

    def execute(self, *args: Any) -> Any:  # type: ignore[override]
        return self._guard(super().execute, *args)

    def executemany(self, *args: Any) -> Any:  # type: ignore[override]
        return self._guard(super().executemany, *args)

    def fetchone(self) -> Any:
        return self._guard(super().fetchone)

    def fetchmany(self, *args: Any) -> Any:
        return self._guard(super().fetchmany, *args)

    def fetchall(self) -> Any:
        return self._guard(super().fetchall)

    def __next__(self) -> Any:
        return self._guard(super().__next__)


class _GuardedConnection(sqlite3.Connection):
    """``Connection.execute`` steps its query in C, past the cursor's own methods: guard it here too."""

    path: Path

    def _guard(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except sqlite3.Error as exc:
            if is_damage(exc):
                raise damaged(self.path, exc) from None
            raise

    def cursor(self, factory: Any = _GuardedCursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)

    def execute(self, *args: Any) -> Any:  # type: ignore[override]
        return self._guard(super().execute, *args)

    def executemany(self, *args: Any) -> Any:  # type: ignore[override]
        return self._guard(super().executemany, *args)

    def executescript(self, *args: Any) -> Any:  # type: ignore[override]
        return self._guard(super().executescript, *args)


# meta key: what the executor said last while candidates waited (SLURM's pending reason), JSON {message, at}.
WAITING_KEY = "executor_waiting"


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
    iterations: int | None = None  # its own budget (None in a version-1 ledger)
    route_iterations: int | None = None  # its ancestors' iterations plus its own
    updated: float | None = None  # when the row last changed (e.g. was handed to an executor), unix time

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``dggan ls --json``."""
        return {
            "id": self.id, "parent": self.parent, "step": self.step,
            "action": None if self.action is None else self.action.to_dict(),
            "resolution": self.resolution, "g_params": self.g_params, "d_params": self.d_params,
            "status": self.status.value, "metric": self.metric, "normalized_metric": self.normalized_metric,
            "kept": self.kept, "iterations": self.iterations, "route_iterations": self.route_iterations,
            "train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds,
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


@dataclass(frozen=True)
class FinalScore:
    """A score of the final pick or training: ``kind`` "pick" (``index``: the selection seed's index) or "point"
    (``index``: the point of the final training; ``iterations``: the model's own iteration there)."""

    kind: str
    candidate: int
    index: int
    seed: int
    iterations: int
    route_iterations: int | None
    metric: float | None
    normalized_metric: float | None
    extra: dict[str, Any]


@dataclass(frozen=True)
class RungRow:
    """A candidate's score at one rung of successive halving."""

    candidate: int
    rung: int
    iterations: int
    route_iterations: int | None
    metric: float | None
    normalized_metric: float | None
    extra: dict[str, Any]


@dataclass(frozen=True)
class SessionRow:
    """One search session: from its start to its last heartbeat (or its recorded end)."""

    session: str
    started: float
    last_seen: float
    ended: bool  # it closed cleanly; False for a running session or one that was killed
    device: str | None = None  # "cpu" | "cuda" where the session trained
    threads: int | None = None  # torch CPU threads per candidate, where known
    completed: bool = False  # it ran to its end (the driver said so); False for one that raised or was killed

    @property
    def seconds(self) -> float:
        return max(0.0, self.last_seen - self.started)


class Ledger:
    def __init__(self, path: str | Path, conn: sqlite3.Connection, version: int = SCHEMA_VERSION):
        self.path = Path(path)
        self._conn = conn
        self.version = version
        self._heartbeats_ready = False

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
            conn.executescript(_TABLES)
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION)),
                ("settings", json.dumps(settings, sort_keys=True)),
                ("created", str(time.time())),
            ])
        conn.close()
        readable(tmp)  # sqlite makes its files 0644 whatever the umask; follow it as every other file does
        os.replace(tmp, path)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path, readonly: bool = False) -> Ledger:
        """Open a ledger. A writable open migrates a version-1 ledger to version 2 in place (after a copy);
        a read-only one reads it as it is."""
        path = Path(path)
        if not path.is_file():
            raise LedgerError(f"{path}: no ledger here (is this a dggan run folder?)")
        version = cls._version(path)
        if version < SCHEMA_VERSION and not readonly:
            migrate(path)  # copies the file first, then rewrites it in one transaction
            version = SCHEMA_VERSION
        try:
            conn = cls._connect(path, readonly=readonly)
        except sqlite3.Error as exc:  # e.g. a read-only folder, where the write-ahead log cannot be made
            raise LedgerError(f"{path}: cannot open the ledger for writing ({exc}); check the folder's"
                              " permissions and free space") from None
        ledger = cls(path, conn, version)
        ledger._import_plugins()
        return ledger

    def _import_plugins(self) -> None:
        """The run's ``plugins``, imported so that its rows read back (a growth action a plugin registered).
        One that cannot be imported here is said where it matters (a row naming its action), not at open: a view
        of a run whose loss plugin is elsewhere still works."""
        with suppress(ConfigError, sqlite3.Error, LedgerError, json.JSONDecodeError):
            import_plugins(self.settings().get("plugins") or (), f"{self.path}: plugins")

    @classmethod
    def _version(cls, path: Path) -> int:
        """The schema version, read without writing anything; LedgerError for anything that is not a ledger."""
        conn: sqlite3.Connection | None = None
        try:
            conn = cls._connect(path, readonly=True)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except (sqlite3.Error, LedgerError) as exc:  # random bytes, a truncated file
            exc = exc.__context__ if isinstance(exc, LedgerError) and exc.__context__ else exc
            raise LedgerError(f"{path}: not a dggan ledger, or a damaged one ({exc}); if the file was damaged,"
                              " restore it from a backup (the candidates' folders still hold their checkpoints)"
                              ) from None
        finally:
            if conn is not None:
                conn.close()
        try:
            version = int(row["value"]) if row is not None else None
        except (TypeError, ValueError):
            version = None
        if version not in READABLE_VERSIONS:
            found = None if row is None else row["value"]
            raise LedgerError(f"{path}: ledger schema version {found} is not supported (this dggan reads"
                              f" versions {', '.join(map(str, READABLE_VERSIONS))}); use the dggan release that"
                              " wrote it")
        return version

    @staticmethod
    def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, factory=_GuardedConnection)
            wal = path.parent / f"{path.name}-wal"
            if not os.access(path.parent, os.W_OK) and (not wal.exists() or wal.stat().st_size == 0):
                # A cleanly closed ledger on a read-only filesystem: WAL mode would need to make its -shm file
                # there, so read the file as it is (nothing can be writing it, and no log is left to fold in).
                conn.close()
                conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, timeout=30,
                                       factory=_GuardedConnection)
        else:
            conn = sqlite3.connect(str(path), timeout=30, factory=_GuardedConnection)
            conn.execute("PRAGMA journal_mode=WAL")  # readers (ls, report, status) never block the driver
            conn.execute("PRAGMA synchronous=FULL")
        conn.path = path  # type: ignore[attr-defined]
        conn.execute("PRAGMA foreign_keys=ON")
        conn.row_factory = sqlite3.Row
        return conn

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction; a failed write (a full disk, a read-only file) is a LedgerError that
        says so, and the ledger stays as it was before the transaction."""
        try:
            with self._conn:
                yield
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot write the ledger ({exc}); free disk space or fix the"
                              " folder's permissions, then resume: nothing already recorded is lost") from None

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
        with self._writing():
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        return self._meta(key)

    def meta(self) -> dict[str, str]:
        """Every meta key and its value, in one read (what ``search.view.RunView`` holds)."""
        return {r["key"]: r["value"] for r in self._conn.execute("SELECT key, value FROM meta")}

    # ------------------------------------------------------------------ sessions (wall time over every session)
    def note_session(self, session: str, started: float, last_seen: float, *, ended: bool = False,
                     device: str | None = None, threads: int | None = None, completed: bool = False) -> None:
        """Record that ``session`` (started at ``started``, unix time) was alive at ``last_seen``; called
        periodically (``Heartbeat``), so a session that is killed keeps its time up to its last beat.
        ``completed``: the session ran to its end (the driver says so once, after its last step)."""
        with self._writing():
            self._heartbeats_table()
            self._conn.execute(
                "INSERT INTO heartbeats (session, started, last_seen, ended, device, threads, completed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(session) DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen),"
                " ended = MAX(ended, excluded.ended), device = COALESCE(excluded.device, device),"
                " threads = COALESCE(excluded.threads, threads), completed = MAX(completed, excluded.completed)",
                (session, started, last_seen, int(ended), device, threads, int(completed)))

    def _heartbeats_table(self) -> None:
        """The heartbeats table, made on first use; one made before ``completed`` existed gets the column."""
        if self._heartbeats_ready:
            return
        self._conn.execute(_HEARTBEATS)
        columns = {r["name"] for r in self._conn.execute("PRAGMA table_info(heartbeats)")}
        if "completed" not in columns:
            self._conn.execute("ALTER TABLE heartbeats ADD COLUMN completed INTEGER NOT NULL DEFAULT 0")
        self._heartbeats_ready = True

    def sessions(self) -> list[SessionRow]:
        """Every session, oldest first: the heartbeats' rows (``completed`` when the session ran to its end; a
        table from before that column reads as not completed). A run made before sessions were recorded once also
        lists its completed sessions in the ``sessions`` meta key: those are read too, and a listed session whose
        time span overlaps a heartbeat session is that session (a run's sessions never overlap: the run lock)."""
        beats: list[SessionRow] = []
        exists = self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'heartbeats'")
        if exists.fetchone() is not None:
            cursor = self._conn.execute("SELECT * FROM heartbeats ORDER BY started")
            has_completed = "completed" in {d[0] for d in cursor.description}  # not in a table made before it
            for r in cursor:
                completed = bool(r["completed"]) if has_completed else False
                beats.append(SessionRow(r["session"], r["started"], r["last_seen"], bool(r["ended"]), r["device"],
                                        r["threads"], completed))
        try:
            listed = json.loads(self._meta("sessions") or "[]")
        except json.JSONDecodeError:
            listed = []
        if not isinstance(listed, list) or not listed:  # a run made since: the heartbeats are the whole record
            return beats
        out = list(beats)
        for i, entry in enumerate(listed):
            end = float(entry.get("ended") or 0.0)
            start = end - float(entry.get("wall_seconds") or 0.0)
            j = next((j for j, b in enumerate(out[:len(beats)]) if b.started <= end and start <= b.last_seen), None)
            if j is None:
                out.append(SessionRow(f"meta:{i}", start, end, True, completed=True))
                continue
            same = out[j]
            if end - start > same.seconds:  # the driver's own clock ran to the very end
                same = replace(same, started=min(same.started, start), last_seen=max(same.last_seen, end), ended=True)
            out[j] = replace(same, completed=True)
        return sorted(out, key=lambda r: r.started)

    def session_seconds(self) -> float:
        """Wall seconds of every session of this run, a killed one up to its last heartbeat."""
        return sum(s.seconds for s in self.sessions())

    # ------------------------------------------------------------------ candidates
    def add_candidate(self, *, step: int, genome: Genome, parent: int | None, action: Action | None,
                      seed: int, iterations: int | None = None, route_iterations: int | None = None) -> int:
        return self.add_candidates([{"step": step, "genome": genome, "parent": parent, "action": action,
                                     "seed": seed, "iterations": iterations,
                                     "route_iterations": route_iterations}])[0]

    def add_candidates(self, rows: list[dict[str, Any]], _then: dict[str, Any] | None = None) -> list[int]:
        """Insert several candidates in one transaction (a step's children appear all at once or not at all);
        ``_then``: fields set on them in the same transaction (``add_finished``)."""
        now = time.time()
        ids = []
        sql, values = self._update_sql(_then or {})
        with self._writing():
            for row in rows:
                genome: Genome = row["genome"]
                action = row.get("action")
                cur = self._conn.execute(
                    "INSERT INTO candidates (parent, step, action, genome, genome_key, resolution, g_params,"
                    " d_params, status, seed, iterations, route_iterations, created, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                    (row.get("parent"), row["step"],
                     None if action is None else json.dumps(action.to_dict(), sort_keys=True),
                     genome.to_json(indent=None), genome.key(), genome.resolution, genome.g_params(),
                     genome.d_params(), row.get("seed", 0), row.get("iterations"), row.get("route_iterations"),
                     now, now))
                ids.append(int(cur.lastrowid))
            if _then:
                self._conn.executemany(sql, [(*values, now, cid) for cid in ids])
        return ids

    def add_finished(self, row: dict[str, Any], **fields: Any) -> int:
        """Insert a candidate that was trained elsewhere (e.g. the baseline's model, reused) together with its
        result ``fields``, in one transaction: a crash never leaves it pending, to be trained again."""
        (cid,) = self.add_candidates([row], _then=fields)
        return cid

    def update(self, candidate: int, **fields: Any) -> None:
        self.update_many([candidate], **fields)

    def update_many(self, candidates: list[int], **fields: Any) -> None:
        """Set the same fields on several candidates, in one transaction."""
        sql, values = self._update_sql(fields)
        now = time.time()
        with self._writing():
            self._conn.executemany(sql, [(*values, now, cid) for cid in candidates])

    @staticmethod
    def _update_sql(fields: dict[str, Any]) -> tuple[str, list[Any]]:
        """The UPDATE of ``fields`` (its parameters: their values, then ``updated`` and the id)."""
        bad = set(fields) - _UPDATABLE
        if bad:
            raise ValueError(f"cannot update ledger field(s) {sorted(bad)}")
        fields = dict(fields)
        if "status" in fields:
            fields["status"] = Status(fields["status"]).value  # raises on an unknown status
        if "extra" in fields:
            fields["extra"] = json.dumps(fields["extra"], sort_keys=True)
        cols = ", ".join(f"{k} = ?" for k in fields)
        return f"UPDATE candidates SET {cols}, updated = ? WHERE id = ?", list(fields.values())

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
        return int(self._conn.execute("SELECT COALESCE(MAX(id), 0) AS m FROM candidates").fetchone()["m"])

    # ------------------------------------------------------------------ rungs (successive halving)
    def add_rung(self, *, candidate: int, rung: int, iterations: int, route_iterations: int | None,
                 metric: float | None, normalized_metric: float | None, extra: dict[str, Any] | None = None) -> None:
        """Record a candidate's score at a rung (idempotent: a re-scored rung replaces the old score)."""
        with self._writing():
            self._conn.execute(
                "INSERT OR REPLACE INTO rungs (candidate, rung, iterations, route_iterations, metric,"
                " normalized_metric, extra, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (candidate, rung, iterations, route_iterations, metric, normalized_metric,
                 json.dumps(extra or {}, sort_keys=True), time.time()))

    def prune(self, step: int, rung: int, pruned: dict[int, tuple[int, int | None]]) -> None:
        """Record the verdict of ``rung`` at ``step``: ``pruned`` maps candidate -> (iterations it trained, route
        iterations); the verdict is stored with the statuses, in one transaction, so it is made once."""
        now = time.time()
        with self._writing():
            self._conn.executemany("UPDATE candidates SET status = 'pruned', iterations = ?, route_iterations = ?,"
                                   " updated = ? WHERE id = ?",
                                   [(its, route, now, cid) for cid, (its, route) in pruned.items()])
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                               (f"halving:{step}:{rung}", json.dumps(sorted(pruned))))

    def pruned_at(self, step: int, rung: int) -> list[int] | None:
        """The candidates the verdict of ``rung`` at ``step`` pruned, or None when it has not been made."""
        value = self._meta(f"halving:{step}:{rung}")
        return None if value is None else json.loads(value)

    def rungs(self, candidate: int | None = None) -> list[RungRow]:
        if self.version < 2:
            return []
        query, args = "SELECT * FROM rungs", []
        if candidate is not None:
            query += " WHERE candidate = ?"
            args.append(candidate)
        rows = self._conn.execute(query + " ORDER BY candidate, rung", args).fetchall()
        return [RungRow(r["candidate"], r["rung"], r["iterations"], r["route_iterations"], r["metric"],
                        r["normalized_metric"], json.loads(r["extra"] or "{}")) for r in rows]

    # ------------------------------------------------------------------ selection
    def set_kept(self, step: int, ranked: Iterable[int]) -> None:
        """Record a step's top-K (best first) and that the selection was made, in one transaction."""
        with self._writing():
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

    # ------------------------------------------------------------------ final pick and snapshots
    def add_final_score(self, score: FinalScore) -> None:
        """Record a score of the final pick or training (idempotent: a re-scored one replaces the old)."""
        with self._writing():
            self._conn.execute(_FINAL_SCORES)
            self._conn.execute(
                "INSERT OR REPLACE INTO final_scores (kind, candidate, idx, seed, iterations, route_iterations,"
                " metric, normalized_metric, extra, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (score.kind, score.candidate, score.index, score.seed, score.iterations, score.route_iterations,
                 score.metric, score.normalized_metric, json.dumps(score.extra, sort_keys=True), time.time()))

    def final_scores(self, kind: str | None = None) -> list[FinalScore]:
        """The recorded scores of the final pick and training (``kind``: only those), in order."""
        if not self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'final_scores'"
                                  ).fetchone():
            return []
        query, args = "SELECT * FROM final_scores", []
        if kind is not None:
            query += " WHERE kind = ?"
            args.append(kind)
        rows = self._conn.execute(query + " ORDER BY kind, idx, candidate", args).fetchall()
        return [FinalScore(r["kind"], r["candidate"], r["idx"], r["seed"], r["iterations"], r["route_iterations"],
                           r["metric"], r["normalized_metric"], json.loads(r["extra"] or "{}")) for r in rows]

    # ------------------------------------------------------------------ final training
    def set_final(self, *, candidate: int, status: Status | str, metric: float | None = None,
                  normalized_metric: float | None = None, extra: dict[str, Any] | None = None,
                  iterations: int | None = None, train_seconds: float | None = None,
                  checkpoint: str | None = None, error: str | None = None) -> None:
        with self._writing():
            self._conn.execute(
                "INSERT OR REPLACE INTO final (id, candidate, status, metric, normalized_metric, extra, iterations,"
                " train_seconds, checkpoint, error, updated) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (candidate, Status(status).value, metric, normalized_metric, json.dumps(extra or {}), iterations,
                 train_seconds, checkpoint, error, time.time()))

    def final(self) -> FinalRow | None:
        r = self._conn.execute("SELECT * FROM final WHERE id = 1").fetchone()
        if r is None:
            return None
        return FinalRow(candidate=r["candidate"], status=Status(r["status"]), metric=r["metric"],
                        normalized_metric=r["normalized_metric"], extra=json.loads(r["extra"] or "{}"),
                        iterations=r["iterations"], train_seconds=r["train_seconds"], checkpoint=r["checkpoint"],
                        error=r["error"])


class Heartbeat:
    """``with Heartbeat(ledger_path, device=..., threads=...):`` around a search session records it in the
    ledger at the start, then after 1 s, every half of the time so far up to every ``every`` seconds, and at a
    clean exit (``Ledger.note_session``), from a thread with its own connection, so a session killed with
    ``kill -9`` loses at most a third of its time and at most ``every`` seconds. A failed beat (a full disk) is
    skipped: the clock must never stop the search."""

    def __init__(self, path: str | Path, *, every: float = 30.0, device: str | None = None,
                 threads: int | None = None, session: str | None = None, clock: Any = time.time):
        self.path = Path(path)
        self.every = every
        self.device, self.threads = device, threads
        self.session = session or uuid.uuid4().hex[:12]
        self.clock = clock
        self.started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        self.started = self.clock()
        with suppress(LedgerError):
            self._beat(Ledger.open(self.path), close=True)  # the session is on record before any work
        self._thread = threading.Thread(target=self._run, name="dggan-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with suppress(LedgerError):
            self._beat(Ledger.open(self.path), close=True, ended=True)

    def _run(self) -> None:
        try:
            ledger = Ledger.open(self.path)
        except LedgerError:
            return
        try:
            while not self._stop.wait(self._next_wait()):
                self._beat(ledger)
        finally:
            ledger.close()

    def _next_wait(self) -> float:
        """Beats come quickly at first (after 1 s, then every third of the time so far) and every ``every``
        seconds later on: a session killed early loses a third of its time at most, not all of it."""
        return min(self.every, max(1.0, (self.clock() - self.started) / 2))

    def _beat(self, ledger: Ledger, close: bool = False, ended: bool = False) -> None:
        try:
            ledger.note_session(self.session, self.started, self.clock(), ended=ended, device=self.device,
                                threads=self.threads)
        except LedgerError:
            pass
        finally:
            if close:
                ledger.close()


def _row(r: sqlite3.Row, path: Path) -> CandidateRow:
    keys = r.keys()
    try:
        return CandidateRow(
            id=r["id"], parent=r["parent"], step=r["step"],
            action=None if r["action"] is None else Action.from_dict(json.loads(r["action"])),
            genome=Genome.from_json(r["genome"], source=f"{path} candidate {r['id']}"), resolution=r["resolution"],
            g_params=r["g_params"], d_params=r["d_params"], status=Status(r["status"]), metric=r["metric"],
            normalized_metric=r["normalized_metric"], extra=json.loads(r["extra"] or "{}"),
            train_seconds=r["train_seconds"], eval_seconds=r["eval_seconds"], checkpoint=r["checkpoint"],
            error=r["error"], seed=r["seed"], kept=bool(r["kept"]),
            iterations=r["iterations"] if "iterations" in keys else None,
            route_iterations=r["route_iterations"] if "route_iterations" in keys else None,
            updated=r["updated"] if "updated" in keys else None)
    except InvalidActionError as exc:
        if "unknown action kind" not in str(exc):
            raise LedgerError(f"{path}: candidate {r['id']} is unreadable ({exc}); the ledger was edited or"
                              " damaged: restore it from a backup") from None
        raise LedgerError(f"{path}: candidate {r['id']} took a growth action that no imported module registers"
                          f" ({exc}); a plugin of this run registers it: put the modules of its `plugins` setting on"
                          " PYTHONPATH") from None
    except (ValueError, TypeError) as exc:  # a broken genome, action or JSON in one row
        raise LedgerError(f"{path}: candidate {r['id']} is unreadable ({exc}); the ledger was edited or"
                          " damaged: restore it from a backup") from None


# ---------------------------------------------------------------------- migration
def migrate(path: Path) -> None:
    """Version 1 -> 2, in place and in one transaction, after copying the file to ``ledger.sqlite.v1``.

    Adds ``iterations`` and ``route_iterations`` (filled from the run's settings: the initial budget for
    step 0, ``iterations`` per step after it), the ``pruned`` status and the ``rungs`` table.
    """
    backup = path.with_name(path.name + ".v1")
    if not backup.exists():
        shutil.copy2(path, backup)
    # Manual transactions (isolation_level=None): sqlite3 would otherwise commit each DDL statement alone.
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys=OFF")  # the table swap below briefly breaks the references
    try:
        conn.execute("BEGIN IMMEDIATE")
        settings = json.loads((conn.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
                               or {"value": "{}"})["value"])
        per_step = int(settings.get("iterations") or 0) or None
        first = int(settings.get("initial_iterations") or 0) or per_step
        conn.execute(_CANDIDATES.replace("{name}", "candidates_v2"))
        conn.execute("INSERT INTO candidates_v2 (id, parent, step, action, genome, genome_key, resolution,"
                     " g_params, d_params, status, metric, normalized_metric, extra, train_seconds,"
                     " eval_seconds, checkpoint, error, seed, created, updated) SELECT id, parent, step, action,"
                     " genome, genome_key, resolution, g_params, d_params, status, metric, normalized_metric,"
                     " extra, train_seconds, eval_seconds, checkpoint, error, seed, created, updated"
                     " FROM candidates")
        conn.execute("DROP TABLE candidates")
        conn.execute("ALTER TABLE candidates_v2 RENAME TO candidates")
        conn.execute("CREATE INDEX IF NOT EXISTS candidates_step ON candidates(step)")
        conn.execute(_TABLES[_TABLES.index("CREATE TABLE rungs"):])
        if per_step is not None:
            route: dict[int, int] = {}
            for row in conn.execute("SELECT id, parent FROM candidates ORDER BY id").fetchall():
                own = first if row["parent"] is None else per_step
                total = own + (route.get(row["parent"], 0) if row["parent"] is not None else 0)
                route[row["id"]] = total
                conn.execute("UPDATE candidates SET iterations = ?, route_iterations = ? WHERE id = ?",
                             (own, total, row["id"]))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.close()
