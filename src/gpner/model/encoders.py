"""Encoders: ``embed(batch)`` gives the embeddings that adversarial training perturbs,
``forward(batch, embeds=None)`` gives hidden states (B, L, H).

* :class:`BuiltinEncoder`: trained from scratch, no download. Word + bigram embeddings and a
  character CNN (case, affixes, unseen words) into a BiLSTM, 2 layers of 256 units per
  direction by default. The size was chosen by ``bench/encoder_choice.py`` (CLUENER dev F1 at
  equal CPU budgets, docs/training.md): at the ~18 minutes the defaults take, 2x256 scored
  highest of 1x128, 1x256, 2x256 and 2x384 (74.9 vs 73.8-74.8); at 4 minutes 1x128 is better.
* :class:`HFEncoder`: any Hugging Face encoder (BERT, RoBERTa, ALBERT, ELECTRA, ...).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from gpner.errors import GpnerError


class EncoderNotFound(GpnerError, OSError):
    """The named encoder could not be loaded (offline, or no such local directory)."""

    code = "E111"


class BuiltinEncoder(nn.Module):
    """The built-in encoder: word, bigram and character-CNN features into a BiLSTM."""

    def __init__(self, sizes: dict[str, int], word_dim: int = 128, bigram_dim: int = 64,
                 char_dim: int = 32, char_channels: int = 64, lstm_hidden: int = 256,
                 lstm_layers: int = 2, dropout: float = 0.3, word_dropout: float = 0.05):
        super().__init__()
        self.word = nn.Embedding(sizes["words"], word_dim, padding_idx=0)
        self.bigram = nn.Embedding(sizes["bigrams"], bigram_dim, padding_idx=0)
        self.char = nn.Embedding(sizes["chars"], char_dim, padding_idx=0)
        self.char_cnn = nn.Conv1d(char_dim, char_channels, kernel_size=3, padding=1)
        dim = word_dim + bigram_dim + char_channels
        self.lstm = nn.LSTM(dim, lstm_hidden, lstm_layers, batch_first=True, bidirectional=True,
                            dropout=dropout if lstm_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.word_dropout = word_dropout
        self.hidden_size = 2 * lstm_hidden

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.word

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["ids"]
        if self.training and self.word_dropout > 0:  # unseen words at test time look like [UNK]
            drop = torch.rand(ids.shape, device=ids.device) < self.word_dropout
            ids = torch.where(drop & ids.gt(0), torch.ones_like(ids), ids)
        chars = batch["chars"]  # (B, L, W)
        B, L, W = chars.shape
        c = self.char(chars.view(B * L, W)).transpose(1, 2)  # (B*L, char_dim, W)
        c = self.char_cnn(c).masked_fill(chars.view(B * L, 1, W).eq(0), float("-inf")).amax(-1)
        c = torch.where(torch.isfinite(c), c, 0.0).view(B, L, -1)  # padding tokens: zeros
        return torch.cat([self.word(ids), self.bigram(batch["bigrams"]), c], dim=-1)

    def forward(self, batch: dict[str, torch.Tensor], embeds: torch.Tensor | None = None
                ) -> torch.Tensor:
        x = self.dropout(self.embed(batch) if embeds is None else embeds)
        L = x.shape[1]
        packed = pack_padded_sequence(x, batch["lengths"].cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=L)
        return self.dropout(out)  # (B, L, 2 * lstm_hidden)


def hf_config(encoder_config: dict) -> Any:
    """A transformers config from a Hugging Face encoder's ``config.to_dict()`` (as gpner's
    config.json keeps it under ``encoder_config``)."""
    from transformers import AutoConfig

    cfg = dict(encoder_config)
    return AutoConfig.for_model(cfg.pop("model_type"), **cfg)


class HFEncoder(nn.Module):
    """Any Hugging Face encoder (``AutoModel``): hidden states of its last layer."""

    def __init__(self, model: Any):
        super().__init__()
        # a transformers model: its config and modules are attributes mypy cannot follow
        self.model: Any = model
        self.hidden_size = self.model.config.hidden_size

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def max_length(self) -> int:
        n = getattr(self.model.config, "max_position_embeddings", 512) or 512
        # RoBERTa-style models reserve padding_idx + 1 positions
        return n - 2 if getattr(self.model.config, "model_type", "") in ("roberta", "xlm-roberta",
                                                                         "camembert") else n

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.word_embeddings(batch["input_ids"])

    def forward(self, batch: dict[str, torch.Tensor], embeds: torch.Tensor | None = None
                ) -> torch.Tensor:
        out = self.model(inputs_embeds=self.embed(batch) if embeds is None else embeds,
                         attention_mask=batch["attention_mask"])
        return out.last_hidden_state


# position ids that start at padding_idx + 1: the decomposition below assumes they start at 0
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer")


def extend_positions(model: Any, length: int, alpha: float = 0.4) -> int:
    """Extend a BERT-style encoder's learned absolute positions p_0..p_(n-1) to ``length``
    (up to n^2) by the hierarchical decomposition: with u_i = (p_i - alpha p_0) / (1 - alpha),
    position i * n + j gets alpha u_i + (1 - alpha) u_j, so positions below n are unchanged and
    the others are mixtures the encoder has seen the parts of. Returns the new length."""
    emb = getattr(getattr(model, "embeddings", None), "position_embeddings", None)
    if not isinstance(emb, nn.Embedding):
        raise ValueError(f"{type(model).__name__} has no learned absolute position embeddings "
                         "(embeddings.position_embeddings) to extend")
    model_type = getattr(model.config, "model_type", "")
    if model_type in OFFSET_POSITIONS:
        raise ValueError(f"encoder_max_length: {model_type} numbers positions from padding_idx "
                         "+ 1, which this extension does not handle; use a BERT-style encoder")
    n, dim = emb.weight.shape
    if length <= n:
        return n
    if length > n * n:
        raise ValueError(f"encoder_max_length {length} is more than {n}^2 = {n * n}, the most "
                         f"the decomposition of {n} positions gives")
    with torch.no_grad():
        p = emb.weight.detach().float()
        u = (p - alpha * p[:1]) / (1 - alpha)
        pos = torch.arange(length)
        new = alpha * u[pos // n] + (1 - alpha) * u[pos % n]
    bigger = nn.Embedding(length, dim, dtype=emb.weight.dtype, device=emb.weight.device)
    bigger.weight.data.copy_(new)
    model.embeddings.position_embeddings = bigger
    model.config.max_position_embeddings = length
    for name, fill in (("position_ids", "arange"), ("token_type_ids", "zeros")):
        if name in model.embeddings._buffers:  # (1, n) helpers sized by the old length
            old = model.embeddings._buffers[name]
            value = (torch.arange(length) if fill == "arange" else torch.zeros(length,
                                                                                dtype=old.dtype))
            model.embeddings.register_buffer(name, value.to(old.device).expand(1, -1),
                                             persistent=False)
    return length


def load_hf(name: str) -> tuple[Any, nn.Module]:
    """(fast tokenizer, model) from a hub name or local directory; a clear error when absent."""
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("Hugging Face encoders need the 'hf' extra: pip install 'gpner[hf]'"
                          ) from exc
    local = Path(name).expanduser()
    source = str(local) if local.is_dir() else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
        model = AutoModel.from_pretrained(source)
    except (OSError, ValueError) as exc:
        where = "the local directory" if local.is_dir() else "the Hugging Face hub"
        offline = os.environ.get("HF_HUB_OFFLINE", "")
        hint = ("" if local.is_dir() else
                f" If this machine is offline (HF_HUB_OFFLINE={offline!r}),"
                " download the model elsewhere and pass its directory: --encoder /path/to/model"
                " (config.json, the weights and the tokenizer files).")
        raise EncoderNotFound(f"could not load encoder {name!r} from {where}: "
                              f"{str(exc).splitlines()[0]}.{hint}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise EncoderNotFound(f"{name!r} has no fast tokenizer; character offsets need one")
    return tokenizer, model
