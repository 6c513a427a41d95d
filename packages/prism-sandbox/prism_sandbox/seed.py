"""The ``demo`` seed: a reproducible set of import jobs for one team.

Every seeded job goes through the same import logic as ``POST .../import`` (so row
outcomes derive from the rows), with its creation backdated:

========================  ======  =============================================  =============
name                      rows    what                                           status
========================  ======  =============================================  =============
``contacts``              250     contacts, dedupe by email (case-insensitive)   complete
``organizations``         180     organizations, dedupe by domain                complete
``deals``                 5,000   deals, dedupe by ``external_id``                complete
``contacts-processing``   3,000   contacts (many match ``contacts``' records)     processing
``organizations-failed``  400     stopped at row 200 with a job-level error      failed
``contacts-expired``      150     created 8 days ago                             404
========================  ======  =============================================  =============

The processing job advances 5 rows/s and completes 10 minutes after its creation, which
is 1 minute before seeding: advance the clock by 10 minutes to see it complete.
Job ids and record ids are the same every time for the same team.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from prism_sandbox.jobs import Clock, Job, JSONDict
    from prism_sandbox.response import ApiResponse

HOUR = 3600.0
DAY = 24 * HOUR
PROCESSING_ROWS_PER_SECOND = 5.0
FAILED_ERROR = {
    "code": "import_aborted",
    "message": "The import was aborted: the team's record limit was reached.",
}

Row = dict[str, Any]


class Seedable(Protocol):
    """What seeding needs of a sandbox (``Sandbox`` has it): teams, the clock and jobs."""

    clock: Clock

    def resolve_team(self, team_id: str | None) -> str: ...

    def job_ids(self) -> list[str]: ...

    def job(self, job_id: str) -> Job: ...

    def import_job(
        self,
        team_id: str,
        object_type: str,
        objects: list[JSONDict],
        options: JSONDict | None,
        *,
        created_at: float,
        job_id: str,
        rows_per_second: float | None,
    ) -> ApiResponse: ...

    def fail_job(
        self, job_id: str, code: str = ..., message: str = ..., *, at: datetime | float | None = ...
    ) -> None: ...


def demo_job_id(team_id: str, name: str) -> str:
    """The deterministic id of a demo job."""
    return "job_" + hashlib.sha256(f"demo:{team_id}:{name}".encode()).hexdigest()[:24]


def _contacts(start: int, count: int) -> list[Row]:
    rows: list[Row] = []
    for index in range(count):
        number = start + index
        if index % 25 == 24:  # noqa: PLR2004
            properties: Row = {"name": f"Broken {number}", "email": f"broken{number}.example.com"}
        elif index % 40 == 39:  # noqa: PLR2004
            properties = {"phone": f"+1555{number:07d}"}
        elif index % 8 == 7:  # noqa: PLR2004
            properties = {"email": f"PERSON{number - 7}@EXAMPLE.COM", "name": f"P. {number - 7}"}
        else:
            properties = {
                "email": f"person{number}@example.com",
                "name": f"Person {number}",
                "company": f"Org {number % 60}",
            }
        rows.append({"default": properties})
    return rows


def _organizations(start: int, count: int) -> list[Row]:
    rows: list[Row] = []
    for index in range(count):
        number = start + index
        if index % 30 == 29:  # noqa: PLR2004
            properties: Row = {"industry": "unknown"}
        elif index % 6 == 5:  # noqa: PLR2004
            properties = {"name": f"Org {number - 3} Ltd", "domain": f"ORG{number - 3}.EXAMPLE"}
        else:
            properties = {"name": f"Org {number}", "domain": f"org{number}.example"}
        rows.append({"default": properties})
    return rows


def _deals(start: int, count: int) -> list[Row]:
    rows: list[Row] = []
    for index in range(count):
        number = start + index
        if index % 50 == 49:  # noqa: PLR2004
            properties: Row = {"external_id": f"D-{number}", "amount": 0}
        elif index % 9 == 8:  # noqa: PLR2004
            properties = {"name": f"Deal {number - 4}", "external_id": f"D-{number - 4}"}
        else:
            properties = {
                "name": f"Deal {number}",
                "external_id": f"D-{number}",
                "amount": (number * 137) % 97_000,
                "stage": ("lead", "qualified", "won", "lost")[number % 4],
            }
        rows.append({"default": properties})
    return rows


def seed_demo(sandbox: Seedable, team_id: str | None = None) -> list[str]:
    """Create the demo jobs in ``sandbox`` for ``team_id``; return refs ``TEAM_ID/JOB_ID``.

    ``team_id`` defaults to the sandbox's first team. Order of the refs: contacts,
    organizations, deals, contacts-processing, organizations-failed, contacts-expired.
    Seeding again creates nothing and returns the same refs.
    """
    team_id = sandbox.resolve_team(team_id)
    now = sandbox.clock.now()
    ci = {"caseInsensitive": True}
    plan: list[tuple[str, str, list[Row], dict[str, Any], float, float | None]] = [
        # name, object type, rows, options, created (seconds ago), rows/s
        (
            "contacts-expired",
            "contact",
            _contacts(100_000, 150),
            {"dedupe_by": "email"},
            8 * DAY,
            None,
        ),
        ("contacts", "contact", _contacts(0, 250), {"dedupe_by": "email", **ci}, 2 * DAY, None),
        (
            "organizations",
            "organization",
            _organizations(0, 180),
            {"dedupe_by": "domain", **ci},
            DAY,
            None,
        ),
        (
            "organizations-failed",
            "organization",
            _organizations(1_000, 400),
            {"dedupe_by": "domain"},
            5 * HOUR,
            None,
        ),
        ("deals", "deal", _deals(0, 5_000), {"dedupe_by": "external_id"}, 3 * HOUR, None),
        (
            "contacts-processing",
            "contact",
            _contacts(200, 3_000),
            {"dedupe_by": "email", **ci},
            60.0,
            PROCESSING_ROWS_PER_SECOND,
        ),
    ]
    ids: dict[str, str] = {}
    for name, object_type, rows, options, age, rate in plan:
        job_id = demo_job_id(team_id, name)
        if job_id in sandbox.job_ids():
            ids[name] = job_id
            continue
        response = sandbox.import_job(
            team_id,
            object_type,
            rows,
            options,
            created_at=now - age,
            job_id=job_id,
            rows_per_second=rate,
        )
        if response.status != 202:  # noqa: PLR2004
            msg = f"seeding {name} failed: {response.status} {response.body[:200]!r}"
            raise RuntimeError(msg)
        ids[name] = job_id
        if name == "organizations-failed":
            job = sandbox.job(job_id)
            sandbox.fail_job(
                job_id,
                FAILED_ERROR["code"],
                FAILED_ERROR["message"],
                at=job.created_at + 200 / job.rows_per_second,
            )
    order = [
        "contacts",
        "organizations",
        "deals",
        "contacts-processing",
        "organizations-failed",
        "contacts-expired",
    ]
    return [f"{team_id}/{ids[name]}" for name in order]


def write_refs_file(path: str | Path, refs: Iterable[str]) -> None:
    """Write job refs one per line, with ``#`` comments explaining the format.

    Refs are written as ``TEAM_ID/JOB_ID``, except the second, which is written as its
    ``Location`` path (``/v2/prism/TEAM_ID/imports/JOB_ID``) to exercise that form.
    """
    refs = list(refs)
    lines = [
        "# Prism import job refs, one per line: TEAM_ID/JOB_ID or the Location path",
        "# /v2/prism/TEAM_ID/imports/JOB_ID returned by the import request.",
        "# Written by prism-sandbox --seed demo: complete, complete, complete (5,000 rows),",
        "# processing, failed, expired (answers 404).",
    ]
    for index, ref in enumerate(refs):
        if index == 1:
            team_id, job_id = ref.split("/", 1)
            lines.append(f"/v2/prism/{team_id}/imports/{job_id}")
        else:
            lines.append(ref)
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.replace(target)
