"""gpner against bert4torch 0.6.2 (the library users would otherwise pick), side by side.

    python bench/peer.py [--epochs 3] [--rounds 3]        # make bench-peer sets up its venv

Both train GlobalPointer (and Efficient GlobalPointer) on the same randomly initialised BERT
(4 layers, hidden 256, the real Chinese vocabulary from ../shared/encoders; bert4torch loads the
very weights gpner starts from) and the same CLUENER 2,000 train / 500 dev sentences, batch 16,
Adam at a constant lr 1e-4 without weight decay or clipping (the example's optimiser; gpner's
AdamW with ``schedule=constant weight_decay=0 grad_clip=0``), the same number of epochs.
bert4torch runs the way its NER example does (bench/peer_bert4torch.py, in its own virtual
environment); gpner runs
``gpner.train`` and ``model.predict`` with each backend, one batch at a time and two at once
(``concurrency=2``). The two alternate, ``rounds`` times;
figures are medians. Prediction, on both sides: a warm-up batch, then the median of three
passes over the dev sentences. F1 is strict micro F1 on characters for both (gpner.metrics).
Writes ``bench/results/peer.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from common import DATA, RESULTS, ROOT, machine, save

VOCAB = ROOT.parent / "shared" / "encoders" / "bert-chinese-vocab" / "vocab.txt"
B4T = Path(os.environ.get("B4T_VENV", "/tmp/gpner-peer-venv"))
# gpner's prediction runs: each backend one batch at a time on both cores, then two batches at
# once on a core each (concurrency=2)
RUNS = [(b, c) for c in (1, 2) for b in ("torch", "onnx", "onnx-int8")]


def run_key(backend: str, concurrency: int) -> str:
    """``onnx-int8`` for one batch at a time, ``onnx-int8-c2`` for two at once."""
    return backend if concurrency == 1 else f"{backend}-c{concurrency}"


def random_bert(out: Path) -> Path:
    """4 layers, hidden 256, random weights, saved both ways (safetensors for gpner, a
    state dict for bert4torch, which maps Hugging Face names itself)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=21128, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=1024)
    model = BertModel(cfg)
    model.save_pretrained(str(out))
    # Hugging Face names as in a pretrained checkpoint ("bert." prefix), which bert4torch maps
    torch.save({f"bert.{k}": v for k, v in model.state_dict().items()}, out / "pytorch_model.bin")
    BertTokenizerFast(vocab=str(VOCAB)).save_pretrained(str(out))
    shutil.copy(VOCAB, out / "vocab.txt")  # bert4torch's Tokenizer reads the vocabulary file
    (out / "bert4torch_config.json").write_text(json.dumps(  # its own config file name
        {**{k: v for k, v in cfg.to_dict().items() if isinstance(v, (int, float, str))},
         "model": "bert"}, indent=2))
    return out


def gpner_side(bert: Path, train: list, dev: list, head: str, epochs: int, work: Path) -> dict:
    import torch

    from gpner.integrations.onnx_export import export_onnx
    from gpner.metrics import evaluate
    from gpner.prediction.loading import load
    from gpner.training.config import TrainConfig
    from gpner.training.trainer import train as fit

    # the example's optimisation: Adam at a constant rate, no weight decay, no clipping
    cfg = TrainConfig(encoder=str(bert), head=head, epochs=epochs, batch_size=16, lr=1e-4,
                      encoder_lr=1e-4, warmup=0.0, schedule="constant", weight_decay=0.0,
                      grad_clip=0.0, patience=0, max_length=256)
    torch.manual_seed(42)
    run = work / f"gpner-{head}"
    t = time.perf_counter()
    fit(train, None, run, cfg, progress=False, overwrite=True)
    out = {"train_seconds": time.perf_counter() - t, "train_sents": len(train) * epochs}
    export_onnx(run, int8=True)
    texts = [r["text"] for r in dev]
    for backend, concurrency in RUNS:
        key = run_key(backend, concurrency)
        model = load(run, backend=backend, concurrency=concurrency)
        model.predict(texts[:16])  # warm-up
        times = []
        for _ in range(3):  # a pass takes seconds: the median of three
            t = time.perf_counter()
            pred = model.predict(texts, batch_size=16)
            times.append(time.perf_counter() - t)
        out[f"predict_seconds_{key}"] = sorted(times)[1]
        out[f"f1_{key}"] = evaluate(dev, pred)["f1"]
    return out


