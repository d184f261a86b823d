"""Featurizers turn text into model inputs: the built-in one (words, bigrams, characters) and
one for any Hugging Face fast tokenizer. Both encode the whole text first (``encode``), cut
windows of at most ``max_length`` tokens (``window``: nothing is ever truncated), and pad
windows into a batch (``collate``: a dict of NumPy arrays, ``mask`` (B, L) marking the tokens
that may start or end a span).

NumPy, not torch: prediction with ONNX Runtime runs this module without importing torch, and the
PyTorch paths wrap the arrays with ``torch.from_numpy`` (no copy).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from gpner.atomic import atomic_write_text
from gpner.contracts import Window
from gpner.text.tokenization import (
    CharWordTokenizer,
    Encoding,
    HFTokenizer,
    PackedEncoding,
    RawHFTokenizer,
)

MAX_CHARS = 16  # characters per token seen by the character CNN (features only; text is whole)


def pad_stack(seqs: Sequence[np.ndarray], fill: int = 0, min_len: int = 0) -> np.ndarray:
    """Stack arrays of shapes (n_k, *rest_k) into (B, max n_k, *max rest_k), padded with
    ``fill``; the second dimension is at least ``min_len``."""
    if len(seqs) == 1 and len(seqs[0]) >= min_len:  # one text at a time: nothing to pad
        return seqs[0][None]
    ndim = seqs[0].ndim
    shape = [len(seqs), max([min_len] + [len(x) for x in seqs])]
    shape += [max(x.shape[d] for x in seqs) for d in range(1, ndim)]
    out = np.full(shape, fill, dtype=seqs[0].dtype)
    for b, x in enumerate(seqs):
        out[(b,) + tuple(slice(0, n) for n in x.shape)] = x
    return out


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
        # lookup tables for :meth:`window`, so that a window costs a few array operations
        # instead of Python work per token and per character: characters by code point, and
        # bigrams by the pair of their words' ids where both words are in the vocabulary
        # (a table over the Basic Multilingual Plane, 512 KB; the rare characters above it
        # are looked up one by one)
        self._bmp = np.ones(0x10000, dtype=np.int64)
        for i, c in enumerate(self.chars):
            if len(c) == 1 and ord(c) < 0x10000:
                self._bmp[ord(c)] = i
        self._end_id = len(words)  # the word id of "</s>" after a text's last token
        pairs = []
        if words.lowercase:  # word ids are of lower-cased tokens, as bigram keys are
            for i, b in enumerate(self.bigrams[2:], start=2):
                a, _, c = b.partition("\t")
                ia = words.index.get(a)
                ic = self._end_id if c == "</s>" else words.index.get(c)
                if ia is not None and ic is not None and ia > 1 and ic > 1:
                    pairs.append((ia * (self._end_id + 1) + ic, i))
        pairs.sort()
        pairs.append((np.iinfo(np.int64).max, 1))  # above every key: a search never runs off
        self._pair = np.array([k for k, _ in pairs], dtype=np.int64)
        self._pair_id = np.array([i for _, i in pairs], dtype=np.int64)

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
        return [f"{a}\t{b}" for a, b in zip(toks, toks[1:] + ["</s>"], strict=False)]

    def encode(self, text: str) -> Encoding:
        return self.words.encode(text)

    def window(self, text: str, enc: Encoding | PackedEncoding, start: int, end: int) -> Window:
        """Tokens [start, end) of an encoded text: ids, bigrams (n,) and chars (n, W) int64,
        W the longest token's characters (at most MAX_CHARS, at least 1)."""
        n = end - start
        ids = np.asarray(enc.ids[start:end + 1], dtype=np.int64)  # and the token after
        off = np.asarray(enc.offsets[start:end], dtype=np.int64).reshape(-1, 2)
        if not n:
            return Window(features={"ids": ids[:0], "bigrams": ids[:0],
                                    "chars": np.zeros((0, 1), dtype=np.int64)},
                          spannable=np.zeros(0, dtype=bool), start=start, end=end, prefix=0)
        return Window(
            features={"ids": ids[:n], "bigrams": self._bigrams(text, enc, start, end, ids),
                      "chars": self._chars(text, off)},
            spannable=np.asarray(enc.spannable[start:end], dtype=bool),
            start=start, end=end, prefix=0)

    def _chars(self, text: str, off: np.ndarray) -> np.ndarray:
        """Character ids (n, W) of the tokens at character offsets ``off`` (n, 2)."""
        base = int(off[0, 0])
        seg = text[base:int(off[-1, 1])]
        # the window's characters as code points (UTF-16 units stay whole in the BMP)
        cp = np.frombuffer(seg.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        ids = self._bmp[np.minimum(cp, 0xFFFF)]
        if cp.max() > 0xFFFF:  # emoji and rare ideographs: one at a time
            for k in np.flatnonzero(cp > 0xFFFF).tolist():
                ids[k] = self.char_index.get(seg[k], 1)
        lengths = off[:, 1] - off[:, 0]
        if lengths.max() == 1:  # one character a token (most Chinese text)
            return ids[off[:, :1] - base]
        lengths = np.minimum(lengths, MAX_CHARS)
        width = int(lengths.max())
        col = np.arange(width)
        pos = np.minimum(off[:, :1] - base + col, len(ids) - 1)
        return np.where(col < lengths[:, None], ids[pos], 0)

    def _bigrams(self, text: str, enc: Encoding | PackedEncoding, start: int, end: int,
                 ids: np.ndarray) -> np.ndarray:
        """Bigram ids (n,) of tokens [start, end); ``ids`` holds their word ids and the next
        token's (the token after the window completes its last bigram)."""
        n = end - start
        after = np.append(ids[1:], self._end_id) if len(ids) == n else ids[1:]
        key = ids[:n] * (self._end_id + 1) + after
        at = np.searchsorted(self._pair, key)
        out = np.where(self._pair[at] == key, self._pair_id[at], 1)
        # a pair with an unknown word (or a case-sensitive vocabulary) has no id pair: its key
        # is built from the text, as the vocabulary was
        slow = np.flatnonzero((ids[:n] <= 1) | (after <= 1)) if self.words.lowercase else \
            np.arange(n)
        if len(slow):
            offs = enc.offsets[start:end + 1]
            low = [text[s:e].lower() for s, e in offs]
            keys = self._bigram_keys(low)
            for k in slow.tolist():
                out[k] = self.bigram_index.get(keys[k], 1)
        return out

    def collate(self, windows: Sequence[Window]) -> dict[str, np.ndarray]:
        """ids, bigrams (B, L); chars (B, L, W); lengths (B,) int64; attention_mask, mask (B, L)
        bool."""
        f = [w.features for w in windows]
        ids = pad_stack([x["ids"] for x in f], min_len=1)  # L >= 1: an empty text is one pad
        mask = pad_stack([w.spannable for w in windows], min_len=1)
        return {"ids": ids, "bigrams": pad_stack([x["bigrams"] for x in f], min_len=1),
                "chars": pad_stack([x["chars"] for x in f], min_len=1),
                "lengths": np.array([max(1, len(w)) for w in windows], dtype=np.int64),
                "attention_mask": (ids != 0) | mask, "mask": mask}

    def sizes(self) -> dict[str, int]:
        return {"words": len(self.words), "bigrams": len(self.bigrams), "chars": len(self.chars)}

    def save(self, directory: Path) -> None:
        self.words.save(directory)
        atomic_write_text(Path(directory) / "features.json", json.dumps(
            {"bigrams": self.bigrams, "chars": self.chars}, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path) -> "BuiltinFeaturizer":
        from gpner.textfiles import read_model_json

        data = read_model_json(Path(directory) / "features.json", ("bigrams", "chars"))
        return cls(CharWordTokenizer.load(directory), data["bigrams"], data["chars"])


class HFFeaturizer:
    """A Hugging Face fast tokenizer; each window gets the model's own special tokens.

    ``tokenizer`` is a ``transformers`` fast tokenizer, or (prediction without torch) a
    :class:`~gpner.text.tokenization.RawHFTokenizer` over ``tokenizer.json`` with the special
    token ids saved beside it.
    """

    kind = "hf"

    def __init__(self, tokenizer: Any, special: dict[str, Any] | None = None):
        if isinstance(tokenizer, RawHFTokenizer):
            self.adapter: Any = tokenizer
            special = special or {}
        else:
            self.adapter = HFTokenizer(tokenizer)
            special = special or special_tokens(tokenizer)
        self.tokenizer = tokenizer
        self.before, self.after = list(special["before"]), list(special["after"])
        self.prefix = len(self.before)
        self.num_special = len(self.before) + len(self.after)
        self.pad_id = int(special["pad_id"])

    def encode(self, text: str) -> Encoding:
        return self.adapter.encode(text)

    def window(self, text: str, enc: Encoding | PackedEncoding, start: int, end: int) -> Window:
        # list() also takes the array slices of a packed encoding
        ids = self.before + list(enc.ids[start:end]) + self.after
        spannable = [False] * self.prefix + list(enc.spannable[start:end]) + \
            [False] * len(self.after)
        return Window(features={"input_ids": np.array(ids, dtype=np.int64)},
                      spannable=np.array(spannable, dtype=bool), start=start,
                      end=end, prefix=self.prefix)

    def collate(self, windows: Sequence[Window]) -> dict[str, np.ndarray]:
        """input_ids, attention_mask (B, L) int64; mask (B, L) bool."""
        ids = pad_stack([w.features["input_ids"] for w in windows], fill=self.pad_id)
        att = pad_stack([np.ones(len(w), dtype=np.int64) for w in windows])
        return {"input_ids": ids, "attention_mask": att,
                "mask": pad_stack([w.spannable for w in windows])}

    def special(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "pad_id": self.pad_id}

    def save(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(str(directory))
        atomic_write_text(Path(directory) / SPECIAL_FILE, json.dumps(self.special()))

    @classmethod
    def load(cls, directory: Path, without_torch: bool = False,
             encoder_config: dict | None = None) -> "HFFeaturizer":
        """``without_torch``: read ``tokenizer.json`` with the ``tokenizers`` library alone
        (``transformers`` imports torch). ``encoder_config``: the encoder's config from the
        model's config.json."""
        directory = Path(directory)
        if without_torch:
            if not (directory / SPECIAL_FILE).is_file():
                raise FileNotFoundError(f"{directory / SPECIAL_FILE}: missing (model saved by "
                                        "an older gpner: run `gpner export` on it again)")
            from gpner.textfiles import read_model_json

            special = read_model_json(directory / SPECIAL_FILE)
            return cls(RawHFTokenizer.load(directory / "tokenizer.json"), special)
        from transformers import AutoConfig, AutoTokenizer

        from gpner.model.encoders import hf_config

        # the encoder's config, given so that AutoTokenizer does not read config.json: that is
        # gpner's, whose model_type and auto_map it would take for remote code to confirm
        kwargs: dict[str, Any] = {}
        if encoder_config:
            kwargs["config"] = hf_config(encoder_config)
        elif (directory / "encoder" / "config.json").is_file():  # older model directories
            kwargs["config"] = AutoConfig.from_pretrained(str(directory / "encoder"))
        return cls(AutoTokenizer.from_pretrained(str(directory), use_fast=True, **kwargs))


SPECIAL_FILE = "special_tokens.json"  # the ids a window starts and ends with, and the pad id


def special_tokens(tokenizer: Any) -> dict[str, Any]:
    """The model's special tokens around one text ([CLS] x [SEP], <s> x </s>, x <sep> <cls>):
    found by encoding a probe with and without them (works for every fast tokenizer)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    at = next((k for k in range(len(full) - len(plain) + 1)
               if full[k:k + len(plain)] == plain), None)
    if at is None:
        raise ValueError(f"cannot locate the text among {type(tokenizer).__name__}'s "
                         "special tokens")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return {"before": full[:at], "after": full[at + len(plain):], "pad_id": pad}


def load_featurizer(kind: str, directory: Path, without_torch: bool = False,
                    encoder_config: dict | None = None) -> BuiltinFeaturizer | HFFeaturizer:
    """The featurizer saved in a model directory (``kind`` from its config: builtin or hf;
    ``encoder_config`` from its config too)."""
    if kind == "builtin":
        return BuiltinFeaturizer.load(directory)
    return HFFeaturizer.load(directory, without_torch, encoder_config)
