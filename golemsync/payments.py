"""Paying providers: every debit note and invoice checked against what was used, then accepted.

For every agreement the engine signs, :class:`Payments` keeps the agreed linear price (the
offer's ``golem.com.usage.vector`` names the counters, ``golem.com.pricing.model.linear.coeffs``
prices them, the last coeff is the start price of each activity), the provider's CPU threads,
and, per activity the engine created (:meth:`Payments.activity_started` /
:meth:`Payments.activity_ended`), when we asked for it and when it ended.

**The check.** Let *W* be the wall time we observed for an activity (from just before we asked
for it to when it ended, or now) and ``T`` the offer's CPU threads. With ``TOLERANCE`` = 1 % and
``TIME_SLACK_SECONDS`` = 0.5 s, the most an activity can have used is::

    duration ≤ W·(1 + TOLERANCE) + TIME_SLACK_SECONDS          (= D_max)
    cpu      ≤ D_max · T

A **debit note** is accepted only when

* its activity is one we created under that agreement (else ``UNSOLICITED_SERVICE``);
* it is cumulative: its amount and every usage counter are ≥ those of the last note we
  accepted for that activity (else ``INCORRECT_AMOUNT``);
* the usage it reports (``usageCounterVector``) fits the bounds above (else inflated usage,
  ``INCORRECT_AMOUNT``);
* its amount ≤ price(reported usage)·(1 + TOLERANCE) + ``AMOUNT_EPSILON`` (a note without
  counters is priced at the bounds above);
* accepting it keeps the total within the budget.

An **invoice** is accepted only when it lists only activities we created under its agreement
(else ``UNSOLICITED_SERVICE``) and its amount is no more than, summed over those activities,
the smallest of

* the price of the bounds above (at the activity's end);
* the last accepted debit note's amount + the price of the time since at full CPU;
* the price of the last usage the provider reported within the bounds above (in a note we
  accepted, or refused only for its amount or the budget, or the activity's usage read just
  before it was destroyed) + the time since it (duration + that time, CPU + that time × ``T``),
  both still within the bounds above;

times ``1 + TOLERANCE``, plus ``AMOUNT_EPSILON`` (else ``INCORRECT_AMOUNT``). "The time since"
runs from the poll before the one that brought the note (providers sample usage before sending)
to the activity's end, plus ``SAMPLING_SLACK_SECONDS`` = 2 s. For the usage read just before
the activity is destroyed (the session does that once its worker is idle) the slack is
``FINAL_USAGE_SLACK_SECONDS`` = 1 s of duration and, for CPU, only the time from the read to
the end at full CPU: the invoice pays what the provider's last report justifies, no more. A
real node answers that read from its exe-unit's last usage report, so the reading may be
older than the read: when its timestamp (whole seconds) proves it is older by more than a
second, that age (at most ``MAX_USAGE_AGE_SECONDS``) counts as time since the report, for
duration and for CPU alike.
Without that read, an invoice can exceed what was used by at most the price of "the time
since" at full CPU: frequent debit notes keep invoices tight.
Only the duration and CPU counters are checked and paid for: a counter of another name is
priced at zero. An agreement without a linear price is never paid.

Invoices that do not fit are rejected on the daemon with the reason; debit notes cannot be
(the daemon answers 501), so they are left unaccepted, logged and counted as rejected. Both
mark the provider as overcharging (:meth:`Payments.overcharged_providers`, the
:class:`~golemsync.events.ProviderOvercharged` event), except a non-monotonic note, which is
refused but not taken for an overcharge, and a note whose usage is beyond the bounds only
because the provider sampled it after we destroyed the activity (it fits ``LATE_NOTE_SECONDS``
= 5 s more wall time, priced right: the destroy had not reached it yet), which is refused
without counting as rejected or marking anyone. An invoice that fits the price but would take the
total over the budget is never sent for acceptance: it is logged, recorded as unpaid
(:class:`~golemsync.events.InvoiceUnpaid`) and counts as decided.

**Budget.** A provider is hired only when the budget left covers its start price and
``HIRE_SECONDS`` at full CPU (:meth:`Payments.can_afford`). :meth:`Payments.may_continue` tells
a worker thread, between tasks, whether the budget left still covers its provider's price
(full CPU) for the expected time on top of what every open agreement may already owe
(:meth:`Payments.committed`), and whether its provider has not overcharged; when it says no,
the worker stops taking tasks and terminates its agreement, so no provider works unpaid.

**The cost ledger.** Each agreement's accepted amount is split over the tasks that ran on it by
their running time there; an agreement without tasks (a provider that failed before its first
task) is split over every task. Shares are rounded to the amount's smallest unit by the
largest-remainder method, so the tasks' costs add up exactly to :attr:`Payments.spent`. The
split is redone once per poll that brought invoices (not per invoice: it walks every task of
every agreement) and when the invoices are settled (:meth:`Payments.wait_settled`).

**When notes are fetched and accepted.** A debit note needs accepting within the agreed
acceptance timeout, not at once, and it no longer matters once its agreement's invoice is
decided (the daemon then ignores its acceptance). So notes are fetched, checked and accepted
``NOTE_DELAY_SECONDS`` after they are announced, all those due together in one listing (by
id those a skewed provider clock keeps out of it), or as soon as an ended agreement is owed
its invoice, which they then bound. A note of an ended agreement that passes the checks is
*held*: the invoice supersedes it, and it is accepted only if that invoice is rejected or
none comes by :meth:`Payments.wait_settled`'s deadline, so a provider is paid what its notes
justify even then. A short job's notes are thus checked but never accepted: two requests
fewer per note. Usage is checked at the instant the note was announced, however much later
it is fetched.

**Threads.** One thread per event stream. The debit-note thread polls without waiting on the
server (``timeout=0``) once a second, and only while an agreement is open; the invoice thread
long-polls with a short window (``INVOICE_POLL_SECONDS``) only while an ended agreement is owed
its invoice. Otherwise both wait on a condition that :meth:`stop` (and :meth:`join`) notify,
so stopping never waits for a poll window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from . import timestamps
from .errors import ApiError, GolemError
from .events import (
    DebitNoteAccepted,
    DebitNoteRejected,
    Event,
    InvoiceAccepted,
    InvoiceRejected,
    InvoiceUnpaid,
    ProviderOvercharged,
)
from .market import USAGE_CPU, USAGE_DURATION, Hire, LinearPricing, Offer
from .money import to_decimal
from .tasks import Task

if TYPE_CHECKING:
    from .rest import DebitNote, Invoice, PaymentApi

logger = logging.getLogger(__name__)

#: Relative tolerance on amounts and usage (sampling, rounding of counters and amounts).
TOLERANCE = Decimal("0.01")
#: Absolute slack on the wall time we observe for an activity (it brackets the provider's
#: own count: we start timing before asking for the activity and stop after it is destroyed).
TIME_SLACK_SECONDS = 0.5
#: Absolute slack on the time since a debit note: the provider sampled its usage before the
#: note reached us.
SAMPLING_SLACK_SECONDS = 2.0
#: Slack after the usage read just before an activity is destroyed, when no command was running
#: any more: the duration may still grow until the activity ends (and the exe-unit's report may
#: lag a little); the CPU counter only by what runs after the read (nothing: the time between
#: the read and the end, at full CPU).
FINAL_USAGE_SLACK_SECONDS = 1.0
#: The most a usage reading's age counts for: a yagna node answers usage queries from its
#: exe-unit's last report, and marks the activity unresponsive once reports stop for 5 s.
MAX_USAGE_AGE_SECONDS = 5.0
#: Absolute slack on amounts: rounding to 18 places of counters rounded to microseconds.
AMOUNT_EPSILON = Decimal("1e-15")
#: How often the debit-note thread looks for new notes while an agreement is open.
DEBIT_NOTE_POLL_SECONDS = 1.0
#: How long a debit note of an open agreement may wait before it is fetched, checked and
#: accepted (the agreed acceptance timeout is 240 s, or the provider's when 30 s or more:
#: :mod:`golemsync.market`); the notes that come in the meantime are
#: fetched together, in one listing.
NOTE_DELAY_SECONDS = 10.0
#: How far before the earliest event a listing of notes starts: notes are listed by their own
#: timestamp, on the provider's clock; a note a more skewed clock hides is fetched by its id.
LISTING_MARGIN = timedelta(seconds=60)
#: The server-side wait of one invoice poll while an invoice is owed.
INVOICE_POLL_SECONDS = 0.5
#: A provider is hired only if the budget left covers its start price and this long at full CPU.
HIRE_SECONDS = 10.0
#: Reasons of the daemon's rejection API.
INCORRECT_AMOUNT = "INCORRECT_AMOUNT"
UNSOLICITED_SERVICE = "UNSOLICITED_SERVICE"
#: A debit note refused only for the budget (not the provider's fault).
BUDGET = "BUDGET"
#: A debit note refused because it was sampled after we destroyed its activity, within
#: ``LATE_NOTE_SECONDS`` of it (the destroy had not reached the provider): not its fault
#: either, and no money rides on it (the invoice is bounded as always).
LATE = "LATE"
LATE_NOTE_SECONDS = 5.0
NO_PRICE = "the agreement has no linear price to check against"

_DEFAULT_VECTOR = (USAGE_CPU, USAGE_DURATION)


def _seconds(value: float) -> Decimal:
    """A measured time as a Decimal (negative counts as zero; ``repr`` keeps 0.1 exact)."""
    return Decimal(repr(value)) if value > 0 else Decimal(0)


@dataclass(frozen=True)
class Tariff:
    """The agreed linear price, counter by counter, as the offer states it."""

    vector: tuple[str, ...]
    coeffs: tuple[Decimal, ...]  # one per counter of ``vector``
    start: Decimal  # per activity
    _duration: Decimal = field(init=False, repr=False, compare=False)
    _cpu: Decimal = field(init=False, repr=False, compare=False)

    @classmethod
    def of(cls, properties: Mapping[str, Any], pricing: Optional[LinearPricing]) -> \
            Optional[Tariff]:
        """From the offer's properties; else from ``pricing`` in the default vector order."""
        vector = properties.get("golem.com.usage.vector")
        coeffs = properties.get("golem.com.pricing.model.linear.coeffs")
        if (isinstance(vector, list) and isinstance(coeffs, list)
                and len(coeffs) == len(vector) + 1 and all(isinstance(v, str) for v in vector)):
            try:
                values = tuple(to_decimal(c) for c in coeffs)
            except ValueError:
                return None
            return cls(tuple(vector), values[:-1], values[-1])
        if pricing is None:
            return None
        return cls(_DEFAULT_VECTOR, (pricing.per_cpu_second, pricing.per_second), pricing.start)

    def __post_init__(self) -> None:
        # the two coefficients every check uses, looked up once (ceilings are computed for
        # every open agreement each time a provider asks for more work)
        object.__setattr__(self, "_duration", self.coeff(USAGE_DURATION))
        object.__setattr__(self, "_cpu", self.coeff(USAGE_CPU))

    def coeff(self, counter: str) -> Decimal:
        return self.coeffs[self.vector.index(counter)] if counter in self.vector else Decimal(0)

    def per_second(self, threads: int) -> Decimal:
        """Price of one wall second at full use of ``threads`` CPU threads."""
        return self._duration + self._cpu * threads

    def cost(self, duration: float, cpu: float) -> Decimal:
        """Start price + duration and CPU seconds at their coeffs (other counters: zero)."""
        return self.start + self._duration * _seconds(duration) + self._cpu * _seconds(cpu)

    def counters(self, vector: Optional[Sequence[float]]) -> Optional[dict[str, float]]:
        """A note's ``usageCounterVector`` by counter name; None when absent or malformed."""
        if vector is None or len(vector) != len(self.vector):
            return None
        try:
            return {name: float(value) for name, value in zip(self.vector, vector)}
        except (TypeError, ValueError):
            return None


