"""Growth actions: pure functions genome -> genome, registered by name, and the (configurable) action space.

The paper's three are registered here with ``@register_action``, as any other is (docs/extending.md adds one):
``grow_g`` and ``grow_d`` add a conv of ``kernel`` x ``filters`` at the current resolution to G or D, ``grow_res``
doubles the resolution. A search takes the paper's three by its switches (``grow_g``, ``grow_d``, ``grow_res``) and
another registered action only when its ``actions`` setting names it (``ActionSpace.extra``), so a run's recorded
settings mean the same whatever else is registered.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import InvalidActionError
from .genome import ConvLayer, Genome

ActionKind = str  # a registered action's name (``action_kinds()``); once a Literal of the paper's three
PAPER_ACTIONS: tuple[str, ...] = ("grow_g", "grow_d", "grow_res")  # switched by ActionSpace.grow_g/grow_d/grow_res
ACTION_KINDS = PAPER_ACTIONS  # compatibility; ``action_kinds()`` lists every registered action
PAPER_KERNELS: tuple[int, ...] = (3, 7)
PAPER_FILTERS: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class RegisteredAction:
    """A growth action registered with ``register_action``: its pure function and how it is shown."""

    name: str
    apply: Callable[[Genome, Action, GrowthLimits], Genome]
    label: str  # the display prefix: "G" of "G k3 f256", "res"
    conv: bool  # takes a kernel and filters (enumerated over the space's kernels x filters)
    enabled_by_default: bool  # in ``apply_action``'s default space (a search takes it only when named)
    color: str | None = None  # its colour in the plots (None: one of a palette)


F = TypeVar("F", bound=Callable[..., Genome])
_ACTIONS: dict[str, RegisteredAction] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _qualified(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def register_action(name: str, *, label: str, conv: bool, enabled_by_default: bool = True,
                    color: str | None = None) -> Callable[[F], F]:
    """Decorator: ``apply(genome, action, limits) -> Genome`` is the growth action ``name``. It returns the child
    genome (a new one: genomes are frozen) and raises ``InvalidActionError`` when the action is not allowed for
    this genome (keep to ``limits``: the target resolution, max_g_layers, max_d_layers).

    ``conv=True``: the action takes ``kernel`` and ``filters`` (``name:k3:f64``; a search enumerates its kernels x
    filters); ``conv=False``: nothing (``name``, as ``grow_res``). ``label``: the short display prefix in tables and
    plots (``<label> k3 f64``, or ``<label>``), which parses back. ``color``: its colour in the plots (default: one
    of a palette). ``enabled_by_default``: whether ``apply_action`` without a ``space`` (the library, ``dggan genome
    grow``, ``dggan train --action``) takes it; a search takes it only when its ``actions`` setting names it."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"action {name!r}: use lower-case letters, digits and _ only, starting with a letter (it is"
                         " written as name:k3:f64)")
    if not isinstance(label, str) or not label or any(c.isspace() or c == ":" for c in label):
        raise ValueError(f"action {name!r}: label must be a short word without spaces or ':' (as G, D, res), got"
                         f" {label!r}")

    def add(apply: F) -> F:
        if not callable(apply):
            raise TypeError(f"register_action({name!r}): {apply!r} must be a function (genome, action, limits) ->"
                            " Genome")
        known = _ACTIONS.get(name)
        if known is not None and _qualified(known.apply) != _qualified(apply):
            raise ValueError(f"action {name!r} is already registered ({_qualified(known.apply)}); pick another name")
        words = {name, label.lower()}
        clash = next((other.name for other in _ACTIONS.values()
                      if other.name != name and words & {other.name, other.label.lower()}), None)
        if clash is not None:
            raise ValueError(f"action {name!r}: its name or label {label!r} would parse as the registered action"
                             f" {clash!r} ({_ACTIONS[clash].label}); pick another")
        _ACTIONS[name] = RegisteredAction(name, apply, label, conv, enabled_by_default, color)
        return apply

    return add


def action_kinds() -> dict[str, RegisteredAction]:
    """Every registered growth action by name, in the order registered (the paper's three first)."""
    return dict(_ACTIONS)


