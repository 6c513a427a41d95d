"""Batch files written straight from finished record lines, rolled every N rows.

For BATCH mode: the loader reads whole files instead of one RECORD message at a
time. Lines arrive already encoded (a job's spool holds its ``import_results``
lines), so writing a file is compression and I/O only, in flat memory whatever the
job's size. Nothing here knows the SDK: files are opened through ``open_file`` and
named for the target through ``url_of``.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import posixpath
import typing as t
import uuid

import fsspec  # type: ignore[import-untyped]
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]

from tap_prism_imports.errors import BatchStorageError

if t.TYPE_CHECKING:
    from collections.abc import Callable


#: Batch files hold the records: readable by their owner only, as the import log is.
FILE_MODE = 0o600


class RollingBatchFile:
    """One stream's batch files: a new file every ``rows_per_file`` rows, each named once."""

    def __init__(
        self,
        *,
        open_file: Callable[[str], contextlib.AbstractContextManager[t.IO[bytes]]],
        url_of: Callable[[str], str],
        name: str,
        gzipped: bool,
        rows_per_file: int,
        on_full: Callable[[str], None] | None = None,
    ) -> None:
        self._open_file = open_file
        self._on_full = on_full
        self._url_of = url_of
        self._name = f"{name}-{uuid.uuid4()}"
        self._gzipped = gzipped
        self.rows_per_file = rows_per_file
        self._files = 0
        self._stack: contextlib.ExitStack | None = None
        self._out: t.IO[bytes] | None = None
        self._filename = ""
        #: Rows in the file being written.
        self.rows = 0
        #: Files finished so far (each was handed to ``on_full`` or returned by ``finish``).
        self.finished = 0
        #: The number (1-based) of the file holding the last row written; 0 before any.
        self.last_row_file = 0

    @property
    def full(self) -> bool:
        return self.rows >= self.rows_per_file

    def write(self, lines: bytes) -> None:
        """Append whole lines (each ending with a newline).

        With ``on_full``, a file that reaches ``rows_per_file`` rows is finished at that
        line, handed to ``on_full``, and the rest goes to a new file.

        Raises:
            BatchStorageError: the file could not be opened or written.
        """
        try:
            self._write(lines)
        except OSError as error:
            raise self._storage_error(error) from error

    def _storage_error(self, error: OSError) -> BatchStorageError:
        reason = f"[Errno {error.errno}] {error.strerror}" if error.strerror else str(error)
        return BatchStorageError(
            f"`batch_config.storage.root`: cannot write the batch file "
            f"{self._url_of(self._filename)}: {reason}. Point it at a writable folder "
            "with free space; the records not yet announced are sent again next run."
        )

    def _write(self, lines: bytes) -> None:
        while lines:
            if self._out is None:
                self._start()
            assert self._out is not None
            head, lines = lines, b""
            room = self.rows_per_file - self.rows
            if self._on_full is not None and head.count(b"\n") > room:
                cut = _after_line(head, room)
                head, lines = head[:cut], head[cut:]
            self._out.write(head)
            self.rows += head.count(b"\n")
            self.last_row_file = self._files
            if self._on_full is not None and self.full:
                url = self.finish()
                assert url is not None
                self._on_full(url)

    def finish(self) -> str | None:
        """Close the file being written; its URL, or ``None`` when there was none."""
        if self._stack is None:
            return None
        try:
            self._stack.close()
        except OSError as error:
            self._stack = self._out = None
            raise self._storage_error(error) from error
        self._stack = self._out = None
        self.rows = 0
        self.finished += 1
        return self._url_of(self._filename)

    def _start(self) -> None:
        self._files += 1
        suffix = ".json.gz" if self._gzipped else ".json"
        self._filename = f"{self._name}-{self._files}{suffix}"
        stack = contextlib.ExitStack()
        raw = stack.enter_context(self._open_file(self._filename))
        if self._gzipped:
            # Level 1: most of gzip's size win at a fraction of its CPU (batch files are
            # read once and deleted).
            compressed = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1)
            stack.callback(compressed.close)  # before the file under it closes
            raw = t.cast("t.IO[bytes]", compressed)
        self._stack, self._out = stack, raw


def _after_line(data: bytes, lines: int) -> int:
    """The offset just after the ``lines``-th newline of ``data``."""
    position = 0
    for _ in range(lines):
        position = data.index(b"\n", position) + 1
    return position


def open_for_writing(url: str) -> contextlib.AbstractContextManager[t.IO[bytes]]:
    """A new file at ``url`` (local or any fsspec storage), its folders made as needed.

    Not through the SDK's storage target, whose open() wraps every file in one
    filesystem-wide transaction: two files open at once (jobs and rows) commit each
    other.
    """
    filesystem, path = fsspec.core.url_to_fs(url)
    filesystem.makedirs(posixpath.dirname(path), exist_ok=True)
    if isinstance(filesystem, LocalFileSystem):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
        return os.fdopen(descriptor, "wb")
    return t.cast("contextlib.AbstractContextManager[t.IO[bytes]]", filesystem.open(path, "wb"))
