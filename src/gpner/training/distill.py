"""Distillation: a student learns its teachers' span scores (``gpner distill``, or any training
run whose settings name ``teachers``).

Each teacher scores every training text (and the ``unlabeled`` texts) once, with its own
tokenizer and windows, by nested decoding at a low threshold: every span whose target
probability ``sigmoid(2 * score / T)`` reaches ``kd_floor``. The targets of several teachers are
averaged per character span (an ensemble; a span one teacher leaves below the floor counts 0
for it). They are kept sparse, as ``(start char, end char, label, prob)``, in memory and in the
run's ``teacher_targets.jsonl`` (a resumed run reads them back instead of scoring again); dense
``(C, L, L)`` targets exist only per batch, while the loss is computed.

The student's windows get the spans that its own tokens can represent as cells; a span whose
boundaries fall inside a student token, whose label the student lacks or that no student window
holds whole is counted by reason (:class:`CarryReport`), never dropped silently. The loss
(:func:`soft_loss`) is the soft-label multilabel categorical cross-entropy, whose optimum for a
lone cell is ``sigmoid(2 s) = t``: at ``T = 1`` the student is pulled towards the teacher's own
probabilities. Where gold exists it is mixed with the gold loss: ``kd_weight * teacher +
(1 - kd_weight) * gold``; unlabeled windows learn from the teacher alone (they are batched
apart from the labelled ones).

A GPLinker student also learns its relation heads from relation teachers: their link cells
(``heads``: subject start, object start; ``tails``: subject end, object end) are carried by the
characters where the spans start or end, as the spans are.

Limits: the student's windows of unlabeled texts are held in memory like the
training windows (the texts are streamed, the teacher targets are sparse).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from gpner.errors import ConfigError
from gpner.model.losses import mcce_soft
from gpner.records import Record

log = logging.getLogger("gpner")

SoftSpan = tuple[int, int, str, float]  # start char, end char (exclusive), label, target prob
CACHE = "teacher_targets.jsonl"


def teacher_list(teachers: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (the ``teachers`` setting)."""
    return [t.strip() for t in teachers.split(",") if t.strip()]


def score_floor(floor: float, temperature: float) -> float:
    """The teacher score whose target ``sigmoid(2 s / T)`` is ``floor``: ``T/2 logit(floor)``."""
    return temperature / 2 * math.log(floor / (1 - floor))


def target_prob(score: float, temperature: float) -> float:
    """``sigmoid(2 * score / T)``, the soft target of a teacher score."""
    z = 2 * score / temperature
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


# ----------------------------------------------------------------- the teachers' targets

@dataclass
class Teachers:
    """Loaded teacher models (each a :class:`~gpner.prediction.predictor.Predictor`)."""

    paths: list[str]
    models: list[Any]
    temperature: float
    floor: float

    @classmethod
    def open(cls, paths: Sequence[str], temperature: float, floor: float) -> "Teachers":
        from gpner.model.artifact import resolve_dir
        from gpner.prediction.loading import load

        if not paths:
            raise ConfigError("distillation needs at least one teacher", code="E305")
        models = []
        for p in paths:
            model = load(resolve_dir(p))
            if not model.task.span_head:
                raise ConfigError(f"teacher {p}: a {model.config.head} model has no span scores "
                                  "to learn from; distil from a gp or egp model", code="E305")
            models.append(model)
        return cls([str(p) for p in paths], models, temperature, floor)

    @property
    def labels(self) -> set[str]:
        return {lab for m in self.models for lab in m.labels}

    def score(self, texts: Callable[[], Iterable[str]], progress: bool = False
              ) -> Iterator[list[SoftSpan]]:
        """Per text (``texts()`` is called once per teacher, so a file is streamed, never held):
        the spans whose averaged target reaches the floor, sorted."""
        cut = score_floor(self.floor, self.temperature)
        streams = [m.predict_iter(texts(), flat=False, threshold=cut,
                                  progress=progress and k == 0)
                   for k, m in enumerate(self.models)]
        n = len(self.models)
        for records in zip(*streams, strict=True):
            total: dict[tuple[int, int, str], float] = {}
            for rec in records:
                for e in rec["entities"]:
                    key = (e["start"], e["end"], e["label"])
                    total[key] = total.get(key, 0.0) + target_prob(e["score"], self.temperature)
            yield sorted((s, e, lab, p / n) for (s, e, lab), p in total.items()
                         if p / n >= self.floor)

    def links(self, texts: Callable[[], Iterable[str]]) -> Iterator[list[LinkSpan]]:
        """Per text, the relation teachers' link cells (averaged over every teacher; a teacher
        without relations counts 0), sorted; empty lists when no teacher has relations."""
        cut = score_floor(self.floor, self.temperature)
        with_links = [m for m in self.models if m.task.has_relations]
        streams = [teacher_links(m, texts(), cut, self.temperature) for m in with_links]
        n = len(self.models)
        for found in zip(*streams, strict=True):
            total: dict[tuple, float] = {}
            for cells in found:
                for key, t in cells.items():
                    total[key] = total.get(key, 0.0) + t
            yield sorted((*key, t / n) for key, t in total.items()
                         if t / n >= self.floor)


