"""Nothing lost on disk: --overwrite keeps the old run until the new one has a model (back if
the new run fails or was killed before), a full disk is E601 naming the file with the earlier
files whole (an ENOSPC injected at the writes of a training run and of predict -o), a directory
without a checkpoint is not offered to --resume, JSON lines escape U+2028/U+2029, a U+FEFF that
opens a later input line is kept, and convert passes every field through."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tiny_config, tiny_data

from gpner.errors import GpnerError
from gpner.prediction.loading import load
from gpner.training.trainer import train


def gpner(*args, stdin=None):
    exe = str(Path(sys.executable).parent / "gpner")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, input=stdin)


@pytest.fixture()
def finished(tmp_path):
    run = tmp_path / "run"
    train(tiny_data(60, 1), None, run, tiny_config(epochs=2), progress=False)
    return run


def _fingerprint(run: Path) -> dict:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file()}


def test_a_failed_overwrite_gives_the_old_run_back(finished, monkeypatch):
    before = _fingerprint(finished)
    from gpner.training import trainer

    def fail(self, *a, **k):
        # while the new run trains, the old model is still what loading finds
        assert load(finished).predict("北京大学")["text"] == "北京大学"
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(trainer.Trainer, "fit", fail)
    with pytest.raises(RuntimeError):
        train(tiny_data(60, 2), None, finished, tiny_config(epochs=2), progress=False,
              overwrite=True)
    assert _fingerprint(finished) == before  # every file of the old run, byte for byte
    assert not (finished / ".previous-run").exists()


def test_an_overwrite_killed_before_its_model_is_undone_at_the_next_start(finished):
    from gpner.training.rundir import check_output, set_aside

    before = _fingerprint(finished)
    set_aside(finished)  # what a run killed after setting the old run aside leaves
    (finished / "config.yaml").write_text("half: a new run\n")
    assert load(finished).predict("北京")["text"] == "北京"  # still loadable meanwhile
    with pytest.raises(GpnerError, match="E401"):  # the next start puts it back, refuses
        check_output(finished, overwrite=False)
    assert _fingerprint(finished) == before


def test_a_successful_overwrite_removes_the_old_run(finished):
    train(tiny_data(60, 3), None, finished, tiny_config(epochs=1), progress=False,
          overwrite=True)
    assert not (finished / ".previous-run").exists()
    assert json.loads((finished / "summary.json").read_text())["epochs_run"] == 1


def _enospc_at(monkeypatch, module, name):
    """Make ``module.name`` (a writer) fail as a full disk does."""
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module, name, full)


def test_a_full_disk_while_training_is_e601_naming_the_file(tmp_path, monkeypatch):
    import safetensors.torch

    _enospc_at(monkeypatch, safetensors.torch, "save_model")  # weights of model/ and last/
    run = tmp_path / "run"
    with pytest.raises(GpnerError, match=r"\[E601\] .*run/(model|last): no space left"):
        train(tiny_data(40, 1), None, run, tiny_config(epochs=1), progress=False)
    from safetensors import SafetensorError

    def full(*a, **k):  # safetensors says it in a message, not an errno
        raise SafetensorError("Error while serializing: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_model", full)
    with pytest.raises(GpnerError, match=r"\[E601\]"):
        train(tiny_data(40, 1), None, tmp_path / "run2", tiny_config(epochs=1), progress=False)
    # no checkpoint was written: the directory is not offered to --resume
    from gpner.training.rundir import check_output

    with pytest.raises(GpnerError, match="E401") as err:
        check_output(run, overwrite=False)
    assert "--resume" not in str(err.value)


def test_a_full_disk_under_predict_names_the_output(finished, tmp_path):
    from gpner.prediction.stream import ResumableOutput

    out = ResumableOutput(tmp_path / "o.jsonl")

    class Full:
        closed = False

        def write(self, s):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.closed = True

    out.file = Full()
    with pytest.raises(GpnerError, match=r"\[E601\] .*o\.jsonl: no space left"):
        out.write('{"text": "x"}')
    out.close()


def test_json_lines_escape_line_separators_and_a_later_bom_is_text(finished, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("北京\u2028大学\n\ufeff张伟在北京\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = gpner("predict", finished, src, "-o", out)
    assert res.returncode == 0, res.stderr
    raw = out.read_text(encoding="utf-8")
    assert "\u2028" not in raw and "\\u2028" in raw
    lines = raw.splitlines()  # splitlines breaks at U+2028: it must not find one
    assert len(lines) == 2
    texts = [json.loads(x)["text"] for x in lines]
    assert texts == ["北京\u2028大学", "\ufeff张伟在北京"]  # offsets stay the file's
    for line, rec in zip(["北京\u2028大学", "\ufeff张伟在北京"], map(json.loads, lines),
                         strict=True):
        for e in rec["entities"]:
            assert line[e["start"]:e["end"]] == e["text"]


def test_convert_passes_every_record_and_entity_field_through(tmp_path):
    src = tmp_path / "in.jsonl"
    rec = {"text": "张伟在北京", "doc_id": "d7", "source": "web", "id": 3,
           "entities": [{"start": 0, "end": 2, "label": "PER", "note": "checked"}]}
    src.write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert gpner("convert", src, "-o", out).returncode == 0
    assert json.loads(out.read_text(encoding="utf-8")) == rec


class Stop(BaseException):
    """A kill, as far as the writer can tell: nothing after it runs."""


@pytest.mark.parametrize("fault", ["kill", "disk full"])
def test_predict_survives_a_fault_at_every_write_boundary(finished, tmp_path, monkeypatch,
                                                          fault):
    """Every write of `predict -o` (each line, each flush, the final sync) in turn fails, by a
    kill or a full disk; `--resume` then gives the uninterrupted output, byte for byte."""
    from gpner.cli import main
    from gpner.prediction import stream

    monkeypatch.setattr(stream, "BLOCK", 3)
    src = tmp_path / "in.txt"
    src.write_text("".join(f"张伟{k}在北京大学工作。\n" for k in range(8)), encoding="utf-8")
    want = tmp_path / "want.jsonl"
    assert main(["predict", str(finished), str(src), "-o", str(want), "--no-progress"]) == 0
    calls = {"n": 0, "at": 0}
    real = {name: getattr(stream.ResumableOutput, name) for name in ("write", "flush", "finish")}

    def failing(name):
        def method(self, *a):
            calls["n"] += 1
            if calls["n"] == calls["at"]:
                if fault == "kill":
                    raise Stop()
                raise OSError(errno.ENOSPC, "No space left on device")
            return real[name](self, *a)
        return method

    boundaries = 8 + 3 + 1  # a write per line, a flush per block, the final sync
    for at in range(1, boundaries + 1):
        out = tmp_path / f"out{at}.jsonl"
        for name in real:
            monkeypatch.setattr(stream.ResumableOutput, name, failing(name))
        calls.update(n=0, at=at)
        if fault == "kill":
            with pytest.raises(Stop):
                main(["predict", str(finished), str(src), "-o", str(out), "--no-progress"])
        else:
            assert main(["predict", str(finished), str(src), "-o", str(out),
                         "--no-progress"]) == 2  # E601, printed
        assert not out.exists()  # a failed run never leaves a file that looks complete
        for name, method in real.items():
            monkeypatch.setattr(stream.ResumableOutput, name, method)
        assert main(["predict", str(finished), str(src), "-o", str(out), "--resume",
                     "--no-progress"]) == 0
        assert out.read_bytes() == want.read_bytes(), at


@pytest.mark.slow
def test_training_survives_a_kill_at_every_commit_point(tmp_path, monkeypatch):
    """Every rename that commits a file of a training run (settings, metrics, model, checkpoint,
    summary) in turn is where the run dies. After each: a model directory that is there loads,
    --resume is offered only with a checkpoint, and resuming (or starting again) finishes."""
    import os as _os

    from gpner import atomic
    from gpner.training.checkpoint import has_checkpoint
    from gpner.training.rundir import check_output

    records = tiny_data(40, 1)
    cfg = tiny_config(epochs=2)
    real = _os.replace
    calls = {"n": 0, "at": 0}

    def replace(a, b):
        calls["n"] += 1
        if calls["n"] == calls["at"]:
            raise Stop()
        return real(a, b)

    monkeypatch.setattr(atomic.os, "replace", replace)
    calls["at"] = 10 ** 9
    train(records, None, tmp_path / "whole", cfg, progress=False)
    total = calls["n"]
    assert total >= 8
    for at in range(1, total + 1):
        run = tmp_path / f"run{at}"
        calls.update(n=0, at=at)
        with pytest.raises(Stop):
            train(records, None, run, cfg, progress=False)
        calls["at"] = 10 ** 9
        if (run / "model").exists():
            load(run)  # whole, never half a model
        resumable = has_checkpoint(run / "last")
        try:
            check_output(run, overwrite=False)
        except GpnerError as exc:
            assert ("--resume" in str(exc)) == (resumable and not (run / "summary.json").exists())
        if resumable and not (run / "summary.json").exists():
            summary = train(records, None, run, progress=False, resume=True)
        else:
            summary = train(records, None, run, cfg, progress=False, overwrite=True)
        assert summary["epochs_run"] == 2
        load(run)
