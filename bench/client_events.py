"""What a benchmarked client tells bench/compare.py, one JSON line on stdout per milestone.

Shared by the golemsync, yapapi and bare clients (it imports nothing but the standard library,
so each client's own virtualenv can use it). Times are ``time.monotonic()``, which on Linux is
one clock for every process of the machine, so the parent can subtract its own spawn time.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Optional


def emit(event: str, **fields: Any) -> None:
    """Print one milestone line (and flush: the parent reads it live)."""
    line = json.dumps({"event": event, "t": time.monotonic(), **fields})
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Milestones:
    """Counts results; emits ``first``, ``notify`` (after ``notify_at`` results) and ``last``."""

    def __init__(self, total: int, notify_at: Optional[int] = None) -> None:
        self.total = total
        self.notify_at = notify_at
        self.done = 0
        self._lock = threading.Lock()  # guards done

    def result(self) -> None:
        with self._lock:
            self.done += 1
            done = self.done
        if done == 1:
            emit("first")
        if self.notify_at is not None and done == self.notify_at:
            emit("notify", done=done)
        if done == self.total:
            emit("last")


def latency_summary(seconds: list[float]) -> dict[str, Optional[float]]:
    """Median and p95 of ``seconds``, in milliseconds (None when there are none)."""
    if not seconds:
        return {"latency_ms_median": None, "latency_ms_p95": None}
    ordered = sorted(seconds)
    middle = len(ordered) // 2
    median = (ordered[middle] if len(ordered) % 2
              else (ordered[middle - 1] + ordered[middle]) / 2)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return {"latency_ms_median": 1000 * median, "latency_ms_p95": 1000 * p95}
