"""Tag schemes: round trips for random spans, worked decodes, reported violations, detection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpner.data.tagging import detect_scheme, spans_to_tags, split_tag
from gpner.data.tagging import tags_to_spans as decode


def tags_to_spans(*args):
    """(start, end exclusive, label) triples of the decoded TokenSpans."""
    return [tuple(s[:3]) for s in decode(*args)]


@st.composite
def flat_spans(draw):
    n = draw(st.integers(0, 20))
    spans, pos = [], 0
    while pos < n:
        pos += draw(st.integers(0, 3))
        width = draw(st.integers(1, 4))
        if pos + width > n:
            break
        spans.append((pos, pos + width, draw(st.sampled_from(["PER", "LOC", "ORG"]))))
        pos += width
    return n, spans


@pytest.mark.parametrize("scheme", ["bio", "iob1", "bioes", "bmes"])
@given(case=flat_spans())
def test_round_trip(scheme, case):
    n, spans = case
    tags = spans_to_tags(n, spans, scheme)
    assert tags_to_spans(tags, scheme) == spans


def test_worked_examples():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    assert tags_to_spans(tags) == [(0, 2, "PER"), (3, 4, "LOC"), (4, 6, "LOC")]
    assert spans_to_tags(6, [(0, 2, "PER"), (3, 4, "LOC"), (4, 6, "LOC")], "iob1") == \
        ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC"]
    assert spans_to_tags(5, [(0, 1, "PER"), (1, 4, "LOC")], "bmes") == \
        ["S-PER", "B-LOC", "M-LOC", "E-LOC", "O"]
    assert tags_to_spans(["U-PER", "B-LOC", "L-LOC"], "bioes") == [(0, 1, "PER"), (1, 3, "LOC")]


def test_violations_are_reported_and_repaired():
    seen = []
    spans = tags_to_spans(["O", "I-PER", "I-PER", "B-LOC", "I-ORG"], "bio",
                          lambda i, reason, detail: seen.append((i, reason)))
    assert spans == [(1, 3, "PER"), (3, 4, "LOC"), (4, 5, "ORG")]
    assert seen == [(1, "I- tag without B-"), (4, "I- tag without B-")]
    seen.clear()
    assert tags_to_spans(["O", "E-PER"], "bioes", lambda *a: seen.append(a)) == [(1, 2, "PER")]
    assert seen[0][1] == "E- tag without B-"
    # IOB1 opens entities with I- legitimately: nothing to report
    seen.clear()
    assert tags_to_spans(["I-PER", "O"], "iob1", lambda *a: seen.append(a)) == [(0, 1, "PER")]
    assert seen == []


def test_nested_cannot_be_tagged():
    with pytest.raises(ValueError, match="nested"):
        spans_to_tags(5, [(0, 3, "ORG"), (1, 2, "LOC")])


def test_detect_scheme():
    assert detect_scheme([["B-PER", "I-PER", "O"]]) == "bio"
    assert detect_scheme([["I-PER", "I-PER", "B-PER", "O", "I-LOC"]]) == "iob1"
    assert detect_scheme([["S-PER", "B-LOC", "I-LOC", "E-LOC"]]) == "bioes"
    assert detect_scheme([["S-PER", "B-LOC", "M-LOC", "E-LOC"]]) == "bmes"
    assert detect_scheme([["O", "O"]]) == "bio"


def test_split_tag_rejects_garbage():
    assert split_tag("B_PER") == ("B", "PER")
    with pytest.raises(ValueError, match="PREFIX-LABEL"):
        split_tag("PERSON")
