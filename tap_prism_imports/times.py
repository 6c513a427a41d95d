"""The one date-time form the tap emits and stores: UTC, microseconds, explicit offset."""

from __future__ import annotations

import datetime


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def format_datetime(moment: datetime.datetime) -> str:
    """The one date-time format the tap emits: UTC, microseconds, explicit offset."""
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def parse_datetime(value: str) -> datetime.datetime:
    """Parse an RFC 3339 date-time; one without an offset is taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def normalize_datetime(value: object) -> str | None:
    """Return the value as a UTC date-time string, or ``None`` when it is no date-time."""
    if not isinstance(value, str):
        return None
    try:
        return format_datetime(parse_datetime(value))
    except (ValueError, OverflowError):  # overflow: year 1 or 9999 moved to UTC
        return None
