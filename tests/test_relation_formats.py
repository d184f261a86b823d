"""Relation data in and out: triple lists whose entities are located by string (the rule and
its counts), DuIE/CMeIE spo lists, BRAT R lines, doccano and Label Studio relation exports, and
our JSON lines; relation indices survive the sort and de-duplication of entities."""

from __future__ import annotations

import json

import pytest

from gpner.data.formats import detect_format, read, write
from gpner.data.formats.triples import occurrences


def triples(record):
    e, t = record["entities"], record["text"]
    return sorted((t[e[r["head"]]["start"]:e[r["head"]]["end"]], r["label"],
                   t[e[r["tail"]]["start"]:e[r["tail"]]["end"]]) for r in record["relations"])


def test_occurrences_whole_words_case_and_inside_words():
    text = "Texas and Texas Tech ; Texasville ; TEXAS"
    assert occurrences(text, "Texas") == ([0, 10], "exact")  # not inside Texasville
    assert occurrences("Texasville", "Texas") == ([0], "inside a word")
    assert occurrences("java程序设计 Java", "JAVA") == ([0, 9], "case-insensitive")
    assert occurrences("铅脑病患者铅脑病", "铅脑病") == ([0, 5], "exact")  # CJK: no word boundary
    assert occurrences("abc", "x") == ([], "missing")


def test_casrel_locates_entities_and_counts_every_rule(tmp_path):
    path = tmp_path / "train.json"
    data = [
        {"text": "Alan Bean , who was part of Apollo 12 , was born in Wheeler , Texas .",
         "triple_list": [["Bean", "was a crew member of", "12"], ["Bean", "birthPlace", "Texas"],
                         ["Bean", "birthPlace", "Texas"]]},
        # Pennsylvania twice: the nearest occurrences pair; the object may precede the subject
        {"text": "Pennsylvania is home to Adams County , Pennsylvania .",
         "triple_list": [["County", "isPartOf", "Pennsylvania"], ["Nowhere", "x", "County"],
                         ["County", "bad"]]},
    ]
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    assert detect_format(path) == "casrel"
    c = read(path)
    a, b = c.records
    assert triples(a) == [("Bean", "birthPlace", "Texas"), ("Bean", "was a crew member of", "12")]
    assert [e["start"] for e in a["entities"]] == [5, 35, 62]
    assert triples(b) == [("County", "isPartOf", "Pennsylvania")]
    county = b["entities"][b["relations"][0]["head"]]
    pa = b["entities"][b["relations"][0]["tail"]]
    assert (county["start"], pa["start"]) == (30, 39)  # the second Pennsylvania, next to it
    rep = c.report
    assert (rep.records, rep.entities, rep.relations) == (2, 5, 3)
    assert rep.skipped == {"duplicate relation": 1, "entity string not in text": 1,
                           "bad triple": 1}
    assert rep.notes == {"ambiguous entity string (nearest occurrences used)": 1}
    assert any(f"{path}:" in m and "'Nowhere'" in m for m in rep.messages)


def test_spo_reads_duie_and_cmeie_objects_with_types(tmp_path):
    path = tmp_path / "spo.json"
    lines = [{"text": "《端脑》改编自同名漫画《端脑》", "spo_list": [
                {"predicate": "改编自", "subject": "端脑", "object": "端脑",
                 "subject_type": "影视作品", "object_type": "作品"}]},
             {"text": "铅中毒@铅脑病患者可能出现癫痫发作。", "spo_list": [
                 {"Combined": False, "predicate": "并发症", "subject": "铅脑病",
                  "subject_type": "疾病", "object": {"@value": "癫痫"},
                  "object_type": {"@value": "疾病"}}]},
             {"text": "我在角落观察ABC", "spo_list": [
                 {"predicate": "作者", "subject": "我在角落观察abc", "object": "我",
                  "subject_type": "图书作品", "object_type": "人物"}]}]
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), "utf-8")
    assert detect_format(path) == "spo"
    c = read(path, "duie")
    first, second, third = c.records
    # subject == object string: the same occurrence, two labels (types), one relation
    assert [(e["start"], e["label"]) for e in first["entities"]] == [(1, "作品"), (1, "影视作品")]
    assert triples(second) == [("铅脑病", "并发症", "癫痫")]
    assert {e["label"] for e in second["entities"]} == {"疾病"}
    assert triples(third) == [("我在角落观察ABC", "作者", "我")]  # the text's own spelling
    assert c.report.notes["entity located case-insensitive"] == 1


