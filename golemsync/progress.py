"""A terminal progress bar for a job, drawn by tqdm from the event stream.

Shown by ``execute_tasks(..., progress=None)`` (the default) only when standard error is a
terminal and tqdm is installed (``pip install golemsync[progress]``); ``progress=False`` turns
it off, ``progress=True`` asks for it (an error says what to install when tqdm is missing).
The bar shows tasks done of the total (when the input has a length), failures and retries,
providers at work and GLM spent so far; tqdm estimates the time left.
"""

from __future__ import annotations

import sys
import threading
from decimal import Decimal
from typing import Any, Callable, Optional, TextIO

from .errors import ConfigurationError
from .events import (
    AgreementCreated,
    AgreementTerminated,
    DebitNoteAccepted,
    Event,
    InvoiceAccepted,
    TaskAccepted,
    TaskFailedEvent,
    TaskRetried,
)


def wanted(progress: Optional[bool], stream: Optional[TextIO] = None) -> bool:
    """Decide whether to draw: an explicit choice wins; by default only on a terminal."""
    stream = stream or sys.stderr
    if progress is not None:
        if progress and not tqdm_available():
            raise ConfigurationError("progress=True needs tqdm: pip install 'golemsync[progress]'")
        return progress
    return tqdm_available() and bool(getattr(stream, "isatty", lambda: False)())


def tqdm_available() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


class ProgressBar:
    """Subscribe an instance to the engine's events; :meth:`close` when the job ends."""

    def __init__(self, total: Optional[int], spent: Callable[[], Decimal],
                 stream: Optional[TextIO] = None) -> None:
        from tqdm import tqdm

        # tqdm's monitor thread would outlive the job; refreshes on updates are enough.
        tqdm.monitor_interval = 0
        self._bar: Any = tqdm(total=total, unit="task", file=stream or sys.stderr,
                              dynamic_ncols=True)
        self._spent = spent
        self._lock = threading.Lock()  # guards the counters and the bar
        self.done = self.failed = self.retried = self.working = 0

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, (TaskAccepted, TaskFailedEvent)):
                self.done += isinstance(event, TaskAccepted)
                self.failed += isinstance(event, TaskFailedEvent)
                self._bar.update(1)
            elif isinstance(event, TaskRetried):
                self.retried += 1
            elif isinstance(event, AgreementCreated):
                self.working += 1
            elif isinstance(event, AgreementTerminated):
                self.working = max(0, self.working - 1)
            elif not isinstance(event, (DebitNoteAccepted, InvoiceAccepted)):
                return
            self._bar.set_postfix_str(
                f"failed {self.failed} retried {self.retried} providers {self.working} "
                f"spent {self._spent():.6f} GLM", refresh=False)

    def close(self) -> None:
        with self._lock:
            self._bar.close()