LinkSpan = tuple[str, int, int, str, float]  # "heads"/"tails", subject char, object char, label, t


def teacher_links(model: Any, texts: Iterable[str], cut: float, temperature: float,
                  chunk: int = 64, batch_size: int = 32) -> Iterator[dict[tuple, float]]:
    """Per text, a relation (GPLinker) teacher's link cells whose score reaches ``cut``:
    ``heads`` cells (subject start, object start) as character starts, ``tails`` cells (subject
    end, object end) as character ends, with their target probability (the highest where
    windows overlap)."""
    from gpner.prediction.predictor import featurize

    def flush(pairs: list[tuple[Any, Any]], docs: list[Any]) -> Iterator[dict[tuple, float]]:
        found: dict[int, dict[tuple, float]] = {doc.index: {} for doc in docs}
        for k in range(0, len(pairs), batch_size):
            part = pairs[k:k + batch_size]
            batch = model.featurizer.collate([w for _, w in part])
            out = model.backend(batch)
            for b, (doc, win) in enumerate(part):
                offsets = doc.encoding.offsets
                ok = np.asarray(win.spannable)
                n = len(ok)
                for kind in ("heads", "tails"):
                    scores = np.asarray(_numpy(out[kind])[b, :, :n, :n], dtype=np.float64)
                    hits = np.argwhere((scores >= cut) & ok[None, :, None] & ok[None, None, :])
                    for p, i, j in hits:
                        ti, tj = int(i) + win.shift, int(j) + win.shift
                        end = 0 if kind == "heads" else 1
                        key = (kind, offsets[ti][end], offsets[tj][end],
                               model.task.relations[int(p)])
                        t = target_prob(float(scores[p, i, j]), temperature)
                        found[doc.index][key] = max(t, found[doc.index].get(key, 0.0))
        for doc in docs:
            yield found[doc.index]

    pairs: list[tuple[Any, Any]] = []
    docs: list[Any] = []
    for doc, win in featurize(texts, model.featurizer, model.config.max_length,
                              model.config.decode.stride):
        if not docs or docs[-1] is not doc:
            if len(docs) >= chunk:
                yield from flush(pairs, docs)
                pairs, docs = [], []
            docs.append(doc)
        if win is not None:
            pairs.append((doc, win))
    yield from flush(pairs, docs)


def _numpy(x: Any) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def read_unlabeled(path: str, encoding: str | None = None) -> Iterator[str]:
    """The texts of an unlabeled file, streamed: text lines, JSON lines with ``text``, or any
    format ``gpner predict`` reads (bad lines are reported with their line and skipped)."""
    from gpner.prediction.stream import InputReport, detect_kind, read_inputs

    kind = detect_kind(path, None, encoding)
    for item in read_inputs(path, kind, InputReport(path), encoding=encoding):
        if item.text.strip():
            yield item.text


