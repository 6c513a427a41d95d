"""``ApiResponse``: what the sandbox answers, before the transport sends it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prism_sandbox.jobs import dumps

if TYPE_CHECKING:
    from prism_sandbox.jobs import Fields


@dataclass
class ApiResponse:
    """A response from the sandbox API: status, extra headers and the JSON body in chunks.

    ``fields`` is set for snapshot bodies (so faults can re-render them).
    """

    status: int
    chunks: tuple[bytes, ...]
    headers: dict[str, str] = field(default_factory=dict)
    fields: Fields | None = None
    team_id: str | None = None
    job_id: str | None = None

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @classmethod
    def of(cls, status: int, payload: Any, **kwargs: Any) -> ApiResponse:
        return cls(status, (dumps(payload).encode(),), **kwargs)

    @classmethod
    def error(cls, status: int, message: str, **extra: Any) -> ApiResponse:
        """An error response with the API's ``{"message": ...}`` body."""
        headers = extra.pop("headers", {})
        return cls.of(status, {"message": message, **extra}, headers=headers)
