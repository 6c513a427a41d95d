"""How each API answer is classified: one row per case the official SDK distinguishes."""

from __future__ import annotations

import email.utils

import pytest
from requests.structures import CaseInsensitiveDict

from tap_prism_imports.client import Verdict, classify_response

NOW = 1_800_000_000.0
IN_30_S = email.utils.formatdate(NOW + 30, usegmt=True)


@pytest.mark.parametrize(
    ("status", "headers", "verdict", "wait"),
    [
        (200, {}, Verdict.OK, 0.0),
        (401, {}, Verdict.MISSING_KEY, 0.0),
        (403, {}, Verdict.FORBIDDEN, 0.0),
        (404, {}, Verdict.NOT_FOUND, 0.0),
        (301, {"Location": "https://elsewhere.example/"}, Verdict.REDIRECT, 0.0),
        (307, {}, Verdict.REDIRECT, 0.0),
        (400, {}, Verdict.NOT_RETRIED, 0.0),
        (422, {}, Verdict.NOT_RETRIED, 0.0),
        (204, {}, Verdict.NOT_RETRIED, 0.0),
        (408, {}, Verdict.RETRY, 0.0),
        (409, {}, Verdict.RETRY, 0.0),
        (500, {}, Verdict.RETRY, 0.0),
        (503, {}, Verdict.RETRY, 0.0),
        # x-should-retry overrides the status's default, both ways.
        (503, {"x-should-retry": "false"}, Verdict.NOT_RETRIED, 0.0),
        (400, {"X-Should-Retry": "true"}, Verdict.RETRY, 0.0),
        # 429: the pause the API asks for, in any of its spellings.
        (429, {"Retry-After": "3"}, Verdict.THROTTLED, 3.0),
        (429, {"retry-after-ms": "1500"}, Verdict.THROTTLED, 1.5),
        (429, {"Retry-After": IN_30_S}, Verdict.THROTTLED, 30.0),
        (429, {"Retry-After": "60"}, Verdict.THROTTLED, 60.0),
        # Longer than a run waits: the key's quota is spent; the run stops requesting.
        (429, {"Retry-After": "61"}, Verdict.QUOTA_SPENT, 61.0),
        (429, {"Retry-After": "3600"}, Verdict.QUOTA_SPENT, 3600.0),
        # No usable pause (absent, 0, garbage): exponential backoff.
        (429, {}, Verdict.RETRY, 0.0),
        (429, {"Retry-After": "0"}, Verdict.RETRY, 0.0),
        (429, {"Retry-After": "soon"}, Verdict.RETRY, 0.0),
        (429, {"x-should-retry": "false", "Retry-After": "3"}, Verdict.NOT_RETRIED, 0.0),
    ],
)
def test_classify_response(
    status: int, headers: dict[str, str], verdict: Verdict, wait: float
) -> None:
    classification = classify_response(status, CaseInsensitiveDict(headers), now=NOW)
    assert classification.verdict is verdict
    assert classification.wait == pytest.approx(wait)
