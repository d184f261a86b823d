"""Atomic writes: a file or a directory appears whole or not at all.

Every file gpner writes (data, model directories, checkpoints, logs) goes through here, so a kill
at any moment leaves either the old copy or the new one, never half of one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def old_copy(target: Path) -> Path:
    """Where :func:`swap_dir` keeps the previous ``target`` while it swaps in a new one."""
    return target.with_name(f".{target.name}.old")


def swap_dir(new: Path, target: Path) -> None:
    """Replace directory ``target`` by ``new`` with two renames. A kill between them leaves the
    previous copy complete at :func:`old_copy` (readers fall back to it), never a mix."""
    old = old_copy(target)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """Build a directory beside ``target`` and swap it in when the block ends without error;
    on error the half-built directory is removed and ``target`` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_dir(tmp, target)
