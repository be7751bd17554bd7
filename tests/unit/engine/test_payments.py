from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Optional

import pytest

from golemsync.events import (
    DebitNoteRejected,
    Event,
    InvoiceAccepted,
    InvoiceUnpaid,
    ProviderOvercharged,
)
from golemsync.market import Hire, LinearPricing, Offer
from golemsync.payments import (
    INVOICE_POLL_SECONDS,
    NOTE_DELAY_SECONDS,
    SAMPLING_SLACK_SECONDS,
    TIME_SLACK_SECONDS,
    Payments,
    _split,
)
from golemsync.summary import Summary
from golemsync.tasks import Task

PRICE = LinearPricing(Decimal("0.1"), Decimal("0.001"), Decimal("0.002"))
VECTOR = ["golem.usage.cpu_sec", "golem.usage.duration_sec"]
PROPS = {"golem.com.usage.vector": VECTOR,
         "golem.com.pricing.model.linear.coeffs": [0.002, 0.001, 0.1]}


def honest(duration: float, cpu: float) -> Decimal:
    return PRICE.start + PRICE.per_second * Decimal(str(duration)) + \
        PRICE.per_cpu_second * Decimal(str(cpu))


@dataclass
class Note:
    agreement_id: str
    activity_id: str
    total_amount_due: Decimal
    usage_counter_vector: Optional[list[float]] = None
    debit_note_id: str = ""


@dataclass
class Invoice:
    agreement_id: str
    amount: Decimal
    activity_ids: list[str] = field(default_factory=list)
    invoice_id: str = ""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakePayments:
    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        self.accepted: list[tuple[str, Decimal, str]] = []
        self.rejected: list[tuple[str, Optional[str]]] = []

    def get_debit_note(self, doc_id: str) -> Any:
        note = self.docs[doc_id]
        note.debit_note_id = doc_id  # as the daemon's document carries its id
        return note

    def get_invoice(self, doc_id: str) -> Any:
        invoice = self.docs[doc_id]
        invoice.invoice_id = doc_id  # as the daemon's document carries its id
        return invoice

    def accept_debit_note(self, doc_id: str, amount: Decimal, allocation: str) -> None:
        self.accepted.append((doc_id, amount, allocation))

    accept_invoice = accept_debit_note

    def reject_invoice(self, doc_id: str, *, reason: str, message: Optional[str] = None) -> None:
        self.rejected.append((doc_id, reason))


def make(budget: str = "1", threads: int = 1) -> tuple[Payments, FakePayments, Clock,
                                                        list[Event]]:
    api, clock, events = FakePayments(), Clock(), []
    payments = Payments(api, "alloc", Decimal(budget), stop=threading.Event(), clock=clock,
                        emit=events.append)
    payments.track(Hire("ag", "0xp", "alice", PRICE, threads, PROPS))
    payments.activity_started("ag", "act", clock.now)
    return payments, api, clock, events


def test_debit_note_within_the_price_of_its_usage_is_accepted_and_booked() -> None:
    payments, api, clock, _ = make()
    clock.now += 10
    api.docs["dn1"] = Note("ag", "act", honest(10, 5), [5.0, 10.0])
    payments._on_debit_note("dn1")
    assert api.accepted == [("dn1", honest(10, 5), "alloc")]
    assert payments.spent == honest(10, 5)


def test_debit_note_above_the_price_of_its_usage_is_refused_and_flagged() -> None:
    payments, api, clock, events = make()
    clock.now += 10
    api.docs["dn1"] = Note("ag", "act", honest(10, 5) * 3, [5.0, 10.0])
    payments._on_debit_note("dn1")
    assert api.accepted == [] and payments.spent == 0
    assert payments.rejected == honest(10, 5) * 3
    assert payments.overcharged_providers() == {"0xp": "alice"}
    assert [type(e) for e in events] == [DebitNoteRejected, ProviderOvercharged]


@pytest.mark.parametrize("usage", [[1.0, 10 * 1.01 + TIME_SLACK_SECONDS + 0.1],  # duration
                                   [25.0, 10.0]])  # CPU beyond 10 s × 2 threads (+ slack)
def test_usage_beyond_what_we_observed_is_refused(usage: list[float]) -> None:
    payments, api, clock, _ = make(threads=2)
    clock.now += 10
    api.docs["dn1"] = Note("ag", "act", honest(usage[1], usage[0]), usage)
    payments._on_debit_note("dn1")
    assert api.accepted == [] and "0xp" in payments.overcharged_providers()


