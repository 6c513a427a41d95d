"""A job's status snapshot: its job record and its result records, read from one body.

``body_reader`` reads the body as it streams in; this module judges the top-level
fields (status, counts, date-times, error) and says, once per job, what it changed so
that a warehouse can hold every value. Nothing is emitted from here: the caller emits
a job only after its whole body has been read intact.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from tap_prism_imports.body_reader import read_body, read_document
from tap_prism_imports.errors import InvalidSnapshotError
from tap_prism_imports.records.import_jobs import (
    DATETIME_FIELDS,
    TERMINAL_STATUSES,
    TextCleaner,
    job_record,
    shown,
)
from tap_prism_imports.records.import_results import without_source_keys
from tap_prism_imports.times import format_datetime

if t.TYPE_CHECKING:
    import datetime
    from collections.abc import Sequence

    from tap_prism_imports.body_reader import BodyContents
    from tap_prism_imports.job_refs import JobRef
    from tap_prism_imports.records.import_results import ResultsSpool


@dataclass
class JobSnapshot:
    """What one GET returned for one job, ready to emit."""

    ref: JobRef
    record: dict[str, t.Any]
    results: ResultsSpool | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        status: str = self.record["status"]
        return status

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def close(self) -> None:
        if self.results is not None:
            self.results.close()
            self.results = None


def parse_snapshot(
    body: t.BinaryIO,
    ref: JobRef,
    fetched_at: datetime.datetime,
    source_keys: Sequence[str | None] | None = None,
) -> JobSnapshot:
    """Read a whole snapshot body; raises ``InvalidSnapshotError`` for unusable bodies.

    ijson's own errors (malformed or cut-off JSON) propagate unchanged so the caller
    can tell a body cut in transit from one the API sent broken. Values the schema
    cannot hold are emitted as null or cleaned, each kind with one warning.
    ``source_keys`` name the rows by position (see ``snapshot_from_document``).
    """
    fetched = format_datetime(fetched_at)
    try:
        contents = read_body(body, ref, fetched, source_keys)
    except UnicodeDecodeError as error:
        msg = f"the body is not UTF-8 text: {error}"
        raise InvalidSnapshotError(msg) from error
    return _snapshot(contents, ref, fetched, source_keys)


def snapshot_from_document(
    document: dict[str, t.Any],
    ref: JobRef,
    fetched_at: str,
    source_keys: Sequence[str | None] | None = None,
) -> JobSnapshot:
    """The snapshot a parsed body holds, judged as ``parse_snapshot`` judges its text.

    ``fetched_at`` comes formatted (``times.format_datetime``): the import log's
    imports of a run share it. ``source_keys`` (the import log's ``input_keys``, NUL
    removed) set each row's ``source_key`` by position, unless their number differs
    from the rows': then no row gets one, since a position off by one would name the
    wrong row.
    """
    contents = read_document(document, ref, fetched_at, source_keys)
    return _snapshot(contents, ref, fetched_at, source_keys)


def _snapshot(
    contents: BodyContents,
    ref: JobRef,
    fetched: str,
    source_keys: Sequence[str | None] | None,
) -> JobSnapshot:
    top, rows, spool = contents.top, contents.rows, contents.rows.spool
    warnings: list[str] = []
    texts = TextCleaner()
    results_count = None if spool is None else spool.count
    try:
        record = job_record(top, ref, fetched, results_count, warnings=warnings, texts=texts)
    except BaseException:
        rows.close()
        raise
    snapshot = JobSnapshot(ref=ref, record=record, warnings=warnings)
    if spool is not None and source_keys is not None and len(source_keys) != spool.count:
        warnings.append(
            f"the import log has {len(source_keys)} input_keys for {spool.count} results; "
            "source_key is left empty for its rows"
        )
        spool = without_source_keys(spool)
    if spool is not None and record["status"] in TERMINAL_STATUSES:
        snapshot.results = spool
    elif spool is not None:
        # Results are only final once the job is: a processing job's are not emitted.
        spool.close()
    for name in DATETIME_FIELDS:  # a loop: a comprehension costs more, once per import
        if record[name] is None and top.get(name) is not None:
            warnings.append(  # noqa: PERF401
                f"{name} is {shown(top[name])}, not an RFC 3339 date-time; emitted as null"
            )
    body_job_id = top.get("job_id")
    if body_job_id is not None and body_job_id != ref.job_id:
        warnings.append(
            f"the body names job_id {shown(body_job_id)}, not the job requested; "
            "its records keep the requested job's id"
        )
    if rows.ids_not_uuid:
        warnings.append(
            f"{rows.ids_not_uuid} results have an id that is not a UUID; "
            "their record_id is emitted as null"
        )
    if rows.wrong_types:
        warnings.append(
            f"{rows.wrong_types} result fields have the wrong type (id not a string, "
            "created or existing not a boolean); emitted as null"
        )
    nul_values = rows.nul_values + texts.nul_values
    if nul_values:
        warnings.append(
            f"{nul_values} text values contained NUL characters, removed "
            "(warehouses cannot store them)"
        )
    if contents.replaced_surrogates:
        warnings.append(
            f"{contents.replaced_surrogates} unpaired UTF-16 surrogate escapes "
            "(\\ud800-\\udfff) replaced with U+FFFD"
        )
    return snapshot
