"""Character <-> token alignment for our tokenizer and three Hugging Face fast tokenizer families,
on text with whitespace runs, full-width characters, emoji and combining marks."""

from __future__ import annotations

import os
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpner.records import Report
from gpner.text.alignment import Alignment, align_entities
from gpner.text.tokenization import (
    _SIMPLE_TEXT,
    CharWordTokenizer,
    HFTokenizer,
    pre_tokenize,
    pre_tokenize_general,
)

PIECES = ["New", "York", "city", "Berlin", "er", "2019", " ", "  ", "\t", "\n", " \u3000 ",
          "北京", "中国", "的", "ＡＢＣ", "１２３", "👍🏽", "👨\u200d👩\u200d👧", "e\u0301", "naïve",
          "Cafe\u0301", ",", ".", "。", "(", "-", "x"]
texts = st.lists(st.sampled_from(PIECES), min_size=1, max_size=14).map("".join)
# GPNER_HYPOTHESIS_EXAMPLES=1500 for a deep run (about 15 s); the default keeps CI quick
EXAMPLES = int(os.environ.get("GPNER_HYPOTHESIS_EXAMPLES", "60"))
FAMILIES = ["ours", "wordpiece", "bytelevel-bpe", "sentencepiece"]


@pytest.fixture(scope="module")
def tokenizers(hf_tokenizers):
    """The featurizers training and prediction encode with (one encode path per family)."""
    from gpner.text.features import BuiltinFeaturizer, HFFeaturizer

    ours = BuiltinFeaturizer.build(["New York city Berlin 北京 中国"])
    return {"ours": ours, **{k: HFFeaturizer(v) for k, v in hf_tokenizers.items()}}


def check_offsets(text, enc):
    for (s, e), ok in zip(enc.offsets, enc.spannable, strict=True):
        if ok:
            assert 0 <= s < e <= len(text)
            piece = text[s:e]
            assert piece == piece.strip() and piece  # no whitespace at the ends


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, data=st.data())
def test_token_spans_round_trip_exactly(tokenizers, family, text, data):
    enc = tokenizers[family].encode(text)
    check_offsets(text, enc)
    al = Alignment(enc)
    toks = [t for t, ok in enumerate(enc.spannable) if ok]
    if not toks:
        return
    i = data.draw(st.sampled_from(toks))
    j = data.draw(st.sampled_from([t for t in toks if t >= i]))
    start, end = al.token_to_char(i, j + 1)  # tokens i..j
    assert 0 <= start < end <= len(text)
    back = al.char_to_token(start, end)  # a span from token boundaries always aligns
    assert back is not None and al.token_to_char(*back) == (start, end)


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, data=st.data())
def test_any_char_span_is_aligned_exactly_or_reported(tokenizers, family, text, data):
    """Every gold span either maps to tokens covering exactly its characters, or is counted."""
    a = data.draw(st.integers(0, len(text) - 1))
    b = data.draw(st.integers(a + 1, len(text)))
    enc = tokenizers[family].encode(text)
    report = Report("t")
    ents = [{"start": a, "end": b, "label": "X"}]
    got = align_entities(text, ents, enc, report)
    assert len(got) + report.total_skipped == 1
    if got:
        assert Alignment(enc).token_to_char(got[0].start, got[0].end) == (a, b)
    expanded = align_entities(text, ents, enc, Report("t"), misaligned="expand")
    for i, j, _, _ in expanded:  # expansion covers the span (modulo surrounding whitespace)
        s, e = Alignment(enc).token_to_char(i, j)
        assert s <= a + (len(text[a:b]) - len(text[a:b].lstrip()))
        assert e >= b - (len(text[a:b]) - len(text[a:b].rstrip()))


@settings(max_examples=2 * EXAMPLES, deadline=None)
@given(text=texts)
def test_our_tokenizer_aligns_every_word_boundary_span(text):
    enc = CharWordTokenizer.build([text]).encode(text)
    pieces = pre_tokenize(text)
    assert enc.offsets == pieces
    assert all(text[s:e].strip() == text[s:e] for s, e in pieces)
    # every non-space character belongs to exactly one token
    covered = sorted(k for s, e in pieces for k in range(s, e))
    assert covered == [k for k, ch in enumerate(text) if not ch.isspace()]
    # no token is all "1" UNK after building from the same text
    assert all(i > 1 for i in enc.ids)


