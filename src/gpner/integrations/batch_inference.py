"""Batch inference on the engines users already run: Ray Data, Spark, Dask.

:class:`GpnerPredictor` is a picklable callable over a batch of records. It loads the model on
first use in whichever process runs it (a Ray actor, a Spark executor, a Dask worker), once, and
ships only its settings when pickled::

    ds.map_batches(GpnerPredictor, fn_constructor_kwargs={"model_dir": "runs/ner"},
                   compute=ray.data.ActorPoolStrategy(size=4), batch_size=256)

:func:`predict_with_ray` is ``gpner predict --ray``: the input file is read by Ray Data, its
lines are parsed and predicted by a pool of actors, and the driver writes the records in input
order, through the same atomic output as the single-process path (so the output is identical).
"""

from __future__ import annotations

import logging
from typing import Any

from gpner.errors import ConfigError
from gpner.textfiles import json_line

log = logging.getLogger(__name__)
READ_CPUS = 0.1


class GpnerPredictor:
    """``GpnerPredictor(model_dir)(batch) -> batch`` with an ``entities`` column (and a
    ``relations`` column from a relation model).

    A batch is a dict of columns (Ray's ``numpy`` format), a pandas DataFrame, or a list of
    dicts; texts are read from ``text_field``. ``backend``: torch, onnx or onnx-int8;
    ``threads``: intra-op threads per replica (one per CPU a replica is given is a good choice);
    ``concurrency``: batches a replica computes at once (see :func:`gpner.load`).
    """

    def __init__(self, model_dir: str, backend: str = "torch", text_field: str = "text",
                 output_field: str = "entities", batch_size: int = 32, threads: int | None = 1,
                 concurrency: int = 1, **predict_kwargs: Any):
        self.model_dir, self.backend, self.threads = str(model_dir), backend, threads
        self.concurrency = concurrency
        self.text_field, self.output_field = text_field, output_field
        self.batch_size, self.predict_kwargs = batch_size, predict_kwargs
        self._model: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            from gpner.prediction.loading import load

            self._model = load(self.model_dir, device="cpu" if self.backend == "torch" else None,
                               backend=self.backend, threads=self.threads,
                               concurrency=self.concurrency)
        return self._model

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}  # the settings travel, not the weights

    def entities(self, texts: list[str]) -> list[list[dict[str, Any]]]:
        return [r["entities"] for r in self.records(texts)]

    def records(self, texts: list[str]) -> list[dict[str, Any]]:
        return list(self.model.predict_iter(texts, batch_size=self.batch_size,
                                            **self.predict_kwargs))

    def _columns(self, texts: list[str]) -> dict[str, list]:
        """``output_field`` (entities) and, for a relation model, ``relations`` (indexing
        them)."""
        records = self.records(texts)
        cols = {self.output_field: [r["entities"] for r in records]}
        if records and "relations" in records[0]:
            cols["relations"] = [r["relations"] for r in records]
        return cols

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, list):
            cols = self._columns([r[self.text_field] for r in batch])
            return [{**r, **{k: v[n] for k, v in cols.items()}} for n, r in enumerate(batch)]
        if isinstance(batch, dict):
            import numpy as np

            cols = self._columns([str(t) for t in batch[self.text_field]])
            out = dict(batch)
            for k, found in cols.items():
                column = np.empty(len(found), dtype=object)
                column[:] = found
                out[k] = column
            return out
        # a pandas DataFrame
        return batch.assign(**self._columns([str(t) for t in batch[self.text_field]]))


class _LinePredictor(GpnerPredictor):
    """Raw input lines -> output JSON lines, parsed exactly as the single-process path parses
    them (``kind`` text or jsonl, as detected from the file); a bad line gives no output and its
    reason."""

    def __init__(self, model_dir: str, kind: str, **kwargs: Any):
        super().__init__(model_dir, **kwargs)
        self.kind = kind

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from gpner.prediction.stream import Item, output_record, parse_line

        items: list[Item | None] = []
        why: list[str] = []
        for line in batch["text"]:
            try:
                if self.kind == "jsonl" and not line.strip():
                    raise ValueError("blank line in JSON lines")
                items.append(parse_line(line, self.kind))
                why.append("")
            except ValueError as exc:
                items.append(None)
                why.append(str(exc))
        found = iter(self.model.predict_iter([it.text for it in items if it is not None],
                                             batch_size=self.batch_size, **self.predict_kwargs))
        out = [json_line(output_record(it, next(found))) if it else ""
               for it in items]
        return {"line": np.array(out, dtype=object), "bad": np.array(why, dtype=object)}


def predict_with_ray(model_dir: str, path: str | None, output: str, kind: str = "auto",
                     backend: str = "torch", batch_size: int = 32, actors: int = 2,
                     strict: bool = False, encoding: str | None = None, concurrency: int = 1,
                     **predict_kwargs: Any) -> int:
    """Predict a text or JSON-lines file on Ray (``RAY_ADDRESS``, or a local instance) and write
    the records to ``output`` in input order; returns how many were written. ``encoding``: of
    the file (default UTF-8), checked in one streamed pass before Ray starts, so that bad bytes
    are reported with their line (E103) rather than from inside a Ray task."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("--ray needs the 'ray' extra: pip install 'gpner[ray]'") from exc
    from gpner.prediction.stream import BadInput, ResumableOutput, detect_kind

    if kind == "auto" and path not in (None, "-"):
        kind = detect_kind(path, encoding=encoding)
    if path in (None, "-") or kind not in ("text", "jsonl"):
        raise ConfigError("--ray reads a plain-text or JSON-lines file (not stdin, not "
                          f"{kind!r}): convert other formats with gpner convert first",
                          code="E305")
    from gpner.textfiles import decode, decoded_lines

    decode(b"", path, encoding)  # an unknown encoding name: E303
    with open(path, "rb") as f:
        for _ in decoded_lines(f, path, encoding):
            pass
    predict_kwargs = {k: v for k, v in predict_kwargs.items() if v is not None}
    if not ray.is_initialized():
        ray.init(log_to_driver=False, include_dashboard=False, logging_level=logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # records come back in input order
    ctx.enable_progress_bars = False
    # reading is light (a tenth of a CPU); the replicas share the rest, at most a CPU each, so
    # that reads are never starved of a CPU that the replicas hold (which stalls the pipeline)
    per_actor = min(1.0, int((ray.cluster_resources().get("CPU", 1) - READ_CPUS) / actors * 20)
                    / 20) or 0.05
    ds = ray.data.read_text(path, encoding=encoding or "utf-8", drop_empty_lines=False,
                            ray_remote_args={"num_cpus": READ_CPUS})
    ds = ds.map_batches(_LinePredictor, fn_constructor_kwargs=dict(
        model_dir=str(model_dir), kind=kind, backend=backend, batch_size=batch_size,
        threads=max(1, round(per_actor)), concurrency=concurrency, **predict_kwargs),
        compute=ray.data.ActorPoolStrategy(size=actors), batch_size=max(256, batch_size),
        batch_format="numpy", num_cpus=per_actor)
    out = ResumableOutput(output)
    written = bad = 0
    try:
        for n, row in enumerate(ds.iter_rows(), 1):
            if row["bad"]:
                if strict:
                    raise BadInput(f"{path}:{n}: {row['bad']}", code="E501")
                bad += 1
                if bad <= 10:
                    log.warning("%s:%d: %s (skipped)", path, n, row["bad"])
                continue
            out.write(row["line"])
            written += 1
        out.finish()
    finally:
        out.close()
    if bad:
        log.warning("%s: %d bad line(s) skipped", path, bad)
    return written
