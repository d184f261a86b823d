"""gpner on one CUDA GPU (issue 34, point 4); ``bench/gpu.sh`` runs it, one command.

    bash bench/gpu.sh                      # on a machine with a CUDA GPU (under 8 min on an H100)
    python bench/gpu.py --dry-run          # tiny sizes on the CPU: checks the script itself

1. the GPU-marked tests (``pytest -m gpu``: fp16/bf16 masks and losses finite, mixed-precision
   training, CUDA determinism of resume): passed / failed / skipped, failures by name;
2. training throughput of a BERT-base-sized encoder (12 layers, hidden 768, random weights) with
   the GP, EGP and CRF heads in fp32, bf16 and fp16 autocast: the real trainer, batch 32,
   windows of 128 tokens, sentences/s from its step timings after warm-up steps, peak GPU memory;
3. prediction throughput (``model.predict``, end to end) at batch 1 and 32: PyTorch on the GPU,
   and ONNX Runtime (the CUDA provider where the installed onnxruntime has it, else its CPU
   provider on this machine's cores, said so); medians of three passes;
4. one 100,000-character text predicted on the GPU: seconds, windows, peak GPU memory.

Data: CLUENER (``../shared/data``) where it is there, else gpner's generated demo corpus (the
device machine carries the repository only); the encoder's vocabulary likewise: the real Chinese
one, else one written here and filled to BERT's 21,128 entries. Nothing is downloaded.
Writes ``bench/results/gpu.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from common import DATA, RESULTS, ROOT, machine, save

VOCAB = Path(os.environ.get("GPNER_BERT_VOCAB", ROOT.parent / "shared" / "encoders" /
                           "bert-chinese-vocab" / "vocab.txt"))
HEADS = ("gp", "egp", "crf")
PRECISIONS = ("fp32", "bf16", "fp16")


def corpus(n_train: int, n_dev: int) -> tuple[list, list, str]:
    """Training and prediction records: CLUENER when present, else the demo corpus."""
    from gpner.data.demo import generate
    from gpner.data.formats import read

    if (DATA / "cluener" / "train.json").is_file():
        return (read(DATA / "cluener" / "train.json").records[:n_train],
                read(DATA / "cluener" / "dev.json").records[:n_dev], "cluener")
    return generate(n_train, 1), generate(n_dev, 2, held_out=True), "demo corpus"


def bert_dir(layers: int, hidden: int, records: list) -> str:
    """A BERT with random weights saved locally, with the real vocabulary or a written one."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    d = Path(tempfile.mkdtemp(prefix="gpner-gpu-bert-"))
    if VOCAB.is_file():
        vocab = VOCAB
    else:  # the corpus's characters and words, then placeholders up to BERT's size
        seen = dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        for r in records:
            seen.update(dict.fromkeys(r["text"].lower().split()))
            seen.update(dict.fromkeys(ch for ch in r["text"].lower() if not ch.isspace()))
        words = list(seen) + [f"[unused{k}]" for k in range(max(0, 21128 - len(seen)))]
        vocab = d / "vocab.txt"
        vocab.write_text("\n".join(words) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=sum(1 for _ in vocab.open(encoding="utf-8")),
                     hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden)
    BertModel(cfg).save_pretrained(str(d))
    BertTokenizerFast(vocab=str(vocab)).save_pretrained(str(d))
    return str(d)


def gpu_tests(junit: Path) -> dict:
    """``pytest -m gpu``; its counts and the names of failures (from the JUnit report)."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p",
                           "no:cacheprovider", f"--junitxml={junit}", "tests/test_gpu.py"],
                          cwd=ROOT, capture_output=True, text=True)
    out: dict[str, Any] = {"exit_code": proc.returncode, "tail": proc.stdout[-2000:],
                           "seconds": round(time.perf_counter() - started, 1)}
    if junit.is_file():
        suite = ET.parse(junit).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        cases = list(suite.iter("testcase")) if suite is not None else []
        failed = [c.get("name") for c in cases if c.find("failure") is not None
                  or c.find("error") is not None]
        skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
        out.update(tests=len(cases), failed=failed, skipped=len(skipped),
                   passed=len(cases) - len(failed) - len(skipped))
    return out


def train_speed(hf_dir: str, records: list, head: str, precision: str, out: Path,
                warmup: int, device: str) -> dict:
    """The trainer's sentences/s (steps after ``warmup``), peak GPU memory, losses finite."""
    import math

    import torch

    from gpner.training.config import TrainConfig
    from gpner.training.trainer import train

    cfg = TrainConfig(encoder=hf_dir, head=head, max_length=128, epochs=1, batch_size=32,
                      encoder_lr=2e-5, patience=0, bf16=precision == "bf16",
                      fp16=precision == "fp16")
    marks: list[float] = []
    losses: list[float] = []

    def on_step(step: int, loss: float) -> None:  # float(loss) has synchronised the GPU
        marks.append(time.perf_counter())
        losses.append(loss)

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    summary = train(records, None, out, cfg, progress=False, overwrite=True, on_step=on_step)
    timed = marks[warmup:]
    rate = None
    if len(timed) > 1:
        rate = cfg.batch_size * (len(timed) - 1) / (timed[-1] - timed[0])
    return {"head": head, "precision": precision, "steps": len(marks),
            "sents_per_s": None if rate is None else round(rate, 1),
            "peak_gpu_mb": (round(torch.cuda.max_memory_allocated() / 2**20)
                            if device == "cuda" else None),
            "losses_finite": all(math.isfinite(x) for x in losses),
            "skipped_steps": summary["skipped_steps"],
            "run_seconds": round(time.perf_counter() - started, 1)}


