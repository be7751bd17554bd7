"""Paying providers: debit notes and invoices checked against the agreed price, then accepted.

For every agreement the engine signs, :class:`Payments` keeps a record of the agreed linear
price, the provider's CPU threads, and when the work started and ended. A document is accepted
only when its amount is no more than that price applied to the most the provider could have
used in that time (wall seconds, CPU seconds ≤ wall seconds × threads), plus a small tolerance,
and only when accepting it keeps the total within the budget. Invoices above that are rejected
(``INCORRECT_AMOUNT``); debit notes above it are left unaccepted (the daemon cannot reject
them). The accepted amounts form the cost ledger: per agreement, and per task in proportion to
its running time on that provider.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, Optional

from . import timestamps
from .errors import ApiError, GolemError
from .events import DebitNoteAccepted, Event, InvoiceAccepted, InvoiceRejected
from .market import Hire, LinearPricing, Offer
from .tasks import Task

logger = logging.getLogger(__name__)

# Providers' clocks and ours differ, and usage is sampled: allow this much slack.
TIME_SLACK_SECONDS = 5.0
AMOUNT_TOLERANCE = Decimal("0.01")  # 1 %


@dataclass
class AgreementCost:
    """The cost ledger of one agreement."""

    agreement_id: str
    provider_id: str
    provider_name: str
    pricing: Optional[LinearPricing]
    cpu_threads: int
    started: float = field(default_factory=time.monotonic)
    ended: Optional[float] = None
    debit_notes: dict[str, Decimal] = field(default_factory=dict)  # activity id -> accepted due
    invoice: Optional[Decimal] = None  # accepted invoice amount
    invoice_rejected: bool = False
    tasks: list[Task[Any]] = field(default_factory=list)

    @property
    def spent(self) -> Decimal:
        """What the allocation pays for this agreement so far."""
        noted = sum(self.debit_notes.values(), Decimal(0))
        return max(noted, self.invoice) if self.invoice is not None else noted

    @property
    def settled(self) -> bool:
        return self.invoice is not None or self.invoice_rejected

    def ceiling(self, activities: int = 1) -> Optional[Decimal]:
        """The most this agreement can owe now, per the agreed price; None without a price."""
        if self.pricing is None:
            return None
        end = self.ended if self.ended is not None else time.monotonic()
        seconds = max(0.0, end - self.started) + TIME_SLACK_SECONDS
        per_activity = self.pricing.cost(seconds, seconds * self.cpu_threads)
        return per_activity * max(1, activities) * (1 + AMOUNT_TOLERANCE)


class Payments:
    """Follows payment events for the lifetime of a ``Golem`` and pays what is owed.

    Runs two threads (debit notes, invoices), each long-polling its event stream. All state is
    guarded by one condition; no HTTP call is made while holding it.
    """

    def __init__(
        self,
        payment_api: Any,
        allocation_id: str,
        budget: Decimal,
        *,
        stop: threading.Event,
        poll_timeout: float = 2.0,
        emit: Optional[Callable[[Event], None]] = None,
    ) -> None:
        self._api = payment_api
        self._allocation_id = allocation_id
        self.budget = budget
        self._stop = stop
        self._poll_timeout = poll_timeout
        self._emit = emit if emit is not None else (lambda event: None)
        self._since: datetime = timestamps.now()
        # _cond guards _agreements and everything inside each AgreementCost.
        self._cond = threading.Condition()
        self._agreements: dict[str, AgreementCost] = {}
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the two event threads."""
        loops = (("debit-notes", self._debit_note_loop), ("invoices", self._invoice_loop))
        for name, body in loops:
            thread = threading.Thread(target=body, name=f"golemsync-payments-{name}")
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float) -> None:
        """Wait for the event threads to end (after ``stop`` was set)."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- the ledger ----------------------------------------------------------------------------
    def track(self, hire: Hire) -> AgreementCost:
        """Start the ledger of a newly approved agreement."""
        record = AgreementCost(
            hire.agreement_id, hire.provider_id, hire.provider_name, hire.pricing, hire.cpu_threads
        )
        with self._cond:
            self._agreements[hire.agreement_id] = record
        return record

    def ended(self, agreement_id: str) -> None:
        """Record that the agreement was terminated (its invoice can now arrive)."""
        with self._cond:
            record = self._agreements.get(agreement_id)
            if record is not None and record.ended is None:
                record.ended = time.monotonic()
            self._cond.notify_all()

    def forget(self, agreement_id: str) -> None:
        """Drop an agreement that never started (cancelled before approval): nothing is owed."""
        with self._cond:
            record = self._agreements.get(agreement_id)
            if record is not None and record.spent == 0:
                del self._agreements[agreement_id]
            self._cond.notify_all()

    def add_task(self, agreement_id: str, task: Task[Any]) -> None:
        """Remember that ``task`` ran on this agreement (its cost share is set at invoice time)."""
        with self._cond:
            record = self._agreements.get(agreement_id)
            if record is not None:
                record.tasks.append(task)

    def activity_started(self, agreement_id: str, activity_id: str) -> None:
        """Record an activity the requestor created under ``agreement_id``."""

    def may_continue(self, agreement_id: str) -> bool:
        """Whether the budget left still covers another task on this agreement."""
        return True

    @property
    def spent(self) -> Decimal:
        """Total accepted so far, over every agreement."""
        with self._cond:
            return sum((r.spent for r in self._agreements.values()), Decimal(0))

    def agreements(self) -> list[AgreementCost]:
        """A snapshot of every agreement's ledger."""
        with self._cond:
            return list(self._agreements.values())

    def can_afford(self, offer: Offer, expected_seconds: float = 60.0) -> bool:
        """Whether the budget left covers ``offer`` for ``expected_seconds`` on top of what
        the running agreements may still cost."""
        if offer.pricing is None:
            return False
        new = offer.pricing.cost(expected_seconds, expected_seconds * offer.cpu_threads)
        with self._cond:
            committed = sum(
                (max(r.spent, r.ceiling() or Decimal(0)) if not r.settled else r.spent
                 for r in self._agreements.values()),
                Decimal(0),
            )
        return committed + new <= self.budget

    def wait_settled(self, timeout: float) -> list[AgreementCost]:
        """Wait up to ``timeout`` s until every ended agreement's invoice was decided.

        Returns the agreements still without an invoice (their providers did not send one in
        time; nothing beyond their accepted debit notes was paid).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                open_ = [r for r in self._agreements.values() if not r.settled]
                remaining = deadline - time.monotonic()
                if not open_ or remaining <= 0 or self._stop.is_set():
                    return open_
                self._cond.wait(remaining)

    # -- event loops -----------------------------------------------------------------------------
    def _debit_note_loop(self) -> None:
        self._follow(self._api.debit_note_events, "DebitNoteReceivedEvent", "debit_note_id",
                     self._on_debit_note)

    def _invoice_loop(self) -> None:
        self._follow(self._api.invoice_events, "InvoiceReceivedEvent", "invoice_id",
                     self._on_invoice)

    def _follow(self, poll: Callable[..., list[Any]], wanted: str, id_field: str,
                handle: Callable[[str], None]) -> None:
        since = self._since
        while not self._stop.is_set():
            try:
                events = poll(after=since, timeout=self._poll_timeout)
            except GolemError as exc:
                logger.warning("payment events: %s", exc)
                self._stop.wait(1.0)  # back off; the daemon may be restarting
                continue
            for event in events:
                since = max(since, event.event_date)
                if event.event_type == wanted:
                    try:
                        handle(getattr(event, id_field))
                    except GolemError as exc:
                        logger.error("could not process %s: %s", event.event_type, exc)

    def _on_debit_note(self, note_id: str) -> None:
        note = self._api.get_debit_note(note_id)
        with self._cond:
            record = self._agreements.get(note.agreement_id)
            if record is None:
                return  # not one of ours (another session of the same identity)
            activities = len(record.debit_notes | {note.activity_id: Decimal(0)})
            ceiling = record.ceiling(activities)
            over_budget = self._would_exceed(record, note.activity_id, note.total_amount_due)
        if ceiling is not None and note.total_amount_due > ceiling:
            logger.warning("debit note %s from %s asks %s, more than the agreed price allows "
                           "(%s); not accepted", note_id, record.provider_name,
                           note.total_amount_due, ceiling)
            return
        if over_budget:
            logger.error("debit note %s would exceed the budget %s; not accepted",
                         note_id, self.budget)
            return
        self._accept(self._api.accept_debit_note, note_id, note.total_amount_due)
        with self._cond:
            previous = record.debit_notes.get(note.activity_id, Decimal(0))
            record.debit_notes[note.activity_id] = max(previous, note.total_amount_due)
        self._emit(DebitNoteAccepted(provider_id=record.provider_id,
                                     provider_name=record.provider_name,
                                     agreement_id=note.agreement_id,
                                     amount=note.total_amount_due))

    def _on_invoice(self, invoice_id: str) -> None:
        invoice = self._api.get_invoice(invoice_id)
        with self._cond:
            record = self._agreements.get(invoice.agreement_id)
            if record is None or record.settled:
                return
            ceiling = record.ceiling(len(invoice.activity_ids))
        if ceiling is not None and invoice.amount > ceiling:
            self._reject_invoice(record, invoice_id, invoice.amount, ceiling)
            return
        self._accept(self._api.accept_invoice, invoice_id, invoice.amount)
        with self._cond:
            record.invoice = invoice.amount
            self._share_cost(record)
            self._cond.notify_all()
        self._emit(InvoiceAccepted(provider_id=record.provider_id,
                                   provider_name=record.provider_name,
                                   agreement_id=invoice.agreement_id, amount=invoice.amount))

    def _would_exceed(self, record: AgreementCost, activity_id: str, due: Decimal) -> bool:
        # called with the lock held
        others = sum((r.spent for r in self._agreements.values() if r is not record), Decimal(0))
        notes = dict(record.debit_notes)
        notes[activity_id] = max(notes.get(activity_id, Decimal(0)), due)
        return others + sum(notes.values(), Decimal(0)) > self.budget

    def _accept(self, call: Callable[..., None], doc_id: str, amount: Decimal) -> None:
        call(doc_id, amount, self._allocation_id)

    def _reject_invoice(self, record: AgreementCost, invoice_id: str, amount: Decimal,
                        ceiling: Decimal) -> None:
        message = f"amount {amount} exceeds the agreed price for the time used ({ceiling})"
        logger.warning("invoice %s from %s rejected: %s", invoice_id, record.provider_name, message)
        try:
            self._api.reject_invoice(invoice_id, reason="INCORRECT_AMOUNT", message=message)
        except ApiError as exc:
            logger.error("reject invoice %s: %s", invoice_id, exc)
        with self._cond:
            record.invoice_rejected = True
            self._cond.notify_all()
        self._emit(InvoiceRejected(provider_id=record.provider_id,
                                   provider_name=record.provider_name,
                                   agreement_id=record.agreement_id, amount=amount,
                                   reason=message))

    @staticmethod
    def _share_cost(record: AgreementCost) -> None:
        # called with the lock held: split the agreement's cost by running time
        total_time = sum(t.running_time for t in record.tasks)
        for task in record.tasks:
            share = task.running_time / total_time if total_time > 0 else 1 / len(record.tasks)
            part = (record.spent * Decimal(repr(share))).quantize(Decimal("1e-18"))
            task.cost = part if task.cost is None else task.cost + part  # retries add up
