"""The providers' agent: one background thread that runs provider-side work.

Provider reactions that must not run on the requestor's HTTP thread (approving agreements,
handling an exe-unit crash, tearing activities down and invoicing after termination) are
submitted as jobs; a periodic ``tick`` (debit notes) runs between them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Optional

logger = logging.getLogger(__name__)

Job = Callable[[], None]


class ProviderAgent:
    """A named non-daemon worker thread with a job queue and a periodic tick."""

    def __init__(self, tick: Job, tick_interval: float) -> None:
        self._tick = tick
        self._interval = max(0.05, tick_interval)
        self._jobs: queue.Queue[Optional[Job]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="golemsync-devnet-agent",
                                        daemon=False)
        self._stopped = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Run ``job`` on the agent thread soon (dropped silently after stop)."""
        if not self._stopped:
            self._jobs.put(job)

    def stop(self) -> None:
        """Finish the queued jobs, then end the thread and join it."""
        self._stopped = True
        self._jobs.put(None)
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        next_tick = time.monotonic() + self._interval
        while True:
            wait = next_tick - time.monotonic()
            if wait <= 0:
                self._guarded(self._tick)
                next_tick = time.monotonic() + self._interval
                continue
            try:
                job = self._jobs.get(timeout=wait)
            except queue.Empty:
                continue
            if job is None:
                return
            self._guarded(job)

    @staticmethod
    def _guarded(job: Job) -> None:
        try:
            job()
        except Exception:
            logger.exception("devnet: provider agent job failed")
