"""A gpner model as an MLflow pyfunc model (the ``mlflow`` extra).

``mlflow.pyfunc.load_model(uri).predict(["text", ...])`` returns gpner's records (the same as
``gpner predict``: ``{"text", "entities": [...]}``, and ``relations`` for a relation model), so
``mlflow models serve -m models:/gpner/1 --env-manager local`` serves it. The model directory
travels inside the MLflow model as its artifact ``gpner_model``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

try:
    from mlflow.pyfunc import PythonModel
except ImportError:  # the module is only imported with mlflow installed; this keeps mypy calm
    PythonModel = object  # type: ignore[assignment,misc]


class GpnerModel(PythonModel):
    """The pyfunc wrapper: loads the gpner model directory once, predicts lists of texts."""

    def load_context(self, context: Any) -> None:
        from gpner import load

        self.predictor = load(context.artifacts["gpner_model"])

    # the type hint is MLflow's schema: a list of texts (it turns a one-column DataFrame or a
    # served JSON list into one); other forms reach texts_of when called without the schema
    def predict(self, context: Any, model_input: list[str],
                params: dict[str, Any] | None = None):  # records: MLflow has no schema for them
        """``model_input``: a list of texts (also one text, a pandas Series, or a DataFrame
        with a ``text`` column or a single column)."""
        return self.predictor.predict(texts_of(model_input))


def texts_of(model_input: Any) -> list[str]:
    """The texts in any input form pyfunc passes."""
    if isinstance(model_input, str):
        return [model_input]
    columns = getattr(model_input, "columns", None)
    if columns is not None:  # a DataFrame
        col = "text" if "text" in columns else (columns[0] if len(columns) == 1 else None)
        if col is None:
            raise ValueError(f"a DataFrame input needs a 'text' column, got {list(columns)}")
        model_input = model_input[col]
    texts = list(model_input.tolist() if hasattr(model_input, "tolist") else model_input)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ValueError(f"input {bad[0]} is a {type(texts[bad[0]]).__name__}, not a text")
    return texts


def log_model(uri: str, run_id: str, model_dir: Path, registered_name: str | None
              ) -> dict[str, Any]:
    """Log ``model_dir`` as a pyfunc model in run ``run_id`` of store ``uri`` (registered under
    ``registered_name`` when given); returns ``{"model_uri", "registered_version"}``."""
    import mlflow
    import torch

    from gpner import __version__

    # the fluent API logs models; set_tracking_uri also writes MLFLOW_TRACKING_URI into the
    # environment, which the next run in this process would read: both are put back after
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env = {k: os.environ.get(k) for k in keys}
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        with mlflow.start_run(run_id=run_id):
            # requirements given, not inferred: inferring loads the model in a subprocess
            info = mlflow.pyfunc.log_model(
                name="model", python_model=GpnerModel(),
                artifacts={"gpner_model": str(model_dir)},
                pip_requirements=[f"gpner=={__version__}",
                                  f"torch=={torch.__version__.split('+')[0]}"],
                registered_model_name=registered_name)
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"model_uri": info.model_uri,
            "registered_model": registered_name,
            "registered_version": getattr(info, "registered_model_version", None)}
