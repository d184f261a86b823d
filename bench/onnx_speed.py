"""Prediction speed of PyTorch eager against ONNX Runtime fp32 and int8, and int8's F1 change.

    python bench/onnx_speed.py [--model RUN_DIR] [--quick]

* sentences/s end to end (``model.predict``: featurize, forward, decode) at batch 1 and 32 on
  CLUENER dev sentences, for the built-in encoder (a trained CLUENER EGP model) and for a
  BERT-base-sized encoder (12 layers, hidden 768, random weights, the real Chinese vocabulary);
  each backend one batch at a time on all cores (``concurrency=1``, the default) and two
  batches at once on a core each (``concurrency=2``); all run interleaved, three rounds,
  medians; ratios against PyTorch at ``concurrency=1``;
* strict micro F1 of the trained model on all of CLUENER dev with each backend.
Writes ``bench/results/onnx_speed.json``. Both runtimes use the machine's cores (2 here).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from common import DATA, RESULTS, ROOT, machine, save

BACKENDS = ("torch", "onnx", "onnx-int8")
RUNS = [(b, c) for c in (1, 2) for b in BACKENDS]  # (backend, concurrency)


def bert_base_model(records: list, out: Path) -> Path:
    """A model directory: BERT-base shapes with random weights and an EGP head, untrained."""
    from speed import _bert_dir

    from gpner.model.artifact import save_model
    from gpner.training.build import build
    from gpner.training.config import TrainConfig

    cfg = TrainConfig(encoder=_bert_dir(12, 768), head="egp", max_length=128)
    model, featurizer, _, config = build(cfg, records)
    config.decode.flat, config.decode.max_width = True, 16
    save_model(model.eval(), featurizer, config, out)
    return out


def speed(model_dir: Path, texts: list[str], batches: tuple[int, ...], rounds: int) -> list:
    from gpner.prediction.loading import load

    models = {(b, c): load(model_dir, backend=b, concurrency=c) for b, c in RUNS}
    for m in models.values():
        m.predict(texts[:8])  # warm-up: first-call allocations, thread pools
    times: dict = {(run, bs): [] for run in RUNS for bs in batches}
    for _ in range(rounds):
        for bs in batches:
            for run in RUNS:  # interleaved, so drift on a shared machine hits all alike
                t = time.perf_counter()
                models[run].predict(texts, batch_size=bs)
                times[(run, bs)].append(time.perf_counter() - t)
    rows = []
    for bs in batches:
        base = len(texts) / statistics.median(times[(("torch", 1), bs)])
        for b, c in RUNS:
            rate = len(texts) / statistics.median(times[((b, c), bs)])
            rows.append({"backend": b, "concurrency": c, "batch": bs,
                         "sents_per_s": round(rate, 1), "vs_torch": round(rate / base, 2),
                         "n": len(texts), "seconds": [round(x, 3) for x in times[((b, c), bs)]]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "runs" / "bench" / "cluener-egp"),
                    help="a trained built-in CLUENER model (make bench-accuracy writes one)")
    ap.add_argument("--data-root", default=str(DATA))
    ap.add_argument("--quick", action="store_true", help="few sentences, one round (a check)")
    args = ap.parse_args()
    from gpner.data.formats import read
    from gpner.integrations.onnx_export import export_onnx
    from gpner.prediction.loading import load

    dev = read(Path(args.data_root) / "cluener" / "dev.json").records
    n_small, n_bert, rounds = (40, 8, 1) if args.quick else (500, 120, 3)
    texts = [r["text"] for r in dev]
    export_onnx(args.model, int8=True)
    result: dict = {"command": "python bench/onnx_speed.py" + (" --quick" if args.quick else ""),
                    "machine": machine(), "rows": [], "f1": {}}
    for enc, model_dir, n in (("builtin", Path(args.model), n_small),
                              ("bert-base", None, n_bert)):
        if model_dir is None:
            model_dir = bert_base_model(dev[:200], Path("/tmp/gpner-bench-bert-base"))
            export_onnx(model_dir, int8=True)
        for row in speed(model_dir, texts[:n], (1, 32), rounds):
            result["rows"].append({"encoder": enc, **row})
            print(enc, row["backend"], row["concurrency"], row["batch"], row["sents_per_s"],
                  row["vs_torch"], flush=True)
    gold = dev if not args.quick else dev[:100]
    for b in BACKENDS:
        m = load(args.model, backend=b)
        result["f1"][b] = m.evaluate(gold)["f1"]
    model_path = Path(args.model).resolve()
    result["f1_model"] = str(model_path.relative_to(ROOT) if model_path.is_relative_to(ROOT)
                             else model_path)
    print("F1", result["f1"])
    save(RESULTS / ("onnx_speed.quick.json" if args.quick else "onnx_speed.json"), result)


if __name__ == "__main__":
    main()
