"""A job refs file is read as any editor saves UTF-8 text."""

from __future__ import annotations

import typing as t

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_prism_imports.job_refs import JobRef, read_job_refs_file, resolve_job_refs

if t.TYPE_CHECKING:
    from pathlib import Path

TEAM = "1f0c6a52-8a3e-4d5f-9b1c-2d3e4f5a6b7c"


def test_a_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "jobs.txt"
    path.write_bytes(f"\ufeff{TEAM}/job_1\r\n# done\r\n{TEAM}/job_2\r\n".encode())

    assert read_job_refs_file(str(path)) == [
        (f"{path}:1", f"{TEAM}/job_1"),
        (f"{path}:3", f"{TEAM}/job_2"),
    ]
    assert resolve_job_refs([], str(path), None) == [JobRef(TEAM, "job_1"), JobRef(TEAM, "job_2")]


def test_a_mark_inside_the_file_is_still_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "jobs.txt"
    path.write_bytes(f"{TEAM}/job_1\n\ufeff{TEAM}/job_2\n".encode())
    with pytest.raises(ConfigValidationError) as caught:
        resolve_job_refs([], str(path), None)
    assert f"{path}:2" in " ".join(caught.value.errors)


def test_a_file_in_another_encoding_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "jobs.txt"
    path.write_bytes(f"{TEAM}/job_1\n".encode("utf-16"))
    with pytest.raises(ConfigValidationError, match="not UTF-8 text"):
        read_job_refs_file(str(path))
