"""dggan: Dynamically Grown GANs (Liu, Zhang, Deng, Soatto, AAAI 2021).

The small public API, one hop from here (imported on first use, so ``import dggan`` and the CLI start fast):

- the architecture: ``Genome`` (the single source of truth), growth ``Action``s and ``apply_action``,
  the ``Generator``/``Discriminator`` built from a genome, ``inherit_weights``;
- training: ``TrainConfig``, ``Trainer`` (WGAN-GP, fade-in, EMA), ``WGANGP``, checkpoints;
- the search: ``SearchConfig``/``preset``, Algorithm 1's ``Rules``, ``run_search``, the ``Ledger`` and
  candidate ``Status``;
- metrics: ``evaluate`` (FID/IS through torch-fidelity, SWD); data: ``open_dataset``;
- errors: every user-fixable error is a ``DgganError``.
"""

from __future__ import annotations

from ._lazy import lazy_getattr

__version__ = "0.2.0"

_EXPORTS: dict[str, str] = {
    "Action": "actions", "ActionSpace": "actions", "GrowthLimits": "actions", "apply_action": "actions",
    "valid_actions": "actions",
    "ConvLayer": "genome", "Genome": "genome", "constant_channels": "genome", "proggan_channels": "genome",
    "Generator": "networks", "Discriminator": "networks",
    "InheritanceReport": "inherit", "inherit_weights": "inherit",
    "TrainConfig": "train", "TrainResult": "train", "Trainer": "train",
    "WGANGP": "loss",
    "Checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "load_generator": "checkpoint",
    "sample_images": "sampling",
    "RunLayout": "runs",
    "SearchConfig": "search.config", "preset": "search.config",
    "Rules": "search.algorithm",
    "run_search": "search.driver",
    "Ledger": "search.ledger", "Status": "search.ledger",
    "evaluate": "metrics", "open_dataset": "data",
    "DgganError": "errors", "ConfigError": "errors", "GenomeError": "errors", "InvalidActionError": "errors",
    "CheckpointError": "errors", "DatasetError": "errors", "MetricError": "errors", "SearchError": "errors",
    "LedgerError": "errors", "ReportError": "errors",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
