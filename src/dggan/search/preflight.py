"""Everything a search can check before a run folder is made or any work is done: the data, the metric's
weights, the device, the sizes of the largest genomes, the executor. Each check raises one ``SearchError``
that names the setting and the fix."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError, DgganError, InvalidActionError, MetricError, SearchError
from ..runs import check_new_run_dir
from .baseline import static_curve
from .config import SearchConfig


def data_channels(config: SearchConfig) -> int:
    from ..execution.worker import open_data_cached

    return open_data_cached(config.data).channels


def check_data(config: SearchConfig) -> None:
    """The dataset opens, is large enough for the target resolution and holds at least one batch."""
    from ..execution.worker import open_data_cached

    try:
        source = open_data_cached(config.data)
    except DatasetError as exc:
        raise SearchError(f"data {config.data!r}: {exc} (set it with --set data=KIND:PATH,"
                          " e.g. data=cifar10:/data/cifar-10-batches-py)") from None
    if source.resolution < config.target_resolution:
        raise SearchError(f"data {config.data!r} is stored at {source.resolution}px, below the target resolution"
                          f" {config.target_resolution}px; use larger images or a lower target_resolution")
    if len(source) < config.batch_size:
        raise SearchError(f"data {config.data!r} has {len(source)} images, fewer than one batch of"
                          f" {config.batch_size}; use more images or --set batch_size={max(2, len(source))}")


def check_metric(config: SearchConfig) -> None:
    """A metric that needs the Inception weights (FID, IS, KID) loads them now, not after the first candidate's
    training."""
    from ..metrics.fid import get_inception
    from ..metrics.registry import parse_metric

    if parse_metric(config.metric).needs_inception:
        try:
            get_inception(config.inception_weights, "cpu")
        except MetricError as exc:
            raise SearchError(f"metric {config.metric}: {exc} (for a search: --set inception_weights=PATH)") from None


def check_device(config: SearchConfig) -> None:
    """A CUDA device that does not exist fails now, not inside every candidate."""
    if config.device.startswith("cuda"):
        from ..training.trainer import pick_device

        try:
            pick_device(config.device)
        except DgganError as exc:
            raise SearchError(f"{exc} (or --device auto)") from None


def check_sizes(config: SearchConfig) -> None:
    """The initial genomes, and each with the largest layer of the action space grown into G or D, fit the
    device (absurd widths or filter counts fail here, not by exhausting the machine)."""
    from ..model.actions import Action, apply_action
    from ..model.memory import check_fits

    device = config.resolved_device()
    graphs = {"graphs": config.cuda_graphs and device.startswith("cuda"), "self_check": config.graph_self_check}
    space = config.action_space()
    for genome in config.initial_genomes():
        check_fits(genome, config.batch_size, device, config.memory_limit_gb, "an initial genome", **graphs)
        for kind in dict.fromkeys(a.kind for a in space.actions() if a.kernel is not None):  # the conv actions
            try:
                grown = apply_action(genome, Action(kind, max(config.kernels), max(config.filters)),
                                     config.limits(), space)
            except InvalidActionError:  # e.g. max_g_layers = 0: that layer is never grown
                continue
            check_fits(grown, config.batch_size, device, config.memory_limit_gb,
                       f"a child with the action space's largest {kind} layer", **graphs)


def check_executor(config: SearchConfig) -> None:
    """What the executor registered to check before any work starts (the slurm executor: submitit, SLURM with
    its accounting, and a partition that can run the jobs the settings ask for)."""
    from ..execution.executors import check_executor_settings

    check_executor_settings(config)


def validate_new_search(config: SearchConfig, run_dir: str | Path | None = None) -> None:
    """Everything that can be checked before a run folder is made or any work is done."""
    if run_dir is not None:
        check_new_run_dir(Path(run_dir))
    check_executor(config)
    static_curve(config)
    check_device(config)
    check_sizes(config)
    check_data(config)
    check_metric(config)
