"""The run directory: every write a training run makes goes through :class:`RunDir`, and every
rule about what a directory may hold is here.

A run directory holds ``model/`` (the best model so far: a model directory), ``last/`` (the
resume checkpoint), ``config.yaml`` (every setting), ``data.json`` (the data paths, for
``--resume``), ``metrics.jsonl``, ``curve.png`` and ``summary.json``. Writes are atomic. In a
multi-process run only the main process writes: the others get a ``RunDir`` with
``main=False``, which writes nothing.

Policy: a new run refuses a directory that holds a run (:func:`check_output`) unless asked to
overwrite it. Overwriting sets the old run's files aside (:func:`set_aside`, into
``.previous-run/``, where loading still finds its model) once the new run has its data and
model built, deletes them once the new run has saved a model of its own, and puts them back if
the new run fails before that, or (on the next start) if it was killed before that;
``--resume`` reads the run's own settings back (:func:`resume_settings`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpner.atomic import atomic_write_text, old_copy
from gpner.errors import RunDirError
from gpner.training.config import TrainConfig

if TYPE_CHECKING:
    from gpner.contracts import Featurizer
    from gpner.model.artifact import ModelConfig
    from gpner.model.network import TaskModel

log = logging.getLogger("gpner")


def is_main_process() -> bool:
    """True unless this is a non-zero rank of an initialised torch.distributed group."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class RunDir:
    """The files of one run directory, written atomically, by the main process only."""

    def __init__(self, path: str | Path, main: bool = True):
        self.path = Path(path)
        self.main = main
        self._plot_note = False
        self.data_paths: dict[str, str] = {}

    def write_setup(self, config: dict[str, Any], data_paths: dict[str, str]) -> None:
        """``config.yaml`` (every setting) and ``data.json`` (absolute data paths, so that
        ``--resume`` needs only the run directory)."""
        import yaml

        self.data_paths = dict(data_paths)
        if not self.main:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / "data.json", json.dumps(data_paths))
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(
            config, sort_keys=False, allow_unicode=True))

    def save_model(self, model: TaskModel, featurizer: Featurizer, config: ModelConfig,
                   card: dict[str, Any] | None = None) -> None:
        from gpner.model.artifact import save_model

        if self.main:
            save_model(model, featurizer, config, self.path / "model", card)
            drop_previous(self.path)  # the new run has a model: the old one may go

    def save_checkpoint(self, model: Any, opt: Any, ema: Any, state: dict) -> None:
        from gpner.training.checkpoint import save_checkpoint

        if self.main:
            save_checkpoint(self.path / "last", model, opt, ema, state)

    def write_history(self, history: list[dict]) -> None:
        """``metrics.jsonl`` (one line per epoch) and ``curve.png`` (needs matplotlib)."""
        if not self.main:
            return
        atomic_write_text(self.path / "metrics.jsonl",
                          "".join(json.dumps(r) + "\n" for r in history))
        try:
            import matplotlib
        except ImportError:
            if not self._plot_note:  # once per run, not once per epoch
                log.info("curve.png skipped: matplotlib is not installed "
                         "(pip install 'gpner[plot]')")
                self._plot_note = True
            return
        matplotlib.use("Agg")
        from gpner.atomic import writing

        with writing(self.path / "curve.png"):
            plot_curve(history, self.path / "curve.png")

    def write_summary(self, summary: dict) -> None:
        if self.main:
            atomic_write_text(self.path / "summary.json",
                              json.dumps(summary, indent=2, ensure_ascii=False))


def plot_curve(history: list[dict], path: Path) -> None:
    """Train loss and dev F1 per epoch."""
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [r["loss"] for r in history], "o-", color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    if any("dev" in r for r in history):
        ax2 = ax.twinx()
        ax2.plot([r["epoch"] for r in history if "dev" in r],
                 [r["dev"]["f1"] for r in history if "dev" in r], "s-", color="tab:red")
        ax2.set_ylabel("dev F1", color="tab:red")
    ax.set_title("gpner training")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


# a run directory's files: summary first (the run is finished), the checkpoint, then the rest
RUN_FILES = ("summary.json", "last", "model", "config.yaml", "data.json", "metrics.jsonl",
             "curve.png")


