"""The market: demand subscriptions, offer matching, negotiation with simulated providers.

Market events are *consumed* when collected (unlike payment events). A subscription expires
after ``subscription_ttl``; collecting on a gone subscription — also a collect that is
waiting when the demand is unsubscribed — answers 404; a subscription id that is not of the
daemon's shape (32 hex, ``-``, 64 hex) is a path error: 400 with a JSON body sent as
``text/plain``, as the daemon 0.17.6 does.

A **market scan** (``POST /scan`` ``{"type": "offer", "constraints"?, "timeout"?}`` → 201 and
its id; ``GET /scan/{id}/events`` → the offers not yet returned, as ``Offer`` objects, or
with ``Accept: text/event-stream`` (as golem-js reads a scan) a stream of ``event: offer``
frames kept open with ``:ping`` comments;
``DELETE /scan/{id}/events`` or ``/scan/{id}``) lists every offer on the market whose
properties meet the constraints, whatever the providers' own constraints, each once per scan.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from golemsync import timestamps
from golemsync.devnet.config import DevnetConfig
from golemsync.devnet.constraints import matches
from golemsync.devnet.http import HttpError, Request, Response, Router, empty, json_response
from golemsync.devnet.providers import SimulatedProvider
from golemsync.devnet.sse import EVENT_STREAM

PREFIX = "/market-api/v1"
CHOSEN_PLATFORM = "golem.com.payment.chosen-platform"


@dataclass
class Proposal:
    """A proposal either side made; ``owner`` is ``"provider"`` or ``"requestor"``."""

    proposal_id: str
    owner: str
    issuer_id: str
    state: str
    properties: dict[str, Any]
    constraints: str
    subscription_id: str
    provider: SimulatedProvider
    prev_proposal_id: Optional[str] = None
    timestamp: str = field(default_factory=lambda: timestamps.to_wire(timestamps.now()))
    countered: bool = False

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "proposalId": self.proposal_id, "issuerId": self.issuer_id, "state": self.state,
            "timestamp": self.timestamp, "properties": dict(self.properties),
            "constraints": self.constraints,
        }
        if self.prev_proposal_id is not None:
            body["prevProposalId"] = self.prev_proposal_id
        return body


@dataclass
class Subscription:
    subscription_id: str
    properties: dict[str, Any]
    constraints: str
    timestamp: str
    expires_at: float
    events: deque[dict[str, Any]] = field(default_factory=deque)
    gone: Optional[str] = None  # "unsubscribed" or "expired"


@dataclass(frozen=True)
class NegotiatedDeal:
    """What an agreement is made of: the provider's Draft and the requestor proposal it answers."""

    offer: Proposal
    demand: Proposal