def predict_speed(model_dir: Path, texts: list[str], device: str, rounds: int) -> list[dict]:
    """End-to-end prediction sentences/s per backend and batch size (medians, interleaved)."""
    import onnxruntime as ort

    from gpner.integrations.onnx_export import export_onnx
    from gpner.prediction.loading import load

    providers = ort.get_available_providers()
    export_onnx(model_dir, int8=True)
    models = {"torch": load(model_dir, device=device), "onnx": load(model_dir, backend="onnx"),
              "onnx-int8": load(model_dir, backend="onnx-int8")}
    cuda_ep = "CUDAExecutionProvider" in providers
    if cuda_ep:  # the same graph on the GPU: gpner's backend is ONNX Runtime's CPU provider
        for name in ("onnx",):
            backend = models[name].backend
            backend.session = ort.InferenceSession(
                backend.session._model_path, providers=["CUDAExecutionProvider",
                                                        "CPUExecutionProvider"])
    for m in models.values():
        m.predict(texts[:8])  # warm-up: kernels, allocator, thread pools
    times: dict = {(k, bs): [] for k in models for bs in (1, 32)}
    for _ in range(rounds):
        for bs in (1, 32):
            for k, m in models.items():
                t = time.perf_counter()
                m.predict(texts, batch_size=bs)
                times[(k, bs)].append(time.perf_counter() - t)
    return [{"backend": k, "batch": bs, "n": len(texts),
             "runs_on": (device if k == "torch" else
                         "cuda" if cuda_ep and k == "onnx" else "cpu"),
             "sents_per_s": round(len(texts) / statistics.median(v), 1),
             "seconds": [round(x, 3) for x in v]}
            for (k, bs), v in times.items()] + [{"onnxruntime_providers": providers}]


def long_text(model_dir: Path, texts: list[str], device: str, chars: int) -> dict:
    """One text of ``chars`` characters (dev sentences joined), predicted on ``device``."""
    import torch

    from gpner.prediction.loading import load

    model = load(model_dir, device=device)
    text = ""
    while len(text) < chars:
        text += " ".join(texts)
    text = text[:chars]
    windows = sum(1 for _, w in model.featurize([text]) if w is not None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    out = model.predict(text)
    seconds = time.perf_counter() - t
    return {"chars": len(text), "windows": windows, "seconds": round(seconds, 2),
            "entities": len(out["entities"]),
            "peak_gpu_mb": (round(torch.cuda.max_memory_allocated() / 2**20)
                            if device == "cuda" else None)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="default bench/results/gpu.json (gpu.dry-run.json with --dry-run)")
    ap.add_argument("--dry-run", action="store_true",
                    help="tiny sizes, on the CPU when there is no GPU (a check of the script)")
    ap.add_argument("--skip-tests", action="store_true")
    args = ap.parse_args()
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.dry_run:
        sys.exit("bench/gpu.py: no CUDA device here (torch.cuda.is_available() is False); "
                 "--dry-run checks the script on the CPU")
    q = args.dry_run
    args.out = args.out or RESULTS / ("gpu.dry-run.json" if q else "gpu.json")
    layers, hidden = (2, 64) if q else (12, 768)
    train_recs, dev, data = corpus(96 if q else 3200, 16 if q else 500)
    texts = [r["text"] for r in dev]
    result: dict[str, Any] = {
        "command": "bash bench/gpu.sh" + (" --dry-run" if q else ""), "machine": machine(),
        "device": device, "data": data,
        "encoder": f"BERT, {layers} layers, hidden {hidden}, random weights",
        "gpu": (torch.cuda.get_device_name(0) if device == "cuda" else None)}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        result["gpu_memory_mb"] = round(props.total_memory / 2**20)
        result["cuda_version"] = torch.version.cuda

    def checkpoint() -> None:  # a partial result survives a later failure or a time limit
        save(args.out, result)

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpner-gpu-"))
    if not args.skip_tests:
        result["tests"] = gpu_tests(work / "junit.xml")
        print("tests", json.dumps({k: v for k, v in result["tests"].items() if k != "tail"}),
              flush=True)
        checkpoint()
    hf_dir = bert_dir(layers, hidden, train_recs + dev)
    result["training"] = []
    for head in HEADS:
        for precision in PRECISIONS:
            try:
                row = train_speed(hf_dir, train_recs, head, precision,
                                  work / f"{head}-{precision}", 1 if q else 5, device)
            except Exception as exc:  # one failing setting must not lose the others' figures
                row = {"head": head, "precision": precision, "error": repr(exc)[:500]}
            result["training"].append(row)
            print("train", json.dumps(row), flush=True)
            checkpoint()
    model_dir = work / "egp-fp32" / "model"
    try:
        result["prediction"] = predict_speed(model_dir, texts, device, 1 if q else 3)
    except Exception as exc:
        result["prediction"] = [{"error": repr(exc)[:500]}]
    print("predict", json.dumps(result["prediction"]), flush=True)
    checkpoint()
    try:
        result["long_text"] = long_text(model_dir, texts, device, 10_000 if q else 100_000)
    except Exception as exc:
        result["long_text"] = {"error": repr(exc)[:500]}
    print("long", json.dumps(result["long_text"]), flush=True)
    result["minutes"] = round((time.perf_counter() - started) / 60, 2)
    checkpoint()
    print(f"wrote {args.out} ({result['minutes']} minutes)")


if __name__ == "__main__":
    main()