def test_note_for_an_activity_we_did_not_create_is_refused() -> None:
    payments, api, clock, _ = make()
    clock.now += 10
    api.docs["dn1"] = Note("ag", "other", honest(1, 0), [0.0, 1.0])
    payments._on_debit_note("dn1")
    assert api.accepted == [] and "0xp" in payments.overcharged_providers()


def test_notes_must_be_cumulative() -> None:
    payments, api, clock, _ = make()
    clock.now += 10
    api.docs["dn1"] = Note("ag", "act", honest(10, 4), [4.0, 10.0])
    api.docs["dn2"] = Note("ag", "act", honest(10, 4) - Decimal("0.001"), [4.0, 9.0])
    api.docs["dn3"] = Note("ag", "act", honest(10, 4), [3.0, 10.0])  # CPU went down
    for doc in ("dn1", "dn2", "dn3"):
        payments._on_debit_note(doc)
    assert [a[0] for a in api.accepted] == ["dn1"]
    assert payments.overcharged_providers() == {}  # refused, but not an overcharge
    assert payments.agreements()[0].rejected_notes == 2


def test_a_document_is_decided_once() -> None:
    payments, api, clock, _ = make()
    clock.now += 10
    api.docs["dn1"] = Note("ag", "act", honest(10, 4), [4.0, 10.0])
    payments._on_debit_note("dn1")
    payments._on_debit_note("dn1")
    assert len(api.accepted) == 1


def test_documents_of_unknown_agreements_are_ignored() -> None:
    payments, api, _, _ = make()
    api.docs["dn1"] = Note("someone-else", "act", Decimal("0.1"))
    payments._on_debit_note("dn1")
    assert api.accepted == [] and payments.rejected == 0


def test_invoice_accepted_settles_and_shares_cost_by_running_time() -> None:
    payments, api, clock, events = make()
    first, second = Task("a"), Task("b")
    payments.add_task("ag", first)
    payments.add_task("ag", second)
    first.running_time, second.running_time = 3.0, 1.0
    clock.now += 5
    payments.activity_ended("ag", "act")
    payments.ended("ag")
    api.docs["inv"] = Invoice("ag", Decimal("0.1040"), ["act"])
    payments._on_invoice("inv")
    assert api.accepted == [("inv", Decimal("0.1040"), "alloc")]
    assert payments.wait_settled(0) == []
    assert first.cost == Decimal("0.078") and second.cost == Decimal("0.026")
    assert isinstance(events[-1], InvoiceAccepted)


def test_overpriced_invoice_is_rejected() -> None:
    payments, api, clock, _ = make()
    clock.now += 5
    payments.ended("ag")
    api.docs["inv"] = Invoice("ag", Decimal("5"), ["act"])
    payments._on_invoice("inv")
    assert api.accepted == [] and api.rejected == [("inv", "INCORRECT_AMOUNT")]
    assert payments.wait_settled(0) == []
    assert payments.rejected == Decimal("5")


def test_invoice_listing_activities_we_never_created_is_rejected() -> None:
    payments, api, clock, _ = make()
    clock.now += 5
    payments.ended("ag")
    api.docs["inv"] = Invoice("ag", honest(5, 0), ["act", "phantom"])
    payments._on_invoice("inv")
    assert api.rejected == [("inv", "UNSOLICITED_SERVICE")]
    assert "0xp" in payments.overcharged_providers()


@pytest.mark.parametrize(("age", "cpu", "accepted"), [
    (0.0, 7.0, False),    # a fresh reading: no CPU after it, 1 s of duration
    (2.0, 7.0, True),     # 2 s old by its timestamp: 2 s more at full CPU (2 threads) ...
    (2.0, 10.5, False),   # ... and no more
    (100.0, 15.0, True),  # an age counts for at most MAX_USAGE_AGE_SECONDS ...
    (100.0, 17.0, False),  # ... however old the timestamp says it is (the wall allows 21 s)
])
def test_the_final_usage_reading_counts_its_age(age: float, cpu: float, accepted: bool) -> None:
    """A node answers the usage read from the exe-unit's last report: a reading its timestamp
    proves stale explains what the provider counted since, and no more."""
    payments, api, clock, _ = make(budget="10", threads=2)
    clock.now += 10
    payments.activity_ended("ag", "act", [5.0, 8.0], usage_age=age)  # cpu 5 s, duration 8 s
    payments.ended("ag")
    api.docs["inv"] = Invoice("ag", honest(10, cpu), ["act"])
    payments._on_invoice("inv")
    assert (api.accepted != [], api.rejected != []) == (accepted, not accepted)


