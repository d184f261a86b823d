"""Hugging Face integration (the ``hf`` extra): a gpner model directory is also a
``transformers`` model directory.

    import gpner.hf                          # registers the classes and the pipeline
    model = AutoModel.from_pretrained(DIR)   # a GlobalPointerForSpanClassification
    # or, without importing gpner: AutoModel.from_pretrained(DIR, trust_remote_code=True)
    out = model(**tokenizer(texts, return_tensors="pt", padding=True,
                            return_special_tokens_mask=True))
    out.logits                               # (B, C, L, L) span scores, -inf where no span can be
    nlp = pipeline("gpner-ner", model=DIR)   # the records gpner.load(DIR).predict gives

``config.json`` carries ``model_type: gpner``, ``architectures``, ``id2label``/``label2id``,
``auto_map`` (pointing at ``gpner_hf.py``, which the model directory holds and which imports
this module) and, for a Hugging Face encoder, the encoder's own config under
``encoder_config``. The weights are the same ``model.safetensors`` that gpner loads: the
model's modules carry the same names (``encoder.*``, ``heads.*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    Pipeline,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils import ModelOutput

from gpner.model.artifact import FORMAT_VERSION, MODEL_TYPE, ModelConfig
from gpner.model.network import Encoder

PIPELINE_TASK = "gpner-ner"


class GpnerConfig(PretrainedConfig):
    """gpner's ``config.json`` as a ``transformers`` config (every key of
    :class:`gpner.model.artifact.ModelConfig`, plus ``encoder_config`` for a Hugging Face encoder).

    Defaults are None so that ``save_pretrained`` (which leaves out values equal to a default
    config's) writes every key gpner needs. gpner's ``max_length`` (tokens per window) is kept
    as ``window_length`` here, because transformers reads ``max_length`` as a generation
    setting, and written back as ``max_length``.
    """

    model_type = MODEL_TYPE

    def __init__(self, head: str | None = None, head_size: int | None = None,
                 task: str | None = None, encoder: dict | None = None,
                 tokenizer: dict | None = None, max_length: int | None = None,
                 decode: dict | None = None, encoder_config: dict | None = None,
                 train_config: dict | None = None, data: dict | None = None,
                 format_version: int | None = None, gpner_version: str | None = None,
                 **kwargs: Any):
        self.head, self.head_size, self.task = head, head_size, task
        self.encoder, self.tokenizer, self.decode = encoder, tokenizer, decode
        self.window_length = kwargs.pop("window_length", max_length)
        self.encoder_config, self.train_config, self.data = encoder_config, train_config, data
        self.format_version, self.gpner_version = format_version, gpner_version
        super().__init__(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["max_length"] = d.pop("window_length", None)
        return d

    def to_gpner(self) -> ModelConfig:
        d = self.to_dict()
        d["model_type"] = MODEL_TYPE
        d["format_version"] = self.format_version or FORMAT_VERSION
        for key, default in (("head_size", 64), ("task", "ner"), ("decode", {}),
                             ("train_config", {})):
            if d.get(key) is None:
                d[key] = default
        return ModelConfig.from_dict(d, "GpnerConfig")


@dataclass
class SpanClassifierOutput(ModelOutput):
    """What the Hugging Face model class returns: span logits and, given labels, the loss."""

    loss: torch.Tensor | None = None  # multilabel categorical cross-entropy, when labels given
    logits: torch.Tensor | None = None  # (B, C, L, L) span scores; -inf: not a span


class GlobalPointerForSpanClassification(PreTrainedModel):
    """The gpner model as a ``transformers`` model: the encoder and the task's heads under
    the names gpner saves them with."""

    config_class = GpnerConfig
    base_model_prefix = "gpner"
    _no_split_modules: list[str] = []

    def __init__(self, config: GpnerConfig):
        super().__init__(config)
        from gpner.tasks import task_for

        mc = config.to_gpner()
        self.task = task_for(mc)
        self.encoder = _encoder(mc, config.encoder_config)
        self.heads = nn.ModuleDict(self.task.build_heads(self.encoder.hidden_size))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        pass  # modules initialise themselves when built; trained weights are loaded after

    def gpner_outputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """gpner's named outputs for a featurizer batch (what :class:`gpner.model.network.TaskModel`
        returns)."""
        from gpner.model.network import named_outputs

        return named_outputs(self.encoder, self.heads, batch)

    def forward(self, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                special_tokens_mask: torch.Tensor | None = None,
                span_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **features: Any) -> SpanClassifierOutput:
        """``input_ids``/``attention_mask`` (B, L) from the tokenizer; tokens that may start or
        end a span: ``span_mask`` (B, L) if given, else the attended tokens that are not special
        (pass ``return_special_tokens_mask=True`` to the tokenizer). ``labels`` (B, C, L, L) 0/1
        gives ``loss``. The built-in encoder takes its featurizer's arrays as ``features``."""
        batch = dict(features)
        if input_ids is not None:
            batch["input_ids"] = input_ids
        if attention_mask is None and input_ids is not None:
            attention_mask = torch.ones_like(input_ids)
        if attention_mask is not None:
            batch["attention_mask"] = attention_mask
        if span_mask is None:
            span_mask = batch.get("mask")
        if span_mask is None:
            if attention_mask is None:
                raise ValueError("give input_ids (or span_mask with the built-in encoder's "
                                 "features)")
            span_mask = attention_mask.bool()
            if special_tokens_mask is not None:
                span_mask = span_mask & ~special_tokens_mask.bool()
        batch["mask"] = span_mask.bool()
        outputs = self.gpner_outputs(batch)
        name = self.task.output
        if name not in outputs:
            raise ValueError(f"the {self.config.head} head gives tag emissions, not span "
                             "logits; use gpner.load(DIR).predict for it")
        logits = outputs[name]
        loss = None
        if labels is not None:
            from gpner.model.losses import mcce_dense

            loss = mcce_dense(logits, labels.to(logits.dtype))
        return SpanClassifierOutput(loss=loss, logits=logits)


