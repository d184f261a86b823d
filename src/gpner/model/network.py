"""The model: an encoder and named heads, returning named outputs; and how one is built.

``TaskModel(batch) -> {"entities": (B, C, L, L)}`` for NER with a span head; a task decides which
heads exist and what their outputs mean (:mod:`gpner.tasks`). The model knows nothing of losses
or decoding, so any runtime that produces the same named outputs can stand in for it.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from gpner.model.encoders import BuiltinEncoder, HFEncoder

log = logging.getLogger("gpner")

Encoder = BuiltinEncoder | HFEncoder  # hidden states (B, L, H); embed() for the regularisers

class TaskModel(nn.Module):
    """An encoder and a task's named heads: a batch in, named outputs out (the heads' tensors
    under their names). It knows nothing of losses or decoding."""

    encoder: Encoder

    def __init__(self, encoder: Encoder, heads: dict[str, nn.Module]):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)

    @property
    def word_embeddings(self) -> nn.Embedding:
        """The embedding matrix that FGM and PGD perturb."""
        return self.encoder.word_embeddings

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Input embeddings (B, L, E), the point where VAT and the gradient penalty perturb."""
        return self.encoder.embed(batch)

    def forward(self, batch: dict[str, torch.Tensor], embeds: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """Named outputs: a head's tensor under its name, a head's dict as ``name.key``."""
        return named_outputs(self.encoder, self.heads, batch, embeds)


def named_outputs(encoder: nn.Module, heads: nn.ModuleDict, batch: Mapping[str, torch.Tensor],
                  embeds: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The heads over the encoder's hidden states, by name (what :class:`TaskModel` returns,
    and the Hugging Face model class too)."""
    hidden = encoder(batch, embeds)  # (B, L, H)
    out: dict[str, torch.Tensor] = {}
    for name, head in heads.items():
        result = head(hidden, batch["mask"])
        if isinstance(result, dict):
            out.update({f"{name}.{k}": v for k, v in result.items()})
        else:
            out[name] = result
    return out


def as_tensors(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The featurizer's NumPy arrays as CPU tensors (sharing their memory)."""
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


def to_device(batch: Mapping[str, torch.Tensor], device: torch.device | str
              ) -> dict[str, torch.Tensor]:
    """A batch of tensors on ``device`` (copied without blocking where it can be)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def innermost(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (``.module``) or torch.compile
    (``._orig_mod``) wrapper, or the module itself: any module (EMA averages any)."""
    while True:
        inner = getattr(model, "module", None)
        if inner is None:
            inner = getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def unwrap(model: nn.Module) -> TaskModel:
    """The TaskModel inside its DDP or torch.compile wrappers (TypeError if there is none)."""
    inner = innermost(model)
    if not isinstance(inner, TaskModel):
        raise TypeError(f"expected a TaskModel (or one wrapped by DDP or torch.compile), "
                        f"got {type(inner).__name__}")
    return inner
