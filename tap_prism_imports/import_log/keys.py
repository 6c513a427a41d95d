"""The submitted rows' own keys: set on each result row by position, from the log line.

For an async import the keys stay in the log: state keeps only where its line is
(``InputKeysLocation``), and they are read there once the job's results arrive.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from tap_prism_imports.import_log.files import open_filesystem
from tap_prism_imports.import_log.lines import (
    ImportLogLineError,
    async_job_ref,
    parse_log_line,
    strip_nul_all,
)
from tap_prism_imports.records.import_results import rekeyed

if t.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from tap_prism_imports.job_refs import JobRef
    from tap_prism_imports.records.import_results import ResultsSpool


@dataclass(frozen=True)
class InputKeysLocation:
    """Where an async import's ``input_keys`` are: its log line. Kept in state instead of them."""

    path: str
    line: int
    offset: int

    def to_state(self) -> dict[str, t.Any]:
        return {"path": self.path, "line": self.line, "offset": self.offset}

    @classmethod
    def from_state(cls, value: Mapping[str, t.Any]) -> InputKeysLocation:
        return cls(path=str(value["path"]), line=int(value["line"]), offset=int(value["offset"]))


def attach_source_keys(
    spool: ResultsSpool, keys: Sequence[str | None] | None, *, import_name: str
) -> tuple[ResultsSpool, list[str]]:
    """The results with ``source_key`` set from ``keys`` by position (``None`` without keys).

    Returns the new spool (``spool`` is closed) and warnings: when the counts differ no
    row gets a key, since a position off by one would name the wrong row; NUL is
    removed from keys (no warehouse can store it).
    """
    warnings: list[str] = []
    if keys is not None and len(keys) != spool.count:
        warnings.append(
            f"{import_name}: the import log has {len(keys)} input_keys for {spool.count} "
            "results; source_key is left empty for its rows."
        )
        keys = None
    if keys is not None:
        keys, removed = strip_nul_all(list(keys))
        if removed:
            warnings.append(
                f"{import_name}: {removed} NUL characters removed from its input_keys "
                "(warehouses cannot store them)"
            )
    return rekeyed(spool, keys), warnings


@dataclass
class InputKeysLookup:
    keys: list[str | None] | None
    warning: str | None = None


def read_input_keys(
    location: InputKeysLocation | Mapping[str, t.Any],
    ref: JobRef,
) -> InputKeysLookup:
    """The ``input_keys`` of ``ref``'s log line, or ``None`` and a warning when it is gone."""
    where = (
        location
        if isinstance(location, InputKeysLocation)
        else InputKeysLocation.from_state(location)
    )
    shown = f"{where.path}:{where.line}"

    def gone(reason: str) -> InputKeysLookup:
        return InputKeysLookup(
            None,
            f"job {ref.key}: its import log line {shown} {reason}; "
            "its results are emitted without source_key.",
        )

    try:
        filesystem, path = open_filesystem(where.path)
        with filesystem.open(path, "rb") as file:
            file.seek(where.offset)
            data = file.readline()
    except OSError as error:
        return gone(f"cannot be read ({error})")
    if not data.endswith(b"\n"):
        return gone("is no longer there (the file is shorter)")
    try:
        line = parse_log_line(data)
    except ImportLogLineError:
        return gone("now holds another line (the file was rotated or rewritten)")
    if async_job_ref(line) != ref:
        return gone("now holds another line (the file was rotated or rewritten)")
    if line.input_keys is None:
        return gone("has no input_keys")
    return InputKeysLookup(line.input_keys)
