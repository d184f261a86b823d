"""The contracts the pipeline is built on: what every featurizer, task and backend provides,
and the plain values they hand each other (a window of arrays, a batch, named outputs, a
window's decoded spans).

    text ─Featurizer.encode─▶ Encoding ─window─▶ Window ─collate─▶ Batch
    Batch ─Backend─▶ Outputs ─Task.decode─▶ WindowSpans (per window)
    Batch + gold spans ─Task.targets─▶ targets;  Outputs ─Task.loss─▶ loss (training)

A new featurizer, task or backend implements one of the protocols below; nothing else in gpner
asks what it is. What a task can do is said by its capabilities (``span_head``,
``has_relations``), never found out by probing for methods. The protocols are checked by mypy,
not at run time, and importing this module imports neither torch nor the implementations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

    from gpner.text.alignment import TokenSpan
    from gpner.text.tokenization import Encoding, PackedEncoding

Batch = dict[str, np.ndarray]
"""A featurizer's ``collate``: input arrays by name, (B, L) or (B, L, W), plus ``mask`` (B, L),
the tokens that may start or end a span. Training adds the task's targets as CPU tensors."""

Outputs = Mapping[str, Any]
"""A model's or a backend's named outputs, torch tensors or NumPy arrays: a head's output under
its name (``entities`` (B, C, L, L)), a head's dict as ``name.key`` (``entities.emissions``)."""


@dataclass
class Window:
    """One model input cut from an encoded text, as arrays.

    It holds content tokens ``start .. end - 1`` of the text; window token k is content token
    ``start + k - prefix``: the first ``prefix`` tokens are the model's own special tokens
    (``[CLS]``), which are never spannable.
    """

    features: dict[str, np.ndarray]  # featurizer inputs, (n,) or (n, W) int64
    spannable: np.ndarray  # (n,) bool: tokens that may start or end a span
    start: int  # first content token of the window
    end: int  # one past its last content token
    prefix: int  # special tokens before the content

    def __len__(self) -> int:
        return len(self.spannable)

    @property
    def shift(self) -> int:
        """Window token + shift = text token."""
        return self.start - self.prefix


class Triple(NamedTuple):
    """A relation between two spans of one window or text: subject tokens [s_start, s_end),
    object tokens [o_start, o_end) (end exclusive), relation id, and its score (the smallest of
    the four GPLinker part scores)."""

    s_start: int
    s_end: int
    o_start: int
    o_end: int
    label: int
    score: float = 0.0


class WindowSpans(NamedTuple):
    """What a task decodes from one window: candidate spans as arrays, ``rows`` (K, 3) int64 of
    (label id, start, end exclusive) in window tokens and ``scores`` (K,), and the relation
    triples between them (empty for NER). Arrays, not objects: a barely trained model has
    thousands of candidates per window."""

    rows: np.ndarray
    scores: np.ndarray
    triples: list[Triple]


class Featurizer(Protocol):
    """Text -> model inputs: the built-in featurizer and the Hugging Face one
    (:mod:`gpner.text.features`)."""

    @property
    def kind(self) -> str:
        """``builtin`` or ``hf``: how a model directory's ``config.json`` names it."""

    @property
    def num_special(self) -> int:
        """Special tokens the model adds around each window (``[CLS]`` ... ``[SEP]``: 2)."""

    def encode(self, text: str) -> Encoding:
        """The whole text's own tokens with exact character offsets (never truncated)."""

    def window(self, text: str, enc: Encoding | PackedEncoding, start: int, end: int
               ) -> Window:
        """Content tokens ``start .. end - 1`` of ``enc`` as one model input, with the model's
        special tokens."""

    def collate(self, windows: Sequence[Window]) -> Batch:
        """Windows padded into one batch of arrays."""

    def save(self, directory: Path) -> None:
        """Write what :func:`gpner.text.features.load_featurizer` reads back."""


class Backend(Protocol):
    """A runtime that computes a model's outputs: a batch of NumPy arrays (the featurizer's
    ``collate``) -> named outputs, arrays or tensors (:mod:`gpner.prediction.backends`)."""

    def __call__(self, batch: Batch) -> Outputs:
        """The model's named outputs for ``batch``."""


class Task(Protocol):
    """What the model's outputs mean: the heads a task puts on the encoder, the training
    targets and loss, the divergence the regularisers use, and decoding (``gpner.tasks``)."""

    name: str  # the registry name, ``TrainConfig.task`` and ``ModelConfig.task``
    output: str  # the entity head's name, and the prefix of its outputs
    labels: list[str]  # entity label id k is labels[k]
    relations: list[str]  # relation id p is relations[p]; empty for NER
    head: str  # the registry name of the head (gp, egp, crf, softmax)
    head_size: int

    @property
    def span_head(self) -> bool:
        """Scores every (start, end) cell: nested spans, a score threshold, the GP divergence.
        False for tag heads (BIO tags; flat spans only)."""

    @property
    def has_relations(self) -> bool:
        """Decodes relation triples beside the spans, and takes gold relations as targets."""

    def build_heads(self, hidden: int) -> dict[str, nn.Module]:
        """The head modules by name, over hidden states of size ``hidden``."""

    def targets(self, spans: Sequence[Sequence[TokenSpan]], batch: Mapping[str, Any],
                relations: Sequence[Sequence[tuple[int, int, int]]]
                ) -> dict[str, torch.Tensor]:
        """Per example: gold spans (window tokens, label ids) and gold relations (subject index
        in its spans, object index, relation id; ignored without ``has_relations``) -> target
        tensors on the CPU, added to the batch."""

    def loss(self, outputs: Outputs, batch: Mapping[str, Any]) -> torch.Tensor:
        """The training loss of a batch (with its targets)."""

    def divergence(self, a: Outputs, b: Outputs, norm: str = "sum") -> torch.Tensor:
        """The divergence between two passes' outputs (R-Drop, VAT); span heads only."""

    def decode(self, outputs: Outputs, batch: Mapping[str, Any], threshold: float = 0.0,
               max_width: int | None = None) -> list[WindowSpans]:
        """Per window of the batch: the candidates scoring above ``threshold``, nested (flat
        selection happens once a text's windows are merged)."""