def b4t_side(bert: Path, data: Path, head: str, epochs: int) -> dict:
    from gpner.metrics import evaluate

    res = subprocess.run([str(B4T / "bin" / "python"), str(ROOT / "bench" / "peer_bert4torch.py"),
                          "--bert", str(bert), "--train", str(data / "train.jsonl"), "--dev",
                          str(data / "dev.jsonl"), "--head", head, "--epochs", str(epochs)],
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"bert4torch side failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.splitlines()[-1])
    dev = [json.loads(x) for x in (data / "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    out["f1"] = evaluate(dev, out.pop("predictions"))["f1"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--heads", default="gp,egp")
    ap.add_argument("--data-root", default=str(DATA))
    ap.add_argument("--quick", action="store_true", help="200/50 sentences, 1 epoch, 1 round")
    args = ap.parse_args()
    n_train, n_dev = (200, 50) if args.quick else (2000, 500)
    if args.quick:
        args.epochs, args.rounds = 1, 1
    if not (B4T / "bin" / "python").exists():
        raise SystemExit(f"no bert4torch environment at {B4T}: run `make bench-peer`")
    from gpner.data.formats import read, write

    work = Path("/tmp/gpner-peer")
    work.mkdir(exist_ok=True)
    train = read(Path(args.data_root) / "cluener" / "train.json").records[:n_train]
    dev = read(Path(args.data_root) / "cluener" / "dev.json").records[:n_dev]
    write(train, work / "train.jsonl", "jsonl")
    write(dev, work / "dev.jsonl", "jsonl")
    bert = random_bert(work / "bert")
    runs: dict = {h: {"gpner": [], "bert4torch": []} for h in args.heads.split(",")}
    for r in range(args.rounds):
        for head in runs:
            runs[head]["bert4torch"].append(b4t_side(bert, work, head, args.epochs))
            runs[head]["gpner"].append(gpner_side(bert, train, dev, head, args.epochs, work))
            print(head, r, json.dumps({k: v[-1] for k, v in runs[head].items()}), flush=True)
    rows = []
    keys = [run_key(b, c) for b, c in RUNS]
    for head, by in runs.items():
        b, g = by["bert4torch"], by["gpner"]

        def med(xs, key, sents):
            return statistics.median(x[sents] / x[key] for x in xs)

        row = {"head": head,
               "bert4torch": {"train_sents_per_s": med(b, "train_seconds", "train_sents"),
                              "predict_sents_per_s": med(b, "predict_seconds", "predict_sents"),
                              "f1": statistics.median(x["f1"] for x in b)},
               "gpner": {"train_sents_per_s": med(g, "train_seconds", "train_sents"),
                         "f1": {k: statistics.median(x[f"f1_{k}"] for x in g) for k in keys}}}
        for k in keys:
            row["gpner"][f"predict_sents_per_s_{k}"] = statistics.median(
                len(dev) / x[f"predict_seconds_{k}"] for x in g)
        row["train_ratio"] = row["gpner"]["train_sents_per_s"] / row["bert4torch"][
            "train_sents_per_s"]
        row["predict_ratio"] = {k: row["gpner"][f"predict_sents_per_s_{k}"] / row["bert4torch"][
            "predict_sents_per_s"] for k in keys}
        rows.append(row)
        print(json.dumps(row, indent=1))
    save(RESULTS / ("peer.quick.json" if args.quick else "peer.json"), {
        "command": f"python bench/peer.py --epochs {args.epochs} --rounds {args.rounds}",
        "rows": rows, "runs": runs, "machine": machine()})


if __name__ == "__main__":
    main()
