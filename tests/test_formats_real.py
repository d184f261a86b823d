"""Files written the way public data sets write them (not the way gpner's writers do), read with
no options and checked against counts from a separate parser written here, in the test: Weibo
NER's glued digits, multi-tag cells, the original CoNLL-2003 IOB1, header rows and CRLF/BOM
exports, BIOES with unclosed entities, TSV span lists with spaced characters, PubTator
(NCBI-disease, BC5CDR) and DyGIE++ (SciERC); plus refusals that give the right reason."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpner.data.formats import detect_format, read, write
from gpner.errors import DataError


def ents(corpus):
    return [[(r["text"][e["start"]:e["end"]], e["label"]) for e in r["entities"]]
            for r in corpus]


def blocks(text: str) -> list[list[list[str]]]:
    """Oracle helper: sentences of tab-split rows, split on blank (or whitespace) lines."""
    out, cur = [], []
    for line in text.replace("\r\n", "\n").lstrip("\ufeff").split("\n"):
        if not line.strip():
            if cur:
                out.append(cur)
            cur = []
            continue
        cur.append(line.rstrip("\t ").split("\t"))
    if cur:
        out.append(cur)
    return out


def oracle_bio(tokens: list[str], tags: list[str], sep: str) -> list[tuple[str, str]]:
    """Oracle: strict IOB2 decoding written out longhand, (mention, label) pairs."""
    found, i = [], 0
    while i < len(tags):
        if tags[i].startswith("B-"):
            label, j = tags[i][2:], i + 1
            while j < len(tags) and tags[j] == "I-" + label:
                j += 1
            found.append((sep.join(tokens[i:j]), label))
            i = j
        else:
            i += 1
    return found


# ---- Weibo NER: a digit glued to most characters, not to all ----------------------------

WEIBO = """\
科0\tO
技1\tO
全0\tO
方1\tO
位2\tO
，\tO
叶0\tB-PER.NAM
嘉1\tI-PER.NAM
莹2\tI-PER.NAM
在0\tO
北0\tB-GPE.NAM
京1\tI-GPE.NAM
说0\tO
20\tO
01\tO
😀\tO

h\tO
t\tO
美0\tB-LOC.NAM
国1\tI-LOC.NAM
人0\tB-PER.NOM
民1\tO
很0\tO
好1\tO
"""


def test_weibo_glued_digits_read_right_with_no_options(tmp_path):
    p = tmp_path / "weiboNER_2nd_conll.train"
    p.write_text(WEIBO, encoding="utf-8")
    assert detect_format(p) == "conll"
    corpus = read(p)
    # oracle: a token of more than one character lost its trailing digit, the others are kept
    want_texts, want_ents = [], []
    for rows in blocks(WEIBO):
        toks = [t[:-1] if len(t) > 1 and t[-1].isdigit() else t for t, _ in rows]
        want_texts.append("".join(toks))
        want_ents.append(oracle_bio(toks, [tag for _, tag in rows], ""))
    assert [r["text"] for r in corpus] == want_texts
    assert want_texts[0] == "科技全方位，叶嘉莹在北京说20😀"
    assert ents(corpus) == want_ents
    tokens = [t for rows in blocks(WEIBO) for t, _ in rows]
    assert corpus.report.notes["glued digit taken out"] == sum(len(t) > 1 for t in tokens)
    # the rule is decided on tokens that are not numbers ("20" is no evidence either way)
    words = [t for t in tokens if not t.isdigit()]
    assert f"{sum(len(t) > 1 for t in words)} of {len(words)} tokens" in corpus.report.rules[0]


def test_a_file_half_glued_is_refused_naming_the_option(tmp_path):
    rows = [f"{ch}{k % 2}\tO" for k, ch in enumerate("科技全方位叶嘉")] + [
        f"{w}\tO" for w in "Alice met Bob in Paris again today".split()]
    p = tmp_path / "mixed.txt"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"E104.*7 of 14 tokens.*--token-pattern"):
        read(p)
    assert read(p, token_pattern="(.*)").records[0]["text"].startswith("科0 技1 全0")


# ---- a cell of several tags: overlapping entities -----------------------------------------

MULTI = """\
I\tO
read\tO
Harry\tB-creative-work,B-person
Potter\tI-creative-work,I-person
and\tI-creative-work
the\tI-creative-work
Goblet\tI-creative-work
of\tI-creative-work
Fire\tI-creative-work
by\tO
J.K.\tB-person
Rowling\tI-person
"""


def test_multi_tag_cells_are_read_as_separate_spans(tmp_path):
    p = tmp_path / "wnut.conll"
    p.write_text(MULTI, encoding="utf-8")
    corpus = read(p)
    rows = blocks(MULTI)[0]
    toks = [t for t, _ in rows]
    # oracle: one pass per label over the comma-separated cells
    want = []
    for label in ("creative-work", "person"):
        layer = [next((t for t in cell.split(",") if t.endswith("-" + label)), "O")
                 for _, cell in rows]
        want += oracle_bio(toks, layer, " ")
    assert sorted(ents(corpus)[0]) == sorted(want)
    assert ("Harry Potter and the Goblet of Fire", "creative-work") in want
    assert not any("," in e["label"] for e in corpus[0]["entities"])
    assert corpus.report.notes["cell with several tags"] == 2


# ---- the original CoNLL-2003 files are IOB1 -----------------------------------------------

CONLL_IOB1 = """\
-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
to TO I-VP O
boycott VB I-VP O
British JJ I-NP I-MISC
lamb NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

