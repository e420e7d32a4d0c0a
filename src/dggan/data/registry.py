"""``open_dataset(spec)``: one string names any dataset, for the CLI and for configs.

Spec syntax: ``KIND[:LOCATION][?KEY=VALUE[,KEY=VALUE...]]`` (``&`` also separates options).

    synthetic                                   4096 32x32 shapes, seed 0
    synthetic:n=2048,res=32,seed=1              options may follow the colon directly for synthetic
    digits                                      scikit-learn's 8x8 handwritten digits at 16 px (train split)
    digits:res=8,split=test                     the held-out 20%, at 8 px
    cifar10:/data/cifar-10-batches-py           training split (50k); the .tar.gz works too
    cifar10:/data/cifar-10-python.tar.gz?split=test
    lsun:/data/bedroom_train_lmdb?res=256,max=100000
    folder:/data/faces?res=64                   res defaults to the smallest side, floored to 2^k
    npz:/data/bedroom256.npy                    .npy (memory-mapped) or .npz; NCHW or NHWC

Keyword arguments to ``open_dataset`` override options given in the string. The kinds are registered by name
(``dggan.data.kinds``): ``@register_dataset`` adds one.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from .._util.settings import SEED_RANGE
from ..model.genome import MAX_RESOLUTION
from .base import DatasetError, ImageSource
from .kinds import DATASET_KINDS, DatasetKind, dataset_kind, dataset_kinds, register_dataset

__all__ = ["DATASET_KINDS", "DatasetKind", "dataset_kind", "dataset_kinds", "open_dataset", "parse_spec",
           "register_dataset"]

# Short option names accepted in specs -> constructor keyword.
_ALIASES = {"n": "num_images", "res": "resolution", "max": "max_images"}
_SHORT = {v: k for k, v in _ALIASES.items()}
# Ranges of the integer options, checked where the spec is read (a huge or negative count would otherwise
# reach numpy as an OverflowError or an allocation that never ends).
_INT_RANGES = {"num_images": (1, 2**31 - 1), "max_images": (1, 2**63 - 1), "resolution": (4, MAX_RESOLUTION),
               "seed": SEED_RANGE}  # the seed's and the resolution's as the settings' (one definition each)


def _typed(spec: str, kind: str, entry: DatasetKind, name: str, value: Any, hint: Any) -> Any:
    """An option's value as its constructor's type says (bool is not int; "abc" is not a count), else one
    DatasetError naming the option and what it takes."""
    shown = f"{name}{f' ({_SHORT[name]})' if name in _SHORT else ''}={value}"
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if int in options:
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise DatasetError(f"dataset spec {spec!r}: {shown} must be a whole number,"
                               f" e.g. {_example(kind, entry, name)}")
        low, high = _INT_RANGES.get(name, (-(2**63) + 1, 2**63 - 1))
        if not low <= value <= high:
            raise DatasetError(f"dataset spec {spec!r}: {shown} must be in [{low:,}, {high:,}]")
        return value
    if bool in options:
        text = str(value).strip().lower()
        if isinstance(value, bool) or text in ("true", "false", "1", "0"):
            return value if isinstance(value, bool) else text in ("true", "1")
        raise DatasetError(f"dataset spec {spec!r}: {shown} must be true or false")
    return str(value) if str in options and not isinstance(value, str) else value


def _example(kind: str, entry: DatasetKind, name: str) -> str:
    option = f"{_SHORT.get(name, name)}=64"
    return f"'{kind}:PATH?{option}'" if entry.takes_path else f"'{kind}:{option}'"


def _options_only(kind: str) -> bool:
    entry = dataset_kind(kind)
    return entry is not None and not entry.takes_path


def _parse_value(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """(kind, location or None, options) for a dataset spec string."""
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip().lower()
    location, query = rest, ""
    if "?" in rest:
        location, _, query = rest.rpartition("?")
    elif "=" in rest and _options_only(kind):
        location, query = "", rest
    if "?" in kind:  # e.g. "synthetic?n=64"
        kind, _, query = kind.partition("?")
    options: dict[str, Any] = {}
    for item in query.replace("&", ",").split(","):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise DatasetError(f"dataset spec {spec!r}: option {item!r} is not KEY=VALUE")
        key = key.strip()
        options[_ALIASES.get(key, key)] = _parse_value(value.strip())
    return kind, (location or None), options


def open_dataset(spec: str, **kw: Any) -> ImageSource:
    """Open the dataset a spec names (see the module docstring); ``kw`` overrides the spec's options."""
    kind, location, options = parse_spec(spec)
    entry = dataset_kind(kind)
    if entry is None:
        raise DatasetError(f"unknown dataset kind {kind!r} in {spec!r};"
                           f" valid kinds: {', '.join(dataset_kinds())}")
    options.update({_ALIASES.get(k, k): v for k, v in kw.items()})
    cls = entry.cls
    named = [p for p in inspect.signature(cls.__init__).parameters.values()
             if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)][1:]  # after self
    params = [p.name for p in (named[1:] if entry.takes_path else named)]  # a path kind's first is its path
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise DatasetError(f"dataset spec {spec!r}: unknown option(s) {unknown} for {kind}; valid: {params}")
    hints = typing.get_type_hints(cls.__init__)
    options = {k: _typed(spec, kind, entry, k, v, hints.get(k, Any)) for k, v in options.items()}
    if not entry.takes_path:
        if location:
            raise DatasetError(f"dataset spec {spec!r}: {kind} takes options only, e.g. '{entry.example_for(kind)}'")
        source = cls(**options)
    elif not location:
        raise DatasetError(f"dataset spec {spec!r}: {kind} needs a path, e.g. '{entry.example_for(kind)}'")
    else:
        source = cls(location, **options)
    source.spec = spec.strip()  # recorded in checkpoints, so a continued run trains on the same data
    return source
