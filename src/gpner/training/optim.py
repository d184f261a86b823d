"""AdamW parameter groups and the learning-rate schedule (warm-up, linear decay, and its refit
to a time budget)."""

from __future__ import annotations

import logging

import torch
from torch import nn

from gpner.training.config import TrainConfig
from gpner.training.state import TrainState

log = logging.getLogger("gpner")


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: a pretrained encoder learns at ``encoder_lr`` (3e-5 unless set), the rest
    at ``lr``; biases and norms get no weight decay."""
    pretrained = cfg.encoder != "builtin"
    enc_lr = cfg.encoder_lr if cfg.encoder_lr is not None else (3e-5 if pretrained else cfg.lr)
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = enc_lr if name.startswith("encoder.") else cfg.lr
        decay = 0.0 if p.dim() < 2 else cfg.weight_decay
        groups.setdefault((lr, decay), []).append(p)
    return [{"params": ps, "lr": lr, "base_lr": lr, "weight_decay": wd}
            for (lr, wd), ps in groups.items()]


def lr_factor(step: int, total: int, warmup: float, schedule: str = "linear") -> float:
    """Linear warm-up over ``warmup * total`` steps, then linear decay to 0 at ``total``
    (``schedule="constant"``: the full rate after the warm-up)."""
    w = int(warmup * total)
    if step < w:
        return (step + 1) / w
    if schedule == "constant":
        return 1.0
    return max(0.0, (total - step) / max(1, total - w))


def fit_schedule(state: TrainState, cfg: TrainConfig, per_epoch: int, elapsed: float) -> None:
    """With ``max_minutes``, plan the schedule for the epochs that still fit, so the learning
    rate decays to zero when time runs out instead of being cut off mid-schedule.

    Refitted after every epoch, both ways (never past ``cfg.epochs``): the first epoch is
    slower than the rest (allocator and cache warm-up), and fitting on it alone left a
    quarter of the budget unused. The epoch time is the mean over the epochs after the first.
    """
    assert cfg.max_minutes is not None  # called only with a time budget
    done = state.epoch
    times = [r["minutes"] * 60 for r in state.history]
    if len(times) >= 2:
        seconds_per_epoch = (times[-1] - times[0]) / (len(times) - 1)
    else:
        seconds_per_epoch = elapsed / max(1, done)
    fit = int((cfg.max_minutes * 60 - elapsed) // max(seconds_per_epoch, 1e-9))
    planned = done + max(0, min(fit, cfg.epochs - done))
    total = max(state.step, planned * per_epoch)
    if total != state.total:
        state.total = total
        log.info("max_minutes=%s: schedule fitted to %d epochs", cfg.max_minutes, planned)


def adamw(groups: list[dict], device: torch.device) -> torch.optim.AdamW:
    """AdamW over ``groups``, fused into one kernel per group where torch has one for the
    device (CPU and CUDA): the unfused update makes a pass over memory per operation, and on a
    CPU that was a fifth of a training step of a small BERT (bench/profile_step.py)."""
    try:
        return torch.optim.AdamW(groups, fused=device.type in ("cpu", "cuda"))
    except (RuntimeError, TypeError, ValueError):  # a torch or device without the fused kernel
        return torch.optim.AdamW(groups)