def test_invoice_is_bounded_by_the_last_note_plus_the_time_since() -> None:
    payments, api, clock, _ = make(budget="10", threads=4)
    clock.now += 100
    api.docs["dn"] = Note("ag", "act", honest(100, 1), [1.0, 100.0])
    payments._on_debit_note("dn")
    clock.now += 1
    payments.activity_ended("ag", "act")
    payments.ended("ag")
    # at most 1 s + slack more at full CPU (4 threads), far less than 101 s at full CPU
    limit = honest(100, 1) + (PRICE.per_second + 4 * PRICE.per_cpu_second) * \
        Decimal(str(1 + SAMPLING_SLACK_SECONDS))
    api.docs["inv"] = Invoice("ag", limit * Decimal("1.02"), ["act"])
    payments._on_invoice("inv")
    assert api.rejected == [("inv", "INCORRECT_AMOUNT")]
    api.docs["inv2"] = Invoice("ag", limit, ["act"])  # a corrected invoice is considered
    payments._on_invoice("inv2")
    assert [a[0] for a in api.accepted] == ["dn", "inv2"] and payments.spent == limit


def test_no_price_means_no_payment() -> None:
    api, clock = FakePayments(), Clock()
    payments = Payments(api, "alloc", Decimal(1), stop=threading.Event(), clock=clock)
    payments.track(Hire("ag", "0xp", "alice", None, 1, {}))
    payments.activity_started("ag", "act")
    clock.now += 10
    api.docs["dn"] = Note("ag", "act", Decimal("0.0001"), [0.0, 1.0])
    payments._on_debit_note("dn")
    assert api.accepted == []


def test_budget_is_never_exceeded_by_debit_notes() -> None:
    payments, api, clock, events = make(budget="0.15")
    payments.track(Hire("ag2", "0xq", "bob", PRICE, 1, PROPS))
    payments.activity_started("ag2", "a2", clock.now)
    clock.now += 10
    api.docs["dn1"] = Note("ag", "act", Decimal("0.1"), [0.0, 0.0])
    api.docs["dn2"] = Note("ag2", "a2", Decimal("0.1"), [0.0, 0.0])
    payments._on_debit_note("dn1")
    payments._on_debit_note("dn2")
    assert [a[0] for a in api.accepted] == ["dn1"]
    assert payments.spent <= Decimal("0.15") and payments.overcharged_providers() == {}
    assert payments.rejected == 0  # not the provider's fault
    summary = Summary()
    for event in events:
        summary(event)
    assert summary.rejected == 0 and summary.total_cost == Decimal("0.1")


def test_invoice_over_the_budget_is_left_unpaid_never_sent() -> None:
    payments, api, clock, events = make(budget="0.105")
    summary = Summary()
    clock.now += 10
    payments.activity_ended("ag", "act")
    payments.ended("ag")
    api.docs["inv"] = Invoice("ag", honest(10, 0), ["act"])  # fits the price, not the budget
    payments._on_invoice("inv")
    assert api.accepted == [] and api.rejected == []
    assert payments.unpaid == honest(10, 0) and payments.wait_settled(0) == []
    for event in events:
        summary(event)
    assert isinstance(events[-1], InvoiceUnpaid) and summary.unpaid == honest(10, 0)
    assert "unpaid" in str(summary)


def test_may_continue_until_the_budget_left_cannot_pay_the_next_task() -> None:
    payments, api, clock, _ = make(budget="0.18", threads=2)
    task = Task("t")
    payments.add_task("ag", task)
    task.running_time = 5.0  # the next task is expected to take twice the mean: 10 s
    # committed: start 0.1 + 0.5 s of slack at full CPU (0.0025); 10 s more cost 0.0505
    assert payments.may_continue("ag")
    clock.now += 10
    api.docs["dn"] = Note("ag", "act", honest(10, 10), [10.0, 10.0])  # 0.13
    payments._on_debit_note("dn")
    # committed: the usage reported + 2 s of sampling slack at full CPU (within the observed
    # 10.6 s): 0.1 + 10.6 × 0.001 + 14 × 0.002 = 0.1386; 0.1386 + 0.0505 > 0.18
    assert not payments.may_continue("ag")
    assert payments.may_continue("ag", expected_seconds=1.0)
    payments.ended("ag")
    assert not payments.may_continue("ag", expected_seconds=1.0)
    assert not payments.may_continue("unknown")


