"""Growth actions: pure functions genome -> genome, and the (configurable) action space."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidActionError
from .genome import ConvLayer, Genome

ActionKind = Literal["grow_g", "grow_d", "grow_res"]
ACTION_KINDS: tuple[str, ...] = ("grow_g", "grow_d", "grow_res")
PAPER_KERNELS: tuple[int, ...] = (3, 7)
PAPER_FILTERS: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)




@dataclass(frozen=True)
class Action:
    kind: ActionKind
    kernel: int | None = None
    filters: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise InvalidActionError(f"unknown action kind {self.kind!r}; expected one of {list(ACTION_KINDS)}")
        if self.kind == "grow_res":
            if self.kernel is not None or self.filters is not None:
                raise InvalidActionError("grow_res takes no kernel or filters")
            return
        if not isinstance(self.kernel, int) or self.kernel < 1 or self.kernel % 2 == 0:
            raise InvalidActionError(f"{self.kind}: kernel must be an odd positive int (same padding),"
                                     f" got {self.kernel!r}")
        if not isinstance(self.filters, int) or self.filters < 1:
            raise InvalidActionError(f"{self.kind}: filters must be a positive int, got {self.filters!r}")

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "grow_res":
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
        """``grow_res``, ``grow_g:k3:f256``, ``grow_d:3:256``, or the label form ``G k3 f256`` / ``res``."""
        raw = text.strip()
        parts = raw.split(":") if ":" in raw else raw.split()
        kinds = {"g": "grow_g", "d": "grow_d", "grow_g": "grow_g", "grow_d": "grow_d"}
        try:
            if len(parts) == 1 and parts[0].lower() in ("grow_res", "res"):
                return cls("grow_res")
            if len(parts) == 3 and parts[0].lower() in kinds:
                return cls(kinds[parts[0].lower()], int(parts[1].lower().lstrip("k")),  # type: ignore[arg-type]
                           int(parts[2].lower().lstrip("f")))
        except ValueError:
            pass
        raise InvalidActionError(f"cannot parse action {text!r}; use grow_res, grow_g:k3:f256 or grow_d:k7:f64")

    def spec(self) -> str:
        """The command-line form: ``grow_res``, ``grow_g:k3:f256``."""
        if self.kind == "grow_res":
            return "grow_res"
        return f"{self.kind}:k{self.kernel}:f{self.filters}"

    def label(self) -> str:
        """The display form used in tables and plots: ``G k3 f256``, ``D k7 f32``, ``res``."""
        if self.kind == "grow_res":
            return "res"
        return f"{'G' if self.kind == 'grow_g' else 'D'} k{self.kernel} f{self.filters}"


def action_label(action: Action | None, parent: int | None = None) -> str:
    """``Action.label()``; ``init`` for an initial candidate, ``continue`` for a baseline point (a parent but no
    action: the same network trained further)."""
    if action is None:
        return "init" if parent is None else "continue"
    return action.label()


@dataclass(frozen=True)
class ActionSpace:
    """Which actions a search may take. The default is the paper's full space of 25 actions."""

    kernels: tuple[int, ...] = PAPER_KERNELS
    filters: tuple[int, ...] = PAPER_FILTERS
    grow_g: bool = True
    grow_d: bool = True
    grow_res: bool = True

    def __post_init__(self) -> None:
        for k in self.kernels:
            if not isinstance(k, int) or k < 1 or k % 2 == 0:
                raise InvalidActionError(f"action space: kernel sizes must be odd positive ints, got {k!r}")
        for f in self.filters:
            if not isinstance(f, int) or f < 1:
                raise InvalidActionError(f"action space: filter counts must be positive ints, got {f!r}")

    def check(self, action: Action) -> None:
        """Raise unless ``action`` belongs to this space."""
        enabled = {"grow_g": self.grow_g, "grow_d": self.grow_d, "grow_res": self.grow_res}[action.kind]
        if not enabled:
            raise InvalidActionError(f"{action.spec()}: {action.kind} is disabled in this action space")
        if action.kind == "grow_res":
            return
        if action.kernel not in self.kernels:
            raise InvalidActionError(f"{action.spec()}: unknown kernel size {action.kernel};"
                                     f" this action space allows {list(self.kernels)}")
        if action.filters not in self.filters:
            raise InvalidActionError(f"{action.spec()}: {action.filters} filters is not in this action space's"
                                     f" {list(self.filters)}")

    def actions(self) -> list[Action]:
        out: list[Action] = []
        for kind, enabled in (("grow_g", self.grow_g), ("grow_d", self.grow_d)):
            if enabled:
                out += [Action(kind, k, f) for k in self.kernels for f in self.filters]  # type: ignore[arg-type]
        if self.grow_res:
            out.append(Action("grow_res"))
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

    ``space`` defaults to the paper's, so a kernel size other than 3 or 7 is rejected unless a custom
    space allows it.
    """
    limits = limits or GrowthLimits(target_resolution=max(genome.channel_map))
    (space or ActionSpace()).check(action)
    if action.kind == "grow_res":
        new_res = genome.resolution * 2
        if new_res > limits.target_resolution:
            raise InvalidActionError(f"grow_res: {genome.resolution}px -> {new_res}px would exceed the target"
                                     f" resolution {limits.target_resolution}px")
        if new_res not in genome.channel_map:
            raise InvalidActionError(f"grow_res: the genome's channel schedule has no width for {new_res}px;"
                                     " add it to 'channels'")
        return dataclasses.replace(genome, resolution=new_res)
    layer = ConvLayer(kernel=action.kernel, filters=action.filters, resolution=genome.resolution)  # type: ignore[arg-type]
    if action.kind == "grow_g":
        if limits.max_g_layers is not None and len(genome.g_layers) >= limits.max_g_layers:
            raise InvalidActionError(f"grow_g: G already has {len(genome.g_layers)} grown layers"
                                     f" (max_g_layers = {limits.max_g_layers})")
        return dataclasses.replace(genome, g_layers=genome.g_layers + (layer,))
    if limits.max_d_layers is not None and len(genome.d_layers) >= limits.max_d_layers:
        raise InvalidActionError(f"grow_d: D already has {len(genome.d_layers)} grown layers"
                                 f" (max_d_layers = {limits.max_d_layers})")
    return dataclasses.replace(genome, d_layers=genome.d_layers + (layer,))


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
