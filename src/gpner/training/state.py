"""The training loop's state: where it is in the schedule, the best model so far, the history
and the running loss. Saved in every checkpoint's ``state.json`` and read back by ``--resume``,
so a resumed run goes on exactly where the killed one was."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainState:
    """Counters of a training run (every one goes into the checkpoint)."""

    epoch: int = 0  # epochs finished
    batch: int = 0  # batches of the current epoch done
    step: int = 0  # optimizer steps done
    total: int = 0  # steps the schedule decays over (refitted under max_minutes)
    best_f1: float = -1.0  # best dev F1 so far (-1: none yet)
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best, for early stopping
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl's rows
    elapsed: float = 0.0  # seconds of training before this process (set when saved)
    loss_sum: float = 0.0  # the current epoch's summed step losses
    loss_n: int = 0
    skipped_steps: int = 0  # steps skipped for a non-finite loss

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainState":
        """The state from a checkpoint's ``state.json`` (its other keys, optimizer and RNG
        bookkeeping, are the checkpoint's own)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def epoch_loss(self) -> float:
        """The current epoch's mean step loss so far."""
        return self.loss_sum / max(1, self.loss_n)