def test_can_afford_counts_what_open_agreements_may_still_ask() -> None:
    payments, _, clock, _ = make(budget="0.3")
    offer = Offer("p", "0xq", "bob", PROPS, PRICE)
    assert payments.can_afford(offer, expected_seconds=10)
    clock.now += 100  # the running activity may now owe 0.1 + 100 s at full CPU
    assert not payments.can_afford(offer, expected_seconds=10)


def test_unsettled_agreements_are_reported_after_the_wait() -> None:
    payments, _, _, _ = make()
    payments.ended("ag")
    assert [r.agreement_id for r in payments.wait_settled(0.01)] == ["ag"]


def test_wait_settled_ends_when_the_last_invoice_is_decided() -> None:
    payments, api, clock, _ = make()
    clock.now += 5
    payments.ended("ag")
    api.docs["inv"] = Invoice("ag", honest(5, 0), ["act"])
    decided = threading.Thread(target=payments._on_invoice, args=("inv",))
    started = time.monotonic()
    timer = threading.Timer(0.05, decided.start)
    timer.start()
    assert payments.wait_settled(10) == []
    assert time.monotonic() - started < 2
    timer.join()
    decided.join()


class PollingApi(FakePayments):
    """Event streams that block for the whole server-side window, like the daemon."""

    def __init__(self) -> None:
        super().__init__()
        self.windows: dict[str, list[float]] = {"notes": [], "invoices": []}
        self.release = threading.Event()

    def debit_note_events(self, *, after: Any, timeout: float) -> list[Any]:
        self.windows["notes"].append(timeout)
        self.release.wait(timeout)
        return []

    def invoice_events(self, *, after: Any, timeout: float) -> list[Any]:
        self.windows["invoices"].append(timeout)
        self.release.wait(timeout)
        return []


