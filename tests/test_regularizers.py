"""Each regulariser computes what it claims, and the training loop really applies it: one step of
``train`` with each switch equals the same step done by hand here (same seed, same batch)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from gpner.model.losses import gp_divergence
from gpner.records import Report
from gpner.training.build import build
from gpner.training.examples import Collator, length_buckets, make_examples
from gpner.training.regularizers import (
    EMA,
    FGM,
    PGD,
    penalised_loss,
    rdrop_loss,
    vat_loss,
)
from gpner.training.trainer import train
from tests.helpers import tiny_config, tiny_data


def first_batch(cfg, records):
    """Model (fresh weights, seeded as train() seeds them), task and the first training batch."""
    torch.manual_seed(cfg.seed)
    model, featurizer, task, config = build(cfg, records)
    ex = make_examples(records, featurizer, config.labels, config.max_length, Report("t"),
                       flat_only=not task.span_head)
    order = length_buckets(ex, cfg.batch_size, cfg.seed, 0)
    return model, task, Collator(featurizer, task)([ex[k] for k in order[0]]), len(order)


@pytest.fixture()
def setup():
    model, task, batch, _ = first_batch(tiny_config(), tiny_data(16))
    return model, task, batch


def loss_of(task, batch):
    return lambda out: task.loss(out, batch)


def div_of(task, norm="sum"):
    return lambda a, b: task.divergence(a, b, norm)


# ---------------------------------------------------------------- the pieces

def test_rdrop_is_mean_of_two_passes_plus_divergence(setup):
    model, task, batch = setup
    model.train()
    torch.manual_seed(5)
    loss, s1 = rdrop_loss(model, batch, loss_of(task, batch), div_of(task), alpha=2.0)
    torch.manual_seed(5)  # the same two dropout masks again, by hand
    a, b = model(batch), model(batch)
    d = gp_divergence(a["entities"], b["entities"])
    want = (task.loss(a, batch) + task.loss(b, batch)) / 2 + 2.0 * d
    assert torch.allclose(loss, want) and torch.equal(s1["entities"], a["entities"])
    assert d > 0  # dropout made the passes differ


def test_fgm_steps_along_the_normalised_gradient_and_restores(setup):
    model, task, batch = setup
    model.eval()
    emb = model.word_embeddings.weight
    task.loss(model(batch), batch).backward()
    before, g = emb.detach().clone(), emb.grad.clone()
    fgm = FGM(emb, eps=0.5)
    assert fgm.attack()
    assert torch.allclose(emb.detach() - before, 0.5 * g / g.norm(), atol=1e-6)
    assert torch.isclose((emb.detach() - before).norm(), torch.tensor(0.5), atol=1e-5)
    fgm.restore()
    assert torch.equal(emb.detach(), before)


def test_pgd_stays_in_the_ball_and_adds_last_step_gradient(setup):
    model, task, batch = setup
    model.eval()
    emb = model.word_embeddings.weight
    task.loss(model(batch), batch).backward()
    clean = {n: p.grad.clone() for n, p in model.named_parameters()}
    origin = emb.detach().clone()
    seen, points = [], []

    def adv():
        seen.append((emb.detach() - origin).norm().item())
        points.append(emb.detach().clone())
        return task.loss(model(batch), batch)

    PGD(emb, eps=0.3, steps=3).run(model, adv)
    assert len(seen) == 3 and all(d <= 0.3 + 1e-5 for d in seen) and seen[-1] > 0
    assert torch.equal(emb.detach(), origin)
    final = {n: p.grad.clone() for n, p in model.named_parameters()}
    # recompute the gradient at the last perturbed point by hand
    model.zero_grad()
    with torch.no_grad():
        emb.copy_(points[-1])
    task.loss(model(batch), batch).backward()
    for n, p in model.named_parameters():
        assert torch.allclose(final[n], clean[n] + p.grad, atol=1e-5), n


def test_vat_finds_a_more_divergent_direction_than_random(setup):
    model, task, batch = setup
    model.eval()  # no dropout: D is due to the perturbation alone
    out = model(batch)
    torch.manual_seed(3)
    adv = vat_loss(model, batch, out, div_of(task), eps=1.0)
    assert adv.item() > 0
    embeds = model.embed(batch)
    rand = torch.randn_like(embeds)
    rand = rand / rand.flatten(1).norm(dim=1).view(-1, 1, 1)
    random_d = task.divergence(out, model(batch, embeds=embeds + rand))
    assert adv.item() > random_d.item()
    zero = vat_loss(model, batch, out, div_of(task), eps=0.0)
    assert zero.item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_penalty_value(setup):
    model, task, batch = setup
    model.eval()
    total, out, penalty = penalised_loss(model, batch, loss_of(task, batch), weight=0.5)
    embeds = model.embed(batch)
    loss = task.loss(model(batch, embeds=embeds), batch)
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


# ---------------------------------------------------------------- one step of train(), by hand

# one batch, one step: no decay, no clipping, no warm-up (the step's learning rate is lr)
ONE_STEP = dict(epochs=1, batch_size=64, weight_decay=0.0, grad_clip=0.0, warmup=0.0,
                head="gp", dropout=0.0)


def unit(x):
    return x / x.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *([1] * (x.dim() - 1)))


def plain(model, task, batch, cfg):
    task.loss(model(batch), batch).backward()


def fgm(model, task, batch, cfg):
    task.loss(model(batch), batch).backward()
    emb = model.word_embeddings.weight
    origin = emb.detach().clone()
    with torch.no_grad():
        emb.add_(cfg.fgm * emb.grad / emb.grad.norm())  # r = eps g / ||g||
    task.loss(model(batch), batch).backward()  # the adversarial gradient adds to the clean one
    with torch.no_grad():
        emb.copy_(origin)


def pgd(model, task, batch, cfg):
    task.loss(model(batch), batch).backward()
    emb = model.word_embeddings.weight
    clean = [p.grad.clone() for p in model.parameters()]
    origin, alpha = emb.detach().clone(), cfg.pgd / cfg.pgd_steps * 1.5
    for t in range(cfg.pgd_steps):
        with torch.no_grad():
            emb.add_(alpha * emb.grad / emb.grad.norm())
            delta = emb - origin
            if delta.norm() > cfg.pgd:  # back onto the eps-ball
                emb.copy_(origin + cfg.pgd * delta / delta.norm())
        for p, g in zip(model.parameters(), clean, strict=True):
            p.grad = g.clone() if t == cfg.pgd_steps - 1 else torch.zeros_like(g)
        task.loss(model(batch), batch).backward()
    with torch.no_grad():
        emb.copy_(origin)


def vat(model, task, batch, cfg):
    out = model(batch)
    s = out["entities"].detach()
    embeds = model.embed(batch)
    d = (1e-3 * unit(torch.randn_like(embeds))).requires_grad_(True)
    (g,) = torch.autograd.grad(gp_divergence(
        s, model(batch, embeds=embeds.detach() + d)["entities"], norm=cfg.divergence), d)
    adv = gp_divergence(s, model(batch, embeds=embeds + cfg.vat_eps * unit(g))["entities"],
                        norm=cfg.divergence)
    (task.loss(out, batch) + cfg.vat * adv).backward()


def grad_penalty(model, task, batch, cfg):
    embeds = model.embed(batch)
    loss = task.loss(model(batch, embeds=embeds), batch)
    (g,) = torch.autograd.grad(loss, embeds, create_graph=True)
    (loss + cfg.grad_penalty * g.pow(2).sum() / g.shape[0]).backward()


def rdrop(model, task, batch, cfg):
    a, b = model(batch), model(batch)  # two dropout masks
    d = gp_divergence(a["entities"], b["entities"], norm=cfg.divergence)
    ((task.loss(a, batch) + task.loss(b, batch)) / 2 + cfg.rdrop * d).backward()


def flood(model, task, batch, cfg):
    loss = task.loss(model(batch), batch)
    ((loss - cfg.flood).abs() + cfg.flood).backward()


@pytest.mark.parametrize("by_hand,switch", [
    (plain, {}),
    (fgm, dict(fgm=0.5)),
    (pgd, dict(pgd=0.5, pgd_steps=2)),
    (vat, dict(vat=50.0, vat_eps=1.0)),  # the mean divergence is small here: a weight that shows
    (vat, dict(vat=2.0, vat_eps=1.0, divergence="sum")),
    (grad_penalty, dict(grad_penalty=1e4)),  # gradients are ~1e-5 here: a weight that shows
    (rdrop, dict(rdrop=2.0, dropout=0.3, divergence="sum")),
    (rdrop, dict(rdrop=2.0, dropout=0.3, divergence="mean")),
    (flood, dict(flood=30.0)),  # above the first loss (about 16): the gradient flips
], ids=lambda x: x.__name__ if callable(x) else ",".join(map(str, x.values())))
def test_one_training_step_equals_the_step_by_hand(tmp_path, by_hand, switch):
    records = tiny_data(24, seed=3)
    cfg = tiny_config(**{**ONE_STEP, **switch})
    train(records, None, tmp_path / "run", cfg, progress=False)
    weights = load_file(str(tmp_path / "run" / "last" / "model.safetensors"))
    opt_state = load_file(str(tmp_path / "run" / "last" / "state.safetensors"))

    model, task, batch, n_batches = first_batch(cfg, records)
    assert n_batches == 1
    model.train()
    by_hand(model, task, batch, cfg)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0).step()

    # AdamW's first moment after one step is 0.1 * the gradient the step used
    for k, (name, g) in enumerate(grads.items()):
        torch.testing.assert_close(opt_state[f"opt.{k}.exp_avg"], 0.1 * g, rtol=1e-4,
                                   atol=1e-7, msg=lambda m, name=name: f"{name}: {m}")
    for name, p in model.named_parameters():  # a step is about lr = 1e-2 per weight
        torch.testing.assert_close(weights[name], p.detach(), rtol=0, atol=1e-5)
    if switch:  # the switch changes the step by far more than the tolerance above
        model2, task2, batch2, _ = first_batch(cfg, records)
        model2.train()
        plain(model2, task2, batch2, cfg)
        change = max(((p.grad - grads[n]).norm() / p.grad.norm()).item()
                     for n, p in model2.named_parameters())
        assert change > 0.01, change
