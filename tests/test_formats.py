"""Readers on hand-written files, malformed input reported by file and line, detection, and a
round trip through every writer. A slow test reads ../shared/data and checks its counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpner.data.formats import detect_format, read, write
from gpner.records import FormatError

RECORDS = [
    {"text": "Angela Merkel visited New York City", "entities": [
        {"start": 0, "end": 13, "label": "PER"}, {"start": 22, "end": 35, "label": "LOC"}]},
    {"text": "北京大学位于北京。", "entities": [
        {"start": 0, "end": 4, "label": "ORG"}, {"start": 6, "end": 8, "label": "LOC"}]},
    {"text": "nothing here", "entities": []},
]
NESTED = {"text": "北京大学位于北京。", "entities": [
    {"start": 0, "end": 2, "label": "LOC"}, {"start": 0, "end": 4, "label": "ORG"}]}


def spans(records):
    return [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in records]


def test_jsonl_reads_and_checks_mentions(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"text": "Paris is big", "entities": [{"start": 0, "end": 5, "label": "LOC", "text": "Paris"}]},
        {"text": "Rome", "entities": [{"start": 0, "end": 9, "label": "LOC"}]},
        {"text": "Oslo", "entities": [{"start": 0, "end": 4, "label": "LOC", "text": "Bergen"}]},
        {"text": "Kyiv", "entities": [{"start": 0, "end": 4, "label": "LOC"},
                                      {"start": 0, "end": 4, "label": "LOC"}]},
    ]) + "\n", encoding="utf-8")
    corpus = read(p)
    assert spans(corpus) == [[(0, 5, "LOC")], [], [], [(0, 4, "LOC")]]
    rep = corpus.report
    assert (rep.records, rep.entities) == (4, 2)
    assert rep.skipped == {"offsets out of range": 1, "mention mismatch": 1, "duplicate entity": 1}
    assert f"{p}:2: offsets out of range" in rep.messages[0]
    assert "'Bergen'" in rep.messages[1] and f"{p}:3:" in rep.messages[1]
    assert "1 duplicate entity" in rep.summary()
    with pytest.raises(FormatError, match=r"a\.jsonl:2: offsets out of range"):
        read(p, strict=True)


def test_bad_json_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "ok", "entities": []}\n\n{"text": "broken", \n', encoding="utf-8")
    with pytest.raises(FormatError, match=r"bad\.jsonl:3: invalid JSON"):
        read(p, "jsonl")
    q = tmp_path / "nokey.jsonl"
    q.write_text('{"txt": "x"}\n', encoding="utf-8")
    with pytest.raises(FormatError, match=r"nokey\.jsonl:1: missing key 'text'"):
        read(q, "jsonl")


def test_cluener_inclusive_ends(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"text": "浙商银行叶老桂", "label": {
        "company": {"浙商银行": [[0, 3]]}, "name": {"叶老桂": [[4, 6]], "叶老": [[5, 6]]}}},
        ensure_ascii=False) + "\n" + json.dumps({"id": 3, "text": "无标注"}, ensure_ascii=False)
        + "\n", encoding="utf-8")
    assert detect_format(p) == "cluener"
    corpus = read(p)
    assert spans(corpus) == [[(0, 4, "company"), (4, 7, "name")], []]
    assert corpus[1]["id"] == 3
    assert corpus.report.skipped == {"mention mismatch": 1}


def test_cmeee_reports_line_of_item(tmp_path):
    p = tmp_path / "m.json"
    items = [{"text": "患者头痛", "entities": [{"start_idx": 2, "end_idx": 3, "type": "sym",
                                                "entity": "头痛"}]},
             {"text": "发热", "entities": [{"start_idx": 0, "end_idx": 5, "type": "sym",
                                            "entity": "发热"}]}]
    p.write_text(json.dumps(items, ensure_ascii=False, indent=2), encoding="utf-8")
    assert detect_format(p) == "cmeee"
    corpus = read(p)
    assert spans(corpus) == [[(2, 4, "sym")], []]
    line = json.dumps(items, ensure_ascii=False, indent=2).splitlines().index("  {", 2) + 1
    assert corpus.report.messages[0].startswith(f"{p}:{line}: offsets out of range")


def test_columns_any_scheme_and_separators(tmp_path):
    conll = tmp_path / "en.txt"
    conll.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n"
                     "German JJ B-NP B-MISC\ncall NN I-NP O\n\nPeter NNP B-NP B-PER\n"
                     "Blackburn NNP I-NP I-PER\n", encoding="utf-8")
    corpus = read(conll)
    assert [r["text"] for r in corpus] == ["EU rejects German call", "Peter Blackburn"]
    assert spans(corpus) == [[(0, 2, "ORG"), (11, 17, "MISC")], [(0, 15, "PER")]]
    chars = tmp_path / "zh.bmes"
    chars.write_text("北\tB-LOC\n京\tE-LOC\n人\tS-PER\n很\tO\n\n好\tO\n", encoding="utf-8")
    corpus = read(chars)
    assert [r["text"] for r in corpus] == ["北京人很", "好"]
    assert spans(corpus) == [[(0, 2, "LOC"), (2, 3, "PER")], []]
    iob1 = tmp_path / "iob1.txt"
    iob1.write_text("A I-PER\nB I-PER\nC B-PER\nD O\nE I-LOC\n", encoding="utf-8")
    assert spans(read(iob1)) == [[(0, 3, "PER"), (4, 5, "PER"), (8, 9, "LOC")]]


def test_columns_problems_name_the_line(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("a B-PER\nb O\nc I-LOC\nd I-LOC\n", encoding="utf-8")
    corpus = read(p)
    assert spans(corpus) == [[(0, 1, "PER"), (4, 7, "LOC")]]
    assert corpus.report.messages == [f"{p}:3: I- tag without B-: 'I-LOC' follows 'O'"]
    q = tmp_path / "tag.txt"
    q.write_text("a B-PER\nb PERSON\n", encoding="utf-8")
    # not a consistent column file: detection refuses it, naming the line; forced, the reader
    with pytest.raises(FormatError, match=r"\[E104\] .*tag\.txt: plain text.*line 2 ends in "
                       r"'PERSON', not a tag"):
        read(q)
    with pytest.raises(FormatError, match=r"\[E107\] .*tag\.txt:2: tag 'PERSON'"):
        read(q, "conll")
    r = tmp_path / "one.txt"
    r.write_text("a B-PER\nlonely\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"\[E107\] .*one\.txt:2: expected a token and a tag"):
        read(r, "conll")


def test_brat_discontinuous_reported(tmp_path):
    d = tmp_path / "brat"
    d.mkdir()
    (d / "doc1.txt").write_text("Aspirin reduces fever.\nIt helps.", encoding="utf-8")
    (d / "doc1.ann").write_text(
        "T1\tDrug 0 7\tAspirin\nT2\tSymptom 16 21\tfever\nT3\tSymptom 0 7;16 21\tAspirin fever\n"
        "R1\tTreats Arg1:T1 Arg2:T2\n#1\tAnnotatorNotes T1\tnote\nT4\tDrug 23 25\tXx\n",
        encoding="utf-8")
    assert detect_format(d) == "brat"
    corpus = read(d)
    assert spans(corpus) == [[(0, 7, "Drug"), (16, 21, "Symptom")]]
    assert corpus[0]["id"] == "doc1"
    assert corpus.report.skipped["discontinuous span"] == 1
    assert corpus.report.skipped["mention mismatch"] == 1
    assert any(m.startswith(f"{corpus.report.source}:3: discontinuous span")
               for m in corpus.report.messages)


def test_doccano_and_label_studio(tmp_path):
    old = tmp_path / "d.jsonl"
    old.write_text(json.dumps({"id": 1, "text": "Tim Cook runs Apple", "label": [
        [0, 8, "PER"], [14, 19, "ORG"]]}) + "\n", encoding="utf-8")
    new = tmp_path / "d2.jsonl"
    new.write_text(json.dumps({"text": "Tim Cook", "entities": [
        {"id": 5, "label": "PER", "start_offset": 0, "end_offset": 8}]}) + "\n", encoding="utf-8")
    assert detect_format(old) == detect_format(new) == "doccano"
    assert spans(read(old)) == [[(0, 8, "PER"), (14, 19, "ORG")]]
    assert spans(read(new)) == [[(0, 8, "PER")]]
    ls = tmp_path / "ls.json"
    ls.write_text(json.dumps([{"id": 9, "data": {"text": "Tim Cook runs Apple"}, "annotations": [
        {"was_cancelled": True, "result": []},
        {"result": [{"type": "labels", "value": {"start": 0, "end": 8, "text": "Tim Cook",
                                                  "labels": ["PER"]}},
                    {"type": "relation", "from_id": "a", "to_id": "b"}]}]}]), encoding="utf-8")
    assert detect_format(ls) == "label-studio"
    corpus = read(ls)
    assert spans(corpus) == [[(0, 8, "PER")]] and corpus[0]["id"] == 9
    # relations are read (tests/test_relation_formats.py); this one names no span: counted
    assert corpus.report.skipped == {"bad relation": 1} and corpus[0]["relations"] == []


@pytest.mark.parametrize("fmt,name", [("jsonl", "o.jsonl"), ("cluener", "o.json"),
                                      ("cmeee", "o.json"), ("brat", "o"),
                                      ("doccano", "o.jsonl"), ("label-studio", "o.json")])
def test_round_trip_exact(tmp_path, fmt, name):
    out = tmp_path / name
    write(RECORDS + [NESTED], out, fmt)
    back = read(out, fmt)
    assert [r["text"] for r in back] == [r["text"] for r in RECORDS + [NESTED]]
    assert spans(back) == spans(RECORDS + [NESTED])
    assert back.report.total_skipped == 0
    if fmt != "jsonl":  # each format is recognised from what was written
        assert detect_format(out) == fmt


@pytest.mark.parametrize("scheme", ["bio", "iob1", "bioes", "bmes"])
def test_round_trip_columns(tmp_path, scheme):
    out = tmp_path / "o.bio"
    english = [r for r in RECORDS if r["text"].isascii()]
    write(english, out, "conll", scheme=scheme)
    back = read(out)
    assert [r["text"] for r in back] == [r["text"] for r in english]
    assert spans(back) == spans(english)
    zh = tmp_path / "zh.bio"
    write([RECORDS[1]], zh, "conll", scheme=scheme)
    assert spans(read(zh)) == spans([RECORDS[1]]) and read(zh)[0]["text"] == RECORDS[1]["text"]


def test_columns_writer_refuses_nested_and_splits_tokens(tmp_path):
    with pytest.raises(ValueError, match="record 0.*nested"):
        write([NESTED], tmp_path / "n.bio")
    # an entity ending inside a word: the word is split so the entity survives
    write([{"text": "Berliner", "entities": [{"start": 0, "end": 6, "label": "LOC"}]}],
          tmp_path / "s.bio")
    assert (tmp_path / "s.bio").read_text() == "Berlin B-LOC\ner O\n\n"


def test_detect_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "missing.json")
    p = tmp_path / "arr.json"
    p.write_text('[{"text": "a", "entities": [{"start": 0, "end": 1, "label": "X"}]}]')
    with pytest.raises(FormatError, match="JSON lines"):
        read(p)


DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COUNTS = [("cluener/train.json", 10748, 23971), ("cluener/dev.json", 1343, 3072),
          ("cluener/test.json", 1345, 0), ("peoples_daily/example.train", 20864, 33992),
          ("peoples_daily/example.dev", 2318, 3819), ("peoples_daily/example.test", 4636, 7707),
          ("cmeee/train.json", 15000, 61794), ("cmeee/dev.json", 5000, 20300),
          ("conll2003/train.txt", 14041, 23499), ("conll2003/valid.txt", 3250, 5942),
          ("conll2003/test.txt", 3453, 5648)]


@pytest.mark.slow
@pytest.mark.parametrize("rel,n_sent,n_ent", COUNTS)
def test_shared_data_counts(rel, n_sent, n_ent):
    if not (DATA / rel).exists():
        pytest.skip(f"{DATA / rel} not present")
    corpus = read(DATA / rel)
    assert (len(corpus), corpus.report.entities) == (n_sent, n_ent)
    assert corpus.report.total_skipped == 0, corpus.report.summary()
    for r in corpus:
        for e in r["entities"]:
            assert 0 <= e["start"] < e["end"] <= len(r["text"])


LS_SPAN = {"type": "labels", "value": {"start": 0, "end": 3, "labels": ["PER"]}}


@pytest.mark.parametrize("fmt,name,line,key,content", [
    ("cmeee", "c.json", 3, "entities", [{"text": "abc", "entities": []},
                                       {"text": "abc", "entities": True}]),
    ("doccano", "d.jsonl", 1, "label", {"text": "abc", "label": "PER"}),
    ("doccano", "d.jsonl", 1, "entities", {"text": "abc", "entities": 3}),
    ("doccano", "d.jsonl", 1, "relations", {"text": "abc", "entities": [], "relations": {}}),
    ("prodigy", "p.jsonl", 1, "spans", {"text": "abc", "spans": "PER"}),
    ("label-studio", "l.json", 2, "annotations", [{"data": {"text": "abc"}, "annotations": 1}]),
    ("label-studio", "l.json", 2, "result", [{"data": {"text": "abc"},
                                              "annotations": [{"result": "PER"}]}]),
    ("label-studio", "l.json", 2, "labels", [{"data": {"text": "abc"}, "annotations": [
        {"result": [{**LS_SPAN, "value": {"start": 0, "end": 3, "labels": "PER"}}]}]}]),
    ("label-studio", "l.json", 2, "labels", [{"data": {"text": "abc"}, "annotations": [
        {"result": [{**LS_SPAN, "id": "a"}, {**LS_SPAN, "id": "b"},
                    {"type": "relation", "from_id": "a", "to_id": "b", "labels": "of"}]}]}]),
])
def test_a_list_field_holding_something_else_is_refused_with_its_place(
        tmp_path, fmt, name, line, key, content):
    """A string where a list belongs was read letter by letter ("PER" as labels P, E, R) and
    ``true`` crashed with a TypeError; both are refused, naming the file, line and value."""
    path = tmp_path / name
    # an array an item a line after its "[": the error names the item's line
    path.write_text("[\n" + ",\n".join(map(json.dumps, content)) + "\n]"
                    if isinstance(content, list) else json.dumps(content) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"\[E1\d\d\] .*{name}:{line}: '{key}' should be a "
                                         r"list, found \w+: "):
        read(path, fmt)
