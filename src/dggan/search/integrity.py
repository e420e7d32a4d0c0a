"""What a run folder holds is what its ledger says it holds: the data a run trains on (fingerprinted at the start,
compared on every resume) and the final model's checkpoint (its genome against the ledger's final candidate).
The ledger is the truth; a file that disagrees with it is refused in one line that names the file and the fix."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, SearchError
from ..execution.state import Status
from ..runs import RunLayout
from .config import SearchConfig
from .ledger import FinalRow, Ledger
from .view import RunView

DATA_KEY = "data_fingerprint"  # ledger meta: the content fingerprint of the data the run trains on


def check_same_data(run_dir: str | Path, config: SearchConfig) -> None:
    """The data a run trains on is the data it started with: its fingerprint is recorded in the ledger at the
    start and compared on every resume (a file replaced at the same path would otherwise change the result)."""
    from ..execution.worker import open_data_cached

    fingerprint = open_data_cached(config.data).fingerprint()
    with Ledger.open(RunLayout(run_dir).ledger) as ledger:
        recorded = ledger.get_meta(DATA_KEY)
        if recorded is None:  # a new run, or one made before fingerprints were recorded
            ledger.set_meta(DATA_KEY, fingerprint)
        elif recorded != fingerprint:
            raise SearchError(f"data {config.data!r} is not the data this run started with (its content fingerprint"
                              f" was {recorded}, now {fingerprint}): restore the original files, or start a new"
                              " search with --run-dir")


def final_checkpoint(layout: RunLayout, final: FinalRow, view: RunView | None = None) -> Path:
    """The final model's checkpoint, checked: it exists and holds the genome of the candidate the ledger says the
    final training trained (``RUN/best`` replaced by another model would otherwise be reported as the result).
    ``view``: the run's, when read already."""
    if final.status != Status.DONE or not final.checkpoint:
        raise SearchError(f"{layout.root}: the search has no final model yet (status: {final.status}); let it"
                          " finish (dggan search --resume) first")
    path = layout.resolve(final.checkpoint)
    from ..training.checkpoint import load_checkpoint

    expected = (view or RunView.read(layout.root)).candidate(final.candidate).genome
    try:
        held = load_checkpoint(path, tensors=False).genome
    except CheckpointError as exc:
        raise SearchError(f"the final model's checkpoint is missing or unreadable ({exc}); restore {path} from a"
                          " backup (the ledger still records its scores)") from None
    if held.key() != expected.key():
        raise SearchError(f"{path} holds genome {held.key()} ({held.summary()}), but the ledger's final model is"
                          f" candidate {final.candidate}, genome {expected.key()} ({expected.summary()}): the file"
                          " was replaced by another model's; restore it from a backup")
    return path
