"""Market API (``/market-api/v1``): demands, proposals, agreements."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Optional

from .. import timestamps
from ..errors import PollTimeout
from .session import ApiSession, event_query
from .session import segment as _q
from .wire import (
    Agreement,
    AgreementEvent,
    MarketEvent,
    MarketOffer,
    Proposal,
    TerminationReason,
    parse_id,
    parse_market_event,
)


class MarketApi:
    """Blocking calls of the market API. Long-polls take ``timeout`` in seconds."""

    def __init__(self, session: ApiSession) -> None:
        self._t = session
        self._base = session.config.market_url

    # -- demands -------------------------------------------------------------------------------
    def subscribe_demand(self, properties: Mapping[str, Any], constraints: str) -> str:
        """Publish a demand; returns its subscription id. Not retried once sent."""
        body = {"properties": dict(properties), "constraints": constraints}
        reply = self._t.call("POST", f"{self._base}/demands", body=body, idempotent=False)
        return parse_id(reply, "a subscription id")

    def unsubscribe_demand(self, subscription_id: str) -> None:
        """Withdraw a demand (404 when already gone)."""
        self._t.call("DELETE", f"{self._base}/demands/{_q(subscription_id)}")

    # -- scans ---------------------------------------------------------------------------------
    def begin_scan(self, constraints: str = "", *, lifetime: Optional[int] = None) -> str:
        """Start a market scan of offers (``POST /scan``); returns its id. Raises
        :class:`NotFound` (or another :class:`ApiError`) on a daemon without scans."""
        body: dict[str, Any] = {"type": "offer"}
        if constraints:
            body["constraints"] = constraints
        if lifetime is not None:
            body["timeout"] = lifetime
        reply = self._t.call("POST", f"{self._base}/scan", body=body)
        return parse_id(reply, "a scan id")

    def collect_scan(self, scan_id: str, *, timeout: float = 2.0,
                     max_events: int = 100) -> list[MarketOffer]:
        """The scanned offers not returned yet (waits up to ``timeout`` s for some)."""
        reply = self._t.call("GET", f"{self._base}/scan/{_q(scan_id)}/events",
                             params={"timeout": timeout, "maxEvents": max_events}, poll=timeout)
        return MarketOffer.parse_list(reply)

    def end_scan(self, scan_id: str) -> None:
        """End a scan (404 when already gone)."""
        self._t.call("DELETE", f"{self._base}/scan/{_q(scan_id)}/events")

    def collect_offers(self, subscription_id: str, *, timeout: float = 5.0,
                       max_events: int = 20) -> list[MarketEvent]:
        """Wait up to ``timeout`` s for proposal events (consumed once read).

        Raises :class:`NotFound` when the subscription expired or was withdrawn.
        """
        reply = self._t.call(
            "GET", f"{self._base}/demands/{_q(subscription_id)}/events",
            params={"timeout": timeout, "maxEvents": max_events}, poll=timeout,
        )
        return [parse_market_event(item) for item in reply or []]

    def counter_proposal(self, subscription_id: str, proposal_id: str,
                         properties: Mapping[str, Any], constraints: str) -> str:
        """Answer an offer with our proposal; returns our proposal's id. Not retried once sent."""
        body = {"properties": dict(properties), "constraints": constraints}
        url = f"{self._base}/demands/{_q(subscription_id)}/proposals/{_q(proposal_id)}"
        return parse_id(self._t.call("POST", url, body=body, idempotent=False), "a proposal id")

    def get_proposal(self, subscription_id: str, proposal_id: str) -> Proposal:
        url = f"{self._base}/demands/{_q(subscription_id)}/proposals/{_q(proposal_id)}"
        return Proposal.parse(self._t.call("GET", url))

    def reject_proposal(self, subscription_id: str, proposal_id: str,
                        message: Optional[str] = None) -> None:
        """Decline an offer (the reason reaches the provider)."""
        url = f"{self._base}/demands/{_q(subscription_id)}/proposals/{_q(proposal_id)}/reject"
        body = None if message is None else {"message": message}
        self._t.call("POST", url, body=body, idempotent=True)

    # -- agreements -------------------------------------------------------------------------------
    def create_agreement(self, proposal_id: str, valid_to: datetime) -> str:
        """Turn a provider Draft into an agreement; returns its id. Not retried once sent."""
        body = {"proposalId": proposal_id, "validTo": timestamps.to_wire(valid_to)}
        reply = self._t.call("POST", f"{self._base}/agreements", body=body, idempotent=False)
        return parse_id(reply, "an agreement id")

    def get_agreement(self, agreement_id: str) -> Agreement:
        return Agreement.parse(self._t.call("GET", f"{self._base}/agreements/{_q(agreement_id)}"))

    def confirm_agreement(self, agreement_id: str, app_session_id: Optional[str] = None) -> None:
        """Send the agreement to the provider for approval."""
        params = None if app_session_id is None else {"appSessionId": app_session_id}
        self._t.call("POST", f"{self._base}/agreements/{_q(agreement_id)}/confirm",
                     params=params, idempotent=False)

    def wait_for_approval(self, agreement_id: str, timeout: float = 15.0) -> bool:
        """Wait up to ``timeout`` s: True once approved, False if still pending.

        Raises :class:`Gone` when the provider rejected it, it was cancelled or it expired.
        """
        try:
            self._t.call("POST", f"{self._base}/agreements/{_q(agreement_id)}/wait",
                         params={"timeout": timeout}, poll=timeout, idempotent=True)
        except PollTimeout:
            return False
        return True

    def cancel_agreement(self, agreement_id: str,
                         reason: Optional[Mapping[str, Any]] = None) -> None:
        """Withdraw an agreement the provider has not approved yet."""
        self._t.call("POST", f"{self._base}/agreements/{_q(agreement_id)}/cancel",
                     body=None if reason is None else dict(reason), idempotent=False)

    def terminate_agreement(self, agreement_id: str,
                            reason: Optional[Mapping[str, Any]] = None) -> None:
        """End an approved agreement (the provider then sends its invoice)."""
        self._t.call("POST", f"{self._base}/agreements/{_q(agreement_id)}/terminate",
                     body=None if reason is None else dict(reason), idempotent=False)

    def termination_reason(self, agreement_id: str) -> TerminationReason:
        url = f"{self._base}/agreements/{_q(agreement_id)}/terminate/reason"
        return TerminationReason.parse(self._t.call("GET", url))

    def agreement_events(self, *, after: Optional[datetime] = None, timeout: float = 5.0,
                         max_events: Optional[int] = None,
                         app_session_id: Optional[str] = None) -> list[AgreementEvent]:
        """Agreement events after ``after``, waiting up to ``timeout`` s for the first."""
        params = event_query(timeout, after, max_events, app_session_id)
        reply = self._t.call("GET", f"{self._base}/agreementEvents", params=params,
                             poll=timeout)
        return AgreementEvent.parse_list(reply)
