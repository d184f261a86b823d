"""A new model for a training config and its data: the labels (and relation labels) of the
data, the featurizer (the built-in one built on the training texts, or a Hugging Face
tokenizer), the encoder, the task's heads and the :class:`~gpner.model.artifact.ModelConfig`
that will be saved with them."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Sequence

from gpner.contracts import Featurizer, Task
from gpner.errors import DataError
from gpner.model.artifact import EncoderSpec, ModelConfig
from gpner.model.network import Encoder, TaskModel
from gpner.records import Record
from gpner.tasks import task_for
from gpner.training.config import TrainConfig

log = logging.getLogger("gpner")

BUILTIN_PARAMS = ("word_dim", "bigram_dim", "char_dim", "char_channels", "lstm_hidden",
                  "lstm_layers", "dropout", "word_dropout")


def resolve_task(cfg: TrainConfig, records: Sequence[Record]) -> TrainConfig:
    """``task=auto``: relations when any training record has relations, else ner."""
    has = any(r.get("relations") for r in records)
    if cfg.task == "auto":
        cfg = dataclasses.replace(cfg, task="relations" if has else "ner")
        log.info("task: %s (%s)", cfg.task, "the training data has relations" if has
                 else "no relations in the training data")
    elif cfg.task == "ner" and has:
        log.info("task=ner: the training data's relations are not used")
    return cfg


def build(cfg: TrainConfig, train_records: Sequence[Record]
          ) -> tuple[TaskModel, Featurizer, Task, ModelConfig]:
    """(model with fresh weights, featurizer, task, model config) for a training config and
    its training data; labels are the sorted labels of the data."""
    cfg = resolve_task(cfg, train_records)
    labels = sorted({e["label"] for r in train_records for e in r["entities"]})
    if not labels:
        raise DataError("the training data has no entities (every record is unlabelled)",
                        code="E112")
    relations = None
    if cfg.task == "relations":
        relations = sorted({x["label"] for r in train_records for x in r.get("relations", [])})
        if not relations:
            raise DataError("task=relations, but the training data has no relations",
                            code="E112")
    if cfg.encoder == "builtin":
        encoder, featurizer, spec, tokenizer, max_length = _builtin(cfg, train_records)
    else:
        encoder, featurizer, spec, tokenizer, max_length = _pretrained(cfg)
    config = ModelConfig(labels=labels, head=cfg.head, head_size=cfg.head_size, task=cfg.task,
                         encoder=spec, tokenizer=tokenizer, max_length=max_length,
                         train_config=cfg.to_dict(), relations=relations)
    config.decode.threshold, config.decode.flat = cfg.threshold, cfg.flat
    config.decode.max_width, config.decode.stride = cfg.max_width, cfg.stride
    task = task_for(config)
    model = TaskModel(encoder, task.build_heads(encoder.hidden_size))
    return model, featurizer, task, config


def _builtin(cfg: TrainConfig, train_records: Sequence[Record]
             ) -> tuple[Encoder, Featurizer, EncoderSpec, dict[str, Any], int]:
    """The built-in encoder, and its featurizer built on the training texts."""
    if cfg.encoder_max_length:
        raise ValueError("encoder_max_length extends a pretrained encoder's learned positions;"
                         " the built-in encoder (a BiLSTM) takes windows of any max_length")
    from gpner.model.encoders import BuiltinEncoder
    from gpner.text.features import MAX_CHARS, BuiltinFeaturizer

    featurizer = BuiltinFeaturizer.build((r["text"] for r in train_records),
                                         cfg.min_bigram_freq)
    params = {k: getattr(cfg, k) for k in BUILTIN_PARAMS}
    encoder = BuiltinEncoder(featurizer.sizes(), **params)
    spec = EncoderSpec("builtin", sizes=featurizer.sizes(), params=params)
    tokenizer = {"type": "builtin", "files": ["vocab.json", "features.json"],
                 "lowercase": featurizer.words.lowercase, "units": "CJK characters, runs "
                 "of letters, runs of digits, single symbols", "max_chars_per_token": MAX_CHARS}
    return encoder, featurizer, spec, tokenizer, cfg.max_length or 256


def _pretrained(cfg: TrainConfig
                ) -> tuple[Encoder, Featurizer, EncoderSpec, dict[str, Any], int]:
    """A Hugging Face encoder (a hub name or a local directory) and its tokenizer."""
    from gpner.model.encoders import HFEncoder, extend_positions, load_hf
    from gpner.text.features import HFFeaturizer

    hf_tokenizer, hf_model = load_hf(cfg.encoder)
    if cfg.encoder_max_length:
        extend_positions(hf_model, cfg.encoder_max_length)
    featurizer = HFFeaturizer(hf_tokenizer)
    encoder = HFEncoder(hf_model)
    spec = EncoderSpec("hf", name=cfg.encoder)
    tokenizer = {"type": "hf", "class": type(hf_tokenizer).__name__, "files": "save_pretrained",
                 "special_tokens_before": featurizer.prefix,
                 "special_tokens_after": featurizer.num_special - featurizer.prefix}
    return encoder, featurizer, spec, tokenizer, min(cfg.max_length or encoder.max_length,
                                                     encoder.max_length)
