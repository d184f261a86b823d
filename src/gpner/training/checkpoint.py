"""The resume checkpoint (``last/`` in a run directory): weights, AdamW state, EMA weights and
RNG states as safetensors, counters and the history as ``state.json``. Written atomically, read
back so that a resumed run reaches the same weights as one never interrupted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from gpner.atomic import old_copy, staged_dir
from gpner.model.artifact import migrate_weights, read_safetensors
from gpner.model.network import unwrap
from gpner.textfiles import read_model_json
from gpner.training.regularizers import EMA

CHECKPOINT_VERSION = 2  # 1 (gpner 0.1.0) named the head's weights head.*


def has_checkpoint(path: Path) -> bool:
    return (path / "state.json").exists() or (old_copy(path) / "state.json").exists()


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    ema: EMA | None, state: dict) -> None:
    from safetensors.torch import save_file
    from safetensors.torch import save_model as save_weights

    with staged_dir(path) as tmp:
        save_weights(unwrap(model), str(tmp / "model.safetensors"))
        tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, st in sd["state"].items():
            for key, value in st.items():
                if torch.is_tensor(value):
                    tensors[f"opt.{pid}.{key}"] = value.contiguous()
                else:
                    scalars.setdefault(str(pid), {})[key] = value
        if ema is not None:
            tensors.update({f"ema.{n}": t.contiguous() for n, t in ema.shadow.items()})
        save_file(tensors, str(tmp / "state.safetensors"))
        state = dict(state, param_groups=sd["param_groups"], opt_scalars=scalars,
                     ema_steps=ema.steps if ema else 0, checkpoint_version=CHECKPOINT_VERSION)
        (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")


def load_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    ema: EMA | None) -> dict:
    """Restore weights, optimizer, EMA and RNG states; return the counters and history."""
    if not (path / "state.json").exists() and (old_copy(path) / "state.json").exists():
        path = old_copy(path)  # killed between the two renames of a checkpoint swap
    state = read_model_json(path / "state.json", ("opt_scalars", "param_groups"))
    version = state.get("checkpoint_version", 1)
    unwrap(model).load_state_dict(
        migrate_weights(read_safetensors(path / "model.safetensors"), version))
    tensors = read_safetensors(path / "state.safetensors")
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    for pid, scalars in state["opt_scalars"].items():
        opt_state.setdefault(int(pid), {}).update(scalars)
    opt.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    if ema is not None:
        shadow = migrate_weights({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")},
                                 version)
        for n in ema.shadow:
            ema.shadow[n].copy_(shadow[n])
        ema.steps = state["ema_steps"]
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return state
