"""Mixed precision and resume where users train: on the CPU always, on CUDA when the machine has
it. The CUDA cases are marked ``gpu`` (``pytest -m gpu``, which ``bench/gpu.sh`` runs); without a
CUDA device they skip, so nothing in the default run depends on a GPU."""

from __future__ import annotations

import math
import os

import pytest
import torch
from safetensors.torch import load_file

from gpner.model.heads import EfficientGlobalPointer, GlobalPointer
from gpner.model.losses import mcce_dense, mcce_sparse
from gpner.training.trainer import train
from tests.helpers import tiny_config, tiny_data

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, CUDA])]


def _scores(cls, device: str, dtype: torch.dtype | None):
    """(B=2, C=3, L=10, L) scores of a head with large weights (scores in the hundreds, where
    fp16 overflows if a mask is a big finite number), the second text 6 tokens long; under
    autocast to ``dtype`` as the trainer runs it (None: fp32). Returns scores, mask, head."""
    torch.manual_seed(1)
    head = cls(16, 3, head_size=8).to(device)
    with torch.no_grad():
        for p in head.parameters():
            p.mul_(12)
    hidden = torch.randn(2, 10, 16, device=device)
    mask = torch.ones(2, 10, dtype=torch.bool, device=device)
    mask[1, 6:] = False
    with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
        return head(hidden, mask), mask, head


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cls", [GlobalPointer, EfficientGlobalPointer])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_masks_and_losses_hold_under_autocast(device, cls, dtype):
    scores, mask, head = _scores(cls, device, dtype)
    reference, _, _ = _scores(cls, device, None)
    valid = torch.ones(10, 10, dtype=torch.bool, device=device).triu()
    # impossible cells are -inf (no finite sentinel that fp16 would turn into inf - inf = NaN)
    assert torch.isneginf(scores[:, :, ~valid]).all()
    assert torch.isneginf(scores[1, :, 6:, :]).all() and torch.isneginf(scores[1, :, :, 6:]).all()
    assert torch.isfinite(scores[0][:, valid]).all() and not torch.isnan(scores).any()
    # the low-precision scores are the fp32 ones to within the format's precision (bf16 keeps
    # 8 bits of mantissa: about 1% of the largest score after two products)
    live = torch.isfinite(reference)
    scale = float(reference[live].detach().abs().max())
    torch.testing.assert_close(scores[live].float(), reference[live], rtol=2e-2,
                               atol=2e-2 * scale)
    positives = torch.tensor([[0, 0, 1, 3], [1, 2, 0, 5]], device=device)
    labels = torch.zeros_like(reference)
    labels[0, 0, 1, 3] = labels[1, 2, 0, 5] = 1
    for loss, ref in ((mcce_sparse(scores, positives), mcce_sparse(reference, positives)),
                      (mcce_dense(scores, labels), mcce_dense(reference, labels))):
        assert loss.dtype == torch.float32 and torch.isfinite(loss)  # the loss works in fp32
        torch.testing.assert_close(loss, ref, rtol=2e-2, atol=0.5)
    mcce_sparse(scores, positives).backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


@pytest.mark.gpu
@CUDA
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_cuda(tmp_path, precision):
    """The trainer on CUDA (it takes the GPU when there is one): every loss finite, no step
    skipped, finite weights, and the saved model predicts on the GPU."""
    from gpner.prediction.loading import load

    losses: list[float] = []
    torch.cuda.reset_peak_memory_stats()
    records = tiny_data(64, seed=1)
    summary = train(records, records[:8], tmp_path / "r",
                    tiny_config(epochs=2, lstm_hidden=32, **{precision: True}), progress=False,
                    on_step=lambda step, loss: losses.append(loss))
    assert torch.cuda.max_memory_allocated() > 0  # it really ran on the GPU
    assert losses and all(math.isfinite(x) for x in losses) and summary["skipped_steps"] == 0
    saved = load_file(str(tmp_path / "r" / "model" / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in saved.values())
    model = load(tmp_path / "r", device="cuda")
    out = model.predict([r["text"] for r in records[:4]])
    assert [r["text"] for r in out] == [r["text"] for r in records[:4]]


@pytest.mark.gpu
@CUDA
def test_resume_on_cuda_reaches_the_same_weights(tmp_path):
    """A run killed mid-epoch on the GPU and resumed ends with the uninterrupted run's weights,
    bit for bit, under PyTorch's deterministic algorithms (what a user sets for reproducible
    CUDA runs; bench/gpu.sh sets CUBLAS_WORKSPACE_CONFIG before CUDA starts)."""
    from tests.test_checkpoint import _killed_and_resumed

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        cfg = tiny_config(epochs=3, dropout=0.3, word_dropout=0.1, ema=0.9)
        a, b = _killed_and_resumed(tmp_path, cfg, 5, tiny_data(48, seed=2)[:8])
    finally:
        torch.use_deterministic_algorithms(False)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"weights that differ after resume on CUDA: {different}"
