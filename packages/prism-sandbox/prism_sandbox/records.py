"""Row outcomes for sandbox imports: validation, dedupe and the records imports create.

Row outcome rules (applied to every row of an import request, in input order):

* A row is ``{"default": {slug: value, ...}}`` (an optional ``list`` key is accepted and
  ignored). A row without ``default`` has no properties.
* Required properties, per object type (at least one of them must be a non-empty value):

  ===============  ======================
  object type      needs one of
  ===============  ======================
  ``contact``      ``email``, ``name``
  ``organization`` ``name``, ``domain``
  ``deal``         ``name``
  ``document``     ``title``
  ``engagement``   ``type``
  ``action``       ``title``
  ``identity``     ``value``
  ===============  ======================

  A row missing them fails with code ``missing_required_property``.
* An ``email`` property, on any object type, must look like ``local@domain.tld``; otherwise
  the row fails with code ``validation_error`` and message ``email is invalid``.
* With ``options.dedupe_by`` set, a valid row whose value for that slug equals the value of a
  record already in the same team and object type (compared case-insensitively when
  ``options.caseInsensitive`` is true) is ``existing: true`` with that record's id. Records
  created earlier in the same batch count.
* Any other valid row creates a record: ``created: true`` with a new id, a UUID5 of the team,
  object type, the record's sequence number in that team and object type, and the row's
  properties, so the same sequence of imports always yields the same ids.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prism_sandbox.jobs import JSONDict

OBJECT_TYPES: frozenset[str] = frozenset(
    {"action", "contact", "deal", "document", "engagement", "identity", "organization"}
)
REQUIRED_PROPERTIES: dict[str, tuple[str, ...]] = {
    "contact": ("email", "name"),
    "organization": ("name", "domain"),
    "deal": ("name",),
    "document": ("title",),
    "engagement": ("type",),
    "action": ("title",),
    "identity": ("value",),
}
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
RECORD_NAMESPACE = uuid.UUID("0f6b8f52-6a0e-4c53-9a55-2d0c1b6f7e10")


class RowError(Exception):
    """A row that fails validation."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    return not (isinstance(value, (list, dict)) and not value)


def validate_row(object_type: str, properties: JSONDict) -> None:
    """Raise ``RowError`` if the row breaks the documented rules."""
    required = REQUIRED_PROPERTIES[object_type]
    if not any(_present(properties.get(slug)) for slug in required):
        names = " or ".join(required)
        code, message = "missing_required_property", f"{object_type} requires {names}"
        raise RowError(code, message)
    email = properties.get("email")
    if email is not None and not (isinstance(email, str) and EMAIL_PATTERN.fullmatch(email)):
        code, message = "validation_error", "email is invalid"
        raise RowError(code, message)


def _dedupe_value(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


class RecordIndex:
    """Records created by imports, per team and object type, indexed for dedupe."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str, str], dict[str, str]] = {}
        self._folded: dict[tuple[str, str, str], dict[str, str]] = {}
        self._sequence: dict[tuple[str, str], int] = {}

    def find(
        self, team_id: str, object_type: str, slug: str, value: Any, *, case_insensitive: bool
    ) -> str | None:
        text = _dedupe_value(value)
        if text is None:
            return None
        if case_insensitive:
            return self._folded.get((team_id, object_type, slug), {}).get(text.casefold())
        return self._exact.get((team_id, object_type, slug), {}).get(text)

    def create(self, team_id: str, object_type: str, properties: JSONDict) -> str:
        sequence = self._sequence.get((team_id, object_type), 0) + 1
        self._sequence[(team_id, object_type)] = sequence
        content = json.dumps(properties, sort_keys=True, default=str)
        record_id = str(
            uuid.uuid5(RECORD_NAMESPACE, f"{team_id}/{object_type}/{sequence}/{content}")
        )
        for slug, value in properties.items():
            text = _dedupe_value(value)
            if text is None:
                continue
            self._exact.setdefault((team_id, object_type, slug), {}).setdefault(text, record_id)
            self._folded.setdefault((team_id, object_type, slug), {}).setdefault(
                text.casefold(), record_id
            )
        return record_id

    def process(
        self, team_id: str, object_type: str, objects: list[JSONDict], options: JSONDict
    ) -> list[JSONDict]:
        """Outcomes of importing ``objects``, creating records as a side effect."""
        dedupe_by = options.get("dedupe_by")
        case_insensitive = bool(options.get("caseInsensitive", False))
        outcomes: list[JSONDict] = []
        for row in objects:
            properties: JSONDict = row.get("default") or {}
            try:
                validate_row(object_type, properties)
            except RowError as error:
                outcomes.append(
                    {
                        "id": None,
                        "created": False,
                        "existing": False,
                        "error": {"code": error.code, "message": error.message},
                    }
                )
                continue
            match = None
            if isinstance(dedupe_by, str) and dedupe_by:
                match = self.find(
                    team_id,
                    object_type,
                    dedupe_by,
                    properties.get(dedupe_by),
                    case_insensitive=case_insensitive,
                )
            if match is not None:
                outcomes.append({"id": match, "created": False, "existing": True, "error": None})
            else:
                record_id = self.create(team_id, object_type, properties)
                outcomes.append(
                    {"id": record_id, "created": True, "existing": False, "error": None}
                )
        return outcomes
