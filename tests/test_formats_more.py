"""The formats research and annotation tools ship: token-level JSON, TSV span lists, word/tag
lines, Prodigy, spaCy DocBin; glued column annotations; the convert preview."""

from __future__ import annotations

import json

import pytest

from gpner.data.formats import detect_format, mark, read


def jl(*objs) -> str:
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs)


def ents(corpus):
    return [[(r["text"][e["start"]:e["end"]], e["label"]) for e in r["entities"]]
            for r in corpus]


def test_token_json_ace_genia_w2ner_spert(tmp_path):
    ace = tmp_path / "ace.jsonl"
    ace.write_text(jl({"tokens": ["Barack", "Obama", "visited", "Paris", "."],
                       "entity_mentions": [{"start": 0, "end": 2, "entity_type": "PER"},
                                           {"start": 3, "end": 4, "entity_type": "GPE"},
                                           {"start": 3, "end": 9, "entity_type": "GPE"}]}))
    assert detect_format(ace) == "tokens"
    corpus = read(ace)
    assert corpus.records[0]["text"] == "Barack Obama visited Paris ."
    assert ents(corpus) == [[("Barack Obama", "PER"), ("Paris", "GPE")]]
    assert corpus.report.skipped == {"offsets out of range": 1}  # counted, not dropped silently
    # W2NER: a JSON array, "sentence" and "ner" with token index lists; a gap is discontinuous
    w2 = tmp_path / "w2.json"
    w2.write_text(json.dumps([{"sentence": ["北", "京", "大", "学", "在", "海", "淀"],
                               "ner": [{"index": [0, 1, 2, 3], "type": "ORG"},
                                       {"index": [0, 1], "type": "LOC"},
                                       {"index": [5, 6], "type": "LOC"},
                                       {"index": [0, 2], "type": "X"}]}], ensure_ascii=False))
    assert detect_format(w2) == "tokens"
    corpus = read(w2)
    assert corpus.records[0]["text"] == "北京大学在海淀"  # CJK: no spaces
    assert ents(corpus) == [[("北京", "LOC"), ("北京大学", "ORG"), ("海淀", "LOC")]]
    assert corpus.report.skipped == {"discontinuous span": 1}
    # SpERT: entities with type, relations indexing them
    sp = tmp_path / "spert.json"
    sp.write_text(json.dumps([{"tokens": ["我", "用", "Python", "写", "gpner", "code"],
                               "entities": [{"type": "Lang", "start": 2, "end": 3},
                                            {"type": "Tool", "start": 4, "end": 5}],
                               "relations": [{"type": "writes", "head": 1, "tail": 0}]}],
                             ensure_ascii=False))
    rec = read(sp).records[0]
    assert rec["text"] == "我用Python写gpner code"  # no space beside CJK, one between words
    assert ents([rec]) == [[("Python", "Lang"), ("gpner", "Tool")]]
    assert rec["relations"] == [{"head": 1, "tail": 0, "label": "writes"}]
    assert read(sp, token_sep=" ").records[0]["text"] == "我 用 Python 写 gpner code"