def flatten(properties: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested property objects into dotted keys; ``@tag`` names the parent's value."""
    flat: dict[str, Any] = {}
    for key, value in properties.items():
        if key == "@tag":
            flat[prefix.rstrip(".")] = value
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _parse_demand(request: Request) -> tuple[dict[str, Any], str]:
    body = request.json_object()
    properties = body.get("properties")
    constraints = body.get("constraints")
    if not isinstance(properties, dict) or not isinstance(constraints, str):
        raise HttpError.message(400, "Json deserialize error: missing field `properties` or "
                                     "`constraints`")
    return flatten(properties), constraints


_SUBSCRIPTION_ID = re.compile(r"^[0-9a-f]{32}-[0-9a-f]{64}$")
DEFAULT_SCAN_TIMEOUT = 300.0  # seconds a scan lives without being collected
_SSE_POLL = 0.25  # how often a quiet scan stream re-checks for its end


@dataclass
class Scan:
    scan_id: str
    constraints: str
    expires_at: float
    ttl: float
    pending: deque[dict[str, Any]] = field(default_factory=deque)


def _new_proposal_id() -> str:
    return "R-" + secrets.token_hex(32)


class Market:
    """Subscriptions, proposals and the providers' side of negotiation."""

    def __init__(self, config: DevnetConfig, requestor_id: str,
                 providers: list[SimulatedProvider]) -> None:
        self.config = config
        self.requestor_id = requestor_id
        self.providers = providers
        self._cond = threading.Condition()  # guards every attribute below
        self._subscriptions: dict[str, Subscription] = {}
        self._proposals: dict[str, Proposal] = {}
        self._scans: dict[str, Scan] = {}
        self._scan_ids = itertools.count(1)
        self._closed = False

    def close(self) -> None:
        """Wake every waiting collect (server shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def routes(self, router: Router) -> None:
        router.add("POST", f"{PREFIX}/demands", self.subscribe)
        router.add("GET", f"{PREFIX}/demands", self.list_demands)
        router.add("DELETE", f"{PREFIX}/demands/{{sub}}", self.unsubscribe)
        router.add("GET", f"{PREFIX}/demands/{{sub}}/events", self.collect)
        router.add("POST", f"{PREFIX}/demands/{{sub}}/proposals/{{pid}}", self.counter)
        router.add("GET", f"{PREFIX}/demands/{{sub}}/proposals/{{pid}}", self.get_proposal)
        router.add("POST", f"{PREFIX}/demands/{{sub}}/proposals/{{pid}}/reject", self.reject)
        router.add("POST", f"{PREFIX}/scan", self.begin_scan)
        router.add("GET", f"{PREFIX}/scan/{{sub}}/events", self.collect_scan)
        router.add("DELETE", f"{PREFIX}/scan/{{sub}}/events", self.end_scan)
        router.add("DELETE", f"{PREFIX}/scan/{{sub}}", self.end_scan)
        router.add("GET", f"{PREFIX}/offers", self.list_offers)

    # -- scans ------------------------------------------------------------------------------

    def begin_scan(self, request: Request) -> Response:
        body = request.json_object()
        kind, constraints, ttl = body.get("type"), body.get("constraints", ""), body.get("timeout")
        if kind not in ("offer", "demand"):
            raise HttpError.message(400, f"Json deserialize error: unknown variant `{kind}`, "
                                         "expected `offer` or `demand`")
        if not isinstance(constraints, str) or (ttl is not None and not (
                isinstance(ttl, (int, float)) and ttl > 0)):
            raise HttpError.message(400, "Json deserialize error: invalid `constraints` or "
                                         "`timeout`")
        life = float(ttl) if ttl is not None else DEFAULT_SCAN_TIMEOUT
        with self._cond:
            scan_id = str(next(self._scan_ids))  # the daemon numbers its scans 1, 2, ...
        scan = Scan(scan_id, constraints, time.monotonic() + life, life)
        if kind == "offer":  # this requestor node publishes no demands of its own to scan
            for provider in self.providers:
                if not constraints or matches(constraints, provider.properties):
                    scan.pending.append(self._offer_object(provider))
        with self._cond:
            self._scans[scan.scan_id] = scan
        return json_response(201, scan.scan_id)

    def _offer_object(self, provider: SimulatedProvider) -> dict[str, Any]:
        return {"offerId": f"{secrets.token_hex(16)}-{secrets.token_hex(32)}",
                "providerId": provider.node_id, "properties": dict(provider.properties),
                "constraints": provider.constraints, "timestamp": _now()}

    def _live_scan(self, scan_id: str) -> Scan:
        scan = self._scans.get(scan_id)
        if scan is None or time.monotonic() >= scan.expires_at:
            self._scans.pop(scan_id, None)
            raise HttpError.message(404, f'Iterator with id "{scan_id}" not found')
        return scan

    def collect_scan(self, request: Request) -> Response:
        if EVENT_STREAM in (request.header("Accept") or ""):
            with self._cond:
                self._live_scan(request.params["sub"])
            return Response(200, content_type=EVENT_STREAM,
                            stream=lambda write: self._stream_scan(request.params["sub"], write))
        limit = request.query_int("maxEvents") or 100
        with self._cond:
            scan = self._live_scan(request.params["sub"])
            scan.expires_at = time.monotonic() + scan.ttl
            page = [scan.pending.popleft() for _ in range(min(limit, len(scan.pending)))]
        return json_response(200, page)

    def _stream_scan(self, scan_id: str, write: Callable[[bytes], None]) -> None:
        """The scan's offers as the daemon streams them (``event: offer``, one JSON offer per
        ``data``), then ``:ping`` keep-alives until the client leaves, the scan ends or the
        devnet stops."""
        last_write = time.monotonic()
        try:
            while True:
                with self._cond:
                    scan = self._scans.get(scan_id)
                    if scan is None or self._closed:
                        return
                    scan.expires_at = time.monotonic() + scan.ttl
                    offers = list(scan.pending)
                    scan.pending.clear()
                    if not offers:
                        self._cond.wait(_SSE_POLL)
                for offer in offers:
                    data = json.dumps(offer, separators=(",", ":"))
                    write(f"event: offer\ndata: {data}\n\n".encode())
                    last_write = time.monotonic()
                if time.monotonic() - last_write >= self.config.sse_ping_interval:
                    write(b":ping\n\n")
                    last_write = time.monotonic()
        except OSError:
            return  # the client closed the stream: the normal way it ends

    def end_scan(self, request: Request) -> Response:
        with self._cond:
            self._live_scan(request.params["sub"])
            del self._scans[request.params["sub"]]
            self._cond.notify_all()  # ends its event streams
        return empty(204)

    def list_offers(self, request: Request) -> Response:
        return json_response(200, [])  # the requestor's node publishes no offers

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(self, request: Request) -> Response:
        properties, constraints = _parse_demand(request)
        sub = Subscription(f"{secrets.token_hex(16)}-{secrets.token_hex(32)}", properties,
                           constraints, timestamps.to_wire(timestamps.now()),
                           time.monotonic() + self.config.subscription_ttl)
        with self._cond:
            self._subscriptions[sub.subscription_id] = sub
            for provider in self.providers:
                if self._compatible(properties, constraints, provider):
                    self._offer(sub, provider)
            self._cond.notify_all()
        return json_response(201, sub.subscription_id)

    def _compatible(self, properties: Mapping[str, Any], constraints: str,
                    provider: SimulatedProvider) -> bool:
        return (matches(constraints, provider.properties)
                and matches(provider.constraints, properties))

    def _offer(self, sub: Subscription, provider: SimulatedProvider) -> None:
        proposal = Proposal(_new_proposal_id(), "provider", provider.node_id, "Initial",
                            dict(provider.properties), provider.constraints,
                            sub.subscription_id, provider)
        self._proposals[proposal.proposal_id] = proposal
        sub.events.append(_proposal_event(proposal))

    def list_demands(self, request: Request) -> Response:
        with self._cond:
            live = [s for s in self._subscriptions.values() if self._live(s)]
            body = [{"demandId": s.subscription_id, "requestorId": self.requestor_id,
                     "properties": dict(s.properties), "constraints": s.constraints,
                     "timestamp": s.timestamp} for s in live]
        return json_response(200, body)

    def _live(self, sub: Subscription) -> bool:
        if sub.gone is None and time.monotonic() >= sub.expires_at:
            sub.gone = "expired"
        return sub.gone is None

    def unsubscribe(self, request: Request) -> Response:
        sub_id = request.params["sub"]
        with self._cond:
            sub = self._subscriptions.get(sub_id)
            if sub is None or not self._live(sub):
                raise HttpError.message(404, f"Demand [{sub_id}] not found.")
            sub.gone = "unsubscribed"
            self._cond.notify_all()
        return empty(204)

    def collect(self, request: Request) -> Response:
        sub_id = request.params["sub"]
        timeout = request.query_float("timeout", 5.0)
        max_events = request.query_int("maxEvents")
        limit = 20 if max_events is None else max_events
        if not 1 <= limit <= 100:
            raise HttpError.message(
                400, f"Invalid maxEvents '{max_events}', should be between 1 and 100.")
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                sub = self._require_live(sub_id)
                remaining = deadline - time.monotonic()
                if sub.events or remaining <= 0 or self._closed:
                    page = [sub.events.popleft() for _ in range(min(limit, len(sub.events)))]
                    return json_response(200, page)
                self._cond.wait(min(remaining, max(0.01, sub.expires_at - time.monotonic())))

    def _require_live(self, sub_id: str) -> Subscription:
        if not _SUBSCRIPTION_ID.match(sub_id):  # the daemon: JSON body, text/plain header
            raise HttpError(400, {"message": f"Path deserialize error: Subscription id "
                                             f"[{sub_id}] has invalid format."},
                            content_type="text/plain")
        sub = self._subscriptions.get(sub_id)
        if sub is None or not self._live(sub):
            why = "expired" if sub is not None and sub.gone == "expired" else "unsubscribed"
            raise HttpError.message(
                404, f"Subscription [{sub_id}] not found. Could be {why}.")
        return sub

    # -- negotiation -----------------------------------------------------------------------

    def counter(self, request: Request) -> Response:
        properties, constraints = _parse_demand(request)
        sub_id, pid = request.params["sub"], request.params["pid"]
        with self._cond:
            sub = self._subscriptions.get(sub_id)
            if sub is None:
                raise HttpError.message(400, f"Subscription [{sub_id}] not found.")
            if sub.gone is not None or not self._live(sub):
                raise HttpError.message(410, f"Subscription [{sub_id}] {sub.gone}.")
            offer = self._counterable(sub_id, pid)
            mine = Proposal(_new_proposal_id(), "requestor", self.requestor_id, "Draft",
                            properties, constraints, sub_id, offer.provider,
                            prev_proposal_id=pid)
            offer.countered = True
            self._proposals[mine.proposal_id] = mine
            sub.events.append(self._provider_reply(mine, offer))
            self._cond.notify_all()
        return json_response(200, mine.proposal_id)

    def _counterable(self, sub_id: str, pid: str) -> Proposal:
        offer = self._proposals.get(pid)
        if offer is None or offer.subscription_id != sub_id:
            raise HttpError.message(404, f"Proposal [{pid}] not found.")
        if offer.owner != "provider":
            raise HttpError.message(400, f"Can't counter own Proposal [{pid}].")
        if offer.countered:
            raise HttpError.message(410, f"Proposal [{pid}] already has counter proposal. "
                                         "Can't counter for the second time.")
        if offer.state in ("Accepted", "Rejected", "Expired"):
            raise HttpError.message(
                410, f"Proposal [{pid}] was already countered or is {offer.state}.")
        return offer

    def _provider_reply(self, mine: Proposal, offer: Proposal) -> dict[str, Any]:
        """The provider agent's answer to a counter-proposal: a Draft, or a rejection."""
        problem = self._negotiation_problem(mine, offer.provider)
        if problem is not None:
            mine.state = "Rejected"
            return {"eventType": "ProposalRejectedEvent", "eventDate": _now(),
                    "proposalId": mine.proposal_id, "reason": {"message": problem}}
        provider = offer.provider
        draft = Proposal(_new_proposal_id(), "provider", provider.node_id, "Draft",
                         dict(provider.properties), provider.constraints,
                         mine.subscription_id, provider, prev_proposal_id=mine.proposal_id)
        self._proposals[draft.proposal_id] = draft
        return _proposal_event(draft)

    def _negotiation_problem(self, mine: Proposal, provider: SimulatedProvider) -> Optional[str]:
        platform = mine.properties.get(CHOSEN_PLATFORM)
        offered = f"golem.com.payment.platform.{platform}.address"
        if not isinstance(platform, str) or offered not in provider.properties:
            return ("Can't find payment platform: "
                    f"'{CHOSEN_PLATFORM}' is missing or not offered ({platform!r})")
        if not self._compatible(mine.properties, mine.constraints, provider):
            return "Proposal doesn't match the Offer's constraints or properties"
        return None

    def get_proposal(self, request: Request) -> Response:
        with self._cond:
            proposal = self._find(request.params["sub"], request.params["pid"])
            return json_response(200, proposal.wire())

    def _find(self, sub_id: str, pid: str) -> Proposal:
        proposal = self._proposals.get(pid)
        if proposal is None or proposal.subscription_id != sub_id:
            raise HttpError.message(404, f"Proposal [{pid}] not found.")
        return proposal

    def reject(self, request: Request) -> Response:
        if request.body.strip():
            request.json()
        with self._cond:
            if request.params["pid"] not in self._proposals:  # the daemon fails internally
                raise HttpError.message(500, _unknown_proposal(request.params["pid"],
                                                               request.params["sub"]))
            proposal = self._find(request.params["sub"], request.params["pid"])
            if proposal.owner != "provider":
                raise HttpError.message(400, f"Can't reject own Proposal [{proposal.proposal_id}].")
            if proposal.state != "Accepted":
                proposal.state = "Rejected"
        return empty(204)

    def take_draft(self, pid: str) -> NegotiatedDeal:
        """Promote a provider Draft into an agreement's parts (``POST /agreements`` rules)."""
        with self._cond:
            offer = self._proposals.get(pid)
            if offer is None:
                raise HttpError.message(400, f"Proposal [{pid}] not found.")
            if offer.state == "Accepted":
                raise HttpError.message(409, f"Can't create second Agreement for Proposal [{pid}].")
            if offer.owner != "provider":
                raise HttpError.message(400, f"Can't create Agreement from own Proposal [{pid}].")
            if offer.state == "Initial":
                raise HttpError.message(400, "No negotiation with Provider took place. "
                                             "(You should counter Proposal at least one time)")
            if offer.state != "Draft" or offer.countered or offer.prev_proposal_id is None:
                raise HttpError.message(400, f"Proposal [{pid}] is {offer.state} or countered.")
            offer.state = "Accepted"
            return NegotiatedDeal(offer, self._proposals[offer.prev_proposal_id])


def _unknown_proposal(pid: str, sub_id: str) -> str:
    """The daemon 0.17.6's message for an unknown proposal (its subscription id's Debug form)."""
    random_id, _, hash_part = sub_id.partition("-")
    return (f'Proposal [{pid}] not found (subscription [Some(SubscriptionId {{ random_id: '
            f'"{random_id}", hash: "{hash_part}" }})]).')


def _now() -> str:
    return timestamps.to_wire(timestamps.now())


def _proposal_event(proposal: Proposal) -> dict[str, Any]:
    return {"eventType": "ProposalEvent", "eventDate": _now(), "proposal": proposal.wire()}
