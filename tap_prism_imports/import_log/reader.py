"""Reading the import log, one line at a time: the one entry point the run calls.

``ImportLogReader.items()`` yields what each new line becomes (see ``imports.py``), in
file order, and holds nothing but the line being read: memory stays flat whatever the
log's size. Each item is dealt with by the run (emitted, or handed to the ledger) and
then confirmed; only then does its file's offset move past its line.

State, under the ``import_jobs`` stream state's ``import_log`` key (owned here)::

    {"format": 2,
     "files": {PATH: {...}},            # see files.py
     "recent": {IMPORT_ID: EPOCH_SECONDS}}

``recent`` holds the sync imports sent with an ``Idempotency-Key`` and submitted in
the last 25 hours: the API replays a key's first response for 24 hours, so a replay
can reach the log, in another file, up to a day later; it is the same import and is
not emitted again. State so grows with the files and the last day's keyed imports,
never with the log's whole history. Format 1 (which kept every import emitted in 7
days) converts on the first run, with nothing emitted twice or skipped.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import typing as t
from dataclasses import dataclass, field

from tap_prism_imports.import_log import files, imports
from tap_prism_imports.import_log.lines import ImportLogLineError, parse_log_line
from tap_prism_imports.state import (
    IMPORT_LOG_FORMAT_VERSION,
    RETENTION,
    STATE_GIVEN,
    ScalarMap,
    StateValidationError,
    import_log_problems,
)
from tap_prism_imports.times import format_datetime

if t.TYPE_CHECKING:
    from collections.abc import Iterator, MutableMapping

    from tap_prism_imports.job_refs import JobRef
    from tap_prism_imports.signals import Interruption

# The API replays an Idempotency-Key's first response for 24 hours; an hour more
# covers a replay logged late.
REPLAY_WINDOW = datetime.timedelta(hours=25)
# How the Python, Node and jq writers put a 202: a cheap test for the probe's scan.
# Without its opening quote, the search skips ahead to each "h" rather than to each
# quote of the log (measured: 30% less time per line).
_ASYNC_STATUS = re.compile(rb'http_status": ?202')

Item = imports.LoggedImport | imports.LoggedJobRef


@dataclass
class _Opened:
    """A file of this run, where it resumes and how far it was dealt with."""

    log_file: files.LogFile
    size: int = 0
    mtime: str = ""
    resume: files.Resume | None = None
    progress: files.FileProgress | None = None
    #: Why it cannot be read this run (it is read again next run).
    unreadable: str | None = None


@dataclass
class ImportLogReader:
    """Reads the log files ``spec`` names, resuming from ``state`` (changed in place)."""

    spec: str
    state: MutableMapping[str, t.Any]
    now: datetime.datetime
    interruption: Interruption | None = None
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Async lines skipped because the API no longer keeps jobs that old.
    expired_refs: int = 0

    def __post_init__(self) -> None:
        self._files: dict[str, dict[str, t.Any]] = {}
        self._recent: dict[str, int] = {}
        self._convert_format_1()
        self._opened = [_Opened(f) for f in files.resolve(self.spec, self.warnings)]
        self._claimed_this_run: set[str] = set()
        self._expired_before = self.now - RETENTION
        self._fetched_at = format_datetime(self.now)
        self._resolved = False

    @property
    def state_entries(self) -> int:
        """Entries in this reader's state: what a STATE message carries of it."""
        return len(self._files) + len(self._recent)

    def job_refs(self) -> Iterator[JobRef]:
        """The jobs new lines hand over, without claiming anything: a run that must prove
        its key before it emits can ask the API about one first. Lazy: take what you need."""
        self._resolve_resume_points()
        for opened in self._opened:
            if opened.unreadable is not None or opened.resume is None:
                continue
            try:
                with opened.log_file.open() as file:
                    # Only lines that look like an async answer are parsed; a writer that
                    # spaces its JSON otherwise is still read in full by ``items``.
                    lines = files.lines_containing(
                        file, opened.resume.offset, _ASYNC_STATUS, self.interruption
                    )
                    for data in lines:
                        if ref := _follow(data):
                            yield ref
            except OSError:
                continue

    def items(self) -> Iterator[Item]:
        """What each new line becomes, in order; ``confirm`` each once it is dealt with."""
        self._resolve_resume_points()
        for opened in self._opened:
            if opened.unreadable is not None:
                self._unreadable(opened.log_file, opened.unreadable)
                continue
            try:
                yield from self._read(opened)
            except OSError as error:
                self._unreadable(opened.log_file, error.strerror or str(error))

    def confirm(self, item: Item) -> None:
        """``item`` was emitted (or its job handed to the ledger): its line is dealt with."""
        if isinstance(item, imports.LoggedImport) and item.replay_epoch is not None:
            recent, job_id = self._recent, item.job_id
            recent[job_id] = max(item.replay_epoch, recent.get(job_id, 0))
        item.slot.dealt_with()

    def close(self) -> None:
        """Forget what can no longer matter: old replays, and files no longer named."""
        horizon = int((self.now - REPLAY_WINDOW).timestamp())
        for import_id in [i for i, submitted in self._recent.items() if submitted < horizon]:
            del self._recent[import_id]
        named = {opened.log_file.key for opened in self._opened}
        for key in [key for key in self._files if key not in named]:
            del self._files[key]
        if self.expired_refs:
            self.warnings.append(
                f"{self.expired_refs} async import(s) in the import log were submitted more "
                f"than {RETENTION.days} days ago and are skipped: the API no longer keeps "
                "their jobs."
            )

    # --- reading -------------------------------------------------------------------

    def _read(self, opened: _Opened) -> Iterator[Item]:
        resume, log_file = t.cast("files.Resume", opened.resume), opened.log_file
        progress = files.FileProgress.start(
            self._files, log_file.key, resume, opened.size, opened.mtime
        )
        opened.progress = progress
        with log_file.open() as file:
            for number, data in files.reread(file, resume.errors):
                if item := self._line(data, files.Slot(progress, number, 0, 0, 0, was_error=True)):
                    yield item
            for slot, data in progress.lines(file, resume):
                if self.interruption is not None:
                    self.interruption.check()
                if item := self._line(data, slot):
                    yield item

    def _line(self, data: bytes, slot: files.Slot) -> Item | None:
        """What the line becomes; ``None`` for a line dealt with here (blank, a replay,
        an expired job) or an error."""
        if data.isspace():  # a blank line (every line ends with its newline)
            slot.dealt_with()
            return None
        try:
            line = parse_log_line(data)
        except ImportLogLineError as error:
            self.errors.append(f"{slot.where}: {error}")
            if not slot.was_error:
                slot.progress.done(slot, error=True)
            return None
        ref = imports.follow(line)
        if ref is not None:
            if line.submitted_at <= self._expired_before:
                self.expired_refs += 1
                slot.dealt_with()
            elif ref.key in self._claimed_this_run:
                slot.dealt_with()  # a replay: the first line hands the job over
            else:
                self._claimed_this_run.add(ref.key)
                return imports.job_ref_item(line, ref, slot)
            return None
        job_id = imports.import_id(line)
        if job_id in self._claimed_this_run or job_id in self._recent:
            slot.dealt_with()  # a replay of an import already emitted (or being emitted)
            return None
        self._claimed_this_run.add(job_id)
        return imports.import_item(line, job_id, slot, self._fetched_at)

    def _unreadable(self, log_file: files.LogFile, reason: str) -> None:
        self.errors.append(
            f"`import_log` file {log_file.key} cannot be read: {reason}. Its other lines "
            "are read next run."
        )

    # --- where each file resumes -----------------------------------------------------

    def _resolve_resume_points(self) -> None:
        """Where each file resumes; a new or rewritten file may carry on a vanished one's."""
        if self._resolved:
            return
        self._resolved = True
        named = {opened.log_file.key for opened in self._opened}
        orphans = {key: entry for key, entry in self._files.items() if key not in named}
        fresh: list[_Opened] = []
        for opened in self._opened:
            entry = self._files.get(opened.log_file.key)
            try:
                opened.size, opened.mtime = opened.log_file.stat()
                with opened.log_file.open() as file:
                    opened.resume = files.resume_point(file, entry, opened.size, opened.mtime)
            except OSError as error:
                opened.unreadable = error.strerror or str(error)
                continue
            if opened.resume.offset == 0:
                if entry:
                    orphans[opened.log_file.key] = entry
                fresh.append(opened)
        for opened in fresh:
            opened.resume = self._adopted(opened, orphans) or opened.resume

    def _adopted(
        self, opened: _Opened, orphans: dict[str, dict[str, t.Any]]
    ) -> files.Resume | None:
        """Where a vanished or rewritten file stopped, if this one starts with its prefix."""
        for key, entry in list(orphans.items()):
            if key == opened.log_file.key:
                continue
            with opened.log_file.open() as file:
                resume = files.resume_point(file, {**entry, "size": None}, opened.size, "")
            if resume.offset:
                del orphans[key]
                return resume
        return None

    def _convert_format_1(self) -> None:
        problems = import_log_problems(self.state, "bookmarks.import_jobs.import_log")
        if problems:
            raise StateValidationError(STATE_GIVEN, problems)
        if self.state.get("format", IMPORT_LOG_FORMAT_VERSION) == 1:
            _convert(self.state, self.now)
        self.state["format"] = IMPORT_LOG_FORMAT_VERSION
        self._files = self.state.setdefault("files", {})
        self._recent = self.state["recent"] = ScalarMap(self.state.get("recent") or {})