def test_tsv_span_lists(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_text("张三在北京\t[('PER', 0, 2), ('LOC', 3, 5)]\n"
                 "Bob left\t[[0, 3, \"PER\"]]\n"
                 "nothing\t[]\n", encoding="utf-8")
    assert detect_format(p) == "tsv"
    assert ents(read(p)) == [[("张三", "PER"), ("北京", "LOC")], [("Bob", "PER")], []]
    q = tmp_path / "incl.tsv"
    q.write_text("张三在北京\t[(\"PER\", 0, 1)]\n", encoding="utf-8")
    assert ents(read(q, inclusive_end=True)) == [[("张三", "PER")]]
    # a literal is parsed, never evaluated
    r = tmp_path / "evil.tsv"
    r.write_text("ab\t[__import__('os').system('true')]\n")
    with pytest.raises(ValueError, match=r"E107"):
        read(r, "tsv")


PD1998 = ("19980101-01-001-002/m  中共中央/nt  总书记/n  、/w  国家/n  主席/n  江/nr  泽民/nr\n"
          "[中国/ns  政府/n]nt  在/p  北京/ns  召开/v  会议/n\n")


def test_wordtag_people_daily_1998(tmp_path):
    p = tmp_path / "pd.txt"
    p.write_text(PD1998, encoding="utf-8")
    assert detect_format(p) == "wordtag"
    corpus = read(p)
    assert corpus.records[1]["text"] == "中国政府在北京召开会议"
    assert ents(corpus) == [[("中共中央", "ORG"), ("江", "PER"), ("泽民", "PER")],
                            [("中国", "LOC"), ("中国政府", "ORG"), ("北京", "LOC")]]
    assert ents(read(p, tags="ns=GPE")) == [[], [("中国", "GPE"), ("北京", "GPE")]]
    with pytest.raises(ValueError, match="not word_tag=ENTITY_TYPE"):
        read(p, tags="ns")


def test_prodigy_and_spacy_docbin(tmp_path):
    p = tmp_path / "prodigy.jsonl"
    p.write_text(jl({"text": "Apple buys U.K. startup", "answer": "accept",
                     "spans": [{"start": 0, "end": 5, "label": "ORG", "token_start": 0,
                                "token_end": 0}, {"start": 11, "end": 15, "label": "GPE"}]},
                    {"text": "rejected", "answer": "reject",
                     "spans": [{"start": 0, "end": 3, "label": "X"}]}))
    assert detect_format(p) == "prodigy"
    corpus = read(p)
    assert ents(corpus) == [[("Apple", "ORG"), ("U.K.", "GPE")]]
    assert corpus.report.skipped == {"answer reject": 1}
    spacy = pytest.importorskip("spacy")
    from spacy.tokens import DocBin, Span

    nlp = spacy.blank("en")
    doc = nlp("Bank of London opened")
    doc.ents = [Span(doc, 0, 3, label="ORG")]
    doc.spans["sc"] = [Span(doc, 0, 3, label="ORG"), Span(doc, 2, 3, label="LOC")]
    path = tmp_path / "train.spacy"
    DocBin(docs=[doc]).to_disk(path)
    assert detect_format(path) == "spacy"
    corpus = read(path)
    assert ents(corpus) == [[("Bank of London", "ORG"), ("London", "LOC")]]
    assert corpus.report.skipped == {}  # the span group repeating ents is not a duplicate
    path.write_bytes(b"not a docbin")
    with pytest.raises(ValueError, match=r"\[E102\].*train\.spacy: not a readable spaCy DocBin"):
        read(path)


def test_glued_digits_are_taken_out_and_token_pattern_decides(tmp_path):
    # Weibo NER: each character carries its position in the word
    lines = []
    for word, tag in [("中国", "GPE"), ("人民", None), ("银行", "ORG")] * 4:
        for k, ch in enumerate(word):
            t = "O" if tag is None else ("B-" if k == 0 else "I-") + tag
            lines.append(f"{ch}{k}\t{t}")
    p = tmp_path / "weibo.bio"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = read(p)
    assert corpus.records[0]["text"] == "中国人民银行" * 4
    assert ents(corpus)[0][:2] == [("中国", "GPE"), ("银行", "ORG")]
    assert corpus.report.notes == {"glued digit taken out": 24}
    assert "24 of 24 tokens" in corpus.report.rules[0]
    whole = read(p, token_pattern=r"(.*)")  # the option that keeps the tokens as they are
    assert whole.records[0]["text"].startswith("中0国1人0民1")
    assert whole.report.notes == {}
    with pytest.raises(ValueError, match=r"E107.*needs a group"):
        read(p, token_pattern=r".\d")


def test_mark_shows_nested_entities():
    rec = {"text": "北京大学在海淀", "entities": [{"start": 0, "end": 4, "label": "ORG"},
                                             {"start": 0, "end": 2, "label": "LOC"},
                                             {"start": 5, "end": 7, "label": "LOC"}]}
    assert mark(rec) == "[[北京]LOC大学]ORG在[海淀]LOC"
    same_end = {"text": "北京大学", "entities": [{"start": 0, "end": 4, "label": "ORG"},
                                              {"start": 2, "end": 4, "label": "X"}]}
    assert mark(same_end) == "[北京[大学]X]ORG"  # the inner span closes first
    assert mark({"text": "a\nb" + "c" * 300, "entities": []}, limit=5) == "a\\nbcc ..."
