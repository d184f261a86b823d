"""Featurizers turn text into model inputs: the built-in one (words, bigrams, characters) and
one for any Hugging Face fast tokenizer. Both encode the whole text first (``encode``) and then
cut windows of at most ``max_length`` tokens (``window``): nothing is ever truncated.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from gpner.formats._io import atomic_write_text
from gpner.tokenization import CharWordTokenizer, Encoding, HFTokenizer, trim_offsets

MAX_CHARS = 16  # characters per token seen by the character CNN (features only; text is whole)


class Window(dict):
    """One model input: ``features`` (lists), ``offsets``/``spannable`` per window token, and
    ``start``/``prefix``: window token k is content token ``start + k - prefix``."""


class BuiltinFeaturizer:
    """Word ids (lower-cased, CJK per character), bigram ids and per-token character ids."""

    kind = "builtin"

    def __init__(self, words: CharWordTokenizer, bigrams: Sequence[str], chars: Sequence[str]):
        self.words = words
        self.bigrams = list(bigrams)
        self.chars = list(chars)
        self.bigram_index = {b: i for i, b in enumerate(self.bigrams)}
        self.char_index = {c: i for i, c in enumerate(self.chars)}
        self.num_special = 0

    @classmethod
    def build(cls, texts: Iterable[str], min_bigram_freq: int = 2) -> "BuiltinFeaturizer":
        texts = list(texts)
        words = CharWordTokenizer.build(texts)
        big: Counter[str] = Counter()
        chars: Counter[str] = Counter()
        for text in texts:
            toks = [text[s:e].lower() for s, e in words.encode(text).offsets]
            big.update(cls._bigram_keys(toks))
            chars.update(text)
        bigrams = ["[PAD]", "[UNK]", *sorted(b for b, c in big.items() if c >= min_bigram_freq)]
        charset = ["[PAD]", "[UNK]", *sorted(c for c in chars if not c.isspace())]
        return cls(words, bigrams, charset)

    @staticmethod
    def _bigram_keys(toks: list[str]) -> list[str]:
        return [f"{a}\t{b}" for a, b in zip(toks, toks[1:] + ["</s>"])]

    def encode(self, text: str) -> Encoding:
        return self.words.encode(text)

    def window(self, text: str, enc: Encoding, start: int, end: int) -> Window:
        offsets = enc.offsets[start:end]
        toks = [text[s:e] for s, e in enc.offsets[start:end + 1]]
        low = [t.lower() for t in toks]
        keys = self._bigram_keys(low)[: end - start]  # the token after the window completes it
        return Window(
            features={"ids": enc.ids[start:end],
                      "bigrams": [self.bigram_index.get(k, 1) for k in keys],
                      "chars": [[self.char_index.get(c, 1) for c in t[:MAX_CHARS]]
                                for t in toks[: end - start]]},
            offsets=offsets, spannable=enc.spannable[start:end], start=start, prefix=0)

    def collate(self, windows: Sequence[Window]) -> dict[str, torch.Tensor]:
        B = len(windows)
        L = max(1, max(len(w["offsets"]) for w in windows))
        W = max([1] + [len(c) for w in windows for c in w["features"]["chars"]])
        ids = torch.zeros(B, L, dtype=torch.long)
        bigrams = torch.zeros(B, L, dtype=torch.long)
        chars = torch.zeros(B, L, W, dtype=torch.long)
        mask = torch.zeros(B, L, dtype=torch.bool)
        for b, w in enumerate(windows):
            n = len(w["offsets"])
            f = w["features"]
            ids[b, :n] = torch.tensor(f["ids"], dtype=torch.long)
            bigrams[b, :n] = torch.tensor(f["bigrams"], dtype=torch.long)
            for t, cs in enumerate(f["chars"]):
                chars[b, t, : len(cs)] = torch.tensor(cs, dtype=torch.long)
            mask[b, :n] = torch.tensor(w["spannable"], dtype=torch.bool)
        lengths = torch.tensor([max(1, len(w["offsets"])) for w in windows])
        return {"ids": ids, "bigrams": bigrams, "chars": chars, "lengths": lengths,
                "attention_mask": ids.ne(0) | mask, "mask": mask}

    def sizes(self) -> dict[str, int]:
        return {"words": len(self.words), "bigrams": len(self.bigrams), "chars": len(self.chars)}

    def save(self, directory: Path) -> None:
        self.words.save(directory)
        atomic_write_text(Path(directory) / "features.json", json.dumps(
            {"bigrams": self.bigrams, "chars": self.chars}, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path) -> "BuiltinFeaturizer":
        data = json.loads((Path(directory) / "features.json").read_text(encoding="utf-8"))
        return cls(CharWordTokenizer.load(directory), data["bigrams"], data["chars"])


class HFFeaturizer:
    """A Hugging Face fast tokenizer; each window gets the model's own special tokens."""

    kind = "hf"

    def __init__(self, tokenizer: Any):
        self.adapter = HFTokenizer(tokenizer)
        self.tokenizer = tokenizer
        # the model's special tokens around one text ([CLS] x [SEP], <s> x </s>, x <sep> <cls>):
        # found by encoding a probe with and without them (works for every fast tokenizer)
        plain = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a", add_special_tokens=True)["input_ids"]
        at = next((k for k in range(len(full) - len(plain) + 1)
                   if full[k:k + len(plain)] == plain), None)
        if at is None:
            raise ValueError(f"cannot locate the text among {type(tokenizer).__name__}'s "
                             "special tokens")
        self.before, self.after = full[:at], full[at + len(plain):]
        self.prefix = len(self.before)
        self.num_special = len(self.before) + len(self.after)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def encode(self, text: str) -> Encoding:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                             truncation=False, verbose=False)
        offsets, spannable = trim_offsets(text, enc["offset_mapping"],
                                          [False] * len(enc["input_ids"]))
        return Encoding(list(enc["input_ids"]), offsets, spannable)

    def window(self, text: str, enc: Encoding, start: int, end: int) -> Window:
        ids = self.before + enc.ids[start:end] + self.after
        n_after = len(self.after)
        offsets = [(0, 0)] * self.prefix + enc.offsets[start:end] + [(0, 0)] * n_after
        spannable = [False] * self.prefix + enc.spannable[start:end] + [False] * n_after
        return Window(features={"input_ids": ids}, offsets=offsets, spannable=spannable,
                      start=start, prefix=self.prefix)

    def collate(self, windows: Sequence[Window]) -> dict[str, torch.Tensor]:
        B = len(windows)
        L = max(len(w["offsets"]) for w in windows)
        ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        att = torch.zeros(B, L, dtype=torch.long)
        mask = torch.zeros(B, L, dtype=torch.bool)
        for b, w in enumerate(windows):
            n = len(w["offsets"])
            ids[b, :n] = torch.tensor(w["features"]["input_ids"], dtype=torch.long)
            att[b, :n] = 1
            mask[b, :n] = torch.tensor(w["spannable"], dtype=torch.bool)
        return {"input_ids": ids, "attention_mask": att, "mask": mask}

    def save(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(str(directory))

    @classmethod
    def load(cls, directory: Path) -> "HFFeaturizer":
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(directory), use_fast=True))
