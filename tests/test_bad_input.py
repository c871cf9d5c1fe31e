"""Bad input, kill -9 and odd use, through the real `tfrec` command: each case ends in one clear
line naming what was wrong and where (rc 2, no traceback), or in documented behaviour.

The cases of the serving signatures are in test_bad_input_serving.py and those of data files and
the small commands in test_bad_input_data.py; this module holds the runs. Add a case here
whenever a new one is found, so the list only grows.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import make_events, three_taste_watches
from tiny_pipeline import write_tiny_pipeline
from tfrec.cli import main
from tfrec.data.schema import write_events



@pytest.fixture(scope="module")
def events_dir(tmp_path_factory):
    """30 users x 12 watches over 30 videos (270 training examples)."""
    root = tmp_path_factory.mktemp("events")
    watches = three_taste_watches()
    write_events(make_events(watches), str(root))
    return root


def _config(tmp_path, events_dir, overrides=None, light=False):
    """The tiny config with `overrides`; `light` turns training and export off."""
    if light:
        overrides = {"candidate_generation": {"enabled": False}, "export": {"enabled": False}}
    return write_tiny_pipeline(tmp_path / "tiny.yaml", events_dir, tmp_path / "saved_models",
                               overrides)


def _tfrec(capsys, *argv):
    """rc and stderr of the real CLI entry point, run in this process."""
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def _training(**values):
    return {"candidate_generation": {"training": values}}


CONFIG_CASES = {
    "learning rate NaN": (
        _training(learning_rate=float("nan")),
        "'candidate_generation.training.learning_rate' must be a finite number, got nan"),
    "ranker learning rate inf": (
        {"ranking": {"model": {"learning_rate": float("inf")}}},
        "'ranking.model.learning_rate' must be a finite number, got inf"),
    "target recall NaN": (
        {"export": {"target_recall": float("nan")}},
        "'export.target_recall' must be a finite number, got nan"),
    "export.k above the corpus": (
        {"export": {"k": 1000}},
        "config 'tiny': 'export.k' (1000) is more than the 30 videos in the data; "
        "set export.k <= 30"),
    "batch above the training set": (
        _training(batch_size=4096),
        "config 'tiny': 'candidate_generation.training.batch_size' (4096) is more than the 270 "
        "training examples (the last partial batch is dropped, so no step would run); set it "
        "<= 270"),
    "keep no versions": (
        {"export": {"keep_versions": 0}},
        "'export.keep_versions' must be >= 1"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_a_bad_config_fails_before_any_training(tmp_path, events_dir, capsys, case):
    overrides, message = CONFIG_CASES[case]
    rc, err = _tfrec(capsys, "run", _config(tmp_path, events_dir, overrides), "--runs-dir",
                     tmp_path / "runs", "--quiet")
    assert rc == 2 and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    # Nothing was trained or exported: checks that need the data run right after it is read.
    assert not (tmp_path / "runs" / "tiny" / "candidate_generation").exists()
    assert not (tmp_path / "runs" / "tiny" / "checkpoints").exists()
    assert not (tmp_path / "saved_models").exists()


def test_a_diverging_training_stops_with_the_epoch_and_step_and_exports_nothing(
        tmp_path, events_dir, capsys):
    # A finite but absurd learning rate: the weights blow up within a few steps.
    config = _config(tmp_path, events_dir, _training(learning_rate=1.0e30))
    rc, err = _tfrec(capsys, "run", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert rc == 2 and "Traceback" not in err, err
    assert re.fullmatch(
        r"tfrec: error: candidate_generation: training loss is (nan|inf|-inf) at epoch 1, step "
        r"\d+; training stopped and nothing was exported \(try a lower "
        r"'candidate_generation.training.learning_rate'\)\n", err), err
    assert not (tmp_path / "saved_models").exists()
    text = (tmp_path / "runs" / "tiny" / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text and "retrieval" not in json.loads(text)


KILL_AT_SECOND_SERVABLE = r'''
import os, signal, sys
from tfrec.serving import version_sets
real, placed = version_sets._place, []
def place(*args):
    if placed:  # the first servable of the new set is in place: die before the second
        os.kill(os.getpid(), signal.SIGKILL)
    placed.append(real(*args))
    return placed[-1]
version_sets._place = place
from tfrec.cli import main
main(sys.argv[1:])
'''


def _served_versions(saved_models):
    text = (saved_models / "models.config").read_text()
    return {int(v) for v in re.findall(r"versions: (\d+) ", text)}


def _versions_on_disk(saved_models):
    return {n: sorted(int(d) for d in os.listdir(saved_models / n) if d.isdigit())
            for n in ("retrieval_brute_force", "retrieval_scann", "user_tower")}


def test_kill_during_a_forced_export_never_leaves_a_mixed_set(tmp_path, events_dir, capsys):
    config = _config(tmp_path, events_dir)
    runs, saved = tmp_path / "runs", tmp_path / "saved_models"
    assert _tfrec(capsys, "run", config, "--runs-dir", runs, "--quiet") == (0, "")
    killed = subprocess.run([sys.executable, "-c", KILL_AT_SECOND_SERVABLE, "run", config,
                             "--runs-dir", str(runs), "--force", "export", "--quiet"],
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # Half of set 2 is on disk, but models.config still serves set 1 whole.
    assert _versions_on_disk(saved)["retrieval_brute_force"] == [1, 2]
    assert _versions_on_disk(saved)["user_tower"] == [1] and _served_versions(saved) == {1}
    # The rerun rolls the half set back and publishes a whole one.
    assert _tfrec(capsys, "run", config, "--runs-dir", runs, "--quiet") == (0, "")
    assert _versions_on_disk(saved) == {n: [1, 2] for n in _versions_on_disk(saved)}
    assert _served_versions(saved) == {2}
    metrics = json.loads((runs / "tiny" / "metrics.json").read_text())
    assert metrics["exports"]["version"] == 2
    assert {os.path.basename(p) for p in metrics["exports"]["models"].values()} == {"2"}


HOLD_LOCK = r'''
import sys, time
from tfrec.run_lock import run_folder_lock
with run_folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
'''


def test_a_second_run_of_a_folder_in_use_fails_at_once_naming_the_holder(
        tmp_path, events_dir, capsys):
    run_dir = tmp_path / "runs" / "tiny"
    run_dir.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.perf_counter()
        rc, err = _tfrec(capsys, "run", _config(tmp_path, events_dir, light=True),
                         "--runs-dir", tmp_path / "runs")
        assert time.perf_counter() - start < 5
    finally:
        holder.kill()
        holder.wait()
    assert rc == 2 and err == (f"tfrec: error: {run_dir} is in use by another tfrec run (pid "
                               f"{holder.pid}); wait for it to finish, or give this run another "
                               "name or --runs-dir\n")
    assert sorted(os.listdir(run_dir)) == [".lock"]  # nothing written by the refused run
    # Once the holder is gone (even killed), the folder is free again.
    assert _tfrec(capsys, "run", _config(tmp_path, events_dir, light=True), "--runs-dir",
                  tmp_path / "runs", "--quiet") == (0, "")


def _in_small_mount(tmp_path, size, script):
    """Run `script` (sh) in a private mount namespace with a tmpfs of `size` at tmp_path/mnt."""
    if not shutil.which("unshare"):
        pytest.skip("unshare is not installed")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size={size} tmpfs "
                            f"{mnt}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.strip()}")
    # As a user runs it: the CLI's own quiet TensorFlow logging, not the test session's level.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(["unshare", "-m", "sh", "-c",
                           f"mount -t tmpfs -o size={size} tmpfs {mnt} && {script}"],
                          capture_output=True, text=True, env=env)


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, events_dir):
    """128 KiB holds the events and examples, not the training's checkpoints and summaries."""
    tfrec = f"{sys.executable} -m tfrec.cli run {_config(tmp_path, events_dir)} --quiet"
    out = _in_small_mount(tmp_path, "128k", f"{tfrec} --runs-dir {tmp_path / 'mnt'}")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert re.fullmatch(rf"tfrec: error: cannot write {tmp_path / 'mnt'}/tiny/\S+: No space left "
                        r"on device \(the disk is full; free space or point --runs-dir / the "
                        r"output elsewhere\)\n", out.stderr), out.stderr


def test_a_read_only_run_folder_is_one_line_even_when_every_stage_is_cached(tmp_path, events_dir):
    tfrec = (f"{sys.executable} -m tfrec.cli run {_config(tmp_path, events_dir, light=True)} "
             f"--runs-dir {tmp_path / 'mnt'} --quiet")
    out = _in_small_mount(tmp_path, "16m", f"{tfrec} && mount -o remount,ro {tmp_path / 'mnt'} "
                                           f"&& {tfrec}")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.stderr == (f"tfrec: error: cannot write {tmp_path / 'mnt'}/tiny/.lock: Read-only "
                          "file system (the file system is read-only; use a writable --runs-dir "
                          "/ output folder)\n")