def test_brat_relations_round_trip(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "d.txt").write_text("Alice works at Acme in Paris.", encoding="utf-8")
    (tmp_path / "in" / "d.ann").write_text(
        "R1\tworks_for Arg1:T1 Arg2:T2\n"  # before the T lines it names
        "T1\tPER 0 5\tAlice\nT2\tORG 15 19\tAcme\nT3\tLOC 23 28\tParis\n"
        "T4\tLOC 23 29\tParis!\n"  # mention mismatch: skipped, and so is R3 on it
        "R2\tlocated_in Arg1:T2 Arg2:T3\nR3\tlocated_in Arg1:T2 Arg2:T4\n"
        "R4\tlocated_in Arg1:T2 Arg2:T9\nE1\tX:T1\n", encoding="utf-8")
    c = read(tmp_path / "in")
    (r,) = c.records
    assert triples(r) == [("Acme", "located_in", "Paris"), ("Alice", "works_for", "Acme")]
    assert c.report.skipped["relation on a skipped entity"] == 1
    assert c.report.skipped["bad relation"] == 1 and c.report.skipped["mention mismatch"] == 1
    write(c, tmp_path / "out", "brat")
    again = read(tmp_path / "out").records[0]
    assert again["entities"] == r["entities"] and again["relations"] == r["relations"]
    with pytest.raises(ValueError, match="spaces"):
        write([{**r, "relations": [{"head": 0, "tail": 1, "label": "works for"}]}],
              tmp_path / "bad", "brat")


def test_jsonl_relations_follow_sorted_and_merged_entities(tmp_path):
    path = tmp_path / "r.jsonl"
    rec = {"text": "Paris is in France", "id": 7,
           "entities": [{"start": 12, "end": 18, "label": "LOC"},
                        {"start": 0, "end": 5, "label": "LOC"},
                        {"start": 0, "end": 5, "label": "LOC"},  # a duplicate of entity 1
                        {"start": 0, "end": 99, "label": "LOC"}],  # out of range
           "relations": [{"head": 2, "tail": 0, "label": "in"}, {"head": 1, "tail": 0,
                                                                  "label": "in"},
                         {"head": 3, "tail": 0, "label": "in"}, {"head": 0, "tail": 5,
                                                                  "label": "in"}]}
    path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    c = read(path)
    (r,) = c.records
    assert r["entities"] == [{"start": 0, "end": 5, "label": "LOC"},
                             {"start": 12, "end": 18, "label": "LOC"}]
    assert r["relations"] == [{"head": 0, "tail": 1, "label": "in"}] and r["id"] == 7
    assert c.report.skipped == {"duplicate entity": 1, "duplicate relation": 1,
                                "offsets out of range": 1, "relation on a skipped entity": 1,
                                "bad relation": 1}
    write(c, tmp_path / "out.jsonl")
    assert read(tmp_path / "out.jsonl").records == c.records


def test_doccano_and_label_studio_relation_exports(tmp_path):
    doc = tmp_path / "doccano.jsonl"
    doc.write_text(json.dumps({
        "id": 1, "text": "Alice works at Acme",
        "entities": [{"id": 10, "label": "PER", "start_offset": 0, "end_offset": 5},
                     {"id": 11, "label": "ORG", "start_offset": 15, "end_offset": 19}],
        "relations": [{"id": 3, "from_id": 10, "to_id": 11, "type": "works_for"},
                      {"id": 4, "from_id": 10, "to_id": 99, "type": "x"}]}) + "\n", "utf-8")
    c = read(doc, "doccano")
    assert triples(c.records[0]) == [("Alice", "works_for", "Acme")]
    assert c.report.skipped == {"bad relation": 1}
    ls = tmp_path / "ls.json"

    def span(rid, s, e, lab, text):
        return {"id": rid, "type": "labels", "from_name": "label", "to_name": "text",
                "value": {"start": s, "end": e, "text": text, "labels": [lab]}}

    ls.write_text(json.dumps([{"id": 5, "data": {"text": "Alice works at Acme"},
                               "annotations": [{"result": [
                                   span("a", 0, 5, "PER", "Alice"),
                                   span("b", 15, 19, "ORG", "Acme"),
                                   {"type": "relation", "from_id": "b", "to_id": "a",
                                    "direction": "left", "labels": ["works_for"]},
                                   {"type": "relation", "from_id": "a", "to_id": "b",
                                    "direction": "bi", "labels": ["knows"]},
                                   {"type": "relation", "from_id": "a", "to_id": "b",
                                    "direction": "right", "labels": []}]}]}]), "utf-8")
    c = read(ls)
    assert triples(c.records[0]) == [("Acme", "knows", "Alice"), ("Alice", "knows", "Acme"),
                                     ("Alice", "works_for", "Acme")]
    assert c.report.skipped == {"relation without a label": 1}


