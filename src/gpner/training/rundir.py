"""The run directory: every write a training run makes goes through :class:`RunDir`.

A run directory holds ``model/`` (the best model so far: a model directory), ``last/`` (the
resume checkpoint), ``config.yaml`` (every setting), ``data.json`` (the data paths, for
``--resume``), ``metrics.jsonl``, ``curve.png`` and ``summary.json``. Writes are atomic. In a
multi-process run only the main process writes: the others get a ``RunDir`` with
``main=False``, which writes nothing.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from gpner.atomic import atomic_write_text

log = logging.getLogger("gpner")


def is_main_process() -> bool:
    """True unless this is a non-zero rank of an initialised torch.distributed group."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class RunDir:
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

    def save_model(self, model: Any, featurizer: Any, config: Any,
                   card: dict[str, Any] | None = None) -> None:
        from gpner.model.artifact import save_model

        if self.main:
            save_model(model, featurizer, config, self.path / "model", card)

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
