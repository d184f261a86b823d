"""Bad inputs, table-driven: every verb, every kind. Each case builds its files, runs the CLI and
asserts the exit code, the error code, that the message names the place and the value, and that
nothing was written or lost. The codes themselves are checked against docs/errors.md."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpner.cli import main
from gpner.errors import CODES, GpnerError

ROOT = Path(__file__).resolve().parents[1]


def test_every_code_is_documented_and_every_documented_code_exists():
    documented = re.findall(r"^### (E\d{3})$", (ROOT / "docs" / "errors.md").read_text(),
                            re.M)
    assert documented == sorted(documented) and len(set(documented)) == len(documented)
    assert set(documented) == set(CODES)
    used = set()
    for path in (ROOT / "src" / "gpner").rglob("*.py"):
        used |= set(re.findall(r'code\s*=\s*"(E\d{3})"', path.read_text(encoding="utf-8")))
    assert used <= set(CODES), used - set(CODES)
    # every code is raised somewhere (none documented for nothing)
    assert set(CODES) - used <= {"E601"}, set(CODES) - used  # E601: the CLI maps OSError
    with pytest.raises(AssertionError, match="undocumented"):
        GpnerError("x", code="E999")


def test_errors_are_builtin_exceptions_too():
    from gpner import errors

    assert issubclass(errors.DataError, ValueError)
    assert issubclass(errors.MissingFile, FileNotFoundError)
    assert issubclass(errors.ModelNotFound, FileNotFoundError)
    assert issubclass(errors.ArgumentTypeError, TypeError)
    assert issubclass(errors.MissingDependency, ImportError)
    from gpner.records import FormatError

    assert FormatError is errors.DataError
    e = errors.DataError("f.json:3: bad", code="E101")
    assert (str(e), e.code, e.message) == ("[E101] f.json:3: bad", "E101", "f.json:3: bad")


def run(argv, capsys) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, err


# ---- data files: gpner convert ------------------------------------------------------------

def w(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def jl(*objs) -> str:
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs)


CONVERT = [
    # (id, file name, content, extra args, code, substrings the message must hold)
    ("invalid-json", "a.jsonl", '{"text": "a"}\n{oops\n', [], "E101", ["a.jsonl:2:",
                                                                      "invalid JSON"]),
    ("gbk", "g.jsonl", b'{"text": "ok"}\n{"text": "' + "张三".encode("gbk") + b'"}\n', [],
     "E103", ["g.jsonl:2:", "byte 0xd5", "byte offset 25 (byte 11 of the line)", "--encoding"]),
    ("plain-text-ending-in-tags", "p.txt", "I saw O\nthe B-12\n", [], "E104",
     ["p.txt", "plain text", "line 2 has 2 columns"]),
    ("one-plain-line", "q.txt", "just some words\n", [], "E104", ["q.txt", "plain text"]),
    ("empty", "e.jsonl", "", [], "E112", ["e.jsonl", "empty"]),
    ("unknown-span-key", "u.jsonl", jl({"text": "abc", "spans": [
        {"begin": 0, "stop": 1, "type": "X"}]}), [], "E106", ["u.jsonl:1:", "'spans'"]),
    ("entity-keys-misspelled", "k.jsonl", jl({"text": "abc", "entities": [
        {"begin": 0, "stop": 1, "type": "X"}]}), [], "E106", ["k.jsonl:1:", "begin", "stop"]),
    ("forced-format-loses-entities", "f.jsonl", jl({"text": "abc", "entities": [
        {"start": 0, "end": 1, "label": "X"}]}), ["--format", "cluener"], "E105",
     ["f.jsonl", "--format cluener", "jsonl (1 entities)"]),
    ("deep-json", "d.jsonl", '{"text": ' + "[" * 5000 + "]" * 5000 + "}\n", [], "E113",
     ["d.jsonl:1:", "nested too deeply"]),
    ("missing-file", "absent.jsonl", None, [], "E111", ["absent.jsonl", "no such file"]),
    ("unknown-format", "a.jsonl", jl({"text": "a"}), ["--format", "xml"], "E109", ["'xml'"]),
    ("bad-tag-forced-conll", "c.txt", "a B-PER\nb PERSON\n", ["--format", "conll"], "E107",
     ["c.txt:2:", "'PERSON'"]),
    ("tsv-bad-label", "t.tsv", "ab\t[('X', 0, 1)]\ncd\tnot a list\n", ["--format", "tsv"],
     "E107", ["t.tsv:2:", "not a list"]),
    ("wordtag-bad-piece", "w.txt", "我/r 爱/v\n北京 天安门/ns\n", ["--format", "wordtag"], "E107",
     ["w.txt:2:", "'北京'"]),
    ("strict", "s.jsonl", jl({"text": "ab", "entities": [{"start": 0, "end": 9, "label": "X"}]}),
     ["--strict"], "E108", ["s.jsonl:1:", "offsets out of range", "[0, 9)"]),
    ("bad-encoding-name", "a.jsonl", jl({"text": "a"}), ["--encoding", "klingon"], "E303",
     ["'klingon'"]),
    ("nested-to-columns", "n.jsonl", jl({"text": "abcd", "entities": [
        {"start": 0, "end": 4, "label": "A"}, {"start": 1, "end": 2, "label": "B"}]}),
     ["-o", "{tmp}/n.bio"], "E110", ["record 0", "nested"]),
    ("read-only-output", "a.jsonl", jl({"text": "a"}), ["--to", "spo"], "E110", ["spo"]),
]


@pytest.mark.parametrize("case", CONVERT, ids=[c[0] for c in CONVERT])
def test_convert_refusals(case, tmp_path, capsys):
    _, name, content, extra, code, needles = case
    src = tmp_path / name
    if content is not None:
        w(src, content)
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    out = tmp_path / "out.jsonl"
    argv = ["convert", src, *(["-o", out] if "-o" not in extra else []), *extra]
    rc, err = run(argv, capsys)
    assert rc == 2, err
    assert f"error [{code}]" in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert "Traceback" not in err
    assert not out.exists() and not (tmp_path / "n.bio").exists()  # nothing half-written


def test_convert_reads_with_encoding_and_counts_exactly(tmp_path, capsys):
    src = w(tmp_path / "g.jsonl", jl({"text": "张三在北京", "entities": [
        {"start": 0, "end": 2, "label": "PER"}, {"start": 3, "end": 5, "label": "LOC"},
        {"start": 3, "end": 9, "label": "LOC"}]}).encode("gbk"))
    rc, err = run(["convert", src, "-o", tmp_path / "o.jsonl", "--encoding", "gbk"], capsys)
    assert rc == 0, err
    assert "1 records, 2 entities; problems: 1 offsets out of range" in err
    assert "first record: [张三]PER在[北京]LOC" in err and "format: jsonl (detected" in err
    assert json.loads((tmp_path / "o.jsonl").read_text(encoding="utf-8"))["entities"] == [
        {"start": 0, "end": 2, "label": "PER"}, {"start": 3, "end": 5, "label": "LOC"}]


def test_a_bom_and_crlf_do_not_shift_offsets(tmp_path, capsys):
    from gpner.data.formats import read

    src = w(tmp_path / "b.jsonl", b"\xef\xbb\xbf" + jl({"text": "ab", "entities": [
        {"start": 1, "end": 2, "label": "X", "text": "b"}]}).replace("\n", "\r\n").encode())
    corpus = read(src)
    assert corpus.records[0]["text"] == "ab" and corpus.report.entities == 1
    col = w(tmp_path / "c.bio", "\ufeffa B-X\r\nb I-X\r\n\r\nc O\r\n")
    assert [r["entities"] for r in read(col)] == [[{"start": 0, "end": 3, "label": "X"}], []]


# ---- training: gpner train ---------------------------------------------------------------

TINY = ["word_dim=8", "bigram_dim=4", "char_dim=4", "char_channels=4", "lstm_hidden=8",
        "lstm_layers=1", "head_size=4", "epochs=1", "batch_size=8"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from gpner.data.demo import generate
    from gpner.data.formats import write

    root = tmp_path_factory.mktemp("finished")
    write(generate(16, 3), root / "train.jsonl")
    assert main(["train", "--train", str(root / "train.jsonl"), "-o", str(root / "run"),
                 "--no-progress", *TINY]) == 0
    return root


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file()}


TRAIN = [
    ("finished-run", [], "E401", ["run", "finished run", "--overwrite"]),
    ("resume-with-settings", ["--resume", "epochs=3", "--head", "gp"], "E403",
     ["--head", "epochs=3", "ignored"]),
    ("lr-nan", ["--overwrite", "lr=nan"], "E303", ["lr=nan", "finite"]),
    ("lr-inf", ["--overwrite", "lr=inf"], "E303", ["lr=inf"]),
    ("ema-one", ["--overwrite", "ema=1"], "E303", ["ema=1.0", "[0, 1)"]),
    ("warmup-negative", ["--overwrite", "warmup=-0.1"], "E303", ["warmup"]),
    ("dropout", ["--overwrite", "dropout=2"], "E303", ["dropout"]),
    ("threads-zero", ["--overwrite", "threads=0"], "E303", ["threads"]),
    ("patience-negative", ["--overwrite", "patience=-1"], "E303", ["patience"]),
    ("threshold-nan", ["--overwrite", "threshold=.nan"], "E303", ["threshold"]),
    ("batch-size-zero", ["--overwrite", "batch_size=0"], "E303", ["batch_size"]),
    ("unknown-setting", ["--overwrite", "learning_rate=1"], "E301", ["learning_rate"]),
    ("wrong-type", ["--overwrite", "epochs=two"], "E302", ["epochs", "'two'"]),
    ("override-bad-yaml", ["--overwrite", "lr=[1"], "E304", ["lr=[1"]),
    ("unknown-head", ["--overwrite", "head=zzz"], "E303", ["'zzz'"]),
    ("encoder-not-found", ["--overwrite", "encoder={root}/no-such-encoder"], "E111",
     ["no-such-encoder"]),
    ("config-bad-yaml", ["--overwrite", "--config", "{root}/bad.yaml"], "E304",
     ["bad.yaml:2:1", "invalid YAML"]),
    ("config-python-tag", ["--overwrite", "--config", "{root}/tag.yaml"], "E304",
     ["tag.yaml:1:", "invalid YAML"]),
    ("config-not-mapping", ["--overwrite", "--config", "{root}/list.yaml"], "E304",
     ["list.yaml", "mapping"]),
]


@pytest.mark.parametrize("case", TRAIN, ids=[c[0] for c in TRAIN])
def test_train_refusals_leave_the_finished_run_untouched(case, finished_run, capsys):
    _, extra, code, needles = case
    root = finished_run
    w(root / "bad.yaml", "lr: [1\n")
    w(root / "tag.yaml", "lr: !!python/object/apply:os.system ['touch pwned']\n")
    w(root / "list.yaml", "- lr\n")
    before = snapshot(root / "run")
    extra = [a.replace("{root}", str(root)) for a in extra]
    argv = ["train", "-o", root / "run", "--no-progress", *extra]
    if "--resume" not in extra:
        argv[1:1] = ["--train", root / "train.jsonl"]
    rc, err = run(argv, capsys)
    assert (rc, f"error [{code}]" in err) == (2, True), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert snapshot(root / "run") == before  # nothing replaced, nothing mixed in
    assert not (root / "pwned").exists() and not Path("pwned").exists()


def test_overwrite_replaces_a_run_whole_and_resume_refuses_a_finished_one(tmp_path, capsys):
    from gpner.data.demo import generate
    from gpner.data.formats import write

    write(generate(16, 3), tmp_path / "train.jsonl")
    base = ["train", "--train", tmp_path / "train.jsonl", "-o", tmp_path / "run",
            "--no-progress", *TINY]
    assert run(base, capsys)[0] == 0
    (tmp_path / "run" / "notes.txt").write_text("mine")  # the user's own file stays
    old = snapshot(tmp_path / "run")
    rc, err = run([*base, "seed=7", "--overwrite"], capsys)
    assert rc == 0, err
    new = snapshot(tmp_path / "run")
    assert new["notes.txt"] == b"mine"
    assert new["model/model.safetensors"] != old["model/model.safetensors"]
    assert b"seed: 7" in new["config.yaml"]
    # an unfinished run: refused too, with --resume offered
    (tmp_path / "run" / "summary.json").unlink()
    rc, err = run(base, capsys)
    assert rc == 2 and "[E401]" in err and "unfinished run" in err and "--resume" in err
    # a file where the run directory goes
    rc, err = run([*base[:3], "-o", tmp_path / "train.jsonl"], capsys)
    assert rc == 2 and "[E404]" in err


def test_resume_in_python_refuses_a_different_config(finished_run):
    import yaml

    from gpner.errors import RunDirError
    from gpner.training.config import TrainConfig, load_config
    from gpner.training.trainer import train

    saved = TrainConfig().update(yaml.safe_load((finished_run / "run" / "config.yaml")
                                                .read_text()), "saved")
    changed = load_config(None, ["epochs=5"], base=saved)
    with pytest.raises(RunDirError, match=r"\[E403\].*epochs=5"):
        train(None, None, finished_run / "run", changed, resume=True)


def test_training_data_refusals(tmp_path, capsys):
    w(tmp_path / "none.jsonl", jl({"text": "a b c"}, {"text": "d e"}))
    rc, err = run(["train", "--train", tmp_path / "none.jsonl", "-o", tmp_path / "r", *TINY],
                  capsys)
    assert rc == 2 and "[E112]" in err and "no entities" in err
    rc, err = run(["train", "--output", tmp_path / "r2", "--resume"], capsys)
    assert rc == 2 and "[E402]" in err and "no checkpoint" in err
    assert not (tmp_path / "r" / "model").exists()


# ---- prediction inputs -----------------------------------------------------------------------

def test_predict_refusals_and_the_python_api(nested_model_dir, tmp_path, capsys):
    import gpner
    from gpner.errors import ArgumentTypeError, InputError

    src = w(tmp_path / "in.jsonl", '{"text": "a"}\n{"txt": "b"}\n')
    rc, err = run(["predict", nested_model_dir, src, "--strict", "--no-progress"], capsys)
    assert rc == 2 and "[E501]" in err and "in.jsonl:2:" in err and "no \"text\" field" in err
    gbk = w(tmp_path / "g.txt", "张三\n".encode("gbk"))
    rc, err = run(["predict", nested_model_dir, gbk, "--no-progress"], capsys)
    assert rc == 2 and "[E103]" in err and "g.txt:1:" in err and "--encoding" in err
    rc, err = run(["predict", nested_model_dir, gbk, "--no-progress", "--encoding", "gbk"],
                  capsys)
    assert rc == 0, err
    model = gpner.load(nested_model_dir)
    with pytest.raises(ArgumentTypeError, match=r"\[E502\].*not a int"):
        model.predict(123)
    with pytest.raises(ArgumentTypeError, match=r"record\['text'\]"):
        model.predict({"text": "abc"})
    with pytest.raises(ArgumentTypeError, match=r"text 1 is a int"):
        model.predict(["a", 5])
    with pytest.raises(InputError, match="batch_size"):
        model.predict(["a"], batch_size=-1)
    for bad in (float("nan"), float("inf"), "0.5", True):
        with pytest.raises(InputError, match="threshold must be a finite number"):
            model.predict(["a"], threshold=bad)
    rc, err = run(["predict", nested_model_dir, tmp_path / "absent.txt"], capsys)
    assert rc == 2 and "[E111]" in err and "absent.txt" in err
    with pytest.raises(ArgumentTypeError, match="path"):
        gpner.data.formats.read(123)


def test_evaluate_and_render_refusals(nested_model_dir, tmp_path, capsys):
    gold = w(tmp_path / "gold.jsonl", jl({"text": "北京大学", "entities": [
        {"start": 0, "end": 4, "label": "ORG"}]}).encode("gbk"))
    rc, err = run(["evaluate", nested_model_dir, gold, "--no-progress"], capsys)
    assert rc == 2 and "[E103]" in err and "gold.jsonl:1:" in err
    rc, err = run(["evaluate", nested_model_dir, gold, "--no-progress", "--encoding", "gbk",
                   "--json"], capsys)
    assert rc == 0, err
    rc, err = run(["evaluate", tmp_path / "no-model", gold, "--encoding", "gbk"], capsys)
    assert rc == 2 and "[E201]" in err and "no-model" in err
    rc, err = run(["render", gold, "-o", tmp_path / "p.html"], capsys)
    assert rc == 2 and "[E103]" in err
    assert not (tmp_path / "p.html").exists()
    rc, err = run(["render", gold, "-o", tmp_path / "p.html", "--encoding", "gbk"], capsys)
    assert rc == 0 and "北京大学" in (tmp_path / "p.html").read_text(encoding="utf-8")


# ---- model directories: tampering ----------------------------------------------------------

def tamper_truncated(d: Path):
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])


def tamper_garbage(d: Path):
    (d / "model.safetensors").write_bytes(b"\x00garbage" * 10)


def tamper_empty_weights(d: Path):
    (d / "model.safetensors").write_bytes(b"")


def edit_config(change):
    def tamper(d: Path):
        cfg = json.loads((d / "config.json").read_text())
        change(cfg)
        (d / "config.json").write_text(json.dumps(cfg))
    return tamper


def add_label(cfg):
    cfg["id2label"][str(len(cfg["id2label"]))] = "EXTRA"
    cfg["label2id"]["EXTRA"] = len(cfg["label2id"])


def swap_weights_of_another_shape(d: Path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(d / "model.safetensors"))
    name = next(k for k in state if k.endswith("weight") and state[k].dim() == 2)
    state[name] = state[name][:, :-1].contiguous()
    save_file(state, str(d / "model.safetensors"))


TAMPER = [
    ("truncated-weights", tamper_truncated, "E205", ["model.safetensors", "truncated"]),
    ("garbage-weights", tamper_garbage, "E205", ["model.safetensors"]),
    ("empty-weights", tamper_empty_weights, "E205", ["model.safetensors", "0 bytes"]),
    ("label-count-changed", edit_config(add_label), "E206", ["config.json", "another shape",
                                                              "labels"]),
    ("wrong-shapes", swap_weights_of_another_shape, "E206", ["another shape"]),
    ("missing-key", edit_config(lambda c: c.pop("head")), "E203", ["config.json", "'head'"]),
    ("encoder-sizes-missing", edit_config(lambda c: c["encoder"].pop("sizes")), "E203",
     ["encoder.sizes"]),
    ("decode-threshold-not-a-number", edit_config(lambda c: c["decode"].update(threshold="x")),
     "E203", ["config.json", "decode.threshold", "'x'"]),
    ("newer-version", edit_config(lambda c: c.update(format_version=99)), "E204",
     ["format_version 99", "upgrade"]),
    ("config-invalid-json", lambda d: (d / "config.json").write_text("{bad"), "E202",
     ["config.json:1:"]),
    ("config-not-utf8", lambda d: (d / "config.json").write_bytes(b"\xff\xfe{}"), "E202",
     ["config.json:1:", "byte 0xff"]),
    ("vocab-invalid-json", lambda d: (d / "vocab.json").write_text("{bad"), "E202",
     ["vocab.json:1:"]),
    ("features-missing-key", lambda d: (d / "features.json").write_text("{}"), "E203",
     ["features.json", "bigrams"]),
    ("vocab-missing", lambda d: (d / "vocab.json").unlink(), "E207", ["vocab.json", "missing"]),
    ("weights-missing", lambda d: (d / "model.safetensors").unlink(), "E201",
     ["not a gpner model directory"]),
]


@pytest.mark.parametrize("case", TAMPER, ids=[c[0] for c in TAMPER])
def test_tampered_model_directories_are_refused_by_name(case, nested_model_dir, tmp_path,
                                                        capsys):
    _, tamper, code, needles = case
    d = tmp_path / "model"
    shutil.copytree(nested_model_dir, d)
    tamper(d)
    text = w(tmp_path / "t.txt", "北京大学\n")
    rc, err = run(["predict", d, text, "--no-progress"], capsys)
    assert (rc, f"error [{code}]" in err) == (2, True), err
    for needle in needles:
        assert needle in err, (needle, err)


class Boom:
    """Unpickling this creates a file: the marker that a pickle was executed."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickles_in_a_model_directory_are_never_unpickled(nested_model_dir, tmp_path):
    import pickle

    import gpner

    d = tmp_path / "model"
    shutil.copytree(nested_model_dir, d)
    marker = tmp_path / "executed"
    for name in ("pytorch_model.bin", "training_args.bin", "optimizer.pt", "model.pkl"):
        (d / name).write_bytes(pickle.dumps(Boom(str(marker))))
    assert gpner.load(d).predict("北京大学")["text"] == "北京大学"
    # a pickle under the weights' name: refused as corrupt weights, still never run
    (d / "model.safetensors").write_bytes(pickle.dumps(Boom(str(marker))))
    with pytest.raises(GpnerError, match=r"\[E205\]"):
        gpner.load(d)
    assert not marker.exists()


