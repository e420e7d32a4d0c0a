"""TensorBoard logs, written only when the optional ``tensorboard`` package is installed
(``pip install 'dggan[tb]'``); without it a ``Board`` does nothing, so nothing depends on it.

Logging is best effort: a writer that fails (a full disk, a broken tensorboard install) turns itself off
instead of failing the candidate or the search it watches.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'dggan[tb]'"
_previous_hook = threading.excepthook


def _quiet_writer_threads(args: Any) -> None:
    """tensorboard writes events from a thread of its own; an OSError there (the run folder deleted, a full disk)
    would print a traceback in the middle of a search. Logging is best effort: let it go quietly."""
    run = getattr(args.thread, "run", None)
    module = getattr(getattr(run, "__func__", run), "__module__", "") or ""
    if isinstance(args.exc_value, OSError) and module.startswith("tensorboard."):
        return
    _previous_hook(args)


def available() -> bool:
    """Whether TensorBoard logs can be written (the ``tensorboard`` package imports)."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except Exception:  # noqa: BLE001 (ImportError, or a tensorboard that does not match its protobuf)
        return False
    return True


class Board:
    """One TensorBoard run folder. ``purge_step``: events at or after this step from an earlier, interrupted
    writer of the same folder are hidden (a resumed candidate does not draw its lost iterations twice)."""

    def __init__(self, log_dir: str | Path | None, purge_step: int | None = None, flush_secs: int = 30):
        self._writer: Any = None
        if log_dir is None or not available():
            return
        from torch.utils.tensorboard import SummaryWriter

        if threading.excepthook is not _quiet_writer_threads:
            threading.excepthook = _quiet_writer_threads
        self._dir = Path(log_dir)
        try:
            self._writer = SummaryWriter(str(log_dir), purge_step=purge_step, flush_secs=flush_secs)
        except Exception:  # noqa: BLE001 (best effort, see the module's docstring)
            self._writer = None

    @property
    def active(self) -> bool:
        return self._writer is not None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self._writer is None:
            return
        if not self._dir.is_dir():  # the folder was deleted: writing on would only fail, in another thread
            self._writer = None
            return
        try:
            getattr(self._writer, method)(*args, **kwargs)
        except Exception:  # noqa: BLE001 (best effort, see the module's docstring)
            self._writer = None

    def scalars(self, values: Mapping[str, float | None], step: int, prefix: str = "") -> None:
        """Each finite value as the scalar ``prefix + name`` at ``step``."""
        for name, value in values.items():
            if value is not None and math.isfinite(value):
                self._call("add_scalar", prefix + name, float(value), step)

    def text(self, tag: str, text: str, step: int) -> None:
        self._call("add_text", tag, text, step)

    def images(self, tag: str, images: Any, step: int) -> None:
        """A batch of images in [-1, 1] (NCHW) as one grid, enlarged like ``samples.png``."""
        if self._writer is None:
            return
        import numpy as np

        from .images import grid_image

        array = np.asarray(grid_image(images))
        self._call("add_image", tag, array, step, dataformats="HW" if array.ndim == 2 else "HWC")

    def flush(self) -> None:
        self._call("flush")

    def close(self) -> None:
        self._call("close")
        self._writer = None

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