def _encoder(mc: ModelConfig, encoder_config: dict | None) -> Encoder:
    from gpner.model.artifact import build_encoder

    if mc.encoder.type == "hf" and not encoder_config:
        raise ValueError("config.json has no encoder_config (saved by an older gpner): load "
                         "it with gpner.load, or save it again with this version")
    return build_encoder(mc.encoder, None, encoder_config)


class _ModelBackend:
    """The pipeline's model as a gpner backend: a featurizer batch in, named outputs out."""

    def __init__(self, model: GlobalPointerForSpanClassification):
        self.model = model

    def __call__(self, batch: dict) -> dict:
        from gpner.model.network import as_tensors, to_device

        with torch.inference_mode():
            return self.model.gpner_outputs(to_device(as_tensors(batch), self.model.device))


class GpnerNerPipeline(Pipeline):
    """``pipeline("gpner-ner", model=DIR)``: texts in, gpner's records out (windows for long
    texts, character offsets, nested or flat). Options: ``threshold``, ``flat``,
    ``batch_size``."""

    # gpner's featurizer reads the tokenizer files itself; transformers declares these flags
    # with a None default, which its loading reads as "decide", False as "do not load"
    _load_tokenizer = False  # type: ignore[assignment]
    _load_processor = False  # type: ignore[assignment]
    _load_image_processor = False  # type: ignore[assignment]
    _load_feature_extractor = False  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from gpner.prediction.predictor import Predictor
        from gpner.text.features import load_featurizer

        model = self.model
        if not isinstance(model, GlobalPointerForSpanClassification):
            raise TypeError(f"the gpner-ner pipeline runs a gpner model directory, not a "
                            f"{type(model).__name__}")
        mc = model.config.to_gpner()
        directory = Path(str(model.name_or_path))
        model.eval()
        self.predictor = Predictor(mc, load_featurizer(mc.encoder.type, directory,
                                                   encoder_config=mc.encoder_config),
                                   model.task, _ModelBackend(model))

    def _sanitize_parameters(self, threshold: float | None = None, flat: bool | None = None,
                             **kwargs: Any) -> tuple[dict, dict, dict]:
        return {}, {"threshold": threshold, "flat": flat}, {}

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(inputs, str):
            return self.predictor.predict(inputs, flat=kwargs.get("flat"),
                                          threshold=kwargs.get("threshold"))
        return self.predictor.predict(list(inputs), flat=kwargs.get("flat"),
                                      threshold=kwargs.get("threshold"),
                                      batch_size=kwargs.get("batch_size") or 32)

    # the Pipeline contract; __call__ above runs gpner's staged predictor instead, which
    # batches, windows and merges across texts
    def preprocess(self, input_: Any, **preprocess_parameters: Any) -> dict:
        return {"text": input_}

    def _forward(self, input_tensors: Any, **forward_parameters: Any) -> Any:
        return self.predictor.predict(input_tensors["text"],
                                      flat=forward_parameters.get("flat"),
                                      threshold=forward_parameters.get("threshold"))

    def postprocess(self, model_outputs: Any, **postprocess_parameters: Any) -> Any:
        return model_outputs


def register() -> None:
    """Let ``AutoConfig``/``AutoModel`` and ``pipeline("gpner-ner")`` know gpner (idempotent;
    importing this module does it)."""
    try:
        AutoConfig.register(MODEL_TYPE, GpnerConfig)
    except ValueError:  # already registered
        pass
    try:
        AutoModel.register(GpnerConfig, GlobalPointerForSpanClassification)
    except ValueError:
        pass
    PIPELINE_REGISTRY.register_pipeline(PIPELINE_TASK, pipeline_class=GpnerNerPipeline,
                                        pt_model=AutoModel, type="text")


register()
