"""What happened in a job, per provider and in total, built from the event stream.

``Golem.summary()`` returns a :class:`Summary` of everything seen so far; ``str(summary)`` is a
plain-text table meant for a terminal or a log::

    provider     tasks  failed  retried  time s      cost GLM
    alpha           12       0        0    3.41  0.0012340000
    ...
    total           50       0        1   12.02  0.0051230000   (wall 4.2 s, 0.00010246 per task)
    rejected                                       0.0370200000   (asked beyond the agreed price)
    unpaid                                         0.0004000000   (fitting invoices over the budget)

``rejected`` is, per agreement, the largest claim refused for not fitting the price (an
invoice, or the highest debit note: notes are cumulative); ``unpaid`` what fitting invoices
asked beyond the accepted debit notes when accepting them would have exceeded the budget. Both
rows appear only when not zero; a provider that overcharged is flagged on its row.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Optional

from .events import (
    AgreementCreated,
    AgreementTerminated,
    DebitNoteAccepted,
    DebitNoteRejected,
    Event,
    InvoiceAccepted,
    InvoiceRejected,
    InvoiceUnpaid,
    JobFinished,
    JobStarted,
    ProviderOvercharged,
    TaskAccepted,
    TaskFailedEvent,
    TaskRetried,
)


@dataclass
class ProviderLine:
    """One provider's share of the work."""

    name: str
    tasks_done: int = 0
    tasks_failed: int = 0
    retries: int = 0
    busy_seconds: float = 0.0
    cost: Decimal = Decimal(0)
    agreements: int = 0
    released_after_failure: bool = False
    overcharged: bool = False
    _noted: dict[str, Decimal] = field(default_factory=dict, repr=False)  # agreement -> notes
    _refused: dict[str, Decimal] = field(default_factory=dict, repr=False)  # agreement -> claim
    _unpaid: dict[str, Decimal] = field(default_factory=dict, repr=False)  # agreement -> amount

    @property
    def rejected(self) -> Decimal:
        """GLM asked and refused (per agreement, the largest refused claim)."""
        return sum(self._refused.values(), Decimal(0))

    @property
    def unpaid(self) -> Decimal:
        """GLM of fitting invoices left unpaid (the budget), beyond their debit notes."""
        return sum(self._unpaid.values(), Decimal(0))


