"""Metrics against a worked example with nested spans, computed by hand."""

from __future__ import annotations

import pytest

from gpner.metrics import evaluate, format_table


def rec(text, *spans):
    return {"text": text, "entities": [{"start": s, "end": e, "label": l} for s, e, l in spans]}


def test_worked_example_with_nesting():
    gold = [rec("北京大学在北京", (0, 4, "ORG"), (0, 2, "LOC"), (5, 7, "LOC")),
            rec("张三", (0, 2, "PER")),
            rec("无", )]
    pred = [rec("北京大学在北京", (0, 4, "ORG"), (0, 2, "LOC"), (5, 7, "ORG")),  # 2 TP, 1 FP
            rec("张三", (0, 2, "PER"), (0, 1, "PER")),                          # 1 TP, 1 FP
            rec("无", (0, 1, "LOC"))]                                            # 1 FP
    r = evaluate(gold, pred)
    # TP 3, FP 3, FN 1 (the LOC at 5..7)
    assert (r["tp"], r["fp"], r["fn"]) == (3, 3, 1)
    assert r["precision"] == pytest.approx(3 / 6)
    assert r["recall"] == pytest.approx(3 / 4)
    assert r["f1"] == pytest.approx(2 * 0.5 * 0.75 / 1.25)
    # per label: LOC tp1 fp1 fn1 -> .5/.5/.5; ORG tp1 fp1 fn0 -> .5/1/.6667; PER tp1 fp1 -> .5/1
    assert r["per_label"]["LOC"]["f1"] == pytest.approx(0.5)
    assert r["per_label"]["ORG"]["f1"] == pytest.approx(2 / 3)
    assert r["per_label"]["PER"]["f1"] == pytest.approx(2 / 3)
    assert r["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    assert r["per_label"]["LOC"]["support"] == 2
    table = format_table(r)
    assert "micro" in table and "0.6000" in table


def test_duplicates_count_once_and_perfect_score():
    gold = [rec("ab", (0, 1, "X"), (0, 1, "X"))]
    r = evaluate(gold, gold)
    assert (r["tp"], r["fp"], r["fn"], r["f1"]) == (1, 0, 0, 1.0)


def test_empty_and_mismatched():
    r = evaluate([rec("a")], [rec("a")])
    assert r["f1"] == 0.0 and r["per_label"] == {} and r["macro_f1"] == 0.0
    with pytest.raises(ValueError, match="2 gold records but 1"):
        evaluate([rec("a"), rec("b")], [rec("a")])
    with pytest.raises(ValueError, match="texts differ"):
        evaluate([rec("a")], [rec("b")])
