from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Optional

from golemsync.market import Hire, LinearPricing
from golemsync.payments import Payments
from golemsync.tasks import Task

PRICE = LinearPricing(Decimal("0.1"), Decimal("0.001"), Decimal("0.002"))


@dataclass
class Note:
    agreement_id: str
    activity_id: str
    total_amount_due: Decimal


@dataclass
class Invoice:
    agreement_id: str
    amount: Decimal
    activity_ids: list[str]


class FakePayments:
    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        self.accepted: list[tuple[str, Decimal, str]] = []
        self.rejected: list[tuple[str, Optional[str]]] = []

    def get_debit_note(self, doc_id: str) -> Any:
        return self.docs[doc_id]

    def get_invoice(self, doc_id: str) -> Any:
        return self.docs[doc_id]

    def accept_debit_note(self, doc_id: str, amount: Decimal, allocation: str) -> None:
        self.accepted.append((doc_id, amount, allocation))

    accept_invoice = accept_debit_note

    def reject_invoice(self, doc_id: str, *, reason: str, message: Optional[str] = None) -> None:
        self.rejected.append((doc_id, reason))


def make(budget: str = "1") -> tuple[Payments, FakePayments]:
    api = FakePayments()
    payments = Payments(api, "alloc", Decimal(budget), stop=threading.Event())
    payments.track(Hire("ag", "0xp", "alice", PRICE, 1, {}))
    return payments, api


def test_debit_note_within_the_price_is_accepted_and_booked() -> None:
    payments, api = make()
    api.docs["dn1"] = Note("ag", "act", Decimal("0.1001"))
    payments._on_debit_note("dn1")
    assert api.accepted == [("dn1", Decimal("0.1001"), "alloc")]
    assert payments.spent == Decimal("0.1001")


def test_debit_note_above_the_agreed_price_is_not_accepted() -> None:
    payments, api = make()
    api.docs["dn1"] = Note("ag", "act", Decimal("0.9"))  # far more than seconds of work cost
    payments._on_debit_note("dn1")
    assert api.accepted == [] and payments.spent == 0


def test_documents_of_unknown_agreements_are_ignored() -> None:
    payments, api = make()
    api.docs["dn1"] = Note("someone-else", "act", Decimal("0.1"))
    payments._on_debit_note("dn1")
    assert api.accepted == []


def test_invoice_accepted_settles_and_shares_cost_by_running_time() -> None:
    payments, api = make()
    first, second = Task("a"), Task("b")
    first.running_time, second.running_time = 3.0, 1.0
    payments.add_task("ag", first)
    payments.add_task("ag", second)
    payments.ended("ag")
    api.docs["inv"] = Invoice("ag", Decimal("0.1040"), ["act"])
    payments._on_invoice("inv")
    assert api.accepted == [("inv", Decimal("0.1040"), "alloc")]
    assert payments.wait_settled(0) == []
    assert first.cost == Decimal("0.078") and second.cost == Decimal("0.026")


def test_overpriced_invoice_is_rejected() -> None:
    payments, api = make()
    payments.ended("ag")
    api.docs["inv"] = Invoice("ag", Decimal("5"), ["act"])
    payments._on_invoice("inv")
    assert api.accepted == [] and api.rejected == [("inv", "INCORRECT_AMOUNT")]
    assert payments.wait_settled(0) == []


def test_budget_is_never_exceeded() -> None:
    payments, api = make(budget="0.15")
    payments.track(Hire("ag2", "0xq", "bob", PRICE, 1, {}))
    api.docs["dn1"] = Note("ag", "a1", Decimal("0.1"))
    api.docs["dn2"] = Note("ag2", "a2", Decimal("0.1"))
    payments._on_debit_note("dn1")
    payments._on_debit_note("dn2")
    assert [a[0] for a in api.accepted] == ["dn1"]
    assert payments.spent <= Decimal("0.15")


def test_unsettled_agreements_are_reported_after_the_wait() -> None:
    payments, _ = make()
    payments.ended("ag")
    assert [r.agreement_id for r in payments.wait_settled(0.01)] == ["ag"]
