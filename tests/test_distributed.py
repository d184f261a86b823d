"""Training under torchrun on CPU (gloo), started the way users start it: two processes end with
the weights of one process with the same global batch and seed, and their sharded dev
evaluation equals one process's; gradient accumulation equals a larger batch; a run killed
mid-epoch and resumed under torchrun reaches the weights of an uninterrupted one; regularisers
that DDP cannot run are refused with the reason."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import tiny_data
from safetensors.torch import load_file

SETTINGS = ["word_dim=16", "bigram_dim=8", "char_dim=8", "char_channels=8", "lstm_hidden=24",
            "head_size=8", "dropout=0", "word_dropout=0", "lr=2e-2", "warmup=0", "patience=0",
            "threads=1"]


def torchrun(*args, **popen):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "gpner.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, **popen)


def gpner(*args):
    return subprocess.run([sys.executable, "-m", "gpner.cli", *map(str, args)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp-data")
    for name, n, seed in (("train", 200, 1), ("dev", 13, 2), ("big", 600, 3)):
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                 for r in tiny_data(n, seed)))
    return d


def weights(run):
    return load_file(str(run / "model" / "model.safetensors"))


def max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_two_processes_equal_one_with_the_same_global_batch(data, tmp_path):
    common = ["--train", data / "train.jsonl", "--dev", data / "dev.jsonl", "--no-progress",
              "epochs=3", "report_to=tensorboard", *SETTINGS]
    two = torchrun("train", "-o", tmp_path / "two", *common, "batch_size=4")
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stderr.count("model: ") == 1  # one process reports
    one = gpner("train", "-o", tmp_path / "one", *common, "batch_size=8")
    assert one.returncode == 0, one.stderr
    assert max_diff(weights(tmp_path / "two"), weights(tmp_path / "one")) < 1e-4
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert (s2["world_size"], s2["backend"], s2["batch_size_per_rank"],
            s2["global_batch_size"]) == (2, "gloo", 4, 8)
    assert (s1["world_size"], s1["global_batch_size"], s1["steps"]) == (1, 8, s2["steps"])
    dev2 = [json.loads(x)["dev"] for x in (tmp_path / "two" / "metrics.jsonl").open()]
    dev1 = [json.loads(x)["dev"] for x in (tmp_path / "one" / "metrics.jsonl").open()]
    assert [d["f1"] for d in dev2] == pytest.approx([d["f1"] for d in dev1], abs=1e-9)
    assert dev2[-1]["f1"] > 0.2  # a model that finds entities: the comparison means something
    # the sharded evaluation of the saved (best) epoch equals one process evaluating that model
    ev = gpner("evaluate", tmp_path / "two", data / "dev.jsonl", "--json", "--no-progress")
    best = dev2[s2["best_epoch"] - 1]
    full = json.loads(ev.stdout)
    assert (full["precision"], full["recall"], full["f1"]) == (
        best["precision"], best["recall"], best["f1"])
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())  # rank 0 wrote the same files, once
    # only rank 0 tracks: one event file, with one point per epoch
    events = list((tmp_path / "two" / "tensorboard").iterdir())
    assert len(events) == 1
    from tests.test_tracking import scalars

    assert [v for _, v in scalars(tmp_path / "two")["dev/f1"]] == pytest.approx(
        [d["f1"] for d in dev2], abs=1e-6)


def test_accumulation_equals_a_larger_batch(data, tmp_path):
    from gpner.training.config import TrainConfig
    from gpner.training.trainer import train

    base = TrainConfig().update(dict(s.split("=") for s in SETTINGS), "test")
    records = tiny_data(64, 1)
    train(records, None, tmp_path / "big", base.update({"batch_size": 8, "epochs": 2}, "t"),
          progress=False)
    train(records, None, tmp_path / "acc", base.update({"batch_size": 2, "accumulate": 4,
                                                         "epochs": 2}, "t"), progress=False)
    assert max_diff(weights(tmp_path / "big"), weights(tmp_path / "acc")) < 1e-4
    train(records, None, tmp_path / "small", base.update({"batch_size": 2, "epochs": 2}, "t"),
          progress=False)
    assert max_diff(weights(tmp_path / "big"), weights(tmp_path / "small")) > 1e-2  # it matters


def test_a_killed_torchrun_resumes_to_the_uninterrupted_weights(data, tmp_path):
    common = ["--train", data / "big.jsonl", "--no-progress", "epochs=3", "batch_size=4",
              *SETTINGS]
    ref = torchrun("train", "-o", tmp_path / "ref", *common)
    assert ref.returncode == 0, ref.stderr[-3000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "gpner.cli", "train", "-o", str(tmp_path / "run"), *map(str, common)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    state = tmp_path / "run" / "last" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 1:
            time.sleep(0.3)  # into epoch 2
            os.killpg(proc.pid, signal.SIGKILL)
            # torchrun starts its workers in sessions of their own: kill them too, as a
            # machine that goes down would
            subprocess.run(["pkill", "-9", "-f", str(tmp_path / "run")])
            break
        time.sleep(0.02)
    proc.wait(30)
    assert proc.returncode != 0, "the run finished before it could be killed"
    for _ in range(100):  # every worker gone before the resume starts
        if subprocess.run(["pgrep", "-f", str(tmp_path / "run")],
                          capture_output=True).returncode != 0:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("workers still running after the kill")
    summary = tmp_path / "run" / "summary.json"
    assert not summary.exists()
    res = torchrun("train", "-o", tmp_path / "run", "--resume", "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]
    # it continued from the checkpoint (a fresh start would also reach the same weights)
    assert re.search(r"resumed .* at epoch [23], batch 0", res.stderr), res.stderr[-2000:]
    assert "epoch 1:" not in res.stderr
    assert max_diff(weights(tmp_path / "run"), weights(tmp_path / "ref")) == 0.0
    last_ref = load_file(str(tmp_path / "ref" / "last" / "model.safetensors"))
    last_run = load_file(str(tmp_path / "run" / "last" / "model.safetensors"))
    assert all(torch.equal(last_ref[k], last_run[k]) for k in last_ref)


def test_regularisers_ddp_cannot_run_are_refused_with_the_reason(data, tmp_path):
    r = torchrun("train", "--train", data / "train.jsonl", "-o", tmp_path / "r", "--no-progress",
                 "epochs=1", *SETTINGS, "vat=1")
    assert r.returncode != 0
    assert "vat=1.0 cannot run under torchrun yet: it calls torch.autograd.grad" in r.stderr
    # gpner's ranks print no traceback (torchrun then reports the failed children its own way)
    ours = r.stderr.split("torch/distributed/elastic")[0]
    assert ours.count("gpner train: error: vat=") == 2 and "Traceback" not in ours
    assert "records" not in ours  # refused before any data was read


def test_two_nodes_by_rendezvous_equal_one_node_with_two_processes(data, tmp_path):
    """Multi-node the way users start it (torchrun --nnodes 2 --node_rank R --rdzv_backend
    c10d --rdzv_endpoint HOST:PORT), both "nodes" on this machine: the same weights as two
    processes on one node."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = ["--train", data / "train.jsonl", "--no-progress", "epochs=1", "batch_size=4",
              *SETTINGS]
    out = tmp_path / "nodes"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(r),
         "--nproc_per_node", "1", "--rdzv_backend", "c10d", "--rdzv_endpoint",
         f"127.0.0.1:{port}", "--rdzv_id", "gpner-test", "-m", "gpner.cli", "train", "-o",
         str(out), *map(str, common)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True) for r in (0, 1)]
    logs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    one_node = torchrun("train", "-o", tmp_path / "one-node", *common)
    assert one_node.returncode == 0, one_node.stderr[-3000:]
    assert max_diff(weights(out), weights(tmp_path / "one-node")) < 1e-6
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2


