"""Calibrated probabilities (gpner.calibration): the Platt fit against a brute-force search of
its likelihood and against the parameters it was drawn from, isotonic against a naive
pool-adjacent-violators loop, ECE on a worked example, the inverse map, `gpner calibrate`
end to end (saved maps used by predict, ECE down on held-out data, --min-prob), and bad saved
maps refused."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_data

from gpner.calibration import ProbMap, check_spec, ece, fit, reliability, sigmoid

pytest.importorskip("scipy")


def nll(a, b, x, y):
    """Platt's objective: the smoothed targets' cross-entropy."""
    pos, neg = y.sum(), len(y) - y.sum()
    t = np.where(y > 0, (pos + 1) / (pos + 2), 1 / (neg + 2))
    z = a * x + b
    return float((np.logaddexp(0, z) - t * z).sum())


def test_platt_is_the_likelihood_maximum_and_recovers_the_drawing_map():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(0.7 * x - 1.2)))).astype(float)
    m = fit(x, y, "platt")
    assert m.a == pytest.approx(0.7, abs=0.08) and m.b == pytest.approx(-1.2, abs=0.15)
    # brute force: no point of a fine grid around it has a lower objective
    grid = min(nll(a, b, x, y) for a in np.linspace(0.4, 1.0, 61)
               for b in np.linspace(-1.8, -0.6, 61))
    assert nll(m.a, m.b, x, y) <= grid + 1e-6


def test_platt_on_one_kind_of_span_only_is_the_smoothed_rate():
    m = fit([1.0, 2.0, 3.0], [True, True, True], "platt")
    assert (m.a, sigmoid(m.b)) == pytest.approx((2.0, 4 / 5))  # (3 + 1) / (3 + 2)
    m = fit([], [], "platt")
    assert (m.a, m.b) == (2.0, 0.0)  # nothing seen: the uncalibrated map


def naive_pav(y):
    """Oracle: merge adjacent violating blocks until none is left; each point's fitted value."""
    blocks = [[v] for v in y]
    merged = True
    while merged:
        merged = False
        for i in range(len(blocks) - 1):
            if np.mean(blocks[i]) > np.mean(blocks[i + 1]):
                blocks[i:i + 2] = [blocks[i] + blocks[i + 1]]
                merged = True
                break
    return [float(np.mean(b)) for b in blocks for _ in b]


def test_isotonic_equals_a_naive_pool_adjacent_violators():
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(1, 40))
        x = np.round(rng.normal(0, 2, n), 1) + np.arange(n) * 1e-6  # distinct scores
        y = (rng.random(n) < 1 / (1 + np.exp(-x))).astype(float)
        m = fit(x, y, "isotonic")
        want = naive_pav(y[np.argsort(x)])
        # each knot is a block: its mean score maps to the block's rate
        assert sorted(set(np.round(want, 12))) == sorted(set(np.round(m.ys, 12)))
        assert (np.diff(m.ys) >= 0).all() and (np.diff(m.xs) >= 0).all()
        assert check_spec(m.to_dict()) is None


def test_ece_on_a_worked_example():
    # two bins: [0.1, 0.2, 0.3] right 1 of 3 (|0.2 - 1/3| = 2/15), [0.9] right
    # (|0.9 - 1| = 0.1); weighted by the bins' shares: 3/4 * 2/15 + 1/4 * 0.1 = 0.125
    p, y = [0.1, 0.2, 0.3, 0.9], [False, True, False, True]
    assert ece(p, y, bins=2) == pytest.approx(0.125)
    assert reliability(p, y, bins=2) == [(pytest.approx(0.2), pytest.approx(1 / 3), 3),
                                         (pytest.approx(0.9), 1.0, 1)]
    assert ece([1.0, 0.0], [True, False]) == 0.0 and ece([], []) == 0.0


@pytest.mark.parametrize("spec", [
    {"method": "platt", "a": 0.8, "b": -0.5},
    {"method": "isotonic", "scores": [-3.0, -1.0, 0.5, 2.0], "probs": [0.0, 0.2, 0.6, 0.95]},
])
def test_score_for_is_the_inverse_of_the_map(spec):
    m = ProbMap(spec)
    grid = np.linspace(-6, 6, 2001)
    for p in (0.1, 0.3, 0.5, 0.9):
        t = m.score_for(p)
        above = [s for s in grid if s > t]
        below = [s for s in grid if s <= t - 1e-6]
        assert all(m(s) >= p - 1e-9 for s in above)
        assert all(m(s) < p for s in below)
    assert ProbMap(spec).to_dict() == spec


@pytest.mark.parametrize("spec, why", [
    ({"method": "temp"}, "method"),
    ({"method": "platt", "a": -1, "b": 0}, "a > 0"),
    ({"method": "platt", "a": 1, "b": float("nan")}, "finite"),
    ({"method": "isotonic", "scores": [1, 0], "probs": [0.1, 0.2]}, "non-decreasing"),
    ({"method": "isotonic", "scores": [0, 1], "probs": [0.1]}, "one length"),
    ({"method": "isotonic", "scores": [0, 1], "probs": [0.1, 1.5]}, "[0, 1]"),
])
def test_bad_maps_are_named(spec, why):
    assert why in check_spec(spec)


