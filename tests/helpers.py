"""Tiny models and data made by the tests themselves."""

from __future__ import annotations

from gpner.training.config import TrainConfig
from gpner.data.demo import generate

TINY = dict(word_dim=16, bigram_dim=8, char_dim=8, char_channels=8, lstm_hidden=24,
            lstm_layers=1, head_size=8, batch_size=16, dropout=0.1, word_dropout=0.0,
            lr=1e-2, warmup=0.0, patience=0)


def tiny_config(**kw) -> TrainConfig:
    return TrainConfig().update({**TINY, **kw}, "test")


def tiny_data(n=64, seed=1):
    return generate(n, seed)
