"""A span model = encoder + head, its model directory, and the predictor that ``gpner.load`` returns.

Heads: ``gp`` and ``egp`` score spans (B, C, L, L); ``crf`` and ``softmax`` are the BIO-tagging
baselines on the same encoder (B, L, T). All four share the batch format, the trainer, the
decoding to character offsets and the metrics.

A model directory holds ``config.json`` (labels, head, encoder, decoding settings and the full
training config), ``model.safetensors`` and the tokenizer files; Hugging Face encoders add
``encoder/config.json``. Loading never unpickles anything.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from gpner.crf import CRF
from gpner.decoding import Span, decode, select_flat, to_entities
from gpner.heads import HEADS
from gpner.losses import mcce_sparse
from gpner.records import Record
from gpner.tagging import tags_to_spans

FORMAT_VERSION = 1


class TagHead(nn.Module):
    """BIO tagging over spannable tokens: tag 0 = O, 1 + 2k = B-k, 2 + 2k = I-k."""

    def __init__(self, hidden: int, num_labels: int, crf: bool):
        super().__init__()
        self.num_labels = num_labels
        self.proj = nn.Linear(hidden, 1 + 2 * num_labels)
        self.crf = CRF(1 + 2 * num_labels) if crf else None

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden)  # (B, L, T)

    @staticmethod
    def pack(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of spannable tokens moved to the left: index (B, L') and prefix mask."""
        lengths = mask.sum(1)
        Lp = max(1, int(lengths.max()) if len(lengths) else 1)
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :Lp]
        packed_mask = torch.arange(Lp, device=mask.device)[None] < lengths[:, None]
        return order, packed_mask

    def loss(self, em: torch.Tensor, mask: torch.Tensor, spans: Sequence[Sequence[tuple]]
             ) -> torch.Tensor:
        tags = torch.zeros(mask.shape, dtype=torch.long, device=em.device)
        for b, ex in enumerate(spans):
            for c, i, j in ex:
                tags[b, i] = 1 + 2 * c
                tags[b, i + 1:j + 1] = 2 + 2 * c
        order, pmask = self.pack(mask)
        pem = em.gather(1, order[..., None].expand(-1, -1, em.shape[-1])).float()
        ptags = tags.gather(1, order)
        if self.crf is not None:
            return self.crf.nll(pem, ptags, pmask).mean()
        ce = nn.functional.cross_entropy(pem.transpose(1, 2), ptags, reduction="none")
        return ((ce * pmask).sum(1) / pmask.sum(1).clamp(min=1)).mean()

    @torch.no_grad()
    def decode(self, em: torch.Tensor, mask: torch.Tensor) -> list[list[Span]]:
        order, pmask = self.pack(mask)
        pem = em.gather(1, order[..., None].expand(-1, -1, em.shape[-1])).float()
        probs = pem.softmax(-1)
        if self.crf is not None:
            paths = self.crf.viterbi(pem, pmask)
        else:
            paths = [row[: int(n)] for row, n in zip(pem.argmax(-1).tolist(), pmask.sum(1))]
        names = ["O"] + [f"{p}-{k}" for k in range(self.num_labels) for p in "BI"]
        out = []
        for b, path in enumerate(paths):
            spans = []
            for i, j_excl, lab in tags_to_spans([names[t] for t in path], "bio"):
                p = float(probs[b, torch.arange(i, j_excl), torch.tensor(path[i:j_excl])].mean())
                p = min(max(p, 1e-6), 1 - 1e-6)
                score = 0.5 * math.log(p / (1 - p))  # so that prob = sigmoid(2 * score)
                spans.append(Span(int(lab), int(order[b, i]), int(order[b, j_excl - 1]), score))
            out.append(spans)
        return out