In IN I-PP O
Bonn NNP I-NP I-LOC
and CC O O
Paris NNP I-NP B-LOC
Germany NNP I-NP B-LOC
Rome NNP I-NP I-LOC
"""


def test_iob1_is_detected_by_its_own_rule_and_a_stray_b_is_counted(tmp_path):
    p = tmp_path / "eng.train"
    p.write_text(CONLL_IOB1, encoding="utf-8")
    corpus = read(p)
    assert "tag scheme iob1" in corpus.report.rules[0]
    # Paris follows O: an IOB1 violation, counted once; no "I- tag without B-" flood
    assert corpus.report.skipped == {"B- tag not between two entities (IOB1)": 1}
    assert "eng.train:19:" in corpus.report.messages[0]
    # oracle: IOB1 decoding (an entity runs over I-X; B-X starts a new one)
    want = []
    for rows in blocks(CONLL_IOB1.replace(" ", "\t"))[1:]:
        toks, tags = [r[0] for r in rows], [r[-1] for r in rows]
        i = 0
        while i < len(tags):
            if tags[i] == "O":
                i += 1
                continue
            label, j = tags[i][2:], i + 1
            while j < len(tags) and tags[j] == "I-" + label:
                j += 1
            want.append((" ".join(toks[i:j]), label))
            i = j
    assert [e for r in ents(corpus) for e in r] == want
    assert ("Germany Rome", "LOC") in want  # B- after I-LOC separates two LOCs in IOB1


# ---- a spreadsheet export: header row, CRLF, BOM, trailing tabs, blank lines of spaces -----

def test_header_crlf_bom_trailing_tabs_and_whitespace_lines(tmp_path):
    body = ("\ufeffword\tlabel\t\r\nAngela\tB-PER\t\r\nMerkel\tI-PER\t\r\nvisited\tO\t\r\n"
            "Paris\tB-LOC\t\r\n \t \r\nThanks\tO\t\r\n")
    p = tmp_path / "export.tsv"
    p.write_bytes(body.encode("utf-8"))
    assert detect_format(p) == "conll"
    corpus = read(p)
    assert [r["text"] for r in corpus] == ["Angela Merkel visited Paris", "Thanks"]
    sents = blocks(body)
    assert ents(corpus) == [oracle_bio([r[0] for r in s[1:] if r[0] != "word"],
                                       [r[1] for r in s[1:]], " ") if k == 0 else
                            oracle_bio([r[0] for r in s], [r[1] for r in s], " ")
                            for k, s in enumerate(sents)]
    assert corpus.report.notes["header row skipped"] == 1
    assert any("'word" in rule for rule in corpus.report.rules)


# ---- BIOES entities never closed ------------------------------------------------------------

def test_bioes_repairs_are_counted_with_their_place(tmp_path):
    body = ("北\tB-LOC\n京\tE-LOC\n的\tO\n张\tB-PER\n三\tO\n\n"  # B- then O
            "上\tB-LOC\n海\tI-LOC\n王\tB-PER\n五\tE-PER\n\n"  # B-LOC I-LOC meets B-PER
            "李\tS-PER\n四\tO\n")
    p = tmp_path / "msra.bioes"
    p.write_text(body, encoding="utf-8")
    corpus = read(p)
    assert "tag scheme bioes" in corpus.report.rules[0]
    assert corpus.report.skipped == {"B- tag not closed by E-": 2}
    assert [m.split(": ")[0] for m in corpus.report.messages] == [f"{p}:4", f"{p}:7"]
    assert ents(corpus) == [[("北京", "LOC"), ("张", "PER")],
                            [("上海", "LOC"), ("王五", "PER")], [("李", "PER")]]


# ---- TSV span lists: a header row; space-separated characters -----------------------------

def test_tsv_header_and_spaced_characters_with_character_offsets(tmp_path):
    lines = ["text\tlabels",
             '我 爱 北 京 天 安 门\t[["LOC", 2, 4], ["LOC", 4, 7]]',
             '张 三 在 上 海\t[["PER", 0, 2], ["LOC", 3, 5]]',
             "今 天 晴\t[]"]
    p = tmp_path / "export.tsv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert detect_format(p) == "tsv"
    corpus = read(p)
    # oracle: the characters without the spaces, offsets into them
    want_texts, want = [], []
    for line in lines[1:]:
        text, spans = line.split("\t")
        chars = text.replace(" ", "")
        want_texts.append(chars)
        want.append([(chars[s:e], lab) for lab, s, e in json.loads(spans)])
    assert [r["text"] for r in corpus] == want_texts
    assert ents(corpus) == want
    assert corpus.report.notes == {"header row skipped": 1, "spaced text read as characters": 3}
    # the same text with offsets into the spaced text is read as it stands
    q = tmp_path / "spaced.tsv"
    q.write_text('我 爱 北 京\t[["LOC", 4, 7]]\n', encoding="utf-8")
    assert ents(read(q)) == [[("北 京", "LOC")]]
    assert read(q, offsets="chars").report.skipped == {"offsets out of range": 1}


# ---- PubTator ---------------------------------------------------------------------------------

NCBI = """\
10021369|t|Identification of APC2, a homologue of the adenomatous polyposis coli tumour suppressor.
10021369|a|The adenomatous polyposis coli (APC) tumour-suppressor protein controls the Wnt signalling pathway.
10021369\t43\t76\tadenomatous polyposis coli tumour\tModifier\tD011125
10021369\t93\t119\tadenomatous polyposis coli\tSpecificDisease\tD011125
10021369\t121\t124\tAPC\tSpecificDisease\tD011125

