"""A candidate's state, on its own so that the pure rules (``algorithm``) and the ledger both read it
(Optuna keeps ``TrialState`` apart from its storage the same way)."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """A candidate's state. ``done``, ``diverged``, ``failed`` and ``pruned`` are final; only ``done`` can
    be kept."""

    PENDING = "pending"  # sampled, not trained yet (or waiting to be retried after an interruption)
    RUNNING = "running"  # handed to an executor
    DONE = "done"  # trained for its whole budget and scored
    DIVERGED = "diverged"  # NaN/Inf losses or an exploding critic: an outcome of the architecture
    FAILED = "failed"  # could not be trained (e.g. a shape that cannot be built)
    PRUNED = "pruned"  # stopped at a rung of successive halving; its rung scores are kept

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def finished(self) -> bool:
        return self in (Status.DONE, Status.DIVERGED, Status.FAILED, Status.PRUNED)


STATUSES = tuple(s.value for s in Status)

__all__ = ["STATUSES", "Status"]
