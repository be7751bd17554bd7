"""Debit notes and invoices: what the providers bill and how the requestor settles it.

Each running activity gets a cumulative debit note every debit-note interval (linear price ×
usage so far); each agreement gets one invoice after it ends (the sum of its activities' final
costs), unless its provider is configured with ``no_invoice``. Events are persistent and read
with ``afterTimestamp`` (strictly later); by default the requestor sees only RECEIVED and
CANCELLED events, ``X-Requestor-Events`` widens that.

The interval is the provider's ``debit_note_interval`` unless the agreement's demand carries
``golem.com.scheme.payu.debit-note.interval-sec?`` between that interval and
``MAX_DEBIT_NOTE_INTERVAL`` (a requestor may ask for fewer notes, as golem-js does with 120 s,
never for more than the provider offers). A demand's
``golem.com.scheme.payu.payment-timeout-sec?`` between ``PAYMENT_TIMEOUT_BOUNDS`` (PROTOCOL
§3.6: yapapi's minimum is 18000 s) makes debit notes payable: they carry a ``paymentDueDate``.

Billing faults of a provider (``ProviderSpec``): ``overcharge`` × the amounts of its debit
notes and/or invoices, ``inflate_usage`` × its reported counters (billed consistently),
``phantom_activities`` unknown activity ids on its invoices, ``notes_after_termination`` debit
notes after its agreement ended.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Optional

from golemsync import money, timestamps
from golemsync.devnet.activities import Activity
from golemsync.devnet.agreements import Agreement
from golemsync.devnet.config import USAGE_VECTOR, DevnetConfig
from golemsync.devnet.events import EventLog, UniqueClock
from golemsync.devnet.http import HttpError, Request, Response, Router, json_response
from golemsync.devnet.payments import PREFIX, Payments

GLM_PLACES = Decimal("1e-18")
INTERVAL_KEY = "golem.com.scheme.payu.debit-note.interval-sec?"
PAYMENT_TIMEOUT_KEY = "golem.com.scheme.payu.payment-timeout-sec?"
MAX_DEBIT_NOTE_INTERVAL = 86400.0
PAYMENT_TIMEOUT_BOUNDS = (18000.0, 86400.0 * 30)
DEFAULT_ROLE_EVENTS = ("RECEIVED", "CANCELLED")
_CODES = {"ReceivedEvent": "RECEIVED", "AcceptedEvent": "ACCEPTED", "RejectedEvent": "REJECTED",
          "CancelledEvent": "CANCELLED", "SettledEvent": "SETTLED",
          "PaymentStatusEvent": "PAYMENT_EVENT", "PaymentOkEvent": "PAYMENT_OK"}


def cost(coeffs: Sequence[float], usage: Sequence[float]) -> Decimal:
    """Linear price: Σ coeff[i]·usage[i] + the final start coeff, rounded to 18 places."""
    total = money.to_decimal(float(coeffs[-1]))
    for coeff, used in zip(coeffs[:-1], usage):
        total += money.to_decimal(float(coeff)) * money.to_decimal(float(used))
    return total.quantize(GLM_PLACES, rounding=ROUND_HALF_UP)


@dataclass
class Document:
    """A debit note (``kind == "DebitNote"``) or an invoice (``"Invoice"``)."""

    kind: str
    doc_id: str
    agreement: Agreement
    amount: Decimal
    activity_ids: list[str]
    usage: Optional[list[float]] = None
    previous_id: Optional[str] = None
    status: str = "RECEIVED"
    timestamp: str = field(default_factory=lambda: timestamps.to_wire(timestamps.now()))
    due: Optional[str] = None

    def wire(self, config: DevnetConfig) -> dict[str, Any]:
        provider = self.agreement.provider.node_id
        body: dict[str, Any] = {
            f"{_lower(self.kind)}Id": self.doc_id, "issuerId": provider,
            "recipientId": self.agreement.deal.demand.issuer_id, "payeeAddr": provider,
            "payerAddr": self.agreement.deal.demand.issuer_id,
            "paymentPlatform": config.payment_platform, "timestamp": self.timestamp,
            "agreementId": self.agreement.agreement_id, "status": self.status,
        }
        if self.kind == "Invoice":
            body.update(activityIds=list(self.activity_ids), amount=money.to_wire(self.amount),
                        paymentDueDate=self.due)
            return body
        body.update(activityId=self.activity_ids[0], totalAmountDue=money.to_wire(self.amount))
        if self.due is not None:
            body["paymentDueDate"] = self.due
        if self.previous_id is not None:
            body["previousDebitNoteId"] = self.previous_id
        if self.usage is not None:
            body["usageCounterVector"] = list(self.usage)
        return body


def _lower(kind: str) -> str:
    return kind[0].lower() + kind[1:]


def _number(value: Any) -> Optional[float]:
    """A property's positive number, else None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    return float(value) if ok else None


