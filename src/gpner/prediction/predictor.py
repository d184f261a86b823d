"""Prediction in stages, each replaceable on its own:

    texts -> featurize: windows as CPU tensors, cut lazily
          -> batch: windows of several texts, in input order within a bounded look-ahead
          -> backend: a batch of CPU tensors -> named output tensors
          -> decode: the task's pure functions, outputs -> spans per window
          -> merge: one span per (label, start, end) per text, with its best score
          -> records with exact character offsets, in input order

A backend is any callable with the batch -> outputs contract: :class:`TorchBackend` runs the
PyTorch module; another runtime that takes the same inputs and gives the same named outputs can
replace it (:class:`gpner.prediction.backends.OnnxBackend` runs an exported graph with ONNX Runtime).
Memory does not grow with the input: at most ``lookahead`` windows (and the records waiting for
an earlier, longer text) are held at a time.

Long texts: windows of ``max_length`` tokens start every ``stride`` tokens. A span that touches
a window's inner edge may be a cut piece of a longer one, so it is kept only when no other window
holds it with context on both sides; the windows' remaining spans are merged, one per
(label, start, end), with the best score. This module imports torch only for the PyTorch backend.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Protocol, Sequence

import math

import numpy as np

from gpner.errors import ArgumentTypeError, InputError
from gpner.text.alignment import TokenSpan
from gpner.model.artifact import ModelConfig, resolve_dir
from gpner.errors import GpnerError, ModelFileError
from gpner.tasks.decoding import (SpanKey, merge_best, prob, select_flat_rows, spans_from_rows,
                            to_entities)
from gpner.text.features import Window, content_size, window_bounds
from gpner.data.records import Record
from gpner.text.tokenization import Encoding

LOOKAHEAD_BATCHES = 16  # default look-ahead, in batches: enough to sort windows by length
BACKENDS = ("torch", "onnx", "onnx-int8")


class Backend(Protocol):
    """A batch of NumPy arrays (the featurizer's ``collate``) -> named outputs (arrays or
    tensors)."""

    def __call__(self, batch: dict[str, np.ndarray]) -> Mapping[str, Any]: ...


class TorchBackend:
    """The PyTorch module as a backend, on ``device`` (default: where its weights are).

    It never changes the module's mode: :func:`load` puts a model in eval mode once, and the
    trainer switches its model to eval before it evaluates.
    """

    def __init__(self, model: Any, device: Any = None, threads: int | None = None):
        import torch

        self.model, self.threads = model, threads
        self.device = torch.device(device) if device else next(model.parameters()).device

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        import torch

        from gpner.training.examples import as_tensors, to_device

        if self.threads and torch.get_num_threads() != self.threads:
            # the calling thread's own setting (torch's OpenMP threads are set per thread):
            # concurrent batches each get their share without changing the process's
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            return self.model(to_device(as_tensors(batch), self.device))


@dataclass
class _Text:
    """A text in flight: its encoding, the windows still to decode, the spans found so far."""

    index: int
    text: str
    encoding: Encoding
    pending: int  # windows not yet decoded
    bounds: list[tuple[int, int]] = field(default_factory=list)  # its windows' token ranges
    found: dict[SpanKey, float] = field(default_factory=dict)
    # the spans of a text's only window, as arrays (span heads): rows (K, 3) of (label, start,
    # end) in text tokens and scores (K,); held instead of ``found``
    rows: tuple[np.ndarray, np.ndarray] | None = None
    # relation extraction: (s_start, s_end, o_start, o_end, relation id) -> best score
    links: dict[tuple[int, int, int, int, int], float] = field(default_factory=dict)


def featurize(texts: Iterable[str], featurizer: Any, max_length: int,
              stride: int | None = None) -> Iterator[tuple[_Text, Window | None]]:
    """(text, window) pairs, lazily; a text with no token gives one pair with no window."""
    size = content_size(featurizer, max_length)
    for n, text in enumerate(texts):
        if not isinstance(text, str):
            raise ArgumentTypeError(f"text {n} is a {type(text).__name__}, not a str: "
                                    f"{text!r:.60}", code="E502")
        enc = featurizer.encode(text)
        bounds = window_bounds(len(enc), size, stride) if any(enc.spannable) else []
        if len(bounds) > 1:  # held until its last window is predicted: keep it small
            enc = enc.packed()
        item = _Text(n, text, enc, pending=len(bounds), bounds=bounds)
        if not bounds:
            yield item, None
        for start, end in bounds:
            yield item, featurizer.window(text, enc, start, end)


def uncut(spans: Sequence[TokenSpan], win: Window, bounds: Sequence[tuple[int, int]],
          n: int) -> list[TokenSpan]:
    """A window's spans (text tokens) less those touching one of its inner edges that another
    window holds with context on both sides: such a span may be a piece of a longer one cut by
    the edge, and the other window sees it whole. ``bounds`` (sorted by start) are the text's
    windows, ``n`` its length in tokens."""
    if len(bounds) < 2:
        return list(spans)
    out = []
    for sp in spans:
        cut = (sp.start == win.start > 0) or (sp.end == win.end < n)
        if not (cut and _held_elsewhere(sp.start, sp.end, win, bounds, n)):
            out.append(sp)
    return out


def _held_elsewhere(i: int, j: int, win: Window, bounds: Sequence[tuple[int, int]], n: int
                    ) -> bool:
    """Whether a window other than ``win`` holds tokens [i, j) with context on both sides (or
    the text's own ends). Only windows starting at or before i can: scanned back from the last
    of them while they still reach i, so a long text's thousands of windows cost nothing."""
    k = bisect_right(bounds, (i, n + 1)) - 1
    while k >= 0 and bounds[k][1] > i:
        s, e = bounds[k]
        if (s, e) != (win.start, win.end) and (s < i or s == 0) and (j < e or e == n):
            return True
        k -= 1
    return False


class Predictor:
    """Predicts entities with exact character offsets; windows cover texts of any length."""

    def __init__(self, config: ModelConfig, featurizer: Any, task: Any, backend: Backend,
                 concurrency: int = 1):
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InputError(f"concurrency must be an integer >= 1, got {concurrency!r}",
                             code="E502")
        self.config, self.featurizer, self.task, self.backend = config, featurizer, task, backend
        # span heads decode to arrays, merged without an object per candidate (relation tasks
        # have no decode_rows: their triples are merged span by span)
        self._rows = getattr(task, "span_head", False) and hasattr(task, "decode_rows")
        # batches computed at once, each in its own thread (the runtimes release the GIL): on a
        # few cores, batches side by side on one thread each beat one batch on all of them
        self.concurrency = concurrency

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)

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
                                                         if isinstance(texts, dict) else ""),
                                    code="E502")
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
        threshold = dec.threshold if threshold is None else threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not math.isfinite(threshold):
            raise InputError(f"threshold must be a finite number, got {threshold!r}",
                             code="E502")
        stride = dec.stride if stride is None else stride
        if progress:
            texts = _progress(texts)
        lookahead = max(batch_size, lookahead or LOOKAHEAD_BATCHES * batch_size)
        if self.concurrency > 1:  # half the look-ahead is computed while the rest is cut
            return self._predict_concurrent(texts, batch_size, flat, threshold,
                                            max(batch_size, lookahead // 2), stride)
        return self._predict_serial(texts, batch_size, flat, threshold, lookahead, stride)

    def _predict_serial(self, texts: Iterable[str], batch_size: int, flat: bool,
                        threshold: float, lookahead: int, stride: int | None
                        ) -> Iterator[Record]:
        buffer: list[tuple[_Text, Window]] = []
        done: dict[int, Record] = {}
        next_out = 0

        def run_buffer() -> None:
            for chunk in _chunks(buffer, batch_size):
                for doc in self.run_windows(chunk, threshold):
                    done[doc.index] = self._record(doc, flat)
            buffer.clear()

        for doc, win in featurize(texts, self.featurizer, self.config.max_length, stride):
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

    def _predict_concurrent(self, texts: Iterable[str], batch_size: int, flat: bool,
                            threshold: float, lookahead: int, stride: int | None
                            ) -> Iterator[Record]:
        """:meth:`predict_iter` with ``concurrency`` batches in threads: a full buffer's
        batches are submitted, and the next buffer is cut while they run; results are merged
        in submission order on this thread, so the records are the serial path's."""
        from concurrent.futures import Future, ThreadPoolExecutor

        buffer: list[tuple[_Text, Window]] = []
        running: list[tuple[list[tuple[_Text, Window]], Future]] = []
        done: dict[int, Record] = {}
        next_out = 0
        with ThreadPoolExecutor(self.concurrency, "gpner-predict") as pool:
            def merge_running() -> None:
                for chunk, future in running:
                    for doc in self._merge(chunk, future.result()):
                        done[doc.index] = self._record(doc, flat)
                running.clear()

            def submit_buffer() -> None:
                for chunk in _chunks(buffer, batch_size):
                    running.append((chunk, pool.submit(
                        self._decode, [w for _, w in chunk], threshold)))
                buffer.clear()

            try:
                for doc, win in featurize(texts, self.featurizer, self.config.max_length,
                                          stride):
                    if win is None:
                        done[doc.index] = self._record(doc, flat)
                    else:
                        buffer.append((doc, win))
                    if len(buffer) + len(done) >= lookahead:
                        merge_running()  # at most two buffers' windows are held
                        submit_buffer()
                    while next_out in done:
                        yield done.pop(next_out)
                        next_out += 1
                merge_running()
                submit_buffer()
                merge_running()
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
            finally:  # stopped early or failed: do not start batches nobody will read
                for _, future in running:
                    future.cancel()

    def run_windows(self, chunk: Sequence[tuple[_Text, Window]], threshold: float
                    ) -> list[_Text]:
        """One forward pass over a chunk of (text, window) pairs: each window's spans are merged
        into its text; returns the texts whose last window this was, in chunk order."""
        return self._merge(chunk, self._decode([w for _, w in chunk], threshold))

    def _merge(self, chunk: Sequence[tuple[_Text, Window]], decoded: Sequence[Any]
               ) -> list[_Text]:
        """Each window's decoded spans (and triples) merged into its text; the texts whose last
        window this was, in chunk order."""
        finished = []
        relations = getattr(self.task, "has_relations", False)
        for (doc, win), out in zip(chunk, decoded):
            spans, triples = out if relations else (out, ())
            shift = win.start - win.prefix  # window token -> text token
            if self._rows:  # span heads: arrays of (label, start, end) and scores
                rows, v = spans
                rows = rows + np.array([0, shift, shift], dtype=rows.dtype)  # text tokens
                if len(doc.bounds) < 2:  # the text's only window: no edge cuts a span
                    doc.rows = (rows, v.astype(np.float64))
                else:  # a span by an inner edge needs a look at the other windows
                    kept = uncut(spans_from_rows(rows, v), win, doc.bounds, len(doc.encoding))
                    merge_best(doc.found, kept, 0)
            else:
                spans = [sp._replace(start=sp.start + shift, end=sp.end + shift)
                         for sp in spans]
                kept = uncut(spans, win, doc.bounds, len(doc.encoding))
                merge_best(doc.found, kept, 0)
            if triples:  # a triple counts where both its entities do (not cut by an edge)
                alive = {(sp.start, sp.end) for sp in kept}
                for t in triples:
                    key = (t.s_start + shift, t.s_end + shift, t.o_start + shift,
                           t.o_end + shift, t.label)
                    if key[:2] in alive and key[2:4] in alive and \
                            t.score > doc.links.get(key, float("-inf")):
                        doc.links[key] = t.score
            doc.pending -= 1
            if doc.pending == 0:
                finished.append(doc)
        return finished

    def _decode(self, windows: Sequence[Window], threshold: float) -> list[Any]:
        """Per window: (rows, scores) arrays for span heads, else spans (and triples)."""
        batch = self.featurizer.collate(windows)
        outputs = self.backend(batch)
        decode = self.task.decode_rows if self._rows else self.task.decode
        return decode(outputs, batch, threshold, self.config.decode.max_width)

    def _record(self, doc: _Text, flat: bool, threshold: float | None = None,
                labels: Iterable[str] | None = None) -> Record:
        """The text's record. ``threshold`` (span heads) keeps the spans scoring above it, of
        those decoded at a lower one, before flat selection; ``labels`` then keeps the entities
        of those labels: a filter on the full prediction, so flat choices do not change."""
        if doc.rows is not None:
            rows, v = doc.rows
        else:
            found = doc.found
            rows = np.array(list(found), dtype=np.int64).reshape(-1, 3)  # (label, start, end)
            v = np.fromiter(found.values(), dtype=np.float64, count=len(found))
        if threshold is not None and self.task.span_head:
            keep = v > threshold
            rows, v = rows[keep], v[keep]
        spans = select_flat_rows(rows, v) if flat else spans_from_rows(rows, v)
        entities = to_entities(doc.text, doc.encoding, spans, self.labels)
        relations = (self._relations(doc, spans, threshold)
                     if getattr(self.task, "has_relations", False) else None)
        if labels is not None:  # the entities kept, and the relations between them
            keep = set(labels)
            new = {k: n for n, k in enumerate(k for k, e in enumerate(entities)
                                               if e["label"] in keep)}
            entities = [e for e in entities if e["label"] in keep]
            if relations is not None:
                relations = [{**r, "head": new[r["head"]], "tail": new[r["tail"]]}
                             for r in relations if r["head"] in new and r["tail"] in new]
        record: Record = {"text": doc.text, "entities": entities}
        if relations is not None:
            record["relations"] = relations
        return record

    def _relations(self, doc: _Text, spans: Sequence[TokenSpan], threshold: float | None
                   ) -> list[dict]:
        """The text's triples as relations between its entities (``spans``, in record order):
        an argument is the best-scoring entity at its position; a triple whose entity did not
        make the record (flat selection, a higher threshold) is left out."""
        at: dict[tuple[int, int], int] = {}
        for k, sp in enumerate(spans):
            old = at.get((sp.start, sp.end))
            if old is None or sp.score > spans[old].score:
                at[(sp.start, sp.end)] = k
        out = []
        for (ss, se, os_, oe, p), v in doc.links.items():
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
        if getattr(self.task, "has_relations", False):
            return evaluate_relations(records, pred)
        return evaluate(records, pred)


def _chunks(buffer: list[tuple[_Text, Window]], size: int
            ) -> Iterator[list[tuple[_Text, Window]]]:
    """The buffer's windows, longest first (similar lengths: little padding), in batches."""
    buffer.sort(key=lambda item: -len(item[1]))
    for k in range(0, len(buffer), size):
        yield buffer[k:k + size]


def _progress(texts: Iterable[str]) -> Iterator[str]:
    from tqdm.auto import tqdm

    total = len(texts) if isinstance(texts, Sequence) else None
    yield from tqdm(texts, total=total, unit="text", dynamic_ncols=True, mininterval=0.5)


def load(directory: str | Path, device: str | None = None, backend: str = "torch",
         threads: int | None = None, concurrency: int = 1) -> Predictor:
    """Load a model directory (or a training run directory holding ``model/``) for prediction.

    ``backend``: ``torch`` (the PyTorch module, in eval mode, on ``device``: default CUDA when
    available), ``onnx`` or ``onnx-int8`` (the graphs ``gpner export --onnx [--int8]`` wrote,
    run by ONNX Runtime on the CPU; torch is not imported). ``threads``: intra-op threads
    (default: the runtime's own choice; with ``concurrency`` > 1, the cores shared out).
    ``concurrency``: batches computed at once, each in a thread (for throughput over many
    texts; one text at a time is fastest with 1).
    """
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}",
                         code="E502")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InputError(f"concurrency must be an integer >= 1, got {concurrency!r}",
                         code="E502")
    if concurrency > 1 and not threads:  # the cores shared out, not each batch on all of them
        threads = max(1, _cores() // concurrency)
    from gpner.text.features import load_featurizer
    from gpner.tasks import task_for

    path = resolve_dir(directory)
    config = ModelConfig.load(path)
    if backend != "torch":
        from gpner.prediction.backends import OnnxBackend

        runner: Backend = OnnxBackend.load(path, int8=backend == "onnx-int8", threads=threads)
        featurizer = load_featurizer(config.encoder.type, path, without_torch=True)
        return Predictor(config, featurizer, task_for(config), runner, concurrency)
    import torch

    from gpner.model.artifact import load_weights
    from gpner.model.network import from_config

    if threads and concurrency == 1:
        torch.set_num_threads(threads)
    try:
        model, task = from_config(config, path)
        load_weights(model, path, config)
        featurizer = load_featurizer(config.encoder.type, path,
                                     encoder_config=config.encoder_config)
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
        if isinstance(exc, GpnerError):
            raise
        # what config.json describes cannot be built: name the directory and the problem
        raise ModelFileError(f"{path}: the model described by config.json cannot be built "
                             f"({type(exc).__name__}: {exc})", code="E203") from exc
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev).eval()
    # concurrent batches set their threads in their own threads, leaving the process's alone
    backend = TorchBackend(model, dev, threads if concurrency > 1 else None)
    return Predictor(config, featurizer, task, backend, concurrency)


def _cores() -> int:
    """The CPUs this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
