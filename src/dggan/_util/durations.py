"""One format for every duration dggan prints (the search's summary, the report, ``dggan status``), in a
module that imports nothing, so quick commands need not load the report's plotting."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """One format for every duration the tool prints: 42 s, 9.7 min, 3.2 h, 2.1 days."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
