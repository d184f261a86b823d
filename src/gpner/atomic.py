"""Atomic writes: a file or a directory appears whole or not at all.

Every file gpner writes (data, model directories, checkpoints, logs) goes through here, so a kill
at any moment leaves either the old copy or the new one, never half of one. Temporary names
carry the writer's process id, so that the next writer removes what a killed one left
(:func:`clean_stale`); files get the permissions the umask gives, as ``open`` would.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_umask_lock = threading.Lock()


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the device (or the quota) is full; safetensors says so in a
    message (``No space left on device (os error 28)``), not an errno."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(exc) or "os error 28" in str(exc)


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Writes to ``path`` in the block: a full disk becomes E601 naming ``path``."""
    from gpner.errors import WriteFailed

    try:
        yield
    except WriteFailed:
        raise
    except Exception as exc:
        if disk_full(exc):
            raise WriteFailed(f"{path}: no space left on the device (or the quota is full) "
                              "while writing it; the files written before are intact. Free "
                              "some space and run again") from None
        raise


def file_mode() -> int:
    """The mode ``open`` gives a new file: 0o666 less the process umask (which can only be
    read by setting it, hence the lock)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale(folder: Path, name: str) -> list[Path]:
    """Remove the temporary files and directories that writers of ``folder/name`` killed before
    their rename left behind (their process is gone); return what was removed."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.(?:tmp-)?(\d+)(?:\..*\.tmp)?$")
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = pattern.match(entry.name)
        if m and not _alive(int(m.group(1))):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    try:
        with writing(path):
            os.chmod(tmp, file_mode())  # mkstemp makes 0600 files whatever the umask
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
    clean_stale(target.parent, target.name)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with writing(target):
            yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_dir(tmp, target)
