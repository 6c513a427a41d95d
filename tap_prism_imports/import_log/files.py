"""The import log's files: which ones the setting names, where reading resumes in each,
and how far each has been dealt with.

Per file, state keeps (under ``import_log.files``)::

    {"offset": BYTES, "line": LINES, "size": BYTES, "mtime": "...", "crc": CRC32,
     "head": HEX, "errors": [[LINE, START, END], ...]}

``offset`` is the end of the prefix of lines dealt with (emitted, handed over, or
reported as malformed), ``line`` the number of its last line. ``crc`` is the CRC-32 of
that whole prefix, kept up as the offset moves (``zlib.crc32`` continues from a stored
value), ``head`` a hash of its first KiB, ``size`` and ``mtime`` the file's when read.
``errors`` are the malformed lines inside the prefix: they are read (and reported)
again each run, and loaded if they have become readable.

A file whose size and modification time are unchanged resumes at once, with no read.
One that changed resumes only if its prefix is intact: its first KiB hashes the same
and the CRC of its first ``offset`` bytes matches (read once; measured in
``benchmarks/import_log.py``); otherwise it was rewritten and is read from its start.
A file that appears under a new name with the prefix of one that vanished or was
rewritten (a rename, a copy before truncation) carries on where that one stopped.
"""

from __future__ import annotations

import collections
import hashlib
import os
import typing as t
import zlib
from dataclasses import dataclass, field

import fsspec  # type: ignore[import-untyped]
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]
from singer_sdk.exceptions import ConfigValidationError

if t.TYPE_CHECKING:
    import re
    from collections.abc import Iterator, MutableMapping

    from tap_prism_imports.signals import Interruption

HEAD_BYTES = 1024
READ_BLOCK_BYTES = 1 << 20
READ_BUFFER_BYTES = 1 << 16
_GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class LogFile:
    """One file the setting names: how to open it, and its name in state and messages."""

    filesystem: fsspec.AbstractFileSystem
    path: str
    key: str

    def open(self) -> t.BinaryIO:
        if isinstance(self.filesystem, LocalFileSystem):
            # fsspec's local file wraps each readline in Python: 3% of a long log's read.
            # A 64 KiB buffer: half the time of the default's reads (measured: 0.04 s per
            # 100,000 lines of ten rows).
            return open(self.path, "rb", buffering=READ_BUFFER_BYTES)  # noqa: PTH123 - not fsspec
        return t.cast("t.BinaryIO", self.filesystem.open(self.path, "rb"))

    def stat(self) -> tuple[int, str]:
        """The file's size and modification time (as text: only compared)."""
        info = self.filesystem.info(self.path)
        mtime = info.get("mtime", info.get("LastModified", info.get("last_modified")))
        if isinstance(self.filesystem, LocalFileSystem):
            mtime = os.stat(self.path).st_mtime_ns  # noqa: PTH116 - nanoseconds
        return int(info.get("size") or 0), str(mtime)


def resolve(spec: str, warnings: list[str]) -> list[LogFile]:
    """The files ``spec`` names: a file that exists by that name, else a glob's matches.

    Raises:
        ConfigValidationError: a plain path that does not exist, or a folder.
    """
    filesystem, path = open_filesystem(spec)
    if filesystem.isfile(path):
        return [LogFile(filesystem, path, display_path(filesystem, path))]
    if _GLOB_CHARACTERS & set(path):
        matched = sorted(p for p in filesystem.glob(path) if filesystem.isfile(p))
        if not matched:
            warnings.append(f"`import_log` {spec!r} matches no file: no imports read from it.")
        return [LogFile(filesystem, p, display_path(filesystem, p)) for p in matched]
    if not filesystem.exists(path):
        msg = (
            f"`import_log` {spec!r} does not exist. Point it at the import log file, "
            "or use a glob (such as logs/*.jsonl) if files may not exist yet."
        )
        raise ConfigValidationError(msg, errors=[msg])
    msg = f"`import_log` {spec!r} is not a file; use a glob such as {spec.rstrip('/')}/*.jsonl"
    raise ConfigValidationError(msg, errors=[msg])


def open_filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    # fsspec would reuse a filesystem, with its listings and its endpoint, from an
    # earlier read in this process: a listing can name an object version since replaced.
    filesystem, path = fsspec.core.url_to_fs(url, skip_instance_cache=True)
    return filesystem, path


def display_path(filesystem: fsspec.AbstractFileSystem, path: str) -> str:
    """The file's name in state and messages; one fsspec can open again as it is."""
    if isinstance(filesystem, LocalFileSystem):
        return path
    return t.cast("str", filesystem.unstrip_protocol(path))


def lines_containing(
    file: t.BinaryIO, offset: int, pattern: re.Pattern[bytes], interruption: Interruption | None
) -> Iterator[bytes]:
    """The whole lines past ``offset`` in which ``pattern`` occurs, each once.

    Searched a block at a time: a scan of a long log that finds nothing costs a regex
    pass per MiB, not a Python step per line. A final line without its newline is
    still being written: it is left out.
    """
    file.seek(offset)
    rest = b""
    while block := file.read(READ_BLOCK_BYTES):
        if interruption is not None:
            interruption.check()
        block = rest + block
        cut = block.rfind(b"\n") + 1
        rest = block[cut:]
        searched_to = 0
        for match in pattern.finditer(block, 0, cut):
            if match.start() < searched_to:
                continue  # another match on a line already given
            start = block.rfind(b"\n", 0, match.start()) + 1
            searched_to = block.index(b"\n", match.end() - 1) + 1
            yield block[start:searched_to]