@dataclass
class ActivityUse:
    """What we know of one activity we created, and of its last accepted debit note."""

    activity_id: str
    requested: float  # monotonic instant just before we asked for it
    ended: Optional[float] = None
    note_amount: Decimal = Decimal(0)  # last accepted debit note
    note_usage: Optional[dict[str, float]] = None
    note_seen: Optional[float] = None  # the note existed no earlier than this instant
    reported: Optional[dict[str, float]] = None  # last usage reported within our bounds
    reported_seen: Optional[float] = None
    final: bool = False  # ``reported`` is the usage read just before the activity was destroyed
    rejected: Decimal = Decimal(0)  # highest debit-note amount refused

    def wall(self, at: float, agreement_ended: Optional[float]) -> float:
        end = self.ended if self.ended is not None else agreement_ended
        end = at if end is None else min(end, at)
        return max(0.0, end - self.requested)


@dataclass
class _Share:
    task: Task[Any]
    since: float  # the task's running time when it was handed to this agreement
    until: Optional[float] = None  # ... and when it was handed to another one

    def weight(self) -> float:
        end = self.until if self.until is not None else self.task.running_time
        return max(0.0, end - self.since)


@dataclass
class AgreementCost:
    """The cost ledger of one agreement."""

    agreement_id: str
    provider_id: str
    provider_name: str
    pricing: Optional[LinearPricing]
    cpu_threads: int
    tariff: Optional[Tariff] = None
    started: float = field(default_factory=time.monotonic)
    ended: Optional[float] = None
    activities: dict[str, ActivityUse] = field(default_factory=dict)
    invoice: Optional[Decimal] = None  # accepted invoice amount
    invoice_rejected: bool = False
    rejected_invoice: Decimal = Decimal(0)  # highest invoice amount rejected
    unpaid: Decimal = Decimal(0)  # fitting invoice left unaccepted (budget), beyond the notes
    rejected_notes: int = 0
    overcharged: bool = False
    tasks: list[_Share] = field(default_factory=list)
    # the last split of ``spent`` over ``tasks``: (spent, weights) -> parts; reused while both
    # are unchanged (an ended agreement's), so each invoice does not re-split every agreement
    split_key: Optional[tuple[Decimal, tuple[tuple[int, float], ...]]] = None
    split_parts: dict[int, Decimal] = field(default_factory=dict)
    # notes that passed the checks after the agreement ended: its invoice supersedes them, so
    # they are accepted only if that invoice is rejected or never comes
    # (note id -> note, seen, announced: see Payments._handle_note)
    held: dict[str, tuple[DebitNote, float, float]] = field(default_factory=dict)

    @property
    def debit_notes(self) -> dict[str, Decimal]:
        """Activity id → amount of its last accepted debit note."""
        return {a.activity_id: a.note_amount for a in self.activities.values()
                if a.note_seen is not None}

    @property
    def noted(self) -> Decimal:
        return sum((a.note_amount for a in self.activities.values()), Decimal(0))

    @property
    def spent(self) -> Decimal:
        """What the allocation pays for this agreement so far."""
        noted = self.noted
        return max(noted, self.invoice) if self.invoice is not None else noted

    @property
    def rejected(self) -> Decimal:
        """The largest claim refused: an invoice, or the refused debit notes together."""
        notes = sum((a.rejected for a in self.activities.values()), Decimal(0))
        return max(self.rejected_invoice, notes)

    @property
    def settled(self) -> bool:
        """The invoice was decided: accepted, rejected or left unpaid."""
        return self.invoice is not None or self.invoice_rejected or self.unpaid > 0


