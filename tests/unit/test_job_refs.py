"""Job refs: every documented form works, and anything else is refused before any request."""

from __future__ import annotations

import typing as t
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from singer_sdk.exceptions import ConfigValidationError

from tap_prism_imports.job_refs import (
    MAX_REF_LENGTH,
    JobRef,
    JobRefError,
    parse_job_ref,
    resolve_job_refs,
)

if t.TYPE_CHECKING:
    from pathlib import Path

TEAM = "1f0c6a52-8a3e-4d5f-9b1c-2d3e4f5a6b7c"
OTHER_TEAM = "2a0c6a52-8a3e-4d5f-9b1c-2d3e4f5a6b7c"


@pytest.mark.parametrize(
    "ref",
    [
        "job_123",
        f"{TEAM}/job_123",
        f"/v2/prism/{TEAM}/imports/job_123",
        f"https://developers.micro.so/v2/prism/{TEAM}/imports/job_123",
        f"http://127.0.0.1:8080/v2/prism/{TEAM.upper()}/imports/job_123",
        f"  {TEAM}/job_123\t",
    ],
)
def test_every_documented_form_names_the_same_job(ref: str) -> None:
    assert parse_job_ref(ref, TEAM) == JobRef(TEAM, "job_123")


def test_ref_team_wins_over_default_team() -> None:
    assert parse_job_ref(f"{OTHER_TEAM}/job_1", TEAM).team_id == OTHER_TEAM


def test_ids_are_url_encoded_into_the_path() -> None:
    assert JobRef(TEAM, "a:b~c").path == f"/v2/prism/{TEAM}/imports/a%3Ab~c"


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("job_1", "has no team"),
        ("not-a-uuid/job_1", "is not a UUID"),
        (f"{TEAM}/..", "not '.' or '..'"),
        (f"{TEAM}/.", "not '.' or '..'"),
        (f"{TEAM}/job/extra", "expected JOB_ID"),
        (f"{TEAM}/job%2F..", "must be 1-255 characters"),
        (f"{TEAM}/job 1", "contains whitespace"),
        (f"{TEAM} job_1", "contains whitespace"),
        (f"/v2/prism/{TEAM}/imports/../job_1", "exactly /v2/prism"),
        (f"/v2/prism/{TEAM}/imports/", "must be 1-255"),
        (f"/v2/prism/{TEAM}/exports/job_1", "exactly /v2/prism"),
        (f"/v1/prism/{TEAM}/imports/job_1", "exactly /v2/prism"),
        (f"https://host/v2/prism/{TEAM}/imports/job_1?token=x", "no query or fragment"),
        (f"https://host/v2/prism/{TEAM}/imports/job_1#frag", "no query or fragment"),
        (f"ftp://host/v2/prism/{TEAM}/imports/job_1", "http(s) URL"),
        (f"file:///v2/prism/{TEAM}/imports/job_1", "http(s) URL"),
        (f"{TEAM}/job_1\r\nX-Injected: 1", "control characters"),
        (f"{TEAM}/job\x00", "control characters"),
        ("x" * (MAX_REF_LENGTH + 1), "longer than"),
        (f"{TEAM}/" + "j" * 256, "must be 1-255"),
        ("   ", "is empty"),
    ],
)
def test_bad_refs_are_refused_with_the_reason(ref: str, reason: str) -> None:
    with pytest.raises(JobRefError, match=None) as caught:
        parse_job_ref(ref, None if reason == "has no team" else TEAM)
    assert reason in str(caught.value)


def test_resolve_merges_settings_in_first_seen_order_without_duplicates(tmp_path: Path) -> None:
    refs_file = tmp_path / "refs.txt"
    refs_file.write_text(
        f"# nightly\n\n{TEAM}/job_b\n  job_c  \n/v2/prism/{TEAM.upper()}/imports/job_a\n",
        encoding="utf-8",
    )
    refs = resolve_job_refs(["job_a", f"{TEAM}/job_b"], str(refs_file), TEAM)
    assert [r.job_id for r in refs] == ["job_a", "job_b", "job_c"]


def test_resolve_names_every_bad_ref_and_where_it_came_from(tmp_path: Path) -> None:
    refs_file = tmp_path / "refs.txt"
    refs_file.write_text("job_ok\n../etc/passwd\n", encoding="utf-8")
    with pytest.raises(ConfigValidationError) as caught:
        resolve_job_refs(["bad/../x", "job_ok"], str(refs_file), TEAM)
    errors = caught.value.errors
    assert len(errors) == 2
    assert "`job_ids`[0] 'bad/../x'" in errors[0]
    assert f"`job_ids_file` {refs_file}:2 '../etc/passwd'" in errors[1]


def test_bad_team_id_setting_is_named() -> None:
    with pytest.raises(ConfigValidationError) as caught:
        resolve_job_refs(["job_1"], None, "team-one")
    assert any("`team_id`" in error and "not a UUID" in error for error in caught.value.errors)


def test_missing_refs_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigValidationError) as caught:
        resolve_job_refs([], str(missing), TEAM)
    assert "`job_ids_file`" in caught.value.errors[0]
    assert str(missing) in caught.value.errors[0]


def test_refs_file_that_is_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        resolve_job_refs([], str(tmp_path), TEAM)
    assert "cannot be read" in caught.value.errors[0]


def test_binary_refs_file_is_a_clear_error(tmp_path: Path) -> None:
    refs_file = tmp_path / "refs.bin"
    refs_file.write_bytes(b"\xff\xfe\x00job")
    with pytest.raises(ConfigValidationError) as caught:
        resolve_job_refs([], str(refs_file), TEAM)
    assert "not UTF-8" in caught.value.errors[0]


def test_huge_line_in_refs_file_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    refs_file = tmp_path / "refs.txt"
    refs_file.write_text("job_ok\n" + "j" * 50_000_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigValidationError) as caught:
        resolve_job_refs([], str(refs_file), TEAM)
    assert f"{refs_file}:2 is longer than" in caught.value.errors[0]


job_ids = st.text(
    alphabet=st.sampled_from("ABCXYZabcxyz0189._~:-"), min_size=1, max_size=255
).filter(lambda job_id: job_id not in {".", ".."})
team_ids = st.uuids().map(str)


@given(team_id=team_ids, job_id=job_ids, form=st.integers(0, 3), upper=st.booleans())
def test_any_valid_ids_round_trip_through_every_form(
    team_id: str, job_id: str, form: int, upper: bool
) -> None:
    team_text = team_id.upper() if upper else team_id
    ref = [
        job_id,
        f"{team_text}/{job_id}",
        f"/v2/prism/{team_text}/imports/{job_id}",
        f"https://example.com/v2/prism/{team_text}/imports/{job_id}",
    ][form]
    parsed = parse_job_ref(ref, team_id)
    assert parsed == JobRef(team_id.lower(), job_id)
    assert parsed.path == f"/v2/prism/{team_id.lower()}/imports/{parsed.path.rsplit('/', 1)[1]}"


@given(ref=st.text(max_size=300))
def test_arbitrary_text_either_parses_to_safe_ids_or_is_refused(ref: str) -> None:
    try:
        parsed = parse_job_ref(ref, str(uuid.UUID(int=1)))
    except JobRefError:
        return
    assert uuid.UUID(parsed.team_id)
    assert parsed.job_id not in {".", ".."}
    assert all(c.isascii() and (c.isalnum() or c in "._~:-") for c in parsed.job_id)
    assert "/" not in parsed.path.removeprefix("/v2/prism/").replace("/imports/", "", 1)