def action_kind(name: str) -> RegisteredAction:
    """The action registered as ``name``; an ``InvalidActionError`` listing the registered ones when there is none."""
    if not isinstance(name, str) or name not in _ACTIONS:
        raise InvalidActionError(f"unknown action kind {name!r}; expected one of {list(_ACTIONS)}"
                                 " (register_action adds one: docs/extending.md)")
    return _ACTIONS[name]


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    kernel: int | None = None
    filters: int | None = None

    def __post_init__(self) -> None:
        if not action_kind(self.kind).conv:
            if self.kernel is not None or self.filters is not None:
                raise InvalidActionError(f"{self.kind} takes no kernel or filters")
            return
        if not isinstance(self.kernel, int) or self.kernel < 1 or self.kernel % 2 == 0:
            raise InvalidActionError(f"{self.kind}: kernel must be an odd positive int (same padding),"
                                     f" got {self.kernel!r}")
        if not isinstance(self.filters, int) or self.filters < 1:
            raise InvalidActionError(f"{self.kind}: filters must be a positive int, got {self.filters!r}")

    def to_dict(self) -> dict[str, Any]:
        if not action_kind(self.kind).conv:
            return {"kind": self.kind}
        return {"kind": self.kind, "kernel": self.kernel, "filters": self.filters}

    @classmethod
    def from_dict(cls, data: Any) -> Action:
        if not isinstance(data, dict) or "kind" not in data:
            raise InvalidActionError(f"an action must be an object with a 'kind', got {data!r}")
        unknown = set(data) - {"kind", "kernel", "filters"}
        if unknown:
            raise InvalidActionError(f"unknown action field(s) {sorted(unknown)}")
        return cls(data["kind"], data.get("kernel"), data.get("filters"))

    @classmethod
    def parse(cls, text: str) -> Action:
        """``grow_res``, ``grow_g:k3:f256``, ``grow_d:3:256``, or the label form ``G k3 f256`` / ``res``; a
        registered action the same way (``name:k3:f64``, ``<label> k3 f64``; ``name`` or ``<label>``)."""
        raw = text.strip()
        parts = raw.split(":") if ":" in raw else raw.split()
        words = {word: kind for kind in _ACTIONS.values() for word in (kind.name, kind.label.lower())}
        kind = words.get(parts[0].lower()) if parts else None
        try:
            if kind is not None and not kind.conv and len(parts) == 1:
                return cls(kind.name)
            if kind is not None and kind.conv and len(parts) == 3:
                return cls(kind.name, int(parts[1].lower().lstrip("k")), int(parts[2].lower().lstrip("f")))
        except ValueError:
            pass
        others = [f"{k.name}:k3:f64" if k.conv else k.name for k in _ACTIONS.values() if k.name not in PAPER_ACTIONS]
        raise InvalidActionError(f"cannot parse action {text!r}; use grow_res, grow_g:k3:f256 or grow_d:k7:f64"
                                 + (f" (registered: {', '.join(others)})" if others else ""))

    def spec(self) -> str:
        """The command-line form: ``grow_res``, ``grow_g:k3:f256``."""
        if not action_kind(self.kind).conv:
            return self.kind
        return f"{self.kind}:k{self.kernel}:f{self.filters}"

    def label(self) -> str:
        """The display form used in tables and plots: ``G k3 f256``, ``D k7 f32``, ``res``."""
        kind = action_kind(self.kind)
        if not kind.conv:
            return kind.label
        return f"{kind.label} k{self.kernel} f{self.filters}"


def action_label(action: Action | None, parent: int | None = None) -> str:
    """``Action.label()``; ``init`` for an initial candidate, ``continue`` for a baseline point (a parent but no
    action: the same network trained further)."""
    if action is None:
        return "init" if parent is None else "continue"
    return action.label()


