"""Generator and discriminator built from a genome's layer plan.

Every parameterised layer lives in one flat ``ModuleDict`` under the name the plan gives it
(``b16_conv0``, ``grow3``, ``torgb32``...), so a parameter's name depends only on the genome and
inheritance is a copy by name. During a fade-in the networks also hold the previous resolution's
toRGB/fromRGB and blend the two paths with ``alpha`` (0 = old path only, 1 = new path only).

``alpha`` is a Python float, or (CUDA graphs) a 0-dim device tensor that the trainer fills in place before
every replay: the forward then never reads it on the host, so one captured graph serves the whole fade-in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .genome import Genome, LayerSpec, d_plan, g_plan
from .layers import EqualizedConv2d, EqualizedLinear, FlattenLinear, LatentToFeatures, MinibatchStdConv

Step = tuple[nn.Module, bool]  # (layer, resample flag: upsample before in G, avg-pool after in D)


def _build_layer(spec: LayerSpec, generator: bool, mbstd_group: int) -> nn.Module:
    if spec.kind == "dense_in":
        return LatentToFeatures(spec.in_ch, spec.out_ch)
    if spec.kind == "conv":
        return EqualizedConv2d(spec.in_ch, spec.out_ch, spec.kernel, activation=True, pixel_norm=generator)
    if spec.kind == "torgb":
        return EqualizedConv2d(spec.in_ch, spec.out_ch, 1, activation=False)
    if spec.kind == "fromrgb":
        return EqualizedConv2d(spec.in_ch, spec.out_ch, 1, activation=True)
    if spec.kind == "mbstd_conv":
        return MinibatchStdConv(spec.in_ch, spec.out_ch, spec.kernel, mbstd_group)
    if spec.kind == "dense":
        return FlattenLinear(spec.in_ch * 16, spec.out_ch, activation=True)
    if spec.kind == "out":
        return EqualizedLinear(spec.in_ch, spec.out_ch, activation=False)
    raise ValueError(f"unknown layer kind {spec.kind!r}")


def blend(old: torch.Tensor, new: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """``lerp(old, new, alpha)``. A float32 tensor alpha with bf16 paths (autocast) blends in float32 and rounds
    once, which is what lerp does inside with a float weight: the same numbers either way."""
    if isinstance(alpha, torch.Tensor) and alpha.dtype != new.dtype:
        return torch.lerp(old.float(), new.float(), alpha).to(new.dtype)
    return torch.lerp(old, new, alpha)


class _GrowableNet(nn.Module):
    def __init__(self, genome: Genome, plan: list[LayerSpec], fade_in: bool, generator: bool, mbstd_group: int = 4):
        super().__init__()
        self.genome = genome
        self.plan = plan
        self.layers = nn.ModuleDict({spec.name: _build_layer(spec, generator, mbstd_group) for spec in plan})
        self.fade_in = fade_in
        self.alpha: float | torch.Tensor = 1.0
        body = plan[:-1] if fade_in else plan
        # The layers of the newest scale form the "head"; only they are bypassed by the fade-in path.
        # Plain lists (not ModuleLists) so parameter names stay the flat, genome-derived ones.
        if generator:
            split = next((i for i, s in enumerate(body) if s.resolution == genome.resolution and s.up), len(body))
        else:
            split = next((i + 1 for i, s in enumerate(body) if s.resolution == genome.resolution and s.down), 0)
        self._steps_a: list[Step] = [(self.layers[s.name], s.up or s.down) for s in body[:split]]
        self._steps_b: list[Step] = [(self.layers[s.name], s.up or s.down) for s in body[split:]]
        # The old toRGB/fromRGB, also held in a plain list so it is not registered twice.
        self._old_path: list[nn.Module] = [self.layers[plan[-1].name]] if fade_in else []

    def set_alpha(self, alpha: float | torch.Tensor) -> None:
        """A float (clamped to [0, 1]), or a 0-dim tensor on the device read by every forward from now on."""
        if not self.fade_in:
            raise RuntimeError("set_alpha on a network that is not fading in")
        self.alpha = alpha if isinstance(alpha, torch.Tensor) else float(min(max(alpha, 0.0), 1.0))

    def _blending(self) -> bool:
        """Whether the old path takes part (a tensor alpha always blends: reading it would sync the host)."""
        return bool(self._old_path) and (isinstance(self.alpha, torch.Tensor) or self.alpha < 1.0)

    def drop_fade_in(self) -> list[nn.Parameter]:
        """Remove the old path after the fade-in completes; returns its parameters (to drop from optimizers)."""
        if not self.fade_in:
            return []
        name = self.plan[-1].name
        params = list(self.layers[name].parameters())
        del self.layers[name]
        self.plan = self.plan[:-1]
        self._old_path = []
        self.fade_in = False
        self.alpha = 1.0
        return params


class Generator(_GrowableNet):
    """z [N, latent] -> images [N, C, R, R] (linear output, trained towards [-1, 1])."""

    def __init__(self, genome: Genome, fade_in: bool = False):
        super().__init__(genome, g_plan(genome, fade_in), fade_in, generator=True)

    @staticmethod
    def _run(steps: list[Step], x: torch.Tensor) -> torch.Tensor:
        for layer, up in steps:
            if up:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = layer(x)
        return x

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self._run(self._steps_a, z)
        new = self._run(self._steps_b, h)
        if not self._blending():
            return new
        old = F.interpolate(self._old_path[0](h), scale_factor=2.0, mode="nearest")
        return blend(old, new, self.alpha)


class Discriminator(_GrowableNet):
    """images [N, C, R, R] -> critic scores [N, 1]."""

    def __init__(self, genome: Genome, fade_in: bool = False, mbstd_group: int = 4):
        super().__init__(genome, d_plan(genome, fade_in), fade_in, generator=False, mbstd_group=mbstd_group)

    @staticmethod
    def _run(steps: list[Step], x: torch.Tensor) -> torch.Tensor:
        for layer, down in steps:
            x = layer(x)
            if down:
                x = F.avg_pool2d(x, 2)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._run(self._steps_a, x)
        if self._blending():
            h = blend(self._old_path[0](F.avg_pool2d(x, 2)), h, self.alpha)
        return self._run(self._steps_b, h)