# ---- the process: no traceback, --debug shows one ------------------------------------------

def test_the_cli_prints_one_line_and_debug_shows_the_traceback(tmp_path):
    exe = shutil.which("gpner") or str(Path(sys.executable).parent / "gpner")
    bad = w(tmp_path / "a.jsonl", "{oops\n")
    res = subprocess.run([exe, "convert", bad, "-o", tmp_path / "o.jsonl"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("gpner convert: error [E101]")
    res = subprocess.run([exe, "--debug", "convert", bad, "-o", tmp_path / "o.jsonl"],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" in res.stderr and "DataError" in res.stderr


def test_an_unexpected_error_is_one_line_with_exit_3(monkeypatch, tmp_path, capsys):
    import gpner.data.formats

    def broken(*a, **k):
        raise KeyError("internal")

    monkeypatch.setattr(gpner.data.formats, "read", broken)
    rc, err = run(["convert", w(tmp_path / "a.jsonl", jl({"text": "a"})), "-o",
                   tmp_path / "o.jsonl"], capsys)
    assert rc == 3 and "unexpected error (KeyError" in err and "--debug" in err
    assert "Traceback" not in err


def test_a_full_disk_is_e601(monkeypatch, tmp_path, capsys):
    import errno

    import gpner.data.formats

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o.jsonl"))

    monkeypatch.setattr(gpner.data.formats, "write", full)
    rc, err = run(["convert", w(tmp_path / "a.jsonl", jl({"text": "a"})), "-o",
                   tmp_path / "o.jsonl"], capsys)
    assert rc == 2 and "[E601] no space left" in err and "o.jsonl" in err


def test_ray_checks_the_encoding_before_starting_ray(nested_model_dir, tmp_path):
    ray = pytest.importorskip("ray")
    from gpner.errors import DataEncodingError
    from gpner.integrations.batch_inference import predict_with_ray

    gbk = w(tmp_path / "in.txt", "ok\n".encode() + "张三\n".encode("gbk"))
    with pytest.raises(DataEncodingError, match=r"\[E103\] .*in\.txt:2: byte 0xd5 at byte "
                       r"offset 3"):
        predict_with_ray(str(nested_model_dir), str(gbk), str(tmp_path / "o.jsonl"))
    assert not ray.is_initialized() and not (tmp_path / "o.jsonl").exists()