10192393|t|A common MSH2 mutation in English and North American HNPCC families.
10192393|a|Germline mutations in MSH2 were found in colorectal cancer.
10192393\t53\t58\tHNPCC\tSpecificDisease\tD003123
10192393\t110\t127\tcolorectal cancer\tDiseaseClass\tD015179
10192393\t110\t115\tcolon\tDiseaseClass\tD015179

"""

CDR = """\
227508|t|Naloxone reverses the antihypertensive effect of clonidine.
227508|a|In unanesthetized, spontaneously hypertensive rats the decrease in blood pressure and heart rate produced by intravenous clonidine was reversed.
227508\t0\t8\tNaloxone\tChemical\tD009270
227508\t49\t58\tclonidine\tChemical\tD003000
227508\t93\t105\thypertensive\tDisease\tD006973
227508\t181\t190\tclonidine\tChemical\tD003000
227508\t195\t203\treversed\tChemical\t-1
227508\tCID\tD003000\tD006973

354896|t|Lidocaine-induced cardiac asystole.
354896|a|Intravenous administration of a single 50 mg bolus of lidocaine.
354896\t0\t9\tLidocaine\tChemical\tD008012
354896\t18\t34\tcardiac asystole\tDisease\tD006323|D006333\tcardiac asystole|asystole
354896\tCID\tD008012\tD006323
"""


def pubtator_oracle(text: str) -> dict:
    """Oracle: documents, mentions whose string matches the document, relation lines."""
    docs, out = {}, {"mentions": 0, "mismatched": 0, "relations": 0, "docs": 0}
    for line in text.splitlines():
        if "|t|" in line or "|a|" in line:
            pmid, kind, body = line.split("|", 2)
            docs[pmid] = body if kind == "t" else docs[pmid] + " " + body
            out["docs"] += kind == "t"
        elif line.strip():
            cols = line.split("\t")
            if cols[1].isdigit():
                s, e = int(cols[1]), int(cols[2])
                good = docs[cols[0]][s:e] == cols[3]
                out["mentions"] += good
                out["mismatched"] += not good
            else:
                out["relations"] += 1
    return out


@pytest.mark.parametrize("name,body", [("NCBItrainset_corpus.txt", NCBI),
                                       ("CDR_TrainingSet.PubTator.txt", CDR)])
def test_pubtator_read_with_no_options_against_an_oracle(tmp_path, name, body):
    p = tmp_path / name
    p.write_text(body, encoding="utf-8")
    assert detect_format(p) == "pubtator"
    corpus = read(p)
    want = pubtator_oracle(body)
    assert len(corpus) == want["docs"]
    assert corpus.report.entities == want["mentions"]
    assert corpus.report.skipped.get("mention mismatch", 0) == want["mismatched"]
    for r in corpus:
        for e in r["entities"]:
            assert e["db_id"]  # every mention keeps its database id
    # one relation line per id pair, whatever the number of mention pairs
    pairs = {(x["label"], *x["db_ids"]) for r in corpus for x in r.get("relations", [])}
    assert len(pairs) == want["relations"]


def test_pubtator_relations_link_every_mention_of_the_ids(tmp_path):
    p = tmp_path / "cdr.txt"
    p.write_text(CDR, encoding="utf-8")
    doc = read(p)[0]
    rels = [(doc["text"][doc["entities"][x["head"]]["start"]:doc["entities"][x["head"]]["end"]],
             x["head"], x["label"]) for x in doc["relations"]]
    # clonidine is mentioned twice: both mentions are heads of the CID relation
    assert [(m, lab) for m, _, lab in rels] == [("clonidine", "CID"), ("clonidine", "CID")]
    assert doc["entities"][4]["db_id"] == "-1"  # "reversed" is kept, id as the file says
    assert read(p).report.skipped == {}
    composite = read(p)[1]["entities"][1]
    assert composite["db_id"] == "D006323|D006333"
    assert composite["columns"] == ["cardiac asystole|asystole"]


def test_pubtator_round_trip_and_misplaced_mentions(tmp_path):
    p = tmp_path / "cdr.txt"
    p.write_text(CDR, encoding="utf-8")
    out = tmp_path / "again.pubtator"
    write(read(p), out)
    assert out.read_text(encoding="utf-8").strip() == CDR.strip()
    q = tmp_path / "ncbi.txt"
    q.write_text(NCBI, encoding="utf-8")
    corpus = read(q)
    assert corpus.report.skipped == {"mention mismatch": 1}  # "colon" at 110 is "color"
    assert "ncbi.txt:11: mention mismatch" in corpus.report.messages[0]


# ---- DyGIE / DyGIE++ ------------------------------------------------------------------------

SCIERC = [
    {"clusters": [[[0, 0], [7, 7]]],
     "sentences": [["English", "is", "shown", "to", "be", "trans-context-free", "."],
                   ["It", "uses", "a", "parser", "on", "the", "basis", "of", "Gildea", "and",
                    "Jurafsky", "'s", "model", "."]],
     "ner": [[[0, 0, "Material"], [5, 5, "OtherScientificTerm"]],
             [[7, 7, "Generic"], [10, 10, "Method"], [15, 19, "Method"], [15, 17, "Generic"]]],
     "relations": [[[5, 5, 0, 0, "FEATURE-OF"]], [[19, 19, 10, 10, "USED-FOR"],
                                                   [15, 19, 10, 10, "USED-FOR"]]],
     "doc_key": "J87-1003", "dataset": "scierc"},
    {"doc_key": "P05-1", "dataset": "scierc", "sentences": [["We", "propose", "a", "method"]],
     "ner": [[[3, 3, "Generic"]]], "relations": [[]], "clusters": []},
]


def test_dygie_documents_and_sentences_against_an_oracle(tmp_path):
    p = tmp_path / "train.json"
    p.write_text("".join(json.dumps(d) + "\n" for d in SCIERC), encoding="utf-8")
    assert detect_format(p) == "dygie"
    docs = read(p)
    # oracle: document token indices, ends inclusive, mention = the tokens joined by spaces
    want = []
    for d in SCIERC:
        toks = [t for s in d["sentences"] for t in s]
        want.append([(" ".join(toks[s:e + 1]), lab) for sent in d["ner"] for s, e, lab in sent])
    assert sorted(map(sorted, ents(docs))) == sorted(map(sorted, want))
    assert docs[0]["id"] == "J87-1003" and docs[0]["dataset"] == "scierc"
    assert docs[0]["text"].split("\n")[1].startswith("It uses a parser")
    # one relation has an argument (token 19, '.') that is no entity: counted, not read
    assert docs.report.skipped == {"relation argument not an entity": 1}
    assert docs.report.relations == 2
    c = docs[0]["clusters"][0]
    assert [docs[0]["text"][s:e] for s, e in c] == ["English", "It"]
    sents = read(p, unit="sentence")
    assert len(sents) == sum(len(d["sentences"]) for d in SCIERC)
    assert sents.report.skipped["coreference clusters dropped"] == 1
    rel = sents[1]["relations"][0]
    ent = sents[1]["entities"]
    assert (sents[1]["text"][ent[rel["head"]]["start"]:ent[rel["head"]]["end"]],
            rel["label"]) == ("Gildea and Jurafsky 's model", "USED-FOR")


def test_dygie_round_trip(tmp_path):
    p = tmp_path / "train.json"
    clean = json.loads(json.dumps(SCIERC))
    clean[0]["relations"][1] = [[15, 19, 10, 10, "USED-FOR"]]
    p.write_text("".join(json.dumps(d) + "\n" for d in clean), encoding="utf-8")
    out = tmp_path / "again.json"
    first = read(p)
    write(first, out, "dygie")
    back = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    for a, b in zip(clean, back, strict=True):
        assert a["sentences"] == b["sentences"] and a["doc_key"] == b["doc_key"]
        assert [sorted(map(tuple, s)) for s in a["ner"]] == [sorted(map(tuple, s))
                                                             for s in b["ner"]]
        assert a["relations"] == b["relations"] and a["clusters"] == b.get("clusters", [])
    assert read(out).records == first.records


# ---- refusals give the file's real reason ------------------------------------------------------

def test_a_text_file_opening_with_a_brace_is_called_text_not_bad_json(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("{draft} Meeting notes from Monday\nAlice will call Bob\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"E104.*plain text") as err:
        read(p)
    assert "JSON" not in str(err.value)
    pd = tmp_path / "199801.txt"  # People's Daily opens lines with bracketed compounds
    pd.write_text("[中国/ns 政府/n]nt 发言人/n 说/v\n江/nr 泽民/nr 讲话/v\n", encoding="utf-8")
    assert detect_format(pd) == "wordtag"
    assert ents(read(pd)) == [[("中国", "LOC"), ("中国政府", "ORG")], [("江", "PER"),
                                                                   ("泽民", "PER")]]


# ---- scoring two files -----------------------------------------------------------------------

GOLD = "Alice\tB-PER\nvisited\tO\nNew\tB-LOC\nYork\tI-LOC\n\nBob\tB-PER\nslept\tO\n"


def test_score_files_any_two_formats_against_a_worked_example(tmp_path):
    from gpner.metrics import score_files

    gold = tmp_path / "gold.bio"
    gold.write_text(GOLD, encoding="utf-8")
    pred = tmp_path / "pred.jsonl"  # another system's output, in the other order
    pred.write_text(
        json.dumps({"text": "Bob slept", "entities": [{"start": 0, "end": 3, "label": "ORG"}]})
        + "\n" + json.dumps({"text": "Alice visited New York", "entities": [
            {"start": 0, "end": 5, "label": "PER"}, {"start": 18, "end": 22, "label": "LOC"}]})
        + "\n", encoding="utf-8")
    result, _, aligned = score_files(gold, pred)
    # by hand: gold Alice/PER, New York/LOC, Bob/PER; predicted Alice/PER (tp), York/LOC (fp),
    # Bob/ORG (fp); tp 1, fp 2, fn 2: P 1/3, R 1/3
    assert (result["tp"], result["fp"], result["fn"]) == (1, 2, 2)
    assert result["f1"] == pytest.approx(1 / 3)
    # the partial schema ignores types: Bob is correct there, New York/York partial
    assert (result["schemas"]["partial"]["correct"], result["schemas"]["partial"]["partial"]) \
        == (2, 1)
    assert aligned[0]["text"] == "Alice visited New York"
    bad = tmp_path / "other.jsonl"
    bad.write_text(json.dumps({"text": "Alice visited New York"}) + "\n" +
                   json.dumps({"text": "Bob sleeps"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"E114.*record 2 \('Bob slept'\)"):
        score_files(gold, bad)


def test_score_files_agrees_with_seqeval_strict(tmp_path):
    seqeval = pytest.importorskip("seqeval.metrics")
    from seqeval.scheme import IOB2

    from gpner.metrics import score_files

    g = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG", "O"],
         ["B-LOC", "O", "B-PER"]]
    p = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "I-ORG", "O", "O"],
         ["B-LOC", "O", "B-PER"]]

    def column(tags):
        return "\n\n".join("\n".join(f"w{k}{i}\t{t}" for i, t in enumerate(s))
                           for k, s in enumerate(tags)) + "\n"

    (tmp_path / "g.bio").write_text(column(g), encoding="utf-8")
    (tmp_path / "p.bio").write_text(column(p), encoding="utf-8")
    ours, _, _ = score_files(tmp_path / "g.bio", tmp_path / "p.bio")
    for name in ("precision", "recall", "f1"):
        theirs = getattr(seqeval, f"{name}_score")(g, p, mode="strict", scheme=IOB2)
        assert ours[name] == pytest.approx(theirs)


def test_evaluate_cli_scores_two_files_and_compares_a_third(tmp_path):
    gold = tmp_path / "gold.bio"
    gold.write_text(GOLD, encoding="utf-8")
    a = tmp_path / "a.jsonl"
    a.write_text(json.dumps({"text": "Alice visited New York", "entities": [
        {"start": 0, "end": 5, "label": "PER"}]}) + "\n"
        + json.dumps({"text": "Bob slept", "entities": []}) + "\n", encoding="utf-8")
    b = tmp_path / "b.bio"
    b.write_text(GOLD, encoding="utf-8")  # a perfect system
    exe = str(Path(sys.executable).parent / "gpner")
    res = subprocess.run([exe, "evaluate", gold, a, "--json", "--compare", b,
                          "--errors", tmp_path / "err.jsonl"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["tp"], out["fp"], out["fn"]) == (1, 0, 2)
    assert out["compare"]["f1_b"] == 1.0 and out["compare"]["delta"] > 0
    errs = [json.loads(x) for x in (tmp_path / "err.jsonl").read_text().splitlines()]
    assert sorted(e["text"] for e in errs) == ["Bob", "New York"]
    assert "tag scheme bio" in res.stderr
    res = subprocess.run([exe, "evaluate", gold, a, "--threshold", "0.5"], capture_output=True,
                         text=True)
    assert res.returncode == 2 and "E305" in res.stderr


def test_the_scheme_can_be_named(tmp_path):
    p = tmp_path / "x.bio"
    p.write_text("a\tB-X\nb\tO\nc\tI-X\n", encoding="utf-8")  # 1 and 1: BIO, and said so
    corpus = read(p)
    assert "too few to tell" in corpus.report.rules[0]
    assert read(p, scheme="iob1").report.skipped == {
        "B- tag not between two entities (IOB1)": 1}
    many = tmp_path / "many.bio"
    many.write_text("\n\n".join(["a\tB-X\nb\tO\nc\tI-Y"] * 12) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"E104.*12 entities open with B-.*12 with I-.*"
                       r"--scheme-in"):
        read(many)


def test_every_line_of_an_oracle_parse_is_accounted_for():
    # the oracles above are not the reader: a sanity check that they see what they should
    assert pubtator_oracle(CDR) == {"mentions": 7, "mismatched": 0, "relations": 2, "docs": 2}
    assert pubtator_oracle(NCBI) == {"mentions": 5, "mismatched": 1, "relations": 0, "docs": 2}
    assert re.fullmatch(r"\S+", "科") and len(blocks(WEIBO)) == 2


def test_numbers_in_a_word_level_file_are_not_taken_for_glued_digits(tmp_path):
    # a CoNLL sports table: many two-digit numbers, which are no evidence of glued digits
    words = "Soccer - English league results on Saturday : Arsenal 12 Chelsea 10 Leeds 22 " \
            "Everton 31 Fulham 40 Spurs 15"
    rows = [f"{w} B-ORG" if w in ("Arsenal", "Chelsea", "Leeds") else f"{w} O"
            for w in words.split()]
    p = tmp_path / "scores.txt"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    corpus = read(p)  # 6 of 20 tokens are one character and a digit: numbers, not glue
    assert corpus[0]["text"] == words
    assert "glued digit taken out" not in corpus.report.notes


def test_a_stray_bioes_tag_in_a_bio_file_is_counted_and_real_mixing_refused(tmp_path):
    sents = ["Alice\tB-PER\nSmith\tI-PER\nran\tO"] * 9 + ["Bob\tS-PER\nran\tO"]
    p = tmp_path / "mostly.bio"
    p.write_text("\n\n".join(sents) + "\n", encoding="utf-8")
    corpus = read(p)
    assert "tag scheme bio" in corpus.report.rules[0]
    assert corpus.report.skipped == {"E-/S- tag in a BIO file": 1}
    assert ents(corpus)[-1] == [("Bob", "PER")]
    mixed = tmp_path / "mixed.bio"
    mixed.write_text("\n\n".join(["A\tB-PER\nB\tI-PER\nc\tO"] * 3 + ["D\tB-LOC\nE\tE-LOC"] * 2)
                     + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"E104.*mix schemes.*--scheme-in"):
        read(mixed)


# ---- comment lines, an index column, nested tag columns, IO tags ---------------------------

GERMEVAL = """\
# http://de.wikipedia.org/wiki/Manfred_Korfmann [2009-10-17]
1\tAufgrund\tO\tO
2\tseiner\tO\tO
3\tInitiative\tO\tO
4\tfand\tO\tO
5\tin\tO\tO
6\tKonstanz\tB-LOC\tO
7\tdie\tO\tO
8\tBayerische\tB-ORG\tB-LOCderiv
9\tLandesbank\tI-ORG\tO
10\tstatt\tO\tO

