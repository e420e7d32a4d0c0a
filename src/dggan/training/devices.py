"""Which device a model trains on, decided here and nowhere else.

``resolve_device`` turns a device name into the device to use (``auto``, or no name, is a GPU when this process
sees one, else the CPU); ``pick_device`` checks that a named GPU exists before anything is built on it. Every
command's ``--device``, a search's ``device`` setting, the executors' placement and a worker without one ask these.
Torch loads only when a question needs it (``auto``; ``pick_device``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._util.settings import check_device_name
from ..errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str | None = None, field: str = "device") -> str:
    """The device ``name`` means: None and ``auto`` are ``cuda`` when this process sees a GPU, else ``cpu``;
    ``cpu``, ``cuda`` and ``cuda:N`` are themselves. Any other name is refused with a ``ConfigError`` naming
    ``field``. Whether a named GPU exists is ``pick_device``'s question."""
    value = check_device_name("auto" if name is None else name, field, allow_auto=True)
    if value != "auto":
        return value
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_device(device: str) -> torch.device:
    """``device`` (``cpu``, ``cuda`` or ``cuda:N``) as a torch device, refused when this machine has no such GPU."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu")
        index = torch.device(device).index
        if index is not None and index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA"
                              " device(s) exist")
    return torch.device(device)
