"""Micro-batching against the plain predictor as the oracle: concurrent requests with their own
thresholds, flat/nested choices and label filters get exactly what each would get alone, while
sharing forward passes within the token budget; a failing pass fails its batch only; a full
queue refuses at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gpner.prediction.loading import load
from gpner.prediction.predictor import Predictor
from gpner.serving.microbatch import BatchSettings, MicroBatcher, Overloaded, pass_sizes

TEXTS = ["张伟在北京大学工作。", "The Bank of London opened a new office in Paris .",
         "李娜是上海银行的研究员，住在杭州。", "Alice Johnson works at the University of Tokyo .",
         "记者在深圳采访了王芳。", "今天天气很好。", "Reporters met David Lee in Boston ."]


class Recording:
    """Wraps a backend: records each batch's shape; fails a batch holding ``fail_id``; can be
    held at a gate so that requests pile up behind a running batch."""

    def __init__(self, inner, ids_key="ids"):
        self.inner, self.ids_key = inner, ids_key
        self.shapes: list[tuple[int, int]] = []
        self.fail_id: int | None = None
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def __call__(self, batch):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        ids = batch[self.ids_key]
        self.shapes.append(tuple(ids.shape[:2]))
        if self.fail_id is not None and (ids == self.fail_id).any():
            raise RuntimeError("model failure planted by the test")
        return self.inner(batch)


@pytest.fixture(scope="module")
def model(nested_model_dir):
    plain = load(nested_model_dir, device="cpu")
    key = next(k for k in plain.featurizer.collate([plain.featurizer.window(
        "a", plain.featurizer.encode("a"), 0, 1)]) if "id" in k)
    rec = Recording(plain.backend, key)
    return plain, Predictor(plain.config, plain.featurizer, plain.task, rec), rec


def run(coro):
    return asyncio.run(coro)


def assert_same(got: list[dict], want: list[dict]) -> None:
    """Same texts, spans, labels and order; scores within 2e-4 (other padding in a shared batch
    moves the 4th decimal of a float32 forward pass)."""
    assert [r["text"] for r in got] == [r["text"] for r in want]
    for g, w in zip(got, want, strict=True):
        key = [(e["start"], e["end"], e["label"], e["text"]) for e in g["entities"]]
        assert key == [(e["start"], e["end"], e["label"], e["text"]) for e in w["entities"]]
        for a, b in zip(g["entities"], w["entities"], strict=True):
            assert abs(a["score"] - b["score"]) <= 2e-4 and abs(a["prob"] - b["prob"]) <= 2e-4


def test_pass_sizes_fill_the_budget_longest_first():
    class W(list):
        pass

    pairs = [(None, W([0] * n)) for n in (50, 40, 40, 10, 10, 10, 10, 10)]
    # 100 tokens: 50 and 40 (2 x 50 padded); 40 alone (a 10 would be padded to 4x its
    # length); the five 10s
    assert pass_sizes(pairs, 100) == [2, 1, 5]
    assert pass_sizes(pairs, 30) == [1, 1, 1, 3, 2]  # a window over the budget runs alone
    # a large budget: 50, 40, 40 together (40 >= 50 / 2); the 10s not padded to 50
    assert pass_sizes(pairs, 1000) == [3, 5]
    assert pass_sizes(pairs[:1] + [(None, W([0] * 25))], 1000) == [2]  # exactly half: together
    assert pass_sizes([], 100) == []


def test_concurrent_requests_share_passes_and_get_what_each_would_alone(model):
    plain, predictor, rec = model
    options = [dict(threshold=t, flat=f, labels=lb) for t, f, lb in [
        (0.0, False, None), (2.0, False, None), (0.0, True, None), (-0.5, False, ["LOC"]),
        (2.0, True, ["ORG", "PER"]), (0.5, False, None), (None, None, None)]]

    async def go():
        b = MicroBatcher(predictor, BatchSettings(max_batch_tokens=4096, max_wait_ms=50))
        b.start()
        out = await asyncio.gather(*(b.predict([t], **o) for t, o in zip(TEXTS, options, strict=True)))
        await b.stop()
        return out

    rec.shapes.clear()
    got = run(go())
    assert len(rec.shapes) < len(TEXTS)  # shared forward passes
    assert sum(n for n, _ in rec.shapes) == len(TEXTS)
    for text, o, records in zip(TEXTS, options, got, strict=True):
        want = plain.predict(text, threshold=o["threshold"], flat=o["flat"])
        if o["labels"]:
            want["entities"] = [e for e in want["entities"] if e["label"] in o["labels"]]
        assert_same(records, [want])
    # the oracle itself is not empty, and the options matter
    nested = plain.predict(TEXTS[0])["entities"]
    assert {(e["start"], e["end"], e["label"]) for e in nested} >= {(3, 7, "ORG"), (3, 5, "LOC")}
    assert got[1] != [plain.predict(TEXTS[1])]  # threshold 2.0 drops something


def test_a_batch_is_decoded_at_its_lowest_threshold(model):
    plain, predictor, rec = model

    async def go():
        b = MicroBatcher(predictor, BatchSettings(max_wait_ms=500))
        high = asyncio.create_task(b.predict([TEXTS[1]], threshold=3.0))
        while b._queue.qsize() < 1:  # queued first; the batch loop starts later
            await asyncio.sleep(0.005)
        low = asyncio.create_task(b.predict([TEXTS[2]], threshold=-1.0))
        while b._queue.qsize() < 2:
            await asyncio.sleep(0.005)
        b.start()
        out = await asyncio.gather(high, low)
        await b.stop()
        return out

    rec.shapes.clear()
    high, low = run(go())
    assert [n for n, _ in rec.shapes] == [2]  # one pass for both
    assert_same(high, [plain.predict(TEXTS[1], threshold=3.0)])
    want = plain.predict(TEXTS[2], threshold=-1.0)
    assert any(-1.0 < e["score"] <= 3.0 for e in want["entities"])  # lost at the first's 3.0
    assert_same(low, [want])


def test_passes_stay_within_the_token_budget_and_batching_off_runs_each_alone(model):
    plain, predictor, rec = model
    long_text = "张伟在北京大学工作。" * 60  # several windows

    async def go(settings):
        b = MicroBatcher(predictor, settings)
        b.start()
        out = await asyncio.gather(*(b.predict([t, long_text]) for t in TEXTS))
        await b.stop()
        return out

    rec.shapes.clear()
    got = run(go(BatchSettings(max_batch_tokens=600, max_wait_ms=50)))
    assert all(n * L <= 600 or n == 1 for n, L in rec.shapes), rec.shapes
    assert_same([got[0][1]], [plain.predict(long_text)])
    assert max(e["start"] for e in got[0][1]["entities"]) > 500  # windowed, not truncated
    rec.shapes.clear()
    run(go(BatchSettings(batching=False)))
    # alone, a request's windows (the long text's, then the short one's, never padded to
    # more than twice its length) fit the default budget: the same passes for each request
    windows = 1 + _windows(plain, long_text)
    assert windows > 3
    passes = [n for n, _ in rec.shapes]
    assert passes[:2] == [windows - 1, 1] and passes == passes[:2] * len(TEXTS)


def _windows(plain, text):
    from gpner.text.windows import content_size, window_bounds

    enc = plain.featurizer.encode(text)
    return len(window_bounds(len(enc), content_size(plain.featurizer, plain.config.max_length),
                             plain.config.decode.stride))


def test_a_failing_pass_fails_its_batch_only(model):
    plain, predictor, rec = model

    async def go():
        b = MicroBatcher(predictor, BatchSettings(max_wait_ms=0))
        b.start()
        first = await asyncio.gather(b.predict(["炸" + TEXTS[0]]), return_exceptions=True)
        rec.fail_id = None
        after = await b.predict([TEXTS[0]])
        await b.stop()
        return first, after

    rec.fail_id = _token_id(plain, "炸")
    first, after = run(go())
    assert isinstance(first[0], RuntimeError) and "planted" in str(first[0])
    assert_same(after, [plain.predict(TEXTS[0])])


def _token_id(plain, ch):
    win = plain.featurizer.window(ch, plain.featurizer.encode(ch), 0, 1)
    batch = plain.featurizer.collate([win])
    key = next(k for k in batch if "id" in k)
    ids = [int(i) for i in batch[key][0]]
    return max(ids)  # the character's id (special ids are small)


def test_a_full_queue_refuses_at_once_and_the_rest_complete(model):
    plain, predictor, rec = model

    async def go():
        b = MicroBatcher(predictor, BatchSettings(max_queue=2, max_wait_ms=0))
        b.start()
        rec.gate, rec.entered = threading.Event(), threading.Event()
        running = asyncio.create_task(b.predict([TEXTS[0]]))
        while not rec.entered.is_set():  # the first request is in the model, held there
            await asyncio.sleep(0.01)
        queued = [asyncio.create_task(b.predict([t])) for t in TEXTS[1:3]]
        while b.waiting < 2 or b._queue.qsize() < 2:  # both featurized and queued
            await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match="max_queue 2"):
            await b.predict([TEXTS[3]])
        assert b.running == 1 and b.waiting == 2
        rec.gate.set()
        out = await asyncio.gather(running, *queued)
        await b.stop()
        return out

    try:
        out = run(go())
    finally:
        rec.gate = None
    for records, text in zip(out, TEXTS[:3], strict=True):
        assert_same(records, [plain.predict(text)])


def test_a_short_request_is_not_starved_by_a_long_text(model):
    """A long text's windows run in rounds that requests arriving meanwhile join: a short
    request sent while it runs is answered within a round or two, long before the long one."""
    plain, predictor, rec = model
    long_text = "张伟在北京大学工作，李娜住在上海。" * 400  # hundreds of windows

    async def go():
        b = MicroBatcher(predictor, BatchSettings(max_batch_tokens=512, max_wait_ms=0))
        b.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        long_task = asyncio.create_task(b.predict([long_text]))
        while rec.shapes == []:  # the long text is in the model
            await asyncio.sleep(0.005)
        sent = loop.time()
        short = await b.predict([TEXTS[0]])
        short_latency = loop.time() - sent
        long_records = await long_task
        long_time = loop.time() - t0
        await b.stop()
        return short, short_latency, long_records, long_time

    rec.shapes.clear()
    short, short_latency, long_records, long_time = run(go())
    assert_same(short, [plain.predict(TEXTS[0])])
    assert_same(long_records, [plain.predict(long_text)])  # rounds do not change the answer
    assert short_latency < long_time / 4, (short_latency, long_time)
