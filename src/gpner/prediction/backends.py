"""ONNX Runtime as a prediction backend, without torch.

:class:`OnnxBackend` runs the graph that ``gpner export DIR --onnx`` wrote
(:mod:`gpner.integrations.onnx_export`): a batch of the featurizer's arrays in, the model's named outputs out, as
NumPy arrays that :mod:`gpner.tasks.decoding` reads directly. ``gpner.load(DIR, backend="onnx")``
builds a predictor on it; nothing on that path imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

ONNX_DIR, FP32, INT8, SPEC = "onnx", "model.onnx", "model.int8.onnx", "onnx.json"


class OnnxBackend:
    def __init__(self, session: Any, inputs: list[str], outputs: list[str]):
        self.session, self.inputs, self.outputs = session, inputs, outputs

    @classmethod
    def load(cls, model_dir: str | Path, int8: bool = False, threads: int | None = None
             ) -> "OnnxBackend":
        try:
            import onnxruntime as ort
        except ImportError as exc:
            from gpner.errors import MissingDependency

            raise MissingDependency("the onnx backend needs the 'onnx' extra: "
                                    "pip install 'gpner[onnx]'") from exc
        model_dir = Path(model_dir)
        file = model_dir / ONNX_DIR / (INT8 if int8 else FP32)
        if not file.is_file():
            from gpner.errors import ModelNotFound

            raise ModelNotFound(f"{file}: no ONNX export here; run: gpner export "
                                 f"{model_dir} --onnx" + (" --int8" if int8 else ""),
                                 code="E207")
        from gpner.textfiles import read_model_json

        spec = read_model_json(model_dir / ONNX_DIR / SPEC)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(file), opts, providers=["CPUExecutionProvider"])
        return cls(session, [i.name for i in session.get_inputs()], list(spec["outputs"]))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self.outputs, {k: batch[k] for k in self.inputs})
        return dict(zip(self.outputs, values))
