"""How much memory a candidate needs, estimated from its genome before anything is built.

A genome or a setting with absurd sizes (a 1e9-filter layer, a 1e6-channel schedule) would otherwise try
to allocate terabytes and take the machine down. The estimate counts the weights of G, its EMA copy and
D in float32, their gradients and Adam's two moments, and the activations one training step keeps for the
backward pass (G's output per layer for the batch; D's for real, fake and the gradient-penalty mix, with
the double backward roughly tripling them). It is meant to catch the impossible, not to plan tightly.

With CUDA graphs the graph's private memory pool holds the iteration's peak (the activations and the
gradients) for the trainer's whole life, beside the allocator's own cache that the eager warm-up filled, so
graphs count them a second time; the self-check of each new graph briefly holds two more copies of the
weights and Adam state.

When several candidates share a GPU (``candidates_per_gpu``), each may count on its share of the card only
(``check_fits(share=N)``: 1/N of it); the worker retries a candidate that does not fit its share, or runs out
of memory while sharing, with the GPU to itself (``dggan.execution.worker``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ConfigError
from .genome import Genome, d_plan, g_plan

BYTES = 4  # float32


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int  # bytes: G, EMA G, D, their gradients and Adam state
    activations: int  # bytes kept for one step's backward passes
    graphs: int = 0  # bytes CUDA graphs add: the graph pool's copy of the peak, the self-check's snapshots

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.graphs

    def __str__(self) -> str:
        graphs = f", {self.graphs / 2**30:.3g} CUDA graphs" if self.graphs else ""
        return f"~{self.total / 2**30:.3g} GiB ({self.weights / 2**30:.3g} weights, {self.activations / 2**30:.3g}" \
               f" activations{graphs})"


def estimate(genome: Genome, batch_size: int, graphs: bool = False, self_check: bool = False) -> MemoryEstimate:
    """``graphs``: a CUDA graph is captured (its pool: activations and gradients once more); ``self_check``: its
    first replay is checked against eager (two snapshots of the weights and Adam state while it runs)."""
    g, d = genome.g_params(), genome.d_params()
    weights = BYTES * (g * 5 + d * 4)  # G + EMA + grad + 2 Adam moments; D + grad + 2 moments
    g_act = sum(spec.out_ch * spec.resolution**2 for spec in g_plan(genome)) * batch_size
    d_act = sum(spec.out_ch * spec.resolution**2 for spec in d_plan(genome)) * batch_size * 3
    activations = BYTES * 3 * (g_act + d_act)
    extra = 0
    if graphs:
        extra = activations + BYTES * (g + d)  # the graph pool: the iteration's activations and the gradients
        if self_check:
            extra += 2 * BYTES * (g * 4 + d * 3)  # before/after copies of G, EMA G, D and both Adam moments
    return MemoryEstimate(weights, activations, extra)


def device_memory(device: str) -> int:
    """Bytes the device has: a CUDA card's memory, or the machine's RAM for the CPU."""
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        return int(torch.cuda.get_device_properties(index).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 64 * 2**30


def check_fits(genome: Genome, batch_size: int, device: str, limit_gb: float | None = None,
               what: str = "this genome", *, graphs: bool = False, self_check: bool = False,
               share: int = 1) -> MemoryEstimate:
    """Raise ConfigError when ``genome`` cannot fit ``device`` (or ``limit_gb``); return the estimate.
    ``graphs`` and ``self_check``: CUDA graphs are on (see ``estimate``). ``share``: this many candidates share the
    device, each gets 1/share of its memory (an explicit ``limit_gb`` is each candidate's own and is not divided)."""
    if share < 1:
        raise ValueError(f"share must be >= 1, got {share}")
    need = estimate(genome, batch_size, graphs, self_check)
    limit = limit_gb * 2**30 if limit_gb else device_memory(device) / share
    if need.total > limit:
        if limit_gb:
            where = f"the {limit_gb:g} GiB memory_limit_gb"
        elif share > 1:
            where = f"its 1/{share} share of {device}'s {limit * share / 2**30:.3g} GiB ({limit / 2**30:.3g} GiB:" \
                    f" {share} candidates share the device)"
        else:
            where = f"{device}'s {limit / 2**30:.3g} GiB"
        eager = ""
        if need.graphs:
            fits = " (it would fit without them)" if need.total - need.graphs <= limit else ""
            eager = f"; CUDA graphs add {need.graphs / 2**30:.3g} GiB{fits}, cuda_graphs: false saves that"
        raise ConfigError(f"{what} needs {need} at batch {batch_size}, more than {where}"
                          f" ({genome.summary()}); use fewer filters or channels, a smaller batch, or raise"
                          f" memory_limit_gb if the estimate is too cautious{eager}")
    return need
