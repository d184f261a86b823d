"""Named-entity recognition: one head named ``entities`` over the encoder.

* span heads (gp, egp): output ``entities`` (B, C, L, L); targets ``positives`` (P, 4) rows
  (b, c, i, j) of the gold cells; the sparse multilabel loss; candidates above the threshold
  (:func:`~gpner.tasks.decoding.decode_rows`).
* tag heads (crf, softmax): outputs ``entities.emissions`` (B, L, T) (and the CRF's
  ``entities.start``/``end``/``transitions``); targets ``tags`` (B, L) BIO ids; cross-entropy or
  CRF likelihood over the spannable tokens; argmax or Viterbi decoding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from gpner.contracts import Outputs, WindowSpans
from gpner.tasks import head_info
from gpner.tasks.decoding import decode_rows, decode_tags
from gpner.text.alignment import TokenSpan

if TYPE_CHECKING:  # torch only where a model is built or trained: decoding runs without it
    import torch
    from torch import nn


class NerTask:
    """Named-entity recognition (the :class:`~gpner.contracts.Task` contract): one head,
    ``entities``, a span head (nested spans) or a tag head (BIO baseline)."""

    name = "ner"
    output = "entities"  # the head's name, and the prefix of its outputs
    has_relations = False

    def __init__(self, labels: Sequence[str], head: str = "egp", head_size: int = 64):
        self.labels = list(labels)
        self.relations: list[str] = []
        self.head, self.head_size = head, head_size
        self.info = head_info(head)

    @property
    def span_head(self) -> bool:
        """True for heads that score every span (and so can represent nesting)."""
        return self.info.kind == "span"

    def build_heads(self, hidden: int) -> dict[str, "nn.Module"]:
        return {self.output: self.info.cls()(hidden, len(self.labels), self.head_size)}

    # ------------------------------------------------------------ training

    def targets(self, spans: Sequence[Sequence[TokenSpan]], batch: Mapping[str, Any],
                relations: Sequence[Sequence[tuple[int, int, int]]] = ()
                ) -> dict[str, "torch.Tensor"]:
        """Per-example gold spans (window tokens, label ids) -> target tensors on the CPU
        (``relations`` is for relation tasks; NER has none)."""
        import torch

        if self.span_head:  # the gold cells only: no (B, C, L, L) label tensor
            rows = [(b, sp.label, sp.start, sp.end - 1) for b, ex in enumerate(spans)
                    for sp in ex]
            return {"positives": torch.tensor(rows, dtype=torch.long).reshape(-1, 4)}
        tags = torch.zeros(batch["mask"].shape, dtype=torch.long)  # 0 = O
        for b, ex in enumerate(spans):
            for sp in ex:
                tags[b, sp.start] = 1 + 2 * int(sp.label)
                tags[b, sp.start + 1:sp.end] = 2 + 2 * int(sp.label)
        return {"tags": tags}

    def loss(self, outputs: Outputs, batch: dict[str, "torch.Tensor"]) -> "torch.Tensor":
        from torch import nn

        from gpner.model.crf import crf_nll
        from gpner.model.losses import mcce_sparse

        if self.span_head:
            return mcce_sparse(outputs[self.output], batch["positives"])
        em = outputs[f"{self.output}.emissions"]
        order, pmask = _pack(batch["mask"])
        pem = em.gather(1, order[..., None].expand(-1, -1, em.shape[-1])).float()
        ptags = batch["tags"].gather(1, order)
        if self.head == "crf":
            return crf_nll(pem, ptags, pmask, *self._crf(outputs)).mean()
        ce = nn.functional.cross_entropy(pem.transpose(1, 2), ptags, reduction="none")
        return ((ce * pmask).sum(1) / pmask.sum(1).clamp(min=1)).mean()

    def divergence(self, a: Outputs, b: Outputs, norm: str = "sum") -> "torch.Tensor":
        """The GP divergence between two passes' span scores (R-Drop, VAT)."""
        from gpner.model.losses import gp_divergence

        if not self.span_head:
            raise ValueError(f"the GP divergence needs span scores; head {self.head!r} has none")
        return gp_divergence(a[self.output], b[self.output], norm=norm)

    # ------------------------------------------------------------ prediction

    def decode(self, outputs: Outputs, batch: Mapping[str, Any], threshold: float = 0.0,
               max_width: int | None = None) -> list[WindowSpans]:
        """Nested candidates per window (window tokens) as arrays; flat selection happens after
        windows are merged. Tag heads give non-overlapping spans and ignore threshold and
        width."""
        if self.span_head:
            return [WindowSpans(rows, v, [])
                    for rows, v in decode_rows(outputs[self.output], threshold, max_width)]
        crf = self._crf(outputs) if self.head == "crf" else None
        return [WindowSpans(np.array([(sp.label, sp.start, sp.end) for sp in spans],
                                     dtype=np.int64).reshape(-1, 3),
                            np.array([sp.score for sp in spans], dtype=np.float64), [])
                for spans in decode_tags(outputs[f"{self.output}.emissions"], batch["mask"],
                                         crf)]

    def _crf(self, outputs: Outputs) -> tuple[Any, Any, Any]:
        o = self.output
        return outputs[f"{o}.start"], outputs[f"{o}.end"], outputs[f"{o}.transitions"]


def _pack(mask: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Spannable tokens moved to the left (a tag sequence has no gaps): token positions
    (B, L') and the prefix mask (B, L'); :func:`gpner.tasks.decoding.pack_spannable` in torch, for
    the loss."""
    import torch

    lengths = mask.sum(1)
    Lp = max(1, int(lengths.max()) if len(lengths) else 1)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :Lp]
    return order, torch.arange(Lp, device=mask.device)[None] < lengths[:, None]
