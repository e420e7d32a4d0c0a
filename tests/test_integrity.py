"""A run folder that proves its own integrity (#31), by class of fault: what a resume reads is checked against
what the run recorded; a damaged ledger is one line wherever it is met; a read-only run can still be looked
at; a half-made folder says what to do; inputs that would hang or blow up are refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.fake_executor import CurveExecutor
from searches import tiny
from typer.testing import CliRunner

from dggan.cli import app
from dggan.errors import LedgerError, SearchError
from dggan.search.config import create_run, load_run_config
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger

runner = CliRunner()


@pytest.fixture
def finished(tmp_path: Path, fake_checkpoints: None) -> Path:
    """A finished search on the fake executor (nothing trained: milliseconds)."""
    run = tmp_path / "run"
    run_search(run, tiny(baseline="none", max_steps=1, final_iterations=0), executor=CurveExecutor(), progress=False)
    return run


# ---------------------------------------------------------------------- what a resume reads is what the run recorded
def test_an_edited_options_json_is_refused_with_a_diff_and_the_ledger_wins(finished: Path) -> None:
    options = finished / "options.json"
    settings = json.loads(options.read_text())
    assert load_run_config(finished).p == settings["p"]
    options.write_text(json.dumps({**settings, "p": 0.9, "top_k": 7}))
    with pytest.raises(SearchError, match="differs from the settings the run was made with") as refused:
        load_run_config(finished)
    assert "p: 0.5 in the ledger, 0.9 in options.json" in str(refused.value)
    assert "top_k: 2 in the ledger, 7 in options.json" in str(refused.value)
    result = runner.invoke(app, ["search", "--resume", str(finished), "--no-progress"])
    assert result.exit_code == 2 and "restore options.json" in result.output and "Traceback" not in result.output
    # A runtime setting (where the search runs, not what it computes) may differ; the ledger's copy is used.
    options.write_text(json.dumps({**settings, "threads": 2}))
    assert load_run_config(finished).threads == settings["threads"]
    options.unlink()  # the people's copy gone: the ledger still holds the settings
    assert load_run_config(finished).p == settings["p"]


def test_a_half_made_run_folder_says_delete_and_start_again_both_ways(tmp_path: Path) -> None:
    half = tmp_path / "half"
    half.mkdir()
    (half / "options.json").write_text(json.dumps(tiny().to_dict()))
    for args in (["search", "--resume", str(half)], ["search", "--run-dir", str(half)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "holds options.json but no ledger.sqlite" in result.output and "delete the folder" in result.output
    # A run made now writes the ledger (the truth) before options.json (the copy for people).
    made = create_run(tmp_path / "new", tiny())
    assert (made / "ledger.sqlite").stat().st_mtime_ns <= (made / "options.json").stat().st_mtime_ns


# ---------------------------------------------------------------------- a damaged ledger
@pytest.fixture
def damaged(finished: Path) -> Iterator[Path]:
    """The run with the root page of its candidates table overwritten: the ledger opens (its meta table is
    intact), and the damage is met only when the candidates are read."""
    path = finished / "ledger.sqlite"
    with Ledger.open(path) as ledger:
        ledger._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = ledger._conn.execute("PRAGMA page_size").fetchone()[0]
        root = ledger._conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'candidates'").fetchone()[0]
    with path.open("r+b") as f:
        f.seek((root - 1) * page)
        f.write(b"\xff" * 64)
    yield finished


def test_a_damaged_page_is_one_line_wherever_it_is_met(damaged: Path) -> None:
    messages = []
    for args in (["ls", str(damaged)], ["status", str(damaged)], ["search", "--resume", str(damaged)],
                 ["report", str(damaged)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert "Traceback" not in result.output and len(errors) == 1, result.output
        messages.append(result.output)
    assert all("damaged" in m and "restore it from a backup" in m for m in messages), messages
    with Ledger.open(damaged / "ledger.sqlite", readonly=True) as ledger:  # the library: the file opens ...
        assert ledger.settings()["p"] == 0.5
        with pytest.raises(LedgerError, match="ledger.sqlite: the ledger is damaged .*restore it from a backup"):
            ledger.candidates()  # ... and the damage, met later, is a LedgerError naming the file


def test_the_ledger_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o007)
    try:
        run = create_run(tmp_path / "run", tiny())
    finally:
        os.umask(old)
    assert (run / "ledger.sqlite").stat().st_mode & 0o777 == 0o660
    assert (run / "options.json").stat().st_mode & 0o777 == 0o660


# ---------------------------------------------------------------------- a read-only run
@pytest.fixture
def read_only(finished: Path, tmp_path: Path) -> Iterator[Path]:
    """The finished run seen through a read-only bind mount (root only; skipped elsewhere)."""
    Ledger.open(finished / "ledger.sqlite").close()  # the last connection to close folds the log in, removes it
    assert not list(finished.glob("ledger.sqlite-*"))  # cleanly closed, as after the search's process ended
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "--bind", str(finished), str(mount)], capture_output=True).returncode != 0:
        pytest.skip("a read-only bind mount needs root (mount --bind)")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(mount)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        assert not os.access(mount, os.W_OK)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_cleanly_closed_run_on_a_read_only_filesystem_can_be_read(read_only: Path, tmp_path: Path) -> None:
    for args in (["ls", str(read_only)], ["status", str(read_only)], ["ls", str(read_only), "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert "not a dggan ledger" not in result.output
    assert json.loads(runner.invoke(app, ["ls", str(read_only), "--json"]).output)[0]["id"] == 1
    report = runner.invoke(app, ["report", str(read_only), "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "report" / "index.html").is_file()


def test_data_replaced_at_the_same_path_is_refused_on_resume(tmp_path: Path, fake_checkpoints: None) -> None:
    import numpy as np

    data = tmp_path / "images.npy"
    rng = np.random.default_rng(0)
    np.save(data, rng.integers(0, 256, (64, 3, 16, 16), dtype=np.uint8))
    run = tmp_path / "run"
    config = tiny(baseline="none", max_steps=1, final_iterations=0, data=f"npz:{data}")
    run_search(run, config, executor=CurveExecutor(), progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        assert ledger.get_meta("data_fingerprint")  # recorded when the run started
    run_search(run, resume=True, executor=CurveExecutor(), progress=False)  # the same data: resumes
    np.save(data, rng.integers(0, 256, (64, 3, 16, 16), dtype=np.uint8))  # other images, same path and shape
    from dggan.execution import worker

    worker.open_data_cached.cache_clear()  # a new process would open the file afresh
    with pytest.raises(SearchError, match="is not the data this run started with .*restore the original files"):
        run_search(run, resume=True, executor=CurveExecutor(), progress=False)


def test_a_deleted_final_model_is_said_on_resume(tmp_path: Path, fake_checkpoints: None) -> None:
    run = tmp_path / "run"
    run_search(run, tiny(baseline="none", max_steps=1, final_iterations=2), executor=CurveExecutor(), progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        final = ledger.final()
    assert final is not None and final.checkpoint
    (run / final.checkpoint).unlink()
    with pytest.raises(SearchError, match="final model's checkpoint .* is missing: the run finished"):
        run_search(run, resume=True, executor=CurveExecutor(), progress=False)


# ---------------------------------------------------------------------- checkpoints hold what the ledger says
def test_a_parent_checkpoint_swapped_for_another_models_stops_the_search(tmp_path: Path) -> None:
    from dggan.execution.worker import CandidateTask, run_candidate
    from dggan.model.actions import Action, apply_action
    from dggan.model.genome import Genome, constant_channels
    from dggan.training.trainer import TrainConfig, Trainer

    config = TrainConfig(iterations=2, batch_size=8)
    parent = Genome.base(latent_size=8, channels=constant_channels(16, 8))
    sibling = apply_action(parent, Action("grow_d", kernel=3, filters=32))
    data = "synthetic:n=16,res=16"
    from dggan.data import open_dataset

    swapped = Trainer(sibling, config, open_dataset(data)).save(tmp_path / "parent.safetensors")
    child = apply_action(parent, Action("grow_g", kernel=3, filters=32))

    def task(expected: Genome, out: str) -> CandidateTask:
        return CandidateTask(candidate_id=5, genome_json=child.to_json(), parent_checkpoint=str(swapped),
                             out_dir=str(tmp_path / out), train=config, data=data, metric="swd16",
                             sample_grid=0, eval_options={"batch_size": 8, "seed": 0}, source_genome_key=expected.key())

    refused = run_candidate(task(parent, "c5"))
    assert refused.retry and "was replaced by another model's" in (refused.error or "")  # a stop, not a failure
    assert str(swapped) in (refused.error or "") and parent.key() in (refused.error or "")
    # The file the ledger expects passes (here: the genome that file really holds).
    ok = run_candidate(task(sibling, "c6"))
    assert ok.status.value == "done" and not ok.retry, ok.error
    # Every checkpoint a candidate writes says whose model it holds: a sibling's with the same genome is caught too.
    from dggan.training.checkpoint import load_checkpoint

    written = tmp_path / "c6" / "checkpoint.safetensors"
    assert load_checkpoint(written, tensors=False).state["candidate"] == 5
    import dataclasses

    same_genome = dataclasses.replace(task(child, "c7"), parent_checkpoint=str(written), source_candidate=4)
    refused = run_candidate(same_genome)
    assert refused.retry and "holds candidate 5's model, but the ledger says" in (refused.error or "")


def test_a_final_model_replaced_by_another_is_refused_by_compare(tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    run_search(run, tiny(baseline={8: 100.0, 16: 100.0}, max_steps=1, final_iterations=2), progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        final, rows = ledger.final(), ledger.candidates()
    assert final is not None and final.checkpoint
    other = next(r for r in rows if r.genome.key() != next(x for x in rows if x.id == final.candidate).genome.key()
                 and r.checkpoint)
    shutil.copy(run / other.checkpoint, run / final.checkpoint)  # "best" is now another candidate's model
    result = runner.invoke(app, ["compare", str(run), "--eval-seeds", "1", "--no-progress"])
    assert result.exit_code == 2 and "was replaced by another model's" in result.output, result.output
    assert f"candidate {final.candidate}" in result.output


# ---------------------------------------------------------------------- inputs that would hang or blow up
@pytest.mark.parametrize("command", [["genome", "show"], ["search", "--config"], ["train", "--iterations", "1",
                                                                                  "--genome"]])
def test_files_that_would_hang_or_exhaust_memory_are_refused_in_one_line(tmp_path: Path, command: list[str]) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # reading it would block forever
    big = tmp_path / "big.json"
    big.write_bytes(b"[" * 10 + b" " * (17 * 2**20))  # larger than any genome or settings file
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)  # Python's parser recurses: RecursionError
    twice = tmp_path / "twice.json"
    twice.write_text('{"latent_size": 8, "latent_size": 16}')
    for path, needle in ((fifo, "not a regular file"), (Path("/dev/zero"), "not a regular file"),
                         (big, "far larger than any dggan file"), (deep, "nested too deeply"),
                         (twice, "the key 'latent_size' appears twice"), (tmp_path, "a folder")):
        result = runner.invoke(app, [*command, str(path)])
        assert result.exit_code == 2, (command, path, result.output)
        assert needle in result.output and "Traceback" not in result.output, (command, path, result.output)


def test_settings_that_would_never_stop_or_mean_something_else_are_refused() -> None:
    from dggan.errors import ConfigError
    from dggan.search.config import SearchConfig
    from dggan.training.config import TrainConfig

    with pytest.raises(ConfigError, match="max_steps is null and nothing limits the G and D layers"):
        SearchConfig.from_dict({"max_steps": None})
    with pytest.raises(ConfigError, match="nothing limits the D layers, so the search would grow forever; set"
                                          " max_steps, or max_d_layers"):
        SearchConfig.from_dict({"max_steps": None, "max_g_layers": 2})
    assert SearchConfig.from_dict({"max_steps": None, "max_g_layers": 2, "max_d_layers": 0}).max_steps is None
    assert SearchConfig.from_dict({"max_steps": None, "grow_g": False, "grow_d": False}).max_steps is None
    for bad, needle in (({"memory_limit_gb": 0}, "memory_limit_gb must be > 0"), ({"baseline": ""}, "baseline is"
                        " empty"), ({"data": ""}, "data is empty")):
        with pytest.raises(ConfigError, match=needle):
            SearchConfig.from_dict(bad)
    with pytest.raises(ConfigError, match="memory_limit_gb must be > 0"):
        TrainConfig(memory_limit_gb=0)


def test_a_session_killed_before_its_first_regular_heartbeat_still_counts(tmp_path: Path) -> None:
    import time

    from dggan.search.ledger import Heartbeat

    run = create_run(tmp_path / "run", tiny())
    beat = Heartbeat(run / "ledger.sqlite", every=30.0).__enter__()
    time.sleep(3.2)
    beat._stop.set()  # killed: the thread stops, no final beat is written
    assert beat._thread is not None
    beat._thread.join()
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        seconds = ledger.session_seconds()
    assert 1.5 <= seconds <= 3.5  # the early beats caught most of it (it used to count 0 s under 30 s)


# ---------------------------------------------------------------------- a run folder deleted while it runs
def test_tensorboard_logs_of_a_deleted_folder_stop_quietly(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import shutil
    import time

    from dggan._util.tensorboard import Board, available

    if not available():
        pytest.skip("tensorboard is not installed")
    board = Board(tmp_path / "tb" / "c00001", flush_secs=1)
    board.scalars({"loss": 1.0}, 1)  # queued for tensorboard's writer thread
    shutil.rmtree(tmp_path / "tb")
    time.sleep(2.5)  # the writer thread flushes into the deleted folder
    board.scalars({"loss": 2.0}, 2)
    board.close()
    assert not board.active and "Traceback" not in capfd.readouterr().err


def test_a_run_folder_deleted_mid_search_says_so_instead_of_promising_a_resume(
        tmp_path: Path, fake_checkpoints: None) -> None:
    import shutil

    run = tmp_path / "run"

    class DeletesTheRun(CurveExecutor):
        def run(self, tasks):  # type: ignore[no-untyped-def]
            for result in super().run(tasks):
                if result.candidate_id == 2:
                    shutil.rmtree(run)
                    result.retry, result.error = True, "OSError: [Errno 2] No such file or directory"
                yield result

    with pytest.raises(SearchError) as stopped:
        run_search(run, tiny(baseline="none", max_steps=1, final_iterations=0), executor=DeletesTheRun(),
                   progress=False)
    message = str(stopped.value)
    assert "was deleted while the search ran" in message and "start a new search" in message
    assert "--resume" not in message


# ---------------------------------------------------------------------- messages that pointed the wrong way
def test_bad_data_and_weight_files_say_what_they_are(tmp_path: Path) -> None:
    import numpy as np

    from dggan.data import open_dataset
    from dggan.errors import DatasetError, MetricError
    from dggan.metrics.fid import get_inception

    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "objects.npz", images=np.array([{"a": 1}], dtype=object))
    for name in ("objects.npy", "objects.npz"):
        with pytest.raises(DatasetError, match="holds Python objects .*not uint8 pixels"):
            open_dataset(f"npz:{tmp_path / name}")
    with pytest.raises(DatasetError, match="is a folder; .*folder:PATH"):
        open_dataset(f"npz:{tmp_path}")
    text = tmp_path / "weights.pth"
    text.write_text("not weights at all\n")
    with pytest.raises(MetricError, match="is not a torch file of Inception-v3 weights") as refused:
        get_inception(text)
    assert "weights_only=False" not in str(refused.value)  # torch's advice to unpickle anything is not passed on


def test_train_refuses_flags_it_would_ignore_and_takes_a_loss(tmp_path: Path) -> None:
    genome = tmp_path / "g.json"
    assert runner.invoke(app, ["genome", "base", "--channels", "8", "--latent-size", "8", "--out",
                               str(genome)]).exit_code == 0
    ckpt = tmp_path / "c.safetensors"
    ckpt.write_bytes(b"")  # never read: the flags are refused first
    for args, needle in ((["--genome", str(genome), "--from", str(ckpt)], "use one of them"),
                         (["--genome", str(genome), "--channels", "32"], "--channels shape the default base genome"),
                         (["--from", str(ckpt), "--latent-size", "16"], "with the checkpoint the network is"),
                         (["--loss", "hinge"], "unknown loss 'hinge'; registered losses: r1, wgan-gp"),
                         (["--loss-options", "[1]"], "--loss-options must be a JSON object"),
                         (["--data", ""], "--data is empty")):
        result = runner.invoke(app, ["train", *args, "--run-dir", str(tmp_path / "r")])
        assert result.exit_code == 2 and needle in result.output, (args, result.output)
    result = runner.invoke(app, ["train", "--iterations", "2", "--batch-size", "8", "--channels", "8",
                                 "--latent-size", "8", "--max-resolution", "8", "--loss", "r1", "--loss-options",
                                 '{"every": 2}', "--run-dir", str(tmp_path / "r1"), "--no-progress"])
    assert result.exit_code == 0, result.output
    options = json.loads((tmp_path / "r1" / "options.json").read_text())
    assert options["train"]["loss"] == "r1" and options["train"]["loss_options"] == {"every": 2}


def test_flags_and_outputs_that_pointed_the_wrong_way(finished: Path, tmp_path: Path) -> None:
    for args, needle in ((["compare", str(finished), "--executor", "foo"], "--executor must be inprocess, local,"
                                                                             " ray or slurm, got 'foo'"),
                         (["compare", str(finished), "--workers", "0"], "--workers must be >= 1, got 0"),
                         (["compare", str(finished), "--workers", "-3"], "--workers must be >= 1, got -3"),
                         (["genome", "base", "--out", f"{tmp_path}/"], f"--out {tmp_path} is a folder; name the file"),
                         # a pseudo filesystem that os.access calls writable: refused before the model is loaded
                         (["sample", str(finished / "best"), "--out", "/proc/grid.png"],
                          "no file can be made in /proc")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and needle in result.output, (args, result.output)
        assert "Traceback" not in result.output and ".tmp" not in result.output


def test_ls_shows_what_a_stopped_search_had_in_flight_as_pending(finished: Path) -> None:
    from dggan.execution.state import Status

    with Ledger.open(finished / "ledger.sqlite") as ledger:  # as a kill -9 mid-candidate leaves it
        ledger.update(2, status=Status.RUNNING)
    table = runner.invoke(app, ["ls", str(finished)])
    assert table.exit_code == 0 and "pending (stopped)" in table.output and "running" not in table.output
    rows = json.loads(runner.invoke(app, ["ls", str(finished), "--json"]).output)
    assert next(r for r in rows if r["id"] == 2)["status"] == "pending"
