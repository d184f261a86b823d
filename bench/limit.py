"""How close gpner runs to its encoder's own limit (issue 34, point 2).

    python bench/limit.py [--quick]

For the built-in encoder (a model trained here on CLUENER for ``--train-minutes``) and a
BERT-base-sized encoder (12 layers, hidden 768, random weights, the real Chinese vocabulary,
its head trained for a few steps so that decoding sees realistic, mostly negative scores):

* **prediction**: ``model.predict`` end to end (featurize, forward, decode, records) over CLUENER
  dev sentences, against the bare encoder's forward over the very same padded batches (the
  predictor's backend is wrapped once to record them), in PyTorch and ONNX Runtime int8 (the
  encoder alone exported and quantised the way ``gpner export --onnx --int8`` does the whole
  model), at batch 1 and 32; interleaved A B A B, medians. The ratio bare time / end-to-end
  time is gpner's share of the encoder's throughput. Goal: >= 90%.
* **training**: the trainer's step (collate, forward, loss, backward, clipping, the fused AdamW
  update, the schedule) timed from the start of one step to the start of the next, against the
  bare encoder's forward + backward on the very same batches (recorded from the trainer) in
  training mode. Goal: step <= 1.15x the bare encoder's forward + backward.

Writes ``bench/results/limit.json`` (``limit.quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from common import DATA, RESULTS, machine, save


class Recorder:
    """A predictor backend that keeps every batch it is given (the very batches to replay)."""

    def __init__(self, inner: Any):
        self.inner, self.batches = inner, []

    def __call__(self, batch: dict) -> Any:
        self.batches.append(batch)
        return self.inner(batch)


def export_encoder(model_dir: Path, out: Path) -> Path:
    """The encoder of a model directory alone as an int8 ONNX graph, exported and quantised as
    gpner's own export does the whole model (same inputs, dynamic axes, opset, quantiser)."""
    import logging
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from gpner.integrations.onnx_export import PROBE, _axes
    from gpner.model.encoders import HFEncoder
    from gpner.model.network import as_tensors
    from gpner.prediction.loading import load

    predictor = load(model_dir, device="cpu")  # once: its module and its featurizer
    encoder = predictor.backend.model.encoder
    if isinstance(encoder, HFEncoder):
        encoder.model.set_attn_implementation("eager")
    featurizer = predictor.featurizer
    windows = [featurizer.window(t, e, 0, len(e)) for t in PROBE
               for e in [featurizer.encode(t)]]
    sample = featurizer.collate(windows)
    names = list(sample)

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, *xs: torch.Tensor) -> torch.Tensor:
            return self.encoder(dict(zip(names, xs, strict=True)))

    fp32 = out / "encoder.onnx"
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        hidden = Graph()(*as_tensors(sample).values())
        torch.onnx.export(Graph().eval(), tuple(torch.from_numpy(sample[k]) for k in names),
                          str(fp32), input_names=names, output_names=["hidden"],
                          opset_version=17, dynamo=False,
                          dynamic_axes={**{k: _axes(k, sample[k]) for k in names},
                                        "hidden": {0: "batch", 1: "length"}})
    assert hidden.ndim == 3
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # the quantiser logs every tensor
    try:
        quantize_dynamic(str(fp32), str(out / "encoder.int8.onnx"), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return out / "encoder.int8.onnx"


def bare_runner(kind: str, model_dir: Path, onnx_file: Path | None) -> Any:
    """The bare encoder's forward over a recorded batch, on the backend ``kind``."""
    if kind == "torch":
        import torch

        from gpner.model.network import as_tensors
        from gpner.prediction.loading import load

        encoder = load(model_dir, device="cpu").backend.model.encoder

        def run(batch: dict) -> Any:
            with torch.inference_mode():
                return encoder(as_tensors(batch))
        return run
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1  # as gpner's OnnxBackend
    session = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
    used = [i.name for i in session.get_inputs()]
    return lambda batch: session.run(["hidden"], {k: batch[k] for k in used})


def prediction(model_dir: Path, texts: list[str], batches: tuple[int, ...], rounds: int
               ) -> list[dict]:
    """End to end against the bare encoder on the same batches, per backend and batch size."""
    from gpner.integrations.onnx_export import export_onnx
    from gpner.prediction.loading import load

    export_onnx(model_dir, int8=True)  # the whole model, as `gpner export --onnx --int8`
    onnx_file = export_encoder(model_dir, model_dir / "limit-onnx")
    rows = []
    for backend in ("torch", "onnx-int8"):
        model = load(model_dir, backend=backend, device="cpu" if backend == "torch" else None)
        bare = bare_runner("torch" if backend == "torch" else "onnx", model_dir, onnx_file)
        for bs in batches:
            recorder = Recorder(model.backend)
            model.backend = recorder
            out = model.predict(texts, batch_size=bs)
            model.backend = recorder.inner
            same = recorder.batches
            spans = sum(len(r["entities"]) for r in out)
            for b in same[:2]:
                bare(b)  # warm-up of both, so first-call allocations are paid before timing
            e2e, enc = [], []
            for _ in range(rounds):  # A B A B: drift on a shared machine hits both alike
                t = time.perf_counter()
                model.predict(texts, batch_size=bs)
                e2e.append(time.perf_counter() - t)
                t = time.perf_counter()
                for b in same:
                    bare(b)
                enc.append(time.perf_counter() - t)
            e, b_ = statistics.median(e2e), statistics.median(enc)
            rows.append({"backend": backend, "batch": bs, "n": len(texts),
                         "batches": len(same), "spans_per_text": round(spans / len(texts), 2),
                         "end_to_end_sents_per_s": round(len(texts) / e, 1),
                         "bare_encoder_sents_per_s": round(len(texts) / b_, 1),
                         "share_of_encoder_throughput": round(b_ / e, 3),
                         "seconds": {"end_to_end": [round(x, 3) for x in e2e],
                                     "bare_encoder": [round(x, 3) for x in enc]}})
            print(rows[-1], flush=True)
    return rows


def training(cfg: Any, records: list, out: Path, rounds: int) -> dict:
    """The trainer's steps against the bare encoder's forward + backward on the same batches."""
    import torch

    from gpner.training import trainer as trainer_mod
    from gpner.training.build import build
    from gpner.training.trainer import train

    starts: list[float] = []
    ends: list[float] = []
    recorded: list[dict] = []
    original = trainer_mod.Trainer.micro_batches

    def micro_batches(self: Any, idx: Any) -> Any:
        starts.append(time.perf_counter())
        micro = original(self, idx)
        recorded.append({k: v.clone() for k, v in micro[0][0].items()})
        return micro

    trainer_mod.Trainer.micro_batches = micro_batches  # type: ignore[method-assign]
    try:
        train(records, None, out, cfg, progress=False, overwrite=True,
              on_step=lambda step, loss: ends.append(time.perf_counter()))
    finally:
        trainer_mod.Trainer.micro_batches = original  # type: ignore[method-assign]
    # the first steps pay first-call allocations: both sides skip them
    skip = min(2, len(starts) - 1)
    step_s = sum(e - s for s, e in zip(starts[skip:], ends[skip:], strict=True))
    torch.manual_seed(cfg.seed)
    model = build(cfg, records)[0].train()
    batches = recorded[skip:]
    for b in batches[:1]:  # warm-up, as the trainer's skipped steps were
        model.encoder(b).sum().backward()
        model.zero_grad(set_to_none=True)
    bare = []
    for _ in range(rounds):
        t = time.perf_counter()
        for b in batches:
            model.encoder(b).sum().backward()
            model.zero_grad(set_to_none=True)
        bare.append(time.perf_counter() - t)
    b_ = statistics.median(bare)
    sents = sum(int(b["mask"].shape[0]) for b in batches)
    return {"steps": len(batches), "sentences": sents,
            "step_sents_per_s": round(sents / step_s, 1),
            "bare_fwd_bwd_sents_per_s": round(sents / b_, 1),
            "step_over_bare": round(step_s / b_, 3),
            "seconds": {"steps": round(step_s, 3), "bare": [round(x, 3) for x in bare]}}


def bert_base_config(hf_dir: str) -> Any:
    """The settings of the BERT-base-sized runs: the default head, batch 16, windows of 128."""
    from gpner.training.config import TrainConfig

    return TrainConfig(encoder=hf_dir, max_length=128, epochs=1, batch_size=16, lr=1e-3,
                       encoder_lr=1e-5, patience=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--runs", type=Path, default=Path("/tmp/gpner-bench-limit"))
    ap.add_argument("--train-minutes", type=float, default=3.0,
                    help="the built-in model's training budget")
    ap.add_argument("--quick", action="store_true", help="few sentences, one round (a check)")
    ap.add_argument("--rounds", type=int, default=5, help="timed passes of each side")
    ap.add_argument("--prediction-only", action="store_true",
                    help="time prediction again with the models already in --runs, keeping "
                         "the training rows of bench/results/limit.json")
    args = ap.parse_args()
    from gpner.data.formats import read
    from gpner.training.config import TrainConfig
    from gpner.training.trainer import train

    q = args.quick
    train_recs = read(args.data_root / "cluener" / "train.json").records
    dev = read(args.data_root / "cluener" / "dev.json").records
    texts = [r["text"] for r in dev]
    rounds = 1 if q else args.rounds
    out_file = RESULTS / ("limit.quick.json" if q else "limit.json")
    result: dict = {"command": "python bench/limit.py" + (" --quick" if q else ""),
                    "machine": machine(), "prediction": [], "training": {}}
    from speed import _bert_dir

    hf_dir = _bert_dir(12, 768)  # random weights: its head is trained for one short epoch
    if args.prediction_only:
        old = json.loads(out_file.read_text(encoding="utf-8"))
        result["training"] = old["training"]
        result["command"] = old["command"] + f"; then --prediction-only --rounds {rounds}"
    else:
        builtin = TrainConfig(epochs=1 if q else 20, patience=0,
                              max_minutes=0.2 if q else args.train_minutes)
        train(train_recs[:200] if q else train_recs, None, args.runs / "builtin", builtin,
              progress=False, overwrite=True)
        train(train_recs[:32 if q else 256], None, args.runs / "bert-base",
              bert_base_config(hf_dir), progress=False, overwrite=True)
    bert_dir = args.runs / "bert-base" / "model"
    for enc, model_dir, n in (("builtin", args.runs / "builtin" / "model", 40 if q else 1343),
                              ("bert-base", bert_dir, 8 if q else 160)):
        for row in prediction(model_dir, texts[:n], (1, 32), rounds):
            result["prediction"].append({"encoder": enc, **row})
    # the bert4torch comparison's setting too (bench/peer.py: 4 layers, hidden 256, batch 16,
    # constant lr, no weight decay or clipping), both heads: what is left outside the encoder
    peer_dir = _bert_dir(4, 256)
    peer = dict(encoder=peer_dir, epochs=1, batch_size=16, lr=1e-4, encoder_lr=1e-4, warmup=0.0,
                schedule="constant", weight_decay=0.0, grad_clip=0.0, patience=0,
                max_length=256)
    if args.prediction_only:
        save(out_file, result)
        return
    for enc, n, cfg in (("builtin", 64 if q else 2000, TrainConfig(epochs=1, patience=0)),
                        ("bert-base", 32 if q else 256, bert_base_config(hf_dir)),
                        ("peer BERT, gp", 32 if q else 800, TrainConfig(head="gp", **peer)),
                        ("peer BERT, egp", 32 if q else 800, TrainConfig(head="egp", **peer))):
        row = training(cfg, train_recs[:n], args.runs / "train", rounds)
        result["training"][enc] = {"batch_size": cfg.batch_size, "head": cfg.head, **row}
        print(enc, result["training"][enc], flush=True)
    save(out_file, result)


if __name__ == "__main__":
    main()