def _follow(data: bytes) -> JobRef | None:
    try:
        return imports.follow(parse_log_line(data))
    except ImportLogLineError:
        return None


def _convert(state: MutableMapping[str, t.Any], now: datetime.datetime) -> None:
    """Format 1 to 2: each file resumes where it did, and every import emitted stays
    known for this one run (format 1 relied on that list when a file was rewritten)."""
    old_files = state.pop("files", {}) or {}
    emitted = state.pop("emitted", {}) or {}
    converted: dict[str, dict[str, t.Any]] = {}
    for key, entry in old_files.items():
        new = _converted_file(key, entry)
        if new is not None:
            converted[key] = new
    recent: dict[str, int] = {}
    for import_id, submitted_at in emitted.items():
        try:
            moment = datetime.datetime.fromisoformat(str(submitted_at).replace("Z", "+00:00"))
        except ValueError:
            moment = now
        recent[import_id] = int(moment.timestamp())
    state["files"] = converted
    state["recent"] = recent


def _converted_file(key: str, entry: object) -> dict[str, t.Any] | None:
    """A format-1 file entry in format 2, if its file still holds the prefix it claims."""
    if not isinstance(entry, dict):
        return None
    offset = entry.get("offset")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset <= 0:
        return None
    try:
        filesystem, path = files.open_filesystem(key)
        with filesystem.open(path, "rb") as file:
            window = min(offset, files.HEAD_BYTES)
            head = file.read(window)
            file.seek(offset - window)
            tail = file.read(window)
            if len(tail) != window or _format_1_fingerprint(head, offset, tail) != entry.get(
                "fingerprint"
            ):
                return None
            crc = files.prefix_crc(file, offset)
    except OSError:
        return None
    return {
        "offset": offset,
        "line": int(entry.get("line") or 0),
        "size": None,
        "mtime": None,
        "crc": crc,
        "head": files.head_digest(head),
        "errors": [],
    }


def _format_1_fingerprint(head: bytes, end: int, tail: bytes) -> str:
    digest = hashlib.sha256(head[: min(end, files.HEAD_BYTES)])
    digest.update(b"\x00")
    digest.update(tail)
    return digest.hexdigest()[:32]
