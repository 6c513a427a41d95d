"""Floors for one job's extraction, with no Singer SDK at all.

``stream`` (default): GET each job with a streamed body, cut ``results`` into
runs of whole rows and parse each with orjson (the tap's technique, without its
checks for hostile bodies), build each ``import_results`` record and write it as
a RECORD line with orjson in large blocks. No state, no spool, no validation:
the least work that produces the same records from a well-formed body.

``transfer``: only read each body to the end (the HTTP floor).

Usage: ``python benchmarks/lower_bound.py CONFIG.json [stream|transfer]``, with the
tap's config keys ``api_url``, ``api_key``, ``team_id`` and ``job_ids``.
"""

from __future__ import annotations

import datetime
import sys
import typing as t
from pathlib import Path

import orjson
import requests

BLOCK_BYTES = 1 << 20
CHUNK_BYTES = 64 * 1024


def _refs(config: dict[str, t.Any]) -> list[tuple[str, str]]:
    refs = []
    for ref in config.get("job_ids", []):
        team_id, _, job_id = str(ref).rpartition("/")
        refs.append((team_id or str(config["team_id"]), job_id))
    return refs


def _outcome(result: dict[str, t.Any]) -> str | None:
    if result.get("error"):
        return "failed"
    if result.get("created") is True:
        return "created"
    if result.get("existing") is True:
        return "existing"
    return None


def stream_job(
    session: requests.Session, url: str, team_id: str, job_id: str, out: t.BinaryIO
) -> int:
    fetched_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")
    head = b'{"type":"RECORD","stream":"import_results","record":'
    tail = b',"time_extracted":"' + fetched_at.encode() + b'"}\n'
    block = bytearray()
    rows = 0
    with session.get(url, stream=True, timeout=60) as response:
        response.raise_for_status()
        response.raw.decode_content = True
        for result in _results(t.cast("t.BinaryIO", response.raw)):
            error = result.get("error")
            record = {
                "team_id": team_id,
                "job_id": job_id,
                "row_index": rows,
                "record_id": result.get("id"),
                "outcome": _outcome(result),
                "created": result.get("created"),
                "existing": result.get("existing"),
                "error_code": error.get("code") if isinstance(error, dict) else None,
                "error_message": error.get("message") if isinstance(error, dict) else None,
                "fetched_at": fetched_at,
            }
            block += head
            block += orjson.dumps(record)
            block += tail
            rows += 1
            if len(block) >= BLOCK_BYTES:
                out.write(block)
                block.clear()
    out.write(block)
    return rows


def _results(body: t.BinaryIO) -> t.Iterator[dict[str, t.Any]]:
    """The rows of a well-formed body's ``results`` array, read in runs of whole rows."""
    buffer, key = b"", b'"results":['
    while key not in buffer:
        buffer += body.read(CHUNK_BYTES)
    buffer = buffer[buffer.index(key) + len(key) :]
    start = b"["
    while chunk := body.read(CHUNK_BYTES):
        buffer += chunk
        end = len(buffer)
        while (brace := buffer.rfind(b"}", 0, end)) >= 0:
            try:
                rows = orjson.loads(start + buffer[: brace + 1] + b"]")
            except orjson.JSONDecodeError:
                end = brace
                continue
            yield from rows[1:] if start == b"[0" else rows
            buffer, start = buffer[brace + 1 :], b"[0"
            break


def transfer_job(session: requests.Session, url: str) -> int:
    size = 0
    with session.get(url, stream=True, timeout=60) as response:
        response.raise_for_status()
        for chunk in response.iter_content(CHUNK_BYTES):
            size += len(chunk)
    return size


def main(argv: list[str]) -> int:
    config = orjson.loads(Path(argv[1]).read_bytes())
    mode = argv[2] if len(argv) > 2 else "stream"
    base = str(config["api_url"]).rstrip("/")
    session = requests.Session()
    session.headers["x-api-key"] = str(config["api_key"])
    out = sys.stdout.buffer
    for team_id, job_id in _refs(config):
        url = f"{base}/v2/prism/{team_id}/imports/{job_id}"
        if mode == "transfer":
            transfer_job(session, url)
        else:
            stream_job(session, url, team_id, job_id, out)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
