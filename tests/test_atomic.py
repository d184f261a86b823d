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
