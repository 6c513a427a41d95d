"""Job references: what users configure to name the import jobs the tap follows.

A reference is any of ``JOB_ID``, ``TEAM_ID/JOB_ID``, the ``Location`` path
``/v2/prism/TEAM_ID/imports/JOB_ID`` returned by the import request, or a full
URL ending in that path. Only the ids are used: a URL's host is never contacted.
"""

from __future__ import annotations

import re
import typing as t
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from singer_sdk.exceptions import ConfigValidationError

# The canonical 8-4-4-4-12 hex form, the one every warehouse's uuid type accepts.
UUID_PATTERN = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9._~:-]{1,255}")
LOCATION_PATH = re.compile(r"/v2/prism/(?P<team_id>[^/]*)/imports/(?P<job_id>[^/]*)")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
WHITESPACE = re.compile(r"\s")

# A job ref is at most a URL with two ids in it; a longer line is not a ref.
MAX_REF_LENGTH = 2048
MAX_ERRORS_SHOWN = 20


class JobRefError(ValueError):
    """A job reference that cannot name a job."""


@dataclass(frozen=True, order=True)
class JobRef:
    """One import job: the team it belongs to and its id."""

    team_id: str
    job_id: str

    @property
    def key(self) -> str:
        """The job's key in state and in log lines: ``TEAM_ID/JOB_ID``."""
        return f"{self.team_id}/{self.job_id}"

    @property
    def path(self) -> str:
        """The API path of the job's status snapshot, ids URL-encoded."""
        team = urllib.parse.quote(self.team_id, safe="")
        job = urllib.parse.quote(self.job_id, safe="")
        return f"/v2/prism/{team}/imports/{job}"


def validate_team_id(team_id: str) -> str:
    """Return the team id in canonical (lower-case) form, or raise if it is no UUID."""
    if not UUID_PATTERN.fullmatch(team_id):
        msg = f"team id {team_id!r} is not a UUID"
        raise JobRefError(msg)
    return team_id.lower()


def _validate_job_id(job_id: str) -> str:
    if job_id in {".", ".."} or not JOB_ID_PATTERN.fullmatch(job_id):
        msg = (
            f"job id {job_id!r} must be 1-255 characters of letters, digits and ._~:- "
            "and not '.' or '..'"
        )
        raise JobRefError(msg)
    return job_id


def _split_ref(ref: str) -> tuple[str | None, str]:
    if "://" in ref:
        url = urllib.parse.urlsplit(ref)
        if url.scheme not in {"http", "https"} or not url.netloc:
            msg = "a URL ref must be an http(s) URL"
            raise JobRefError(msg)
        if url.query or url.fragment:
            msg = "a URL ref must end in /v2/prism/TEAM_ID/imports/JOB_ID (no query or fragment)"
            raise JobRefError(msg)
        ref = url.path
    if ref.startswith("/"):
        match = LOCATION_PATH.fullmatch(ref)
        if not match:
            msg = "a path ref must be exactly /v2/prism/TEAM_ID/imports/JOB_ID"
            raise JobRefError(msg)
        return match["team_id"], match["job_id"]
    if "/" in ref:
        team_id, _, job_id = ref.partition("/")
        if "/" in job_id:
            msg = "expected JOB_ID, TEAM_ID/JOB_ID, a Location path or URL"
            raise JobRefError(msg)
        return team_id, job_id
    return None, ref


def parse_job_ref(ref: str, default_team_id: str | None) -> JobRef:
    """Parse one reference; ``default_team_id`` (already validated) serves bare job ids."""
    if len(ref) > MAX_REF_LENGTH:
        msg = f"longer than {MAX_REF_LENGTH} characters"
        raise JobRefError(msg)
    ref = ref.strip()
    if CONTROL_CHARACTERS.search(ref):
        msg = "contains control characters"
        raise JobRefError(msg)
    if not ref:
        msg = "is empty"
        raise JobRefError(msg)
    if WHITESPACE.search(ref):
        msg = "contains whitespace: write one ref per entry, as TEAM_ID/JOB_ID (a slash, no space)"
        raise JobRefError(msg)
    team_id, job_id = _split_ref(ref)
    if team_id is None:
        if default_team_id is None:
            msg = "has no team: write it as TEAM_ID/JOB_ID or set `team_id`"
            raise JobRefError(msg)
        team_id = default_team_id
    return JobRef(validate_team_id(team_id), _validate_job_id(job_id))


def read_job_refs_file(path: str) -> list[tuple[str, str]]:
    """Return ``(where, ref)`` pairs from a refs file, skipping blank lines and comments."""
    refs: list[tuple[str, str]] = []
    try:
        # utf-8-sig: files saved by Windows editors start with a byte-order mark.
        with Path(path).open(encoding="utf-8-sig") as lines:
            line_number = 0
            while line := lines.readline(MAX_REF_LENGTH + 2):
                line_number += 1
                where = f"{path}:{line_number}"
                if not line.endswith("\n") and len(line) > MAX_REF_LENGTH:
                    msg = (
                        f"`job_ids_file` line {where} is longer than {MAX_REF_LENGTH} "
                        "characters; put one job ref per line."
                    )
                    raise ConfigValidationError(msg, errors=[msg])
                text = line.strip()
                if text and not text.startswith("#"):
                    refs.append((where, text))
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
        msg = f"`job_ids_file` {path!r} cannot be read: {reason}. Point it at a readable file."
        raise ConfigValidationError(msg, errors=[msg]) from error
    return refs


def resolve_job_refs(
    job_ids: t.Sequence[str],
    job_ids_file: str | None,
    team_id: str | None,
) -> list[JobRef]:
    """Merge refs from both settings, deduplicated in first-seen order.

    Raises:
        ConfigValidationError: naming every bad ref (and where it came from).
    """
    errors: list[str] = []
    default_team_id: str | None = None
    if team_id:
        try:
            default_team_id = validate_team_id(team_id.strip())
        except JobRefError as error:
            errors.append(f"`team_id`: {error}")

    sources = [(f"`job_ids`[{index}]", ref) for index, ref in enumerate(job_ids)]
    if job_ids_file:
        from_file = read_job_refs_file(job_ids_file)
        sources += [(f"`job_ids_file` {where}", ref) for where, ref in from_file]

    resolved: dict[JobRef, None] = {}
    for where, ref in sources:
        try:
            resolved.setdefault(parse_job_ref(ref, default_team_id))
        except JobRefError as error:
            errors.append(f"{where} {ref[:100]!r}: {error}")

    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        if len(errors) > MAX_ERRORS_SHOWN:
            shown.append(f"... and {len(errors) - MAX_ERRORS_SHOWN} more")
        msg = "Invalid job refs; fix these settings before any request is made"
        raise ConfigValidationError(msg, errors=shown)
    return list(resolved)
