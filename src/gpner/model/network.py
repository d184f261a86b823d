"""The model: an encoder and named heads, returning named outputs; and how one is built.

``TaskModel(batch) -> {"entities": (B, C, L, L)}`` for NER with a span head; a task decides which
heads exist and what their outputs mean (:mod:`gpner.tasks`). The model knows nothing of losses
or decoding, so any runtime that produces the same named outputs can stand in for it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from gpner.model.artifact import EncoderSpec, ModelConfig
from gpner.training.config import TrainConfig
from gpner.errors import DataError
from gpner.data.records import Record
from gpner.tasks import task_for

log = logging.getLogger("gpner")

BUILTIN_PARAMS = ("word_dim", "bigram_dim", "char_dim", "char_channels", "lstm_hidden",
                  "lstm_layers", "dropout", "word_dropout")


class TaskModel(nn.Module):
    def __init__(self, encoder: nn.Module, heads: dict[str, nn.Module]):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)

    @property
    def word_embeddings(self) -> nn.Embedding:
        """The embedding matrix that FGM and PGD perturb."""
        return self.encoder.word_embeddings

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Input embeddings (B, L, E), the point where VAT and the gradient penalty perturb."""
        return self.encoder.embed(batch)

    def forward(self, batch: dict[str, torch.Tensor], embeds: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """Named outputs: a head's tensor under its name, a head's dict as ``name.key``."""
        hidden = self.encoder(batch, embeds)  # (B, L, H)
        out: dict[str, torch.Tensor] = {}
        for name, head in self.heads.items():
            result = head(hidden, batch["mask"])
            if isinstance(result, dict):
                out.update({f"{name}.{k}": v for k, v in result.items()})
            else:
                out[name] = result
        return out


def unwrap(model: nn.Module) -> TaskModel:
    """The TaskModel inside a DistributedDataParallel (``.module``) or torch.compile
    (``._orig_mod``) wrapper, or the model itself."""
    while True:
        inner = getattr(model, "module", None)
        if inner is None:
            inner = getattr(model, "_orig_mod", None)
        if inner is None:
            return model  # type: ignore[return-value]
        model = inner


def build_encoder(spec: EncoderSpec, directory: Path | None = None,
                  encoder_config: dict | None = None) -> nn.Module:
    """An encoder with random weights, shaped as ``spec`` says (weights are loaded after). A
    Hugging Face encoder's config comes from ``encoder_config`` (config.json) or, in model
    directories written before it was there, ``directory/encoder/``."""
    if spec.type == "builtin":
        from gpner.model.encoders import BuiltinEncoder

        return BuiltinEncoder(spec.sizes, **spec.params)
    from transformers import AutoConfig, AutoModel

    from gpner.model.encoders import HFEncoder, hf_config as config_of

    if encoder_config:
        hf_config = config_of(encoder_config)
    elif directory is not None:
        hf_config = AutoConfig.from_pretrained(str(Path(directory) / "encoder"))
    else:
        raise ValueError("no encoder config: config.json has no encoder_config and no model "
                         "directory was given")
    return HFEncoder(AutoModel.from_config(hf_config))


def from_config(config: ModelConfig, directory: Path) -> tuple[TaskModel, Any]:
    """(model with random weights, task) for a saved model config."""
    task = task_for(config)
    encoder = build_encoder(config.encoder, directory, config.encoder_config)
    return TaskModel(encoder, task.build_heads(encoder.hidden_size)), task


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
          ) -> tuple[TaskModel, Any, Any, ModelConfig]:
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
        max_length = cfg.max_length or 256
    else:
        from gpner.model.encoders import HFEncoder, load_hf
        from gpner.text.features import HFFeaturizer

        hf_tokenizer, hf_model = load_hf(cfg.encoder)
        if cfg.encoder_max_length:
            from gpner.model.encoders import extend_positions

            extend_positions(hf_model, cfg.encoder_max_length)
        featurizer = HFFeaturizer(hf_tokenizer)
        encoder = HFEncoder(hf_model)
        spec = EncoderSpec("hf", name=cfg.encoder)
        tokenizer = {"type": "hf", "class": type(hf_tokenizer).__name__, "files": "save_pretrained",
                     "special_tokens_before": featurizer.prefix,
                     "special_tokens_after": featurizer.num_special - featurizer.prefix}
        max_length = min(cfg.max_length or encoder.max_length, encoder.max_length)
    config = ModelConfig(labels=labels, head=cfg.head, head_size=cfg.head_size, task=cfg.task,
                         encoder=spec, tokenizer=tokenizer, max_length=max_length,
                         train_config=cfg.to_dict(), relations=relations)
    config.decode.threshold, config.decode.flat = cfg.threshold, cfg.flat
    config.decode.max_width, config.decode.stride = cfg.max_width, cfg.stride
    task = task_for(config)
    model = TaskModel(encoder, task.build_heads(encoder.hidden_size))
    return model, featurizer, task, config
