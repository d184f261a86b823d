"""Each regulariser computes what it claims."""

from __future__ import annotations

import pytest
import torch

from gpner.data import make_examples
from gpner.losses import gp_divergence
from gpner.model import collate
from gpner.records import Report
from gpner.regularizers import EMA, FGM, PGD, penalised_loss, rdrop_loss, vat_loss
from gpner.trainer import build
from tests.helpers import tiny_config, tiny_data


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    records = tiny_data(16)
    cfg = tiny_config()
    model, featurizer, meta = build(cfg, records)
    ex = make_examples(records, featurizer, meta["labels"], 64, Report("t"))
    return model, collate(ex, featurizer)


def test_rdrop_is_mean_of_two_passes_plus_divergence(setup):
    model, batch = setup
    model.train()
    torch.manual_seed(5)
    loss, s1 = rdrop_loss(model, batch, alpha=2.0)
    torch.manual_seed(5)  # the same two dropout masks again, by hand
    a, b = model(batch), model(batch)
    want = (model.loss(a, batch) + model.loss(b, batch)) / 2 + 2.0 * gp_divergence(a, b)
    assert torch.allclose(loss, want) and torch.equal(s1, a)
    assert gp_divergence(a, b) > 0  # dropout made the passes differ


def test_fgm_steps_along_the_normalised_gradient_and_restores(setup):
    model, batch = setup
    model.eval()
    emb = model.encoder.word_embeddings.weight
    model.loss(model(batch), batch).backward()
    before, g = emb.detach().clone(), emb.grad.clone()
    fgm = FGM(emb, eps=0.5)
    assert fgm.attack()
    assert torch.allclose(emb.detach() - before, 0.5 * g / g.norm(), atol=1e-6)
    assert torch.isclose((emb.detach() - before).norm(), torch.tensor(0.5), atol=1e-5)
    fgm.restore()
    assert torch.equal(emb.detach(), before)


def test_pgd_stays_in_the_ball_and_adds_last_step_gradient(setup):
    model, batch = setup
    model.eval()
    emb = model.encoder.word_embeddings.weight
    model.loss(model(batch), batch).backward()
    clean = {n: p.grad.clone() for n, p in model.named_parameters()}
    origin = emb.detach().clone()
    seen, points = [], []

    def adv():
        seen.append((emb.detach() - origin).norm().item())
        points.append(emb.detach().clone())
        return model.loss(model(batch), batch)

    pgd = PGD(emb, eps=0.3, steps=3)
    pgd.run(model, adv)
    assert len(seen) == 3 and all(d <= 0.3 + 1e-5 for d in seen) and seen[-1] > 0
    assert torch.equal(emb.detach(), origin)
    final = {n: p.grad.clone() for n, p in model.named_parameters()}
    # recompute the gradient at the last perturbed point by hand
    model.zero_grad()
    with torch.no_grad():
        emb.copy_(points[-1])
    model.loss(model(batch), batch).backward()
    for n, p in model.named_parameters():
        assert torch.allclose(final[n], clean[n] + p.grad, atol=1e-5), n


def test_vat_finds_a_more_divergent_direction_than_random(setup):
    model, batch = setup
    model.eval()  # no dropout: D is due to the perturbation alone
    scores = model(batch)
    torch.manual_seed(3)
    adv = vat_loss(model, batch, scores, eps=1.0)
    assert adv.item() > 0
    embeds = model.encoder.embed(batch)
    rand = torch.randn_like(embeds)
    rand = rand / rand.flatten(1).norm(dim=1).view(-1, 1, 1)
    random_d = gp_divergence(scores, model(batch, embeds=embeds + rand))
    assert adv.item() > random_d.item()
    zero = vat_loss(model, batch, scores, eps=0.0)
    assert zero.item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_penalty_value(setup):
    model, batch = setup
    model.eval()
    total, out, penalty = penalised_loss(model, batch, weight=0.5)
    embeds = model.encoder.embed(batch)
    loss = model.loss(model(batch, embeds=embeds), batch)
    (g,) = torch.autograd.grad(loss, embeds)
    assert torch.allclose(penalty, g.pow(2).sum() / g.shape[0], rtol=1e-4)
    assert torch.allclose(total, loss + 0.5 * penalty, rtol=1e-5)
    total.backward()  # double backward through the encoder works
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_ema_formula():
    lin = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema = EMA(lin, decay=0.9)
    shadow = 0.0
    for t, w in enumerate([1.0, 2.0, 3.0]):
        with torch.no_grad():
            lin.weight.fill_(w)
        ema.update(lin)
        d = min(0.9, (1 + t) / (10 + t))
        shadow = d * shadow + (1 - d) * w
        assert ema.shadow["weight"][0, 0].item() == pytest.approx(shadow)
    with ema.applied(lin):
        assert lin.weight[0, 0].item() == pytest.approx(shadow)
    assert lin.weight[0, 0].item() == 3.0
