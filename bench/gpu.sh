#!/usr/bin/env bash
# gpner on one CUDA GPU, one command, unattended (under 8 minutes on one H100): the GPU-marked
# tests, GP/EGP/CRF training throughput in fp32/bf16/fp16, prediction throughput (PyTorch and
# ONNX Runtime), peak GPU memory and a 100k-character prediction -> bench/results/gpu.json, and
# a copy under $OUT when that is set (the device tool's output folder). Runs from the source
# tree with the machine's own python3 (PyTorch with CUDA, transformers, onnxruntime, pytest),
# nothing installed; PYTHON=... picks another interpreter. `bash bench/gpu.sh --dry-run` checks
# the script on a machine without a GPU (tiny sizes, the CPU).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# cuBLAS's deterministic mode (the resume test) must be chosen before CUDA starts
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" -c 'import torch, sys; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
status=0
"$PY" bench/gpu.py "$@" || status=$?
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
  cp bench/results/gpu*.json "$OUT"/ 2>/dev/null || true
fi
exit $status
