"""Fuzzing the readers: any bytes, any JSON, any lines give a clear error (a GpnerError whose
message names the file) or an exact read (counts that add up; valid records read back as
written). Never a traceback from somewhere inside."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpner.data.formats import READERS, read, write
from gpner.errors import GpnerError

# GPNER_FUZZ_EXAMPLES=5000 for a long hunt with fresh examples; the default run is quick and
# draws the same ones every time (tests/conftest.py)
FUZZ = settings(max_examples=int(os.environ.get("GPNER_FUZZ_EXAMPLES", 60)), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
FORMATS = [None, *(f for f in READERS if f != "spacy")]


def read_or_refuse(path: Path, fmt: str | None):
    """The read, or None after checking the refusal is a clear one."""
    try:
        corpus = read(path, fmt)
    except GpnerError as exc:
        assert str(exc).startswith(f"[{exc.code}] ")
        assert str(path) in str(exc) or exc.code in ("E109", "E303"), str(exc)
        return None
    rep = corpus.report
    assert rep.records == len(corpus.records)
    assert rep.entities == sum(len(r["entities"]) for r in corpus.records)
    for r in corpus.records:
        for e in r["entities"]:
            assert 0 <= e["start"] < e["end"] <= len(r["text"])
            assert isinstance(e["label"], str) and e["label"]
        for rel in r.get("relations", []):
            assert 0 <= rel["head"] < len(r["entities"]) and 0 <= rel["tail"] < len(r["entities"])
    return corpus


def in_file(data: bytes, suffix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="gpner-fuzz-"))
    path = folder / f"input{suffix}"
    path.write_bytes(data)
    return path


@FUZZ
@given(data=st.binary(max_size=300), fmt=st.sampled_from(FORMATS),
       suffix=st.sampled_from([".jsonl", ".json", ".txt", ".bio", ".tsv"]))
def test_any_bytes(data, fmt, suffix):
    read_or_refuse(in_file(data, suffix), fmt)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 12) | st.floats(allow_nan=True)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["text", "entities", "start", "end", "label", "relations", "head",
                         "tail", "spans", "tokens", "ner", "index", "type", "label_list",
                         "spo_list", "triple_list", "start_idx", "end_idx", "start_offset",
                         "end_offset", "answer", "sentence", "entity_mentions", "id", "data",
                         "annotations"]), inner, max_size=5),
    max_leaves=20)


@FUZZ
@given(lines=st.lists(json_values, min_size=1, max_size=4), fmt=st.sampled_from(FORMATS),
       array=st.booleans())
def test_any_json(lines, fmt, array):
    text = (json.dumps(lines) if array else
            "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in lines))
    read_or_refuse(in_file(text.encode(), ".json"), fmt)


# records shaped like each format's, with anything in the slots
ENTITY_KEYS = ["start", "end", "label", "type", "entity_type", "index", "start_idx", "end_idx",
               "start_offset", "end_offset", "text", "head", "tail"]
entity_like = st.dictionaries(st.sampled_from(ENTITY_KEYS), json_values, max_size=4)
slot = st.one_of(json_values, st.lists(entity_like, max_size=3),
                 st.lists(st.text(alphabet="ab中 ", max_size=3), max_size=4))
SHAPES = {"jsonl": ["text", "entities", "relations"], "cluener": ["text", "label"],
          "tokens": ["tokens", "entity_mentions", "sentence", "ner", "entities", "relations"],
          "prodigy": ["text", "spans", "answer"], "casrel": ["text", "triple_list"],
          "spo": ["text", "spo_list"], "doccano": ["text", "label", "entities"],
          "label-studio": ["data", "annotations"], "cmeee": ["text", "entities"]}


@st.composite
def shaped(draw, fmt):
    keys = SHAPES[fmt]
    obj = {k: draw(slot) for k in keys if draw(st.booleans()) or k in ("text", "tokens")}
    if "text" in obj and draw(st.booleans()):
        obj["text"] = draw(st.text(alphabet="ab中 ", max_size=6))
    return obj


@FUZZ
@given(data=st.data(), fmt=st.sampled_from(sorted(SHAPES)), detect=st.booleans(),
       array=st.booleans())
def test_records_shaped_like_each_format(data, fmt, detect, array):
    objs = data.draw(st.lists(shaped(fmt), min_size=1, max_size=3))
    text = (json.dumps(objs) if array else
            "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in objs))
    read_or_refuse(in_file(text.encode(), ".json"), None if detect else fmt)


words = st.text(alphabet="ab中国 \t/[]-BIOESM0", min_size=0, max_size=12)


@FUZZ
@given(lines=st.lists(words, max_size=8), fmt=st.sampled_from([None, "conll", "wordtag",
                                                               "tsv", "brat"]))
def test_any_lines(lines, fmt):
    read_or_refuse(in_file("\n".join(lines).encode(), ".txt"), fmt)


@st.composite
def records(draw):
    text = draw(st.text(alphabet="ab 中国\n", min_size=1, max_size=12))
    spans = draw(st.lists(st.tuples(st.integers(0, len(text) - 1), st.integers(1, 4),
                                    st.sampled_from(["PER", "LOC"])), max_size=4))
    ents = sorted({(s, min(s + n, len(text)), lab) for s, n, lab in spans})
    return {"text": text, "entities": [{"start": s, "end": e, "label": lab}
                                       for s, e, lab in ents]}


@FUZZ
@given(recs=st.lists(records(), min_size=1, max_size=5))
def test_valid_records_read_back_exactly(recs):
    folder = Path(tempfile.mkdtemp(prefix="gpner-fuzz-"))
    write(recs, folder / "a.jsonl")
    assert read(folder / "a.jsonl").records == recs
    write(recs, folder / "brat")  # BRAT keeps text byte for byte, offsets included
    back = read(folder / "brat").records
    assert [(r["text"], r["entities"]) for r in back] == [(r["text"], r["entities"])
                                                          for r in recs]