def test_threads_poll_only_while_needed_and_stop_at_once() -> None:
    api = PollingApi()
    payments = Payments(api, "alloc", Decimal(1), stop=threading.Event(), poll_timeout=3.0)
    payments.start()
    try:
        payments.track(Hire("ag", "0xp", "alice", PRICE, 1, PROPS))
        deadline = time.monotonic() + 5
        while not api.windows["notes"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert api.windows["invoices"] == []  # nothing owed: no invoice poll at all
        payments.ended("ag")  # now an invoice is owed
        while not api.windows["invoices"] and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        started = time.monotonic()
        payments.stop()
        payments.join(5)
        stopped_in = time.monotonic() - started
    assert set(api.windows["notes"]) == {0.0}
    assert api.windows["invoices"] and max(api.windows["invoices"]) <= INVOICE_POLL_SECONDS
    assert stopped_in < INVOICE_POLL_SECONDS + 0.3


def test_split_is_exact_by_largest_remainder() -> None:
    parts = _split(Decimal("0.0016"), {1: 1.0, 2: 1.0, 3: 1.0})
    assert sum(parts.values()) == Decimal("0.0016")
    assert sorted(parts.values()) == [Decimal("0.000533333333333333")] * 2 + [
        Decimal("0.000533333333333334")]
    assert _split(Decimal("1"), {1: 0.0, 2: 0.0}) == {1: Decimal("0.5"), 2: Decimal("0.5")}


def test_tasks_of_an_agreement_without_tasks_share_its_cost_too() -> None:
    payments, api, clock, _ = make()
    payments.track(Hire("ag2", "0xq", "bob", PRICE, 1, PROPS))
    payments.activity_started("ag2", "a2", clock.now)
    task = Task("t")
    payments.add_task("ag", task)
    task.running_time = 2.0
    clock.now += 5
    for agreement, activity, amount in (("ag", "act", "0.101"), ("ag2", "a2", "0.102")):
        payments.activity_ended(agreement, activity)
        payments.ended(agreement)
        api.docs[agreement] = Invoice(agreement, Decimal(amount), [activity])
        payments._on_invoice(agreement)
    assert payments.wait_settled(0) == []
    assert task.cost == payments.spent == Decimal("0.203")


@pytest.mark.parametrize(("duration", "flagged"), [(12.0, False), (20.0, True)])
def test_a_note_sampled_after_the_destroy_is_not_held_against_the_provider(
        duration: float, flagged: bool) -> None:
    """The activity lived 10 s; a note for 12 s came after its destroy (the provider had not
    heard of it yet): refused, not counted as rejected, nobody flagged. 20 s is an overcharge."""
    payments, api, clock, events = make(budget="10")
    summary = Summary()
    clock.now += 10
    payments.activity_ended("ag", "act")
    api.docs["dn"] = Note("ag", "act", honest(duration, 1.0), [1.0, duration])
    payments._emit = lambda event: (events.append(event), summary(event))  # type: ignore[assignment]
    payments._on_debit_note("dn")
    assert api.accepted == [] and payments.spent == 0
    assert [type(e) for e in events][:1] == [DebitNoteRejected]
    assert (payments.overcharged_providers() != {}) == flagged
    assert (summary.rejected > 0) == flagged
    assert (payments.rejected > 0) == flagged


@dataclass
class _InvoiceEvent:
    invoice_id: str
    event_date: Any
    event_type: str = "InvoiceReceivedEvent"


class OnePageOfInvoices(FakePayments):
    """Invoice events: the first poll returns one page of every invoice, later polls block."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__()
        self.pages = [[_InvoiceEvent(i, datetime.now(timezone.utc)) for i in ids]]
        self.release = threading.Event()
        self.fetched: list[str] = []

    def invoice_events(self, *, after: Any, timeout: float) -> list[Any]:
        if self.pages:
            return self.pages.pop()
        self.release.wait(timeout)
        return []

    def get_invoice(self, doc_id: str) -> Any:
        self.fetched.append(doc_id)
        return super().get_invoice(doc_id)

    def list_invoices(self, *, after: Any = None) -> list[Any]:
        self.fetched.append("list")
        for doc_id, doc in self.docs.items():
            doc.invoice_id = doc_id
        return list(self.docs.values())

    def debit_note_events(self, *, after: Any, timeout: float) -> list[Any]:
        self.release.wait(timeout)
        return []


def test_a_page_of_invoices_is_fetched_in_one_listing_and_costs_split_once() -> None:
    api = OnePageOfInvoices(["inv1", "inv2"])
    both = threading.Event()
    accepted: list[Event] = []

    def emit(event: Event) -> None:
        accepted.append(event)
        if len(accepted) == 2:
            both.set()

    payments = Payments(api, "alloc", Decimal(1), stop=threading.Event(), emit=emit)
    splits: list[int] = []
    split = payments._share_costs

    def counting_split() -> None:
        splits.append(1)
        split()

    payments._share_costs = counting_split  # type: ignore[method-assign]
    tasks = [Task("a"), Task("b")]
    for n, task in enumerate(tasks, start=1):
        payments.track(Hire(f"ag{n}", f"0xp{n}", f"p{n}", PRICE, 1, PROPS))
        payments.activity_started(f"ag{n}", f"act{n}")
        payments.add_task(f"ag{n}", task)
        task.running_time = 1.0
        payments.activity_ended(f"ag{n}", f"act{n}")
        payments.ended(f"ag{n}")
        api.docs[f"inv{n}"] = Invoice(f"ag{n}", honest(0, 0), [f"act{n}"])
    payments.start()
    try:
        assert both.wait(10)
        with payments._cond:  # the page is done once the costs are no longer stale
            assert payments._cond.wait_for(lambda: not payments._costs_stale, 10)
    finally:
        payments.stop()
        api.release.set()
        payments.join(5)
    assert all(isinstance(e, InvoiceAccepted) for e in accepted)
    assert [t.cost for t in tasks] == [honest(0, 0)] * 2  # set without wait_settled
    assert len(splits) == 2  # one for the page of two invoices, one at join
    assert api.fetched == ["list"]  # both invoices in one listing


@dataclass
class ListedNote(Note):
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


class ListingPayments(FakePayments):
    """Notes listed by their own timestamp, as the daemon lists them; calls counted."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def get_debit_note(self, doc_id: str) -> Any:
        self.calls.append(f"get {doc_id}")
        return super().get_debit_note(doc_id)

    def list_debit_notes(self, *, after: Optional[datetime] = None) -> list[Any]:
        self.calls.append("list")
        notes = []
        for doc_id, doc in self.docs.items():
            if isinstance(doc, ListedNote) and (after is None or doc.timestamp > after):
                doc.debit_note_id = doc_id
                notes.append(doc)
        return notes


def test_due_notes_come_in_one_listing_and_a_skewed_clocks_note_by_its_id() -> None:
    payments, _, clock, _ = make()
    api = ListingPayments()
    payments._api = api  # type: ignore[assignment]
    now = datetime.now(timezone.utc)
    clock.now += 10
    usage = [5.0, 10.0]
    api.docs["dn1"] = ListedNote("ag", "act", honest(8, 4), [4.0, 8.0], timestamp=now)
    api.docs["dn2"] = ListedNote("ag", "act", honest(10, 5), usage, timestamp=now)
    # a provider whose clock is far behind: outside the listing's window
    api.docs["dn3"] = ListedNote("ag", "act", honest(10, 5), usage,
                                 timestamp=now - timedelta(hours=1))
    due = {i: (now, clock.now - 1, clock.now) for i in ("dn2", "dn3", "dn1")}
    payments._fetch_notes(due)
    assert api.calls == ["list", "get dn3"]
    # each activity's notes in cumulative order: every one accepted, none refused
    assert [a[0] for a in api.accepted] == ["dn1", "dn2", "dn3"]
    assert payments.rejected == 0


def test_notes_wait_until_due_then_all_come_at_once() -> None:
    payments, _, clock, _ = make()
    stamp = datetime.now(timezone.utc)
    with payments._cond:
        payments._pending_notes["dn1"] = (stamp, clock.now, clock.now)
        assert payments._notes_due(clock.now + NOTE_DELAY_SECONDS - 0.1) == {}
        payments._pending_notes["dn2"] = (stamp, clock.now + 1, clock.now + 1)
        assert set(payments._notes_due(clock.now + NOTE_DELAY_SECONDS)) == {"dn1", "dn2"}
        assert payments._pending_notes == {}
    payments.ended("ag")  # an ended agreement is owed its invoice: its notes bound it
    with payments._cond:
        payments._pending_notes["dn3"] = (stamp, clock.now, clock.now)
        assert set(payments._notes_due(clock.now)) == {"dn3"}
    payments.activity_ended("ag", "act")
    api = payments._api
    api.docs["inv"] = Invoice("ag", honest(0, 0), ["act"])  # type: ignore[attr-defined]
    payments._on_invoice("inv")
    with payments._cond:  # every invoice decided: pending notes no longer matter
        payments._pending_notes["dn4"] = (stamp, clock.now, clock.now)
        assert payments._notes_due(clock.now + 100) == {}
        assert payments._pending_notes == {}


def held_note() -> tuple[Payments, FakePayments]:
    """An agreement ended after 10 s, then an honest note of it fetched (and held)."""
    payments, api, clock, _ = make()
    clock.now += 10
    payments.activity_ended("ag", "act")
    payments.ended("ag")
    api.docs["dn1"] = Note("ag", "act", honest(10, 5), [5.0, 10.0])
    payments._on_debit_note("dn1", clock.now - 1, clock.now)
    return payments, api


def test_a_note_after_the_end_is_held_for_the_invoice_and_paid_only_without_one() -> None:
    payments, api = held_note()
    assert api.accepted == [] and payments.rejected == 0  # held: the invoice supersedes it
    assert [r.agreement_id for r in payments.wait_settled(0)] == ["ag"]  # no invoice came
    assert api.accepted == [("dn1", honest(10, 5), "alloc")]  # so the note is what is paid
    assert payments.spent == honest(10, 5)


def test_a_held_note_is_paid_when_the_invoice_is_rejected_and_dropped_when_accepted() -> None:
    for invoice, paid in ((honest(10, 5) * 5, honest(10, 5)), (honest(10, 5), honest(10, 5))):
        payments, api = held_note()
        api.docs["inv"] = Invoice("ag", invoice, ["act"])
        payments._on_invoice("inv")
        accepted = [a[0] for a in api.accepted]
        assert accepted == (["dn1"] if invoice != paid else ["inv"])
        assert payments.spent == paid


def test_a_note_fetched_after_the_final_usage_read_does_not_loosen_the_invoice_bound() -> None:
    payments, api, clock, _ = make()
    clock.now += 10
    payments.activity_ended("ag", "act", [0.1, 10.0])  # read just before the destroy
    payments.ended("ag")
    # a note sampled 5 s before the end, fetched only now: older than the final reading
    api.docs["dn1"] = Note("ag", "act", honest(5, 0.1), [0.1, 5.0])
    payments._on_debit_note("dn1", clock.now - 5, clock.now - 5)
    # 7 % above the honest amount: within what the note allows (5 s at full CPU since it),
    # not within what the final reading does
    api.docs["inv"] = Invoice("ag", (honest(10, 0.1) * Decimal("1.07")).quantize(
        Decimal("1e-9")), ["act"])
    payments._on_invoice("inv")
    assert [r[0] for r in api.rejected] == ["inv"]
    assert [a[0] for a in api.accepted] == ["dn1"]  # the held note is what is paid
