"""Fault injection: make API requests slow, fail, or answer with broken bodies.

A fault applies to API requests (never to ``/_sandbox`` control requests) that match its
filters (``job_id``: only requests for that job's snapshot; ``method``: only that HTTP
method), fires with ``probability`` (drawn from a seeded RNG), and, when ``count`` is set,
only for the next ``count`` requests it fires on. Kinds:

``latency``
    sleep ``seconds`` before answering.
``server_error``
    answer ``status`` (default 500) with ``{"message": ...}``.
``rate_limit``
    answer 429 with ``Retry-After: retry_after`` (an int of seconds, or a string such as
    an HTTP-date, sent as given).
``drop_connection``
    send the headers and part of the body, then reset the connection.
``truncate_body``
    send the headers (``Content-Length`` of the full body) and part of the body, then close.
``malformed_json``
    200 with a body that is not valid JSON.
``unexpected_status``
    the snapshot's ``status`` is ``value`` (default ``"queued"``).
``missing_fields``
    the snapshot lacks the keys in ``fields`` (default ``status`` and ``total``).
``results_wrong_type``
    the snapshot's ``results`` is ``value`` (default the string ``"unavailable"``).

The body faults (``malformed_json`` to ``results_wrong_type``) only apply to successful
snapshot responses (GET of a job, and the POST import response).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

LATENCY = "latency"
SERVER_ERROR = "server_error"
RATE_LIMIT = "rate_limit"
DROP_CONNECTION = "drop_connection"
TRUNCATE_BODY = "truncate_body"
MALFORMED_JSON = "malformed_json"
UNEXPECTED_STATUS = "unexpected_status"
MISSING_FIELDS = "missing_fields"
RESULTS_WRONG_TYPE = "results_wrong_type"

STATUS_KINDS = (SERVER_ERROR, RATE_LIMIT)
BODY_KINDS = (MALFORMED_JSON, UNEXPECTED_STATUS, MISSING_FIELDS, RESULTS_WRONG_TYPE)
TRANSPORT_KINDS = (DROP_CONNECTION, TRUNCATE_BODY)
FAULT_KINDS = (LATENCY, *STATUS_KINDS, *BODY_KINDS, *TRANSPORT_KINDS)

# A fault's value when none was given (None is a value a fault can set).
NOT_GIVEN: Any = object()


@dataclass
class Fault:
    """One injected fault. ``count=None`` means every matching request."""

    kind: str
    count: int | None = None
    probability: float = 1.0
    job_id: str | None = None
    method: str | None = None
    status: int = 500
    retry_after: int | str = 1
    seconds: float = 0.0
    value: Any = NOT_GIVEN
    fields: tuple[str, ...] = ("status", "total")
    fired: int = field(default=0)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            msg = f"unknown fault kind {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}"
            raise ValueError(msg)
        if self.count is not None and self.count < 0:
            msg = "count must be >= 0"
            raise ValueError(msg)
        if not 0.0 <= self.probability <= 1.0:
            msg = "probability must be between 0 and 1"
            raise ValueError(msg)
        if self.method is not None:
            self.method = self.method.upper()
        self.fields = tuple(self.fields)
        if self.value is NOT_GIVEN:
            self.value = "queued" if self.kind == UNEXPECTED_STATUS else "unavailable"

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.count <= 0

    def matches(self, method: str, job_id: str | None) -> bool:
        if self.exhausted:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.job_id is None or self.job_id == job_id

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (as the control endpoint lists it)."""
        return {
            "kind": self.kind,
            "count": self.count,
            "probability": self.probability,
            "job_id": self.job_id,
            "method": self.method,
            "status": self.status,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
            "value": self.value,
            "fields": list(self.fields),
            "fired": self.fired,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """Build a fault from a JSON object (control endpoint, ``--fault``)."""
        known = {
            "kind",
            "count",
            "probability",
            "job_id",
            "method",
            "status",
            "retry_after",
            "seconds",
            "value",
            "fields",
        }
        unknown = set(data) - known
        if unknown:
            msg = f"unknown fault keys: {', '.join(sorted(unknown))}"
            raise ValueError(msg)
        if "kind" not in data:
            msg = "a fault needs a kind"
            raise ValueError(msg)
        kwargs = dict(data)
        if "fields" in kwargs:
            kwargs["fields"] = tuple(kwargs["fields"])
        return cls(**kwargs)


class FaultInjector:
    """The active faults and the seeded RNG that decides probabilistic ones."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random = random.Random(seed)  # noqa: S311 - test faults, not cryptography

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def latency(self, method: str, job_id: str | None) -> float:
        """Total added latency for this request (consumes matching latency faults)."""
        total = 0.0
        with self._lock:
            for fault in self._faults:
                if fault.kind == LATENCY and self._fires(fault, method, job_id):
                    total += fault.seconds
        return total

    def take(self, kinds: tuple[str, ...], method: str, job_id: str | None) -> Fault | None:
        """The first matching fault of ``kinds`` that fires for this request, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and self._fires(fault, method, job_id):
                    return fault
        return None

    def _fires(self, fault: Fault, method: str, job_id: str | None) -> bool:
        if not fault.matches(method, job_id):
            return False
        if fault.probability < 1.0 and self._random.random() >= fault.probability:
            return False
        fault.fired += 1
        if fault.count is not None:
            fault.count -= 1
        return True
