"""Windows over long texts (never truncated) and the gold spans of training examples."""

from __future__ import annotations

from gpner.records import Report
from gpner.training.build import build
from gpner.training.examples import make_examples, window_bounds
from tests.helpers import tiny_config, tiny_data


def test_window_bounds_cover_everything():
    for n in range(0, 40):
        for size in (2, 3, 8):
            b = window_bounds(n, size)
            assert b[0][0] == 0 and b[-1][1] == n
            assert all(e - s <= size for s, e in b)
            assert all(b2[0] <= b1[1] for b1, b2 in zip(b, b[1:], strict=False))  # no gaps


def test_long_text_is_windowed_not_truncated():
    records = tiny_data(16)
    model, featurizer, task, config = build(tiny_config(), records)
    text = " ".join(["filler"] * 30 + ["Bob Smith"])  # the entity sits past token 30
    long_rec = {"text": text, "entities": [{"start": text.index("Bob"), "end": len(text),
                                            "label": "PER"}]}
    report = Report("t")
    ex = make_examples([long_rec], featurizer, config.labels, 8, report)
    assert [(e.window.start, e.window.end) for e in ex] == [
        (0, 8), (4, 12), (8, 16), (12, 20), (16, 24), (20, 28), (24, 32)]
    # "Bob Smith" is content tokens 30-31: whole only in the last window, at its tokens 6-7
    assert [[s[:3] for s in e.spans] for e in ex][-2:] == [[], [(6, 8, 2)]]
    assert sum(len(e.spans) for e in ex) == 1 and report.total_skipped == 0
    wide = {"text": text, "entities": [{"start": 0, "end": len(text), "label": "PER"}]}
    report = Report("t")
    make_examples([wide], featurizer, config.labels, 8, report)
    assert report.skipped == {"entity wider than the window overlap": 1}


def test_tag_heads_report_nested_gold():
    records = tiny_data(8)
    model, featurizer, task, config = build(tiny_config(head="crf"), records)
    report = Report("t")
    ex = make_examples(records, featurizer, config.labels, 64, report, flat_only=True)
    nested = sum(1 for r in records for a in r["entities"] for b in r["entities"]
                 if a is not b and a["start"] <= b["start"] and b["end"] <= a["end"])
    assert nested > 0
    assert report.skipped["nested span (tag heads cannot represent it)"] == nested
    for e in ex:
        assert all(a.end <= b.start for a, b in zip(e.spans, e.spans[1:], strict=False))
