"""The sandbox: a local implementation of the Prism Imports API on the standard library.

``Sandbox`` is the one object tests, demos and the ``prism-sandbox`` command use: it holds
the state (keys, teams, jobs, clock, faults, request log) and serves it over HTTP. The work
is done by its parts: ``imports`` (POST), ``api`` (routing, auth, rate limit, GET),
``control`` (``/_sandbox/...``) and ``http`` (the transport). Use it as a context manager.

The parts that call back into the sandbox know it only as the protocol each declares
(``http.Application``, ``control.Controllable``, ``seed.Seedable``): none imports this
module, so the imports run one way, from here down.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from prism_sandbox import faults as fault_kinds
from prism_sandbox.api import Api
from prism_sandbox.control import answer_control
from prism_sandbox.defaults import (
    BURST,
    DEMO_API_KEY,
    DEMO_TEAM_ID,
    HOST,
    RATE_LIMIT,
    ROWS_PER_SECOND,
    SYNC_THRESHOLD,
)
from prism_sandbox.faults import Fault, FaultInjector
from prism_sandbox.http import SandboxHTTPServer
from prism_sandbox.imports import Importer
from prism_sandbox.jobs import (
    DEFAULT_JOB_ERROR,
    JOB_PATH,
    Clock,
    Job,
    JobStore,
    JSONDict,
    SyntheticResults,
    to_timestamp,
)
from prism_sandbox.limits import RateLimiter

if TYPE_CHECKING:
    # Only for the type checker: at run time the sandbox needs nothing but the standard
    # library, and typing.Self is not in Python 3.10.
    from typing_extensions import Self

    from prism_sandbox.response import ApiResponse


class Sandbox:
    """A local Prism Imports API.

    Args:
        host: interface to bind (default loopback only).
        port: TCP port; 0 picks a free one (see ``port`` / ``base_url`` after ``start()``).
        api_keys: accepted keys: a list (each key reaches every configured team) or a mapping
            of key to the teams it may access (``None`` for all). Default: ``[DEMO_API_KEY]``.
        team_ids: configured teams (UUIDs). Default: ``[DEMO_TEAM_ID]``. Teams named in an
            ``api_keys`` mapping are added.
        sync_threshold: imports of at most this many rows finish synchronously (200).
        rows_per_second: how fast async jobs progress on the sandbox clock.
        rate_limit: requests per second per key (``None`` disables rate limiting).
        burst: token-bucket burst size per key.
        monthly_quota: requests per key per calendar month (``None``: unlimited).
        latency: seconds added to every API request.
        error_rate: probability of a 500 on any API request (seeded by ``fault_seed``).
        fault_seed: seed of the RNG for probabilistic faults.
        faults: faults to install at start (see ``inject``).
        request_log: file to append one JSON line per API request to.
        start_time: initial sandbox time (default: now).
    """

    def __init__(
        self,
        *,
        host: str = HOST,
        port: int = 0,
        api_keys: Sequence[str] | Mapping[str, Collection[str] | None] | None = None,
        team_ids: Sequence[str] | None = None,
        sync_threshold: int = SYNC_THRESHOLD,
        rows_per_second: float = ROWS_PER_SECOND,
        rate_limit: float | None = RATE_LIMIT,
        burst: int = BURST,
        monthly_quota: int | None = None,
        latency: float = 0.0,
        error_rate: float = 0.0,
        fault_seed: int = 0,
        faults: Sequence[Fault] = (),
        request_log: str | Path | None = None,
        start_time: datetime | float | None = None,
    ) -> None:
        if rows_per_second <= 0:
            msg = "rows_per_second must be positive"
            raise ValueError(msg)
        self.host = host
        self._requested_port = port
        teams = [team.lower() for team in (team_ids or [])]
        self._keys: dict[str, frozenset[str] | None] = {}
        if api_keys is None:
            self._keys[DEMO_API_KEY] = None
        elif isinstance(api_keys, Mapping):
            for key, allowed in api_keys.items():
                scoped = None if allowed is None else frozenset(t.lower() for t in allowed)
                self._keys[key] = scoped
                teams.extend(t for t in (scoped or ()) if t not in teams)
        else:
            for key in api_keys:
                self._keys[key] = None
        if not self._keys:
            self._keys[DEMO_API_KEY] = None
        if not teams:
            teams = [DEMO_TEAM_ID]
        self.team_ids: list[str] = list(dict.fromkeys(teams))
        self.clock = Clock(None if start_time is None else to_timestamp(start_time, 0.0))
        self._jobs = JobStore()
        self._importer = Importer(
            self._jobs, self.clock, sync_threshold=sync_threshold, rows_per_second=rows_per_second
        )
        self.limiter = RateLimiter(rate_limit, burst, monthly_quota)
        self.faults = FaultInjector(fault_seed)
        if latency:
            self.faults.add(Fault(fault_kinds.LATENCY, seconds=latency))
        if error_rate:
            self.faults.add(Fault(fault_kinds.SERVER_ERROR, probability=error_rate))
        for fault in faults:
            self.faults.add(fault)
        self._api = Api(
            keys=self._keys,
            team_ids=self.team_ids,
            clock=self.clock,
            limiter=self.limiter,
            faults=self.faults,
            jobs=self._jobs,
            importer=self._importer,
        )
        self.request_log_path = Path(request_log) if request_log is not None else None
        self._log_file: IO[str] | None = None
        self._requests: list[dict[str, Any]] = []
        self._requests_lock = threading.Lock()
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Bind and serve in a background thread. Returns ``self``."""
        if self._server is not None:
            return self
        if self.request_log_path is not None:
            self._log_file = self.request_log_path.open("a", encoding="utf-8")
        server = SandboxHTTPServer((self.host, self._requested_port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and the request log."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (after ``start()``)."""
        if self._server is None:
            msg = "the sandbox is not running"
            raise RuntimeError(msg)
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running sandbox."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far (keep-alive reuses one for many requests)."""
        return self._server.connections_accepted if self._server is not None else 0

    @property
    def api_key(self) -> str:
        """The first configured API key."""
        return next(iter(self._keys))

    @property
    def api_keys(self) -> list[str]:
        return list(self._keys)

    @property
    def team_id(self) -> str:
        """The first configured team."""
        return self.team_ids[0]

    # ------------------------------------------------------------------ clock

    def now(self) -> datetime:
        """The sandbox clock's current time (UTC)."""
        return datetime.fromtimestamp(self.clock.now(), tz=timezone.utc)

    def advance_clock(self, seconds: float) -> datetime:
        """Move the sandbox clock forward: jobs progress, expire, rate limits refill."""
        return datetime.fromtimestamp(self.clock.advance(seconds), tz=timezone.utc)

    # ------------------------------------------------------------------ faults

    def inject(
        self,
        kind: str,
        *,
        count: int | None = None,
        probability: float = 1.0,
        job_id: str | None = None,
        method: str | None = None,
        status: int = 500,
        retry_after: int | str = 1,
        seconds: float = 0.0,
        value: Any = fault_kinds.NOT_GIVEN,
        fields: Sequence[str] = ("status", "total"),
    ) -> Fault:
        """Add a fault (see ``prism_sandbox.faults`` for the kinds).

        ``count=N`` applies it to the next N matching API requests only; ``job_id`` limits
        it to requests for that job. Returns the ``Fault`` (its ``fired`` counts hits).
        """
        return self.faults.add(
            Fault(
                kind,
                count=count,
                probability=probability,
                job_id=job_id,
                method=method,
                status=status,
                retry_after=retry_after,
                seconds=seconds,
                value=value,
                fields=tuple(fields),
            )
        )

    def clear_faults(self) -> None:
        """Remove every fault (including ``latency`` / ``error_rate`` from the constructor)."""
        self.faults.clear()

    # ------------------------------------------------------------------ request log

    @property
    def requests(self) -> list[dict[str, Any]]:
        """API requests served so far (control requests excluded), oldest first.

        Each entry: ``time``, ``method``, ``path``, ``status``, ``team_id``, ``job_id``,
        ``bytes`` (body bytes sent; for a transport fault, those before the cut), ``fault``
        (the injected fault kind or ``None``) and ``user_agent``. An entry is logged just
        before its answer is sent, so a client holding an answer finds it in the log.
        """
        with self._requests_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the request log kept in memory (the log file is untouched)."""
        with self._requests_lock:
            self._requests.clear()

    def log_request(self, entry: dict[str, Any]) -> None:
        """Add an entry to the request log (the transport calls this for each API request)."""
        with self._requests_lock:
            self._requests.append(entry)
            if self._log_file is not None:
                self._log_file.write(json.dumps(entry) + "\n")
                self._log_file.flush()

    # ------------------------------------------------------------------ jobs

    @property
    def sync_threshold(self) -> int:
        """Imports of at most this many rows finish synchronously (200)."""
        return self._importer.sync_threshold

    @property
    def rows_per_second(self) -> float:
        """How fast asynchronous jobs progress unless created with their own rate."""
        return self._importer.rows_per_second

    def resolve_team(self, team_id: str | None = None) -> str:
        """A configured team in canonical (lowercase) form; the first one for ``None``.

        ``KeyError`` if the team is not configured in this sandbox.
        """
        team = (team_id or self.team_id).lower()
        if team not in self.team_ids:
            msg = f"team {team!r} is not configured in this sandbox"
            raise KeyError(msg)
        return team

    def job(self, job_id: str) -> Job:
        """The job with this id (``KeyError`` if unknown)."""
        return self._jobs.get(job_id)

    def job_ids(self) -> list[str]:
        """Every job's id, expired ones included, in creation order."""
        return self._jobs.ids()

    def ref(self, job_id: str) -> str:
        """The job reference ``TEAM_ID/JOB_ID``."""
        return f"{self.job(job_id).team_id}/{job_id}"

    def location(self, job_id: str) -> str:
        """The job's ``Location`` path ``/v2/prism/TEAM_ID/imports/JOB_ID``."""
        return JOB_PATH.format(team_id=self.job(job_id).team_id, job_id=job_id)

    def add_job(
        self,
        team_id: str | None = None,
        *,
        rows: int,
        status: str = "complete",
        failed_every: int | None = 20,
        existing_every: int | None = 5,
        created_at: datetime | float | None = None,
        job_id: str | None = None,
        error: Mapping[str, str] | None = None,
        object_type: str = "contact",
        rows_per_second: float | None = None,
    ) -> str:
        """Create a synthetic job quickly (no row validation) and return its id.

        Row ``i`` fails when ``failed_every`` divides ``i + 1``, else matches an existing
        record when ``existing_every`` divides ``i + 1``, else creates one (``None`` or 0
        disables a kind). ``status``: ``complete`` (already done), ``processing`` (progresses
        at ``rows_per_second`` from ``created_at``) or ``failed`` (job-level ``error``).
        Complete jobs are rendered right away so the first request is as fast as the rest.
        """
        if rows < 0:
            msg = "rows must be >= 0"
            raise ValueError(msg)
        if status not in {"complete", "processing", "failed"}:
            msg = f"unknown status {status!r}"
            raise ValueError(msg)
        team = self.resolve_team(team_id)
        now = self.clock.now()
        created = to_timestamp(created_at, now)
        rate = rows_per_second or self.rows_per_second
        new_id = job_id or self._jobs.new_id(team)
        results = SyntheticResults(rows, failed_every or 0, existing_every or 0, f"{team}/{new_id}")
        complete_at = created if status == "complete" else created + rows / rate
        job = Job(new_id, team, object_type, results, created, rate, complete_at)
        if status == "failed":
            job.complete_at = float("inf")
            job.failed_at = created
            job.error = dict(error or DEFAULT_JOB_ERROR)
        self._jobs.add(job)
        if status == "complete":
            results.render()
        return new_id

    def complete_job(self, job_id: str) -> None:
        """Make a job complete now (clears a failure)."""
        self._jobs.complete(job_id, self.clock.now())

    def fail_job(
        self,
        job_id: str,
        code: str = DEFAULT_JOB_ERROR["code"],
        message: str = DEFAULT_JOB_ERROR["message"],
        *,
        at: datetime | float | None = None,
    ) -> None:
        """Make a job fail with a job-level ``error``, now or at sandbox time ``at``.

        A job failing at ``at`` keeps the rows it had processed by then.
        """
        failed_at = to_timestamp(at, self.clock.now())
        self._jobs.fail(job_id, failed_at, {"code": code, "message": message})

    def snapshot(self, job_id: str) -> JSONDict:
        """The job's status snapshot as a dict, as GET would return it now."""
        _fields, chunks = self.job(job_id).snapshot(self.clock.now())
        result: JSONDict = json.loads(b"".join(chunks))
        return result

    def submit_import(
        self,
        team_id: str,
        object_type: str,
        objects: list[JSONDict],
        options: JSONDict | None = None,
        idempotency_key: str | None = None,
    ) -> ApiResponse:
        """Import rows exactly like ``POST /v2/prism/{team}/{objectType}/import``, no HTTP.

        Returns the ``ApiResponse`` (``.status``, ``.headers``, ``.json()``); errors come back
        as responses too (400, 409), as they would over HTTP.
        """
        payload: JSONDict = {"objects": objects}
        if options is not None:
            payload["options"] = options
        return self._importer.submit(team_id.lower(), object_type, payload, idempotency_key)

    def import_job(
        self,
        team_id: str,
        object_type: str,
        objects: list[JSONDict],
        options: JSONDict | None = None,
        *,
        created_at: datetime | float | None = None,
        job_id: str | None = None,
        rows_per_second: float | None = None,
    ) -> ApiResponse:
        """Import rows as an asynchronous job whatever their number, created at ``created_at``.

        Rows get the same outcomes as through ``submit_import``; a backdated job has already
        progressed (or expired). Returns the 202 response, or the 400 a malformed request
        gets. ``job_id`` and ``rows_per_second`` default to a fresh id and the sandbox's rate.
        """
        payload: JSONDict = {"objects": objects}
        if options is not None:
            payload["options"] = options
        return self._importer.create_job(
            team_id.lower(),
            object_type,
            payload,
            created_at=to_timestamp(created_at, self.clock.now()),
            job_id=job_id,
            rows_per_second=rows_per_second,
        )

    # ------------------------------------------------------------------ HTTP API

    def handle_api(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[ApiResponse, float, Fault | None, str | None]:
        """Answer one API request: ``(response, latency, transport fault, fault kind)``."""
        return self._api.handle(method, path, headers, body)

    def handle_control(self, method: str, path: str, body: bytes) -> ApiResponse:
        """Answer one ``/_sandbox/...`` control request (the transport checks it is local)."""
        return answer_control(self, method, path, body)
