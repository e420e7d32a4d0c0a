"""A progress bar that still says something when nobody watches a terminal.

tqdm draws nothing when stderr is not a TTY (``nohup``, a batch system's log), so a search whose step runs for
hours would print nothing within it. ``progress_bar`` is a drop-in for the ``tqdm(...)`` the search uses: on a
terminal it is tqdm; otherwise a ``PlainProgress`` that writes one plain line per finished item (at most one
every ``min_interval`` seconds, the last always) and, while nothing finishes, a line every ``heartbeat`` seconds.
``detail`` (a callable) adds what moves inside an item to every line, e.g. iterations trained and the time left,
so a heartbeat says more than "0/1 done".
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from .durations import duration

HEARTBEAT_S = 30.0


class PlainProgress:
    """``update``/``set_postfix_str``/``close`` as tqdm has them, written as plain lines (to stderr)."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", *, initial: int = 0,
                 stream: IO[str] | None = None, heartbeat: float | None = HEARTBEAT_S, min_interval: float = 0.0,
                 clock: Any = time.monotonic, detail: Callable[[], str] | None = None, **_tqdm_only: Any):
        self.total, self.desc, self.unit = total, desc, unit
        self.detail = detail
        self.n = initial
        self.postfix = ""
        self._stream = stream
        self._clock = clock
        self._start = self._last = clock()
        self._min_interval = min_interval
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = None
        if heartbeat:
            self._thread = threading.Thread(target=self._beat, args=(heartbeat,), daemon=True,
                                            name="dggan-progress")
            self._thread.start()

    def line(self) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        extra = f", {self.postfix}" if self.postfix else ""
        inside = ""
        if self.detail is not None and (self.total is None or self.n < self.total):
            try:
                inside = self.detail()
            except Exception:  # a progress line must never stop the work it reports on
                inside = ""
        inside = f"; {inside}" if inside else ""
        return (f"{self.desc}: {self.n}{of} {self.unit} done{inside}{extra}"
                f" [{duration(self._clock() - self._start)}]")

    def _write(self) -> None:
        stream = self._stream or sys.stderr
        print(self.line(), file=stream, flush=True)
        self._last = self._clock()

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.n += n
            finished = self.total is not None and self.n >= self.total
            if finished or self._clock() - self._last >= self._min_interval:
                self._write()

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        """tqdm redraws here; a plain line waits for the next update or heartbeat."""

    def _beat(self, every: float) -> None:
        while not self._closed.wait(every):
            with self._lock:
                if self._clock() - self._last >= every * 0.99:
                    self._write()

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int | None = None, desc: str = "", unit: str = "it", disable: bool | None = None, *,
                 min_interval: float = 0.0, detail: Callable[[], str] | None = None, **kwargs: Any) -> Any:
    """tqdm on a terminal; ``PlainProgress`` when stderr is not one (and progress is wanted: ``disable`` not True).
    ``disable=None`` is tqdm's "only on a terminal", which this replaces with plain lines elsewhere.
    ``min_interval``: seconds between plain lines (0: one per update, right for candidates; a training loop
    that updates per iteration wants ~30). ``detail``: plain lines only (on a terminal the trainer's own bar shows
    its iterations)."""
    from tqdm.auto import tqdm

    if disable is True or sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, disable=disable, **kwargs)
    return PlainProgress(total=total, desc=desc, unit=unit, min_interval=min_interval, detail=detail, **kwargs)