# http://de.wikipedia.org/wiki/Ulm [2009-10-17]
1\tIn\tO\tO
2\tUlm\tB-LOC\tO
3\tlebt\tO\tO
4\tHans\tB-PER\tO
5\tMeier\tI-PER\tO
"""


def test_germeval_comments_index_column_and_nested_tag_columns(tmp_path):
    p = tmp_path / "NER-de-train.tsv"
    p.write_text(GERMEVAL, encoding="utf-8")
    assert detect_format(p) == "conll"
    corpus = read(p)
    # oracle: token in column 2, the outer (3) and inner (4) columns decoded one by one
    want_texts, want = [], []
    for rows in blocks("\n".join(x for x in GERMEVAL.split("\n") if not x.startswith("#"))):
        toks = [r[1] for r in rows]
        want_texts.append(" ".join(toks))
        want.append(sorted(oracle_bio(toks, [r[2] for r in rows], " ")
                           + oracle_bio(toks, [r[3] for r in rows], " ")))
    assert [r["text"] for r in corpus] == want_texts
    assert [sorted(x) for x in ents(corpus)] == want
    assert ("Bayerische", "LOCderiv") in want[0] and ("Bayerische Landesbank", "ORG") in want[0]
    assert corpus.report.notes["comment line skipped"] == 2
    rules = " ".join(corpus.report.rules)
    assert "the token is column 2" in rules and "columns 3, 4 are all tags" in rules


MULTICONER = """\
# id bb81b9a7-2d2e-4ec3-a7d4-4fa3f4b0c5b4\tdomain=en
the _ _ O
original _ _ O
ferrari _ _ B-PROD
daytona _ _ I-PROD
was _ _ O
built _ _ O
in _ _ O
maranello _ _ B-LOC

