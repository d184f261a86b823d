"""The built-in featurizer's windows against a plain loop over tokens and characters: the
vectorised lookups (characters by code point, bigrams by word-id pairs, with the text's own
keys where a word is unknown) must give the very ids the loop gives."""

from __future__ import annotations

import numpy as np
import pytest

from gpner.text.features import MAX_CHARS, BuiltinFeaturizer
from gpner.text.tokenization import CharWordTokenizer
from gpner.text.windows import window_bounds

TRAIN = ["EU rejects German call to boycott British lamb .",
         "Peter Blackburn of BRUSSELS said on Thursday it disagreed .",
         "对儿童SARST细胞亚群的研究表明，与成人SARS相比，儿童细胞下降不明显。",
         "浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。",
         "Café au lait 👍🏽 costs 3.50 euros in Zürich , a supercalifragilisticexpialidocious price"]
TEXTS = TRAIN + [
    "german LAMB rejects the EU",  # known words in another case: the same ids
    "Unseen words: Qwertyuiop zxcv and 银行 in 2026-12-07 ; EU lamb",  # unknown words
    "x" * 40 + " " + "y",  # a token longer than MAX_CHARS
    "成人 SARS 相比", "a", "",
    "emoji 👨‍👩‍👧 family e\u0301 accents",
    "lone \ud83d surrogate and \t tabs\u00a0nbsp",
]


def naive_window(f: BuiltinFeaturizer, text: str, enc, start: int, end: int) -> dict:
    """The loop the vectorised window replaces: per token, its lower-cased bigram key and the
    ids of its first MAX_CHARS characters."""
    toks = [text[s:e] for s, e in list(enc.offsets)[start:end + 1]]
    low = [t.lower() for t in toks] + ["</s>"]
    keys = [f"{a}\t{b}" for a, b in zip(low, low[1:], strict=False)][: end - start]
    chars = [[f.char_index.get(c, 1) for c in t[:MAX_CHARS]] for t in toks[: end - start]]
    width = max([1] + [len(c) for c in chars])
    return {"ids": list(enc.ids[start:end]),
            "bigrams": [f.bigram_index.get(k, 1) for k in keys],
            "chars": [c + [0] * (width - len(c)) for c in chars]}


@pytest.mark.parametrize("lowercase", [True, False])
@pytest.mark.parametrize("packed", [False, True])
def test_windows_equal_the_loop_over_tokens(lowercase, packed):
    f = BuiltinFeaturizer.build(TRAIN, min_bigram_freq=1)
    if not lowercase:  # a case-sensitive vocabulary: every bigram key comes from the text
        f = BuiltinFeaturizer(CharWordTokenizer.build(TRAIN, lowercase=False), f.bigrams,
                              f.chars)
    checked = known = 0
    for text in TEXTS:
        enc = f.encode(text)
        enc = enc.packed() if packed else enc
        # whole texts, and windows of 3 tokens with stride 2 (cut mid-text: the token after
        # a window completes its last bigram)
        for start, end in [(0, len(enc))] + window_bounds(len(enc), 3, 2):
            win = f.window(text, enc, start, end)
            want = naive_window(f, text, enc, start, end)
            got = {k: win.features[k].tolist() for k in want}
            if not want["chars"]:
                got["chars"], want["chars"] = win.features["chars"].shape, (0, 1)
            assert got == want, (text, start, end)
            assert all(v.dtype == np.int64 for v in win.features.values())
            assert win.spannable.tolist() == list(enc.spannable[start:end])
            checked += 1
            known += sum(b > 1 for b in want["bigrams"])
    assert checked > 40 and known > 30  # the fast path was exercised, not only the fallback


def test_a_word_outside_a_capped_vocabulary_still_finds_its_bigram():
    """A vocabulary capped below the bigrams' words: those words are UNK (id 1), and their
    bigram is found from the text, as the vocabulary was built."""
    f = BuiltinFeaturizer.build(TRAIN, min_bigram_freq=1)
    capped = CharWordTokenizer(f.words.vocab[:2] + [w for w in f.words.vocab[2:]
                                                    if w != "lamb"])
    g = BuiltinFeaturizer(capped, f.bigrams, f.chars)
    text = "British lamb ."
    enc = g.encode(text)
    assert enc.ids[1] == 1  # "lamb" unknown
    got = g.window(text, enc, 0, len(enc)).features["bigrams"].tolist()
    assert got == [f.bigram_index["british\tlamb"], f.bigram_index["lamb\t."],
                   f.bigram_index[".\t</s>"]]