# every character the fast path (one regular expression) takes, each block's edges, and
# characters just outside it (marks, joiners, other scripts) that must go the general way
SIMPLE_RANGES = [(0, 0x80), (0xB7, 0xB8), (0x2010, 0x2028), (0x2030, 0x205F), (0x2190, 0x2200),
                 (0x2500, 0x2700), (0x3000, 0x3100), (0x4E00, 0xA000), (0xFF00, 0xFFF0)]
EDGE = "a1 中\u0301\u200d\u3099\u302a\u00e9\u0435\u0663\u2028\u205f\u2460\u2160\u00ad"


def test_fast_split_equals_the_general_loop_on_every_character():
    chars = [chr(c) for a, b in SIMPLE_RANGES for c in range(a, b)]
    taken = [c for c in chars if _SIMPLE_TEXT.fullmatch(c)]
    # only the kana and tone marks are left to the loop
    assert sorted(set(chars) - set(taken)) == [chr(c) for c in
                                               [*range(0x302A, 0x3030), 0x3099, 0x309A]]
    for c in chars:
        for text in (c, f"a{c}b", f"1{c}2", c + c, f" {c}\t", f"中{c}文", f"x{c}{EDGE}"):
            assert pre_tokenize(text) == pre_tokenize_general(text), repr(text)


def test_word_ids_equal_each_token_lower_cased_alone():
    """encode lower-cases a simple text once and slices it: the same ids as lower-casing each
    token, on every character of the fast path and on texts where lower() has context (Greek
    final sigma) or changes a length (dotted capital I)."""
    chars = "".join(chr(c) for a, b in SIMPLE_RANGES for c in range(a, b))
    texts = [chars[k:k + 50] for k in range(0, len(chars), 50)]
    texts += ["ΟΔΟΣ.ΑΒ ΑΣ", "İstanbul İİ x", "ＡＢＣ Ａbc ÀÉ", "Mixed CASE 北京 WORDS"]
    vocab = sorted({text[s:e].lower() for text in texts for s, e in pre_tokenize(text)})
    tok = CharWordTokenizer(["[PAD]", "[UNK]", *vocab[::2]])  # half known, half unknown
    for text in texts:
        want = [tok.index.get(text[s:e].lower(), 1) for s, e in pre_tokenize(text)]
        assert tok.encode(text).ids == want, repr(text)
    assert sum(i == 1 for t in texts for i in tok.encode(t).ids) > 10


@settings(max_examples=2 * EXAMPLES, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(
    list("abcXYZ0189 \t\n\u3000中文，。ＡＢ１２_-.\x1c\x00") + list(EDGE)), max_size=40))
def test_fast_split_equals_the_general_loop_on_mixed_text(text):
    assert pre_tokenize(text) == pre_tokenize_general(text)


def _trim_by_hand(text, offsets):
    """trim_offsets' rule, one character at a time, with no shortcut."""
    out, ok = [], []
    for s, e in offsets:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        while s < e < len(text) and (unicodedata.category(text[e])[0] == "M"
                                     or unicodedata.category(text[e]) == "Cf"
                                     or 0x1F3FB <= ord(text[e]) <= 0x1F3FF
                                     or text[e - 1] == "\u200d"):
            e += 1
        out.append((s, e) if e > s else (0, 0))
        ok.append(e > s)
    return out, ok


@settings(max_examples=4 * EXAMPLES, deadline=None)
@given(data=st.data(), text=st.one_of(texts, st.text(alphabet=st.sampled_from(
    list("ab1 中文，\u3000\t") + list(EDGE)), max_size=30)))
def test_trimmed_offsets_match_the_rule_with_and_without_shortcuts(data, text):
    from gpner.text.tokenization import trim_offsets

    n = len(text)
    pairs = data.draw(st.lists(st.tuples(st.integers(0, n), st.integers(0, n)), max_size=12))
    offsets = [(min(a, b), max(a, b)) for a, b in pairs]
    assert trim_offsets(text, offsets) == _trim_by_hand(text, offsets)


def test_marks_and_emoji_stay_whole():
    text = "Cafe\u0301 👨\u200d👩\u200d👧 👍🏽 北京"
    assert [text[s:e] for s, e in pre_tokenize(text)] == [
        "Cafe\u0301", "👨\u200d👩\u200d👧", "👍🏽", "北", "京"]


