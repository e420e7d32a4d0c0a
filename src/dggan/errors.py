"""One base class for every error a user can fix (bad settings, files, data, genomes).

The CLI catches ``DgganError`` in one place and prints ``error: <message>`` with exit status 2; anything
else is a bug and keeps its traceback. Each subclass also derives from the builtin it has always been
(``ValueError`` or ``RuntimeError``) so ``except ValueError`` in user code keeps working.
"""

from __future__ import annotations


class DgganError(Exception):
    """A problem the user can fix; the message names it and the fix."""


class ConfigError(DgganError, ValueError):
    """A setting is out of range or of the wrong type; the message names it and the allowed values."""


class GenomeError(DgganError, ValueError):
    """A genome (or its JSON) is malformed; the message names the field and the fix."""


class InvalidActionError(DgganError, ValueError):
    """An action cannot be applied to a genome (or is malformed); the message says why."""


class CheckpointError(DgganError, ValueError):
    """A checkpoint is missing, truncated, or inconsistent with its genome; the message names the file."""


class DatasetError(DgganError, ValueError):
    """A dataset could not be read or cannot serve the request; the message names the file and the fix."""


class MetricError(DgganError, ValueError):
    """A metric cannot be computed as asked; the message says why and what to change."""


class LedgerError(DgganError, RuntimeError):
    """The ledger file is missing, from another schema, or not a ledger at all."""


class SearchError(DgganError, RuntimeError):
    """The search cannot start or continue; the message names the problem and the fix."""


class ReportError(DgganError, RuntimeError):
    """The report cannot be built (no run folder, no ledger, unreadable ledger); the message says the fix."""
