"""Streaming prediction from the shell: what is read from each kind of input, one output line per
input line in order, bad lines reported by number (or fatal with --strict), atomic output, and
--resume after a real kill giving the same file as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gpner.prediction.stream import (
    BLOCK,
    InputReport,
    ResumableOutput,
    _looks_like_columns,
    detect_kind,
    parse_line,
    read_inputs,
)


def gpner(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "gpner.cli", *map(str, args)],
                          capture_output=True, text=True, input=stdin)


def test_parse_line_strips_line_ends_and_bom_only():
    assert parse_line("\ufeffab c\r\n", "text").text == "ab c"
    assert parse_line("a\rb\n", "text").text == "a\rb"  # a lone CR inside is text
    item = parse_line('{"text": "x y", "id": 3, "meta": {"k": [1]}}\n', "jsonl")
    assert item.text == "x y" and item.fields == {"text": "x y", "id": 3, "meta": {"k": [1]}}
    for bad, why in [("{oops", "invalid JSON"), ('{"id": 1}', 'no "text"'),
                     ('{"text": 5}', "not a string"), ("[1, 2]", "JSON object")]:
        with pytest.raises(ValueError, match=why):
            parse_line(bad, "jsonl")


def test_every_line_gives_one_item_and_bad_lines_are_counted(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("\ufeffone\r\n\ntwo words O\nthree B-12\n".encode())
    rep = InputReport(str(path))
    items = list(read_inputs(str(path), detect_kind(str(path)), rep))
    assert [i.text for i in items] == ["one", "", "two words O", "three B-12"]
    assert rep.read == 4 and not rep.bad
    js = tmp_path / "in.jsonl"
    js.write_text('{"text": "a"}\nnot json\n\n{"text": "b", "id": 2}\n{"x": 1}\n')
    rep = InputReport(str(js))
    items = list(read_inputs(str(js), "jsonl", rep))
    assert [i.text for i in items] == ["a", "b"] and items[1].fields["id"] == 2
    assert [n for n, _ in rep.bad] == [2, 3, 5]
    with pytest.raises(ValueError, match=r"in.jsonl:2: invalid JSON"):
        list(read_inputs(str(js), "jsonl", InputReport(str(js)), strict=True))
    # resume: the first items are read (and counted) but not yielded
    assert [i.text for i in read_inputs(str(js), "jsonl", InputReport(str(js)), skip=1)] == ["b"]


def test_plain_text_ending_in_tag_like_words_is_not_a_column_file(tmp_path):
    plain = tmp_path / "notes.txt"
    plain.write_text("Meet me at gate O\nThe code is B-12\n")
    assert detect_kind(str(plain)) == "text" and not _looks_like_columns(plain)
    cols = tmp_path / "train.txt"
    cols.write_text("-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n")
    assert detect_kind(str(cols)) == "conll"
    (tmp_path / "x.conll").write_text("a O\n")
    assert detect_kind(str(tmp_path / "x.conll")) == "conll"  # the suffix says so
    # consistent two-column lines but no sentence break: lines of text, one output line each
    two = tmp_path / "two.txt"
    two.write_text("hello O\nworld O\n")
    assert detect_kind(str(two)) == "text"


def test_resumable_output_keeps_whole_blocks_and_cuts_a_half_written_line(tmp_path,
                                                                           monkeypatch):
    from gpner.prediction import stream

    monkeypatch.setattr(stream, "BLOCK", 2)
    out = ResumableOutput(tmp_path / "o.jsonl")
    for k in (1, 2, 3):
        out.write(f'{{"a": {k}}}')
    out.flush()
    out.file.write('{"a": 4')  # the kill came mid-line, in the second block
    out.close()
    assert not (tmp_path / "o.jsonl").exists()  # nothing at the final path until finished
    again = ResumableOutput(tmp_path / "o.jsonl", resume=True)
    assert again.done == 2  # the whole first block; line 3 and the torn line 4 go
    assert (tmp_path / "o.jsonl.partial").read_text() == '{"a": 1}\n{"a": 2}\n'
    again.write('{"a": 3}')
    again.finish()
    assert (tmp_path / "o.jsonl").read_text().splitlines() == ['{"a": 1}', '{"a": 2}', '{"a": 3}']
    assert not (tmp_path / "o.jsonl.partial").exists()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from helpers import tiny_config

    from gpner.data.demo import generate
    from gpner.training.trainer import train

    d = tmp_path_factory.mktemp("stream")
    train(generate(96, 1), None, d / "run", tiny_config(epochs=6), progress=False)
    return d / "run"


def test_predict_file_keeps_lines_fields_and_order(model_dir, tmp_path):
    from gpner.prediction.loading import load

    js = tmp_path / "in.jsonl"
    rows = [{"text": "张伟在上海大学工作。", "id": "a"}, {"text": "", "id": "b"},
            {"text": "Alice works at the Bank of London .", "id": "c", "meta": {"k": [1, 2]}}]
    js.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:2]) + "\n{bad\n"
                  + json.dumps(rows[2]) + "\n", encoding="utf-8")
    res = gpner("predict", model_dir, js, "-o", tmp_path / "out.jsonl")
    assert res.returncode == 0, res.stderr
    assert "in.jsonl:3: invalid JSON" in res.stderr and "1 bad line(s)" in res.stderr
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    want = load(model_dir).predict([r["text"] for r in rows])
    assert [{k: v for k, v in o.items() if k != "entities"} for o in out] == rows
    assert [o["entities"] for o in out] == [w["entities"] for w in want]
    res = gpner("predict", model_dir, js, "-o", tmp_path / "c2.jsonl", "--concurrency", 2)
    assert res.returncode == 0, res.stderr  # batches in two threads: the same file
    assert (tmp_path / "c2.jsonl").read_bytes() == (tmp_path / "out.jsonl").read_bytes()
    res = gpner("predict", model_dir, js, "--strict")
    assert res.returncode == 2 and "in.jsonl:3: invalid JSON" in res.stderr
    # stdin: plain text with CRLF and a BOM, blank lines kept as empty texts
    res = gpner("predict", model_dir, stdin="\ufeff张伟在上海大学工作。\r\n\nAlice works .\n")
    assert res.returncode == 0, res.stderr
    texts = [json.loads(x)["text"] for x in res.stdout.splitlines()]
    assert texts == ["张伟在上海大学工作。", "", "Alice works ."]


def test_resume_after_a_kill_gives_the_uninterrupted_output(model_dir, tmp_path):
    from gpner.data.demo import generate

    src = tmp_path / "big.txt"
    texts = [r["text"] for r in generate(400, 9)] * 8
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    full = tmp_path / "full.jsonl"
    assert gpner("predict", model_dir, src, "-o", full, "--batch-size", 8).returncode == 0
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    proc = subprocess.Popen([sys.executable, "-m", "gpner.cli", "predict", str(model_dir),
                             str(src), "-o", str(out), "--batch-size", "8"],
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:  # past the first block
        if partial.exists() and partial.read_bytes().count(b"\n") > BLOCK + 10:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "killed before the end: the final file must not exist yet"
    done = partial.read_bytes().count(b"\n")
    assert BLOCK < done < len(texts)
    with open(partial, "ab") as f:  # and the kill tore a line
        f.write(b'{"text": "torn')
    res = gpner("predict", model_dir, src, "-o", out, "--resume", "--batch-size", 8)
    assert res.returncode == 0, res.stderr
    assert f"resumed after {done - done % BLOCK}" in res.stderr  # whole blocks are kept
    assert out.read_bytes() == full.read_bytes()  # byte-identical, scores included


def test_a_partial_of_another_input_or_a_second_writer_is_refused(model_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("张伟在上海大学工作。\nAlice works .\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    # a partial with more lines than the input has texts: not this input's
    assert gpner("predict", model_dir, src, "-o", tmp_path / "x.jsonl").returncode == 0
    meta = tmp_path / "x.jsonl.partial.json"
    assert not meta.exists()  # removed with the partial when the output is finished
    from gpner.prediction.stream import ResumableOutput, input_identity

    settings = {"model": str(model_dir.resolve()), "kind": "text", "flat": None,
                "threshold": None, "stride": None, "batch_size": 32}
    w = ResumableOutput(out, identity=input_identity(str(src), settings))
    for _ in range(BLOCK + 50):
        w.write('{"text": "stale"}')
    w.flush()
    w.close()
    res = gpner("predict", model_dir, src, "-o", out, "--resume")
    assert res.returncode == 2 and "[E503]" in res.stderr and "input has 2 texts" in res.stderr
    assert partial.exists()  # kept for the user to look at
    # the same partial against another input file
    other = tmp_path / "other.txt"  # long enough that the line count cannot tell
    other.write_text("另一个文件。\n" * (BLOCK + 100), encoding="utf-8")
    res = gpner("predict", model_dir, other, "-o", out, "--resume")
    assert res.returncode == 2 and "[E503]" in res.stderr
    assert "written for another input" in res.stderr
    # a second writer of the same output stops at once, naming the first
    w = ResumableOutput(tmp_path / "busy.jsonl")
    try:
        res = gpner("predict", model_dir, src, "-o", tmp_path / "busy.jsonl")
        assert res.returncode == 2 and "[E504]" in res.stderr
        assert f"process {os.getpid()}" in res.stderr
    finally:
        w.close()
    assert gpner("predict", model_dir, src, "-o", tmp_path / "busy.jsonl").returncode == 0


def test_lines_longer_than_a_read_chunk_stay_whole_and_bad_bytes_name_line_and_offset():
    import io

    from gpner.errors import DataEncodingError
    from gpner.textfiles import decoded_lines

    long = "长" * 200_000  # far past any read buffer
    raw = f"a\nbb\r\n{long}\n\nlast".encode()
    got = list(decoded_lines(io.BytesIO(raw), "t", None))
    assert got == ["a\n", "bb\r\n", long + "\n", "\n", "last"]
    assert list(decoded_lines(io.BytesIO(b""), "t", None)) == []
    # GBK bytes on line 3: the byte offset counts every byte before them
    bad = "a\n\u00e9\n".encode() + "张三".encode("gbk") + b"\n"
    with pytest.raises(DataEncodingError, match=r"\[E103\] t:3: byte 0xd5 at byte offset 5 "
                       r"\(byte 1 of the line\).*--encoding"):
        list(decoded_lines(io.BytesIO(bad), "t", None))
    assert list(decoded_lines(io.BytesIO(bad), "t", "gb18030"))[2] == "张三\n"
    # UTF-16 cannot be cut at b"\n": decoded as a stream
    assert list(decoded_lines(io.BytesIO("x\ny".encode("utf-16")), "t", "utf-16")) == \
        ["x\n", "y"]
