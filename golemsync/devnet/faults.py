"""Seeded fault draws: per-provider RNGs for the exe-units and HTTP-level misbehaviour.

Every stream of random numbers is derived from the config seed and a label, so a run with the
same seed and the same sequence of requests draws the same faults.
"""

from __future__ import annotations

import random
import threading
from typing import Optional

from golemsync.devnet.http import HttpError


def derived_rng(seed: int, *labels: object) -> random.Random:
    """An independent RNG for one purpose (a provider, an activity, the HTTP layer)."""
    return random.Random(":".join(["golemsync-devnet", str(seed), *map(str, labels)]))


class HttpFaults:
    """Decides, per request, an added latency and whether to answer 503 instead."""

    def __init__(self, seed: int, error_rate: float, latency: float) -> None:
        self._rng = derived_rng(seed, "http")
        self._lock = threading.Lock()  # guards _rng: draws happen on many handler threads
        self.error_rate = error_rate
        self.latency = latency

    @property
    def active(self) -> bool:
        return self.error_rate > 0 or self.latency > 0

    def draw(self) -> tuple[float, Optional[HttpError]]:
        """``(delay seconds, error to send or None)`` for the next request."""
        with self._lock:
            delay = self.latency * 2 * self._rng.random() if self.latency > 0 else 0.0
            failed = self.error_rate > 0 and self._rng.random() < self.error_rate
        if failed:
            error = HttpError.message(503, "Service error: devnet injected fault (http_error_rate)")
            return delay, error
        return delay, None
