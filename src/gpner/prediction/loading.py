"""``gpner.load``: a model directory -> a :class:`~gpner.prediction.predictor.Predictor` on the
backend asked for, with the thread policy for concurrent batches.

Choosing and building the backend is here; the predictor only runs the one it is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpner.errors import GpnerError, InputError, ModelFileError
from gpner.model.artifact import ModelConfig, resolve_dir
from gpner.prediction.predictor import Predictor, check_concurrency

if TYPE_CHECKING:
    from gpner.contracts import Task
    from gpner.model.network import TaskModel

BACKENDS = ("torch", "onnx", "onnx-int8")


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
    check_concurrency(concurrency)
    if concurrency > 1 and not threads:  # the cores shared out, not each batch on all of them
        threads = max(1, cores() // concurrency)
    path = resolve_dir(directory)
    config = ModelConfig.load(path)
    if backend == "torch":
        return _load_torch(path, config, device, threads, concurrency)
    from gpner.prediction.backends import OnnxBackend
    from gpner.tasks import task_for
    from gpner.text.features import load_featurizer

    runner = OnnxBackend.load(path, int8=backend == "onnx-int8", threads=threads)
    featurizer = load_featurizer(config.encoder.type, path, without_torch=True)
    return Predictor(config, featurizer, task_for(config), runner, concurrency)


def _load_torch(path: Path, config: ModelConfig, device: str | None, threads: int | None,
                concurrency: int) -> Predictor:
    import torch

    from gpner.model.artifact import load_weights
    from gpner.prediction.backends import TorchBackend
    from gpner.text.features import load_featurizer

    if threads and concurrency == 1:
        torch.set_num_threads(threads)
    try:
        model, task = from_config(config, path)
        load_weights(model, path, config)
        featurizer = load_featurizer(config.encoder.type, path,
                                     encoder_config=config.encoder_config)
        check_vocabulary(model, featurizer, path)
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


def check_vocabulary(model: Any, featurizer: Any, path: Path) -> None:
    """The tokenizer's ids must index the embeddings: a vocabulary larger than the embedding
    table would fail (or read another row) on the first rare token (E206)."""
    from gpner.model.network import unwrap

    encoder = unwrap(model).encoder
    if hasattr(featurizer, "sizes"):  # the built-in encoder: words, bigrams, characters
        rows: dict[str, Any] = {"words": encoder.word, "bigrams": encoder.bigram,
                                "chars": encoder.char}
        pairs = [(k, n, rows[k].num_embeddings) for k, n in featurizer.sizes().items()]
    else:
        pairs = [("tokens", len(featurizer.tokenizer),
                  encoder.word_embeddings.num_embeddings)]
    for what, vocab, table in pairs:
        if vocab > table:
            raise ModelFileError(f"{path}: the vocabulary has {vocab} {what}, the embeddings "
                                 f"{table} rows; the tokenizer files and the weights come from "
                                 "different models", code="E206")


def from_config(config: ModelConfig, directory: Path) -> tuple[TaskModel, Task]:
    """(model with random weights, task) for a saved model config."""
    from gpner.model.artifact import build_encoder
    from gpner.model.network import TaskModel
    from gpner.tasks import task_for

    task = task_for(config)
    encoder = build_encoder(config.encoder, directory, config.encoder_config)
    return TaskModel(encoder, task.build_heads(encoder.hidden_size)), task


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
