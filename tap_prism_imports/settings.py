"""The settings a sync needs, checked together once, before any request and any record.

A mistake in ``api_url``, ``api_key``, ``team_id`` or a job ref is one configuration
error naming each bad setting and how to fix it, raised before the run writes anything:
never a per-job error after the run has started.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import typing as t
import urllib.parse
from dataclasses import dataclass

from singer_sdk.exceptions import ConfigValidationError

from tap_prism_imports.job_refs import JobRef, resolve_job_refs

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Collection, Mapping

DEFAULT_API_URL = "https://developers.micro.so"
API_KEY_ENV = "MICRO_API_KEY"
API_URL_ENV = "MICRO_BASE_URL"

# The API's own path under its root: a base URL that ends in part of it makes every
# request's path wrong (/v2/v2/prism/...), and every job answers 404.
_API_PATH_SUFFIX = re.compile(r"(?P<suffix>/v2(?:/prism(?:/.*)?)?|/imports(?:/.*)?)$")


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the API is and the key it is asked with."""

    api_url: str
    api_key: str


@dataclass(frozen=True)
class SyncSettings:
    """Every setting a sync checks up front."""

    connection: ConnectionSettings
    refs: list[JobRef]


def check_sync_settings(
    config: Mapping[str, t.Any], logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
) -> SyncSettings:
    """All the settings of a sync, or one ``ConfigValidationError`` naming every bad one."""
    problems: list[str] = []
    api_url = api_key = ""
    try:
        api_url = resolve_api_url(config, logger)
    except ConfigValidationError as error:
        problems.append(str(error))
    try:
        api_key = resolve_api_key(config)
    except ConfigValidationError as error:
        problems.append(str(error))
    refs: list[JobRef] = []
    try:
        refs = resolve_job_refs(
            config.get("job_ids") or [], config.get("job_ids_file"), config.get("team_id")
        )
    except ConfigValidationError as error:
        problems += error.errors or [str(error)]
    if len(problems) == 1:
        raise ConfigValidationError(problems[0], errors=problems)
    if problems:
        msg = "Invalid settings; fix them before any request is made"
        raise ConfigValidationError(msg, errors=problems)
    return SyncSettings(ConnectionSettings(api_url, api_key), refs)


def warn_unknown_settings(
    config: Mapping[str, t.Any],
    known: Collection[str],
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> None:
    """Name each key of ``config`` that is no setting (the run ignores it), with the
    setting it likely means: a mistyped `import_log` would otherwise only show as
    "nothing to extract"."""
    for name in sorted(set(config) - set(known)):
        likely = difflib.get_close_matches(name, list(known), n=1)
        hint = f": did you mean `{likely[0]}`?" if likely else "."
        logger.warning("`%s` is not a setting of this tap and is ignored%s", name, hint)


def resolve_api_url(
    config: Mapping[str, t.Any], logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
) -> str:
    """The API's root from ``api_url``, else ``MICRO_BASE_URL``, else the provider's default."""
    api_url = str(config.get("api_url") or os.environ.get(API_URL_ENV) or DEFAULT_API_URL).strip()
    parts = urllib.parse.urlsplit(api_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        msg = (
            f"`api_url` {api_url!r} is not an http(s) URL; "
            f"use e.g. {DEFAULT_API_URL} (or set {API_URL_ENV})."
        )
        raise ConfigValidationError(msg, errors=[msg])
    if parts.query or parts.fragment or parts.username or parts.password:
        msg = f"`api_url` {api_url!r} must be a plain base URL: no credentials, query or fragment."
        raise ConfigValidationError(msg, errors=[msg])
    try:
        parts.port  # noqa: B018 - urllib only checks the port when asked for it
    except ValueError as error:
        msg = f"`api_url` {api_url!r} has an invalid port ({error})."
        raise ConfigValidationError(msg, errors=[msg]) from error
    root = api_url.rstrip("/")
    path = urllib.parse.urlsplit(root).path
    if suffix := _API_PATH_SUFFIX.search(path):
        fixed = root[: len(root) - len(suffix["suffix"])]
        msg = (
            f"`api_url` {api_url!r} ends in the API's own path ({suffix['suffix']}): set it "
            f"to the API's root, {fixed!r}; the tap adds /v2/prism/TEAM_ID/imports/JOB_ID."
        )
        raise ConfigValidationError(msg, errors=[msg])
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        logger.warning(
            "`api_url` %s is plain http to a non-loopback host: the API key would travel "
            "in clear text. Use https.",
            api_url,
        )
    return root


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(config: Mapping[str, t.Any]) -> str:
    api_key = config.get("api_key") or os.environ.get(API_KEY_ENV)
    if not api_key or not str(api_key).strip():
        msg = f"No API key: set the `api_key` setting or the {API_KEY_ENV} environment variable."
        raise ConfigValidationError(msg, errors=[msg])
    return str(api_key).strip()