def head_digest(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()[:16]


@dataclass(frozen=True)
class Resume:
    """Where reading a file resumes: past its prefix dealt with in earlier runs."""

    offset: int = 0
    line: int = 0
    crc: int = 0
    head: bytes = b""
    errors: tuple[tuple[int, int, int], ...] = ()
    #: The file is exactly as when last read: nothing before ``offset`` changed.
    unchanged: bool = False


def resume_point(file: t.BinaryIO, entry: dict[str, t.Any] | None, size: int, mtime: str) -> Resume:
    """Where to resume in ``file`` by its state ``entry``: from the start if it was rewritten."""
    if not entry:
        return Resume()
    offset, line, crc = entry.get("offset"), entry.get("line"), entry.get("crc")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, line, crc)):
        return Resume()
    offset, line, crc = t.cast("int", offset), t.cast("int", line), t.cast("int", crc)
    if offset <= 0 or size < offset:
        return Resume()
    errors = tuple(_errors(entry.get("errors")))
    if entry.get("size") == size and entry.get("mtime") == mtime:
        head = file.read(min(offset, HEAD_BYTES))
        return Resume(offset, line, crc, head, errors, unchanged=True)
    head = file.read(min(offset, HEAD_BYTES))
    if head_digest(head) != entry.get("head") or prefix_crc(file, offset) != crc:
        return Resume()
    return Resume(offset, line, crc, head, errors)


def prefix_crc(file: t.BinaryIO, end: int) -> int:
    """CRC-32 of the file's first ``end`` bytes (``-1`` if it is shorter)."""
    file.seek(0)
    crc, left = 0, end
    while left > 0:
        block = file.read(min(READ_BLOCK_BYTES, left))
        if not block:
            return -1
        crc = zlib.crc32(block, crc)
        left -= len(block)
    return crc


def _errors(value: object) -> list[tuple[int, int, int]]:
    if not isinstance(value, list):
        return []
    return [
        (item[0], item[1], item[2])
        for item in value
        if isinstance(item, list)
        and len(item) == 3  # noqa: PLR2004 - [line, start, end]
        and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
    ]


@dataclass
class Slot:
    """One line read past the offset (or again, from the file's errors), until it is
    dealt with: emitted, handed over, or needing nothing."""

    progress: FileProgress
    line: int
    start: int
    end: int
    crc: int  # of the file up to ``end``
    #: The head digest as of ``end``, for lines that end within the first KiB.
    head: str | None = None
    #: Read again from the file's errors: once loaded, no longer one.
    was_error: bool = False
    done: bool = False
    error: bool = False

    @property
    def where(self) -> str:
        """The line for messages: ``FILE:LINE``."""
        return f"{self.progress.key}:{self.line}"

    def dealt_with(self) -> None:
        """The line needs nothing more: the file's offset may pass it."""
        if self.was_error:
            self.progress.fixed(self.line)
        else:
            self.progress.done(self)


@dataclass
class FileProgress:
    """How far one file has been dealt with; changes its state entry in place.

    Lines are read in order and each gets a slot; the offset moves past the prefix
    of slots dealt with, so a STATE written at any moment claims only those.
    """

    entry: dict[str, t.Any]
    key: str
    _slots: collections.deque[Slot] = field(default_factory=collections.deque)

    @classmethod
    def start(
        cls, files: MutableMapping[str, t.Any], key: str, resume: Resume, size: int, mtime: str
    ) -> FileProgress:
        entry = {
            "offset": resume.offset,
            "line": resume.line,
            "size": size,
            "mtime": mtime,
            "crc": resume.crc,
            "head": head_digest(resume.head),
            "errors": [list(error) for error in resume.errors],
        }
        files[key] = entry
        return cls(entry, key)

    def lines(self, file: t.BinaryIO, resume: Resume) -> Iterator[tuple[Slot, bytes]]:
        """Each whole line after the resume point, with its slot; a final line without its
        newline is still being written and is left for the next run."""
        file.seek(resume.offset)
        position, number, crc, head = resume.offset, resume.line, resume.crc, resume.head
        while (data := file.readline()).endswith(b"\n"):
            number += 1
            start, position = position, position + len(data)
            crc = zlib.crc32(data, crc)
            digest = None
            if start < HEAD_BYTES:
                head = (head + data)[:HEAD_BYTES]
                digest = head_digest(head)
            slot = Slot(self, number, start, position, crc, digest)
            self._slots.append(slot)
            yield slot, data

    def done(self, slot: Slot, *, error: bool = False) -> None:
        slot.done, slot.error = True, error
        slots = self._slots
        while slots and slots[0].done:
            passed = slots.popleft()
            if passed.error:
                self.entry["errors"].append([passed.line, passed.start, passed.end])
            if passed.head is not None:
                self.entry["head"] = passed.head
            entry = self.entry
            entry["offset"], entry["line"], entry["crc"] = passed.end, passed.line, passed.crc

    def fixed(self, line: int) -> None:
        """A line in ``errors`` was loaded: it is no longer one."""
        self.entry["errors"] = [e for e in self.entry["errors"] if e[0] != line]


def reread(
    file: t.BinaryIO, errors: tuple[tuple[int, int, int], ...]
) -> Iterator[tuple[int, bytes]]:
    """The malformed lines of the prefix, read again: ``(line number, bytes)``."""
    for line, start, end in errors:
        file.seek(start)
        yield line, file.read(end - start)
