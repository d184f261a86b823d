"""The runtimes behind the predictor: each a :class:`~gpner.contracts.Backend`, a batch of the
featurizer's arrays in, the model's named outputs out.

* :class:`TorchBackend`: the PyTorch module, on any device.
* :class:`OnnxBackend`: the graph that ``gpner export DIR --onnx`` wrote
  (:mod:`gpner.integrations.onnx_export`), run by ONNX Runtime on the CPU; its outputs are NumPy
  arrays that :mod:`gpner.tasks.decoding` reads directly, and nothing on its path imports torch.

A new runtime is a class here with the same call; :func:`gpner.prediction.loading.load` names
it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gpner.contracts import Batch, Outputs

ONNX_DIR, FP32, INT8, SPEC = "onnx", "model.onnx", "model.int8.onnx", "onnx.json"


class TorchBackend:
    """The PyTorch module as a backend, on ``device`` (default: where its weights are).

    It never changes the module's mode: :func:`~gpner.prediction.loading.load` puts a model in
    eval mode once, and the trainer switches its model to eval before it evaluates.
    ``threads``: the intra-op threads of the thread that calls it (concurrent batches each get
    their share).
    """

    def __init__(self, model: Any, device: Any = None, threads: int | None = None):
        import torch

        self.model, self.threads = model, threads
        self.device = torch.device(device) if device else next(model.parameters()).device

    def __call__(self, batch: Batch) -> Outputs:
        import torch

        from gpner.model.network import as_tensors, to_device

        if self.threads and torch.get_num_threads() != self.threads:
            # the calling thread's own setting (torch's OpenMP threads are set per thread):
            # concurrent batches each get their share without changing the process's
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            return self.model(to_device(as_tensors(batch), self.device))


class OnnxBackend:
    """An exported graph (``MODEL_DIR/onnx/``) run by ONNX Runtime on the CPU."""

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

    def __call__(self, batch: Batch) -> dict[str, np.ndarray]:
        values = self.session.run(self.outputs, {k: batch[k] for k in self.inputs})
        return dict(zip(self.outputs, values, strict=True))
