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


# the schemas, on a worked example: every scenario once, nested spans included
WORKED_GOLD = [(0, 2, "PER"), (3, 7, "ORG"), (3, 5, "LOC"), (10, 12, "LOC"), (20, 25, "PER"),
               (40, 42, "LOC")]
WORKED_PRED = [(0, 2, "PER"),  # correct
               (3, 7, "LOC"),  # the ORG's boundaries, another label: type
               (3, 5, "LOC"),  # correct (the nested LOC)
               (10, 13, "LOC"),  # overlaps the LOC at 10, same label: boundary
               (21, 24, "ORG"),  # overlaps the PER at 20, other label: boundary+type
               (30, 32, "PER")]  # spurious; the LOC at 40 is missed


def as_record(spans, text="x" * 50):
    return {"text": text, "entities": [{"start": s, "end": e, "label": lab} for s, e, lab in spans]}


def test_match_pairs_nested_spans_with_their_best_partner():
    from gpner.metrics import match

    got = {(kind, None if gi is None else WORKED_GOLD[gi], None if pi is None else WORKED_PRED[pi])
           for kind, gi, pi in match(WORKED_GOLD, WORKED_PRED)}
    assert got == {("correct", (0, 2, "PER"), (0, 2, "PER")),
                   ("type", (3, 7, "ORG"), (3, 7, "LOC")),
                   ("correct", (3, 5, "LOC"), (3, 5, "LOC")),
                   ("boundary", (10, 12, "LOC"), (10, 13, "LOC")),
                   ("boundary+type", (20, 25, "PER"), (21, 24, "ORG")),
                   ("missed", (40, 42, "LOC"), None), ("spurious", None, (30, 32, "PER"))}


def test_schemas_on_the_worked_example():
    from gpner.metrics import schemas

    r = schemas([as_record(WORKED_GOLD)], [as_record(WORKED_PRED)])
    assert r["scenarios"] == {"correct": 2, "type": 1, "boundary": 1, "boundary+type": 1,
                              "missed": 1, "spurious": 1}
    s = r["schemas"]
    # (correct, incorrect, partial), by hand from the scenarios above; 6 possible, 6 actual
    assert [(s[k]["correct"], s[k]["incorrect"], s[k]["partial"]) for k in
            ("strict", "exact", "partial", "type")] == [(2, 3, 0), (3, 2, 0), (3, 0, 2), (3, 2, 0)]
    assert all(s[k]["possible"] == 6 and s[k]["actual"] == 6 and s[k]["missed"] == 1
               and s[k]["spurious"] == 1 for k in s)
    assert s["strict"]["f1"] == pytest.approx(2 / 6)
    assert s["exact"]["precision"] == pytest.approx(3 / 6)
    assert s["partial"]["recall"] == pytest.approx((3 + 0.5 * 2) / 6)
    assert s["type"]["f1"] == pytest.approx(3 / 6)
    assert r["type_confusion"] == {"ORG": {"LOC": 1}}
    # strict agrees with the strict micro metrics
    assert s["strict"]["f1"] == pytest.approx(evaluate([as_record(WORKED_GOLD)],
                                                       [as_record(WORKED_PRED)])["f1"])


def test_errors_list_every_false_positive_and_negative_with_context():
    from gpner.metrics import errors

    text = "张伟在北京大学工作。" + "x" * 40
    gold = [{**as_record(WORKED_GOLD, text), "id": "r1"}]
    out = list(errors(gold, [as_record(WORKED_PRED, text)], context=2))
    assert sorted((e["kind"], e["scenario"]) for e in out) == sorted(
        [("false_negative", k) for k in ("type", "boundary", "boundary+type", "missed")]
        + [("false_positive", k) for k in ("type", "boundary", "boundary+type", "spurious")])
    fn = next(e for e in out if e["kind"] == "false_negative" and e["scenario"] == "type")
    assert (fn["text"], fn["label"], fn["context"], fn["id"]) == ("北京大学", "ORG",
                                                                  "伟在[[北京大学]]工作", "r1")
    assert fn["paired_with"] == {"start": 3, "end": 7, "label": "LOC", "text": "北京大学"}
    assert "paired_with" not in next(e for e in out if e["scenario"] == "spurious")


def test_paired_bootstrap_against_resampling_by_hand():
    import numpy as np

    from gpner.metrics import paired_bootstrap

    gold = [as_record([(0, 2, "A"), (3, 5, "B")]), as_record([(1, 4, "A")]),
            as_record([]), as_record([(6, 9, "B"), (0, 1, "A")])]
    a = [as_record([(0, 2, "A")]), as_record([(1, 4, "A"), (5, 6, "B")]), as_record([(0, 3, "A")]),
         as_record([(6, 9, "B")])]
    b = [as_record([(0, 2, "A"), (3, 5, "B")]), as_record([(1, 4, "A")]), as_record([]),
         as_record([(6, 9, "A")])]
    r = paired_bootstrap(gold, a, b, samples=50, seed=3)
    assert r["f1_a"] == pytest.approx(evaluate(gold, a)["f1"])
    assert r["f1_b"] == pytest.approx(evaluate(gold, b)["f1"])
    # the same resamples, scored by evaluate() on the resampled records
    idx = np.random.default_rng(3).integers(0, 4, size=(50, 4))
    delta = [evaluate([gold[i] for i in s], [b[i] for i in s])["f1"]
             - evaluate([gold[i] for i in s], [a[i] for i in s])["f1"] for s in idx]
    assert r["p_value"] == pytest.approx(np.mean(np.array(delta) <= 0))
    assert r["ci95"] == pytest.approx(list(np.percentile(delta, [2.5, 97.5])))
    perfect = paired_bootstrap(gold, gold, a, samples=20)
    assert perfect["delta"] < 0 and perfect["p_value"] == 0.0  # never better than perfect
    same = paired_bootstrap(gold, a, a, samples=20)
    assert (same["delta"], same["p_value"], same["ci95"]) == (0.0, 1.0, [0.0, 0.0])


def test_evaluate_cli_writes_errors_and_compares(nested_model_dir, tmp_path):
    import json
    import subprocess
    import sys

    from gpner.data.demo import generate

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in generate(40, 9)))
    errs = tmp_path / "errors.jsonl"
    out = subprocess.run([sys.executable, "-m", "gpner.cli", "evaluate", str(nested_model_dir),
                          str(data), "--json", "--errors", str(errs), "--compare",
                          str(nested_model_dir), "--bootstrap", "50", "--no-progress"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    lines = [json.loads(x) for x in errs.read_text().splitlines()]
    assert r["fp"] + r["fn"] > 0  # the tiny model makes mistakes to list
    assert sum(x["kind"] == "false_positive" for x in lines) == r["fp"]
    assert sum(x["kind"] == "false_negative" for x in lines) == r["fn"]
    assert r["schemas"]["strict"]["f1"] == pytest.approx(r["f1"])
    c = r["compare"]
    assert (c["f1_a"], c["delta"], c["p_value"], c["samples"]) == (r["f1"], 0.0, 1.0, 50)
    text = subprocess.run([sys.executable, "-m", "gpner.cli", "evaluate", str(nested_model_dir),
                           str(data), "--no-progress"], capture_output=True, text=True).stdout
    assert "schema" in text and "partial" in text and "errors: type" in text
