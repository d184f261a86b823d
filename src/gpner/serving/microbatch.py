"""Micro-batching for a service: concurrent requests share forward passes.

A request's texts are cut into windows in a worker thread (the event loop stays free), then the
request waits in a queue. A batch loop takes the first request, gathers more for at most
``max_wait_ms`` while the batch stays within ``max_batch_tokens`` (padded window tokens), and
runs them off the event loop: windows of all its requests sorted by length and cut into forward
passes of at most that many padded tokens, a pass never padding a window to more than twice
its length. Each request then gets its own records, with its own
threshold, flat/nested choice and label filter: the batch is decoded at the lowest threshold
among its requests and each request keeps the spans above its own (the same spans as decoding at
that threshold, because a span's merged score does not depend on the threshold).

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
    threshold: float
    flat: bool
    labels: list[str] | None
    future: asyncio.Future
    tokens: int = 0  # padded tokens if it ran alone in one pass (its share of a batch budget)


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
        threshold = dec.threshold if threshold is None else float(threshold)
        flat = bool(dec.flat) if flat is None else flat
        self.waiting += 1  # counted from now: featurizing is part of the wait
        try:
            docs, pairs = await asyncio.to_thread(self._featurize, texts)
        except BaseException:
            self.waiting -= 1
            raise
        job = Job(docs, pairs, threshold, flat, labels,
                  asyncio.get_running_loop().create_future(),
                  tokens=len(pairs) * max((len(w) for _, w in pairs), default=0))
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
        carry: Job | None = None
        while True:
            job = carry if carry is not None else await self._queue.get()
            if job is None:
                return
            jobs, carry = await self._gather(job) if self.settings.batching else ([job], None)
            await self._compute(jobs)

    async def _gather(self, first: Job) -> tuple[list[Job], Job | None]:
        """``first`` and the requests that arrive within the wait window while the batch stays
        within the token budget; and the request that did not fit (the next batch's first)."""
        loop = asyncio.get_running_loop()
        budget = self.settings.max_batch_tokens
        deadline = loop.time() + self.settings.max_wait_ms / 1000
        jobs, tokens = [first], first.tokens
        while tokens < budget:
            left = deadline - loop.time()
            try:
                nxt = (self._queue.get_nowait() if left <= 0 else
                       await asyncio.wait_for(self._queue.get(), left))
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if nxt is None:  # stopping: finish this batch, then stop
                self._queue.put_nowait(None)
                break
            if tokens + nxt.tokens > budget:
                return jobs, nxt  # first in the next batch
            jobs.append(nxt)
            tokens += nxt.tokens
        return jobs, None

    async def _compute(self, jobs: list[Job]) -> None:
        """The batch off the event loop; each request gets its records or the batch's error."""
        self.waiting -= len(jobs)
        self.running += len(jobs)
        started = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._pool, self._run,
                                                                       jobs)
        except Exception as exc:  # this batch's requests fail; the service goes on
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(exc)
        else:
            for j, records in zip(jobs, results, strict=True):
                if not j.future.done():  # a client that left has a cancelled future
                    j.future.set_result(records)
        finally:
            self.running -= len(jobs)
            if self.on_batch:  # failed batches too: they took the model's time
                self.on_batch(len(jobs), sum(len(j.pairs) for j in jobs),
                              sum(j.tokens for j in jobs), time.perf_counter() - started)

    def _run(self, jobs: list[Job]) -> list[list[Record]]:
        """In a model thread: the jobs' windows in passes of at most the token budget."""
        p = self.predictor
        threshold = min(j.threshold for j in jobs)
        pairs = sorted((pair for j in jobs for pair in j.pairs), key=lambda pw: -len(pw[1]))
        k = 0
        for n in pass_sizes(pairs, self.settings.max_batch_tokens):
            p.run_windows(pairs[k:k + n], threshold)
            k += n
        return [[p.record(doc, j.flat, j.threshold, j.labels) for doc in j.docs]
                for j in jobs]


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
