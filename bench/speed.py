"""Speed benchmark: ratios measured in one run on the same data and encoder.

    python bench/speed.py [--quick]

* training and inference sentences/s of GP, EGP, CRF and softmax heads (built-in encoder, and a
  BERT-base-sized encoder with random weights and the real Chinese vocabulary);
* the share of a training step spent in head + loss + decoding (BERT-base shapes);
* dynamic padding (length buckets) against padding every batch to 256 tokens;
* peak resident memory of each measurement (each runs in its own process).
Every figure is the median of several repeats. Data: the first sentences of CLUENER train/dev.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, RESULTS, ROOT, machine, peak_rss_mb, save

VOCAB = ROOT.parent / "shared" / "encoders" / "bert-chinese-vocab" / "vocab.txt"


def _records(n: int, split: str, data_root: Path):
    from gpner.data.formats import read

    return read(data_root / "cluener" / f"{split}.json").records[:n]


def _bert_dir(layers: int, hidden: int) -> str:
    """A BERT with random weights and the real 21,128-entry vocabulary, saved locally."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    d = tempfile.mkdtemp(prefix="gpner-bert-")
    cfg = BertConfig(vocab_size=21128, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden)
    BertModel(cfg).save_pretrained(d)
    BertTokenizerFast(vocab=str(VOCAB)).save_pretrained(d)  # vocab=, not vocab_file= (5.x)
    return d


def _pad_to(batch: dict, length: int) -> dict:
    import torch

    out = {}
    sequence_keys = {"ids", "bigrams", "chars", "mask", "attention_mask", "input_ids", "tags"}
    for k, v in batch.items():
        if k in sequence_keys and v.shape[1] < length:
            pad = torch.zeros((v.shape[0], length - v.shape[1], *v.shape[2:]), dtype=v.dtype)
            out[k] = torch.cat([v, pad], 1)
        else:
            out[k] = v
    if "lengths" in out:  # research scripts run the encoder over the padding too
        out["lengths"] = torch.full_like(out["lengths"], length)
    return out


def worker(spec: dict) -> dict:
    import torch

    from gpner.prediction.backends import TorchBackend
    from gpner.prediction.predictor import Predictor
    from gpner.records import Report
    from gpner.training.build import build
    from gpner.training.config import TrainConfig
    from gpner.training.examples import Collator, length_buckets, make_examples

    torch.manual_seed(0)
    root = Path(spec["data_root"])
    train_recs = _records(spec["n"], "train", root)
    encoder = spec["encoder"]
    if encoder.startswith("bert"):
        layers, hidden = (12, 768) if encoder == "bert-base" else (2, 64)
        encoder = _bert_dir(layers, hidden)
    cfg = TrainConfig(head=spec["head"], encoder=encoder, batch_size=spec["batch_size"])
    model, featurizer, task, config = build(cfg, train_recs)
    config.decode.flat, config.decode.max_width = True, 40
    ex = make_examples(train_recs, featurizer, config.labels, config.max_length, Report("b"),
                       flat_only=not task.span_head)
    collate = Collator(featurizer, task)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    order = length_buckets(ex, cfg.batch_size, seed=1)[: spec["batches"]]
    sents = sum(len(b) for b in order)
    res: dict = {"spec": {k: v for k, v in spec.items() if k != "data_root"}}

    def train_pass():
        model.train()
        for b in order:
            batch = collate([ex[k] for k in b])
            if spec.get("pad"):
                batch = _pad_to(batch, spec["pad"])
            loss = task.loss(model(batch), batch)
            loss.backward()
            opt.step()
            opt.zero_grad()

    times = []
    for _ in range(spec["repeats"]):
        t = time.perf_counter()
        train_pass()
        times.append(time.perf_counter() - t)
    res["train_sents_per_s"] = sents / statistics.median(times)
    if spec.get("infer"):
        texts = [r["text"] for r in _records(spec["n"], "dev", root)]
        pred = Predictor(config, featurizer, task, TorchBackend(model.eval()))
        times = []
        for _ in range(spec["repeats"]):
            t = time.perf_counter()
            pred.predict(texts, batch_size=spec["batch_size"])
            times.append(time.perf_counter() - t)
        res["infer_sents_per_s"] = len(texts) / statistics.median(times)
    if spec.get("share"):
        model.train()
        batch = collate([ex[k] for k in order[0]])
        step, head, dec = [], [], []
        for _ in range(spec["repeats"]):
            t = time.perf_counter()
            task.loss(model(batch), batch).backward()
            step.append(time.perf_counter() - t)
            hidden = model.encoder(batch).detach().requires_grad_(True)
            t = time.perf_counter()
            out = {"entities": model.heads["entities"](hidden, batch["mask"])}
            task.loss(out, batch).backward()
            head.append(time.perf_counter() - t)
            t = time.perf_counter()
            task.decode({"entities": out["entities"].detach()}, batch, 0.0, 40)
            dec.append(time.perf_counter() - t)
            model.zero_grad()
        s, h, d = (statistics.median(x) for x in (step, head, dec))
        res.update(step_s=s, head_loss_s=h, decode_s=d, head_share=(h + d) / (s + d),
                   batch_tokens=int(batch["mask"].shape[1]), batch_size=len(order[0]))
    res["peak_rss_mb"] = peak_rss_mb()
    return res


def spawn(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--worker")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (for the harness test)")
    ap.add_argument("--data-root", default=str(DATA))
    ap.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    q = args.quick
    base = {"data_root": args.data_root, "batch_size": 32, "repeats": 2 if q else 3}
    small = dict(base, n=64 if q else 1024, batches=2 if q else 32, infer=True)
    bert = dict(base, encoder="bert-tiny" if q else "bert-base", n=64 if q else 256,
                batches=1 if q else 3)
    results = {"machine": machine(), "command": "python bench/speed.py", "rows": []}
    for enc_name, spec in (("builtin", dict(small, encoder="builtin")), ("bert-base", bert)):
        for head in ("gp", "egp", "crf", "softmax"):
            r = spawn(dict(spec, head=head, share=head in ("gp", "egp"),
                           infer=spec.get("infer", False) or not q))
            r.update(encoder=enc_name, head=head, kind="heads")
            results["rows"].append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "spec"}), flush=True)
    for pad in (None, 256):
        r = spawn(dict(small, encoder="builtin", head="gp", infer=False, pad=pad))
        r.update(encoder="builtin", head="gp", kind="padding", padding=pad or "dynamic")
        results["rows"].append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "spec"}), flush=True)
    save(args.out, results)


if __name__ == "__main__":
    main()
