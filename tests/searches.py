"""The tiny search the tests share: seconds on a CPU, two steps, 8 -> 16 px. Test files derive their own
variants from it (``tiny(**overrides)``) instead of keeping copies of its settings."""

from __future__ import annotations

from typing import Any

from dggan.search.config import SearchConfig

TINY: dict[str, Any] = {
    "data": "synthetic:n=64,res=16", "metric": "swd32", "baseline": {8: 100.0, 16: 100.0},
    "initial_channels": [8], "latent_size": 8, "target_resolution": 16, "top_k": 2, "p": 0.5,
    "kernels": [3], "filters": [8, 16], "iterations": 4, "final_iterations": 2, "max_steps": 2,
    "batch_size": 8, "sample_grid": 4, "checkpoint_every": 2, "eval_batch_size": 32, "device": "cpu",
    "threads": 1, "cache_dir": None, "tables": False,
    # The final training as the paper has it (the best candidate, trained on, scored at its end): the final pick
    # and snapshots (#19) score a tiny search several times more; tests/test_final.py turns them on.
    "final_pick_candidates": 1, "final_snapshots": 1,
}


def tiny(**overrides: Any) -> SearchConfig:
    return SearchConfig.from_dict({**TINY, **overrides})
