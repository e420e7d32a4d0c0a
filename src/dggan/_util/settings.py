"""Typed settings: the one place that checks and converts values against a dataclass's field types.

``TrainConfig`` and ``SearchConfig`` are frozen dataclasses. ``coerce`` turns values from JSON files and
``--set KEY=VALUE`` into each field's type (``--set lr=1`` is a float, ``--set data=123`` a string) and
``normalize_fields`` rejects what cannot be converted, naming the field, before any range check runs. What a
setting accepts beyond its type (a range, choices) is its field's metadata, ``setting(default, low=..., ...)``,
and ``check_fields`` is the one validator that reads it; the CLI's flags read the same metadata
(``dggan.cli.options``). ``settings_of`` gives a dataclass another one's fields (SearchConfig every TrainConfig
knob), each defined once.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from functools import cache
from typing import Any, TypeVar, Union

from ..errors import ConfigError

# Integers must fit what SQLite (the ledger) and C longs (numpy, torch) hold: a larger one would be accepted
# here and fail later with OverflowError, after a run folder exists.
INT_LIMIT = 2**63
T = TypeVar("T", bound=type)
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


# ---------------------------------------------------------------------- what each setting accepts
# A setting's range and choices live in its dataclass field's metadata (``setting(default, low=..., ...)``), spelled
# once: ``check_fields`` checks every field of a TrainConfig or SearchConfig against them, and the CLI's flags
# that set the same thing read them (``dggan.cli.options.setting_flag``, ``setting_range``).
SPEC_KEY = "dggan.setting"  # the metadata key of a field's Spec
SEED_RANGE = (0, 2**32 - 1)  # seeds are 32-bit everywhere: the seed settings, --seed, a dataset spec's seed=


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a setting accepts beyond its type: ``low <= value`` (``low < value`` with ``low_open``), ``value <=
    high`` (``<`` with ``high_open``), one of ``choices`` (a tuple, or a function giving the registered names),
    a power of two, or what ``check(value, name)`` accepts (it raises the ConfigError itself). A list setting's
    items are checked one by one; null (where the type allows it) always passes. ``note`` is said after what
    is allowed ("(GiB)"), ``null`` what null means ("the device's own memory")."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | typing.Callable[[], typing.Sequence[str]] | None = None
    power_of_two: bool = False
    check: typing.Callable[[Any, str], object] | None = None
    note: str = ""
    null: str = ""

    def allowed(self) -> tuple[str, ...] | None:
        """The choices (the registered names now, for a function), or None for a setting without choices."""
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def range(self) -> tuple[float, float]:
        """``(low, high)``, unbounded sides as -inf/inf."""
        return (-math.inf if self.low is None else self.low, math.inf if self.high is None else self.high)

    def validate(self, name: str, value: Any, nullable: bool = False) -> None:
        """Raise ConfigError("{name} must be ..., got {value}") when ``value`` (one item of a list setting) is not
        accepted; ``nullable``: say "or null" (the field's type allows it)."""
        if value is None:
            return
        if self.check is not None:
            self.check(value, name)
        tail = f" {self.note}" if self.note else ""
        if nullable:
            tail += f" or null ({self.null})" if self.null else " or null"
        allowed = self.allowed()
        if allowed is not None and value not in allowed:
            raise ConfigError(f"{name} must be {one_of(allowed)}{tail}, got {value!r}")
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if below or above:
            if self.low is not None and self.high is not None and isinstance(value, float):
                what = (f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}",
                        str(value))  # a float's interval: "p must be in (0, 1], got 1.5"
            elif below:
                what = (f"{'>' if self.low_open else '>='} {self.low:,}", f"{value:,}")
            else:
                what = (f"{'<' if self.high_open else '<='} {self.high:,}", f"{value:,}")
            raise ConfigError(f"{name} must be {what[0]}{tail}, got {what[1]}")
        if self.power_of_two and isinstance(value, int) and value & (value - 1):
            raise ConfigError(f"{name} must be a power of two{tail}, got {value}")


