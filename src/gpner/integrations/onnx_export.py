"""ONNX export: a model directory's forward pass as an ONNX graph with dynamic batch and sequence
axes, checked against PyTorch when it is written, and its int8 dynamic quantisation.

The graph takes the featurizer's arrays (``collate``) by name and returns the model's named
outputs, so :class:`gpner.prediction.backends.OnnxBackend` drops into the staged predictor in
place of the PyTorch module. Files land in ``MODEL_DIR/onnx/``: ``model.onnx``,
``model.int8.onnx`` and ``onnx.json`` (input and output names, opset, the largest difference
from PyTorch measured at export).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gpner.atomic import atomic_write_text
from gpner.model.artifact import ModelConfig, load_weights, resolve_dir
from gpner.model.encoders import HFEncoder
from gpner.prediction.backends import FP32, INT8, ONNX_DIR, SPEC
from gpner.text.features import HFFeaturizer

# two texts of different lengths, so no axis is traced as a constant
PROBE = ["Alice works at the Bank of London in 2024 .", "张伟在上海大学工作。"]


class _Graph(nn.Module):
    """TaskModel(batch dict) -> dict, as positional tensors -> tuple, which the exporter needs."""

    def __init__(self, model: nn.Module, inputs: list[str], outputs: list[str]):
        super().__init__()
        self.model, self.inputs, self.outputs = model, inputs, outputs

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(dict(zip(self.inputs, xs, strict=True)))
        return tuple(out[k] for k in self.outputs)


def _axes(name: str, value: np.ndarray) -> dict[int, str]:
    """Dynamic axes of an input or output: batch first, then the token axes."""
    if name == "lengths":
        return {0: "batch"}
    if name == "chars":
        return {0: "batch", 1: "length", 2: "chars"}
    if value.ndim == 4:  # span scores (B, C, L, L)
        return {0: "batch", 2: "length", 3: "length"}
    if value.ndim >= 2:
        return {0: "batch", 1: "length"}
    return {}  # parameters such as the CRF's transitions


def export_onnx(directory: str | Path, int8: bool = False, opset: int = 17) -> dict[str, Any]:
    """Write ``onnx/model.onnx`` (and ``model.int8.onnx``) for a model directory; returns the
    spec written to ``onnx/onnx.json``."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError("ONNX export needs the 'onnx' extra: pip install 'gpner[onnx]'"
                          ) from exc
    from gpner.model.network import as_tensors
    from gpner.prediction.loading import from_config
    from gpner.tasks.decoding import as_array
    from gpner.text.features import load_featurizer

    path = resolve_dir(directory)
    config = ModelConfig.load(path)
    model, _ = from_config(config, path)
    load_weights(model, path, config)
    model.eval()
    if isinstance(model.encoder, HFEncoder):  # plain attention traces into portable ONNX ops
        model.encoder.model.set_attn_implementation("eager")
    featurizer = load_featurizer(config.encoder.type, path, encoder_config=config.encoder_config)
    windows = []
    for text in PROBE:
        enc = featurizer.encode(text)
        windows.append(featurizer.window(text, enc, 0, len(enc)))
    sample = featurizer.collate(windows)
    with torch.inference_mode():
        reference = {k: as_array(v) for k, v in model(as_tensors(sample)).items()}
    inputs, outputs = list(sample), list(reference)
    graph = _Graph(model, inputs, outputs)
    out_dir = path / ONNX_DIR
    out_dir.mkdir(exist_ok=True)
    tmp = out_dir / f".{FP32}.tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(
            graph, tuple(torch.from_numpy(sample[k]) for k in inputs), str(tmp),
            input_names=inputs, output_names=outputs, opset_version=opset, dynamo=False,
            dynamic_axes={**{k: _axes(k, sample[k]) for k in inputs},
                          **{k: _axes(k, reference[k]) for k in outputs}})
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    used = [i.name for i in session.get_inputs()]  # inputs the graph never reads are pruned
    got = dict(zip(outputs, session.run(outputs, {k: sample[k] for k in used}), strict=True))
    diff = max(_max_diff(reference[k], got[k]) for k in outputs)
    if not diff <= 1e-3:
        tmp.unlink()
        raise RuntimeError(f"the exported graph differs from PyTorch by {diff:.3g}")
    tmp.replace(out_dir / FP32)
    spec: dict[str, Any] = {"directory": str(out_dir), "inputs": used, "outputs": outputs,
                            "opset": opset,
                            "torch": torch.__version__, "onnxruntime": ort.__version__,
                            "max_abs_diff_fp32": diff, "int8": False}
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp8 = out_dir / f".{INT8}.tmp"
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # the quantiser logs every tensor
        try:
            quantize_dynamic(str(out_dir / FP32), str(tmp8), weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        tmp8.replace(out_dir / INT8)
        spec["int8"] = True
    if isinstance(featurizer, HFFeaturizer):  # what prediction without torch needs
        from gpner.text.features import SPECIAL_FILE

        atomic_write_text(path / SPECIAL_FILE, json.dumps(featurizer.special()))
    atomic_write_text(out_dir / SPEC, json.dumps(  # no absolute path: the directory may move
        {k: v for k, v in spec.items() if k != "directory"}, indent=2) + "\n")
    return spec


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| over cells finite in both; infinite cells (masks) must agree exactly."""
    fa, fb = np.isfinite(a), np.isfinite(b)
    if (fa != fb).any() or (a[~fa] != b[~fb]).any():
        return float("inf")
    return float(np.abs(a[fa] - b[fb]).max()) if fa.any() else 0.0