def test_relation_readers_are_not_writers(tmp_path):
    with pytest.raises(ValueError, match="does not write"):
        write([], tmp_path / "x.json", "spo")


# ../shared/data/RELATIONS.md: sentences, triples as given, duplicates; every triple located
# (DuIE: 10 by the case-insensitive rule; one pair of its train triples differs only in case)
SHARED = [("webnlg/train_triples.json", 5019, 11776, 89, 0),
          ("webnlg/val_triples.json", 500, 1118, 5, 0),
          ("webnlg/test_triples.json", 703, 1591, 10, 0),
          ("duie/train_data.json", 2000, 4299, 1, 10), ("duie/dev_data.json", 200, 448, 0, 0),
          ("cmeie/CMeIE_train.json", 500, 1517, 4, 0), ("cmeie/CMeIE_dev.json", 108, 340, 1, 0)]


@pytest.mark.slow
@pytest.mark.parametrize("rel,n_sent,n_triples,dups,folded", SHARED)
def test_shared_relation_data_is_read_whole(rel, n_sent, n_triples, dups, folded):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / rel
    if not path.exists():
        pytest.skip(f"{path} not present")
    c = read(path)
    assert (len(c), c.report.relations + dups) == (n_sent, n_triples)
    assert dict(c.report.skipped) == ({"duplicate relation": dups} if dups else {})
    assert c.report.notes.get("entity located case-insensitive", 0) == folded
    for r in c:  # every relation's strings are where the record says
        for x in r["relations"]:
            for e in (r["entities"][x["head"]], r["entities"][x["tail"]]):
                assert 0 <= e["start"] < e["end"] <= len(r["text"])


REL = {"text": "Alice works for Acme", "entities": [{"start": 0, "end": 5, "label": "PER"},
                                                  {"start": 16, "end": 20, "label": "ORG"}],
       "relations": [{"head": 0, "tail": 1, "label": "works_for"}]}


@pytest.mark.parametrize("fmt,name", [("cluener", "o.json"), ("cmeee", "c.json"),
                                      ("conll", "o.bio")])
def test_relations_are_refused_where_the_format_cannot_hold_them(tmp_path, fmt, name):
    """Written to a format without relations they were dropped without a word; now refused,
    with their count, unless asked to write the entities alone."""
    plain = {"text": "Bob", "entities": [{"start": 0, "end": 3, "label": "PER"}]}
    with pytest.raises(ValueError, match=rf"\[E110\] .*{name}: 2 relations in 1 records, "
                                         f"which {fmt} cannot hold"):
        write([plain, {**REL, "relations": REL["relations"] * 2}], tmp_path / name, fmt)
    assert not (tmp_path / name).exists()
    write([plain, REL], tmp_path / name, fmt, drop_relations=True)
    back = read(tmp_path / name, fmt).records
    assert [r["entities"] for r in back] == [plain["entities"], REL["entities"]]
    assert all(not r.get("relations") for r in back)
    write([plain], tmp_path / name, fmt)  # records without relations need no flag



@pytest.mark.parametrize("fmt,name", [("doccano", "d.jsonl"), ("label-studio", "l.json")])
def test_doccano_and_label_studio_write_relations_that_read_back(tmp_path, fmt, name):
    """Relation data through the annotation tools' own relation layouts: every entity and
    relation back, nested entities and a relation from a later entity to an earlier one too."""
    recs = [{"text": "Bob", "entities": [{"start": 0, "end": 3, "label": "PER"}]},
            {**REL, "relations": REL["relations"] + [{"head": 1, "tail": 0, "label": "employs"}]},
            {"text": "Acme Paris hires", "entities": [
                {"start": 0, "end": 4, "label": "ORG"}, {"start": 0, "end": 10, "label": "ORG"},
                {"start": 5, "end": 10, "label": "LOC"}],
             "relations": [{"head": 1, "tail": 2, "label": "in"}]}]
    write(recs, tmp_path / name, fmt)
    back = read(tmp_path / name, fmt)
    assert sum(back.report.skipped.values()) == 0
    assert [r["entities"] for r in back.records] == [r["entities"] for r in recs]
    assert [r.get("relations") or [] for r in back.records] == \
        [r.get("relations", []) for r in recs]
