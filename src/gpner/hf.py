"""``import gpner.hf``: the public name of the Hugging Face integration
(:mod:`gpner.integrations.hf`). Every model directory's ``gpner_hf.py`` imports its classes
from here, so this name stays whatever the package's layout."""

from gpner.integrations.hf import (
                                   GlobalPointerForSpanClassification,
                                   GpnerConfig,
                                   GpnerNerPipeline,
                                   register,
)

__all__ = ["GlobalPointerForSpanClassification", "GpnerConfig", "GpnerNerPipeline", "register"]
