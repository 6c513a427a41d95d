"""Default settings of a sandbox, shared by ``Sandbox`` and the ``prism-sandbox`` command."""

DEMO_API_KEY = "prism-sandbox-demo-key"
"""The API key a sandbox accepts when no keys are configured."""

DEMO_TEAM_ID = "5eed0d3e-0000-4000-8000-000000000001"
"""The team a sandbox serves when no teams are configured."""

HOST = "127.0.0.1"
"""Loopback only: the sandbox is for local tests and demos."""

COMMAND_PORT = 8765
"""The port ``prism-sandbox`` binds by default (a ``Sandbox`` object picks a free one)."""

SYNC_THRESHOLD = 100
"""Imports of at most this many rows finish synchronously (200)."""

ROWS_PER_SECOND = 100.0
"""How fast asynchronous jobs progress on the sandbox clock."""

RATE_LIMIT = 10.0
"""Requests per second per key, as the live API allows."""

BURST = 10
"""Token-bucket burst size per key."""
