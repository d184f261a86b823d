"""gpner: GlobalPointer span extraction (nested and flat NER) that is fast, exact and honest.

``import gpner`` stays light: torch and the models load only when a name that needs them is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "read": "gpner.formats",
    "write": "gpner.formats",
    "detect_format": "gpner.formats",
    "evaluate": "gpner.metrics",
    "GlobalPointer": "gpner.heads",
    "EfficientGlobalPointer": "gpner.heads",
    "mcce_dense": "gpner.losses",
    "mcce_sparse": "gpner.losses",
    "mcce_soft": "gpner.losses",
    "gp_divergence": "gpner.losses",
    "decode": "gpner.decoding",
    "load": "gpner.predict",
    "Predictor": "gpner.predict",
    "ModelConfig": "gpner.artifact",
    "train": "gpner.trainer",
    "TrainConfig": "gpner.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gpner' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
