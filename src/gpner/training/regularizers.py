"""Regularisers, each a switch in the training config.

* R-Drop: two dropout passes, loss = (L1 + L2) / 2 + alpha * D(s1, s2), D the GP divergence.
* FGM: one step on the embedding matrix along the gradient, r = eps * g / ||g||.
* PGD: K projected steps of size alpha inside the eps-ball; the last step's gradient is added.
* VAT: r_adv = eps * g / ||g|| where g is the gradient of D(s, s(x + xi d)) at a random d;
  loss += weight * D(s, s(x + r_adv)), with the GP divergence as D.
* Gradient penalty: loss += weight * ||d loss / d embeddings||^2.
* EMA: shadow weights, shadow = decay_t * shadow + (1 - decay_t) * w with
  decay_t = min(decay, (1 + t) / (10 + t)), used for evaluation and saving.

They touch the model only through ``model(batch, embeds=...)`` (so a DDP or compiled wrapper
sees every forward pass), :func:`~gpner.model.network.unwrap` for the embeddings, and two
callables from the trainer: ``objective(outputs)``, the task's loss of the batch, and
``divergence(a, b)``, the task's divergence between two passes' outputs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from gpner.model.network import innermost, unwrap

Outputs = dict[str, torch.Tensor]
Objective = Callable[[Outputs], torch.Tensor]
Divergence = Callable[[Outputs, Outputs], torch.Tensor]


def _unit(x: torch.Tensor) -> torch.Tensor:
    """x scaled to unit L2 norm per example (dims after the first)."""
    norm = x.flatten(1).norm(dim=1).clamp(min=1e-12)
    return x / norm.view(-1, *([1] * (x.dim() - 1)))


class FGM:
    """Fast gradient method on one parameter (the word embedding matrix)."""

    def __init__(self, param: torch.Tensor, eps: float):
        self.param, self.eps = param, eps
        self.backup: torch.Tensor | None = None

    def attack(self) -> bool:
        """Step along the current gradient; False (no step) when it is zero or not finite."""
        g = self.param.grad
        if g is None:
            return False
        norm = g.norm()
        if not torch.isfinite(norm) or norm == 0:
            return False
        self.backup = self.param.data.clone()
        self.param.data.add_(self.eps * g / norm)
        return True

    def restore(self) -> None:
        if self.backup is not None:
            self.param.data.copy_(self.backup)
            self.backup = None


class PGD:
    """Projected gradient descent on the embedding matrix (Madry et al.), K steps."""

    def __init__(self, param: torch.Tensor, eps: float, steps: int = 3,
                 alpha: float | None = None):
        self.param, self.eps, self.steps = param, eps, steps
        self.alpha = alpha if alpha is not None else eps / steps * 1.5

    def run(self, model: nn.Module, adv_loss: Callable[[], torch.Tensor]) -> float:
        """Call after the clean backward: adds the gradient of the last adversarial step."""
        params = [p for p in model.parameters() if p.requires_grad]
        grads = [None if p.grad is None else p.grad.clone() for p in params]
        origin = self.param.data.clone()
        last = 0.0
        for t in range(self.steps):
            g = self.param.grad
            if g is None or not torch.isfinite(g.norm()) or g.norm() == 0:
                break
            self.param.data.add_(self.alpha * g / g.norm())
            delta = self.param.data - origin
            if delta.norm() > self.eps:
                delta = self.eps * delta / delta.norm()
            self.param.data.copy_(origin + delta)
            if t < self.steps - 1:
                model.zero_grad(set_to_none=False)
            else:  # the clean gradients back, then add the final adversarial gradient
                for p, g0 in zip(params, grads, strict=True):
                    if g0 is not None and p.grad is not None:
                        p.grad.copy_(g0)
            loss = adv_loss()
            loss.backward()
            last = float(loss.detach())
        self.param.data.copy_(origin)
        return last


def rdrop_loss(model: nn.Module, batch: dict, objective: Objective, divergence: Divergence,
               alpha: float) -> tuple[torch.Tensor, Outputs]:
    """(loss, outputs of the first pass): mean of two dropout passes + alpha * D(s1, s2)."""
    s1, s2 = model(batch), model(batch)
    return (objective(s1) + objective(s2)) / 2 + alpha * divergence(s1, s2), s1


def vat_loss(model: nn.Module, batch: dict, outputs: Outputs, divergence: Divergence,
             eps: float, xi: float = 1e-3) -> torch.Tensor:
    """D(s, s(x + r_adv)) with r_adv the most divergent direction of norm eps (one power step)."""
    clean = {k: v.detach() for k, v in outputs.items()}
    embeds = unwrap(model).embed(batch)
    d = (xi * _unit(torch.randn_like(embeds))).requires_grad_(True)
    div = divergence(clean, model(batch, embeds=embeds.detach() + d))
    (g,) = torch.autograd.grad(div, d)
    r_adv = eps * _unit(g.detach())
    return divergence(clean, model(batch, embeds=embeds + r_adv))


def penalised_loss(model: nn.Module, batch: dict, objective: Objective, weight: float
                   ) -> tuple[torch.Tensor, Outputs, torch.Tensor]:
    """(loss + weight * ||dL/d embeds||^2 / B, outputs, the penalty)."""
    embeds = unwrap(model).embed(batch)
    out = model(batch, embeds=embeds)
    loss = objective(out)
    (g,) = torch.autograd.grad(loss, embeds, create_graph=True)
    penalty = g.pow(2).sum() / g.shape[0]
    return loss + weight * penalty, out, penalty


class EMA:
    """Exponential moving average of the trainable weights."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.steps = 0
        self.shadow = {n: p.detach().clone() for n, p in innermost(model).named_parameters()
                       if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for n, p in innermost(model).named_parameters():
            if n in self.shadow:
                self.shadow[n].mul_(d).add_(p.detach(), alpha=1 - d)
        self.steps += 1

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Temporarily load the averaged weights into ``model``."""
        params = dict(innermost(model).named_parameters())
        backup = {n: params[n].detach().clone() for n in self.shadow}
        with torch.no_grad():
            for n, value in self.shadow.items():
                params[n].copy_(value)
        try:
            yield
        finally:
            with torch.no_grad():
                for n, value in backup.items():
                    params[n].copy_(value)