class Payments:
    """Follows payment events for the lifetime of a ``Golem`` and pays what is owed.

    Runs two threads (debit notes, invoices). All state is guarded by one condition; no HTTP
    call is made while holding it. See the module docstring for the checks.
    """

    def __init__(
        self,
        payment_api: PaymentApi,
        allocation_id: str,
        budget: Decimal,
        *,
        stop: threading.Event,
        poll_timeout: float = 2.0,
        emit: Optional[Callable[[Event], None]] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = payment_api
        self._allocation_id = allocation_id
        self.budget = budget
        self._stop = stop
        self._poll_timeout = poll_timeout
        self._emit = emit if emit is not None else (lambda event: None)
        self._clock = clock
        self._since: datetime = timestamps.now()
        # _cond guards everything below and everything inside each AgreementCost.
        self._cond = threading.Condition()
        self._agreements: dict[str, AgreementCost] = {}
        self._handouts: dict[int, _Share] = {}  # id(task) -> its latest share
        self._decided: set[str] = set()  # document ids already decided
        self._reserved = Decimal(0)  # amounts being accepted right now (HTTP in flight)
        self._overcharged: dict[str, str] = {}  # provider id -> name
        # Bumped by every change to the ledger (the blocks that may raise what is committed);
        # the committed total is cached with it (see _committed_bound).
        self._version = 0
        self._committed_cache: Optional[tuple[int, float, Decimal, Decimal]] = None
        # Set when an invoice was decided since the tasks' costs were last split: the invoice
        # thread splits once per poll's batch of invoices, not once per invoice (each split
        # walks every task of every agreement).
        self._costs_stale = False
        # debit notes announced but not fetched yet: note id -> (event date, seen)
        # (see _handle_note for seen and announced)
        self._pending_notes: dict[str, tuple[datetime, float, float]] = {}
        # the note events read so far, and when the last poll of them was sent (a note the
        # next poll announces existed no earlier); one poll at a time (either thread polls)
        self._note_poll_lock = threading.Lock()
        self._fetch_lock = threading.Lock()  # held while notes are fetched and handled
        self._notes_since: datetime = self._since
        self._notes_seen: float = clock()
        self._threads: list[threading.Thread] = []
        #: Set once :meth:`may_continue` refused more work for the budget's sake.
        self.out_of_budget = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the two event threads."""
        loops = (("debit-notes", self._debit_note_loop), ("invoices", self._invoice_loop))
        for name, body in loops:
            thread = threading.Thread(target=body, name=f"golemsync-payments-{name}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Make the event threads end at once (no poll is waited for)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float) -> None:
        """Wait for the event threads to end (after ``stop`` or the stop event was set)."""
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._share_costs()  # a document accepted after wait_settled() counts too

    # -- what the engine tells us -------------------------------------------------------------
    def track(self, hire: Hire) -> AgreementCost:
        """Start the ledger of a newly created agreement."""
        record = AgreementCost(
            hire.agreement_id, hire.provider_id, hire.provider_name, hire.pricing,
            hire.cpu_threads, Tariff.of(hire.properties, hire.pricing), started=self._clock(),
        )
        with self._cond:
            self._version += 1  # what open agreements may owe may have changed
            self._agreements[hire.agreement_id] = record
            self._cond.notify_all()
        return record

    def activity_started(self, agreement_id: str, activity_id: str,
                         requested_at: Optional[float] = None) -> None:
        """Record an activity we created; ``requested_at`` is the ``time.monotonic()`` instant
        just before the create call (default: the end of the agreement's previous activity,
        or the agreement's start — a bound that only ever favours the provider)."""
        with self._cond:
            self._version += 1  # what open agreements may owe may have changed
            record = self._agreements.get(agreement_id)
            if record is None or activity_id in record.activities:
                return
            if requested_at is None:
                ends = [a.ended for a in record.activities.values() if a.ended is not None]
                requested_at = max([record.started, *ends])
            record.activities[activity_id] = ActivityUse(activity_id, requested_at)

    def activity_ended(self, agreement_id: str, activity_id: str,
                       final_usage: Optional[Sequence[float]] = None,
                       usage_age: float = 0.0) -> None:
        """Record that the activity was destroyed (its counters stop here). ``final_usage``
        is its usage vector read just before (``GET .../usage``): within the observed bounds it
        becomes the last usage reported, ``usage_age`` seconds before the read (how much older
        the reading's own timestamp proves it is; at most ``MAX_USAGE_AGE_SECONDS``)."""
        with self._cond:
            self._version += 1  # what open agreements may owe may have changed
            record = self._agreements.get(agreement_id)
            use = record.activities.get(activity_id) if record is not None else None
            if record is None or use is None or use.ended is not None:
                return
            now = self._clock()
            use.ended = now
            if final_usage is None or record.tariff is None:
                return
            counters = record.tariff.counters(list(final_usage))
            if counters is None:
                return
            max_duration, max_cpu = self._bounds(record, use, now)
            if (counters.get(USAGE_DURATION, 0.0) <= max_duration
                    and counters.get(USAGE_CPU, 0.0) <= max_cpu):
                age = min(max(0.0, usage_age), MAX_USAGE_AGE_SECONDS)
                use.reported, use.reported_seen, use.final = counters, now - age, True

    def ended(self, agreement_id: str) -> None:
        """Record that the agreement was terminated (its invoice can now arrive)."""
        with self._cond:
            self._version += 1  # what open agreements may owe may have changed
            record = self._agreements.get(agreement_id)
            if record is not None and record.ended is None:
                record.ended = self._clock()
            self._cond.notify_all()

    def forget(self, agreement_id: str) -> None:
        """Drop an agreement that never started (cancelled before approval): nothing is owed."""
        with self._cond:
            self._version += 1  # what open agreements may owe may have changed
            record = self._agreements.get(agreement_id)
            if record is not None and record.spent == 0:
                del self._agreements[agreement_id]
            self._cond.notify_all()

    def add_task(self, agreement_id: str, task: Task[Any]) -> None:
        """Remember that ``task`` runs on this agreement from now (for its cost share)."""
        with self._cond:
            record = self._agreements.get(agreement_id)
            if record is None:
                return
            previous = self._handouts.get(id(task))
            if previous is not None and previous.until is None:
                previous.until = task.running_time
            share = _Share(task, task.running_time)
            self._handouts[id(task)] = share
            record.tasks.append(share)

    # -- figures -------------------------------------------------------------------------------
    @property
    def spent(self) -> Decimal:
        """Total accepted so far, over every agreement."""
        with self._cond:
            return self._spent()

    def _spent(self) -> Decimal:
        return sum((r.spent for r in self._agreements.values()), Decimal(0))

    @property
    def rejected(self) -> Decimal:
        """Total refused (see :attr:`AgreementCost.rejected`)."""
        with self._cond:
            return sum((r.rejected for r in self._agreements.values()), Decimal(0))

    @property
    def unpaid(self) -> Decimal:
        """Total of fitting invoices left unaccepted because of the budget."""
        with self._cond:
            return sum((r.unpaid for r in self._agreements.values()), Decimal(0))

    def agreements(self) -> list[AgreementCost]:
        """A snapshot of every agreement's ledger."""
        with self._cond:
            return list(self._agreements.values())

    def overcharged_providers(self) -> dict[str, str]:
        """Providers (id → name) that sent a document beyond what they may charge."""
        with self._cond:
            return dict(self._overcharged)

    def committed(self) -> Decimal:
        """The most every agreement may owe now: accepted, plus what open ones could still
        ask for (the invoice ceiling of the module docstring)."""
        with self._cond:
            return self._committed(self._clock())

    def _committed_bound(self, now: float) -> tuple[Decimal, bool]:
        """An upper bound of :meth:`_committed` at ``now`` and whether it is exact. Between two
        changes of the ledger, what the open agreements may owe grows no faster than each
        activity's price at full CPU (every ceiling is a minimum of bounds that grow at most
        that fast), so the last exact total plus that rate times the time since bounds it;
        the exact total is recomputed after a change, or when the bound would refuse."""
        cache = self._committed_cache
        if cache is not None and cache[0] == self._version and now > cache[1]:
            return cache[2] + cache[3] * to_decimal(now - cache[1]), False
        exact = self._committed(now)
        rate, activities = Decimal(0), 0
        for record in self._agreements.values():
            if record.settled or record.tariff is None:
                continue
            rate += record.tariff.per_second(record.cpu_threads) * len(record.activities)
            activities += len(record.activities)
        # the ceilings' own slope is at most the price × (1 + TOLERANCE); the second factor
        # and AMOUNT_EPSILON per activity cover the rounding of durations and amounts
        rate *= (1 + TOLERANCE) * (1 + TOLERANCE)
        self._committed_cache = (self._version, now, exact + AMOUNT_EPSILON * activities, rate)
        return exact, True

    def _fits(self, extra: Decimal, now: float) -> bool:
        """Whether ``extra`` more stays within the budget on top of what is committed."""
        bound, exact = self._committed_bound(now)
        if bound + extra <= self.budget:
            return True
        if exact:
            return False
        self._committed_cache = None
        return self._committed_bound(now)[0] + extra <= self.budget

    def _committed(self, now: float) -> Decimal:
        total = self._reserved
        for record in self._agreements.values():
            if record.settled or record.tariff is None:
                total += record.spent
            else:
                total += max(record.spent, self._ceiling(record, list(record.activities), now))
        return total

    def can_afford(self, offer: Offer, expected_seconds: float = HIRE_SECONDS) -> bool:
        """Whether the budget left covers ``offer``'s start price and ``expected_seconds`` at
        full CPU on top of what the open agreements may already owe (:meth:`may_continue`
        then keeps it from working beyond the budget)."""
        tariff = Tariff.of(offer.properties, offer.pricing)
        if tariff is None:
            return False
        new = tariff.start + tariff.per_second(offer.cpu_threads) * to_decimal(expected_seconds)
        with self._cond:
            return self._fits(new, self._clock())

    def may_continue(self, agreement_id: str, expected_seconds: Optional[float] = None) -> bool:
        """Whether this agreement's provider may take more work: true while the budget left
        covers its price at full CPU for ``expected_seconds`` (default: twice the mean running
        time of its tasks so far, at least 1 s) on top of everything committed, and the
        provider has not overcharged."""
        with self._cond:
            record = self._agreements.get(agreement_id)
            if record is None or record.tariff is None or record.ended is not None or \
                    record.overcharged:
                return False
            if expected_seconds is None:
                weights = [s.weight() for s in record.tasks]
                mean = sum(weights) / len(weights) if weights else 0.0
                expected_seconds = max(1.0, 2 * mean)
            rate = record.tariff.per_second(record.cpu_threads) * (1 + TOLERANCE)
            extra = rate * to_decimal(expected_seconds)
            if not record.activities:
                extra += record.tariff.start
            ok = self._fits(extra, self._clock())
            self.out_of_budget = self.out_of_budget or not ok
            return ok

    def wait_settled(self, timeout: float) -> list[AgreementCost]:
        """Wait up to ``timeout`` s until every ended agreement's invoice was decided.

        Returns the agreements still without a decided invoice (their providers did not send
        one in time; nothing beyond their accepted debit notes was paid). Task costs are final
        when it returns.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                open_ = [r for r in self._agreements.values() if not r.settled]
                remaining = deadline - time.monotonic()
                if not open_ or remaining <= 0 or self._stop.is_set():
                    break
                self._cond.wait(remaining)
        if any(r.ended is not None for r in open_):
            self._fetch_pending_notes()  # no invoice came: the notes that pass are what is paid
        for record in open_:
            if record.ended is not None:
                self._accept_held(record)
        with self._cond:
            self._share_costs()
        return open_

    def _accept_held(self, record: AgreementCost) -> None:
        """Accept the notes held for ``record`` (its invoice was rejected or never came)."""
        with self._cond:
            held = sorted(record.held.values(), key=lambda h: h[0].total_amount_due)
            record.held.clear()
        for note, seen, announced in held:
            try:
                self._handle_note(note, seen, announced, fallback=True)
            except GolemError as exc:
                logger.error("could not accept debit note %s: %s", note.debit_note_id, exc)

    # -- the checks (lock held) ----------------------------------------------------------------
    def _bounds(self, record: AgreementCost, use: ActivityUse, now: float) -> tuple[float, float]:
        wall = use.wall(now, record.ended)
        duration = wall * (1 + float(TOLERANCE)) + TIME_SLACK_SECONDS
        return duration, duration * record.cpu_threads

    def _activity_ceiling(self, record: AgreementCost, use: ActivityUse, now: float) -> Decimal:
        assert record.tariff is not None
        tariff, threads = record.tariff, record.cpu_threads
        max_duration, max_cpu = self._bounds(record, use, now)
        bounds = [tariff.cost(max_duration, max_cpu)]
        end = use.ended if use.ended is not None else record.ended
        end = now if end is None else min(end, now)
        if use.note_seen is not None:  # the last accepted note + the time since at full CPU
            since = max(0.0, end - use.note_seen) + SAMPLING_SLACK_SECONDS
            bounds.append(use.note_amount + tariff.per_second(threads) * to_decimal(since))
        if use.reported is not None and use.reported_seen is not None:
            # the last usage the provider reported (within our bounds) + the time since
            gap = max(0.0, end - use.reported_seen)
            since = gap + (FINAL_USAGE_SLACK_SECONDS if use.final else SAMPLING_SLACK_SECONDS)
            busy = gap if use.final else since
            duration = min(use.reported.get(USAGE_DURATION, 0.0) + since, max_duration)
            cpu = min(use.reported.get(USAGE_CPU, 0.0) + busy * threads, max_cpu)
            bounds.append(tariff.cost(duration, cpu))
        return min(bounds)

    def _ceiling(self, record: AgreementCost, activity_ids: Sequence[str], now: float) -> Decimal:
        return sum((self._activity_ceiling(record, record.activities[a], now)
                    for a in activity_ids), Decimal(0))

    def _check_note(self, record: AgreementCost, note: DebitNote,
                    now: float) -> Optional[tuple[str, str, bool, bool]]:
        """``(reason, message, overcharge, usage fits)`` when the note must be refused."""
        amount: Decimal = note.total_amount_due
        use = record.activities.get(note.activity_id)
        if use is None:
            return (UNSOLICITED_SERVICE, f"activity {note.activity_id} was not created by us "
                    "under this agreement", True, False)
        tariff = record.tariff
        if tariff is None:
            return INCORRECT_AMOUNT, NO_PRICE, False, False
        usage = tariff.counters(note.usage_counter_vector)
        if amount < use.note_amount:
            return (INCORRECT_AMOUNT, f"amount {amount} is below the {use.note_amount} already "
                    "accepted (debit notes are cumulative)", False, False)
        if usage is not None and use.note_usage is not None:
            fell = [k for k, v in usage.items() if v < use.note_usage.get(k, 0.0)]
            if fell:
                return (INCORRECT_AMOUNT, f"usage counters {fell} decreased (debit notes are "
                        "cumulative)", False, False)
        max_duration, max_cpu = self._bounds(record, use, now)
        if usage is None:
            allowed = tariff.cost(max_duration, max_cpu)
        else:
            duration, cpu = usage.get(USAGE_DURATION, 0.0), usage.get(USAGE_CPU, 0.0)
            if duration > max_duration or cpu > max_cpu:
                if self._late_note(record, use, duration, cpu, amount):
                    return (LATE, f"sampled after we destroyed the activity (duration "
                            f"{duration:.3f} s against the {max_duration:.3f} s we observed): "
                            "not accepted; its invoice is checked as usual", False, False)
                return (INCORRECT_AMOUNT, f"reported usage (duration {duration:.3f} s, cpu "
                        f"{cpu:.3f} s) exceeds what we observed (at most {max_duration:.3f} s, "
                        f"{max_cpu:.3f} CPU s)", True, False)
            allowed = tariff.cost(duration, cpu)
        ceiling = allowed * (1 + TOLERANCE) + AMOUNT_EPSILON
        if amount > ceiling:
            return (INCORRECT_AMOUNT, f"amount {amount} exceeds the agreed price of the usage "
                    f"({allowed})", True, usage is not None)
        return None

    def _late_note(self, record: AgreementCost, use: ActivityUse, duration: float, cpu: float,
                   amount: Decimal) -> bool:
        """Whether a note beyond our bounds is only late: the activity is destroyed, and its
        usage fits ``LATE_NOTE_SECONDS`` more of it, priced right (an honest provider sampled
        before the destroy reached it)."""
        if use.ended is None or record.tariff is None:
            return False
        wall = max(0.0, use.ended - use.requested) + LATE_NOTE_SECONDS
        late_duration = wall * (1 + float(TOLERANCE)) + TIME_SLACK_SECONDS
        if duration > late_duration or cpu > late_duration * record.cpu_threads:
            return False
        return amount <= record.tariff.cost(duration, cpu) * (1 + TOLERANCE) + AMOUNT_EPSILON

    def _check_invoice(self, record: AgreementCost, invoice: Invoice,
                       now: float) -> Optional[tuple[str, str]]:
        listed = list(dict.fromkeys(invoice.activity_ids))
        strangers = [a for a in listed if a not in record.activities]
        if strangers:
            return UNSOLICITED_SERVICE, f"activities {strangers} were not created by us"
        if record.tariff is None:
            return INCORRECT_AMOUNT, NO_PRICE
        allowed = self._ceiling(record, listed, now)
        if invoice.amount > allowed * (1 + TOLERANCE) + AMOUNT_EPSILON:
            return (INCORRECT_AMOUNT, f"amount {invoice.amount} exceeds the agreed price of "
                    f"the time used ({allowed})")
        return None

    def _flag(self, record: AgreementCost) -> None:
        # lock held; the event is emitted by the caller once the lock is released
        record.overcharged = True
        self._overcharged[record.provider_id] = record.provider_name

    # -- event loops -----------------------------------------------------------------------------
    def _debit_note_loop(self) -> None:
        """Poll note events once a second; fetch the notes announced when they are due."""
        sent = float("-inf")
        while True:
            with self._cond:
                while not self._stop.is_set() and not self._wanted(True, sent):
                    self._cond.wait(1.0)
                if self._stop.is_set():
                    return
            sent = self._clock()
            try:
                self._poll_note_events()
            except GolemError as exc:
                logger.warning("payment events: %s", exc)
                self._pause(1.0)  # back off; the daemon may be restarting
                continue
            with self._cond:
                due = bool(self._notes_due(sent, take=False))
            if due:
                self._fetch_pending_notes()
            self._pause(DEBIT_NOTE_POLL_SECONDS)  # the next second's notes come in one poll

    def _poll_note_events(self) -> None:
        """One poll of the note events (``timeout=0``): the notes announced become pending.
        The note thread polls once a second; the invoice thread once more before it checks
        a page of invoices, so every note sent before an invoice bounds it."""
        with self._note_poll_lock:
            sent = self._clock()
            events = self._api.debit_note_events(after=self._notes_since, timeout=0.0)
            announced = self._clock()
            with self._cond:
                for event in events:
                    self._notes_since = max(self._notes_since, event.event_date)
                    if event.event_type == "DebitNoteReceivedEvent" and \
                            event.debit_note_id not in self._decided:
                        self._pending_notes.setdefault(
                            event.debit_note_id, (event.event_date, self._notes_seen, announced))
                self._notes_seen = sent

    def _notes_due(self, now: float, take: bool = True
                   ) -> dict[str, tuple[datetime, float, float]]:
        """The pending notes to fetch now (lock held): all of them once one has waited
        ``NOTE_DELAY_SECONDS`` or an ended agreement is owed its invoice (which they bound);
        none, and forgotten, once no agreement is left unsettled. ``take``: remove them from
        the pending ones."""
        pending = self._pending_notes
        if not pending:
            return {}
        if all(r.settled for r in self._agreements.values()):
            pending.clear()  # every invoice is decided: the notes no longer matter
            return {}
        oldest = min(announced for _, _, announced in pending.values())
        owed = any(r.ended is not None and not r.settled for r in self._agreements.values())
        if now - oldest < NOTE_DELAY_SECONDS and not owed:
            return {}
        due = dict(pending)
        if take:
            pending.clear()
        return due

    def _fetch_notes(self, due: Mapping[str, tuple[datetime, float, float]]) -> None:
        """Fetch and handle the notes ``due``: one listing for several (from just before the
        earliest announced), by id those it lacks; each activity's in cumulative order."""
        notes = _fetch({i: stamp for i, (stamp, _, _) in due.items()},
                       self._api.get_debit_note, self._api.list_debit_notes,
                       lambda n: n.debit_note_id)
        notes.sort(key=lambda n: (n.activity_id, n.total_amount_due))
        for note in notes:
            try:
                _, seen, announced = due[note.debit_note_id]
                self._handle_note(note, seen, announced)
            except GolemError as exc:
                logger.error("could not process debit note %s: %s", note.debit_note_id, exc)

    def _invoice_loop(self) -> None:
        """Long-poll invoice events while an invoice is owed; handle the invoices announced
        (several in one listing, as the notes) and split the tasks' costs once per page."""
        since = self._since
        window = min(self._poll_timeout, INVOICE_POLL_SECONDS)
        seen = self._clock()  # a document a poll returns existed no earlier than this
        while True:
            with self._cond:
                while not self._stop.is_set() and not self._wanted(False, 0.0):
                    self._cond.wait(1.0)
                if self._stop.is_set():
                    return
            sent = self._clock()
            try:
                events = self._api.invoice_events(after=since, timeout=window)
            except GolemError as exc:
                logger.warning("payment events: %s", exc)
                self._pause(1.0)  # back off; the daemon may be restarting
                continue
            announced: dict[str, datetime] = {}
            for event in events:
                since = max(since, event.event_date)
                if event.event_type == "InvoiceReceivedEvent" and \
                        event.invoice_id not in self._decided:
                    announced.setdefault(event.invoice_id, event.event_date)
            if announced:
                try:
                    self._fetch_invoices(announced, seen)
                except GolemError as exc:
                    logger.error("could not fetch invoices: %s", exc)
            with self._cond:
                if self._costs_stale:  # the tasks' costs, once for this poll's invoices
                    self._share_costs()
                    self._cond.notify_all()
            seen = sent

    def _fetch_invoices(self, announced: Mapping[str, datetime], seen: float) -> None:
        """Fetch and handle the invoices ``announced`` (id -> event date): one listing for
        several, by id those it lacks (see :meth:`_fetch_notes`)."""
        try:  # the notes sent before these invoices bound them: read them first
            self._poll_note_events()
        except GolemError as exc:
            logger.warning("payment events: %s", exc)
        invoices = _fetch(announced, self._api.get_invoice, self._api.list_invoices,
                          lambda i: i.invoice_id)
        for invoice in invoices:
            try:
                self._handle_invoice(invoice, seen)
            except GolemError as exc:
                logger.error("could not process invoice %s: %s", invoice.invoice_id, exc)

    def _wanted(self, notes: bool, last_poll: float) -> bool:
        # lock held. Notes: an agreement is open, or ended since the last poll was sent (its
        # last notes may have come in between). Invoices: an ended agreement is owed one.
        if notes:
            return bool(self._pending_notes) or any(
                r.ended is None or r.ended >= last_poll for r in self._agreements.values())
        return any(r.ended is not None and not r.settled for r in self._agreements.values())

    def _pause(self, seconds: float) -> None:
        # a wait that only stopping cuts short (not every change of the ledger, which
        # notifies the condition: with many agreements the pause would hardly ever last)
        self._stop.wait(seconds)

    # -- documents ---------------------------------------------------------------------------------
    def _on_debit_note(self, note_id: str, seen: Optional[float] = None,
                       announced: Optional[float] = None) -> None:
        """Fetch one note and handle it (:meth:`_handle_note`)."""
        if note_id in self._decided:
            return
        self._handle_note(self._api.get_debit_note(note_id), seen, announced)

    def _handle_note(self, note: DebitNote, seen: Optional[float] = None,
                     announced: Optional[float] = None, fallback: bool = False) -> None:
        """Check ``note``; accept it while its agreement is open. After the agreement ended
        a note that passes is held (:attr:`AgreementCost.held`): the invoice supersedes it,
        and it is accepted (``fallback``) only if that invoice is rejected or never comes.

        ``seen``: the note existed no earlier than this instant (the poll before the one that
        announced it); ``announced``: it existed by then (that poll's return), the instant its
        usage is checked at, however much later it is fetched (default: now)."""
        note_id = note.debit_note_id
        amount: Decimal = note.total_amount_due
        with self._cond:
            self._version += 1  # what open agreements may owe may have changed
            record = self._agreements.get(note.agreement_id)
            if record is None or (note_id in self._decided and not fallback):
                return  # not one of ours (another session of the same identity)
            self._decided.add(note_id)
            now = self._clock()
            refusal = self._check_note(record, note, now if announced is None else announced)
            extra = Decimal(0)
            if refusal is None and record.ended is not None and not fallback:
                use = record.activities[note.activity_id]
                counters = record.tariff.counters(note.usage_counter_vector) \
                    if record.tariff is not None else None
                if counters is not None:  # the best usage we know, for the invoice
                    _report(use, counters, now if seen is None else max(seen, use.requested))
                if not record.settled:
                    record.held[note_id] = (note, now if seen is None else seen,
                                            now if announced is None else announced)
                elif record.invoice_rejected:
                    fallback = True  # the invoice was rejected already: pay the note now
                if not fallback:
                    return
            if refusal is None:
                use = record.activities[note.activity_id]
                new_noted = record.noted - use.note_amount + amount
                new_spent = max(new_noted, record.invoice) if record.invoice is not None \
                    else new_noted
                extra = max(Decimal(0), new_spent - record.spent)
                if self._spent() + self._reserved + extra > self.budget:
                    refusal = (BUDGET, f"accepting it would exceed the budget {self.budget}",
                               False, True)
            if refusal is None or refusal[3]:  # its counters are the best usage we know
                counters = record.tariff.counters(note.usage_counter_vector) \
                    if record.tariff is not None else None
                use = record.activities[note.activity_id]
                if counters is not None:
                    _report(use, counters, self._clock() if seen is None else
                            max(seen, use.requested))
            if refusal is not None:
                self._refused_note(record, note.activity_id, amount, refusal)
            else:
                self._reserved += extra
        if refusal is not None:
            reason, message, overcharge, _ = refusal
            logger.warning("debit note %s from %s (%s GLM) not accepted: %s", note_id,
                           record.provider_name, amount, message)
            self._emit(DebitNoteRejected(provider_id=record.provider_id,
                                         provider_name=record.provider_name,
                                         agreement_id=note.agreement_id, amount=amount,
                                         reason=f"{reason}: {message}"))
            if overcharge:
                self._emit_overcharge(record, "debit note", note_id, amount, message)
            return
        try:
            self._api.accept_debit_note(note_id, amount, self._allocation_id)
        except GolemError:
            with self._cond:
                self._version += 1  # what open agreements may owe may have changed
                self._reserved -= extra
            raise
        usage = record.tariff.counters(note.usage_counter_vector) if record.tariff else None
        with self._cond:
            self._version += 1  # what open agreements may owe may have changed
            self._reserved -= extra
            use = record.activities[note.activity_id]
            if amount >= use.note_amount:
                sampled = self._clock() if seen is None else max(seen, use.requested)
                use.note_amount, use.note_usage, use.note_seen = amount, usage, sampled
            self._cond.notify_all()
        self._emit(DebitNoteAccepted(provider_id=record.provider_id,
                                     provider_name=record.provider_name,
                                     agreement_id=note.agreement_id, amount=amount))

    def _refused_note(self, record: AgreementCost, activity_id: str, amount: Decimal,
                      refusal: tuple[str, str, bool, bool]) -> None:
        # lock held
        record.rejected_notes += 1
        use = record.activities.get(activity_id)
        if use is not None and refusal[0] not in (BUDGET, LATE):  # not asked beyond the price
            use.rejected = max(use.rejected, amount)
        if refusal[2]:
            self._flag(record)

    def _on_invoice(self, invoice_id: str, seen: Optional[float] = None) -> None:
        """Fetch one invoice and handle it (:meth:`_handle_invoice`)."""
        if invoice_id in self._decided:
            return
        self._handle_invoice(self._api.get_invoice(invoice_id), seen)

    def _fetch_pending_notes(self) -> None:
        """Fetch and handle every note announced and not fetched yet. Either thread calls it
        (the invoice thread before it checks invoices: the notes bound them), one at a time:
        once it returns, every note announced before it was called has been handled."""
        with self._fetch_lock:
            with self._cond:
                due = dict(self._pending_notes)
                self._pending_notes.clear()
            if not due:
                return
            try:
                self._fetch_notes(due)
            except GolemError as exc:  # they stay pending (the note thread tries again)
                logger.error("could not fetch debit notes: %s", exc)
                with self._cond:
                    for note_id, when in due.items():
                        if note_id not in self._decided:
                            self._pending_notes.setdefault(note_id, when)

    def _handle_invoice(self, invoice: Invoice, seen: Optional[float] = None) -> None:
        """Check ``invoice`` against its agreement's bounds; accept, reject or leave unpaid."""
        invoice_id = invoice.invoice_id
        if invoice_id in self._decided:
            return
        with self._cond:
            ours = invoice.agreement_id in self._agreements
        if ours:
            self._fetch_pending_notes()
        amount: Decimal = invoice.amount
        with self._cond:
            self._version += 1  # what open agreements may owe may have changed
            record = self._agreements.get(invoice.agreement_id)
            if record is None or invoice_id in self._decided:
                return
            if record.invoice is not None or record.unpaid > 0:
                return  # decided already (a rejected invoice may be followed by a new one)
            self._decided.add(invoice_id)
            refusal = self._check_invoice(record, invoice, self._clock())
            extra = max(Decimal(0), amount - record.spent)
            over_budget = refusal is None and \
                self._spent() + self._reserved + extra > self.budget
            if refusal is not None:
                record.invoice_rejected = True
                record.rejected_invoice = max(record.rejected_invoice, amount)
                if refusal[1] != NO_PRICE:
                    self._flag(record)
            elif over_budget:
                record.unpaid = max(extra, AMOUNT_EPSILON)
                self._costs_stale = True
            else:
                self._reserved += extra
            self._cond.notify_all()
        if refusal is not None:
            self._reject_invoice(record, invoice_id, amount, *refusal)
            self._accept_held(record)  # the notes that passed are what is paid
            return
        if over_budget:
            message = (f"accepting it would take the total over the budget {self.budget} "
                       f"({self.spent} accepted); left unpaid")
            logger.error("invoice %s from %s for %s GLM: %s", invoice_id, record.provider_name,
                         amount, message)
            self._emit(InvoiceUnpaid(provider_id=record.provider_id,
                                     provider_name=record.provider_name,
                                     agreement_id=record.agreement_id, amount=amount,
                                     reason=message))
            return
        try:
            self._api.accept_invoice(invoice_id, amount, self._allocation_id)
        except GolemError as exc:
            with self._cond:
                self._version += 1  # what open agreements may owe may have changed
                self._reserved -= extra
                record.unpaid = max(extra, AMOUNT_EPSILON)
                self._costs_stale = True
                self._cond.notify_all()
            self._emit(InvoiceUnpaid(provider_id=record.provider_id,
                                     provider_name=record.provider_name,
                                     agreement_id=record.agreement_id, amount=amount,
                                     reason=f"the daemon refused to accept it: {exc}"))
            raise
        with self._cond:
            self._version += 1  # what open agreements may owe may have changed
            self._reserved -= extra
            record.invoice = amount
            record.held.clear()  # superseded by the invoice
            self._costs_stale = True
            self._cond.notify_all()
        self._emit(InvoiceAccepted(provider_id=record.provider_id,
                                   provider_name=record.provider_name,
                                   agreement_id=invoice.agreement_id, amount=amount))

    def _reject_invoice(self, record: AgreementCost, invoice_id: str, amount: Decimal,
                        reason: str, message: str) -> None:
        logger.warning("invoice %s from %s rejected (%s): %s", invoice_id, record.provider_name,
                       reason, message)
        try:
            self._api.reject_invoice(invoice_id, reason=reason, message=message)
        except ApiError as exc:
            logger.error("reject invoice %s: %s", invoice_id, exc)
        self._emit(InvoiceRejected(provider_id=record.provider_id,
                                   provider_name=record.provider_name,
                                   agreement_id=record.agreement_id, amount=amount,
                                   reason=f"{reason}: {message}"))
        if message != NO_PRICE:
            self._emit_overcharge(record, "invoice", invoice_id, amount, message)

    def _emit_overcharge(self, record: AgreementCost, kind: str, doc_id: str, amount: Decimal,
                         message: str) -> None:
        self._emit(ProviderOvercharged(provider_id=record.provider_id,
                                       provider_name=record.provider_name,
                                       agreement_id=record.agreement_id, document=kind,
                                       document_id=doc_id, amount=amount, reason=message))

    # -- the cost ledger (lock held) ----------------------------------------------------------
    def _share_costs(self) -> None:
        """Set every task's cost: each agreement's spend split by running time there (an
        agreement without tasks over every task), largest remainders, summing exactly."""
        self._costs_stale = False
        costs: dict[int, Decimal] = {}
        tasks: dict[int, Task[Any]] = {}
        orphaned = Decimal(0)
        for record in self._agreements.values():
            amount = record.spent
            if not record.tasks:
                orphaned += amount
                continue
            weights: dict[int, float] = {}
            for share in record.tasks:
                tasks[id(share.task)] = share.task
                weights[id(share.task)] = weights.get(id(share.task), 0.0) + share.weight()
            signature = (amount, tuple(weights.items()))
            if signature != record.split_key:
                record.split_key, record.split_parts = signature, _split(amount, weights)
            for task_key, part in record.split_parts.items():
                costs[task_key] = costs.get(task_key, Decimal(0)) + part
        if orphaned and tasks:
            overall = {key: max(0.0, task.running_time) for key, task in tasks.items()}
            for key, part in _split(orphaned, overall).items():
                costs[key] = costs.get(key, Decimal(0)) + part
        for key, task in tasks.items():
            task.cost = costs.get(key, Decimal(0))


def _report(use: ActivityUse, counters: dict[str, float], seen: float) -> None:
    """Take a note's usage as the last one the provider reported, unless what we have is newer:
    the usage read just before the destroy, or a note with more duration (a note fetched
    late must not replace a later reading: the invoice is bounded from the latest)."""
    if use.final:
        return
    if use.reported is not None and \
            counters.get(USAGE_DURATION, 0.0) < use.reported.get(USAGE_DURATION, 0.0):
        return
    use.reported, use.reported_seen = counters, seen


D = TypeVar("D")


def _fetch(announced: Mapping[str, datetime], get: Callable[[str], D],
           listing: Callable[..., list[D]], id_of: Callable[[D], str]) -> list[D]:
    """The documents ``announced`` (id -> event date): one by its id, several in one listing
    from ``LISTING_MARGIN`` before the earliest event (documents are listed by their own
    timestamp, on the provider's clock), by id those the listing lacks."""
    if len(announced) == 1:
        return [get(next(iter(announced)))]
    earliest = min(announced.values()) - LISTING_MARGIN
    docs = [d for d in listing(after=earliest) if id_of(d) in announced]
    listed = {id_of(d) for d in docs}
    return docs + [get(i) for i in announced if i not in listed]


def _split(amount: Decimal, weights: Mapping[int, float]) -> dict[int, Decimal]:
    """``amount`` in proportion to ``weights`` (equal shares if they are all zero), rounded to
    the amount's smallest unit (at least 1e-18) by largest remainder: the parts sum exactly."""
    if not weights:
        return {}
    exponent = amount.as_tuple().exponent
    places = min(-18, exponent if isinstance(exponent, int) else -18)
    unit = Decimal(1).scaleb(places)
    units = int((amount / unit).to_integral_value(rounding=ROUND_FLOOR))
    raw = {k: to_decimal(w) for k, w in weights.items()}
    total = sum(raw.values(), Decimal(0))
    if total <= 0:
        raw = {k: Decimal(1) for k in weights}
        total = Decimal(len(raw))
    base: dict[int, int] = {}
    remainders: list[tuple[Decimal, int]] = []
    for key, weight in raw.items():
        exact = Decimal(units) * weight / total
        whole = int(exact.to_integral_value(rounding=ROUND_FLOOR))
        base[key] = whole
        remainders.append((exact - whole, key))
    left = units - sum(base.values())
    for _, key in sorted(remainders, key=lambda r: (-r[0], r[1]))[:left]:
        base[key] += 1
    return {key: unit * count for key, count in base.items()}