PREVIOUS = ".previous-run"  # where --overwrite keeps the old run until the new one has a model


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse an ``output`` that holds a run (E401) unless ``overwrite``, or is a file (E404).
    An old run set aside by an overwrite that was killed before its first model comes back
    first."""
    from gpner.training.checkpoint import has_checkpoint

    if output.exists() and not output.is_dir():
        raise RunDirError(f"{output}: a file, where the run directory goes; choose another "
                          "--output", code="E404")
    recover_previous(output)
    present = [n for n in RUN_FILES if (output / n).exists() or old_copy(output / n).exists()]
    if not present:
        return
    if not overwrite:
        state = ("a finished run (summary.json, model/)" if "summary.json" in present else
                 "an unfinished run (" + ", ".join(present) + ")")
        resumable = "summary.json" not in present and has_checkpoint(output / "last")
        raise RunDirError(f"{output}: holds {state}; pass --overwrite to replace it"
                          + (", --resume to continue it" if resumable else "")
                          + ", or choose another --output", code="E401")


def _run_files(output: Path) -> list[Path]:
    return [p for name in RUN_FILES for p in (output / name, old_copy(output / name))
            if p.exists() or p.is_symlink()]


def set_aside(output: Path) -> None:
    """Move the old run's files into ``output/.previous-run/`` (renames, same disk): the new
    run cannot mix with them, and they come back if it fails before its first model."""
    import shutil

    keep = output / PREVIOUS
    shutil.rmtree(keep, ignore_errors=True)
    files = _run_files(output)
    if not files:
        return
    keep.mkdir()
    for path in files:
        os.replace(path, keep / path.name)
    log.info("%s: the previous run is set aside in %s until this run saves a model "
             "(--overwrite)", output, PREVIOUS)


def drop_previous(output: Path) -> None:
    """The new run has a model: the set-aside old run is removed."""
    import shutil

    if (output / PREVIOUS).exists():
        shutil.rmtree(output / PREVIOUS, ignore_errors=True)
        log.info("%s: removed the previous run (--overwrite)", output)


def restore_previous(output: Path) -> bool:
    """Put a set-aside old run back (the new run's files removed); True if there was one."""
    import shutil

    keep = output / PREVIOUS
    if not keep.is_dir():
        return False
    for path in _run_files(output):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for path in keep.iterdir():
        os.replace(path, output / path.name)
    keep.rmdir()
    log.warning("%s: the new run ended before saving a model; the previous run is back",
                output)
    return True


def recover_previous(output: Path) -> None:
    """An overwrite killed before the new run's first model left the old run set aside: put it
    back; one killed after it left only the set-aside copy to remove."""
    if not (output / PREVIOUS).is_dir():
        return
    if (output / "model").exists():
        drop_previous(output)
    else:
        restore_previous(output)


def resume_settings(output: Path, train_data: Any, dev_data: Any
                    ) -> tuple[TrainConfig, Any, Any, str | None]:
    """The run's own config, (unless given) data paths and their encoding, for ``--resume``."""
    from gpner.training.checkpoint import has_checkpoint
    from gpner.training.config import load_yaml

    if not has_checkpoint(output / "last"):
        raise RunDirError(f"{output}: no checkpoint to resume (no last/state.json); train "
                          "without --resume to start this run", code="E402")
    saved = output / "config.yaml"
    if not saved.is_file():
        raise RunDirError(f"{saved}: missing; the run's settings are needed to resume it",
                          code="E402")
    cfg = TrainConfig().update(load_yaml(saved) or {}, str(saved))
    paths: dict[str, Any] = {}
    if (output / "data.json").exists():
        from gpner.textfiles import parse_json, read_text

        paths = parse_json(read_text(output / "data.json"), str(output / "data.json"))
    train_data = train_data if train_data is not None else paths.get("train")
    dev_data = dev_data if dev_data is not None else paths.get("dev")
    if train_data is None:
        raise RunDirError(f"{output}: the training data is not recorded; pass --train",
                          code="E402")
    return cfg, train_data, dev_data, paths.get("encoding")
