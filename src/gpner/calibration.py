"""Calibrated span probabilities: a monotone map per label from span score to the probability
that the span is right, fitted on annotated dev data by ``gpner calibrate``.

Uncalibrated, ``prob = sigmoid(2 * score)`` (what the loss is optimal at, not how often a span
is right). Two fits, both monotone, so a calibrated model keeps every span's rank:

* ``platt``: ``prob = sigmoid(a * score + b)``, ``a`` and ``b`` by maximum likelihood with
  Platt's smoothed targets (a temperature ``2 / a`` and a bias; never overconfident on a
  separable dev set);
* ``isotonic``: a non-decreasing step function (pool-adjacent-violators, SciPy's
  ``isotonic_regression``), linear between the steps' mean scores.

The maps are saved in ``config.json`` (``decode.calibration``) and every decoding path's
``prob`` comes from them. :func:`ece` and :func:`reliability_diagram` measure the result.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

METHODS = ("platt", "isotonic")


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class ProbMap:
    """One label's map from span score to probability (``spec``: a saved fit)."""

    def __init__(self, spec: Mapping[str, Any]):
        self.method = spec["method"]
        if self.method == "platt":
            self.a, self.b = float(spec["a"]), float(spec["b"])
        else:
            self.xs = np.asarray(spec["scores"], dtype=np.float64)
            self.ys = np.asarray(spec["probs"], dtype=np.float64)

    def __call__(self, score: float) -> float:
        if self.method == "platt":
            return sigmoid(self.a * score + self.b)
        return float(np.interp(score, self.xs, self.ys))

    def score_for(self, p: float) -> float:
        """The score threshold whose kept spans (score above it) are those with prob >= p
        (for isotonic steps, the lowest score that reaches p; +inf when none does)."""
        if self.method == "platt":
            return (math.log(p / (1 - p)) - self.b) / self.a
        above = np.nonzero(self.ys >= p)[0]
        if not len(above):
            return math.inf
        i = int(above[0])
        if i == 0:
            return -math.inf
        # linear between knots i-1 and i: the score where the line reaches p, just below
        x0, x1, y0, y1 = self.xs[i - 1], self.xs[i], self.ys[i - 1], self.ys[i]
        return float(x0 + (x1 - x0) * (p - y0) / (y1 - y0)) - 1e-9

    def to_dict(self) -> dict[str, Any]:
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        return {"method": "isotonic", "scores": self.xs.tolist(), "probs": self.ys.tolist()}


def fit(scores: Sequence[float], correct: Sequence[bool], method: str = "platt") -> ProbMap:
    """A label's map from its candidate spans' scores and whether each is right."""
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {', '.join(METHODS)}, got "
                         f"{method!r}")
    try:
        import scipy  # noqa: F401
    except ImportError:
        from gpner.errors import MissingDependency

        raise MissingDependency("fitting calibrated probabilities needs SciPy: pip install "
                                "'gpner[calibrate]' (or --probs none)") from None
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if method == "platt":
        return ProbMap({"method": "platt", **_platt(x, y)})
    return ProbMap({"method": "isotonic", **_isotonic(x, y)})


