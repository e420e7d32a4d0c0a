"""dggan: Dynamically Grown GANs (Liu, Zhang, Deng, Soatto, AAAI 2021).

The small public API: genomes and growth actions, networks, inheritance, training, checkpoints,
datasets, metrics and the search.
"""

from .actions import Action, ActionSpace, GrowthLimits, InvalidActionError, apply_action, valid_actions
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, load_generator
from .genome import ConvLayer, Genome, GenomeError, constant_channels, proggan_channels
from .inherit import InheritanceReport, inherit_weights
from .networks import Discriminator, Generator
from .train import ConfigError, TrainConfig, Trainer, TrainResult

__version__ = "0.1.0"

__all__ = [
    "Action", "ActionSpace", "Checkpoint", "CheckpointError", "ConfigError", "ConvLayer", "Discriminator",
    "Generator", "Genome", "GenomeError", "GrowthLimits", "InheritanceReport", "InvalidActionError",
    "TrainConfig", "TrainResult", "Trainer", "apply_action", "constant_channels", "inherit_weights",
    "load_checkpoint", "load_generator", "proggan_channels", "valid_actions",
]
