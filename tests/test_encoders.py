"""Longer positions for a pretrained encoder (the hierarchical decomposition): positions below n
are unchanged, the others follow the formula, a forward pass at 2,048 tokens works, and a trained
model keeps the extension through saving and loading."""

from __future__ import annotations

import pytest
import torch

from gpner.model.encoders import extend_positions


def bert(tiny_bert_dir):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(tiny_bert_dir))


def test_positions_below_n_unchanged_and_the_rest_by_the_formula(tiny_bert_dir):
    model = bert(tiny_bert_dir)
    p = model.embeddings.position_embeddings.weight.detach().clone()  # (64, 32)
    n = p.shape[0]
    assert extend_positions(model, 2048) == 2048
    q = model.embeddings.position_embeddings.weight.detach()
    assert q.shape == (2048, p.shape[1]) and model.config.max_position_embeddings == 2048
    assert torch.equal(q[:n], p) or torch.allclose(q[:n], p, atol=1e-6)
    a = 0.4
    for pos in (64, 65, 130, 777, 2047):  # i * n + j, computed by hand from the originals
        i, j = divmod(pos, n)
        u_i, u_j = (p[i] - a * p[0]) / (1 - a), (p[j] - a * p[0]) / (1 - a)
        assert torch.allclose(q[pos], a * u_i + (1 - a) * u_j, atol=1e-5)
    with pytest.raises(ValueError, match=r"more than 64\^2"):
        extend_positions(bert(tiny_bert_dir), 64 * 64 + 1)


def test_forward_at_2048_tokens(tiny_bert_dir):
    model = bert(tiny_bert_dir).eval()
    extend_positions(model, 2048)
    ids = torch.randint(5, 40, (1, 2048))
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    assert out.shape == (1, 2048, 32) and torch.isfinite(out).all()
    with pytest.raises((RuntimeError, IndexError)):  # without it, the input cannot be embedded
        bert(tiny_bert_dir)(input_ids=ids)


def test_trained_model_keeps_long_positions(tmp_path, tiny_bert_dir):
    from helpers import tiny_config

    from gpner.data.demo import generate
    from gpner.prediction.loading import load
    from gpner.training.trainer import train

    cfg = tiny_config(encoder=str(tiny_bert_dir), head="gp", epochs=1, encoder_max_length=1024,
                      max_length=1024)
    train(generate(24, 1), None, tmp_path / "run", cfg, progress=False)
    model = load(tmp_path / "run")
    emb = model.backend.model.encoder.model.embeddings.position_embeddings.weight
    assert emb.shape[0] == 1024 and model.config.max_length == 1024
    assert torch.allclose(emb[:64], bert(tiny_bert_dir).embeddings.position_embeddings.weight,
                          atol=1e-2)  # one epoch of training moves them only a little
    long_text = " ".join(r["text"] for r in generate(70, 3))
    enc = model.featurizer.encode(long_text)
    assert 600 < len(enc) < 1022  # far past the 64 positions, one window of 1,024
    rec = model.predict(long_text)
    assert rec["text"] == long_text
    with pytest.raises(ValueError, match="built-in encoder"):
        train(generate(8, 1), None, tmp_path / "b", tiny_config(encoder_max_length=600),
              progress=False)
