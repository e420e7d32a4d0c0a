"""Analyses of a search run (the paper's Fig. 3) and its HTML report."""

from .analyses import (
    ActionEffect,
    Capacity,
    CapacityPoint,
    PruningRisk,
    ReplayCell,
    ReplayIndex,
    ReplayRun,
    action_effects,
    action_label,
    capacity,
    pruning_risk,
    replay_grid,
    score_key,
    search_hyperparameters,
)
from .report import ReportError, ReportResult, generate_report

__all__ = [
    "ActionEffect",
    "Capacity",
    "CapacityPoint",
    "PruningRisk",
    "ReplayCell",
    "ReplayIndex",
    "ReplayRun",
    "ReportError",
    "ReportResult",
    "action_effects",
    "action_label",
    "capacity",
    "generate_report",
    "pruning_risk",
    "replay_grid",
    "score_key",
    "search_hyperparameters",
]
