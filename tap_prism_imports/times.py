"""The one date-time form the tap emits and stores: UTC, microseconds, explicit offset.

It is the import log's own (``prism_import_log.format``), so a date-time read from the
log and one read from the API come out alike.
"""

from __future__ import annotations

import datetime

from prism_import_log.format import format_datetime, parse_datetime

__all__ = ["format_datetime", "normalize_datetime", "parse_datetime", "utc_now"]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def normalize_datetime(value: object) -> str | None:
    """Return the value as a UTC date-time string, or ``None`` when it is no date-time."""
    if not isinstance(value, str):
        return None
    try:
        return format_datetime(parse_datetime(value))
    except (ValueError, OverflowError):  # overflow: year 1 or 9999 moved to UTC
        return None
