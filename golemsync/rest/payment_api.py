"""Payment API (``/payment-api/v1``): allocations, debit notes, invoices and their events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Optional, TypeVar

from .. import money, timestamps
from ..errors import GolemError
from .session import ApiSession, event_query
from .session import segment as _q
from .wire import (
    Account,
    Allocation,
    DebitNote,
    DebitNoteEvent,
    Invoice,
    InvoiceEvent,
    MarketDecoration,
    Wire,
)

E = TypeVar("E", bound=Wire)


class PaymentApi:
    """Blocking calls of the payment API (requestor side)."""

    def __init__(self, session: ApiSession) -> None:
        self._t = session
        self._base = session.config.payment_url

    def requestor_accounts(self) -> list[Account]:
        return Account.parse_list(self._t.call("GET", f"{self._base}/requestorAccounts"))

    # -- allocations -------------------------------------------------------------------------
    def create_allocation(self, total_amount: Decimal, *, payment_platform: Optional[str] = None,
                          address: Optional[str] = None, timeout: Optional[datetime] = None,
                          make_deposit: bool = False) -> Allocation:
        """Reserve ``total_amount`` for this session; errors carry the daemon's problem details."""
        body: dict[str, Any] = {"totalAmount": money.to_wire(total_amount),
                                "makeDeposit": make_deposit}
        if payment_platform is not None:
            body["paymentPlatform"] = payment_platform
        if address is not None:
            body["address"] = address
        if timeout is not None:
            body["timeout"] = timestamps.to_wire(timeout)
        reply = self._t.call("POST", f"{self._base}/allocations", body=body, idempotent=False)
        return Allocation.parse(reply)

    def get_allocation(self, allocation_id: str) -> Allocation:
        return Allocation.parse(
            self._t.call("GET", f"{self._base}/allocations/{_q(allocation_id)}"))

    def list_allocations(self) -> list[Allocation]:
        return Allocation.parse_list(self._t.call("GET", f"{self._base}/allocations"))

    def amend_allocation(self, allocation_id: str, *, total_amount: Optional[Decimal] = None,
                         timeout: Optional[datetime] = None) -> Allocation:
        body: dict[str, Any] = {}
        if total_amount is not None:
            body["totalAmount"] = money.to_wire(total_amount)
        if timeout is not None:
            body["timeout"] = timestamps.to_wire(timeout)
        reply = self._t.call("PUT", f"{self._base}/allocations/{_q(allocation_id)}", body=body,
                             idempotent=True)
        return Allocation.parse(reply)

    def release_allocation(self, allocation_id: str) -> None:
        """Give back what is left of an allocation."""
        self._t.call("DELETE", f"{self._base}/allocations/{_q(allocation_id)}")

    def demand_decorations(self, allocation_ids: Sequence[str]) -> MarketDecoration:
        """Properties and constraints a demand paid from these allocations must carry.

        The ids go as one ``allocationIds=a,b`` parameter with a literal comma (the daemon
        refuses ``a%2Cb``)."""
        if not allocation_ids:
            raise GolemError("demand_decorations needs at least one allocation id")
        reply = self._t.call("GET", f"{self._base}/demandDecorations",
                             params={"allocationIds": ",".join(allocation_ids)})
        return MarketDecoration.parse(reply)

    # -- events -------------------------------------------------------------------------------
    def invoice_events(self, *, after: Optional[datetime] = None, timeout: float = 5.0,
                       max_events: Optional[int] = None, app_session_id: Optional[str] = None,
                       event_types: Optional[Sequence[str]] = None) -> list[InvoiceEvent]:
        """Invoice events strictly after ``after``, waiting up to ``timeout`` s for the first.

        ``event_types`` (e.g. ``["RECEIVED", "ACCEPTED"]``) widens the daemon's default filter
        for requestors (RECEIVED and CANCELLED) through ``X-Requestor-Events``.
        """
        return self._events("invoiceEvents", InvoiceEvent, after, timeout, max_events,
                            app_session_id, event_types)

    def debit_note_events(self, *, after: Optional[datetime] = None, timeout: float = 5.0,
                          max_events: Optional[int] = None, app_session_id: Optional[str] = None,
                          event_types: Optional[Sequence[str]] = None) -> list[DebitNoteEvent]:
        """Debit-note events; see :meth:`invoice_events`."""
        return self._events("debitNoteEvents", DebitNoteEvent, after, timeout, max_events,
                            app_session_id, event_types)

    def _events(self, path: str, model: type[E], after: Optional[datetime], timeout: float,
                max_events: Optional[int], app_session_id: Optional[str],
                event_types: Optional[Sequence[str]]) -> list[E]:
        params = event_query(timeout, after, max_events, app_session_id)
        headers = {"X-Requestor-Events": ",".join(event_types)} if event_types else None
        reply = self._t.call("GET", f"{self._base}/{path}", params=params, headers=headers,
                             poll=timeout)
        return model.parse_list(reply)

    # -- documents ---------------------------------------------------------------------------------
    def get_invoice(self, invoice_id: str) -> Invoice:
        return Invoice.parse(self._t.call("GET", f"{self._base}/invoices/{_q(invoice_id)}"))

    def list_invoices(self, *, after: Optional[datetime] = None,
                      max_items: Optional[int] = None) -> list[Invoice]:
        """Invoices known to the node; ``after``: only those whose ``timestamp`` (the
        provider's clock) is later."""
        return Invoice.parse_list(self._t.call("GET", f"{self._base}/invoices",
                                               params=_listing(after, max_items)))

    def get_debit_note(self, debit_note_id: str) -> DebitNote:
        return DebitNote.parse(
            self._t.call("GET", f"{self._base}/debitNotes/{_q(debit_note_id)}"))

    def list_debit_notes(self, *, after: Optional[datetime] = None,
                         max_items: Optional[int] = None) -> list[DebitNote]:
        """Debit notes known to the node; ``after``: only those whose ``timestamp`` (the
        provider's clock) is later."""
        return DebitNote.parse_list(self._t.call("GET", f"{self._base}/debitNotes",
                                                 params=_listing(after, max_items)))

    def accept_invoice(self, invoice_id: str, amount: Decimal, allocation_id: str, *,
                       timeout: float = 15.0) -> None:
        """Accept (and pay) an invoice for exactly its amount. Safe to retry: idempotent."""
        self._accept("invoices", invoice_id, amount, allocation_id, timeout)

    def accept_debit_note(self, debit_note_id: str, amount: Decimal, allocation_id: str, *,
                          timeout: float = 15.0) -> None:
        """Accept a debit note for exactly its amount due. Safe to retry: idempotent."""
        self._accept("debitNotes", debit_note_id, amount, allocation_id, timeout)

    def _accept(self, kind: str, doc_id: str, amount: Decimal, allocation_id: str,
                timeout: float) -> None:
        body = {"totalAmountAccepted": money.to_wire(amount), "allocationId": allocation_id}
        self._t.call("POST", f"{self._base}/{kind}/{_q(doc_id)}/accept",
                     params={"timeout": timeout}, body=body, poll=timeout, idempotent=True)

    def reject_invoice(self, invoice_id: str, *, reason: str,
                       amount_accepted: Decimal = Decimal(0), message: Optional[str] = None,
                       timeout: float = 15.0) -> None:
        """Reject an invoice; ``reason`` is UNSOLICITED_SERVICE, BAD_SERVICE or INCORRECT_AMOUNT."""
        self._reject("invoices", invoice_id, reason, amount_accepted, message, timeout)

    def reject_debit_note(self, debit_note_id: str, *, reason: str,
                          amount_accepted: Decimal = Decimal(0), message: Optional[str] = None,
                          timeout: float = 15.0) -> None:
        """The daemon does not implement this (501, :class:`NotImplementedByDaemon`)."""
        self._reject("debitNotes", debit_note_id, reason, amount_accepted, message, timeout)

    def _reject(self, kind: str, doc_id: str, reason: str, amount_accepted: Decimal,
                message: Optional[str], timeout: float) -> None:
        body: dict[str, Any] = {"rejectionReason": reason,
                                "totalAmountAccepted": money.to_wire(amount_accepted)}
        if message is not None:
            body["message"] = message
        self._t.call("POST", f"{self._base}/{kind}/{_q(doc_id)}/reject",
                     params={"timeout": timeout}, body=body, poll=timeout, idempotent=True)


def _listing(after: Optional[datetime], max_items: Optional[int]) -> Optional[dict[str, Any]]:
    """Query parameters of a document listing (``afterTimestamp`` is strictly-after)."""
    params: dict[str, Any] = {}
    if after is not None:
        params["afterTimestamp"] = timestamps.to_wire(after)
    if max_items is not None:
        params["maxItems"] = max_items
    return params or None