def test_inside_token_boundary_is_counted_with_context(hf_tokenizers):
    text = "Berliner visited Berlin"
    enc = HFTokenizer(hf_tokenizers["wordpiece"]).encode(text)
    report = Report("train.jsonl")
    ents = [{"start": 0, "end": 6, "label": "LOC"}, {"start": 17, "end": 23, "label": "LOC"}]
    got = align_entities(text, ents, enc, report, line=4)
    # tokens: [UNK] (the whole of "Berliner": the test vocab has no ##er), visited, berlin
    assert [s[:3] for s in got] == [(2, 3, "LOC")]
    assert Alignment(enc).token_to_char(got[0].start, got[0].end) == (17, 23)
    assert report.skipped == {"boundary inside a token": 1}
    assert report.messages[0].startswith("train.jsonl:4: boundary inside a token: LOC [0, 6) "
                                         "'Berlin'")
    expanded = align_entities(text, ents, enc, Report("x"), misaligned="expand")
    assert [s[:3] for s in expanded] == [(0, 1, "LOC"), (2, 3, "LOC")]  # "Berliner" whole


def test_wordpiece_ids_are_real(hf_tokenizers):
    """transformers 5.x silently ignores BertTokenizerFast(vocab_file=...): every id is [UNK]."""
    from gpner.text.features import HFFeaturizer

    tok = hf_tokenizers["wordpiece"]
    feat = HFFeaturizer(tok)
    text = "new york 北京"
    enc = feat.encode(text)
    unk = tok.convert_tokens_to_ids("[UNK]")
    assert enc.offsets == [(0, 3), (4, 8), (9, 10), (10, 11)] and unk not in enc.ids
    win = feat.window(text, enc, 0, len(enc))  # the window adds [CLS] ... [SEP], unspannable
    assert tok.convert_ids_to_tokens(win.features["input_ids"].tolist()) == [
        "[CLS]", "new", "york", "北", "京", "[SEP]"]
    assert win.spannable.tolist() == [False, True, True, True, True, False]


def test_slow_tokenizer_rejected():
    class Slow:
        is_fast = False

    with pytest.raises(TypeError, match="fast tokenizer"):
        HFTokenizer(Slow())


def test_char_word_tokenizer_save_load(tmp_path):
    tok = CharWordTokenizer.build(["Hello world 北京", "hello again"], min_freq=1)
    tok.save(tmp_path)
    again = CharWordTokenizer.load(tmp_path)
    assert again.vocab == tok.vocab
    assert again.encode("HELLO 京 unseen").ids == [tok.index["hello"], tok.index["京"], 1]


@pytest.mark.parametrize("family", ["wordpiece", "bytelevel-bpe", "sentencepiece"])
def test_the_rust_tokenizer_gives_transformers_ids_and_offsets(hf_tokenizers, family):
    """gpner encodes through a copy of the Rust tokenizer (far less overhead per text): the
    same ids and offsets as calling the transformers tokenizer, long texts untruncated."""
    from conftest import CORPUS

    from gpner.text.tokenization import HFTokenizer, trim_offsets

    tok = hf_tokenizers[family]
    ours = HFTokenizer(tok)
    for text in list(dict.fromkeys(CORPUS)) + [" ".join(CORPUS)]:
        ref = tok(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                  verbose=False)
        enc = ours.encode(text)
        assert enc.ids == list(ref["input_ids"])
        assert (enc.offsets, enc.spannable) == trim_offsets(text, ref["offset_mapping"])


def test_trimmed_offsets_worked_example():
    """Offsets as a tokenizer may give them, trimmed by hand: spaces off both ends; a token
    of only spaces becomes (0, 0), unspannable; a combining accent and a zero-width joiner's
    next character, which a normaliser left in no token, join the token before them."""
    from gpner.text.tokenization import trim_offsets

    text = " ab  Cafe\u0301 x\u200dy"  # 0 ' ', 1-2 ab, 3-4 '  ', 5-9 Cafe + U+0301, 10 ' ', 11-13
    offsets = [(0, 3), (3, 5), (4, 9), (10, 12)]
    assert trim_offsets(text, offsets) == ([(1, 3), (0, 0), (5, 10), (11, 14)],
                                           [True, False, True, True])
    # a text with no space, mark or joiner is left as it is (the shortcut)
    assert trim_offsets("北京大学", [(0, 2), (2, 4), (4, 4)]) == ([(0, 2), (2, 4), (0, 0)],
                                                               [True, True, False])


def test_packed_offsets_read_like_the_list():
    # "Ab 12" -> tokens at (0, 2) and (3, 5): the packed arrays give the same tuples back
    enc = CharWordTokenizer.build(["Ab 12"]).encode("Ab 12")
    packed = enc.packed().offsets
    assert list(packed) == enc.offsets == [(0, 2), (3, 5)]
    assert packed[1] == (3, 5) and packed[0:1] == [(0, 2)]
    assert packed == [(0, 2), (3, 5)] and packed != [(0, 2)]
    assert packed != 7  # not iterable: unequal, not a TypeError