class Summary:
    """Collects events into per-provider and total figures. Thread-safe; subscribe it (to
    :attr:`KINDS`: the events it reads)."""

    KINDS: tuple[type[Event], ...] = (
        JobStarted, JobFinished, AgreementCreated, AgreementTerminated, TaskAccepted,
        TaskFailedEvent, TaskRetried, DebitNoteAccepted, InvoiceAccepted, DebitNoteRejected,
        InvoiceRejected, InvoiceUnpaid, ProviderOvercharged)

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards everything below
        self.providers: dict[str, ProviderLine] = {}
        self.started: Optional[float] = None
        self.finished: Optional[float] = None
        self._invoiced: dict[str, Decimal] = {}

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._apply(event)

    def _line(self, provider_id: str, name: str) -> ProviderLine:
        line = self.providers.get(provider_id)
        if line is None:
            line = self.providers[provider_id] = ProviderLine(name or provider_id)
        return line

    def _apply(self, event: Event) -> None:
        if isinstance(event, JobStarted) and self.started is None:
            self.started = event.at
        elif isinstance(event, JobFinished):
            self.finished = event.at
        elif isinstance(event, AgreementCreated):
            self._line(event.provider_id, event.provider_name).agreements += 1
        elif isinstance(event, AgreementTerminated) and event.failed:
            self._line(event.provider_id, event.provider_name).released_after_failure = True
        elif isinstance(event, TaskAccepted):
            line = self._line(event.provider_id, event.provider_name)
            line.tasks_done += 1
            line.busy_seconds += event.running_time
        elif isinstance(event, TaskFailedEvent):
            self._line(event.provider_id, event.provider_name).tasks_failed += 1
        elif isinstance(event, TaskRetried):
            self._line(event.provider_id, event.provider_name).retries += 1
        elif isinstance(event, (DebitNoteAccepted, InvoiceAccepted)):
            self._cost(event)
        elif isinstance(event, (DebitNoteRejected, InvoiceRejected)):
            if event.reason.startswith(("BUDGET", "LATE")):
                return  # not the provider's fault (the budget; a note sampled before our
                # destroy reached it): its invoice says what is owed
            line = self._line(event.provider_id, event.provider_name)
            previous = line._refused.get(event.agreement_id, Decimal(0))
            line._refused[event.agreement_id] = max(previous, event.amount)
        elif isinstance(event, InvoiceUnpaid):
            line = self._line(event.provider_id, event.provider_name)
            noted = line._noted.get(event.agreement_id, Decimal(0))
            line._unpaid[event.agreement_id] = max(Decimal(0), event.amount - noted)
        elif isinstance(event, ProviderOvercharged):
            self._line(event.provider_id, event.provider_name).overcharged = True

    def _cost(self, event: DebitNoteAccepted | InvoiceAccepted) -> None:
        line = self._line(event.provider_id, event.provider_name)
        if isinstance(event, InvoiceAccepted):
            # the invoice covers the agreement: it replaces what its debit notes booked
            line.cost -= line._noted.pop(event.agreement_id, Decimal(0))
            self._invoiced[event.agreement_id] = event.amount
            line.cost += event.amount
        elif event.agreement_id not in self._invoiced:
            previous = line._noted.get(event.agreement_id, Decimal(0))
            line._noted[event.agreement_id] = max(previous, event.amount)
            line.cost += line._noted[event.agreement_id] - previous

    # -- figures -------------------------------------------------------------------------------
    @property
    def tasks_done(self) -> int:
        with self._lock:
            return sum(p.tasks_done for p in self.providers.values())

    @property
    def total_cost(self) -> Decimal:
        with self._lock:
            return sum((p.cost for p in self.providers.values()), Decimal(0))

    @property
    def rejected(self) -> Decimal:
        """Total GLM asked and refused (see the module docstring)."""
        with self._lock:
            return sum((p.rejected for p in self.providers.values()), Decimal(0))

    @property
    def unpaid(self) -> Decimal:
        """Total GLM of fitting invoices left unpaid because of the budget."""
        with self._lock:
            return sum((p.unpaid for p in self.providers.values()), Decimal(0))

    @property
    def overcharged(self) -> list[str]:
        """Names of the providers that asked more than they may."""
        with self._lock:
            return sorted(p.name for p in self.providers.values() if p.overcharged)

    @property
    def wall_seconds(self) -> float:
        with self._lock:
            if self.started is None:
                return 0.0
            return (self.finished if self.finished is not None else time.monotonic()) - self.started

    def __str__(self) -> str:
        with self._lock:
            lines = sorted(self.providers.values(), key=lambda p: p.name)
        wall, cost = self.wall_seconds, self.total_cost
        rejected, unpaid = self.rejected, self.unpaid
        done = sum(p.tasks_done for p in lines)
        rows = [f"{'provider':<16}{'tasks':>7}{'failed':>8}{'retried':>9}{'time s':>9}"
                f"{'cost GLM':>18}"]
        for p in lines:
            flags = [f for f, on in (("released after a failure", p.released_after_failure),
                                     ("overcharged", p.overcharged)) if on]
            flag = f"  ({', '.join(flags)})" if flags else ""
            rows.append(f"{p.name[:16]:<16}{p.tasks_done:>7}{p.tasks_failed:>8}{p.retries:>9}"
                        f"{p.busy_seconds:>9.2f}{p.cost:>18.10f}{flag}")
        per_task = f"{cost / done:.10f}" if done else "-"
        rows.append(f"{'total':<16}{done:>7}{sum(p.tasks_failed for p in lines):>8}"
                    f"{sum(p.retries for p in lines):>9}"
                    f"{sum(p.busy_seconds for p in lines):>9.2f}{cost:>18.10f}"
                    f"   (wall {wall:.1f} s, {per_task} GLM per task)")
        blank = " " * 33
        if rejected:
            rows.append(f"{'rejected':<16}{blank}{rejected:>18.10f}   (asked beyond the agreed "
                        "price)")
        if unpaid:
            rows.append(f"{'unpaid':<16}{blank}{unpaid:>18.10f}   (fitting invoices over the "
                        "budget)")
        return "\n".join(rows)