@dataclass(frozen=True)
class ActionSpace:
    """Which actions a search may take. The default is the paper's full space of 25 actions; ``extra`` names
    registered actions beyond the paper's three that it may also take (the search's ``actions`` setting)."""

    kernels: tuple[int, ...] = PAPER_KERNELS
    filters: tuple[int, ...] = PAPER_FILTERS
    grow_g: bool = True
    grow_d: bool = True
    grow_res: bool = True
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", tuple(self.extra))  # hashable: rules cache valid actions per space
        for name in self.extra:
            if name in PAPER_ACTIONS:
                raise InvalidActionError(f"action space: {name} is one of the paper's actions, switched by grow_g,"
                                         " grow_d and grow_res; extra names the other registered ones")
            action_kind(name)
        twice = sorted({name for name in self.extra if self.extra.count(name) > 1})
        if twice:
            raise InvalidActionError(f"action space: {', '.join(twice)} named more than once")
        for k in self.kernels:
            if not isinstance(k, int) or k < 1 or k % 2 == 0:
                raise InvalidActionError(f"action space: kernel sizes must be odd positive ints, got {k!r}")
        for f in self.filters:
            if not isinstance(f, int) or f < 1:
                raise InvalidActionError(f"action space: filter counts must be positive ints, got {f!r}")

    def check(self, action: Action) -> None:
        """Raise unless ``action`` belongs to this space."""
        if not self.enabled(action.kind):
            hint = "" if action.kind in PAPER_ACTIONS else " (a search takes it when its actions setting names it)"
            raise InvalidActionError(f"{action.spec()}: {action.kind} is disabled in this action space{hint}")
        if not action_kind(action.kind).conv:
            return
        if action.kernel not in self.kernels:
            raise InvalidActionError(f"{action.spec()}: unknown kernel size {action.kernel};"
                                     f" this action space allows {list(self.kernels)}")
        if action.filters not in self.filters:
            raise InvalidActionError(f"{action.spec()}: {action.filters} filters is not in this action space's"
                                     f" {list(self.filters)}")

    def enabled(self, kind: str) -> bool:
        """Whether this space takes actions of ``kind``."""
        paper = {"grow_g": self.grow_g, "grow_d": self.grow_d, "grow_res": self.grow_res}
        return paper.get(kind, kind in self.extra)

    def actions(self) -> list[Action]:
        """Every action of the space: G convs, D convs, res (the paper's order), then ``extra`` in its order."""
        out: list[Action] = []
        for kind in (*PAPER_ACTIONS, *self.extra):
            if not self.enabled(kind):
                continue
            if action_kind(kind).conv:
                out += [Action(kind, k, f) for k in self.kernels for f in self.filters]
            else:
                out.append(Action(kind))
        if not out:
            raise InvalidActionError("the action space is empty: enable grow_g, grow_d or grow_res"
                                     " (with at least one kernel and one filter count for the conv actions)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GrowthLimits:
    """Bounds every child must stay within: the target resolution and how many convs may be grown."""

    target_resolution: int = 32
    max_g_layers: int | None = None
    max_d_layers: int | None = None


def apply_action(genome: Genome, action: Action, limits: GrowthLimits | None = None,
                 space: ActionSpace | None = None) -> Genome:
    """The child genome; raises ``InvalidActionError`` when the action is not allowed for this genome.

    ``space`` defaults to the paper's kernels and filters with every registered action that is enabled by default
    (``default_space()``), so a kernel size other than 3 or 7 is rejected unless a custom space allows it.
    """
    limits = limits or GrowthLimits(target_resolution=max(genome.channel_map))
    (space or default_space()).check(action)
    child = action_kind(action.kind).apply(genome, action, limits)
    if not isinstance(child, Genome):
        raise TypeError(f"action {action.kind} ({_qualified(action_kind(action.kind).apply)}) returned"
                        f" {type(child).__name__}, not a Genome")
    return child


def default_space() -> ActionSpace:
    """The paper's kernels and filters, with every registered action whose ``enabled_by_default`` is on:
    ``apply_action``'s space when it is given none. (A search's space is its settings' alone.)"""
    on = {name for name, kind in _ACTIONS.items() if kind.enabled_by_default}
    return ActionSpace(grow_g="grow_g" in on, grow_d="grow_d" in on, grow_res="grow_res" in on,
                       extra=tuple(name for name in _ACTIONS if name in on and name not in PAPER_ACTIONS))


def _conv(genome: Genome, action: Action) -> ConvLayer:
    return ConvLayer(kernel=action.kernel, filters=action.filters, resolution=genome.resolution)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the paper's three
@register_action("grow_g", label="G", conv=True, color="#1f77b4")
def _grow_g(genome: Genome, action: Action, limits: GrowthLimits) -> Genome:
    """A conv of ``kernel`` x ``filters`` appended to G at the current resolution."""
    if limits.max_g_layers is not None and len(genome.g_layers) >= limits.max_g_layers:
        raise InvalidActionError(f"grow_g: G already has {len(genome.g_layers)} grown layers"
                                 f" (max_g_layers = {limits.max_g_layers})")
    return dataclasses.replace(genome, g_layers=genome.g_layers + (_conv(genome, action),))


@register_action("grow_d", label="D", conv=True, color="#ff7f0e")
def _grow_d(genome: Genome, action: Action, limits: GrowthLimits) -> Genome:
    """A conv of ``kernel`` x ``filters`` added to D at the current resolution."""
    if limits.max_d_layers is not None and len(genome.d_layers) >= limits.max_d_layers:
        raise InvalidActionError(f"grow_d: D already has {len(genome.d_layers)} grown layers"
                                 f" (max_d_layers = {limits.max_d_layers})")
    return dataclasses.replace(genome, d_layers=genome.d_layers + (_conv(genome, action),))


@register_action("grow_res", label="res", conv=False, color="#2ca02c")
def _grow_res(genome: Genome, action: Action, limits: GrowthLimits) -> Genome:
    """The resolution doubled (G and D each get a new block, faded in)."""
    new_res = genome.resolution * 2
    if new_res > limits.target_resolution:
        raise InvalidActionError(f"grow_res: {genome.resolution}px -> {new_res}px would exceed the target"
                                 f" resolution {limits.target_resolution}px")
    if new_res not in genome.channel_map:
        raise InvalidActionError(f"grow_res: the genome's channel schedule has no width for {new_res}px;"
                                 " add it to 'channels'")
    return dataclasses.replace(genome, resolution=new_res)


def valid_actions(genome: Genome, space: ActionSpace, limits: GrowthLimits) -> list[Action]:
    """The actions of ``space`` that ``apply_action`` accepts for ``genome``, in the space's order."""
    out = []
    for action in space.actions():
        try:
            apply_action(genome, action, limits, space)
        except InvalidActionError:
            continue
        out.append(action)
    return out
