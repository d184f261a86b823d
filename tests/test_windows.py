"""Windows (text/windows.py) and documents of any length: the window bounds, the edge rule and
its scan, packed encodings; a generated 100,000-character document (Chinese and English) with
entities planted throughout, hundreds of them across window edges, is recovered exactly by a model
trained on the generator's short texts; and the stride decides which spans a window holds whole."""

from __future__ import annotations

import pytest
from helpers import tiny_config

from gpner.data.demo import generate
from gpner.prediction.loading import load
from gpner.text.windows import window_bounds
from gpner.training.trainer import train

WINDOW = 48  # tokens: a 100,000-character document needs thousands of windows


def document(n_chars: int, seed: int) -> dict:
    """Generated sentences (seen names only) joined by spaces until ``n_chars`` characters."""
    text, entities = "", []
    for rec in generate(4 * n_chars // 20, seed):
        if len(text) >= n_chars:
            break
        shift = len(text) + (1 if text else 0)
        text += (" " if text else "") + rec["text"]
        entities += [{**e, "start": e["start"] + shift, "end": e["end"] + shift}
                     for e in rec["entities"]]
    return {"text": text, "entities": entities}


def short_texts(n: int) -> list[dict]:
    """Texts of one to three generated sentences: a sentence boundary inside a text is
    something the model must have seen before it meets thousands of them in one document."""
    sents, out = generate(2 * n, seed=1), []
    while sents and len(out) < n:
        group, sents = sents[:1 + len(out) % 3], sents[1 + len(out) % 3:]
        text, entities = "", []
        for rec in group:
            shift = len(text) + (1 if text else 0)
            text += (" " if text else "") + rec["text"]
            entities += [{**e, "start": e["start"] + shift, "end": e["end"] + shift}
                         for e in rec["entities"]]
        out.append({"text": text, "entities": entities})
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    run = tmp_path_factory.mktemp("long") / "run"
    cfg = tiny_config(epochs=12, max_length=WINDOW, word_dim=32, lstm_hidden=48, seed=3)
    train(short_texts(300), None, run, cfg, progress=False)
    return load(run)


def test_window_bounds_follow_the_stride():
    assert window_bounds(10, 4, 3) == [(0, 4), (3, 7), (6, 10)]
    assert window_bounds(10, 4) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert window_bounds(3, 4, 1) == [(0, 3)]
    with pytest.raises(ValueError, match="stride"):
        window_bounds(10, 4, 5)  # a gap between windows would lose text


def test_a_100k_character_document_is_recovered_exactly(model):
    doc = document(100_000, seed=11)
    assert len(doc["text"]) >= 100_000 and len(doc["entities"]) > 5000
    assert any("\u4e00" <= ch <= "\u9fff" for ch in doc["text"]) and "London" in doc["text"]
    enc = model.featurizer.encode(doc["text"])
    bounds = window_bounds(len(enc), WINDOW, WINDOW // 2)
    starts = {e: t for t, (e, _) in enumerate(enc.offsets)}
    ends = {e: t + 1 for t, (_, e) in enumerate(enc.offsets)}
    crossing = 0  # entities cut by the edge of a window that overlaps them
    for e in doc["entities"]:
        i, j = starts[e["start"]], ends[e["end"]]
        crossing += any(s < j and i < end and not (s <= i and j <= end) for s, end in bounds)
    assert crossing > 300
    got = model.predict(doc["text"], batch_size=64)
    key = sorted((e["start"], e["end"], e["label"]) for e in doc["entities"])
    assert sorted((e["start"], e["end"], e["label"]) for e in got["entities"]) == key
    assert all(doc["text"][e["start"]:e["end"]] == e["text"] for e in got["entities"])


def test_strides_that_leave_no_overlap_lose_entities(model):
    """The exact recovery above depends on the overlap: windows that merely touch (stride =
    window) hold no entity that crosses an edge whole, and those entities are lost."""
    doc = document(20_000, seed=12)
    key = {(e["start"], e["end"], e["label"]) for e in doc["entities"]}
    assert {(e["start"], e["end"], e["label"])
            for e in model.predict(doc["text"])["entities"]} == key
    cut = {(e["start"], e["end"], e["label"])
           for e in model.predict(doc["text"], stride=WINDOW - 2)["entities"]}
    assert cut != key and len(key - cut) > 10


def test_a_span_at_an_inner_edge_is_left_to_the_window_that_holds_it_whole():
    from gpner.text.alignment import TokenSpan
    from gpner.text.windows import Window, uncut

    bounds = window_bounds(40, 16)  # (0, 16), (8, 24), (16, 32), (24, 40)
    win = Window({}, None, 8, 24, 0)
    spans = [TokenSpan(8, 10, 0, 1.0),  # at the left edge; (0, 16) holds it with context
             TokenSpan(20, 24, 0, 1.0),  # at the right edge; (16, 32) holds it
             TokenSpan(12, 14, 0, 1.0),  # inside: kept
             TokenSpan(8, 24, 1, 1.0)]  # both edges, wider than any overlap: kept, best effort
    assert uncut(spans, win, bounds, 40) == spans[2:]
    first = Window({}, None, 0, 16, 0)
    assert uncut([TokenSpan(0, 3, 0, 1.0)], first, bounds, 40) == [TokenSpan(0, 3, 0, 1.0)]
    last = Window({}, None, 24, 40, 0)  # the text's own end is no cut
    assert uncut([TokenSpan(36, 40, 0, 1.0)], last, bounds, 40) == [TokenSpan(36, 40, 0, 1.0)]


def test_the_edge_rule_scan_matches_a_check_of_every_window():
    """The bisect scan against the naive rule, over many window layouts and spans."""
    import random

    from gpner.text.windows import Window, held_elsewhere

    rng = random.Random(0)
    for _ in range(300):
        n, size = rng.randint(2, 80), rng.randint(2, 20)
        bounds = window_bounds(n, size, rng.randint(1, size))
        s0, e0 = rng.choice(bounds)
        win = Window({}, None, s0, e0, 0)
        i = rng.randint(s0, e0 - 1)
        j = rng.randint(i + 1, e0)
        naive = any((s, e) != (s0, e0) and (s < i or s == 0) and (j < e or e == n)
                    for s, e in bounds)
        assert held_elsewhere(i, j, win, bounds, n) == naive, (n, size, bounds, s0, i, j)


@pytest.mark.parametrize("family", ["ours", "wordpiece", "bytelevel-bpe", "sentencepiece"])
def test_a_packed_encoding_reads_and_cuts_like_the_lists(family, hf_tokenizers):
    """A long text's encoding is held packed (arrays) while its windows are predicted: every
    read the featurizers and the decoder make gives what the lists give."""
    import numpy as np

    from gpner.text.features import BuiltinFeaturizer, HFFeaturizer

    text = document(3_000, seed=5)["text"] + " naïve  Cafe\u0301 \u3000 ok"
    feat = (BuiltinFeaturizer.build([text[:1500]]) if family == "ours"
            else HFFeaturizer(hf_tokenizers[family]))
    enc = feat.encode(text)
    packed = enc.packed()
    assert len(packed) == len(enc) > 500
    assert packed.nbytes == 13 * len(enc)  # int32 id, start and end, one bool a token
    assert packed.ids.tolist() == list(enc.ids) and packed.spannable.tolist() == enc.spannable
    assert packed.offsets == enc.offsets and list(packed.offsets) == enc.offsets
    assert packed.offsets[7] == enc.offsets[7] and type(packed.offsets[7][0]) is int
    assert packed.offsets[100:140] == enc.offsets[100:140]
    for start, end in window_bounds(len(enc), 64, 32):
        a, b = feat.window(text, enc, start, end), feat.window(text, packed, start, end)
        assert a.features.keys() == b.features.keys()
        for k in a.features:
            assert np.array_equal(a.features[k], b.features[k]), k
        assert np.array_equal(a.spannable, b.spannable)
