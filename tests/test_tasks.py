"""The NER task: targets built by the collator as CPU tensors, the tag loss against a hand-made
case, and one registry of heads that the model, the config and the CLI all read."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from gpner.records import Report
from gpner.tasks import HEADS
from gpner.tasks.ner import NerTask
from gpner.text.alignment import TokenSpan
from gpner.training.build import build
from gpner.training.examples import Collator, make_examples
from tests.helpers import tiny_config, tiny_data


@pytest.mark.parametrize("head", list(HEADS))
def test_collated_batches_hold_only_cpu_tensors(head):
    model, featurizer, task, config = build(tiny_config(head=head), tiny_data(8))
    ex = make_examples(tiny_data(8), featurizer, config.labels, 64, Report("t"),
                       flat_only=not task.span_head)
    batch = Collator(featurizer, task)(ex)
    assert all(torch.is_tensor(v) and v.device.type == "cpu" for v in batch.values())
    assert set(batch) >= {"mask", "positives" if task.span_head else "tags"}
    out = model(batch)
    assert all(torch.is_tensor(v) for v in out.values())
    assert ("entities" in out) == task.span_head
    assert torch.isfinite(task.loss(out, batch))


def test_span_targets_are_the_gold_cells():
    task = NerTask(["LOC", "PER"], "gp")
    spans = [[TokenSpan(1, 3, 0), TokenSpan(4, 5, 1)], [], [TokenSpan(0, 1, 1)]]
    t = task.targets(spans, {"mask": torch.ones(3, 6, dtype=torch.bool)})
    assert t["positives"].tolist() == [[0, 0, 1, 2], [0, 1, 4, 4], [2, 1, 0, 0]]  # (b, c, i, j)
    assert task.targets([[], []], {"mask": torch.ones(2, 3, dtype=torch.bool)}
                        )["positives"].shape == (0, 4)


def test_tag_targets_and_loss_by_hand():
    task = NerTask(["LOC", "PER"], "softmax")  # tags: O, B-LOC, I-LOC, B-PER, I-PER
    mask = torch.tensor([[True, True, False, True], [True, True, True, True]])
    spans = [[TokenSpan(0, 2, 1)], [TokenSpan(1, 4, 0)]]
    tags = task.targets(spans, {"mask": mask})["tags"]
    assert tags.tolist() == [[3, 4, 0, 0], [0, 1, 2, 2]]
    em = torch.arange(2 * 4 * 5, dtype=torch.float).view(2, 4, 5).sin()
    loss = task.loss({"entities.emissions": em}, {"mask": mask, "tags": tags})

    def ce(row, tag):
        return -(row[tag] - math.log(sum(math.exp(x) for x in row)))

    # token 2 of text 0 is not spannable: left out, and the mean is over 3 tokens
    e = em.tolist()
    text0 = (ce(e[0][0], 3) + ce(e[0][1], 4) + ce(e[0][3], 0)) / 3
    text1 = sum(ce(e[1][k], t) for k, t in enumerate([0, 1, 2, 2])) / 4
    assert loss.item() == pytest.approx((text0 + text1) / 2, rel=1e-6)


def test_one_registry_of_heads():
    """The model builds, the config accepts and the CLI offers exactly the registry's heads."""
    from gpner.cli import build_parser
    from gpner.training.config import TrainConfig

    for name, info in HEADS.items():
        TrainConfig(head=name).validate()
        head = NerTask(["A"], name).build_heads(8)["entities"]
        assert type(head) is info.cls()
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    head_option = next(a for a in train._actions if "--head" in a.option_strings)
    assert list(head_option.choices) == list(HEADS)
    # reading the registry (the CLI, config validation) does not import torch
    code = ("import sys, gpner.tasks, gpner.cli; gpner.cli.build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_crf_task_decodes_with_its_transitions():
    """The CRF head's decoding goes through its transition outputs (Viterbi), not the argmax."""
    em = torch.tensor([[[0.0, 2.0, 0.0], [0.0, 1.5, 1.0]]])  # alone: B-A, B-A
    trans = torch.zeros(3, 3)
    trans[1, 2] = 1.0  # B-A -> I-A: the path (B, I) scores 4 > (B, B) 3.5
    batch = {"mask": torch.ones(1, 2, dtype=torch.bool)}
    outputs = {"entities.emissions": em, "entities.start": torch.zeros(3),
               "entities.end": torch.zeros(3), "entities.transitions": trans}
    crf = NerTask(["A"], "crf").decode(outputs, batch)[0]
    assert crf.rows.tolist() == [[0, 0, 2]]  # (label, start, end)
    softmax = NerTask(["A"], "softmax").decode({"entities.emissions": em}, batch)[0]
    assert softmax.rows.tolist() == [[0, 0, 1], [0, 1, 2]]
    assert softmax.triples == [] and len(softmax.scores) == 2
