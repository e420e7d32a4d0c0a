"""Typed settings: the one place that checks and converts values against a dataclass's field types.

``TrainConfig`` and ``SearchConfig`` are frozen dataclasses. ``coerce`` turns values from JSON files and
``--set KEY=VALUE`` into each field's type (``--set lr=1`` is a float, ``--set data=123`` a string) and
``normalize_fields`` rejects what cannot be converted, naming the field, before any range check runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from functools import cache
from typing import Any, Union

from ..errors import ConfigError

# Integers must fit what SQLite (the ledger) and C longs (numpy, torch) hold: a larger one would be accepted
# here and fail later with OverflowError, after a run folder exists.
INT_LIMIT = 2**63
# The most samples a metric may ask for: 100x the paper's 50k, far beyond any use, far below an overflow.
class _Bad(ValueError):
    """A value of the right kind that is still not acceptable; its text says why (joined to the error)."""


@cache
def field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass's fields (string annotations evaluated once)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _options(tp: Any) -> tuple[Any, ...]:
    """The members of a union (``int | None`` -> (int, NoneType)), or the type itself."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def type_name(tp: Any) -> str:
    names = []
    for option in _options(tp):
        if option is type(None):
            names.append("null")
        elif typing.get_origin(option) is tuple:
            item = typing.get_args(option)[0]
            plural = {int: "integers", float: "numbers", str: "strings"}.get(item, type_name(item))
            example = {int: " (e.g. [8, 16], 8,16 or 8)", float: " (e.g. [0.5, 1] or 0.5)"}.get(item, "")
            names.append(f"a list of {plural}{example}")
        elif option is dict or typing.get_origin(option) is dict:
            names.append("a JSON object")
        elif option is float:
            names.append("a number")
        elif option is int:
            names.append("an integer")
        elif option is bool:
            names.append("true/false")
        elif option is str:
            names.append("a string")
        else:
            names.append(getattr(option, "__name__", str(option)))
    return " or ".join(names)


def _convert(value: Any, tp: Any) -> Any:
    """``value`` as ``tp``; raises ValueError when it is not one."""
    if tp is Any:
        return value
    if value is None:
        if type(None) in _options(tp):
            return None
        raise ValueError
    reason = None
    for option in _options(tp):
        if option is type(None):
            continue
        try:
            return _convert_one(value, option)
        except _Bad as exc:
            reason = exc
        except (ValueError, TypeError):
            continue
    raise reason or ValueError()


def _why(exc: Exception) -> str:
    return f" ({exc})" if isinstance(exc, _Bad) else ""


def _convert_one(value: Any, tp: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError
    if tp is int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            number = int(value.strip())
        else:
            raise ValueError
        if abs(number) >= INT_LIMIT:
            raise _Bad("integers must lie within ±2**63, what the ledger and C longs hold")
        return number
    if tp is float:
        if isinstance(value, bool):
            raise ValueError
        number = float(value) if isinstance(value, (int, float, str)) else None
        if number is None or not math.isfinite(number):
            raise ValueError
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return json.dumps(value)  # --set data=123: the user meant the text
        raise ValueError
    if tp is dict or typing.get_origin(tp) is dict:
        if isinstance(value, str):
            value = json.loads(value)  # --set 'slurm_extra={"account": "lab"}' (a JSONDecodeError is a ValueError)
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError
        return value
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        if isinstance(value, str):
            # A list of text (slurm_setup) takes a plain string as ONE item: "module load x" is one shell line,
            # never three. Lists of numbers accept "3,5" or "3 5".
            value = [value] if item is str else [part for part in value.replace(",", " ").split() if part]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]  # --set initial_channels=8 (JSON 8): a list of one
        if not isinstance(value, (list, tuple)):
            raise ValueError
        return tuple(_convert_one(v, item) for v in value)
    raise ValueError


def coerce(cls: type, data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` with every known field converted to its type; unknown keys and bad values raise ConfigError."""
    types_ = field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {unknown}; known settings: {sorted(types_)}")
    out = {}
    for key, value in data.items():
        try:
            out[key] = _convert(value, types_[key])
        except (ValueError, TypeError) as exc:
            shown = json.dumps(value) if not isinstance(value, str) else repr(value)
            raise ConfigError(f"{source}: {key} must be {type_name(types_[key])}, got {shown}{_why(exc)}") from None
    return out


def normalize_fields(obj: Any, source: str) -> None:
    """Convert every field of a frozen dataclass to its declared type in place (``lr=1`` -> 1.0,
    ``kernels=[3]`` -> (3,)); raise ConfigError naming the first field that cannot be (or is not finite)."""
    for key, tp in field_types(type(obj)).items():
        value = getattr(obj, key)
        try:
            converted = _convert(value, tp)
        except (ValueError, TypeError) as exc:
            shown = json.dumps(value) if isinstance(value, (int, float, bool, type(None))) else repr(value)
            raise ConfigError(f"{source}: {key} must be {type_name(tp)}, got {shown}{_why(exc)}") from None
        if converted is not value:
            object.__setattr__(obj, key, converted)


def parse_assignment(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line: VALUE as JSON when it parses, else the plain text."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set top_k=8")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # plain strings need no quotes: --set data=cifar10:/data


def check_range(source: str, name: str, value: int | float | None, low: float, high: float) -> None:
    """``low <= value <= high`` (None passes: the field's default applies), else a ConfigError naming the field
    and the bound it crossed."""
    if value is not None and value < low:
        raise ConfigError(f"{source}: {name} must be >= {low:,}, got {value:,}")
    if value is not None and value > high:
        raise ConfigError(f"{source}: {name} must be <= {high:,}, got {value:,}")


_DEVICE = re.compile(r"^(cpu|cuda(:\d{1,3})?)$")


def check_device_name(value: str, field: str = "device", allow_auto: bool = False) -> str:
    """cpu, cuda or cuda:N (and auto where allowed), by name only: whether CUDA is there is asked later, of torch."""
    if not isinstance(value, str) or not (_DEVICE.match(value) or allow_auto and value == "auto"):
        allowed = "auto, cpu, cuda or cuda:N" if allow_auto else "cpu, cuda or cuda:N"
        raise ConfigError(f"{field} must be {allowed}, got {value!r}")
    return value
