"""gpner: GlobalPointer span extraction (nested and flat NER) that is fast, exact and honest.

``import gpner`` stays light: torch and the models load only when a name that needs them is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "read": "gpner.data.formats",
    "write": "gpner.data.formats",
    "detect_format": "gpner.data.formats",
    "evaluate": "gpner.metrics",
    "GlobalPointer": "gpner.model.heads",
    "EfficientGlobalPointer": "gpner.model.heads",
    "mcce_dense": "gpner.model.losses",
    "mcce_sparse": "gpner.model.losses",
    "mcce_soft": "gpner.model.losses",
    "gp_divergence": "gpner.model.losses",
    "decode": "gpner.tasks.decoding",
    "load": "gpner.prediction.loading",
    "Predictor": "gpner.prediction.predictor",
    "GpnerPredictor": "gpner.integrations.batch_inference",
    "ModelConfig": "gpner.model.artifact",
    "train": "gpner.training.trainer",
    "TrainConfig": "gpner.training.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gpner' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
