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

The graph is captured after a few eager warm-up iterations on the stream it is captured on (PyTorch's
whole-network recipe, as ``torch.cuda.make_graphed_callables`` does: optimizer state, cuDNN plans and autograd's
streams exist before capture). The warm-up iterations
are real training iterations that run the very code the graph records, so graphed training is eager
training, iteration for iteration. The graph is recaptured only when the networks change: at the end of a
fade-in, when the old toRGB/fromRGB are dropped.

Each new graph proves itself before it trains (``SelfCheck``): its first replay is compared with the same
iteration run eagerly; a capture that fails or a graph that disagrees leaves the trainer eager, and says so.
A capture that fails also turns graphs off for the rest of the process (``graphs_off_in_process``): on torch
releases whose ``capture_end`` raises before it ends the allocator's capture routing, every later capture and
``torch.cuda.empty_cache()`` in that process would fail too.

Nothing here holds a trainer strongly (``weak``): a finished trainer, graphed or not, is freed by reference
counting the moment its last reference goes, with its weights, Adam state and graph pool, not whenever
Python's cyclic collector next runs.

Everything here that decides (``CapturePlan``, ``adam_options``, ``channels_last_enabled``...) is plain
Python, tested on the CPU; ``GraphedStep`` makes its CUDA calls through a backend object, so the CPU tests drive
it with ``EmulatedBackend``. The capture itself needs a GPU (``benchmarks/gpu_check.py``).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import os
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch

from ..data.base import BatchSampler

WARMUP_STEPS = 3  # eager iterations before each capture (PyTorch's recipe uses 3; 11 under DDP)
PINNED_SLOTS = 4  # host buffers in the upload ring: the host may run this many iterations ahead of the GPU

Action = Literal["eager", "capture", "replay", "fallback"]


# Why CUDA graphs are off for the rest of this process (a capture failed in it), or None.
_OFF_IN_PROCESS: str | None = None


def graphs_off_in_process() -> str | None:
    """Why CUDA graphs are off in this process (a capture failed here), or None while they may be used."""
    return _OFF_IN_PROCESS


def turn_graphs_off_in_process(reason: str) -> None:
    """No new capture, and no ``empty_cache()``, for the rest of this process, said once, loudly: a failed capture
    may leave the caching allocator routing to the dead capture's pool (torch releases whose ``capture_end`` raises
    before it ends that), and then every later capture and ``empty_cache()`` here fails."""
    global _OFF_IN_PROCESS
    if _OFF_IN_PROCESS is None:
        _OFF_IN_PROCESS = reason
        one_line = " ".join(reason.split())  # (CUDA's messages run over several lines)
        warnings.warn(f"CUDA graphs off for the rest of process {os.getpid()}: {one_line}; every later candidate"
                      " here trains eagerly", RuntimeWarning, stacklevel=2)


def reset_graphs_in_process() -> None:
    """Allow graphs again (tests: each starts as a fresh process would; never after a real failed capture)."""
    global _OFF_IN_PROCESS
    _OFF_IN_PROCESS = None


def graphs_enabled(device_type: str, cuda_graphs: bool) -> bool:
    """CUDA graphs run on CUDA only, and not after a failed capture in this process; the CPU path is the plain
    eager loop whatever the setting says."""
    return cuda_graphs and device_type == "cuda" and _OFF_IN_PROCESS is None


def cuda_in_use() -> bool:
    """Whether this process has started CUDA (only then is there a cache to give back)."""
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def release_cached_memory() -> bool:
    """Give the blocks the caching allocator keeps but nobody uses back to the driver (what finished candidates
    held), so another process sharing the GPU, or the next candidate, can have them; True if it did. Never after a
    failed capture in this process (see ``turn_graphs_off_in_process``): the blocks then stay cached."""
    if _OFF_IN_PROCESS is not None or not cuda_in_use():
        return False
    torch.cuda.empty_cache()
    return True


def set_tf32(allow: bool) -> None:
    """TF32 for float32 convs (cuDNN) and matmuls (cuBLAS), process-wide; off: float32 is float32. The legacy
    flags, on purpose: once torch's newer ``fp32_precision`` API has set them, reading the legacy ones (as
    ``torch.backends.cudnn.flags()`` does) raises."""
    torch.backends.cudnn.allow_tf32 = allow
    torch.backends.cuda.matmul.allow_tf32 = allow


