"""Tiny models and data made by the tests themselves."""

from __future__ import annotations

from gpner.data.demo import generate
from gpner.training.config import TrainConfig

TINY = dict(word_dim=16, bigram_dim=8, char_dim=8, char_channels=8, lstm_hidden=24,
            lstm_layers=1, head_size=8, batch_size=16, dropout=0.1, word_dropout=0.0,
            lr=1e-2, warmup=0.0, patience=0)


def tiny_config(**kw) -> TrainConfig:
    return TrainConfig().update({**TINY, **kw}, "test")


def tiny_data(n=64, seed=1):
    return generate(n, seed)


def window_spans(spans, triples=()):
    """A task's decoding of one window, from TokenSpans (label ids) and Triples: what a stand-in
    task returns."""
    import numpy as np

    from gpner.contracts import WindowSpans

    rows = np.array([(sp.label, sp.start, sp.end) for sp in spans], dtype=np.int64).reshape(-1, 3)
    return WindowSpans(rows, np.array([sp.score for sp in spans], dtype=np.float64),
                       list(triples))
