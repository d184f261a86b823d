"""The bert4torch side of bench/peer.py; runs in its own virtual environment (bert4torch 0.6.2).

It trains and predicts the way bert4torch's GlobalPointer NER example does: its Tokenizer and
``rematch`` for offsets, a dense (B, C, L, L) label tensor per batch, ``build_transformer_model``
+ its GlobalPointer / EfficientGlobalPointer layer, its dense multilabel categorical
cross-entropy, ``model.fit``, and decoding by ``np.where(scores > 0)``. Prints one JSON object:
training and prediction time, and the predictions as character-offset records.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import sys
import time
import types

# bert4torch imports torchvision at import time (and requests, pillow, tokenizers, httpx and regex,
# which it does not declare: make bench-peer installs those). There is no CPU build of
# torchvision to install, and nothing on this path uses it, so an empty package stands in for
# it and each of its submodules; any name asked of them is an inert placeholder class.


class _Stub(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Stub(spec.name)

    def exec_module(self, module):
        module.__path__ = []


sys.meta_path.insert(0, _StubFinder())

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bert4torch.layers import EfficientGlobalPointer, GlobalPointer  # noqa: E402
from bert4torch.losses import MultilabelCategoricalCrossentropy  # noqa: E402
from bert4torch.models import BaseModel, build_transformer_model  # noqa: E402
from bert4torch.snippets import sequence_padding  # noqa: E402
from bert4torch.tokenizers import Tokenizer  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

MAXLEN = 256


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bert", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--head", default="gp")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--profile", action="store_true",
                    help="time its training steps (model.fit) against its BERT's forward + "
                         "backward on the same batches, instead of training and predicting")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(torch.get_num_threads())
    train = [json.loads(x) for x in open(args.train, encoding="utf-8")]
    dev = [json.loads(x) for x in open(args.dev, encoding="utf-8")]
    categories = sorted({e["label"] for r in train for e in r["entities"]})
    cat_id = {c: k for k, c in enumerate(categories)}
    tokenizer = Tokenizer(f"{args.bert}/vocab.txt", do_lower_case=True)

    def encode(rec):
        tokens = tokenizer.tokenize(rec["text"], maxlen=MAXLEN)
        mapping = tokenizer.rematch(rec["text"], tokens)
        starts = {j[0]: i for i, j in enumerate(mapping) if j}
        ends = {j[-1]: i for i, j in enumerate(mapping) if j}
        labels = np.zeros((len(categories), MAXLEN, MAXLEN))
        for e in rec["entities"]:  # the example keeps only spans whose ends map to tokens
            s, t = e["start"], e["end"] - 1
            if s in starts and t in ends:
                labels[cat_id[e["label"]], starts[s], ends[t]] = 1
        return tokenizer.tokens_to_ids(tokens), labels[:, :len(tokens), :len(tokens)], mapping

    def collate(batch):
        ids, labels = [], []
        for rec in batch:
            t, lab, _ = encode(rec)
            ids.append(t)
            labels.append(lab)
        ids = torch.tensor(sequence_padding(ids), dtype=torch.long)
        labels = torch.tensor(sequence_padding(labels, seq_dims=3), dtype=torch.long)
        return ids, labels

    layer = GlobalPointer if args.head == "gp" else EfficientGlobalPointer

    class Model(BaseModel):
        def __init__(self):
            super().__init__()
            self.bert = build_transformer_model(config_path=f"{args.bert}/bert4torch_config.json",
                                                checkpoint_path=f"{args.bert}/pytorch_model.bin",
                                                segment_vocab_size=0)
            self.global_pointer = layer(hidden_size=self.bert.config["hidden_size"],
                                        heads=len(categories), head_size=64)

        def forward(self, token_ids):
            hidden = self.bert([token_ids])
            if isinstance(hidden, dict):  # 0.6 returns a dict of outputs
                hidden = hidden["last_hidden_state"]
            return self.global_pointer(hidden, token_ids.gt(0).long())

    class Loss(MultilabelCategoricalCrossentropy):
        def forward(self, y_pred, y_true):
            b, c = y_pred.shape[:2]
            return super().forward(y_pred.reshape(b * c, -1), y_true.reshape(b * c, -1))

    model = Model()
    model.compile(loss=Loss(), optimizer=torch.optim.Adam(model.parameters(), lr=args.lr))
    if args.profile:
        print(json.dumps(profile(model, train, collate, args.batch_size, args.rounds)))
        return
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, collate_fn=collate)
    t = time.perf_counter()
    model.fit(loader, epochs=args.epochs, steps_per_epoch=None, verbose=0)
    train_s = time.perf_counter() - t

    model.eval()

    def predict(records: list) -> list:
        out = []
        for k in range(0, len(records), args.batch_size):
            out += predict_chunk(records[k:k + args.batch_size])
        return out

    def predict_chunk(chunk: list) -> list:
        enc = [encode(r) for r in chunk]
        ids = torch.tensor(sequence_padding([e[0] for e in enc]), dtype=torch.long)
        scores = model.predict(ids).cpu().numpy()
        found = [[] for _ in chunk]
        for b, c, i, j in zip(*np.where(scores > 0), strict=True):
            mapping = enc[b][2]
            if mapping[i] and mapping[j]:
                found[b].append({"start": int(mapping[i][0]), "end": int(mapping[j][-1]) + 1,
                                 "label": categories[c]})
        return [{"text": r["text"], "entities": f} for r, f in zip(chunk, found, strict=True)]

    predict(dev[:args.batch_size])  # warm-up, as on gpner's side
    times = []
    for _ in range(3):  # a pass takes seconds: the median of three
        t = time.perf_counter()
        out = predict(dev)
        times.append(time.perf_counter() - t)
    predict_s = sorted(times)[1]
    print(json.dumps({"train_seconds": train_s, "predict_seconds": predict_s,
                      "predict_seconds_passes": times,
                      "train_sents": len(train) * args.epochs, "predict_sents": len(dev),
                      "predictions": out}, ensure_ascii=False))


def profile(model, train: list, collate, batch_size: int, rounds: int) -> dict:
    """Its whole training step (``model.fit``: collation, forward, dense loss, backward, Adam)
    against its BERT's forward + backward alone on the very batches, in that order; the first
    two batches warm both up and are not timed (bench/limit.py's rule on gpner's side)."""
    loader = DataLoader(train, batch_size=batch_size, shuffle=False, collate_fn=collate)
    warm = DataLoader(train[:2 * batch_size], batch_size=batch_size, collate_fn=collate)
    model.fit(warm, epochs=1, steps_per_epoch=None, verbose=0)
    rest = DataLoader(train[2 * batch_size:], batch_size=batch_size, shuffle=False,
                      collate_fn=collate)
    t = time.perf_counter()
    model.fit(rest, epochs=1, steps_per_epoch=None, verbose=0)
    step_s = time.perf_counter() - t
    batches = [ids for ids, _ in loader][2:]
    bare = []
    for _ in range(rounds):
        t = time.perf_counter()
        for ids in batches:
            hidden = model.bert([ids])
            if isinstance(hidden, dict):
                hidden = hidden["last_hidden_state"]
            hidden.sum().backward()
            model.zero_grad(set_to_none=True)
        bare.append(time.perf_counter() - t)
    sents = sum(len(ids) for ids in batches)
    return {"steps": len(batches), "sentences": sents, "step_seconds": step_s,
            "bare_seconds": bare, "tokens": sum(int(ids.numel()) for ids in batches)}


if __name__ == "__main__":
    main()