# id 0b9c1a5e-7d1d-4a8f-9d7e-2f1c1c7d3a21\tdomain=en
# a hashtag token below is a token, not a comment
# _ _ O
tbt _ _ O
"""


def test_multiconer_comment_lines_and_a_hashtag_token(tmp_path):
    p = tmp_path / "en_train.conll"
    p.write_text(MULTICONER, encoding="utf-8")
    corpus = read(p)
    assert [r["text"] for r in corpus] == [
        "the original ferrari daytona was built in maranello", "# tbt"]
    assert ents(corpus) == [[("ferrari daytona", "PROD"), ("maranello", "LOC")], []]
    assert corpus.report.notes["comment line skipped"] == 3


FEWNERD = """\
Paul\tperson-artist/author
Auster\tperson-artist/author
wrote\tO
in\tO
New\tlocation-GPE
York\tlocation-GPE
for\tO
The\tart-writtenart
New\tart-writtenart
Yorker\tart-writtenart
.\tO

London\tlocation-GPE
Paris\tlocation-GPE
and\tO
Rome\tlocation-GPE
"""


def test_fewnerd_io_tags_read_as_runs_of_one_type(tmp_path):
    p = tmp_path / "supervised_train.txt"
    p.write_text(FEWNERD, encoding="utf-8")
    assert detect_format(p) == "conll"
    corpus = read(p)
    want = []
    for rows in blocks(FEWNERD):  # oracle: a run of one type is one entity
        found, i = [], 0
        while i < len(rows):
            if rows[i][1] == "O":
                i += 1
                continue
            j = i
            while j < len(rows) and rows[j][1] == rows[i][1]:
                j += 1
            found.append((" ".join(r[0] for r in rows[i:j]), rows[i][1]))
            i = j
        want.append(found)
    assert ents(corpus) == want
    assert ("London Paris", "location-GPE") in want[1]  # IO cannot part adjacent entities
    assert any("IO" in rule for rule in corpus.report.rules)


def test_plain_text_of_two_words_a_line_is_not_an_io_file(tmp_path):
    p = tmp_path / "pairs.txt"
    p.write_text("hello world\ngood morning\nsee you\nthank you\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"E104.*plain text"):
        read(p)


def test_label_studio_json_min_export_and_unknown_arrays_refused(tmp_path):
    # Label Studio's JSON-MIN export: data fields at the top, spans under the control's name
    tasks = [{"id": 7, "text": "Alice visited Paris", "annotator": 1, "lead_time": 3.2,
              "ner": [{"start": 0, "end": 5, "text": "Alice", "labels": ["PER"]},
                      {"start": 14, "end": 19, "text": "Paris", "labels": ["LOC", "GPE"]}]},
             {"id": 8, "text": "Nothing here"}]
    p = tmp_path / "project-1-at-2026.json"
    p.write_text(json.dumps(tasks), encoding="utf-8")
    assert detect_format(p) == "label-studio"
    corpus = read(p)
    want = [[(t["text"][s["start"]:s["end"]], lab) for s in t.get("ner", [])
             for lab in s["labels"]] for t in tasks]
    assert [sorted(x) for x in ents(corpus)] == [sorted(x) for x in want]
    assert corpus[0]["id"] == 7
    # an array whose spans sit in a layout gpner does not know is refused, never read as
    # texts without entities
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps([{"text": "Alice", "spans": [{"begin": 0, "stop": 5,
                                                            "type": "PER"}]}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"E106.*'spans'"):
        read(odd)


PANX = """\
en:Zentralblatt\tB-ORG
en:MATH\tI-ORG
en:is\tO
en:a\tO
en:review\tO
en:journal\tO

