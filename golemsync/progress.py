"""A terminal progress bar for a job, drawn by tqdm from the event stream.

Shown by ``execute_tasks(..., progress=None)`` (the default) only when standard error is a
terminal and tqdm is installed (``pip install golemsync[progress]``); ``progress=False`` turns
it off, ``progress=True`` asks for it (an error says what to install when tqdm is missing).
The bar shows tasks done of the total (when the input has a length) — tasks resumed from a
journal included, counted as done from the start — failures and retries, providers at work and
the GLM the job's own agreements cost so far; tqdm estimates the time left from this run's
work only.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Iterable
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
    """A job's bar: subscribe the instance to the engine's events; :meth:`close` at the end.

    It counts only its own job's events (``job_id``). ``costs()`` gives the session's
    agreement ledgers (``agreement_id`` and ``spent`` each); the bar shows what the job's own
    agreements cost so far, not the session's total. Tasks a journal found finished are
    counted as done from the start, marked "resumed", and left out of tqdm's rate (they are
    not work of this run). A terminal that reports 0 columns gets a bar of
    :data:`FALLBACK_COLUMNS`.
    """

    def __init__(self, total: Optional[int], costs: Callable[[], Iterable[Any]], *,
                 job_id: str = "", stream: Optional[TextIO] = None) -> None:
        from tqdm import tqdm

        out = stream or sys.stderr
        # tqdm's monitor thread would outlive the job; refreshes on updates are enough.
        tqdm.monitor_interval = 0
        sizing: dict[str, Any] = {"ncols": FALLBACK_COLUMNS} if _zero_columns(out) else \
            {"dynamic_ncols": True}
        self._bar: Any = tqdm(total=total, unit="task", file=out, **sizing)
        self._costs = costs
        self._job_id = job_id
        self._agreements: set[str] = set()
        self._lock = threading.Lock()  # guards the counters and the bar
        self.done = self.failed = self.retried = self.working = self.resumed = 0

    def __call__(self, event: Event) -> None:
        if self._job_id and event.job_id != self._job_id and \
                not isinstance(event, (DebitNoteAccepted, InvoiceAccepted)):
            return  # another job's (payment events carry no job: they are matched below)
        with self._lock:
            if isinstance(event, (TaskAccepted, TaskFailedEvent)):
                self.done += isinstance(event, TaskAccepted)
                self.failed += isinstance(event, TaskFailedEvent)
                self._bar.update(1)
            elif isinstance(event, TaskRetried):
                self.retried += 1
            elif isinstance(event, AgreementCreated):
                self.working += 1
                self._agreements.add(event.agreement_id)
            elif isinstance(event, AgreementTerminated):
                self.working = max(0, self.working - 1)
            elif isinstance(event, (DebitNoteAccepted, InvoiceAccepted)):
                if event.agreement_id not in self._agreements:
                    return
            else:
                return
            self._show()

    def task_resumed(self) -> None:
        """One task the journal found finished: done from the start, not new work."""
        with self._lock:
            self.resumed += 1
            self.done += 1
            self._bar.initial += 1  # tqdm's rate counts from ``initial``: not this run's work
            self._bar.n += 1
            self._show()
            self._bar.refresh()  # drawn now: the job may take a while to hire anyone

    @property
    def spent(self) -> Decimal:
        """What this job's agreements cost so far (accepted debit notes and invoices)."""
        with self._lock:
            return self._spent()

    def _spent(self) -> Decimal:
        return sum((Decimal(c.spent) for c in self._costs()
                    if c.agreement_id in self._agreements), Decimal(0))

    def _show(self) -> None:
        resumed = f"resumed {self.resumed} " if self.resumed else ""
        self._bar.set_postfix_str(
            f"{resumed}failed {self.failed} retried {self.retried} providers {self.working} "
            f"spent {format_glm(self._spent())} GLM", refresh=False)

    def close(self) -> None:
        with self._lock:
            self._bar.close()


#: Width of the bar on a terminal that reports 0 columns (some CI terminals, ``stty cols 0``).
FALLBACK_COLUMNS = 80


def _zero_columns(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal that reports a width of 0 (tqdm would draw nothing)."""
    try:
        return stream.isatty() and os.get_terminal_size(stream.fileno()).columns == 0
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


def format_glm(amount: Decimal) -> str:
    """A GLM amount as a plain decimal (never ``8.97E-7``), at most 9 decimals."""
    return format(amount.quantize(Decimal("1e-9")).normalize(), "f")
