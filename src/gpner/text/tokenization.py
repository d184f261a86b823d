"""Tokenizers behind one interface: ``encode(text) -> Encoding`` with exact character offsets.

* :class:`CharWordTokenizer` is ours, for the built-in encoder: every CJK character is a token,
  runs of letters and runs of digits are word tokens, any other visible character is a token of
  its own; combining marks and zero-width joiners stay with the character they modify.
* :class:`HFTokenizer` wraps any Hugging Face *fast* tokenizer (WordPiece, byte-level BPE,
  SentencePiece) and normalises its offsets: whitespace that a tokenizer folds into a token
  (``"Ġword"``, ``"▁word"``) is trimmed off, so a token's offsets cover exactly its visible text.

Both encode the text's own tokens only: the model's special tokens (``[CLS]``, ``</s>``) belong to
each window and are added by the featurizer (:mod:`gpner.text.features`) when it cuts one.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

Offsets = list[tuple[int, int]]


def is_cjk(ch: str) -> bool:
    """CJK ideographs, kana, hangul and CJK/full-width punctuation: one token per character."""
    cp = ord(ch)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2FA1F
            or 0xF900 <= cp <= 0xFAFF or 0x3000 <= cp <= 0x30FF or 0xAC00 <= cp <= 0xD7AF
            or 0xFF00 <= cp <= 0xFFEF)


def _is_word_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in "LN" and not is_cjk(ch)


def _joins_previous(ch: str) -> bool:
    # combining marks (accents, variation selectors), format chars (ZWJ), emoji skin tones
    cat = unicodedata.category(ch)
    return cat[0] == "M" or cat == "Cf" or 0x1F3FB <= ord(ch) <= 0x1F3FF


# ASCII and the common CJK blocks hold no combining mark or joiner (U+302A-302F and U+3099-309A,
# the kana and tone marks, are left out), so within them the rules below come down to one
# regular expression; it splits such texts, most of what users run, several times faster than
# the loop. So do the punctuation and symbols Chinese text mixes in (the middle dot of names,
# curly quotes, dashes, ellipses, arrows, box drawing and shapes: no letter, digit, mark, joiner
# or space among them). tests/test_alignment.py checks it against the loop on every one of
# these characters.
_SIMPLE_TEXT = re.compile(
    "[\x00-\x7f\u00b7\u2010-\u2027\u2030-\u205e\u2190-\u21ff\u2500-\u26ff"
    "\u3000-\u3029\u3030-\u3098\u309b-\u30ff\u4e00-\u9fff\uff00-\uffef]*")
_SIMPLE_TOKEN = re.compile(r"[A-Za-z]+|[0-9]+|\S")
_SPACE = re.compile(r"\s")


def pre_tokenize(text: str) -> Offsets:
    """Split ``text`` into token character spans ``[(start, end), ...]``; whitespace is dropped."""
    return _split(text)[0]


def _split(text: str) -> tuple[Offsets, bool]:
    """:func:`pre_tokenize`, and whether the text took the fast path (every character in the
    blocks of ``_SIMPLE_TEXT``)."""
    if _SIMPLE_TEXT.fullmatch(text):
        return [m.span() for m in _SIMPLE_TOKEN.finditer(text)], True
    return pre_tokenize_general(text), False


def pre_tokenize_general(text: str) -> Offsets:
    """:func:`pre_tokenize` for any text, one character at a time."""
    spans: Offsets = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        j = i + 1
        if _is_word_char(ch):
            # letters and digits form separate tokens: "CPL2011" -> "CPL", "2011", since
            # annotations (Chinese corpora above all) often cut exactly there
            kind = unicodedata.category(ch)[0]
            while j < n and ((_is_word_char(text[j]) and unicodedata.category(text[j])[0] == kind)
                             or _joins_previous(text[j])):
                j += 1
        while j < n and (_joins_previous(text[j]) or text[j - 1] == "\u200d") \
                and not text[j].isspace():
            j += 1
        if spans and spans[-1][1] == i and _joins_previous(ch):
            spans[-1] = (spans[-1][0], j)  # a mark at a token start belongs to the token before
        else:
            spans.append((i, j))
        i = j
    return spans


@dataclass
class Encoding:
    """One encoded text. All lists have length L, the number of the text's tokens.

    ``offsets[t]`` is the character span of token t in the original text; ``spannable[t]`` is
    False for whitespace-only tokens (offsets ``(0, 0)``), which can never be an entity boundary
    and are masked out of every score.
    """

    ids: list[int]
    offsets: Offsets
    spannable: list[bool]

    def __len__(self) -> int:
        return len(self.ids)

    def packed(self) -> "PackedEncoding":
        """The same encoding in arrays: about 12 bytes a token instead of about 120 as Python
        lists of ints and tuples, for a long text held while its windows are predicted."""
        import numpy as np

        pairs = np.array(self.offsets, dtype=np.int32).reshape(-1, 2)
        return PackedEncoding(np.array(self.ids, dtype=np.int32),
                              PackedOffsets(pairs[:, 0].copy(), pairs[:, 1].copy()),
                              np.array(self.spannable, dtype=bool))


class PackedOffsets:
    """Token offsets as two int32 arrays that read like a list of ``(start, end)`` tuples:
    an index gives a tuple of ints, a slice a list of them."""

    def __init__(self, starts: Any, ends: Any):  # (L,) int32 arrays each
        self.starts, self.ends = starts, ends

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return list(zip(self.starts[key].tolist(), self.ends[key].tolist(), strict=True))
        return int(self.starts[key]), int(self.ends[key])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for k in range(0, len(self.starts), 4096):  # a slice at a time: no list of them all
            yield from self[k:k + 4096]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Iterable):
            return NotImplemented
        return list(self) == list(other)


@dataclass(eq=False)  # arrays have no single truth value to compare by
class PackedEncoding:
    """An :class:`Encoding` in arrays (``Encoding.packed``): ``ids`` (L,) int32, ``offsets``
    (:class:`PackedOffsets`), ``spannable`` (L,) bool. Slices of ``ids`` and ``spannable`` are
    arrays, not lists."""

    ids: Any
    offsets: PackedOffsets
    spannable: Any

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        """Bytes held by its arrays."""
        return (self.ids.nbytes + self.offsets.starts.nbytes + self.offsets.ends.nbytes
                + self.spannable.nbytes)


def trim_offsets(text: str, offsets: Sequence[tuple[int, int]]) -> tuple[Offsets, list[bool]]:
    """Trim whitespace off each token's span; tokens left empty become unspannable ``(0, 0)``.

    A token's end also grows over combining marks and joiners right after it: normalisers that
    strip accents (BERT uncased) or compose them (NFKC) leave those characters in no token, and a
    predicted "Cafe\u0301" must not come back as "Cafe".
    """
    simple = _SIMPLE_TEXT.fullmatch(text) is not None  # no mark or joiner to grow over
    if simple and not _SPACE.search(text):  # nothing to trim either (most Chinese sentences)
        spannable = [e > s for s, e in offsets]
        kept = [(s, e) if ok else (0, 0) for (s, e), ok in zip(offsets, spannable, strict=True)]
        return kept, spannable
    out: Offsets = []
    spannable = []
    for s, e in offsets:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        while not simple and s < e < len(text) and (_joins_previous(text[e])
                                                     or text[e - 1] == "\u200d"):
            e += 1
        ok = e > s
        out.append((s, e) if ok else (0, 0))
        spannable.append(ok)
    return out, spannable


class CharWordTokenizer:
    """Vocabulary tokenizer over :func:`pre_tokenize`: ``[PAD]`` = 0, ``[UNK]`` = 1.

    Words are lower-cased for lookup (case survives in the character features of the built-in
    encoder); CJK characters are their own entries.
    """

    PAD, UNK = "[PAD]", "[UNK]"

    def __init__(self, vocab: Sequence[str], lowercase: bool = True):
        if list(vocab[:2]) != [self.PAD, self.UNK]:
            raise ValueError("vocab must start with [PAD], [UNK]")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.lowercase = lowercase

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 1, max_size: int | None = None,
              lowercase: bool = True) -> "CharWordTokenizer":
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(cls._norm(text[s:e], lowercase) for s, e in pre_tokenize(text))
        words = [w for w, c in counts.most_common(max_size) if c >= min_freq]
        return cls([cls.PAD, cls.UNK, *sorted(words)], lowercase)

    @staticmethod
    def _norm(token: str, lowercase: bool) -> str:
        return token.lower() if lowercase else token

    def encode(self, text: str) -> Encoding:
        offsets, simple = _split(text)
        get = self.index.get
        if not self.lowercase:
            ids = [get(text[s:e], 1) for s, e in offsets]
        elif simple:
            # lower-cased once: within these blocks lower() keeps every length and has no
            # context rule (Greek's final sigma), so a slice of it is the token lower-cased
            low = text.lower()
            ids = [get(low[s:e], 1) for s, e in offsets]
        else:
            ids = [get(text[s:e].lower(), 1) for s, e in offsets]
        return Encoding(ids, offsets, [True] * len(ids))

    def __len__(self) -> int:
        return len(self.vocab)

    def save(self, directory: Path) -> None:
        from gpner.atomic import atomic_write_text

        atomic_write_text(Path(directory) / "vocab.json", json.dumps(
            {"type": "char-word", "lowercase": self.lowercase, "vocab": self.vocab},
            ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path) -> "CharWordTokenizer":
        from gpner.textfiles import read_model_json

        data = read_model_json(Path(directory) / "vocab.json", ("vocab", "lowercase"))
        return cls(data["vocab"], data["lowercase"])


class HFTokenizer:
    """Adapter for a Hugging Face fast tokenizer (``PreTrainedTokenizerFast``)."""

    def __init__(self, tokenizer):
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(f"{type(tokenizer).__name__} is not a fast tokenizer: character "
                            "offsets need one (load it with use_fast=True)")
        self.tokenizer = tokenizer
        # its Rust tokenizer, copied: calling it directly costs a fraction of transformers'
        # per-call overhead and gives the same ids and offsets (the copy keeps the original's
        # truncation and padding settings out of the way)
        from tokenizers import Tokenizer

        self.raw = RawHFTokenizer(Tokenizer.from_str(tokenizer.backend_tokenizer.to_str()))

    def encode(self, text: str) -> Encoding:
        """The text's tokens, no special tokens, never truncated (windows cut long texts)."""
        return self.raw.encode(text)

    def __len__(self) -> int:
        return len(self.tokenizer)


class RawHFTokenizer:
    """A ``tokenizer.json`` read with the ``tokenizers`` library alone: the same ids and offsets
    as the ``transformers`` fast tokenizer saved from it, without importing torch."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        tokenizer.no_truncation()  # windows cut long texts; nothing is ever truncated
        tokenizer.no_padding()

    @classmethod
    def load(cls, path: Path) -> "RawHFTokenizer":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)))

    def encode(self, text: str) -> Encoding:
        enc = self.tokenizer.encode(text, add_special_tokens=False)
        offsets, spannable = trim_offsets(text, enc.offsets)
        return Encoding(list(enc.ids), offsets, spannable)

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()