def test_accelerate_launch_runs_the_same_training(data, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` (it starts processes through torchrun;
    on a machine without GPUs they use gloo): the weights of torchrun's two processes."""
    pytest.importorskip("accelerate")
    exe = os.path.join(os.path.dirname(sys.executable), "accelerate")
    common = ["--train", data / "train.jsonl", "--no-progress", "epochs=1", "batch_size=4",
              *SETTINGS]
    r = subprocess.run([exe, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
                        "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m",
                        "gpner.cli", "train", "-o", str(tmp_path / "acc"), *map(str, common)],
                       capture_output=True, text=True, env={**os.environ,
                                                            "CUDA_VISIBLE_DEVICES": ""})
    assert r.returncode == 0, r.stderr[-3000:]
    ref = torchrun("train", "-o", tmp_path / "ref", *common)
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert json.loads((tmp_path / "acc" / "summary.json").read_text())["world_size"] == 2
    assert max_diff(weights(tmp_path / "acc"), weights(tmp_path / "ref")) < 1e-6


def test_shares_of_a_global_batch_worked_example():
    """Ten examples, two ranks, two accumulation steps: every 4th index from each share's
    offset (rank * accumulate + step), so each share spans the batch's lengths; all ten are
    used once."""
    from gpner.training.distributed import share

    batch = list(range(10))
    assert share(batch, 0, 2, 2) == [[0, 4, 8], [1, 5, 9]]
    assert share(batch, 1, 2, 2) == [[2, 6], [3, 7]]
    assert share(batch, 0, 1, 1) == [batch]
    assert share([7], 1, 2, 1) == [[]]  # a rank with no example (it runs one at scale 0)
