"""Property-based tests of the payment ledger: random sequences of honest and dishonest debit
notes and invoices, fed to :class:`Payments` on a simulated clock."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Optional

from hypothesis import given, settings
from hypothesis import strategies as st

from golemsync.market import Hire, LinearPricing
from golemsync.payments import AMOUNT_EPSILON, TIME_SLACK_SECONDS, TOLERANCE, Payments
from golemsync.tasks import Task

VECTOR = ["golem.usage.cpu_sec", "golem.usage.duration_sec"]
PLACES = Decimal("1e-18")
NOTE_KINDS = ("honest", "honest", "honest", "overcharged", "inflated", "decreasing", "phantom")
INVOICE_KINDS = ("honest", "honest", "overcharged", "inflated", "phantom")


@dataclass
class Note:
    agreement_id: str
    activity_id: str
    total_amount_due: Decimal
    usage_counter_vector: Optional[list[float]]
    debit_note_id: str = ""


@dataclass
class Invoice:
    agreement_id: str
    amount: Decimal
    activity_ids: list[str] = field(default_factory=list)
    invoice_id: str = ""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Api:
    """Records acceptances with what the test knew when each document was sent."""

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        self.accepted: dict[str, int] = {}
        self.rejected: list[str] = []

    def get_debit_note(self, doc_id: str) -> Any:
        note = self.docs[doc_id]
        note.debit_note_id = doc_id  # as the daemon's document carries its id
        return note

    def get_invoice(self, doc_id: str) -> Any:
        invoice = self.docs[doc_id]
        invoice.invoice_id = doc_id  # as the daemon's document carries its id
        return invoice

    def accept_debit_note(self, doc_id: str, amount: Decimal, allocation: str) -> None:
        assert amount == (self.docs[doc_id].total_amount_due
                          if isinstance(self.docs[doc_id], Note) else self.docs[doc_id].amount)
        self.accepted[doc_id] = self.accepted.get(doc_id, 0) + 1

    accept_invoice = accept_debit_note

    def reject_invoice(self, doc_id: str, *, reason: str, message: Optional[str] = None) -> None:
        self.rejected.append(doc_id)


@dataclass
class Provider:
    threads: int
    coeffs: tuple[float, float, float]  # cpu, duration, start
    activities: int
    cpu_share: float
    notes: list[tuple[float, str, float]]  # (seconds later, kind, factor)
    invoice: tuple[str, float]
    late: bool = False  # its notes are fetched only once the agreement ended (then held)

    def cost(self, cpu: float, duration: float) -> Decimal:
        total = Decimal(repr(self.coeffs[2])) + Decimal(repr(self.coeffs[0])) * \
            Decimal(repr(cpu)) + Decimal(repr(self.coeffs[1])) * Decimal(repr(duration))
        return total.quantize(PLACES, rounding=ROUND_HALF_UP)


FACTORS = st.sampled_from([1.5, 3.0, 9.2, 50.0])
PRICES = st.sampled_from([0.0, 0.00002, 0.0001, 0.001, 0.01])

providers = st.builds(
    Provider,
    threads=st.integers(1, 8),
    coeffs=st.tuples(PRICES, PRICES, st.sampled_from([0.0, 0.0005, 0.1])),
    activities=st.integers(1, 2),
    cpu_share=st.floats(0.0, 1.0),
    notes=st.lists(st.tuples(st.floats(0.05, 30.0), st.sampled_from(NOTE_KINDS), FACTORS),
                   max_size=6),
    invoice=st.tuples(st.sampled_from(INVOICE_KINDS), FACTORS),
    late=st.booleans(),
)
budgets = st.one_of(st.just(Decimal(10) ** 6),
                    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("2"), places=6))


def bound(provider: Provider, wall: float, cpu: float, duration: float) -> Decimal:
    """price × min(reported usage, observed usage) × (1 + tolerance), per the docstring."""
    max_duration = wall * (1 + float(TOLERANCE)) + TIME_SLACK_SECONDS
    used = provider.cost(min(cpu, max_duration * provider.threads), min(duration, max_duration))
    return used * (1 + TOLERANCE) + AMOUNT_EPSILON


def assert_committed_bound_holds(payments: Payments, clock: Clock) -> None:
    """The budget check's cached bound is never below the exact committed total."""
    with payments._cond:
        bound, _ = payments._committed_bound(clock.now)
        assert bound >= payments._committed(clock.now)


