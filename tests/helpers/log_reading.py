"""Reading the import log in a test as a run does: every new line, nothing confirmed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from typing_extensions import Self

from tap_prism_imports.import_log.imports import LoggedImport, LoggedJobRef
from tap_prism_imports.import_log.reader import ImportLogReader

if TYPE_CHECKING:
    import datetime
    from pathlib import Path


@dataclass
class Batch:
    """What one read of the log found, in order."""

    reader: ImportLogReader
    imports: list[LoggedImport] = field(default_factory=list)
    refs: list[LoggedJobRef] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return self.reader.errors

    @property
    def warnings(self) -> list[str]:
        return self.reader.warnings

    def confirm(self, item: LoggedImport | LoggedJobRef) -> None:
        self.reader.confirm(item)

    def close(self) -> None:
        for item in self.imports:
            item.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def read_log(spec: str | Path, state: dict[str, Any], now: datetime.datetime) -> Batch:
    """Read every new line, as a run does; nothing is confirmed."""
    reader = ImportLogReader(str(spec), state, now=now)
    batch = Batch(reader)
    for item in reader.items():
        if isinstance(item, LoggedImport):
            batch.imports.append(item)
        else:
            batch.refs.append(item)
    reader.close()
    return batch
