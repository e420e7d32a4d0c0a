"""A training iteration at the GPU's speed: captured once as a CUDA graph, then replayed.

An eager iteration of a small candidate launches ~600 kernels and spends most of its wall time in Python
and in launches; the card idles. A CUDA graph records the whole iteration once (G forward, D on real and
fake, the gradient penalty with its double backward, drift, both Adam updates, the EMA) and replays it
with one launch. What changes between iterations lives in static device buffers written before each replay:

- the real batch: drawn on the CPU by the sampler, copied into a ring of pinned host buffers, then to the
  device without blocking (``Uploader``);
- the noise: drawn by the trainer's own CUDA generator into the latent and mixing buffers, outside the
  graph, so the numbers (and the RNG state a checkpoint saves) are exactly the eager ones;
- alpha (fade-in) and the EMA weight (with ``ema_rampup``): 0-dim device tensors filled in place, so a
  fade-in replays one graph instead of recapturing every step.

The graph is captured after a few eager warm-up iterations on a side stream (PyTorch's whole-network
recipe: optimizer state, cuDNN plans and autograd's streams exist before capture). The warm-up iterations
are real training iterations that run the very code the graph records, so graphed training is eager
training, iteration for iteration. The graph is recaptured only when the networks change: at the end of a
fade-in, when the old toRGB/fromRGB are dropped.

Everything here that decides (``CapturePlan``, ``adam_options``, ``channels_last_enabled``...) is plain
Python, tested on the CPU; the capture itself needs a GPU (``benchmarks/gpu_check.py``).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

WARMUP_STEPS = 3  # eager iterations before each capture (PyTorch's recipe uses 3; 11 under DDP)
PINNED_SLOTS = 4  # host buffers in the upload ring: the host may run this many iterations ahead of the GPU

Action = Literal["eager", "capture", "replay", "fallback"]


def graphs_enabled(device_type: str, cuda_graphs: bool) -> bool:
    """CUDA graphs run on CUDA only; the CPU path is the plain eager loop whatever the setting says."""
    return cuda_graphs and device_type == "cuda"


def channels_last_enabled(device_type: str, setting: bool | None, bf16: bool) -> bool:
    """Channels-last on CUDA when asked, or by default with bf16 autocast: cuDNN's bf16 tensor-core kernels
    read NHWC, and NCHW activations cost a transpose before and after every conv."""
    if device_type != "cuda":
        return False
    return bf16 if setting is None else setting


def adam_options(device_type: str, graphs: bool) -> dict[str, bool]:
    """Adam's implementation: on CUDA fused (one kernel for all parameters, ``step`` kept on the device so
    nothing syncs), capturable under graphs; the CPU keeps its foreach Adam (bit-for-bit the results it had)."""
    if device_type != "cuda":
        return {"foreach": True}
    return {"fused": True, "capturable": graphs}


@dataclass
class CapturePlan:
    """When an iteration runs eagerly (warm-up), is captured, or is replayed. Plain bookkeeping, no torch.

    ``key`` names the network structure an iteration runs (the trainer passes whether it is fading in): a new
    key drops the graph, warms up again and recaptures. A capture that fails leaves graphs off for good
    (``fallback``: the same iteration, eagerly) rather than stopping the candidate.
    """

    warmup: int = WARMUP_STEPS
    key: Hashable | None = None
    eager_done: int = 0
    captured: bool = False
    failed: str | None = None
    _started: bool = field(default=False, repr=False)

    def next(self, key: Hashable) -> tuple[Action, bool]:
        """(what to do, whether the graph held now must be dropped first)."""
        if self.failed is not None:
            return "fallback", False
        drop = False
        if not self._started or key != self.key:
            drop = self.captured
            self.key, self.eager_done, self.captured, self._started = key, 0, False, True
        if self.captured:
            return "replay", False
        if self.eager_done < self.warmup:
            return "eager", drop
        return "capture", drop

    def done(self, action: Action) -> None:
        if action == "eager":
            self.eager_done += 1
        elif action == "capture":
            self.captured = True

    def fail(self, reason: str) -> None:
        self.failed, self.captured = reason, False

    def reset(self) -> None:
        """Something outside the graph replaced tensors it reads (loaded state): warm up and capture again."""
        self._started, self.captured = False, False


class Uploader:
    """Copies CPU batches to the device through a ring of pinned host buffers, without a host sync.

    A copy from pageable memory makes the host wait for the GPU; from pinned memory it is queued like a
    kernel. A slot is written again only once the copy that last read it has run (``PINNED_SLOTS`` iterations
    back, normally long done), so the host runs ahead of the GPU by that many iterations at most.
    """

    def __init__(self, shape: Sequence[int], device: torch.device, slots: int = PINNED_SLOTS):
        pin = device.type == "cuda"
        self.host = [torch.empty(tuple(shape), pin_memory=pin) for _ in range(slots)]
        self.events: list[Any] = [None] * slots
        self.slot = 0

    def copy(self, batch: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out`` (a device tensor) := ``batch`` (a CPU tensor), queued on the current stream."""
        i = self.slot
        self.slot = (i + 1) % len(self.host)
        event = self.events[i]
        if event is not None and not event.query():
            event.synchronize()  # the copy PINNED_SLOTS iterations ago is still queued: the host is far ahead
        self.host[i].copy_(batch)
        out.copy_(self.host[i], non_blocking=True)
        if out.is_cuda:
            if event is None:
                event = self.events[i] = torch.cuda.Event()
            event.record(torch.cuda.current_stream(out.device))
        return out