en:It\tO
en:is\tO
en:based\tO
en:in\tO
en:Berlin\tB-LOC
en:,\tO
en:Germany\tB-LOC
"""


def test_wikiann_language_prefixes_are_taken_out(tmp_path):
    p = tmp_path / "train-en.tsv"
    p.write_text(PANX, encoding="utf-8")
    corpus = read(p)
    want = []
    for rows in blocks(PANX):  # oracle: everything after the first colon is the token
        toks = [t.split(":", 1)[1] for t, _ in rows]
        want.append(oracle_bio(toks, [tag for _, tag in rows], " "))
    assert ents(corpus) == want
    assert corpus[0]["text"] == "Zentralblatt MATH is a review journal"
    assert corpus.report.notes["glued prefix taken out"] == 13
    # a few URLs or times ("re:", "at:") in an ordinary file are left alone
    q = tmp_path / "plain.txt"
    q.write_text("\n".join(f"{w}\tO" for w in "see re:ply and the 12 other words of this "
                           "little file".split()) + "\n", encoding="utf-8")
    assert read(q)[0]["text"].startswith("see re:ply")


def test_score_files_scores_relations_when_gold_has_them(tmp_path):
    from gpner.metrics import score_files

    gold = tmp_path / "gold.pubtator"
    gold.write_text(CDR, encoding="utf-8")
    docs = read(gold).records
    pred = [dict(d) for d in docs]
    pred[1] = {**docs[1], "relations": []}  # the second document's one triple missed
    out = tmp_path / "pred.jsonl"
    write(pred, out)
    result, _, _ = score_files(gold, out)
    # by hand: gold triples = the 2 clonidine->hypertensive mention pairs + 1 lidocaine one;
    # the prediction keeps the first document's 2: P = 1, R = 2/3
    assert (result["tp"], result["fp"], result["fn"]) == (2, 0, 1)  # strict triples
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["entities"]["f1"] == 1.0


MIT = """\
O\twhat
O\tmovies
B-ACTOR\tsteve
I-ACTOR\tmcqueen
O\tstarred
O\tin

