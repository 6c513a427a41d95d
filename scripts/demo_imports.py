"""Make the demo's own imports through the API's POST endpoint and log each answer.

Run by ``scripts/demo.sh`` with the project's Python, against the sandbox. It does what
the code that makes imports does in production: POST each batch, then record the
answer with ``ImportLog`` (with the caller's key for every row, in row order), so the
tap can load what only the POST response holds. The batches are fixed, so every run
makes the same imports with the same outcomes:

=====================  ======  =====================================================
import                 rows    answer
=====================  ======  =====================================================
contacts (CRM export)  40      200, sync: most created, 4 match seeded contacts by
                               email, 3 rows rejected
the same request       40      200 again: a retry with the same Idempotency-Key is
                               replayed, so the log holds one import twice
organizations          12      200, sync: 1 row rejected
deals                  250     202, async: a job to follow (every 50th row rejected)
contacts, malformed    5       400: one row is not an object, the whole batch refused
=====================  ======  =====================================================

Then the sandbox clock moves forward 5 s (250 rows at 100 rows/s take 2.5 s), so the
async job has completed when the tap asks for it.
"""

# ruff: noqa: INP001

from __future__ import annotations

import argparse
import datetime
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from prism_import_log import ImportLog
from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID

CLOCK_ADVANCE_SECONDS = 5
TIMEOUT_SECONDS = 60
MODES = {200: "sync", 202: "async"}
# CRM rows the API rejects: an email without "@", and a contact with only a phone.
INVALID_EMAILS = frozenset({1007, 1023})
NEITHER_NAME_NOR_EMAIL = 1031
# CRM rows for people the seeded ``contacts`` job created (person5@example.com, ...).
SEEDED_PEOPLE = {1005: 5, 1015: 12, 1025: 20, 1035: 33}

Row = dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """One import request: its rows, the caller's key for each row, and the answer expected."""

    name: str
    object_type: str
    rows: list[Any]
    keys: list[str]
    options: dict[str, Any]
    idempotency_key: str | None
    expected_status: int


def crm_contacts() -> Batch:
    rows: list[Any] = []
    for number in range(1001, 1041):
        if number in INVALID_EMAILS:
            properties: Row = {"name": f"Customer {number}", "email": f"c{number}.example.com"}
        elif number == NEITHER_NAME_NOR_EMAIL:
            properties = {"phone": f"+1555000{number}"}
        elif number in SEEDED_PEOPLE:  # already imported by a seeded job: matched by email
            person = SEEDED_PEOPLE[number]
            properties = {"name": f"Person {person}", "email": f"PERSON{person}@example.com"}
        else:
            properties = {"name": f"Customer {number}", "email": f"c{number}@example.com"}
        rows.append({"default": properties})
    return Batch(
        name="contacts (CRM export)",
        object_type="contact",
        rows=rows,
        keys=[f"crm-{number}" for number in range(1001, 1041)],
        options={"dedupe_by": "email", "caseInsensitive": True},
        idempotency_key="crm-export-batch-1",
        expected_status=200,
    )


def organizations() -> Batch:
    rows: list[Any] = [
        {"default": {"name": f"Account {number}", "domain": f"account{number}.example"}}
        for number in range(201, 213)
    ]
    rows[8] = {"default": {"industry": "retail"}}
    return Batch(
        name="organizations",
        object_type="organization",
        rows=rows,
        keys=[f"acct-{number}" for number in range(201, 213)],
        options={"dedupe_by": "domain"},
        idempotency_key="accounts-batch-1",
        expected_status=200,
    )


def deals() -> Batch:
    rows: list[Any] = []
    for number in range(9001, 9251):
        properties: Row = {"external_id": f"D-{number}", "amount": (number * 37) % 20_000}
        if number % 50:
            properties["name"] = f"Renewal {number}"
        rows.append({"default": properties})
    return Batch(
        name="deals",
        object_type="deal",
        rows=rows,
        keys=[f"D-{number}" for number in range(9001, 9251)],
        options={"dedupe_by": "external_id"},
        idempotency_key="deals-batch-1",
        expected_status=202,
    )


def malformed_contacts() -> Batch:
    rows: list[Any] = [
        {"default": {"name": f"Lead {number}", "email": f"lead{number}@example.com"}}
        for number in range(2001, 2006)
    ]
    rows[2] = "Lead 2003,lead2003@example.com"  # a CSV line that was never parsed
    return Batch(
        name="contacts, malformed",
        object_type="contact",
        rows=rows,
        keys=[f"crm-{number}" for number in range(2001, 2006)],
        options={"dedupe_by": "email"},
        idempotency_key="crm-leads-batch-1",
        expected_status=400,
    )


def submit(
    session: requests.Session, api_url: str, team_id: str, batch: Batch, log: ImportLog
) -> dict[str, Any]:
    """POST the batch and log the answer; stop the demo if it is not the one expected."""
    url = f"{api_url.rstrip('/')}/v2/prism/{team_id}/{batch.object_type}/import"
    headers = {} if batch.idempotency_key is None else {"Idempotency-Key": batch.idempotency_key}
    submitted_at = datetime.datetime.now(datetime.timezone.utc)
    response = session.post(
        url,
        json={"objects": batch.rows, "options": batch.options},
        headers=headers,
        timeout=TIMEOUT_SECONDS,
    )
    if response.status_code != batch.expected_status:
        msg = (
            f"demo imports: {batch.name}: expected HTTP {batch.expected_status}, "
            f"got {response.status_code}: {response.text[:300]}"
        )
        raise SystemExit(msg)
    return log.record(
        response,
        team_id=team_id,
        object_type=batch.object_type,
        input_keys=batch.keys,
        idempotency_key=batch.idempotency_key,
        submitted_at=submitted_at,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-url", required=True, help="the sandbox's base URL")
    parser.add_argument("--import-log", type=Path, required=True, help="the log to append to")
    parser.add_argument("--api-key", default=DEMO_API_KEY, help="x-api-key (the demo key)")
    parser.add_argument("--team-id", default=DEMO_TEAM_ID, help="team (the demo team)")
    args = parser.parse_args(argv)

    log = ImportLog(args.import_log)
    contacts = crm_contacts()
    with requests.Session() as session:
        session.headers["x-api-key"] = args.api_key
        entries = [
            submit(session, args.api_url, args.team_id, batch, log)
            # The contacts twice: a retry after a lost answer, as a client does.
            for batch in (contacts, contacts, organizations(), deals(), malformed_contacts())
        ]
        advanced = session.post(
            f"{args.api_url.rstrip('/')}/_sandbox/clock",
            json={"advance_seconds": CLOCK_ADVANCE_SECONDS},
            timeout=TIMEOUT_SECONDS,
        )
        advanced.raise_for_status()
    modes = Counter(MODES.get(entry["http_status"], "rejected") for entry in entries)
    replayed = len(entries) - len({entry["idempotency_key"] for entry in entries})
    sys.stdout.write(
        f"demo: {len(entries)} import requests posted, each answer logged to "
        f"{args.import_log}: {modes['sync']} sync ({replayed} of them a retry the API "
        f"replayed), {modes['async']} async, {modes['rejected']} rejected; "
        f"sandbox clock moved {CLOCK_ADVANCE_SECONDS} s on\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
