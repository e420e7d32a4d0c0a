"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _readable(fd: int) -> None:
    """mkstemp makes 0600 files; give the result the mode a plain open() would (0666 less the umask)."""
    os.fchmod(fd, 0o666 & ~_umask())


def readable(path: str | Path) -> None:
    """``_readable`` for a file another library wrote."""
    os.chmod(path, 0o666 & ~_umask())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same folder, fsync, then rename: readers see old or new, never half."""
    path = Path(path)
    if path.is_dir():  # (a trailing slash names a folder too) say so, not a failure on our temp file's name
        raise IsADirectoryError(21, "is a folder; give a file name", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # the error names the file asked for, not the temp file beside it
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    try:
        _readable(fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def temp_path_for(path: str | Path) -> Path:
    """A fresh temp file name beside ``path`` (for libraries that write to a path themselves)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    _readable(fd)
    os.close(fd)
    return Path(tmp)


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one JSON line and flush it to disk (a crash loses at most the line being written)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


MAX_JSON_FILE = 16 * 2**20  # a genome or settings file is a few kB; anything this big is not one


class JSONFileError(ValueError):
    """A JSON input file that cannot be used; the message names the problem (the caller adds the file's role)."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JSONFileError(f"the key {key!r} appears twice (which one was meant?)")
        out[key] = value
    return out


def parse_json(text: str) -> Any:
    """JSON with the mistakes a hand-edited file makes refused: a key given twice, nesting too deep to be data."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise JSONFileError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise JSONFileError("nested too deeply to be a dggan file") from None


def read_json_file(path: str | Path, max_bytes: int = MAX_JSON_FILE) -> Any:
    """The parsed JSON of a small input file, refusing what would hang or exhaust memory before reading it: a named
    pipe or device (``/dev/zero``), a folder, a file larger than ``max_bytes``; and binary or malformed content.
    Raises ``JSONFileError`` (or ``OSError`` for a file that cannot be opened)."""
    path = Path(path)
    info = path.stat()  # FileNotFoundError / PermissionError: the caller's OSError branch
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe, socket or device)"
        raise JSONFileError(f"{kind}; give a JSON file")
    if info.st_size > max_bytes:
        raise JSONFileError(f"{info.st_size:,} bytes, far larger than any dggan file of this kind"
                            f" (at most {max_bytes:,}); is it the right file?")
    with path.open("rb") as f:  # read at most the limit, should the file grow meanwhile
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise JSONFileError(f"larger than {max_bytes:,} bytes; is it the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JSONFileError("binary, not UTF-8 JSON text") from None
    return parse_json(text)
