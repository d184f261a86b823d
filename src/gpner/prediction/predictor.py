"""Prediction in stages, each replaceable on its own:

    texts -> featurize: windows as arrays, cut lazily (the featurizer)
          -> batch: windows of several texts, in input order within a bounded look-ahead
          -> backend: a batch of arrays -> named outputs (any :class:`~gpner.contracts.Backend`)
          -> decode: the task's pure functions, outputs -> spans per window
          -> merge: one span per (label, start, end) per text, with its best score
             (:class:`gpner.text.windows.MergedSpans`, which applies the window-edge rule)
          -> records with exact character offsets, in input order

Memory does not grow with the input: at most ``lookahead`` windows (and the records waiting for
an earlier, longer text) are held at a time. Building a predictor from a model directory, and
choosing its backend, is :mod:`gpner.prediction.loading`'s. This module never imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from gpner.contracts import Backend, Featurizer, Task, Window, WindowSpans
from gpner.errors import ArgumentTypeError, InputError
from gpner.model.artifact import ModelConfig
from gpner.records import Entity, Record, Relation
from gpner.tasks.decoding import prob, select_flat_rows, to_entities
from gpner.text.alignment import TokenSpan
from gpner.text.tokenization import Encoding, PackedEncoding
from gpner.text.windows import (
    MergedSpans,
    content_size,
    spans_from_rows,
    window_bounds,
)

LOOKAHEAD_BATCHES = 16  # default look-ahead, in batches: enough to sort windows by length

Pair = tuple["TextInFlight", Window]  # a window and the text it was cut from


@dataclass
class TextInFlight:
    """A text being predicted: its encoding, its windows' token ranges, how many of them are
    still to decode, and the spans merged from those decoded so far."""

    index: int  # position in the input
    text: str
    encoding: Encoding | PackedEncoding
    pending: int  # windows not yet decoded
    bounds: list[tuple[int, int]] = field(default_factory=list)  # its windows' token ranges
    spans: MergedSpans = field(default_factory=MergedSpans)

    def add(self, decoded: WindowSpans, win: Window) -> bool:
        """Merge one window's decoded spans; True when it was the text's last window."""
        self.spans.add(decoded, win, self.bounds, len(self.encoding))
        self.pending -= 1
        return self.pending == 0


def featurize(texts: Iterable[str], featurizer: Featurizer, max_length: int,
              stride: int | None = None) -> Iterator[tuple[TextInFlight, Window | None]]:
    """(text, window) pairs, lazily; a text with no token gives one pair with no window."""
    size = content_size(featurizer, max_length)
    for n, text in enumerate(texts):
        if not isinstance(text, str):
            raise ArgumentTypeError(f"text {n} is a {type(text).__name__}, not a str: "
                                    f"{text!r:.60}", code="E502")
        enc = featurizer.encode(text)
        bounds = window_bounds(len(enc), size, stride) if any(enc.spannable) else []
        # held until its last window is predicted: a long text's is kept small
        held = enc.packed() if len(bounds) > 1 else enc
        item = TextInFlight(n, text, held, pending=len(bounds), bounds=bounds)
        if not bounds:
            yield item, None
        for start, end in bounds:
            yield item, featurizer.window(text, held, start, end)


def check_concurrency(concurrency: Any) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InputError(f"concurrency must be an integer >= 1, got {concurrency!r}",
                         code="E502")


class Predictor:
    """Predicts entities (and relations) with exact character offsets; windows cover texts of
    any length. Built from a model's config, its featurizer, its task and a backend
    (:func:`gpner.load` builds one from a model directory)."""

    def __init__(self, config: ModelConfig, featurizer: Featurizer, task: Task,
                 backend: Backend, concurrency: int = 1):
        check_concurrency(concurrency)
        self.config, self.featurizer, self.task, self.backend = config, featurizer, task, backend
        # batches computed at once, each in its own thread (the runtimes release the GIL): on a
        # few cores, batches side by side on one thread each beat one batch on all of them
        self.concurrency = concurrency
        self._calibration: tuple[Any, Callable[[int, float], float]] | None = None

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)

    @property
    def prob_of(self) -> Callable[[int, float], float] | None:
        """(label id, score) -> the calibrated prob when the model has maps
        (``decode.calibration``, :mod:`gpner.calibration`); None: sigmoid(2 * score)."""
        specs = self.config.decode.calibration
        if not specs or not self.task.span_head:
            return None
        if self._calibration is None or self._calibration[0] is not specs:
            from gpner.calibration import Calibration

            self._calibration = (specs, Calibration(self.config.labels, specs).prob)
        return self._calibration[1]

    def predict(self, texts: str | Sequence[str], flat: bool | None = None,
                threshold: float | None = None, batch_size: int = 32,
                stride: int | None = None, progress: bool = False) -> Any:
        """Records ``{"text", "entities": [{"start", "end", "label", "score", "prob", "text"}]}``
        for a list of texts (one record for a single string); a relation model adds
        ``"relations": [{"head", "tail", "label", "score", "prob"}]`` indexing the entities.
        ``flat``/``threshold``/``stride`` default to the values saved with the model;
        ``progress`` shows a bar (texts/s)."""
        if isinstance(texts, str):
            return next(self.predict_iter([texts], batch_size, flat, threshold, stride=stride))
        if isinstance(texts, dict) or not isinstance(texts, Iterable):
            raise ArgumentTypeError(f"predict takes a text or a list of texts, not a "
                                    f"{type(texts).__name__}" + (" (pass record['text'])"
                                                                 if isinstance(texts, dict)
                                                                 else ""), code="E502")
        return list(self.predict_iter(texts, batch_size, flat, threshold, stride=stride,
                                      progress=progress))

    def predict_iter(self, texts: Iterable[str], batch_size: int = 32, flat: bool | None = None,
                     threshold: float | None = None, lookahead: int | None = None,
                     stride: int | None = None, progress: bool = False) -> Iterator[Record]:
        """Stream records for a stream of texts, in input order; ``lookahead`` (windows,
        default 16 batches) bounds what is held in memory; ``stride`` (tokens between window
        starts) defaults to the model's, half a window."""
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}", code="E502")
        dec = self.config.decode
        flat = bool(dec.flat) if flat is None else flat
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(
                threshold, (int, float)) or not math.isfinite(threshold)):
            raise InputError(f"threshold must be a finite number, got {threshold!r}",
                             code="E502")
        if progress:
            texts = _progress(texts)
        lookahead = max(batch_size, lookahead or LOOKAHEAD_BATCHES * batch_size)
        floor, per = self.cut(threshold)  # a given threshold overrides the per-label ones
        if self.concurrency > 1:  # half the look-ahead is computed while the rest is cut
            return self._predict_concurrent(texts, batch_size, flat, floor,
                                            max(batch_size, lookahead // 2), stride, per)
        return self._predict_serial(texts, batch_size, flat, floor, lookahead, stride, per)

    def cut(self, threshold: float | None) -> tuple[float, np.ndarray | None]:
        """The threshold windows are decoded at, and the per-label thresholds (C,) that the
        records keep spans above (None: the one threshold). A given ``threshold`` overrides
        the model's per-label ones (``gpner calibrate``); span heads only."""
        dec = self.config.decode
        if threshold is not None or not dec.thresholds or not self.task.span_head:
            return (dec.threshold if threshold is None else float(threshold)), None
        per = np.array([dec.thresholds.get(lab, dec.threshold) for lab in self.config.labels],
                       dtype=np.float64)
        return float(per.min()), per

    def featurize(self, texts: Iterable[str], stride: int | None = None
                  ) -> Iterator[tuple[TextInFlight, Window | None]]:
        """The texts cut into windows, lazily (:func:`featurize` with this model's settings;
        ``stride`` defaults to the model's)."""
        stride = self.config.decode.stride if stride is None else stride
        return featurize(texts, self.featurizer, self.config.max_length, stride)

    def _predict_serial(self, texts: Iterable[str], batch_size: int, flat: bool,
                        threshold: float, lookahead: int, stride: int | None,
                        per: np.ndarray | None = None) -> Iterator[Record]:
        buffer: list[Pair] = []
        done: dict[int, Record] = {}
        next_out = 0

        def run_buffer() -> None:
            for chunk in _chunks(buffer, batch_size):
                for doc in self.run_windows(chunk, threshold):
                    done[doc.index] = self.record(doc, flat, per)
            buffer.clear()

        for doc, win in self.featurize(texts, stride):
            if win is None:
                done[doc.index] = self.record(doc, flat, per)
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

    def _predict_concurrent(self, texts: Iterable[str], batch_size: int, flat: bool,
                            threshold: float, lookahead: int, stride: int | None,
                            per: np.ndarray | None = None) -> Iterator[Record]:
        """:meth:`predict_iter` with ``concurrency`` batches in threads: a full buffer's
        batches are submitted, and the next buffer is cut while they run; results are merged
        in submission order on this thread, so the records are the serial path's."""
        from concurrent.futures import Future, ThreadPoolExecutor

        buffer: list[Pair] = []
        running: list[tuple[list[Pair], Future]] = []
        done: dict[int, Record] = {}
        next_out = 0

        def merge_running() -> None:
            for chunk, future in running:
                for doc in self._merge(chunk, future.result()):
                    done[doc.index] = self.record(doc, flat, per)
            running.clear()

        def submit_buffer(pool: ThreadPoolExecutor) -> None:
            for chunk in _chunks(buffer, batch_size):
                running.append((chunk, pool.submit(self.decode_windows, [w for _, w in chunk],
                                                   threshold)))
            buffer.clear()

        with ThreadPoolExecutor(self.concurrency, "gpner-predict") as pool:
            try:
                for doc, win in self.featurize(texts, stride):
                    if win is None:
                        done[doc.index] = self.record(doc, flat, per)
                    else:
                        buffer.append((doc, win))
                    if len(buffer) + len(done) >= lookahead:
                        merge_running()  # at most two buffers' windows are held
                        submit_buffer(pool)
                    while next_out in done:
                        yield done.pop(next_out)
                        next_out += 1
                merge_running()
                submit_buffer(pool)
                merge_running()
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
            finally:  # stopped early or failed: do not start batches nobody will read
                for _, future in running:
                    future.cancel()

    def run_windows(self, chunk: Sequence[Pair], threshold: float) -> list[TextInFlight]:
        """One forward pass over a chunk of (text, window) pairs: each window's spans are merged
        into its text; returns the texts whose last window this was, in chunk order."""
        return self._merge(chunk, self.decode_windows([w for _, w in chunk], threshold))

    def decode_windows(self, windows: Sequence[Window], threshold: float) -> list[WindowSpans]:
        """One forward pass and the task's decoding: per window, its candidates."""
        batch = self.featurizer.collate(windows)
        outputs = self.backend(batch)
        return self.task.decode(outputs, batch, threshold, self.config.decode.max_width)

    @staticmethod
    def _merge(chunk: Sequence[Pair], decoded: Sequence[WindowSpans]) -> list[TextInFlight]:
        """Each window's decoded spans merged into its text; the texts whose last window this
        was, in chunk order."""
        return [doc for (doc, win), out in zip(chunk, decoded, strict=True) if doc.add(out, win)]

    def record(self, doc: TextInFlight, flat: bool,
               threshold: float | np.ndarray | None = None,
               labels: Iterable[str] | None = None) -> Record:
        """The record of a text whose windows are all merged. ``threshold`` (span heads) keeps
        the spans scoring above it, of those decoded at a lower one, before flat selection;
        ``labels`` then keeps the entities of those labels: a filter on the full prediction,
        so flat choices do not change."""
        rows, v = doc.spans.arrays()
        if threshold is not None and self.task.span_head:
            # one threshold, or one per label (C,): each span against its label's
            keep = v > (threshold[rows[:, 0]] if isinstance(threshold, np.ndarray) else threshold)
            rows, v = rows[keep], v[keep]
        spans = select_flat_rows(rows, v) if flat else spans_from_rows(rows, v)
        entities = to_entities(doc.text, doc.encoding, spans, self.labels, self.prob_of)
        triples = float(threshold.min()) if isinstance(threshold, np.ndarray) else threshold
        relations = self._relations(doc, spans, triples) if self.task.has_relations else None
        if labels is not None:  # the entities kept, and the relations between them
            entities, relations = _keep_labels(entities, relations, set(labels))
        record: Record = {"text": doc.text, "entities": entities}
        if relations is not None:
            record["relations"] = relations
        return record

    def _relations(self, doc: TextInFlight, spans: Sequence[TokenSpan],
                   threshold: float | None) -> list[Relation]:
        """The text's triples as relations between its entities (``spans``, in record order):
        an argument is the best-scoring entity at its position; a triple whose entity did not
        make the record (flat selection, a higher threshold) is left out."""
        at: dict[tuple[int, int], int] = {}
        for k, sp in enumerate(spans):
            old = at.get((sp.start, sp.end))
            if old is None or sp.score > spans[old].score:
                at[(sp.start, sp.end)] = k
        out: list[Relation] = []
        for (ss, se, os_, oe, p), v in doc.spans.links.items():
            h, t = at.get((ss, se)), at.get((os_, oe))
            if h is None or t is None or (threshold is not None and v <= threshold):
                continue
            out.append({"head": h, "tail": t, "label": self.task.relations[p],
                        "score": round(v, 4), "prob": round(prob(v), 4)})
        out.sort(key=lambda r: (r["head"], r["tail"], r["label"]))
        return out

    def evaluate(self, records: Sequence[Record], **kwargs: Any) -> dict:
        """Strict entity-level metrics of this model's predictions against ``records`` (for a
        relation model, triple metrics with the entity metrics under ``"entities"``)."""
        from gpner.metrics import evaluate, evaluate_relations

        pred = self.predict([r["text"] for r in records], **kwargs)
        if self.task.has_relations:
            return evaluate_relations(records, pred)
        return evaluate(records, pred)


def _keep_labels(entities: list[Entity], relations: list[Relation] | None, keep: set[str]
                 ) -> tuple[list[Entity], list[Relation] | None]:
    """The entities of the labels in ``keep``, and the relations between them, re-indexed."""
    new = {k: n for n, k in enumerate(k for k, e in enumerate(entities) if e["label"] in keep)}
    entities = [e for e in entities if e["label"] in keep]
    if relations is not None:
        relations = [{**r, "head": new[r["head"]], "tail": new[r["tail"]]}
                     for r in relations if r["head"] in new and r["tail"] in new]
    return entities, relations


def _chunks(buffer: list[Pair], size: int) -> Iterator[list[Pair]]:
    """The buffer's windows, longest first (similar lengths: little padding), in batches."""
    buffer.sort(key=lambda item: -len(item[1]))
    for k in range(0, len(buffer), size):
        yield buffer[k:k + size]


def _progress(texts: Iterable[str]) -> Iterator[str]:
    from tqdm.auto import tqdm

    total = len(texts) if isinstance(texts, Sequence) else None
    yield from tqdm(texts, total=total, unit="text", dynamic_ncols=True, mininterval=0.5)
