"""Persistent event logs with long-poll reads, as the daemon keeps agreement/payment events.

Events are never consumed: readers pass the ``eventDate`` of the last one they saw and get the
ones strictly after it. Every event gets a distinct, increasing timestamp (bumped by a
microsecond when two would collide) so that cursor never skips or repeats one.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Optional

from golemsync import timestamps

Event = dict[str, Any]
Predicate = Callable[[Event], bool]


class UniqueClock:
    """Hands out strictly increasing aware-UTC instants (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _last
        self._last: Optional[datetime] = None

    def now(self) -> datetime:
        with self._lock:
            moment = timestamps.now()
            if self._last is not None and moment <= self._last:
                moment = self._last + timedelta(microseconds=1)
            self._last = moment
            return moment


class EventLog:
    """An append-only list of wire events, each with a parsed ``_date`` kept beside it."""

    def __init__(self, clock: UniqueClock) -> None:
        self._clock = clock
        self._cond = threading.Condition()  # guards _events and _closed
        self._events: list[tuple[datetime, Event]] = []
        self._closed = False

    def append(self, event: Event) -> Event:
        """Stamp ``event`` with ``eventDate`` and store it; wakes every waiting reader."""
        with self._cond:
            moment = self._clock.now()
            event["eventDate"] = timestamps.to_wire(moment)
            self._events.append((moment, event))
            self._cond.notify_all()
        return event

    def read(self, after: Optional[datetime], timeout: float, select: Predicate,
             limit: Optional[int] = None, filter_after_limit: Optional[Predicate] = None,
             ) -> list[Event]:
        """Events after ``after`` that pass ``select``; waits up to ``timeout`` for the first.

        ``limit`` caps the page before ``filter_after_limit`` is applied (the payment API's
        quirk); returns ``[]`` on timeout or when the log is closed.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                page = [e for moment, e in self._events
                        if (after is None or moment > after) and select(e)]
                if limit is not None:
                    page = page[:limit]
                if filter_after_limit is not None:
                    page = [e for e in page if filter_after_limit(e)]
                remaining = deadline - time.monotonic()
                if page or remaining <= 0 or self._closed:
                    return [_public(e) for e in page]
                self._cond.wait(remaining)

    def close(self) -> None:
        """Wake every reader for good (server shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _public(event: Event) -> Event:
    """The wire form: keys starting with ``_`` are the devnet's own bookkeeping."""
    return {key: value for key, value in event.items() if not key.startswith("_")}
