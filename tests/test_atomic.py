"""Atomic writes: a directory is swapped in whole or not at all."""

from __future__ import annotations

import pytest

from gpner.atomic import atomic_write_text, staged_dir


def test_staged_dir_swaps_in_whole_or_leaves_the_old_copy(tmp_path):
    target = tmp_path / "model"
    with staged_dir(target) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError):
        with staged_dir(target) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("killed while writing")
    assert (target / "a.txt").read_text() == "first"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing half-built left
    with staged_dir(target) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # replaced, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no .model.old left


def test_atomic_write_text_replaces_whole_files(tmp_path):
    path = tmp_path / "sub" / "x.json"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["x.json"]
    # a write that fails half-way (a lone surrogate cannot be encoded) leaves the old file whole
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(path, "three" * 1000 + "\ud800")
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_files_respect_the_umask_and_stale_temporaries_are_cleaned(tmp_path):
    import os

    from gpner.atomic import clean_stale

    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with staged_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640  # mkstemp alone gives 0600
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750
    # what writers killed before their rename left: their process is gone
    dead = 2 ** 22 + 12345  # above Linux's default pid_max: no such process
    (tmp_path / f".d.tmp-{dead}").mkdir()
    (tmp_path / f".a.txt.{dead}.x1y2.tmp").write_text("half")
    live = tmp_path / f".d.tmp-{os.getppid()}"  # a live process's: left alone
    live.mkdir()
    atomic_write_text(tmp_path / "a.txt", "z")
    with staged_dir(tmp_path / "d"):
        pass
    assert {p.name for p in tmp_path.iterdir()} == {"a.txt", "d", live.name}
    assert clean_stale(tmp_path, "d") == []


SAVER = """
import sys, gpner
from gpner.model.artifact import save_model
m = gpner.load(sys.argv[1])
model = m.backend.model
print("ready", flush=True)
while True:
    save_model(model, m.featurizer, m.config, sys.argv[2])
"""


HALF_WRITE = """
import os, signal, sys, gpner, safetensors.torch
from gpner.model.artifact import save_model


def half_then_die(model, filename, *a, **k):  # half the weights on disk, then SIGKILL
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                                filename)
    with open(filename, "r+b") as f:
        f.truncate(os.path.getsize(filename) // 2)
    os.kill(os.getpid(), signal.SIGKILL)


safetensors.torch.save_model = half_then_die
m = gpner.load(sys.argv[1])
save_model(m.backend.model, m.featurizer, m.config, sys.argv[2])
"""


def test_a_kill_during_save_leaves_a_whole_model(nested_model_dir, tmp_path):
    """SIGKILL a process that saves a model directory over and over, at several moments: the
    directory (or the previous copy it falls back to) always loads and predicts the same; the
    next save removes what the killed one left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import gpner

    target = tmp_path / "model"
    expected = gpner.load(nested_model_dir).predict("北京大学在海淀")
    for delay in (0.05, 0.13, 0.31, 0.6):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(nested_model_dir),
                                 str(target)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if not any(tmp_path.iterdir()):
            continue
        assert gpner.load(target).predict("北京大学在海淀") == expected
    # and deterministically: killed halfway through writing the weights
    proc = subprocess.run([sys.executable, "-c", HALF_WRITE, str(nested_model_dir), str(target)])
    assert proc.returncode == -signal.SIGKILL
    assert gpner.load(target).predict("北京大学在海淀") == expected
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.tmp-")]
    assert leftovers  # the killed save's half-written directory, until the next save
    m = gpner.load(target)
    from gpner.model.artifact import save_model

    save_model(m.backend.model, m.featurizer, m.config, target)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model.tmp-")]
    assert gpner.load(target).predict("北京大学在海淀") == expected
