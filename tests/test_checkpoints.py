"""Tests for checkpoints.py: file modes, stale temp files, the run-folder lock, directories, weight mismatches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from ssd_tutorial.checkpoints import (
    load_checkpoint,
    load_pretrained,
    load_weights,
    prepare_out_dir,
    run_lock,
    save_checkpoint,
    write_atomic,
)
from ssd_tutorial.config import TINY_SHAPES
from ssd_tutorial.model import build_ssd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_checkpoint_gets_the_normal_mode_of_new_files(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", build_ssd(TINY_SHAPES))
    (tmp_path / "other.json").write_text("{}")
    expected = 0o666 & ~_umask()
    assert path.stat().st_mode & 0o777 == expected == (tmp_path / "other.json").stat().st_mode & 0o777


def test_stale_temp_of_a_killed_save_is_removed_on_the_next_save(tmp_path):
    stale = tmp_path / ".last.pt.dead1234.tmp"  # what a SIGKILL during torch.save leaves behind
    stale.write_bytes(b"partial")
    other = tmp_path / ".best.pt.dead1234.tmp"
    other.write_bytes(b"partial")
    write_atomic(tmp_path / "last.pt", {"model": {}})
    assert not stale.exists() and other.exists()  # only the temps of the file being saved
    with run_lock(tmp_path):  # taking the run folder removes the rest
        assert not other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_run_lock_refuses_a_live_owner_and_takes_over_a_dead_one(tmp_path):
    lock = tmp_path / "train.lock"
    host = socket.gethostname()
    lock.write_text(f"{os.getppid()} {host}\n")  # a live process that is not this one
    with pytest.raises(FileExistsError, match=rf"in use by another training \(process {os.getppid()} on host"):
        with run_lock(tmp_path):
            pass
    assert lock.read_text().startswith(str(os.getppid()))  # not touched

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock.write_text(f"{gone.pid} {host}\n")
    notes = []
    with run_lock(tmp_path, note=notes.append):
        assert lock.read_text().split() == [str(os.getpid()), host]
        with run_lock(tmp_path):  # the same process again (the CLI, then fit): no-op
            pass
        assert lock.exists()
    assert not lock.exists()
    assert len(notes) == 1 and f"stale lock {lock} of process {gone.pid}" in notes[0]


def test_out_dir_that_is_a_file_or_not_writable(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        prepare_out_dir(tmp_path / "f")
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that may write anywhere (root)")
        with pytest.raises(PermissionError, match="is not writable"):
            prepare_out_dir(locked)
    finally:
        locked.chmod(0o700)


def test_a_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory, not a checkpoint file"):
        load_checkpoint(tmp_path)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_pretrained(tmp_path)


def test_weights_that_do_not_fit_the_config_name_the_file_and_keys(tmp_path):
    other = TINY_SHAPES.replace(num_classes=6, class_names=(*TINY_SHAPES.class_names, "star", "ring"))
    state = build_ssd(other).state_dict()
    path = tmp_path / "mixed.pt"
    write_atomic(path, {"model": state, "config": TINY_SHAPES.to_dict()})  # config of one model, weights of another
    with pytest.raises(ValueError, match=r"mixed\.pt.*do not fit the SSD model.*of another shape: cls_heads\.0\.weight "
                                         r"is \(\d+, \d+, 3, 3\) in the checkpoint"):  # fmt: skip
        load_pretrained(path)
    with pytest.raises(ValueError, match="mixed.pt"):
        load_checkpoint(path, build_ssd(TINY_SHAPES))
    model = build_ssd(TINY_SHAPES)
    partial = {k: v for k, v in model.state_dict().items() if not k.startswith("loc_heads")}
    with pytest.raises(ValueError, match=r"\d+ missing, e\.g\. loc_heads\.0\.weight"):
        load_weights(model, partial, "x.pt")
    with pytest.raises(ValueError, match=r"1 unexpected, e\.g\. extra"):
        load_weights(model, {**model.state_dict(), "extra": torch.zeros(1)}, "x.pt")
