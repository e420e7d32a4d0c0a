"""Weight inheritance: initialise a child network from its parent's trained weights, by name.

Policy (documented in the README):
- a tensor whose name and shape match the parent's is **copied** bit for bit;
- a tensor whose name matches but whose channel counts changed because a neighbour was grown (e.g. toRGB
  after a new G layer) is **adapted** (policy ``adapt``, the default): the overlapping slice is copied,
  rescaled so its *effective* (equalized-lr) weights are unchanged, the rest keeps its fresh init; with
  policy ``fresh`` such tensors are re-initialised instead;
- a tensor whose kernel size differs, or that the parent does not have (a new layer), starts **fresh**;
- parent tensors the child does not use (e.g. the old toRGB after a finished fade-in) are **dropped**.

New grown convs start random, as in the paper, or (``identity_init``, beyond the paper) as an identity
on the channels they share with their input, so the child starts out computing (almost) what its
parent did instead of passing noise to the next layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

InheritPolicy = Literal["adapt", "fresh"]
NewLayerInit = Literal["random", "identity"]


@dataclass
class InheritanceReport:
    copied: list[str] = field(default_factory=list)
    adapted: list[tuple[str, str]] = field(default_factory=list)
    fresh: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "copied": self.copied,
            "adapted": [{"name": n, "why": w} for n, w in self.adapted],
            "fresh": [{"name": n, "why": w} for n, w in self.fresh],
            "dropped": self.dropped,
        }

    def summary(self) -> str:
        return (f"{len(self.copied)} copied, {len(self.adapted)} adapted, {len(self.fresh)} fresh,"
                f" {len(self.dropped)} dropped")


def _fan_in(shape: torch.Size) -> int:
    return math.prod(shape[1:])


@torch.no_grad()
def inherit_weights(child: nn.Module, parent_state: Mapping[str, torch.Tensor],
                    policy: InheritPolicy = "adapt") -> InheritanceReport:
    """Load ``parent_state`` into ``child`` by parameter name, following the module's policy."""
    if policy not in ("adapt", "fresh"):
        raise ValueError(f"unknown inheritance policy {policy!r}; use 'adapt' or 'fresh'")
    report = InheritanceReport()
    child_state = dict(child.named_parameters())
    for name, target in child_state.items():
        source = parent_state.get(name)
        if source is None:
            report.fresh.append((name, "new layer"))
            continue
        if source.shape == target.shape:
            target.copy_(source)
            report.copied.append(name)
            continue
        same_kernel = source.dim() == target.dim() and source.shape[2:] == target.shape[2:]
        if policy == "fresh" or not same_kernel:
            why = "kernel size changed" if not same_kernel else "shape changed by a grown neighbour"
            report.fresh.append((name, f"{why}: {tuple(source.shape)} -> {tuple(target.shape)}"))
            continue
        overlap = tuple(slice(0, min(a, b)) for a, b in zip(source.shape, target.shape, strict=True))
        block = source[overlap]
        if target.dim() >= 2:
            # Equalized lr multiplies by sqrt(2 / fan_in) at run time; keep the effective weights.
            block = block * math.sqrt(_fan_in(target.shape) / _fan_in(source.shape))
        target[overlap] = block.to(target.dtype)
        report.adapted.append((name, f"{tuple(source.shape)} -> {tuple(target.shape)}, overlap copied"))
    report.dropped = sorted(set(parent_state) - set(child_state))
    return report


@torch.no_grad()
def identity_init(net: nn.Module, report: InheritanceReport) -> list[str]:
    """Re-initialise the freshly grown convs (``grow{i}``) of ``net`` as identities; returns their names.

    The centre tap maps input channel c to output channel c for c < min(in, out) (scaled so the
    *effective* equalized-lr weight is 1), everything else is zero. Followed by LeakyReLU (and pixel
    norm in G) on inputs that already went through them, the layer nearly passes its input through.
    """
    grown = sorted({name.split(".")[1] for name, why in report.fresh
                    if why == "new layer" and name.split(".")[1].startswith("grow")})
    for name in grown:
        layer = net.layers[name]  # type: ignore[index]
        weight = layer.weight
        weight.zero_()
        layer.bias.zero_()
        shared = torch.arange(min(weight.shape[0], weight.shape[1]))
        centre = weight.shape[-1] // 2
        weight[shared, shared, centre, centre] = 1.0 / layer.scale
    report.fresh = [(n, f"{why}, identity init" if n.split(".")[1] in grown else why) for n, why in report.fresh]
    return grown