class StaticInputs:
    """The device buffers a captured iteration reads; written in place before every replay."""

    def __init__(self, batch_size: int, latent_size: int, image_shape: Sequence[int], device: torch.device):
        self.real = torch.empty(batch_size, *image_shape, device=device)
        self.z = torch.empty(batch_size, latent_size, device=device)
        self.eps = torch.empty(batch_size, 1, 1, 1, device=device)
        self.alpha = torch.zeros((), device=device)
        self.ema_weight = torch.zeros((), device=device)

    def draw_noise(self, rng: torch.Generator) -> None:
        """The eager step's ``torch.randn`` and ``torch.rand`` (they are ``normal_`` and ``uniform_`` on a new
        tensor): the same numbers from the same generator state, into the static buffers."""
        self.z.normal_(generator=rng)
        self.eps.uniform_(generator=rng)


def ema_update(ema: list[torch.Tensor], params: list[torch.Tensor], weight: float | torch.Tensor) -> None:
    """ema := lerp(ema, params, weight); ``weight`` may be a 0-dim device tensor (EMA ramp-up in a graph)."""
    if isinstance(weight, torch.Tensor):
        torch._foreach_lerp_(ema, params, [weight] * len(params))  # broadcast per tensor: lerp_'s own kernel
    else:
        torch._foreach_lerp_(ema, params, weight)


class GraphedStep:
    """Runs a training iteration (``body``: reads the static inputs, returns the stats vector) the way
    ``CapturePlan`` says: eagerly on a side stream, captured into a CUDA graph, or replayed."""

    def __init__(self, device: torch.device, release_grads: Callable[[], None], warmup: int = WARMUP_STEPS):
        self.device = device
        self.release_grads = release_grads  # sets .grad to None: captured backward passes allocate them anew
        self.plan = CapturePlan(warmup)
        self.graph: Any = None
        self.output: torch.Tensor | None = None
        self.captures = 0
        self._side: Any = None
        self._capture_stream: Any = None

    def run(self, key: Hashable, body: Callable[[], torch.Tensor]) -> torch.Tensor:
        action, drop = self.plan.next(key)
        if drop:
            self.release()
        if action == "replay":
            out = self._replay()
        elif action == "eager":
            out = self._eager(body)
        elif action == "capture":
            try:
                self._capture(body)
            except RuntimeError as exc:  # an op that cannot be captured: train on, eagerly, and say so
                self.release()
                self.plan.fail(f"{type(exc).__name__}: {exc}")
                warnings.warn(f"CUDA graph capture failed, training continues without graphs: {exc}",
                              RuntimeWarning, stacklevel=3)
                action = "fallback"
                out = body()
            else:
                out = self._replay()
        else:
            out = body()
        self.plan.done(action)
        return out

    def release(self) -> None:
        """Drop the graph and its private memory (the gradients it allocated included)."""
        if self.graph is not None:
            self.graph.reset()
        self.graph, self.output = None, None
        self.release_grads()

    def reset(self) -> None:
        self.release()
        self.plan.reset()

    def _replay(self) -> torch.Tensor:
        self.graph.replay()
        assert self.output is not None
        return self.output

    def _eager(self, body: Callable[[], torch.Tensor]) -> torch.Tensor:
        if self._side is None:
            self._side = torch.cuda.Stream(self.device)
        current = torch.cuda.current_stream(self.device)
        self._side.wait_stream(current)
        with torch.cuda.stream(self._side):
            out = body()
        current.wait_stream(self._side)
        out.record_stream(current)  # the caller reads it on the current stream
        return out

    def _capture(self, body: Callable[[], torch.Tensor]) -> None:
        self.release_grads()
        if self._capture_stream is None:
            self._capture_stream = torch.cuda.Stream(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.device(self.device), torch.cuda.graph(graph, stream=self._capture_stream):
            output = body()
        self.graph, self.output = graph, output
        self.captures += 1


@contextlib.contextmanager
def on_stream(stream: Any) -> Iterator[None]:
    """Make ``stream`` current (CUDA), or do nothing (``None``: the CPU)."""
    if stream is None:
        yield
    else:
        with torch.cuda.stream(stream):
            yield
