"""How fast, and how many, requests a run may send.

The API allows 10 requests per second and 1,000 per month per key, so every request
of a run goes through one pacer (spacing, and a shared pause on a 429) and one budget
(``max_requests_per_run``).
"""

from __future__ import annotations

import threading
import time

from tap_prism_imports.errors import (
    STOPPED_BY_RUN_END,
    RequestBudgetExhaustedError,
    RunStoppedError,
)


class RequestPacer:
    """Spaces all requests at least ``1 / rate`` seconds apart, and pauses them all on a 429."""

    def __init__(self, requests_per_second: float) -> None:
        self._interval = 1.0 / requests_per_second
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._stopped = threading.Event()
        self._stop_reason = STOPPED_BY_RUN_END

    def wait_turn(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                slot = max(now, self._next_slot, self._paused_until)
                self._next_slot = slot + self._interval
            if self._stopped.wait(max(0.0, slot - time.monotonic())):
                raise RunStoppedError(self._stop_reason)
            with self._lock:
                if time.monotonic() >= self._paused_until:
                    return

    def stop(self, reason: str = STOPPED_BY_RUN_END) -> None:
        """Refuse every request from now on (requests already sent finish).

        The first reason given is the one requests are refused with.
        """
        with self._lock:
            if not self._stopped.is_set():
                self._stop_reason = reason
                self._stopped.set()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)


class RequestBudget:
    """Counts every request attempted in the run against an optional limit.

    An attempt counts whether or not an answer came back: one that timed out may still
    have reached the API and counted against the key's quota.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        #: Requests attempted.
        self.spent = 0
        #: Attempts that got an HTTP answer (any status).
        self.answered = 0
        self._lock = threading.Lock()

    def spend(self) -> None:
        with self._lock:
            if self.limit is not None and self.spent >= self.limit:
                raise RequestBudgetExhaustedError
            self.spent += 1

    def note_answer(self) -> None:
        with self._lock:
            self.answered += 1

    @property
    def unanswered(self) -> int:
        return self.spent - self.answered
