"""Termination requests (SIGTERM, SIGINT) that a run obeys at the next message boundary.

An orchestrator's SIGTERM must not cut a RECORD line in half, nor let STATE claim a
job whose rows were not all written: the signal handler only records the request;
the run stops writing between two messages, writes a final STATE of what was
confirmed, and exits 128 + the signal number. A second signal exits at once.
"""

from __future__ import annotations

import logging
import os
import sys
import typing as t


class RunInterrupted(BaseException):
    """Raised where the run stops for a termination request.

    A BaseException, like KeyboardInterrupt: it is no error of a job or stream, so the
    SDK's error handling must let it through.
    """


class Interruption:
    """Whether, and by which signal, the run was asked to stop."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum: int) -> None:
        self.signum = signum

    def is_set(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        """Raise ``RunInterrupted`` if a stop was requested (asked once per log line)."""
        if self.signum is not None:
            raise RunInterrupted

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)


def exit_for_signal(interruption: Interruption) -> t.NoReturn:
    """Exit 128 + the signal number once the final STATE is out.

    ``os._exit``: worker threads may still wait on a request or a Retry-After pause,
    and a normal exit would join them first.
    """
    sys.stdout.flush()
    logging.shutdown()
    os._exit(interruption.exit_code)