def _platt(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Maximum likelihood of ``sigmoid(a x + b)`` on Platt's targets: (n+ + 1)/(n+ + 2) for a
    right span, 1/(n- + 2) for a wrong one. With no spans, or all of one kind, the uncalibrated
    map (a = 2, b = 0) shifted to the smoothed rate."""
    from scipy.optimize import minimize

    pos, neg = float(y.sum()), float(len(y) - y.sum())
    t = np.where(y > 0, (pos + 1) / (pos + 2), 1 / (neg + 2))
    if not pos or not neg:
        rate = (pos + 1) / (pos + neg + 2)
        return {"a": 2.0, "b": math.log(rate / (1 - rate)) if len(y) else 0.0}

    def nll(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = w[0] * x + w[1]
        # log(1 + e^z) - t z, stably; gradient (sigmoid(z) - t) * (x, 1)
        loss = np.logaddexp(0.0, z) - t * z
        g = 1.0 / (1.0 + np.exp(-z)) - t
        return float(loss.sum()), np.array([float((g * x).sum()), float(g.sum())])

    res = minimize(nll, np.array([2.0, 0.0]), jac=True, method="L-BFGS-B",
                   bounds=[(1e-6, None), (None, None)])  # a > 0: the map stays increasing
    return {"a": float(res.x[0]), "b": float(res.x[1])}


def _isotonic(x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    """Pool-adjacent-violators on the spans sorted by score; one knot per pooled block (its
    mean score, its rate of right spans)."""
    from scipy.optimize import isotonic_regression

    if not len(x):
        return {"scores": [0.0], "probs": [0.5]}
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    res = isotonic_regression(ys, increasing=True)
    fitted, blocks = np.asarray(res.x), np.asarray(res.blocks)
    knots_x = [float(xs[a:b].mean()) for a, b in zip(blocks[:-1], blocks[1:], strict=True)]
    knots_y = [float(fitted[a]) for a in blocks[:-1]]
    return {"scores": knots_x, "probs": knots_y}


class Calibration:
    """Every label's map, from ``decode.calibration``; labels without one keep
    ``sigmoid(2 * score)``."""

    def __init__(self, labels: Sequence[str], specs: Mapping[str, Mapping[str, Any]] | None):
        specs = specs or {}
        self.maps = [ProbMap(specs[lab]) if lab in specs else None for lab in labels]

    def prob(self, label: int, score: float) -> float:
        m = self.maps[label]
        return m(score) if m is not None else sigmoid(2.0 * score)

    def score_for(self, label: int, p: float) -> float:
        m = self.maps[label]
        return m.score_for(p) if m is not None else 0.5 * math.log(p / (1 - p))


def check_spec(spec: Any) -> str | None:
    """Why a saved map is unusable (None when it is fine): for config.json's checks."""
    if not isinstance(spec, dict) or spec.get("method") not in METHODS:
        return f"a map needs 'method' {' or '.join(METHODS)}"
    if spec["method"] == "platt":
        a, b = spec.get("a"), spec.get("b")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in (a, b)) or not a > 0:  # type: ignore[operator]
            return "platt needs finite numbers a > 0 and b"
        return None
    xs, ys = spec.get("scores"), spec.get("probs")
    if not (isinstance(xs, list) and isinstance(ys, list) and xs and len(xs) == len(ys)):
        return "isotonic needs 'scores' and 'probs', lists of one length"
    try:
        x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    except (TypeError, ValueError):
        return "isotonic scores and probs must be numbers"
    if not (np.isfinite(x).all() and (np.diff(x) >= 0).all() and (np.diff(y) >= 0).all()
            and (y >= 0).all() and (y <= 1).all()):
        return "isotonic scores and probs must be finite and non-decreasing, probs in [0, 1]"
    return None


def ece(probs: Sequence[float], correct: Sequence[bool], bins: int = 15) -> float:
    """Expected calibration error: over equal-width probability bins, the share of spans in
    the bin times |mean prob - rate of right spans|."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if not len(p):
        return 0.0
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for k in range(bins):
        sel = idx == k
        if sel.any():
            total += sel.sum() / len(p) * abs(p[sel].mean() - y[sel].mean())
    return float(total)


def reliability(probs: Sequence[float], correct: Sequence[bool], bins: int = 15
                ) -> list[tuple[float, float, int]]:
    """Per non-empty bin: (mean prob, rate of right spans, spans)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return [(float(p[idx == k].mean()), float(y[idx == k].mean()), int((idx == k).sum()))
            for k in range(bins) if (idx == k).any()]


def reliability_diagram(path: Path, curves: Mapping[str, tuple[Sequence[float],
                                                                Sequence[bool]]],
                        title: str) -> None:
    """A PNG: for each curve (name -> probs, right or not), the rate of right spans against
    the mean prob per bin, with its ECE in the legend; the diagonal is perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
    for name, (p, y) in curves.items():
        pts = reliability(p, y)
        ax.plot([a for a, _, _ in pts], [b for _, b, _ in pts], "o-",
                label=f"{name} (ECE {ece(p, y):.4f})")
    ax.set_xlabel("predicted probability (bin mean)")
    ax.set_ylabel("share of spans that are right")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