def gpner(*args):
    exe = str(Path(sys.executable).parent / "gpner")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def model(tagger, tmp_path_factory):
    """The shared tagger (as model/run/model) and dev and test files beside it."""
    from gpner.data.formats import write

    d = tmp_path_factory.mktemp("calibration")
    shutil.copytree(tagger, d / "run" / "model")
    write(tiny_data(80, 5), d / "dev.jsonl")
    write(tiny_data(80, 6), d / "test.jsonl")
    return d


def test_calibrate_fits_maps_that_predict_uses_and_lowers_ece_out_of_sample(model, tmp_path):
    d = tmp_path / "model"
    shutil.copytree(model / "run" / "model", d)
    res = gpner("calibrate", d, model / "dev.jsonl", "--check", model / "test.jsonl", "--json",
                "--no-progress")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    maps = json.loads((d / "config.json").read_text())["decode"]["calibration"]
    assert set(maps) == set(out["labels"]) and all(m["method"] == "platt" for m in maps.values())
    # the reported errors, recomputed from the model's candidates, the saved maps and the
    # ECE definition written out here (15 equal-width bins, weighted by their shares)
    from gpner.data.formats import read
    from gpner.metrics import span_set
    from gpner.prediction.loading import load

    for part, data in (("dev", "dev.jsonl"), ("check", "test.jsonl")):
        gold = read(model / data).records
        pred = load(d).predict([g["text"] for g in gold], threshold=-10.0, flat=False)
        cands = [(e, (e["start"], e["end"], e["label"]) in span_set(g))
                 for g, p in zip(gold, pred, strict=True) for e in p["entities"]]
        raw = [(sigmoid(2 * e["score"]), ok) for e, ok in cands]
        cal = [(sigmoid(maps[e["label"]]["a"] * e["score"] + maps[e["label"]]["b"]), ok)
               for e, ok in cands]
        for key, pairs in (("ece_before", raw), ("ece_after", cal)):
            bins: dict[int, list] = {}
            for p_, ok in pairs:
                bins.setdefault(min(int(p_ * 15), 14), []).append((p_, ok))
            want = sum(len(b) / len(pairs) * abs(np.mean([x for x, _ in b])
                                                 - np.mean([o for _, o in b]))
                       for b in bins.values())
            # scores in records are rounded to 4 decimals: the recomputation is that close
            assert out[part][key] == pytest.approx(want, abs=2e-3), (part, key)
        assert out[part]["candidates"] == len(cands)
    assert (d / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    # predictions carry the calibrated prob: the saved map of each entity's score
    (tmp_path / "in.txt").write_text("\n".join(r["text"] for r in tiny_data(20, 9)) + "\n")
    res = gpner("predict", d, tmp_path / "in.txt", "--threshold", "-2")
    ents = [e for line in res.stdout.splitlines() for e in json.loads(line)["entities"]]
    assert ents
    for e in ents:
        m = maps[e["label"]]
        assert e["prob"] == pytest.approx(sigmoid(m["a"] * e["score"] + m["b"]), abs=2e-4)


def test_min_prob_decides_by_the_calibrated_probability(model, tmp_path):
    d = tmp_path / "model"
    shutil.copytree(model / "run" / "model", d)
    res = gpner("calibrate", d, model / "dev.jsonl", "--probs", "isotonic", "--min-prob", "0.6",
                "--json", "--no-progress")
    assert res.returncode == 0, res.stderr
    cfg = json.loads((d / "config.json").read_text())["decode"]
    for lab, spec in cfg["calibration"].items():
        t = ProbMap(spec).score_for(0.6)  # no span reaches 0.6: out of reach; all do: floor
        want = max(t, -10.0) if math.isfinite(t) else (1e9 if t > 0 else -10.0)
        assert cfg["thresholds"][lab] == pytest.approx(want)
    (tmp_path / "in.txt").write_text("\n".join(r["text"] for r in tiny_data(40, 9)) + "\n")
    res = gpner("predict", d, tmp_path / "in.txt", "--nested")
    ents = [e for line in res.stdout.splitlines() for e in json.loads(line)["entities"]]
    assert ents and all(e["prob"] >= 0.6 - 1e-4 for e in ents)
    # and what it dropped scored below 0.6
    res = gpner("predict", d, tmp_path / "in.txt", "--nested", "--threshold", "-10")
    every = [e for line in res.stdout.splitlines() for e in json.loads(line)["entities"]]
    kept = {(e["start"], e["end"], e["label"], e["score"]) for e in ents}
    assert all(e["prob"] < 0.6 + 1e-4 for e in every
               if (e["start"], e["end"], e["label"], e["score"]) not in kept)


def test_a_bad_saved_map_is_refused_naming_the_label(model, tmp_path):
    from gpner.errors import ModelFileError
    from gpner.prediction.loading import load

    d = tmp_path / "model"
    shutil.copytree(model / "run" / "model", d)
    cfg = json.loads((d / "config.json").read_text())
    lab = cfg["labels"][0] if "labels" in cfg else next(iter(cfg["id2label"].values()))
    cfg["decode"]["calibration"] = {lab: {"method": "platt", "a": 0, "b": 0}}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match=rf"decode.calibration.{lab} platt needs"):
        load(d)
    cfg["decode"]["calibration"] = {"NOPE": {"method": "platt", "a": 1, "b": 0}}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match=r"decode.calibration names labels the model does "
                                              r"not have: \['NOPE'\]"):
        load(d)
