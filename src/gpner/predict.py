"""Prediction in stages, each replaceable on its own:

    texts -> featurize: windows as CPU tensors, cut lazily
          -> batch: windows of several texts, in input order within a bounded look-ahead
          -> backend: a batch of CPU tensors -> named output tensors
          -> decode: the task's pure functions, outputs -> spans per window
          -> merge: one span per (label, start, end) per text, with its best score
          -> records with exact character offsets, in input order

A backend is any callable with the batch -> outputs contract: :class:`TorchBackend` runs the
PyTorch module; another runtime that takes the same inputs and gives the same named outputs can
replace it. Memory does not grow with the input: at most ``lookahead`` windows (and the records
waiting for an earlier, longer text) are held at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np
import torch

from gpner.alignment import TokenSpan
from gpner.artifact import ModelConfig, load_weights, resolve_dir
from gpner.data import content_size, to_device, window_bounds
from gpner.decoding import SpanKey, merge_best, select_flat_rows, spans_from_rows, to_entities
from gpner.features import Window
from gpner.records import Record
from gpner.tokenization import Encoding

LOOKAHEAD_BATCHES = 16  # default look-ahead, in batches: enough to sort windows by length


class Backend(Protocol):
    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...


class TorchBackend:
    """The PyTorch module as a backend, on ``device`` (default: where its weights are).

    It never changes the module's mode: :func:`load` puts a model in eval mode once, and the
    trainer switches its model to eval before it evaluates.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device | str | None = None):
        self.model = model
        self.device = torch.device(device) if device else next(model.parameters()).device

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            return self.model(to_device(batch, self.device))


@dataclass
class _Text:
    """A text in flight: its encoding, the windows still to decode, the spans found so far."""

    index: int
    text: str
    encoding: Encoding
    pending: int  # windows not yet decoded
    found: dict[SpanKey, float] = field(default_factory=dict)


def featurize(texts: Iterable[str], featurizer: Any, max_length: int
              ) -> Iterator[tuple[_Text, Window | None]]:
    """(text, window) pairs, lazily; a text with no token gives one pair with no window."""
    size = content_size(featurizer, max_length)
    for n, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {n} is a {type(text).__name__}, not a str: {text!r:.60}")
        enc = featurizer.encode(text)
        bounds = window_bounds(len(enc), size) if any(enc.spannable) else []
        item = _Text(n, text, enc, pending=len(bounds))
        if not bounds:
            yield item, None
        for start, end in bounds:
            yield item, featurizer.window(text, enc, start, end)


class Predictor:
    """Predicts entities with exact character offsets; windows cover texts of any length."""

    def __init__(self, config: ModelConfig, featurizer: Any, task: Any, backend: Backend):
        self.config, self.featurizer, self.task, self.backend = config, featurizer, task, backend

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)

    def predict(self, texts: str | Sequence[str], flat: bool | None = None,
                threshold: float | None = None, batch_size: int = 32) -> Any:
        """Records ``{"text", "entities": [{"start", "end", "label", "score", "prob", "text"}]}``
        for a list of texts (one record for a single string). ``flat``/``threshold`` default to
        the values saved with the model."""
        if isinstance(texts, str):
            return next(self.predict_iter([texts], batch_size, flat, threshold))
        if isinstance(texts, dict) or not isinstance(texts, Iterable):
            raise TypeError(f"predict takes a text or a list of texts, not a "
                            f"{type(texts).__name__}" + (" (pass record['text'])"
                                                         if isinstance(texts, dict) else ""))
        return list(self.predict_iter(texts, batch_size, flat, threshold))

    def predict_iter(self, texts: Iterable[str], batch_size: int = 32, flat: bool | None = None,
                     threshold: float | None = None, lookahead: int | None = None
                     ) -> Iterator[Record]:
        """Stream records for a stream of texts, in input order; ``lookahead`` (windows,
        default 16 batches) bounds what is held in memory."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        dec = self.config.decode
        flat = bool(dec.flat) if flat is None else flat
        threshold = dec.threshold if threshold is None else threshold
        lookahead = max(batch_size, lookahead or LOOKAHEAD_BATCHES * batch_size)
        buffer: list[tuple[_Text, Window]] = []
        done: dict[int, Record] = {}
        next_out = 0

        def run_buffer() -> None:
            buffer.sort(key=lambda item: -len(item[1]))  # similar lengths: little padding
            for k in range(0, len(buffer), batch_size):
                chunk = buffer[k:k + batch_size]
                for (doc, win), spans in zip(chunk, self._decode([w for _, w in chunk],
                                                                 threshold)):
                    merge_best(doc.found, spans, win.start - win.prefix)
                    doc.pending -= 1
                    if doc.pending == 0:
                        done[doc.index] = self._record(doc, flat)
            buffer.clear()

        for doc, win in featurize(texts, self.featurizer, self.config.max_length):
            if win is None:
                done[doc.index] = self._record(doc, flat)
            else:
                buffer.append((doc, win))
            if len(buffer) + len(done) >= lookahead:
                run_buffer()
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
        run_buffer()
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1

    def _decode(self, windows: Sequence[Window], threshold: float) -> list[list[TokenSpan]]:
        batch = self.featurizer.collate(windows)
        outputs = self.backend(batch)
        return self.task.decode(outputs, batch, threshold, self.config.decode.max_width)

    def _record(self, doc: _Text, flat: bool) -> Record:
        rows = np.array(list(doc.found), dtype=np.int64).reshape(-1, 3)  # (label, start, end)
        v = np.fromiter(doc.found.values(), dtype=np.float64, count=len(doc.found))
        spans = select_flat_rows(rows, v) if flat else spans_from_rows(rows, v)
        return {"text": doc.text,
                "entities": to_entities(doc.text, doc.encoding, spans, self.labels)}

    def evaluate(self, records: Sequence[Record], **kwargs: Any) -> dict:
        """Strict entity-level metrics of this model's predictions against ``records``."""
        from gpner.metrics import evaluate

        pred = self.predict([r["text"] for r in records], **kwargs)
        return evaluate(records, pred)


def load(directory: str | Path, device: str | None = None) -> Predictor:
    """Load a model directory (or a training run directory holding ``model/``), in eval mode."""
    from gpner.features import load_featurizer
    from gpner.model import from_config

    path = resolve_dir(directory)
    config = ModelConfig.load(path)
    model, task = from_config(config, path)
    load_weights(model, path, config)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev).eval()
    featurizer = load_featurizer(config.encoder.type, path)
    return Predictor(config, featurizer, task, TorchBackend(model, dev))
