"""dggan: Dynamically Grown GANs (Liu, Zhang, Deng, Soatto, AAAI 2021).

The small public API, one hop from here (imported on first use, so ``import dggan`` and the CLI start fast):

- the architecture: ``Genome`` (the single source of truth), growth ``Action``s and ``apply_action``,
  the ``Generator``/``Discriminator`` built from a genome, ``inherit_weights``;
- training: ``TrainConfig``, ``Trainer`` (a loss by name: WGAN-GP or R1; fade-in, EMA), ``WGANGP``, checkpoints;
- the search: ``SearchConfig``/``preset``, Algorithm 1's ``Rules``, ``run_search``, the ``Ledger`` and
  candidate ``Status``;
- metrics: ``evaluate`` (FID/IS/KID through torch-fidelity, SWD; kinds registered by name); data: ``open_dataset``;
- errors: every user-fixable error is a ``DgganError``.
"""

from __future__ import annotations

from ._util.lazy import lazy_getattr

__version__ = "0.3.0"

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("Action", "ActionSpace", "GrowthLimits", "apply_action", "valid_actions"), "model.actions"),
    "register_action": "model.actions",
    **dict.fromkeys(("ConvLayer", "Genome", "constant_channels", "proggan_channels"), "model.genome"),
    "Generator": "model.networks", "Discriminator": "model.networks",
    "InheritanceReport": "model.inherit", "inherit_weights": "model.inherit",
    "TrainConfig": "training.config", "TrainResult": "training.trainer", "Trainer": "training.trainer",
    "WGANGP": "training.loss",
    **dict.fromkeys(("Checkpoint", "load_checkpoint", "load_generator"), "training.checkpoint"),
    "sample_images": "model.sampling",
    "RunLayout": "runs",
    "SearchConfig": "search.config", "preset": "search.config",
    "Rules": "search.algorithm",
    "run_search": "search.driver",
    "Ledger": "search.ledger", "Status": "execution.state",
    "evaluate": "metrics", "open_dataset": "data",
    **dict.fromkeys(("DgganError", "ConfigError", "GenomeError", "InvalidActionError", "CheckpointError",
                     "DatasetError", "MetricError", "SearchError", "LedgerError", "ReportError"), "errors"),
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
