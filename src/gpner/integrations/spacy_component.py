"""gpner as a spaCy pipeline component (the ``spacy`` extra).

    nlp = spacy.blank("zh")
    nlp.add_pipe("gpner", config={"model": "runs/my-ner", "threshold": 0.0, "spans_key": "sc"})
    doc = nlp("张伟在北京大学工作。")
    doc.ents                  # flat entities: the best-scoring non-overlapping spans
    doc.spans["sc"]           # every span above the threshold, nested ones included
    doc.spans["sc"][0]._.score

The factory is registered through the ``spacy_factories`` entry point, so installing gpner is
all ``add_pipe("gpner")`` needs. gpner predicts character offsets; they are mapped to spaCy's
tokens with ``alignment_mode`` (``strict``: a span whose edges fall inside a token is not
placed; ``expand``/``contract``: widened or narrowed to token edges). Every span that could not
be placed as predicted is counted in ``component.report`` and in ``doc.user_data["gpner"]``,
and logged; none is dropped silently. ``nlp.to_disk`` copies the model directory into the
pipeline, so ``spacy.load`` needs nothing else.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import minibatch

log = logging.getLogger("gpner.spacy")
MODES = ("strict", "expand", "contract")
MODEL_DIR = "model"  # inside the component's folder of a saved pipeline



def _user_data(doc: Doc) -> dict[Any, Any]:
    """``doc.user_data``, whose keys spaCy's own extensions make tuples (typed as str)."""
    return doc.user_data


def _getter(field: str) -> Any:
    # keyed by label too: a nested prediction can give one span two labels, and spaCy keys a
    # span's settable extensions by its offsets only
    def get(span: Span) -> float | None:
        return _user_data(span.doc).get(("gpner", field, span.start_char, span.end_char,
                                         span.label_))
    return get


for _field in ("score", "prob"):
    if not Span.has_extension(_field):
        Span.set_extension(_field, getter=_getter(_field))


@Language.factory("gpner", default_config={
    "model": None, "threshold": None, "spans_key": "sc", "set_ents": True, "batch_size": 32,
    "alignment_mode": "strict", "backend": "torch"})
def make_gpner(nlp: Language, name: str, model: str | None, threshold: float | None,
               spans_key: str, set_ents: bool, batch_size: int, alignment_mode: str,
               backend: str) -> "GpnerComponent":
    return GpnerComponent(nlp, name, model, threshold, spans_key, set_ents, batch_size,
                          alignment_mode, backend)


class GpnerComponent:
    """The ``gpner`` pipeline component: a gpner model's spans set on each doc (see the module
    docstring)."""

    def __init__(self, nlp: Language, name: str, model: str | None, threshold: float | None,
                 spans_key: str = "sc", set_ents: bool = True, batch_size: int = 32,
                 alignment_mode: str = "strict", backend: str = "torch"):
        if alignment_mode not in MODES:
            raise ValueError(f"alignment_mode must be one of {MODES}, got {alignment_mode!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name, self.model_dir = name, model
        self.threshold, self.spans_key, self.set_ents = threshold, spans_key, set_ents
        self.batch_size, self.alignment_mode, self.backend = batch_size, alignment_mode, backend
        self.report: Counter = Counter()  # spans, placed, adjusted, not_placed
        self._predictor: Any = None  # loaded on first use: from_disk may point elsewhere

    @property
    def predictor(self) -> Any:
        if self._predictor is None:
            if not self.model_dir:
                raise ValueError(f"the '{self.name}' component needs a model: "
                                 'nlp.add_pipe("gpner", config={"model": "DIR"})')
            from gpner.prediction.loading import load

            self._predictor = load(self.model_dir, backend=self.backend)
        return self._predictor

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's labels, read from its config without loading it (spaCy asks for them
        while it loads a pipeline, before ``from_disk`` points at the saved model)."""
        if self._predictor is not None:
            return tuple(self._predictor.labels)
        from gpner.model.artifact import ModelConfig, resolve_dir

        if not self.model_dir:
            return ()
        try:
            return tuple(ModelConfig.load(resolve_dir(self.model_dir)).labels)
        except (FileNotFoundError, TypeError, ValueError):
            return ()

    def __call__(self, doc: Doc) -> Doc:
        return next(self.pipe([doc]))

    def pipe(self, docs: Iterable[Doc], batch_size: int | None = None) -> Iterator[Doc]:
        """Docs in, the same docs out with ``ents`` and ``spans[spans_key]`` set; the texts
        of each ``batch_size`` docs go through the predictor together."""
        for batch in minibatch(docs, size=batch_size or self.batch_size):
            records = self.predictor.predict([d.text for d in batch], flat=False,
                                             threshold=self.threshold,
                                             batch_size=self.batch_size)
            for doc, record in zip(batch, records, strict=True):
                self._annotate(doc, record["entities"])
                yield doc

    def _annotate(self, doc: Doc, entities: list[dict]) -> None:
        spans, missed = [], []
        counts: Counter = Counter(spans=len(entities))
        for e in entities:
            span = doc.char_span(e["start"], e["end"], label=e["label"],
                                 alignment_mode=self.alignment_mode)
            if span is None or not len(span):
                missed.append(e)
                continue
            if (span.start_char, span.end_char) != (e["start"], e["end"]):
                counts["adjusted"] += 1
            for field in ("score", "prob"):
                _user_data(doc)[("gpner", field, span.start_char, span.end_char,
                                 span.label_)] = e[field]
            spans.append((span, e))
        counts["placed"] = len(spans)
        counts["not_placed"] = len(missed)
        self.report.update(counts)
        doc.user_data["gpner"] = dict(counts)
        if missed:
            log.warning("%s: %d of %d spans do not fall on spaCy token edges (alignment_mode="
                        "%s) and were not placed, e.g. %r", self.name, len(missed),
                        len(entities), self.alignment_mode,
                        [(e["start"], e["end"], e["label"], e["text"]) for e in missed[:3]])
        doc.spans[self.spans_key] = [s for s, _ in spans]
        if self.set_ents:
            doc.ents = _flat(spans)

    def to_disk(self, path: str | Path, exclude: Iterable[str] = ()) -> None:
        """The model directory, copied: the saved pipeline stands on its own."""
        target = Path(path) / MODEL_DIR
        from gpner.model.artifact import resolve_dir

        source = resolve_dir(self.model_dir) if self.model_dir else None
        if source is None:
            raise ValueError(f"the '{self.name}' component has no model to save")
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)

    def from_disk(self, path: str | Path, exclude: Iterable[str] = ()) -> "GpnerComponent":
        self.model_dir = str(Path(path) / MODEL_DIR)
        self._predictor = None
        return self


def _flat(spans: list[tuple[Span, dict]]) -> list[Span]:
    """The best-scoring spans that share no token, best first (ties: earlier, then shorter),
    in text order: the rule of gpner's own flat decoding."""
    taken: set[int] = set()
    keep = []
    for span, _ in sorted(spans, key=lambda se: (-se[1]["score"], se[0].start, se[0].end,
                                                   se[1]["label"])):
        toks = range(span.start, span.end)
        if not taken.intersection(toks):
            taken.update(toks)
            keep.append(span)
    return sorted(keep, key=lambda s: (s.start, s.end))
