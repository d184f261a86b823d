"""The spaCy component: doc.spans holds every predicted span (nested included) and doc.ents the
flat ones, both equal to the predictor's own answers; spans off spaCy's token edges are
counted and reported; nlp.pipe batches; the pipeline saves with its model and loads alone; the
factory is found through the entry point; displaCy draws the spans."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys

import pytest

spacy = pytest.importorskip("spacy", reason="the spacy extra")

from gpner.prediction.loading import load  # noqa: E402

ZH = ["张伟在北京大学工作。", "李娜是上海银行的研究员，住在杭州。", "今天天气很好。"]
EN = ["The Bank of London opened a new office in Paris .", "Alice Johnson works at the "
      "University of Tokyo .", "Reporters met David Lee in Boston ."]


@pytest.fixture(scope="module")
def plain(nested_model_dir):
    return load(nested_model_dir, device="cpu")


def spans_of(spans):
    return [(s.start_char, s.end_char, s.label_) for s in spans]


def keys(entities):
    return [(e["start"], e["end"], e["label"]) for e in entities]


@pytest.mark.parametrize("lang, texts", [("zh", ZH), ("en", EN)])
def test_spans_and_ents_equal_the_predictors_nested_and_flat_answers(lang, texts,
                                                                     nested_model_dir, plain):
    nlp = spacy.blank(lang)
    nlp.add_pipe("gpner", config={"model": str(nested_model_dir), "spans_key": "sc"})
    docs = list(nlp.pipe(texts))
    nested, flat = plain.predict(texts), plain.predict(texts, flat=True)
    assert any(len(r["entities"]) > len(f["entities"]) for r, f in zip(nested, flat, strict=True))  # nested
    for doc, n, f in zip(docs, nested, flat, strict=True):
        assert sorted(spans_of(doc.spans["sc"])) == sorted(keys(n["entities"]))
        assert spans_of(doc.ents) == keys(f["entities"])
        by_key = {(e["start"], e["end"], e["label"]): e for e in n["entities"]}
        for s in doc.spans["sc"]:
            e = by_key[(s.start_char, s.end_char, s.label_)]
            assert (s._.score, s._.prob) == (e["score"], e["prob"])
        assert doc.user_data["gpner"]["not_placed"] == 0


class Stub:
    """A predictor answering hand-made entities, recording the batches it was given."""

    labels = ["A", "B"]

    def __init__(self, entities):
        self.entities, self.calls = entities, []

    def predict(self, texts, **kw):
        self.calls.append(list(texts))
        return [{"text": t, "entities": [dict(e, text=t[e["start"]:e["end"]])
                                         for e in self.entities]} for t in texts]


def test_spans_off_token_edges_are_counted_and_reported(caplog):
    ents = [{"start": 0, "end": 5, "label": "A", "score": 2.0, "prob": 0.98},  # "Bosto" of Boston
            {"start": 10, "end": 16, "label": "B", "score": 1.0, "prob": 0.88},  # "London"
            {"start": 10, "end": 16, "label": "A", "score": 0.5, "prob": 0.73}]  # same, two labels
    nlp = spacy.blank("en")
    comp = nlp.add_pipe("gpner", config={"model": "unused"})
    comp._predictor = Stub(ents)
    with caplog.at_level(logging.WARNING, "gpner.spacy"):
        doc = nlp("Boston to London")
    assert spans_of(doc.spans["sc"]) == [(10, 16, "B"), (10, 16, "A")]
    assert [s._.score for s in doc.spans["sc"]] == [1.0, 0.5]  # per label, not per offsets
    assert spans_of(doc.ents) == [(10, 16, "B")]
    assert doc.user_data["gpner"] == {"spans": 3, "placed": 2, "not_placed": 1}
    assert "1 of 3 spans do not fall on spaCy token edges" in caplog.text and "Bosto" in caplog.text
    nlp2 = spacy.blank("en")
    comp2 = nlp2.add_pipe("gpner", config={"model": "unused", "alignment_mode": "expand"})
    comp2._predictor = Stub(ents)
    doc = nlp2("Boston to London")
    assert (0, 6, "A") in spans_of(doc.spans["sc"])  # widened to the token
    assert doc.user_data["gpner"] == {"spans": 3, "placed": 3, "adjusted": 1, "not_placed": 0}
    assert comp.report["not_placed"] == 1 and comp2.report["adjusted"] == 1


def test_pipe_batches_through_the_predictor():
    nlp = spacy.blank("en")
    comp = nlp.add_pipe("gpner", config={"model": "unused"})
    comp._predictor = Stub([])
    docs = list(nlp.pipe([f"text {k}" for k in range(5)], batch_size=2))
    assert [len(c) for c in comp._predictor.calls] == [2, 2, 1]
    assert [d.text for d in docs] == [f"text {k}" for k in range(5)]


def test_the_saved_pipeline_carries_its_model(nested_model_dir, plain, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(nested_model_dir, model)
    nlp = spacy.blank("zh")
    nlp.add_pipe("gpner", config={"model": str(model), "threshold": 1.0})
    doc = nlp(ZH[1])
    want = spans_of(doc.spans["sc"])
    assert want == keys(plain.predict(ZH[1], threshold=1.0)["entities"])
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(model)  # the saved pipeline must not need it
    loaded = spacy.load(tmp_path / "pipeline")
    doc = loaded(ZH[1])
    assert spans_of(doc.spans["sc"]) == want
    assert loaded.get_pipe("gpner").threshold == 1.0


def test_the_factory_is_found_without_importing_gpner(nested_model_dir):
    code = ("import sys, spacy; nlp = spacy.blank('en'); "
            f"nlp.add_pipe('gpner', config={{'model': {str(nested_model_dir)!r}}}); "
            "doc = nlp('The Bank of London opened .'); "
            "print([(s.text, s.label_) for s in doc.spans['sc']])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "('Bank of London', 'ORG')" in out.stdout and "('London', 'LOC')" in out.stdout


def test_displacy_draws_the_nested_spans(nested_model_dir):
    from spacy import displacy

    nlp = spacy.blank("en")
    nlp.add_pipe("gpner", config={"model": str(nested_model_dir)})
    doc = nlp(EN[0])
    html = displacy.render(doc, style="span", options={"spans_key": "sc"})
    # a label tag per span start: ORG and LOC both start at "London"'s neighbourhood
    assert {"ORG", "LOC"} <= set(re.findall(r">\s*(ORG|LOC|PER)\s*<", html))
    assert "Bank" in html and "London" in html