# ----------------------------------------------------------------- carrying spans to cells

@dataclass
class CarryReport:
    """What became of the teachers' spans: carried into student cells (counted once per span,
    however many windows hold it), or lost, by reason; ``confident`` counts the lost spans the
    teachers would predict (target >= 0.5)."""

    spans: int = 0
    carried: int = 0
    lost: Counter = field(default_factory=Counter)
    confident: Counter = field(default_factory=Counter)
    links: Any = None  # a relation student: the same counts for the link cells

    def add_lost(self, reason: str, prob: float) -> None:
        self.lost[reason] += 1
        if prob >= 0.5:
            self.confident[reason] += 1

    def as_dict(self) -> dict[str, Any]:
        out = {"spans": self.spans, "carried": self.carried, "lost": dict(self.lost),
               "lost_confident": dict(self.confident)}
        if self.links is not None:
            out["links"] = self.links.as_dict()
        return out

    def summary(self, what: str = "spans") -> str:
        lost = sum(self.lost.values())
        if not lost:
            line = f"teacher targets: {self.spans} {what}, all carried into student cells"
        else:
            why = ", ".join(f"{n} {r} ({self.confident[r]} of them predicted)"
                            for r, n in self.lost.most_common())
            line = (f"teacher targets: {self.spans} {what}, {self.carried} carried into "
                    f"student cells, {lost} lost: {why}")
        return line + ("; " + self.links.summary("relation link cells")
                       if self.links is not None else "")


