"""Dataset kinds, registered by name: the ``KIND`` of a spec such as ``cifar10:/data/c?split=test``.

A kind is an ``ImageSource`` subclass registered with ``@register_dataset(name, takes_path=..., example=...)``
where it is defined; ``open_dataset`` (``dggan.data.registry``) reads a spec's options into its constructor's
keyword arguments. docs/extending.md adds one.

This module imports no kind: the built-in kinds are listed below with the module of this package that defines
(and registers) each one, imported the first time the kind is named, so that e.g. a missing optional package
only matters for its own kind. A kind registered from outside the package is known as soon as its module is
imported.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .base import ImageSource

# The built-in kinds, in the order error messages list them -> the module of dggan.data that registers each.
_BUILTIN_MODULES = {"synthetic": "synthetic", "cifar10": "cifar", "lsun": "lsun", "folder": "folder",
                    "npz": "npz", "npy": "npz", "digits": "digits"}
DATASET_KINDS = tuple(_BUILTIN_MODULES)
# Lower case (a spec's kind is read lower-cased), and none of the characters that separate a spec's parts.
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class DatasetKind:
    """A registered kind. ``takes_path``: its spec names a location, passed as the constructor's first
    argument (``cifar10:/data/c``), else options only (``synthetic:n=64``). ``example``: a spec of it, shown
    in error messages."""

    name: str
    cls: type[ImageSource]
    takes_path: bool
    example: str
    aliases: tuple[str, ...] = ()

    def example_for(self, name: str) -> str:
        """``example`` as spelled with ``name`` (the kind's name or one of its aliases)."""
        head, sep, rest = self.example.partition(":")
        return f"{name}{sep}{rest}" if head == self.name else self.example


S = TypeVar("S", bound=type[ImageSource])
_KINDS: dict[str, DatasetKind] = {}  # every name, aliases included


def register_dataset(name: str, *, takes_path: bool, example: str,
                     aliases: tuple[str, ...] | list[str] = ()) -> Callable[[S], S]:
    """Class decorator: the ``ImageSource`` subclass that the dataset spec ``name[:PATH][?KEY=VALUE,...]``
    (also spelled as any of ``aliases``) opens. Its constructor's keyword arguments are the spec's options."""
    names = (name, *aliases)
    for n in names:
        if not isinstance(n, str) or not _NAME.match(n):
            raise ValueError(f"register_dataset({name!r}): kind name {n!r} must be lower-case letters, digits,"
                             " _ and -, starting with a letter")
    if len(set(names)) != len(names):
        raise ValueError(f"register_dataset({name!r}): a name is given twice in {list(names)}")
    if not isinstance(takes_path, bool):
        raise TypeError(f"register_dataset({name!r}): takes_path must be True or False, got {takes_path!r}")
    if not isinstance(example, str) or re.split(r"[:?]", example, maxsplit=1)[0] != name:
        raise ValueError(f"register_dataset({name!r}): example must be a spec of the kind, e.g."
                         f" {f'{name}:/path/to/data' if takes_path else f'{name}:n=64'!r}, got {example!r}")

    def add(cls: S) -> S:
        if not (isinstance(cls, type) and issubclass(cls, ImageSource)):
            raise TypeError(f"register_dataset({name!r}): {cls!r} must be a subclass of dggan.data.ImageSource")
        if takes_path and not _first_is_positional(cls):
            raise TypeError(f"register_dataset({name!r}): {cls.__qualname__}.__init__ must take the path as its"
                            " first argument (takes_path=True)")
        for n in names:
            known = _KINDS.get(n)
            if known is not None and _qualified(known.cls) != _qualified(cls):
                raise ValueError(f"dataset kind {n!r} is already registered ({_qualified(known.cls)}); pick"
                                 " another name")
            builtin = _BUILTIN_MODULES.get(n)
            if builtin is not None and cls.__module__ != f"{__package__}.{builtin}":
                raise ValueError(f"dataset kind {n!r} is built in ({__package__}.{builtin}); pick another name")
        kind = DatasetKind(name, cls, takes_path, example, tuple(aliases))
        for n in names:
            _KINDS[n] = kind
        return cls

    return add


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _first_is_positional(cls: type) -> bool:
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # after self
    except (TypeError, ValueError):
        return True  # no signature to read: let the call say
    return bool(params) and params[0].kind in (inspect.Parameter.POSITIONAL_ONLY,
                                               inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                               inspect.Parameter.VAR_POSITIONAL)


def dataset_kinds() -> tuple[str, ...]:
    """Every kind name a spec may use: the built-in ones, then those registered from outside, in order."""
    return DATASET_KINDS + tuple(n for n in _KINDS if n not in _BUILTIN_MODULES)


def dataset_kind(name: str) -> DatasetKind | None:
    """The kind registered as ``name`` (importing a built-in kind's module the first time), None if none is."""
    if name not in _KINDS and name in _BUILTIN_MODULES:
        # Only our own modules, from the table above: a spec's text never picks what gets imported.
        importlib.import_module(f"{__package__}.{_BUILTIN_MODULES[name]}")
        if name not in _KINDS:
            raise RuntimeError(f"{__package__}.{_BUILTIN_MODULES[name]} did not register dataset kind {name!r}")
    return _KINDS.get(name)
