"""Checkpoints that describe themselves: one safetensors file holding weights, EMA, optimizer and RNG
state, with the genome and the training state as JSON in its metadata. No pickled objects anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .._util.files import readable, temp_path_for
from ..errors import CheckpointError, GenomeError
from ..model.genome import Genome
from ..model.networks import Generator

CHECKPOINT_FORMAT = "dggan-checkpoint/1"




@dataclass
class Checkpoint:
    path: Path
    genome: Genome
    state: dict[str, Any]  # training state: iteration, total_iterations, fade_in, alpha, config, ...
    tensors: dict[str, torch.Tensor]

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under ``prefix.`` with the prefix stripped (e.g. ``G`` -> the generator's state)."""
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}


def save_checkpoint(path: str | Path, genome: Genome, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """Write atomically: a reader sees the previous checkpoint or this one, never a partial file."""
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        metadata = {"format": CHECKPOINT_FORMAT, "genome": genome.to_json(indent=None), "state": json.dumps(state)}
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        readable(tmp)  # safetensors writes 0600; a checkpoint is as readable as any file the user makes
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", tensors: bool = True) -> Checkpoint:
    """The checkpoint at ``path``; ``tensors=False`` reads only the genome and training state."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            metadata = f.metadata() or {}
            weights = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}  # noqa: SIM118 (no __iter__)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt: {exc});"
                              " use an earlier checkpoint or retrain") from None
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a dggan checkpoint (format {metadata.get('format')!r},"
                              f" expected {CHECKPOINT_FORMAT!r})")
    try:
        genome = Genome.from_json(metadata["genome"], source=f"{path} [genome]")
        state = json.loads(metadata["state"])
        _check_state_fields(state)
    except (KeyError, TypeError, ValueError, json.JSONDecodeError, GenomeError) as exc:
        raise CheckpointError(f"{path}: bad checkpoint metadata ({exc}); the file was edited or damaged, use an"
                              " earlier checkpoint or retrain") from None
    return Checkpoint(path=path, genome=genome, state=state, tensors=weights)


def _check_state_fields(state: Any) -> None:
    """The training state's fields have the types the trainer relies on (an edited file fails here)."""
    if not isinstance(state, dict):
        raise TypeError("the training state is not a JSON object")
    iteration = state.get("iteration", 0)  # absent in weights-only files; Trainer.resume requires it
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        raise ValueError(f"'iteration' must be an integer >= 0, got {iteration!r}")
    alpha = state.get("alpha", 1.0)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 <= alpha <= 1:
        raise ValueError(f"'alpha' must be a number in [0, 1], got {alpha!r}")
    if not isinstance(state.get("fade_in", False), bool):
        raise ValueError(f"'fade_in' must be true or false, got {state.get('fade_in')!r}")
    if not isinstance(state.get("config", {}), dict):
        raise ValueError("'config' must be a JSON object")


def check_state(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str, path: Path) -> None:
    """Strict name and shape check of a state against the network its genome builds."""
    expected = {k: v.shape for k, v in module.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: {what} weights do not match the checkpoint's genome"
                              f" (missing {missing[:3]}, unexpected {extra[:3]})")
    for name, shape in expected.items():
        if state[name].shape != shape:
            raise CheckpointError(f"{path}: {what} tensor {name} has shape {tuple(state[name].shape)}"
                                  f" but the genome needs {tuple(shape)}")


def optimizer_tensors(opt: torch.optim.Optimizer, net: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state keyed by parameter *name* (``opt_g.b8_conv0.weight.exp_avg``),
    so it survives the network being rebuilt from the genome."""
    out: dict[str, torch.Tensor] = {}
    for pname, p in net.named_parameters():
        for key, value in opt.state.get(p, {}).items():
            out[f"{prefix}.{pname}.{key}"] = torch.as_tensor(value)
    return out


ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")


def load_optimizer_state(opt: torch.optim.Optimizer, net: torch.nn.Module, state: dict[str, torch.Tensor],
                         path: Path) -> None:
    """Put Adam state saved by ``optimizer_tensors`` (prefix stripped) back, by parameter name, shape-checked."""
    for pname, p in net.named_parameters():
        entries = {key: state[f"{pname}.{key}"] for key in ADAM_STATE if f"{pname}.{key}" in state}
        if not entries:
            continue
        if len(entries) != len(ADAM_STATE) or entries["exp_avg"].shape != p.shape:
            raise CheckpointError(f"{path}: optimizer state for {pname} is incomplete or has the wrong shape")
        # A capturable/fused Adam keeps ``step`` on the parameter's device; the default keeps it on the CPU.
        on_device = bool(opt.defaults.get("capturable") or opt.defaults.get("fused"))
        opt.state[p] = {k: _like(v, p) if k != "step" else v.to(p.device) if on_device else v.cpu()
                        for k, v in entries.items()}


def _like(value: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``value`` on ``p``'s device in ``p``'s memory layout (fused Adam walks both as flat arrays, so a
    channels-last parameter needs channels-last moments)."""
    return value.to(p.device) if p.is_contiguous() else torch.empty_like(p).copy_(value)


def load_generator(path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> tuple[Genome, Generator]:
    """The (EMA) generator of a checkpoint, in eval mode, ready to sample."""
    ckpt = load_checkpoint(path)
    fade_in = bool(ckpt.state.get("fade_in", False))
    net = Generator(ckpt.genome, fade_in=fade_in)
    if fade_in:
        net.set_alpha(float(ckpt.state.get("alpha", 1.0)))
    group = "G_ema" if ema and any(k.startswith("G_ema.") for k in ckpt.tensors) else "G"
    state = ckpt.group(group)
    check_state(net, state, group, ckpt.path)
    net.load_state_dict(state)
    return ckpt.genome, net.to(device).eval()