def token_edges(offsets: Sequence[tuple[int, int]]) -> tuple[dict[int, int], dict[int, int]]:
    """Character -> the first token starting there, and -> the last token ending there."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for k, (s, e) in enumerate(offsets):
        first.setdefault(s, k)
        last[e] = k
    return first, last


def token_cells(spans: Sequence[SoftSpan], offsets: Sequence[tuple[int, int]],
                label_id: dict[str, int], report: CarryReport
                ) -> list[tuple[int, int, int, float]]:
    """Character spans -> (label id, first token, last token inclusive, prob) over a text's
    tokens (``offsets``: each token's characters); the spans that fit no tokens are counted."""
    first, last = token_edges(offsets)
    out = []
    for s, e, lab, p in spans:
        report.spans += 1
        if lab not in label_id:
            report.add_lost("label the student does not have", p)
        elif s not in first or e not in last:
            report.add_lost("boundary inside a student token", p)
        else:
            out.append((label_id[lab], first[s], last[e], p))
    return out


def window_rows(cells: Sequence[tuple[int, int, int, float]], start: int, end: int, shift: int,
                spannable: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The cells inside content tokens ``start .. end - 1`` of a window, as rows (K, 4) float
    ``(label, i, j, prob)`` in window tokens (``window = text - shift``), and the indices of
    ``cells`` placed."""
    rows, placed = [], []
    for n, (c, i, j, p) in enumerate(cells):
        # both tokens inside (a span's i <= j; a relation link's subject and object: any order)
        if (start <= min(i, j) and max(i, j) < end and spannable[i - shift]
                and spannable[j - shift]):
            rows.append((c, i - shift, j - shift, p))
            placed.append(n)
    return np.array(rows, dtype=np.float64).reshape(-1, 4), placed


def link_cells(links: Sequence[LinkSpan], offsets: Sequence[tuple[int, int]],
               rel_id: dict[str, int], report: CarryReport
               ) -> list[tuple[str, int, int, int, float]]:
    """Link cells in characters -> (kind, relation id, subject token, object token, prob) over
    a text's tokens: ``heads`` cells by the tokens that start there, ``tails`` by those that
    end there; the cells no token pair holds are counted."""
    first, last = token_edges(offsets)
    out = []
    for kind, a, b, lab, p in links:
        report.spans += 1
        at = first if kind == "heads" else last
        if lab not in rel_id:
            report.add_lost("relation the student does not have", p)
        elif a not in at or b not in at:
            report.add_lost("boundary inside a student token", p)
        else:
            out.append((kind, rel_id[lab], at[a], at[b], p))
    return out


def attach(examples: Sequence[Any], targets: Sequence[Sequence[SoftSpan]],
           texts: Sequence[str], featurizer: Any, labels: Sequence[str],
           links: Sequence[Sequence[LinkSpan]] | None = None,
           relations: Sequence[str] | None = None) -> CarryReport:
    """Give every example (a window of record ``ex.doc``) its teacher rows ``ex.soft`` and,
    with ``links`` (a relation student), ``ex.soft_links`` {"heads": rows, "tails": rows}."""
    label_id = {lab: k for k, lab in enumerate(labels)}
    rel_id = {lab: k for k, lab in enumerate(relations or ())}
    report = CarryReport(links=CarryReport() if links is not None else None)
    by_doc: dict[int, list[Any]] = {}
    for ex in examples:
        by_doc.setdefault(ex.doc, []).append(ex)
    for doc, spans in enumerate(targets):
        wins = by_doc.get(doc, [])
        enc = featurizer.encode(texts[doc])
        cells = token_cells(spans, enc.offsets, label_id, report)
        placed = [False] * len(cells)
        for ex in wins:
            win = ex.window
            ex.soft, where = window_rows(cells, win.start, win.end, win.shift, win.spannable)
            for n in where:
                placed[n] = True
        for (_, _, _, p), ok in zip(cells, placed, strict=True):
            if ok:
                report.carried += 1
            else:
                report.add_lost("in no student window whole", p)
        if links is not None:
            _attach_links(wins, link_cells(links[doc], enc.offsets, rel_id, report.links),
                          report.links)
    return report


def _attach_links(wins: Sequence[Any], cells: list[tuple[str, int, int, int, float]],
                  report: CarryReport) -> None:
    """Each window's link rows by kind (``ex.soft_links``); cells no window holds, counted."""
    placed = [False] * len(cells)
    for ex in wins:
        win = ex.window
        ex.soft_links = {}
        for kind in ("heads", "tails"):
            mine = [n for n, c in enumerate(cells) if c[0] == kind]
            rows, where = window_rows([cells[n][1:] for n in mine], win.start, win.end,
                                      win.shift, win.spannable)
            ex.soft_links[kind] = rows
            for k in where:
                placed[mine[k]] = True
    for cell, ok in zip(cells, placed, strict=True):
        if ok:
            report.carried += 1
        else:
            report.add_lost("in no student window whole", cell[4])


# ----------------------------------------------------------------- the loss

def soft_targets(scores: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Dense targets like ``scores`` (B, C, L, L), zero but at the rows (P, 5) float
    ``(b, c, i, j, prob)``; one batch at a time, never the corpus."""
    t = torch.zeros(scores.shape, dtype=torch.float32, device=scores.device)
    if rows.numel():
        b, c, i, j = rows[:, :4].long().unbind(-1)
        t[b, c, i, j] = rows[:, 4].float()
    return t


def soft_loss(scores: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The teacher term: the soft multilabel categorical cross-entropy of the student's scores
    (B, C, L, L) against the teachers' targets, summed over types, averaged over windows."""
    return mcce_soft(scores, soft_targets(scores, rows))


# ----------------------------------------------------------------- one run's distillation

class Distillation:
    """The teachers' side of one training run: their targets for the training (and unlabeled)
    texts, read from the run's cache when it holds them."""

    def __init__(self, cfg: Any, output: Path, encoding: str | None = None,
                 resume: bool = False):
        self.cfg, self.output, self.encoding, self.resume = cfg, output, encoding, resume
        self.paths = teacher_list(cfg.teachers)
        self.report = CarryReport()
        self.unlabeled_texts: list[str] = []
        self.targets: list[list[SoftSpan]] = []
        self.links: list[list[LinkSpan]] | None = None  # a relation student's link targets
        self.fingerprint = ""

    def meta(self) -> dict[str, Any]:
        return {"teachers": self.paths, "unlabeled": self.cfg.unlabeled,
                "kd_temperature": self.cfg.kd_temperature, "kd_floor": self.cfg.kd_floor}

    def prepare(self, records: Sequence[Record], progress: bool = False) -> list[Record]:
        """Score the training records and the unlabeled texts (or read the cache); return the
        unlabeled texts as records without entities."""
        self.fingerprint = _fingerprint(r["text"] for r in records)
        cached = self._read_cache(len(records)) if self.resume else None
        if cached is not None:
            self.unlabeled_texts, self.targets = cached
            log.info("teacher targets: read from %s", self.output / CACHE)
        else:
            teachers = Teachers.open(self.paths, self.cfg.kd_temperature, self.cfg.kd_floor)
            unknown = sorted({e["label"] for r in records for e in r.get("entities", [])}
                             - teachers.labels)
            if unknown:
                log.warning("the teachers do not know the labels %s: those learn from gold only",
                            unknown)
            texts = [r["text"] for r in records]
            log.info("teacher targets: %d teacher(s) scoring %d training texts", len(self.paths),
                     len(texts))
            self.targets = list(teachers.score(lambda: texts, progress))
            if self.cfg.unlabeled:
                log.info("teacher targets: scoring the unlabeled texts of %s", self.cfg.unlabeled)
                self.unlabeled_texts = list(read_unlabeled(self.cfg.unlabeled,
                                                           self.encoding))
                self.targets += list(teachers.score(lambda: self.unlabeled_texts, progress))
            if self.cfg.task == "relations" and any(m.task.has_relations
                                                    for m in teachers.models):
                every = [*texts, *self.unlabeled_texts]
                self.links = list(teachers.links(lambda: every))
        return [{"text": t, "entities": []} for t in self.unlabeled_texts]

    def _read_cache(self, n_records: int) -> tuple[list[str], list[list[SoftSpan]]] | None:
        import json

        path = self.output / CACHE
        if not path.is_file():
            return None
        with open(path, encoding="utf-8") as f:
            head = json.loads(f.readline())
            if (head.get("meta") != self.meta() or head.get("records") != n_records
                    or head.get("texts") != self.fingerprint):
                return None
            texts, targets, links = [], [], []
            for line in f:
                row = json.loads(line)
                if "text" in row:
                    texts.append(row["text"])
                targets.append([tuple(s) for s in row["spans"]])
                if "links" in row:
                    links.append([tuple(x) for x in row["links"]])
        if len(targets) != n_records + len(texts):
            return None  # a cache cut short is scored again, never half used
        self.links = links if head.get("links") else None
        return texts, targets

    def save(self, n_records: int) -> None:
        """Write the targets to the run directory (atomically: a kill leaves none or all)."""
        from gpner.atomic import atomic_write_text
        from gpner.textfiles import json_line

        lines = [json_line({"meta": self.meta(), "records": n_records,
                            "texts": self.fingerprint, "links": self.links is not None,
                            "carried": self.report.as_dict()})]
        for k, spans in enumerate(self.targets):
            row: dict[str, Any] = {"spans": [list(s) for s in spans]}
            if self.links is not None:
                row["links"] = [list(x) for x in self.links[k]]
            if k >= n_records:
                row["text"] = self.unlabeled_texts[k - n_records]
            lines.append(json_line(row))
        atomic_write_text(self.output / CACHE, "\n".join(lines) + "\n")


def _fingerprint(texts: Iterable[str]) -> str:
    """A digest of the training texts: a cache is used only for the texts it was made for."""
    import hashlib

    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:16]
