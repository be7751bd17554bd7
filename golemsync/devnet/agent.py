"""The providers' agent: one background thread that runs provider-side work.

Provider reactions that must not run on the requestor's HTTP thread (approving agreements,
handling an exe-unit crash, tearing activities down and invoicing after termination) are
submitted as jobs, optionally delayed; a periodic ``tick`` (debit notes) runs between them.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable

logger = logging.getLogger(__name__)

Job = Callable[[], None]


class ProviderAgent:
    """A named non-daemon worker thread with a (delayed) job queue and a periodic tick."""

    def __init__(self, tick: Job, tick_interval: float) -> None:
        self._tick = tick
        self._interval = max(0.05, tick_interval)
        self._cond = threading.Condition()  # guards _jobs and _stopping
        self._jobs: list[tuple[float, int, Job]] = []  # heap of (due, sequence, job)
        self._sequence = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="golemsync-devnet-agent",
                                        daemon=False)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job, delay: float = 0.0) -> None:
        """Run ``job`` on the agent thread after ``delay`` seconds (dropped after stop)."""
        with self._cond:
            if self._stopping:
                return
            due = time.monotonic() + delay
            heapq.heappush(self._jobs, (due, next(self._sequence), job))
            self._cond.notify()

    def stop(self) -> None:
        """Run the jobs already due, drop the delayed ones, end the thread and join it."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        next_tick = time.monotonic() + self._interval
        while True:
            job = self._next_job(next_tick)
            if job is None:
                if self._stopping:
                    return
                self._guarded(self._tick)
                next_tick = time.monotonic() + self._interval
            else:
                self._guarded(job)

    def _next_job(self, next_tick: float) -> Job | None:
        """The next due job; None when the tick is due or the agent is stopping and idle."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._jobs and self._jobs[0][0] <= now:
                    return heapq.heappop(self._jobs)[2]
                if self._stopping or now >= next_tick:
                    return None
                due = self._jobs[0][0] if self._jobs else next_tick
                self._cond.wait(min(due, next_tick) - now)

    @staticmethod
    def _guarded(job: Job) -> None:
        try:
            job()
        except Exception:
            logger.exception("devnet: provider agent job failed")