def _scaled(amount: Decimal, factor: float) -> Decimal:
    if factor == 1.0:
        return amount
    return (amount * money.to_decimal(factor)).quantize(GLM_PLACES, rounding=ROUND_HALF_UP)


class Invoicing:
    """Issues and settles the providers' debit notes and invoices."""

    def __init__(self, config: DevnetConfig, payments: Payments, clock: UniqueClock) -> None:
        self.config = config
        self.payments = payments
        self.logs = {"Invoice": EventLog(clock), "DebitNote": EventLog(clock)}
        self._lock = threading.Lock()  # guards _docs, statuses, _accepted, the per-activity maps
        self._docs: dict[str, dict[str, Document]] = {"Invoice": {}, "DebitNote": {}}
        self._accepted: dict[str, Decimal] = {}  # activity id → amount booked via debit notes
        self._last_note: dict[str, tuple[float, str]] = {}  # activity id → (when, note id)
        self._late_notes: dict[str, int] = {}  # activity id → notes sent after its end
        self._ended_at: dict[str, float] = {}  # activity id → when its end was first seen
        self._closing = threading.Event()  # set by close(): ends waiting payment polls

    def close(self) -> None:
        self._closing.set()
        for log in self.logs.values():
            log.close()

    def routes(self, router: Router) -> None:
        for kind, path in (("Invoice", "invoices"), ("DebitNote", "debitNotes")):
            router.add("GET", f"{PREFIX}/{path}", self._lister(kind))
            router.add("GET", f"{PREFIX}/{path}/{{id}}", self._getter(kind))
            router.add("POST", f"{PREFIX}/{path}/{{id}}/accept", self._acceptor(kind))
            router.add("GET", f"{PREFIX}/{_lower(kind)}Events", self._events(kind))
        router.add("POST", f"{PREFIX}/invoices/{{id}}/reject", self.reject_invoice)
        router.add("POST", f"{PREFIX}/debitNotes/{{id}}/reject", self.reject_debit_note)
        router.add("GET", f"{PREFIX}/payments", self.list_payments)

    def list_payments(self, request: Request) -> Response:
        """``GET /payments``: a long-poll (``timeout``, default 5 s, as the daemon) for payments
        made, which never come on the devnet (it has no chain)."""
        self._closing.wait(request.query_float("timeout", 5.0))
        return json_response(200, [])

    def snapshot(self) -> dict[str, list[Document]]:
        with self._lock:
            return {kind: list(docs.values()) for kind, docs in self._docs.items()}

    # -- issuing (provider agent thread) ---------------------------------------------------

    def debit_note_interval(self, agreement: Agreement) -> float:
        """The interval agreed: the requestor's, when within bounds, else the provider's."""
        own = self.config.debit_note_interval
        asked = _number(agreement.deal.demand.properties.get(INTERVAL_KEY))
        return asked if asked is not None and own <= asked <= MAX_DEBIT_NOTE_INTERVAL else own

    def payment_timeout(self, agreement: Agreement) -> Optional[float]:
        """The requestor's payment timeout when within bounds (payable debit notes), else None."""
        asked = _number(agreement.deal.demand.properties.get(PAYMENT_TIMEOUT_KEY))
        low, high = PAYMENT_TIMEOUT_BOUNDS
        return asked if asked is not None and low <= asked <= high else None

    def debit_notes_due(self, activities: Sequence[Activity]) -> None:
        """Issue a cumulative debit note for every running activity whose interval elapsed
        (and the late notes of providers configured with ``notes_after_termination``)."""
        now = time.monotonic()
        for activity in activities:
            late = activity.destroyed or activity.agreement.state != "Approved"
            if late and not self._late_note_due(activity):
                continue
            with self._lock:
                last = self._last_note.get(activity.activity_id, (activity.started, ""))
            if now - last[0] >= self.debit_note_interval(activity.agreement):
                self._issue_debit_note(activity, last[1] or None, late)

    def _late_note_due(self, activity: Activity) -> bool:
        wanted = activity.agreement.provider.spec.notes_after_termination
        with self._lock:
            if wanted:
                self._ended_at.setdefault(activity.activity_id, time.monotonic())
            return self._late_notes.get(activity.activity_id, 0) < wanted

    def _issue_debit_note(self, activity: Activity, previous: Optional[str],
                          late: bool = False) -> None:
        spec = activity.agreement.provider.spec
        if late:
            with self._lock:
                self._late_notes[activity.activity_id] = \
                    self._late_notes.get(activity.activity_id, 0) + 1
            usage = self._still_running(activity)
        else:
            usage = list(activity.unit.usage())
        usage = [round(u * spec.inflate_usage, 6) for u in usage]
        amount = _scaled(cost(activity.agreement.provider.coeffs, usage),
                         spec.bills("debit_notes"))
        note = Document("DebitNote", str(uuid.uuid4()), activity.agreement, amount,
                        [activity.activity_id], usage=usage, previous_id=previous)
        timeout = self.payment_timeout(activity.agreement)
        if timeout is not None:
            note.due = timestamps.to_wire(timestamps.now() + timedelta(seconds=timeout))
        with self._lock:
            self._docs["DebitNote"][note.doc_id] = note
            self._last_note[activity.activity_id] = (time.monotonic(), note.doc_id)
        self._event(note, "ReceivedEvent")

    def _still_running(self, activity: Activity) -> list[float]:
        """A late note's usage: the final counters, the duration still running since the end."""
        usage = list(activity.final_usage or activity.unit.usage())
        with self._lock:
            ended = self._ended_at.setdefault(activity.activity_id, time.monotonic())
        if "golem.usage.duration_sec" in USAGE_VECTOR and len(usage) == len(USAGE_VECTOR):
            index = USAGE_VECTOR.index("golem.usage.duration_sec")
            usage[index] = round(usage[index] + max(0.0, time.monotonic() - ended), 6)
        return usage

    def issue_invoice(self, agreement: Agreement, activities: Sequence[Activity]) -> None:
        """The final invoice of an ended agreement: Σ final activity costs."""
        spec = agreement.provider.spec
        if spec.no_invoice:
            return
        coeffs = agreement.provider.coeffs
        costs = [cost(coeffs, [round(u * spec.inflate_usage, 6) for u in a.final_usage or []])
                 for a in activities]
        ids = [a.activity_id for a in activities]
        for _ in range(spec.phantom_activities):
            ids.append(str(uuid.uuid4()).replace("-", ""))
            costs.append(max(costs) if costs[:len(activities)] else cost(coeffs, [0.0, 10.0]))
        amount = _scaled(sum(costs, Decimal(0)), spec.bills("invoices"))
        due = timestamps.now() + timedelta(seconds=self.config.invoice_due_seconds)
        invoice = Document("Invoice", str(uuid.uuid4()), agreement, amount, ids,
                           due=timestamps.to_wire(due))
        with self._lock:
            self._docs["Invoice"][invoice.doc_id] = invoice
        self._event(invoice, "ReceivedEvent")

    def _event(self, doc: Document, suffix: str, **extra: Any) -> None:
        event = {f"{_lower(doc.kind)}Id": doc.doc_id, "eventType": f"{doc.kind}{suffix}",
                 "_code": _CODES[suffix], "_session": doc.agreement.app_session_id}
        event.update(extra)
        self.logs[doc.kind].append(event)

    # -- reading ---------------------------------------------------------------------------

    def _lister(self, kind: str) -> Any:
        """``GET /invoices`` / ``GET /debitNotes``, as the daemon: ``afterTimestamp`` keeps the
        documents whose own ``timestamp`` (the provider's clock) is strictly later,
        ``maxItems`` the first so many, in the order they were issued."""
        def handler(request: Request) -> Response:
            after = request.query_time("afterTimestamp")
            limit = request.query_int("maxItems")
            with self._lock:
                docs = list(self._docs[kind].values())
            if after is not None:
                docs = [d for d in docs if timestamps.parse(d.timestamp) > after]
            if limit is not None:
                docs = docs[:max(0, limit)]
            return json_response(200, [d.wire(self.config) for d in docs])
        return handler

    def _getter(self, kind: str) -> Any:
        def handler(request: Request) -> Response:
            with self._lock:
                doc = self._require(kind, request.params["id"])
                return json_response(200, doc.wire(self.config))
        return handler

    def _require(self, kind: str, doc_id: str) -> Document:
        doc = self._docs[kind].get(doc_id)
        if doc is None:
            raise HttpError.message(404, None)
        return doc

    def _events(self, kind: str) -> Any:
        def handler(request: Request) -> Response:
            timeout = request.query_float("timeout", 5.0)
            after = request.query_time("afterTimestamp")
            limit = request.query_int("maxEvents")
            session = request.query.get("appSessionId")
            header = request.header("X-Requestor-Events")
            codes = [c.strip() for c in header.split(",")] if header else DEFAULT_ROLE_EVENTS
            page = self.logs[kind].read(
                after, timeout, lambda e: session is None or e.get("_session") == session,
                limit, filter_after_limit=lambda e: e.get("_code") in codes)
            return json_response(200, page)
        return handler

    # -- settling --------------------------------------------------------------------------

    def _acceptor(self, kind: str) -> Any:
        def handler(request: Request) -> Response:
            body = request.json_object(wrap=False)
            self._accept(kind, request.params["id"], body)
            return json_response(200, None)
        return handler

    def _accept(self, kind: str, doc_id: str, body: dict[str, Any]) -> None:
        with self._lock:
            doc = self._require(kind, doc_id)
            if doc.status in ("ACCEPTED", "SETTLED") or self._superseded(doc):
                return
            if doc.status == "CANCELLED":
                label = "Invoice" if kind == "Invoice" else "Debit note"
                raise HttpError.message(400, f"{label} cancelled")
            try:
                offered = money.to_decimal(body.get("totalAmountAccepted"))
            except ValueError:
                raise HttpError.message(400, "Invalid amount accepted") from None
            if offered != doc.amount:
                raise HttpError.message(400, "Invalid amount accepted")
            allocation_id = body.get("allocationId")
            needed = self._needed(doc)
            self.payments.book(str(allocation_id), needed)
            self._booked(doc)
            doc.status = "ACCEPTED"
        self._event(doc, "AcceptedEvent")

    def _superseded(self, doc: Document) -> bool:
        """A debit note of an agreement whose invoice is already settled is ignored."""
        if doc.kind != "DebitNote":
            return False
        return any(i.agreement is doc.agreement and i.status in ("ACCEPTED", "SETTLED")
                   for i in self._docs["Invoice"].values())

    def _needed(self, doc: Document) -> Decimal:
        already = sum((self._accepted.get(a, Decimal(0)) for a in doc.activity_ids), Decimal(0))
        return max(Decimal(0), doc.amount - already)

    def _booked(self, doc: Document) -> None:
        if doc.kind == "DebitNote":
            activity = doc.activity_ids[0]
            self._accepted[activity] = max(self._accepted.get(activity, Decimal(0)), doc.amount)

    def reject_invoice(self, request: Request) -> Response:
        body = request.json_object(wrap=False)
        with self._lock:
            doc = self._require("Invoice", request.params["id"])
            if doc.status == "REJECTED":
                return json_response(200, None)
            if doc.status in ("ACCEPTED", "SETTLED", "CANCELLED"):
                raise HttpError.message(400, f"Invoice {doc.doc_id} is {doc.status}")
            doc.status = "REJECTED"
        rejection = {"rejectionReason": body.get("rejectionReason"),
                     "totalAmountAccepted": str(body.get("totalAmountAccepted", "0"))}
        if body.get("message") is not None:
            rejection["message"] = body["message"]
        self._event(doc, "RejectedEvent", rejection=rejection)
        return json_response(200, None)

    def reject_debit_note(self, request: Request) -> Response:
        raise HttpError.message(501, None)

    def accepted_total(self, agreement: Agreement) -> Decimal:
        """What the requestor has booked for ``agreement`` so far (debit notes + invoice)."""
        with self._lock:
            invoices = [i for i in self._docs["Invoice"].values()
                        if i.agreement is agreement and i.status in ("ACCEPTED", "SETTLED")]
            if invoices:
                return invoices[0].amount
            ids = {a for n in self._docs["DebitNote"].values() if n.agreement is agreement
                   for a in n.activity_ids}
            return sum((self._accepted.get(a, Decimal(0)) for a in ids), Decimal(0))
