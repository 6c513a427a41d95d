"""Per-key rate limit (token bucket) and monthly quota, on the sandbox clock."""

from __future__ import annotations

import math
import threading
from datetime import datetime, timezone


def next_month_start(timestamp: float) -> float:
    """The first instant of the UTC month after ``timestamp``."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)  # noqa: PLR2004
    return datetime(year, month, 1, tzinfo=timezone.utc).timestamp()


class RateLimiter:
    """Decides whether a key may make a request now.

    ``rate`` requests per second with bursts of up to ``burst`` (``rate=None`` disables the
    limit); ``monthly_quota`` requests per key per calendar month (UTC; ``None`` for no
    quota). Only allowed requests count against the quota.
    """

    def __init__(self, rate: float | None, burst: int, monthly_quota: int | None) -> None:
        if rate is not None and rate <= 0:
            msg = "rate limit must be positive (or None to disable it)"
            raise ValueError(msg)
        self.rate = rate
        self.burst = max(1, burst)
        self.monthly_quota = monthly_quota
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._usage: dict[str, tuple[tuple[int, int], int]] = {}

    def check(self, key: str, now: float) -> int | None:
        """``None`` if the request may proceed, else the ``Retry-After`` seconds (>= 1)."""
        with self._lock:
            tokens = 0.0
            if self.rate is not None:
                tokens, last = self._buckets.get(key, (float(self.burst), now))
                tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate)
                if tokens < 1.0:
                    self._buckets[key] = (tokens, now)
                    return max(1, math.ceil((1.0 - tokens) / self.rate))
            if self.monthly_quota is not None:
                moment = datetime.fromtimestamp(now, tz=timezone.utc)
                month = (moment.year, moment.month)
                used_month, used = self._usage.get(key, (month, 0))
                if used_month != month:
                    used = 0
                if used >= self.monthly_quota:
                    if self.rate is not None:
                        self._buckets[key] = (tokens, now)
                    return max(1, math.ceil(next_month_start(now) - now))
                self._usage[key] = (month, used + 1)
            if self.rate is not None:
                self._buckets[key] = (tokens - 1.0, now)
            return None