@settings(max_examples=300, deadline=None)
@given(st.lists(providers, min_size=1, max_size=3), budgets)
def test_ledger_pays_only_what_fits_and_every_honest_document_once(
        specs: list[Provider], budget: Decimal) -> None:
    api, clock = Api(), Clock()
    payments = Payments(api, "alloc", budget, stop=threading.Event(), clock=clock)
    honest: list[str] = []  # documents that must be accepted (when the budget allows)
    limits: dict[str, Decimal] = {}  # document id -> the most it may be accepted for
    kinds: dict[str, str] = {}  # document id -> kind
    made: dict[str, float] = {}  # note id -> the instant it was made (and announced)
    for index, spec in enumerate(specs):
        agreement = f"ag{index}"
        props = {"golem.com.usage.vector": VECTOR,
                 "golem.com.pricing.model.linear.coeffs": list(spec.coeffs)}
        pricing = LinearPricing(*(Decimal(repr(c)) for c in (spec.coeffs[2], spec.coeffs[1],
                                                            spec.coeffs[0])))
        payments.track(Hire(agreement, f"0x{index}", f"p{index}", pricing, spec.threads, props))
        assert_committed_bound_holds(payments, clock)
        started = {f"{agreement}-a{i}": clock.now for i in range(spec.activities)}
        for activity in started:
            payments.activity_started(agreement, activity, clock.now)
        clock.now += 0.25
        assert_committed_bound_holds(payments, clock)
        payments.add_task(agreement, Task(index))

        def usage(activity: str) -> tuple[float, float, float]:
            wall = clock.now - started[activity]  # noqa: B023 - used within the iteration
            duration = round(wall, 6)
            return wall, round(spec.cpu_share * spec.threads * wall, 6), duration  # noqa: B023

        for number, (later, kind, factor) in enumerate(spec.notes):
            assert_committed_bound_holds(payments, clock)  # caches the exact total ...
            clock.now += later
            assert_committed_bound_holds(payments, clock)  # ... which bounds it later
            activity = list(started)[number % len(started)]
            wall, cpu, duration = usage(activity)
            reported = [cpu, duration]
            amount = spec.cost(cpu, duration)
            target = activity
            if kind == "overcharged":
                amount = (amount * Decimal(repr(factor))).quantize(PLACES)
            elif kind == "inflated":
                reported = [round(cpu * factor, 6), round(duration * factor, 6)]
                amount = spec.cost(*reported)
            elif kind == "decreasing":
                reported = [round(cpu / factor, 6), round(duration / factor, 6)]
                amount = spec.cost(*reported)
            elif kind == "phantom":
                target = f"{agreement}-ghost"
            doc_id = f"{agreement}-dn{number}"
            api.docs[doc_id] = Note(agreement, target, amount, reported)
            limits[doc_id] = bound(spec, wall, reported[0], reported[1])
            if kind == "honest":
                honest.append(doc_id)
            kinds[doc_id] = kind
            made[doc_id] = clock.now  # when the poll announced it
            if not spec.late:
                payments._on_debit_note(doc_id)
                payments._on_debit_note(doc_id)  # a repeated event changes nothing
        assert_committed_bound_holds(payments, clock)
        clock.now += 0.5
        assert_committed_bound_holds(payments, clock)
        for activity in started:
            payments.activity_ended(agreement, activity)
        payments.ended(agreement)
        assert_committed_bound_holds(payments, clock)
        if spec.late:  # fetched after the end: checked and held for the invoice
            for number in range(len(spec.notes)):
                doc_id = f"{agreement}-dn{number}"
                payments._on_debit_note(doc_id, made[doc_id], made[doc_id])
                payments._on_debit_note(doc_id, made[doc_id], made[doc_id])
            assert not [d for d in api.accepted if d.startswith(f"{agreement}-dn")]
        finals = {a: usage(a) for a in started}
        honest_amount = sum((spec.cost(c, d) for _, c, d in finals.values()), Decimal(0))
        # an invoice reports no usage: it is bounded by the observed time (with its slack)
        observed = sum((bound(spec, w, float("inf"), float("inf")) for w, _, _ in
                        finals.values()), Decimal(0))
        kind, factor = spec.invoice
        amount, ids = honest_amount, list(started)
        if kind == "overcharged":
            amount = (amount * Decimal(repr(factor))).quantize(PLACES)
        elif kind == "inflated":
            amount = sum((spec.cost(c * factor, d * factor) for _, c, d in finals.values()),
                         Decimal(0))
        elif kind == "phantom":
            ids.append(f"{agreement}-ghost")
        invoices = [(f"{agreement}-inv", amount, ids, kind)]
        if kind != "honest":  # the provider then sends a correct one
            invoices.append((f"{agreement}-inv2", honest_amount, list(started), "honest"))
        for doc_id, amount, ids, kind in invoices:
            api.docs[doc_id] = Invoice(agreement, amount, ids)
            limits[doc_id] = observed
            if kind == "honest":
                honest.append(doc_id)
            payments._on_invoice(doc_id)
            payments._on_invoice(doc_id)

    # nothing accepted exceeds price × min(reported, observed) × (1 + tolerance)
    for doc_id in api.accepted:
        assert api.accepted[doc_id] == 1
        doc = api.docs[doc_id]
        amount = doc.total_amount_due if isinstance(doc, Note) else doc.amount
        assert amount <= limits[doc_id], doc_id
        if isinstance(doc, Invoice):
            assert all(not a.endswith("ghost") for a in doc.activity_ids)
        else:
            assert not doc.activity_id.endswith("ghost")
    # the budget holds, whatever the daemon counts as accepted
    assert payments.spent <= budget
    assert payments.wait_settled(0) == []
    tasks_cost = sum((r.tasks[0].task.cost or Decimal(0) for r in payments.agreements()),
                     Decimal(0))
    assert tasks_cost == payments.spent
    if budget < 10 ** 6:
        return
    # with money enough, every honest document is accepted exactly once, except a note below
    # one accepted before (notes are cumulative), an invoice after an accepted one, and an
    # invoice beyond an accepted under-reporting note (plus the time since)
    # (a late agreement's notes: only when its first invoice was not accepted, the invoice
    # superseding them otherwise)
    accepted_best: dict[str, tuple[Decimal, list[float]]] = {}
    last_kind: dict[str, str] = {}  # activity -> kind of its last accepted note
    invoiced: set[str] = set()
    superseded = {f"ag{i}" for i, spec in enumerate(specs)
                  if spec.late and f"ag{i}-inv" in api.accepted}
    for doc_id in list(api.docs):
        doc = api.docs[doc_id]
        if isinstance(doc, Note):
            if doc.agreement_id in superseded:
                assert doc_id not in api.accepted, doc_id
                continue
            best = accepted_best.get(doc.activity_id)
            below = best is not None and (
                doc.total_amount_due < best[0] or any(
                    u < b for u, b in zip(doc.usage_counter_vector or [], best[1])))
            if doc_id in honest and not below:
                assert api.accepted.get(doc_id) == 1, doc_id
            if doc_id in api.accepted:
                accepted_best[doc.activity_id] = (doc.total_amount_due,
                                                  doc.usage_counter_vector or [])
                last_kind[doc.activity_id] = kinds[doc_id]
        else:
            under = any(last_kind.get(a) == "decreasing" for a in doc.activity_ids)
            if doc_id in honest and doc.agreement_id not in invoiced and not under:
                assert api.accepted.get(doc_id) == 1, doc_id
            if doc_id in api.accepted:
                invoiced.add(doc.agreement_id)