class _WeakMethod:
    """A bound method that does not keep its object alive."""

    __slots__ = ("_ref",)

    def __init__(self, method: Any):
        self._ref = weakref.WeakMethod(method)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        method = self._ref()
        if method is None:
            raise ReferenceError("the trainer this graph belonged to is gone")
        return method(*args, **kwargs)


def weak(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` without a strong reference to its object when it is a bound method (e.g. ``trainer.graph_state``):
    what a trainer's graph keeps of the trainer must not keep the trainer alive (a cycle only the cyclic collector
    would free). Any other callable is returned as it is."""
    return _WeakMethod(fn) if inspect.ismethod(fn) else fn


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

    def __init__(self, shape: Sequence[int], device: torch.device, slots: int = PINNED_SLOTS,
                 dtype: torch.dtype = torch.float32):
        pin = device.type == "cuda"
        self.host = [torch.empty(tuple(shape), dtype=dtype, pin_memory=pin) for _ in range(slots)]
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


class RawBatchSampler(BatchSampler):
    """A ``BatchSampler`` that can also hand out its batch before it becomes float (``draw_uint8``): a quarter of
    float32's bytes to upload, made float on the device by ``to_float``, bit for bit ``draw()``'s batch."""

    def serves_raw(self) -> bool:
        """Whether ``draw_uint8`` applies: the data is stored at the resolution served (nothing to pool; pooled,
        the float batch is no larger than the raw one, and pooling on the host keeps the CPU's sums)."""
        return self.resolution == self.source.resolution

    def draw_uint8(self) -> torch.Tensor:
        """``draw()``'s next batch as the stored uint8 (flips included): the same images from the same RNG draws.
        ``to_float(draw_uint8(), resolution)`` equals ``draw()`` exactly: flipping commutes with the elementwise
        normalisation (tests/test_gpu_path.py pins it)."""
        if not self.serves_raw():
            raise ValueError(f"draw_uint8 serves the stored {self.source.resolution}px only, not {self.resolution}px")
        if self._pos + self.batch_size > len(self._perm):
            self._perm = torch.randperm(len(self.source), generator=self.generator)
            self._pos = 0
        idx = self._perm[self._pos:self._pos + self.batch_size].numpy()
        self._pos += self.batch_size
        x = torch.as_tensor(self.source.get(idx))
        if self.flip:
            mask = torch.rand(len(x), generator=self.generator) < 0.5
            x = torch.where(mask[:, None, None, None], x.flip(-1), x)
        return x


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


class Backend(Protocol):
    """What ``GraphedStep`` asks of the device: ``CudaBackend`` on a GPU, ``EmulatedBackend`` on the CPU."""

    def new_stream(self) -> Any: ...
    def current_stream(self) -> Any: ...
    def use_stream(self, stream: Any) -> contextlib.AbstractContextManager[Any]: ...
    def record_stream(self, tensor: torch.Tensor, stream: Any) -> None: ...
    def synchronize(self) -> None: ...
    def new_graph(self) -> Any: ...  # with capture_begin(), capture_end(), replay(), reset() (torch.cuda.CUDAGraph's)
    def captured(self, graph: Any, body: Callable[[], torch.Tensor], output: torch.Tensor) -> None: ...


_CAPTURE_STREAMS: dict[int, Any] = {}  # device index -> the warm-up and capture stream


class CudaBackend:
    """Every CUDA call ``GraphedStep`` makes, in one small object: a CPU test hands ``GraphedStep`` an
    ``EmulatedBackend`` instead and so drives its real logic (warm-up, capture, fallback, self-check)."""

    def __init__(self, device: torch.device):
        self.device = device

    def new_stream(self) -> Any:
        """The capture stream: one per device for the whole process, as ``torch.cuda.graph``'s own default. A new
        stream per trainer would leave cuBLAS a workspace for each (kept until the process ends)."""
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        if index not in _CAPTURE_STREAMS:
            _CAPTURE_STREAMS[index] = torch.cuda.Stream(index)
        return _CAPTURE_STREAMS[index]

    def current_stream(self) -> Any:
        return torch.cuda.current_stream(self.device)

    @contextlib.contextmanager
    def use_stream(self, stream: Any) -> Iterator[None]:
        """Make ``stream`` current on this device; the previous stream comes back on exit, whatever raised."""
        with torch.cuda.device(self.device), torch.cuda.stream(stream):
            yield

    def record_stream(self, tensor: torch.Tensor, stream: Any) -> None:
        tensor.record_stream(stream)

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def new_graph(self) -> Any:
        """A graph to capture into, after what ``torch.cuda.graph`` does first: all queued work done, the
        cache emptied (so the graph's private pool does not sit beside blocks nobody uses)."""
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()
        return torch.cuda.CUDAGraph()

    def captured(self, graph: Any, body: Callable[[], torch.Tensor], output: torch.Tensor) -> None:
        """A capture ended well. CUDA recorded the kernels; an emulation keeps ``body`` to replay it."""


@dataclass
class SelfCheck:
    """Compare the first replay of each new graph with the same iteration run eagerly (see ``GraphedStep``).

    ``tensors`` names every tensor an iteration changes (G, D, G_ema, both optimizers' state): snapshotted
    before the replay, compared after it, restored before the eager run. Tolerances are float32's (the graph
    runs the eager kernels, but cuDNN and atomics may sum in another order); bf16 autocast rounds each
    product to 8 bits, so it gets bf16's. Exact under ``torch.use_deterministic_algorithms``.
    """

    tensors: Callable[[], dict[str, torch.Tensor]]
    bf16: bool = False

    def __post_init__(self) -> None:
        self.tensors = weak(self.tensors)  # (the trainer's graph_state: no cycle through the trainer)

    def tolerance(self) -> tuple[float, float]:
        if torch.are_deterministic_algorithms_enabled():
            return 0.0, 0.0
        return (2e-2, 1e-3) if self.bf16 else (1e-4, 1e-5)


def first_mismatch(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor], rtol: float,
                   atol: float) -> str | None:
    """The first tensor of ``got`` not within (rtol, atol) of ``expected``, described; None if all are."""
    for name, want in expected.items():
        have = got[name]
        if want.is_floating_point():
            close = torch.allclose(have.float(), want.float(), rtol=rtol, atol=atol, equal_nan=True)
        else:
            close = torch.equal(have, want)
        if not close:
            diff = (have.double() - want.double()).abs().nan_to_num(nan=float("inf")).max().item()
            return f"{name} differs from eager by up to {diff:.3g} (rtol {rtol:g}, atol {atol:g})"
    return None


def _clone(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: t.detach().clone() for k, t in tensors.items()}


def _restore(tensors: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for k, t in tensors.items():
            t.copy_(saved[k])


class GraphedStep:
    """Runs a training iteration (``body``: reads the static inputs, returns the stats vector) the way
    ``CapturePlan`` says: eagerly (warm-up, on the stream it is then captured on, as
    ``torch.cuda.make_graphed_callables`` does), captured into a CUDA graph, or replayed.

    A new graph proves itself before it trains: with ``check`` (the default), its first replay runs on a
    snapshot of the state, the state is put back, the same iteration runs eagerly on the same static inputs,
    and the two must agree (``SelfCheck``); the eager result is kept. A capture or a first replay that raises
    (anything), or a self-check that disagrees, leaves graphs off for good: the iteration runs eagerly on the
    trainer's stream, after the capture stream is restored and the device has finished its queued work. A
    capture that raises turns graphs off for the whole process too (``turn_graphs_off_in_process``); after that,
    no ``GraphedStep`` captures (a graph it already holds goes on replaying until its network changes).
    ``record()`` says which of these happened.
    """

    def __init__(self, device: torch.device, release_grads: Callable[[], None], warmup: int = WARMUP_STEPS, *,
                 check: SelfCheck | None = None, backend: Backend | None = None):
        self.device = device
        # Sets .grad to None (captured backward passes allocate them anew); weak: no cycle through the trainer.
        self.release_grads = weak(release_grads)
        self.plan = CapturePlan(warmup)
        self.check = check
        self.backend: Backend = backend if backend is not None else CudaBackend(device)
        self.graph: Any = None
        self.output: torch.Tensor | None = None
        self.captures = 0
        self.checks_passed = 0
        self._stream: Any = None  # warm-up and capture stream

    def run(self, key: Hashable, body: Callable[[], torch.Tensor]) -> torch.Tensor:
        action, drop = self.plan.next(key)
        if drop:
            self.release()
        off = graphs_off_in_process()
        if off is not None and action in ("eager", "capture"):  # no new capture in this process
            self.plan.fail(f"CUDA graphs are off in this process: {off}")
            action = "fallback"
        if action == "replay":
            out = self._replay()  # a replay error is the candidate's run's: the worker retries it without graphs
        elif action == "eager":
            out = self._eager(body)
        elif action == "capture":
            out, action = self._capture_and_prove(body)
        else:
            out = body()
        self.plan.done(action)
        return out

    def record(self) -> dict[str, Any]:
        """How this trainer ran: graphed, eager (no capture yet: fewer iterations than the warm-up) or fell back."""
        mode = "fell back" if self.plan.failed else ("graphed" if self.captures else "eager")
        return {"mode": mode, "captures": self.captures, "self_checks_passed": self.checks_passed,
                "self_check": self.check is not None, "why": self.plan.failed or ("" if self.captures else
                                                                                   "no capture yet (warm-up)")}

    def release(self) -> None:
        """Drop the graph and its private memory (the gradients it allocated included)."""
        if self.graph is not None:
            self.graph.reset()
        self.graph, self.output = None, None
        self.release_grads()

    def reset(self) -> None:
        self.release()
        self.plan.reset()

    def _capture_and_prove(self, body: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, Action]:
        stage = "capture"
        tensors: dict[str, torch.Tensor] = {}
        saved: dict[str, torch.Tensor] | None = None
        try:
            self._capture(body)
            stage = "first replay"
            if self.check is None:
                return self._replay(), "capture"
            tensors = self.check.tensors()
            saved = _clone(tensors)
            replayed = {"losses": self._replay().detach().clone(), **_clone(tensors)}
            _restore(tensors, saved)
            stage = "self-check's eager iteration"
            expected = self._eager(body)
            saved = None  # the state is now the eager iteration's, which is what training keeps
            self.release_grads()  # the eager gradients: replays write the graph's own
            problem = first_mismatch({"losses": expected, **tensors}, replayed, *self.check.tolerance())
        except Exception as exc:  # noqa: BLE001 (whatever the capture or its first replay raise: go eager, say why)
            reason = f"{stage} failed: {type(exc).__name__}: {exc}"
            self._fall_back(reason, tensors, saved)
            if stage == "capture":
                turn_graphs_off_in_process(reason)
            return body(), "fallback"
        if problem is not None:
            self._fall_back(f"self-check failed: {problem}", tensors, None)
            return expected, "fallback"
        self.checks_passed += 1
        return expected, "capture"

    def _fall_back(self, reason: str, tensors: dict[str, torch.Tensor], saved: dict[str, torch.Tensor] | None) -> None:
        # Whatever the capture stream still has queued runs before the eager iteration on the trainer's stream
        # (a sticky CUDA error raises here: nothing eager could run either).
        self.backend.synchronize()
        if saved is not None:
            _restore(tensors, saved)  # a replay that raised may have run part of the iteration
        self.release()
        self.plan.fail(reason)
        warnings.warn(f"CUDA graphs off for this trainer, training continues eagerly: {reason}", RuntimeWarning,
                      stacklevel=4)

    def _replay(self) -> torch.Tensor:
        self.graph.replay()
        assert self.output is not None
        return self.output

    def _side(self) -> Any:
        if self._stream is None:
            self._stream = self.backend.new_stream()
        return self._stream

    def _eager(self, body: Callable[[], torch.Tensor]) -> torch.Tensor:
        b, stream = self.backend, self._side()
        current = b.current_stream()
        stream.wait_stream(current)
        with b.use_stream(stream):
            out = body()
        current.wait_stream(stream)
        b.record_stream(out, current)  # the caller reads it on the current stream
        return out

    def _capture(self, body: Callable[[], torch.Tensor]) -> None:
        """Capture ``body`` on the warm-up stream. Unlike ``torch.cuda.graph`` (whose exit ends the capture
        before it restores the stream, and skips the restore when that raises), the stream comes back whatever
        ``capture_end`` or ``body`` raise."""
        b = self.backend
        self.release_grads()
        stream = self._side()
        graph = b.new_graph()
        with b.use_stream(stream):
            graph.capture_begin()
            try:
                output = body()
            except BaseException:
                with contextlib.suppress(Exception):  # end the capture; the body's error is the one to report
                    graph.capture_end()
                raise
            graph.capture_end()
        b.captured(graph, body, output)
        self.graph, self.output = graph, output
        self.captures += 1


class EmulatedStream:
    """A stream for ``EmulatedBackend``: ordering is trivial on the CPU."""

    def __init__(self, name: str):
        self.name = name

    def wait_stream(self, other: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"EmulatedStream({self.name!r})"


class EmulatedGraph:
    """A capture that leaves the state as it was (the CPU runs the body for real: its effects are undone, as a
    capture records kernels without running them) and a replay that runs the body again into the captured
    output. ``fail_end``: an exception ``capture_end`` raises, as CUDA's does for an op it cannot capture."""

    def __init__(self, backend: EmulatedBackend):
        self.backend = backend
        self.body: Callable[[], torch.Tensor] | None = None
        self.output: torch.Tensor | None = None
        self._saved: dict[str, torch.Tensor] | None = None

    def capture_begin(self) -> None:
        self.backend.log.append(("capture_begin", self.backend.current))
        self._saved = _clone(self.backend.state())
        self.backend.capturing = True

    def capture_end(self) -> None:
        self.backend.log.append(("capture_end", self.backend.current))
        self.backend.capturing = False
        assert self._saved is not None
        _restore(self.backend.state(), self._saved)
        self._saved = None
        if self.backend.fail_end is not None:
            raise copy.copy(self.backend.fail_end)  # a fresh one: the stored one would keep each traceback

    def replay(self) -> None:
        self.backend.log.append(("replay", self.backend.current))
        if self.backend.fail_replay is not None:
            raise copy.copy(self.backend.fail_replay)
        assert self.body is not None and self.output is not None
        fresh = self.body()
        self.output.copy_(fresh)
        if self.backend.corrupt_replay is not None:
            self.backend.corrupt_replay()

    def reset(self) -> None:
        self.body = self.output = None


class EmulatedBackend:
    """``GraphedStep``'s backend on the CPU (tests, ``gpu_check.py --dry-run``): streams are names, a graph is
    the body run again. ``state`` gives the tensors an iteration changes (``Trainer.graph_state``). Faults to
    inject: ``fail_end`` (capture_end raises it), ``fail_replay`` (every replay raises it), ``corrupt_replay``
    (called after each replay: a graph that computes something else). ``log``: (event, current stream);
    ``capturing``: between capture_begin and capture_end (a test's op can refuse to be captured, as on CUDA)."""

    def __init__(self, state: Callable[[], dict[str, torch.Tensor]]):
        self.state = weak(state)  # (``trainer.graph_state``: no cycle through the trainer)
        self.default = EmulatedStream("default")
        self.current: Any = self.default
        self.log: list[tuple[str, Any]] = []
        self.fail_end: BaseException | None = None
        self.fail_replay: BaseException | None = None
        self.corrupt_replay: Callable[[], None] | None = None
        self.capturing = False
        self._streams = 0

    def new_stream(self) -> EmulatedStream:
        self._streams += 1
        return EmulatedStream(f"side{self._streams}")

    def current_stream(self) -> Any:
        return self.current

    @contextlib.contextmanager
    def use_stream(self, stream: Any) -> Iterator[None]:
        previous, self.current = self.current, stream
        try:
            yield
        finally:
            self.current = previous

    def record_stream(self, tensor: torch.Tensor, stream: Any) -> None:
        pass

    def synchronize(self) -> None:
        self.log.append(("synchronize", self.current))

    def new_graph(self) -> EmulatedGraph:
        return EmulatedGraph(self)

    def captured(self, graph: EmulatedGraph, body: Callable[[], torch.Tensor], output: torch.Tensor) -> None:
        graph.body, graph.output = body, output


@contextlib.contextmanager
def on_stream(stream: Any) -> Iterator[None]:
    """Make ``stream`` current (CUDA), or do nothing (``None``: the CPU)."""
    if stream is None:
        yield
    else:
        with torch.cuda.stream(stream):
            yield