B-GENRE\tscience
I-GENRE\tfiction
O\tfilms
O\tof
B-YEAR\t1980
"""


def test_mit_corpora_tag_first_columns(tmp_path):
    p = tmp_path / "engtrain.bio"
    p.write_text(MIT, encoding="utf-8")
    assert detect_format(p) == "conll"
    corpus = read(p)
    want = [oracle_bio([r[1] for r in rows], [r[0] for r in rows], " ")
            for rows in blocks(MIT)]
    assert ents(corpus) == want
    assert corpus[0]["text"] == "what movies steve mcqueen starred in"
    assert any("first column" in rule for rule in corpus.report.rules)


def test_hugging_face_token_exports_with_string_or_integer_tags(tmp_path):
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    rows = [{"id": "0", "tokens": ["EU", "rejects", "German", "call"],
             "pos_tags": [22, 42, 16, 21], "ner_tags": [3, 0, 7, 0]},
            {"id": "1", "tokens": ["Peter", "Blackburn"], "pos_tags": [22, 22],
             "ner_tags": [1, 2]}]
    ints = tmp_path / "train.jsonl"
    ints.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert detect_format(ints) == "tokens"
    with pytest.raises(DataError, match=r"E104.*holds integers.*--tag-names"):
        read(ints)  # never read with made-up labels
    corpus = read(ints, tag_names=",".join(names))
    want = [oracle_bio(r["tokens"], [names[t] for t in r["ner_tags"]], " ") for r in rows]
    assert ents(corpus) == want and corpus[0]["id"] == "0"
    strs = tmp_path / "wnut.json"  # the same with tag strings, as a JSON array
    strs.write_text(json.dumps([{"tokens": r["tokens"], "ner_tags": [names[t] for t in
                                                                    r["ner_tags"]]}
                                for r in rows]), encoding="utf-8")
    assert detect_format(strs) == "tokens"
    assert ents(read(strs)) == want
