"""Agreements: creation from a negotiated Draft, the approval handshake, termination, events.

State machine (PROTOCOL §7.2): Proposal → Pending (confirm) → Approved (the provider agent) |
Rejected (a provider with ``refuse_agreement``); Proposal/Pending → Cancelled | Expired;
Approved → Terminated (either side). Illegal transitions answer 409 from Proposal, else 410.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Optional

from golemsync import timestamps
from golemsync.devnet.agent import ProviderAgent
from golemsync.devnet.events import EventLog, UniqueClock
from golemsync.devnet.http import HttpError, Request, Response, Router, empty, json_response
from golemsync.devnet.market import Market, NegotiatedDeal
from golemsync.devnet.providers import SimulatedProvider

PREFIX = "/market-api/v1"
FINAL = ("Cancelled", "Rejected", "Expired", "Terminated")
EPOCH_2016 = timestamps.parse("2016-01-01T00:00:00Z")
UNSIGNED = ""  # the daemon 0.17.6 sends an empty signature on termination (not "NotSigned")


@dataclass
class Agreement:
    agreement_id: str
    deal: NegotiatedDeal
    valid_to: datetime
    state: str = "Proposal"
    timestamp: str = field(default_factory=lambda: timestamps.to_wire(timestamps.now()))
    approved_date: Optional[str] = None
    app_session_id: Optional[str] = None
    termination: Optional[dict[str, Any]] = None

    @property
    def provider(self) -> SimulatedProvider:
        return self.deal.offer.provider

    def wire(self) -> dict[str, Any]:
        demand, offer = self.deal.demand, self.deal.offer
        body: dict[str, Any] = {
            "agreementId": self.agreement_id, "state": self.state,
            "demand": {"demandId": demand.subscription_id, "requestorId": demand.issuer_id,
                       "timestamp": demand.timestamp, "properties": dict(demand.properties),
                       "constraints": demand.constraints},
            "offer": {"offerId": self.provider.offer_id, "providerId": offer.issuer_id,
                      "timestamp": offer.timestamp, "properties": dict(offer.properties),
                      "constraints": offer.constraints},
            "validTo": timestamps.to_wire(self.valid_to), "timestamp": self.timestamp,
        }
        if self.approved_date is not None:
            body["approvedDate"] = self.approved_date
            body["proposedSignature"] = body["approvedSignature"] = "NoSignature"
            body["committedSignature"] = "NoSignature"
        if self.app_session_id is not None:
            body["appSessionId"] = self.app_session_id
        return body


TerminationHook = Callable[[Agreement], None]


class Agreements:
    """Every agreement of the devnet, its state machine and its event log."""

    def __init__(self, market: Market, agent: ProviderAgent, clock: UniqueClock) -> None:
        self.market = market
        self.agent = agent
        self.events = EventLog(clock)
        self._cond = threading.Condition()  # guards _agreements, their state, _closed
        self._agreements: dict[str, Agreement] = {}
        self._closed = False
        self.on_terminated: TerminationHook = lambda agreement: None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.events.close()

    def routes(self, router: Router) -> None:
        router.add("POST", f"{PREFIX}/agreements", self.create)
        router.add("GET", f"{PREFIX}/agreements", self.list_agreements)
        router.add("GET", f"{PREFIX}/agreements/{{aid}}", self.get)
        router.add("POST", f"{PREFIX}/agreements/{{aid}}/confirm", self.confirm)
        router.add("POST", f"{PREFIX}/agreements/{{aid}}/wait", self.wait)
        router.add("POST", f"{PREFIX}/agreements/{{aid}}/cancel", self.cancel)
        router.add("POST", f"{PREFIX}/agreements/{{aid}}/terminate", self.terminate)
        router.add("GET", f"{PREFIX}/agreements/{{aid}}/terminate/reason", self.reason)
        router.add("GET", f"{PREFIX}/agreementEvents", self.read_events)

    def lookup(self, agreement_id: str) -> Optional[Agreement]:
        """The agreement (its state refreshed for expiry), or None."""
        with self._cond:
            agreement = self._agreements.get(agreement_id)
            if agreement is not None:
                self._expire(agreement)
            return agreement

    def snapshot(self) -> list[Agreement]:
        with self._cond:
            return list(self._agreements.values())

    # -- handshake -------------------------------------------------------------------------

    def create(self, request: Request) -> Response:
        body = request.json_object()
        pid, valid_to = body.get("proposalId"), body.get("validTo")
        if not isinstance(pid, str) or not isinstance(valid_to, str):
            raise HttpError.message(400, "Json deserialize error: missing field `proposalId` "
                                         "or `validTo`")
        try:
            deadline = timestamps.parse(valid_to)
        except ValueError:
            raise HttpError.message(400, f"Invalid validTo: {valid_to}") from None
        deal = self.market.take_draft(pid)
        agreement = Agreement(secrets.token_hex(32), deal, deadline)
        with self._cond:
            self._agreements[agreement.agreement_id] = agreement
        return json_response(200, agreement.agreement_id)

    def get(self, request: Request) -> Response:
        with self._cond:
            return json_response(200, self._require(request.params["aid"]).wire())

    def list_agreements(self, request: Request) -> Response:
        state = request.query.get("state")
        session = request.query.get("appSessionId")
        with self._cond:
            for agreement in self._agreements.values():
                self._expire(agreement)
            items = [a for a in self._agreements.values()
                     if (state is None or a.state == state)
                     and (session is None or a.app_session_id == session)]
            body = [_listed(a) for a in items]
        return json_response(200, body)

    def _require(self, agreement_id: str) -> Agreement:
        agreement = self._agreements.get(agreement_id)
        if agreement is None:
            raise HttpError.message(404, f"Agreement [{agreement_id}] not found.")
        self._expire(agreement)
        return agreement

    def _expire(self, agreement: Agreement) -> None:
        """Move a still-unapproved agreement past ``validTo`` to Expired (lock held)."""
        if agreement.state in ("Proposal", "Pending") and timestamps.now() > agreement.valid_to:
            agreement.state = "Expired"
            self._cond.notify_all()

    def confirm(self, request: Request) -> Response:
        with self._cond:
            agreement = self._require(request.params["aid"])
            if agreement.state != "Proposal":
                raise HttpError.message(410, _transition_error(agreement, "Pending"))
            agreement.state = "Pending"
            agreement.app_session_id = request.query.get("appSessionId") or None
        self.agent.submit(lambda: self._provider_decides(agreement.agreement_id),
                          delay=agreement.provider.spec.approval_delay)
        return empty(204)

    def _provider_decides(self, agreement_id: str) -> None:
        with self._cond:
            agreement = self._agreements[agreement_id]
            self._expire(agreement)
            if agreement.state != "Pending":
                return
            refused = agreement.provider.spec.refuse_agreement
            agreement.state = "Rejected" if refused else "Approved"
            if not refused:
                agreement.approved_date = timestamps.to_wire(timestamps.now())
            self._cond.notify_all()
        if refused:
            self._event(agreement, "AgreementRejectedEvent",
                        reason={"message": "Provider refuses agreements (devnet fault)"})
        else:
            self._event(agreement, "AgreementApprovedEvent")

    def wait(self, request: Request) -> Response:
        timeout = request.query_float("timeout", 5.0)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                agreement = self._require(request.params["aid"])
                outcome = _wait_outcome(agreement)
                if outcome is not None:
                    return outcome
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    raise HttpError.message(408, "Timeout while waiting for Agreement "
                                                 f"[{agreement.agreement_id}] approval.")
                self._cond.wait(remaining)

    # -- endings ---------------------------------------------------------------------------

    def cancel(self, request: Request) -> Response:
        reason = _reason(request)
        with self._cond:
            agreement = self._require(request.params["aid"])
            if agreement.state not in ("Proposal", "Pending"):
                raise HttpError.message(410, _transition_error(agreement, "Cancelled"))
            agreement.state = "Cancelled"
            self._cond.notify_all()
        self._event(agreement, "AgreementCancelledEvent", reason=reason)
        return empty(200)

    def terminate(self, request: Request) -> Response:
        reason = _reason(request)
        with self._cond:
            agreement = self._require(request.params["aid"])
            if agreement.state == "Proposal":
                raise HttpError.message(409, _transition_error(agreement, "Terminated"))
            if agreement.state != "Approved":
                raise HttpError.message(410, _transition_error(agreement, "Terminated"))
            self._mark_terminated(agreement, "Requestor", reason)
        self._after_termination(agreement)
        return empty(200)

    def terminate_by_provider(self, agreement_id: str, reason: dict[str, Any]) -> bool:
        """The provider ends an Approved agreement (e.g. its exe-unit crashed)."""
        with self._cond:
            agreement = self._agreements.get(agreement_id)
            if agreement is None or agreement.state != "Approved":
                return False
            self._mark_terminated(agreement, "Provider", reason)
        self._after_termination(agreement)
        return True

    def _mark_terminated(self, agreement: Agreement, terminator: str,
                         reason: Optional[dict[str, Any]]) -> None:
        agreement.state = "Terminated"
        agreement.termination = {"eventDate": timestamps.to_wire(timestamps.now()),
                                 "agreementId": agreement.agreement_id,
                                 "eventType": "AgreementTerminatedEvent",
                                 "terminator": terminator, "signature": UNSIGNED,
                                 "reason": reason}
        self._cond.notify_all()

    def _after_termination(self, agreement: Agreement) -> None:
        assert agreement.termination is not None
        self._event(agreement, "AgreementTerminatedEvent",
                    terminator=agreement.termination["terminator"], signature=UNSIGNED,
                    reason=agreement.termination["reason"])
        self.agent.submit(lambda: self.on_terminated(agreement))

    def reason(self, request: Request) -> Response:
        with self._cond:
            agreement = self._require(request.params["aid"])
            if agreement.termination is None:
                raise HttpError.message(
                    400, f"Agreement [R-{agreement.agreement_id}] not terminated yet.")
            return json_response(200, dict(agreement.termination))

    # -- events ----------------------------------------------------------------------------

    def _event(self, agreement: Agreement, event_type: str, **extra: Any) -> None:
        event: dict[str, Any] = {"eventType": event_type, "agreementId": agreement.agreement_id,
                                 "_session": agreement.app_session_id}
        event.update({k: v for k, v in extra.items() if v is not None})
        self.events.append(event)

    def read_events(self, request: Request) -> Response:
        timeout = request.query_float("timeout", 5.0)
        after = request.query_time("afterTimestamp") or EPOCH_2016
        limit = request.query_int("maxEvents")
        if limit is not None and not 1 <= limit <= 100:
            raise HttpError.message(
                400, f"Invalid maxEvents '{limit}', should be between 1 and 100.")
        session = request.query.get("appSessionId")
        page = self.events.read(
            after, timeout, lambda e: session is None or e.get("_session") == session, limit)
        return json_response(200, page)


def _wait_outcome(agreement: Agreement) -> Optional[Response]:
    state = agreement.state
    if state == "Approved":
        return empty(204)
    if state in ("Rejected", "Cancelled"):
        raise HttpError.message(410, state)
    if state == "Expired":
        raise HttpError.message(410, f"Agreement [{agreement.agreement_id}] expired.")
    if state == "Proposal":
        raise HttpError.message(400, f"Agreement [{agreement.agreement_id}] not confirmed yet.")
    if state == "Terminated":
        raise HttpError.message(400, f"Agreement [{agreement.agreement_id}] is Terminated.")
    return None


def _listed(agreement: Agreement) -> dict[str, Any]:
    """An agreement as ``GET /agreements`` lists it on the daemon 0.17.6."""
    item: dict[str, Any] = {"id": agreement.agreement_id, "timestamp": agreement.timestamp}
    if agreement.approved_date is not None:
        item["approvedDate"] = agreement.approved_date
    item["role"] = "Requestor"
    return item


def _transition_error(agreement: Agreement, target: str) -> str:
    return f"Can't update Agreement state from {agreement.state} to {target}."  # as 0.17.6


def _reason(request: Request) -> Optional[dict[str, Any]]:
    if not request.body.strip():
        return None
    value = request.json()
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("message"), str):
        raise HttpError.message(400, "Json deserialize error: missing field `message`")
    return value