class SpanModel(nn.Module):
    def __init__(self, encoder: nn.Module, head: str, labels: Sequence[str], head_size: int = 64):
        super().__init__()
        self.encoder = encoder
        self.head_kind = head
        self.labels = list(labels)
        if head in HEADS:
            self.head = HEADS[head](encoder.hidden_size, len(labels), head_size)
        elif head in ("crf", "softmax"):
            self.head = TagHead(encoder.hidden_size, len(labels), crf=head == "crf")
        else:
            raise ValueError(f"unknown head {head!r}")

    @property
    def is_span_head(self) -> bool:
        return self.head_kind in HEADS

    def forward(self, batch: dict[str, Any], embeds: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, L, L) span scores, or (B, L, T) tag emissions for the tag heads."""
        return self.head(self.encoder(batch, embeds), batch["mask"])

    def loss(self, out: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        if self.is_span_head:
            return mcce_sparse(out, batch["positives"])
        return self.head.loss(out, batch["mask"], batch["spans"])

    def candidates(self, out: torch.Tensor, batch: dict[str, Any], threshold: float,
                   max_width: int | None) -> list[list[Span]]:
        if self.is_span_head:
            return decode(out, threshold, flat=False, max_width=max_width)
        return self.head.decode(out, batch["mask"])


def collate(examples: Sequence[Any], featurizer: Any, device: torch.device | str = "cpu"
            ) -> dict[str, Any]:
    """Batch of :class:`~gpner.data.Example`: features, masks, sparse gold cells, span lists."""
    batch = featurizer.collate([ex.window for ex in examples])
    rows = [(b, c, i, j) for b, ex in enumerate(examples) for c, i, j in ex.spans]
    batch["positives"] = torch.tensor(rows, dtype=torch.long).reshape(-1, 4)
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["spans"] = [ex.spans for ex in examples]
    return batch


# ---------------------------------------------------------------- model directory

def build_model(meta: dict[str, Any], directory: Path | None = None) -> SpanModel:
    """A model with random weights from a config.json dict (weights are loaded separately)."""
    enc = meta["encoder"]
    if enc["type"] == "builtin":
        from gpner.encoders import BuiltinEncoder

        encoder = BuiltinEncoder(enc["sizes"], **enc["params"])
    else:
        from transformers import AutoConfig, AutoModel

        from gpner.encoders import HFEncoder

        encoder = HFEncoder(AutoModel.from_config(AutoConfig.from_pretrained(
            str(Path(directory) / "encoder"))))
    return SpanModel(encoder, meta["head"], meta["labels"], meta["head_size"])


def save_model(model: SpanModel, featurizer: Any, meta: dict[str, Any], directory: Path) -> None:
    """Write the model directory atomically: build it beside, then swap it in."""
    from safetensors.torch import save_model as save_weights

    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    save_weights(model, str(tmp / "model.safetensors"))
    featurizer.save(tmp)
    if meta["encoder"]["type"] == "hf":
        model.encoder.model.config.save_pretrained(str(tmp / "encoder"))
    swap_dir(tmp, directory)


def swap_dir(new: Path, target: Path) -> None:
    """Replace directory ``target`` by ``new``; a kill at any point leaves one complete copy
    (``target``, or ``.target.old`` which :func:`resolve_dir` falls back to)."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def resolve_dir(directory: Path) -> Path:
    directory = Path(directory)
    for cand in (directory, directory / "model"):
        if (cand / "config.json").exists() and (cand / "model.safetensors").exists():
            return cand
    old = directory.with_name(f".{directory.name}.old")
    if (old / "config.json").exists():
        return old
    if (directory / "model").exists():
        return resolve_dir(directory / "model")
    raise FileNotFoundError(f"{directory}: not a gpner model directory (no config.json and "
                            "model.safetensors, nor a model/ folder holding them)")


def load(directory: str | Path, device: str | None = None) -> "Predictor":
    """Load a model directory (or a training run directory holding ``model/``)."""
    from safetensors.torch import load_model as load_weights

    path = resolve_dir(Path(directory))
    meta = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if meta.get("format") != "gpner-model":
        raise ValueError(f"{path}/config.json is not a gpner model config")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer gpner (format {meta['version']})")
    model = build_model(meta, path)
    load_weights(model, str(path / "model.safetensors"))
    if meta["encoder"]["type"] == "builtin":
        from gpner.features import BuiltinFeaturizer

        featurizer = BuiltinFeaturizer.load(path)
    else:
        from gpner.features import HFFeaturizer

        featurizer = HFFeaturizer.load(path)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return Predictor(model.to(dev).eval(), featurizer, meta, dev)


class Predictor:
    """Predicts entities with exact character offsets; windows cover texts of any length."""

    def __init__(self, model: SpanModel, featurizer: Any, meta: dict[str, Any],
                 device: torch.device | str = "cpu"):
        self.model, self.featurizer, self.meta = model, featurizer, meta
        self.device = torch.device(device)

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @torch.no_grad()
    def predict(self, texts: str | Sequence[str], flat: bool | None = None,
                threshold: float | None = None, batch_size: int = 32) -> Any:
        """Records ``{"text", "entities": [{"start", "end", "label", "score", "prob", "text"}]}``
        for a list of texts (one record for a single string). ``flat``/``threshold`` default to
        the values saved with the model."""
        from gpner.data import iter_windows

        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        dec = self.meta["decode"]
        flat = dec["flat"] if flat is None else flat
        threshold = dec["threshold"] if threshold is None else threshold
        windows, encodings = [], {}
        for n, win, enc in iter_windows(texts, self.featurizer, self.meta["max_length"]):
            windows.append((n, win))
            encodings[n] = enc
        found: list[dict[tuple[int, int, int], float]] = [{} for _ in texts]
        was_training = self.model.training
        self.model.eval()
        order = sorted(range(len(windows)), key=lambda k: -len(windows[k][1]["offsets"]))
        for k in range(0, len(order), batch_size):
            chunk = [windows[m] for m in order[k:k + batch_size]]
            batch = {key: v.to(self.device) for key, v in
                     self.featurizer.collate([w for _, w in chunk]).items()}
            out = self.model(batch)
            for (n, win), spans in zip(chunk, self.model.candidates(
                    out, batch, threshold, dec.get("max_width"))):
                shift = win["start"] - win["prefix"]
                for sp in spans:
                    key = (sp.type, sp.start + shift, sp.end + shift)
                    found[n][key] = max(sp.score, found[n].get(key, -math.inf))
        self.model.train(was_training)
        records: list[Record] = []
        for n, text in enumerate(texts):
            spans = [Span(c, i, j, s) for (c, i, j), s in found[n].items()]
            spans = select_flat(spans) if flat else sorted(spans, key=lambda s: (s.start, s.end,
                                                                                  s.type))
            enc = encodings.get(n)
            ents = to_entities(text, enc, spans, self.labels) if enc is not None else []
            records.append({"text": text, "entities": ents})
        return records[0] if single else records

    def evaluate(self, records: Sequence[Record], **kwargs: Any) -> dict:
        """Strict entity-level metrics of this model's predictions against ``records``."""
        from gpner.metrics import evaluate

        pred = self.predict([r["text"] for r in records], **kwargs)
        return evaluate(records, pred)
