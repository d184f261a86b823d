"""Micro-batching for a service: concurrent requests share forward passes.

A request's texts are cut into windows in a worker thread (the event loop stays free), then the
request waits in a queue. A batch loop takes the first request, gathers more for at most
``max_wait_ms``, and then runs rounds off the event loop: each round takes at most
``max_batch_tokens`` padded window tokens from the requests in progress, the requests with the
least work left first, sorts them by length and cuts them into forward passes (a pass never pads
a window to more than twice its length). Requests that arrive meanwhile join at the next round,
so a long text's windows share rounds with the short requests that come while it runs, and a
short request waits for at most one round, never for the whole long text. A request is answered
when its last window is done, with its own threshold, flat/nested choice and label filter: a
round is decoded at the lowest threshold among its requests and each request keeps the spans
above its own (the same spans as decoding at that threshold, because a span's merged score is its
best window's, which passes any lower threshold too).

A full queue refuses new requests at once (:class:`Overloaded`); a failing forward pass fails
the requests of its batch only. Nothing here knows about HTTP: :mod:`gpner.serving.app` maps these
outcomes to status codes.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from gpner.prediction.predictor import Pair, Predictor, TextInFlight
from gpner.records import Record


class Overloaded(RuntimeError):
    """The queue is full: the request was not accepted (the client should retry later)."""


@dataclass
class BatchSettings:
    """How requests are batched (``gpner serve``'s options of the same names)."""

    max_batch_tokens: int = 8192  # padded tokens (windows x longest window) per forward pass
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    max_queue: int = 256  # requests accepted and not yet in a batch; more get Overloaded
    concurrency: int = 1  # batches running at once (threads running the model)
    batching: bool = True  # False: every request runs alone (for comparison)

    def __post_init__(self) -> None:
        for name in ("max_batch_tokens", "max_queue", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")


@dataclass
class Job:
    """One request: its texts cut into windows, its options, and the future it waits on."""

    docs: list[TextInFlight]
    pairs: list[Pair]
    threshold: float  # windows are decoded at this (or lower)
    flat: bool
    labels: list[str] | None
    future: asyncio.Future
    cut: Any = None  # what the records keep spans above: the threshold, or one per label (C,)
    tokens: int = 0  # padded tokens if it ran alone in one pass (its share of a batch budget)
    done: int = 0  # windows already run (by the loop that holds it)

    def left(self) -> int:
        """Padded tokens of the windows still to run."""
        rest = self.pairs[self.done:]
        return len(rest) * max((len(w) for _, w in rest), default=0)


BatchHook = Callable[[int, int, int, float], None]  # (requests, windows, padded tokens, seconds)


class MicroBatcher:
    """Requests in, records out, with forward passes shared between concurrent requests (see
    the module docstring). Runs on an asyncio loop: :meth:`start` in it, :meth:`predict` from
    its tasks, :meth:`stop` to drain."""

    def __init__(self, predictor: Predictor, settings: BatchSettings | None = None,
                 on_batch: BatchHook | None = None):
        self.predictor = predictor
        self.settings = settings or BatchSettings()
        self.on_batch = on_batch
        self.waiting = 0  # accepted requests not yet taken into a batch
        self.running = 0  # requests in batches being computed
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._pool = ThreadPoolExecutor(self.settings.concurrency, "gpner-model")
        self._loops: list[asyncio.Task] = []

    def start(self) -> None:
        self._loops = [asyncio.create_task(self._loop(), name=f"gpner-batch-{k}")
                       for k in range(self.settings.concurrency)]

    async def stop(self) -> None:
        """Let queued requests finish, then stop the batch loops and the model threads."""
        for _ in self._loops:
            await self._queue.put(None)
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._pool.shutdown(wait=True)

    async def predict(self, texts: Sequence[str], threshold: float | None = None,
                      flat: bool | None = None, labels: list[str] | None = None
                      ) -> list[Record]:
        """Records for ``texts`` (options default to the model's), computed in a shared batch.
        Raises :class:`Overloaded` when the queue is full, or the batch's error."""
        if self.waiting >= self.settings.max_queue:
            raise Overloaded(f"{self.waiting} requests are waiting (max_queue "
                             f"{self.settings.max_queue})")
        dec = self.predictor.config.decode
        threshold, per = self.predictor.cut(threshold)  # per-label (calibrated) by default
        flat = bool(dec.flat) if flat is None else flat
        self.waiting += 1  # counted from now: featurizing is part of the wait
        try:
            docs, pairs = await asyncio.to_thread(self._featurize, texts)
        except BaseException:
            self.waiting -= 1
            raise
        job = Job(docs, pairs, threshold, flat, labels,
                  asyncio.get_running_loop().create_future(),
                  tokens=len(pairs) * max((len(w) for _, w in pairs), default=0),
                  cut=threshold if per is None else per)
        self._queue.put_nowait(job)
        return await job.future

    def _featurize(self, texts: Sequence[str]) -> tuple[list[TextInFlight], list[Pair]]:
        docs: list[TextInFlight] = []
        pairs: list[Pair] = []
        for doc, win in self.predictor.featurize(texts):
            if not docs or docs[-1] is not doc:
                docs.append(doc)
            if win is not None:
                pairs.append((doc, win))
        return docs, pairs

    async def _loop(self) -> None:
        """Admit requests, run rounds over the requests in progress, answer each when its last
        window is done; on stop, finish what is in progress first."""
        active: list[Job] = []
        stopping = False
        while True:
            if not active:
                if stopping:
                    return
                job = await self._queue.get()
                if job is None:
                    return
                self._admit(active, job)
                if self.settings.batching:
                    stopping = await self._gather(active)
            elif self.settings.batching:
                stopping = self._drain(active) or stopping
            active = [j for j in active if not self._left_alone(j)]
            if active:
                await self._round(self._plan(active))
                active = [j for j in active if not j.future.done()]

    def _admit(self, active: list[Job], job: Job) -> None:
        self.waiting -= 1
        self.running += 1
        active.append(job)

    def _left_alone(self, job: Job) -> bool:
        """A request whose client left (its future cancelled) is dropped, its work undone."""
        if job.future.done():
            self.running -= 1
            return True
        return False

    async def _gather(self, active: list[Job]) -> bool:
        """Requests arriving within the wait window join while the round stays within the token
        budget; True if the stop signal came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.max_wait_ms / 1000
        while sum(j.left() for j in active) < self.settings.max_batch_tokens:
            left = deadline - loop.time()
            try:
                nxt = (self._queue.get_nowait() if left <= 0 else
                       await asyncio.wait_for(self._queue.get(), left))
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if nxt is None:
                return True
            self._admit(active, nxt)
        return False

    def _drain(self, active: list[Job]) -> bool:
        """Everything queued joins the requests in progress (they share the next round); True
        if the stop signal came."""
        while True:
            try:
                nxt = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return False
            if nxt is None:
                return True
            self._admit(active, nxt)

    def _plan(self, active: list[Job]) -> list[tuple[Job, list[Pair]]]:
        """The next round: windows of the requests with the least work left first, within the
        token budget (at least one window). Without batching, one request's windows, all."""
        if not self.settings.batching:
            job = active[0]
            return [(job, job.pairs[job.done:])]
        budget = self.settings.max_batch_tokens
        chosen: list[tuple[Job, list[Pair]]] = []
        count = longest = 0
        for job in sorted(active, key=Job.left):  # stable: arrival order breaks ties
            take: list[Pair] = []
            for pair in job.pairs[job.done:]:
                wider = max(longest, len(pair[1]))
                if count and (count + 1) * wider > budget:
                    break
                take.append(pair)
                count, longest = count + 1, wider
            if take or job.done == len(job.pairs):  # a request of empty texts: answered now
                chosen.append((job, take))
            if count and (count + 1) * longest > budget:
                break
        return chosen

    async def _round(self, chosen: list[tuple[Job, list[Pair]]]) -> None:
        """One round off the event loop; each request whose last window it ran is answered,
        and a failed round fails its own requests only."""
        jobs = [j for j, _ in chosen]
        started = time.perf_counter()
        windows = sum(len(take) for _, take in chosen)
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._pool, self._run,
                                                                       chosen)
        except Exception as exc:  # this round's requests fail; the service goes on
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(exc)
                    self.running -= 1
        else:
            for j in jobs:
                records = results.get(id(j))
                if records is not None and not j.future.done():
                    j.future.set_result(records)  # a client that left has a cancelled future
                    self.running -= 1
        finally:
            if self.on_batch:  # failed rounds too: they took the model's time
                tokens = windows * max((len(w) for _, t in chosen for _, w in t), default=0)
                self.on_batch(len(jobs), windows, tokens, time.perf_counter() - started)

    def _run(self, chosen: list[tuple[Job, list[Pair]]]) -> dict[int, list[Record]]:
        """In a model thread: the round's windows in passes of at most the token budget; the
        records of the requests it finished, by ``id(job)``."""
        p = self.predictor
        threshold = min(j.threshold for j, _ in chosen)
        pairs = sorted((pair for _, take in chosen for pair in take), key=lambda pw: -len(pw[1]))
        k = 0
        for n in pass_sizes(pairs, self.settings.max_batch_tokens):
            p.run_windows(pairs[k:k + n], threshold)
            k += n
        finished: dict[int, list[Record]] = {}
        for job, take in chosen:
            job.done += len(take)
            if job.done == len(job.pairs):
                finished[id(job)] = [p.record(doc, job.flat, job.cut, job.labels)
                                     for doc in job.docs]
        return finished


def pass_sizes(pairs: Sequence[tuple[Any, Any]], budget: int) -> list[int]:
    """How many of ``pairs`` (sorted longest window first) go in each forward pass: as many as
    fit ``budget`` padded tokens (at least one: a window longer than the budget runs alone),
    and none shorter than half the pass's longest. Span scores cost the square of the padded
    length, so a short text padded to a long one's length would cost more than a pass of
    its own."""
    sizes, k = [], 0
    while k < len(pairs):
        longest = max(len(pairs[k][1]), 1)
        n = min(max(1, budget // longest), len(pairs) - k)
        short = next((m for m in range(1, n) if 2 * len(pairs[k + m][1]) < longest), n)
        sizes.append(short)
        k += short
    return sizes
