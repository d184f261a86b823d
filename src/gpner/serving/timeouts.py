"""Read timeouts for ``gpner serve``: a connection that does not send its request in time is
closed, so half-open connections (headers never finished, a body that trickles) cannot pile up.

uvicorn times out idle keep-alive connections but not a request being read. This is its h11
protocol with two timers: from the connection (or the end of the previous response) until the
request's headers are in (``header_timeout_s``), and from then until its body is in
(``body_timeout_s``). Each closes the connection when it fires; the app sees a client that left.
The values come from ``GPNER_SERVE`` (each uvicorn worker process imports this class by name).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("gpner.serve")


def _settings() -> tuple[float, float]:
    raw = json.loads(os.environ.get("GPNER_SERVE", "{}"))
    return float(raw.get("header_timeout_s", 10.0)), float(raw.get("body_timeout_s", 30.0))


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request is not read in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout, self.body_timeout = _settings()
        self._read_timer: asyncio.TimerHandle | None = None
        self._waiting_for = "headers"

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._waiting_for == "headers":
            self._arm("body")
        elif state is not h11.IDLE and state is not h11.SEND_BODY:
            self._disarm()  # the request is in (or the connection is ending)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm("headers")  # a keep-alive connection's next request

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, what: str) -> None:
        self._disarm()
        self._waiting_for = what
        delay = self.header_timeout if what == "headers" else self.body_timeout
        self._read_timer = self.loop.call_later(delay, self._too_slow)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        self._waiting_for = ""

    def _too_slow(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self._waiting_for == "headers" and self.conn.their_state is h11.IDLE \
                and self.cycle is None:
            # nothing of a request yet, or only part of its headers: close without an answer
            log.info("closing a connection that sent no complete headers in %.0f s",
                     self.header_timeout)
        else:
            log.info("closing a connection whose request body took over %.0f s",
                     self.body_timeout)
        self.transport.close()
