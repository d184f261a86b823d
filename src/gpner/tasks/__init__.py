"""The registry of tasks and heads: the one list of their names.

A task owns what turns gold annotations into training targets (tensors built by the collator),
the loss, the divergence the regularisers use, and the decoding of model outputs into spans.
A head is the module on top of the encoder. Names map to ``"module:attribute"`` strings, imported
on first use, so that reading the registry (the CLI, config validation) does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol, Sequence

if TYPE_CHECKING:
    from gpner.contracts import Task


@dataclass(frozen=True)
class HeadInfo:
    """A registered head: its kind, where its class is, and a line about it."""

    kind: str  # "span": scores every (start, end) cell; "tag": labels tokens with BIO tags
    target: str  # "module:Class", constructed as Class(hidden, num_types, head_size, full_square)
    about: str

    def cls(self) -> Any:
        return _resolve(self.target)


HEADS: dict[str, HeadInfo] = {
    "gp": HeadInfo("span", "gpner.model.heads:GlobalPointer",
                   "GlobalPointer, a q/k projection per type"),
    "egp": HeadInfo("span", "gpner.model.heads:EfficientGlobalPointer",
                    "Efficient GlobalPointer, one shared q/k plus per-type start/end terms"),
    "crf": HeadInfo("tag", "gpner.model.heads:CRFTagger", "BIO baseline with a linear-chain CRF"),
    "softmax": HeadInfo("tag", "gpner.model.heads:SoftmaxTagger",
                        "BIO baseline, a softmax per token"),
}

TASKS: dict[str, str] = {
    "ner": "gpner.tasks.ner:NerTask",
    "relations": "gpner.tasks.relations:RelationTask",
}


def _resolve(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(import_module(module), attr)


def task_class(name: str) -> Any:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return _resolve(TASKS[name])


def head_info(name: str) -> HeadInfo:
    if name not in HEADS:
        from gpner.errors import ConfigError

        raise ConfigError(f"head must be one of {', '.join(HEADS)}, got {name!r}", code="E303")
    return HEADS[name]


class TaskSettings(Protocol):
    """What a task is built from: the fields of a :class:`~gpner.model.artifact.ModelConfig`
    (or of the Hugging Face config) that name the task, its labels and its head."""

    @property
    def task(self) -> str: ...
    @property
    def labels(self) -> Sequence[str]: ...
    @property
    def head(self) -> str: ...
    @property
    def head_size(self) -> int: ...
    @property
    def relations(self) -> Sequence[str] | None: ...


def task_for(config: TaskSettings) -> Task:
    """The task object of a :class:`~gpner.model.artifact.ModelConfig` (no torch import)."""
    extra = {"relations": config.relations} if config.task == "relations" else {}
    return task_class(config.task)(config.labels, config.head, config.head_size, **extra)