def one_of(names: typing.Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``: the choices as a message lists them."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, low: float | None = None,
            above: float | None = None, high: float | None = None, below: float | None = None,
            choices: tuple[str, ...] | typing.Callable[[], typing.Sequence[str]] | None = None,
            power_of_two: bool = False, check: typing.Callable[[Any, str], object] | None = None, note: str = "",
            null: str = "") -> Any:
    """A dataclass field with what it accepts in its metadata: ``low``/``high`` inclusive bounds, ``above``/
    ``below`` exclusive ones (``lr: float = setting(1e-3, above=0)``), ``choices``, ``power_of_two``, ``check``
    (see ``Spec``); ``factory`` for a mutable default."""
    if low is not None and above is not None or high is not None and below is not None:
        raise TypeError("setting(): give low or above, high or below, not both")
    spec = Spec(low=above if low is None else low, high=below if high is None else high, low_open=above is not None,
                high_open=below is not None, choices=choices, power_of_two=power_of_two, check=check, note=note,
                null=null)
    return dataclasses.field(default=default, default_factory=factory, metadata={SPEC_KEY: spec})


def spec_of(cls: type, name: str) -> Spec | None:
    """The Spec of a dataclass's field ``name`` (None: only its type is checked); KeyError if it has no such field."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return fields[name].metadata.get(SPEC_KEY)


def check_fields(obj: Any, source: str) -> None:
    """THE validator: every field of the dataclass ``obj`` against its field's Spec (range, choices, power of two,
    check), a list setting item by item; the first that is not accepted raises a ConfigError naming ``source``,
    the setting, what it accepts and the value. Run after ``normalize_fields`` (the types are right by then);
    what relates two settings (target_resolution >= base_resolution) the dataclass checks itself."""
    types_ = field_types(type(obj))
    for f in dataclasses.fields(obj):
        spec = f.metadata.get(SPEC_KEY)
        if spec is None:
            continue
        value = getattr(obj, f.name)
        nullable = type(None) in _options(types_[f.name])
        for item in value if isinstance(value, tuple) else (value,):
            spec.validate(f"{source}: {f.name}", item, nullable)


def settings_of(source: type, exclude: typing.Iterable[str] = (), at: str = "INCLUDED") -> typing.Callable[[T], T]:
    """Class decorator, under ``@dataclass``: the class gets every field of the dataclass ``source`` but
    ``exclude``, each with its type, default and Spec as ``source`` declares it, in ``source``'s order, where the
    class body holds the annotation ``{at}: ClassVar[None]`` (else after its own fields). One definition of each
    setting: a field added to ``source`` (or to a subclass given as ``source``) is the class's too, with nothing
    to copy. A field of the class's own that ``source`` has too must be in ``exclude``: spelled twice, it would
    drift (TypeError). ``cls.settings_source`` is ``source``."""
    excluded = frozenset(exclude)

    def include(cls: T) -> T:
        own = dict(cls.__dict__.get("__annotations__", {}))
        theirs = {f.name: f for f in dataclasses.fields(source)}
        unknown = sorted(excluded - set(theirs))
        twice = sorted(set(own) & set(theirs) - excluded)
        if unknown or twice:
            raise TypeError(f"{cls.__name__}: {source.__name__} has no field(s) {unknown} to exclude" if unknown else
                            f"{cls.__name__} declares {twice}, fields of {source.__name__}: drop them (they are"
                            f" included) or exclude them (the class's own)")
        types_ = field_types(source)
        added: dict[str, Any] = {}
        for name, f in theirs.items():
            if name in excluded:
                continue
            added[name] = types_[name]
            setattr(cls, name, dataclasses.field(default=f.default, default_factory=f.default_factory, init=f.init,
                                                 repr=f.repr, hash=f.hash, compare=f.compare, metadata=f.metadata))
        ordered: dict[str, Any] = {}
        for name, tp in own.items():
            ordered.update(added if name == at else {name: tp})
        if at not in own:
            ordered.update(added)
        cls.__annotations__ = ordered
        cls.settings_source = source  # type: ignore[attr-defined]
        return cls

    return include


_DEVICE = re.compile(r"^(cpu|cuda(:\d{1,3})?)$")


def check_device_name(value: str, field: str = "device", allow_auto: bool = False) -> str:
    """cpu, cuda or cuda:N (and auto where allowed), by name only: whether CUDA is there is asked later, of torch."""
    if not isinstance(value, str) or not (_DEVICE.match(value) or allow_auto and value == "auto"):
        allowed = "auto, cpu, cuda or cuda:N" if allow_auto else "cpu, cuda or cuda:N"
        raise ConfigError(f"{field} must be {allowed}, got {value!r}")
    return value
