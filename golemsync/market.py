"""The market side of a job: the demand, offer scoring, negotiation and agreements.

One market thread per job subscribes the demand, reads offers, scores them with a pluggable
:class:`Strategy`, counter-proposes (choosing the payment platform) and, whenever the job wants
another provider, turns the best provider Draft into an agreement, confirms it and, once the
node's agreement events say it was approved, hands it over. Confirmed agreements await their
approval together (one events poll serves all), so a slow provider holds up no other.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from . import timestamps
from .errors import ApiError, GolemError, NoOffersError, NotFound, ProvidersExhausted
from .events import Event, OfferReceived
from .money import to_decimal
from .payload import Payload, Requirement

if TYPE_CHECKING:
    from .rest import MarketApi, Proposal

logger = logging.getLogger(__name__)

PLATFORM_PREFIX = "golem.com.payment.platform."
USAGE_CPU = "golem.usage.cpu_sec"
USAGE_DURATION = "golem.usage.duration_sec"
ACCEPT_TIMEOUT = "golem.com.payment.debit-notes.accept-timeout?"
#: How far before the first confirmation the agreement events are read from (the node's
#: clock may differ a little from ours; events of other agreements are skipped by id).
EVENTS_MARGIN = timedelta(seconds=60)
DEFAULT_ACCEPT_TIMEOUT = 240


@dataclass(frozen=True)
class LinearPricing:
    """The linear price model: ``start + per_second·duration + per_cpu_second·cpu``."""

    start: Decimal
    per_second: Decimal
    per_cpu_second: Decimal

    @classmethod
    def from_properties(cls, props: dict[str, Any]) -> Optional[LinearPricing]:
        """Read the price from offer/agreement properties; None when it is not linear."""
        coeffs = props.get("golem.com.pricing.model.linear.coeffs")
        vector = props.get("golem.com.usage.vector")
        if not isinstance(coeffs, list) or not isinstance(vector, list):
            return None
        if len(coeffs) != len(vector) + 1:
            return None
        try:
            by_name = {name: to_decimal(c) for name, c in zip(vector, coeffs)}
            start = to_decimal(coeffs[-1])
        except ValueError:
            return None
        zero = Decimal(0)
        return cls(start, by_name.get(USAGE_DURATION, zero), by_name.get(USAGE_CPU, zero))

    def cost(self, duration: float, cpu: float) -> Decimal:
        """Price of ``duration`` wall seconds and ``cpu`` CPU seconds."""
        wall = self.per_second * to_decimal(duration)
        return self.start + wall + self.per_cpu_second * to_decimal(cpu)


@dataclass(frozen=True)
class Offer:
    """A provider's offer as the strategy sees it."""

    proposal_id: str
    provider_id: str
    provider_name: str
    properties: dict[str, Any]
    pricing: Optional[LinearPricing]

    @property
    def cpu_threads(self) -> int:
        value = self.properties.get("golem.inf.cpu.threads", 1)
        return value if isinstance(value, int) and value > 0 else 1

    def platforms(self) -> list[str]:
        """Payment platforms the provider can be paid on."""
        return [
            key[len(PLATFORM_PREFIX):-len(".address")]
            for key in self.properties
            if key.startswith(PLATFORM_PREFIX) and key.endswith(".address")
        ]


class Strategy(Protocol):
    """Decides which offers to take: a higher score is better, ``None`` refuses the offer."""

    def score(self, offer: Offer) -> Optional[float]: ...


@dataclass
class LeastExpensive:
    """Default strategy: the cheapest provider for ``expected_seconds`` of full-CPU work.

    Caps (``None`` = no cap) refuse offers whose start price, price per second or price per CPU
    second is above them. ``allow``/``deny`` filter by provider id or name (``allow`` empty =
    everyone allowed).
    """

    max_start_price: Optional[Decimal] = None
    max_price_per_second: Optional[Decimal] = None
    max_price_per_cpu_second: Optional[Decimal] = None
    expected_seconds: float = 60.0
    allow: Collection[str] = ()
    deny: Collection[str] = ()

    def score(self, offer: Offer) -> Optional[float]:
        if not self._permitted(offer):
            return None
        price = offer.pricing
        if price is None or not self._within_caps(price):
            return None
        seconds = self.expected_seconds
        return -float(price.cost(seconds, seconds * offer.cpu_threads))

    def _permitted(self, offer: Offer) -> bool:
        names = {offer.provider_id, offer.provider_name}
        if names & set(self.deny):
            return False
        return not self.allow or bool(names & set(self.allow))

    def _within_caps(self, price: LinearPricing) -> bool:
        pairs = (
            (price.start, self.max_start_price),
            (price.per_second, self.max_price_per_second),
            (price.per_cpu_second, self.max_price_per_cpu_second),
        )
        return all(cap is None or value <= to_decimal(cap) for value, cap in pairs)


@dataclass(frozen=True)
class Demand:
    """What the job asks for: flat properties and one constraint expression."""

    properties: dict[str, Any]
    constraints: str


def build_demand(
    payload: Payload,
    *,
    subnet: str,
    decoration_properties: dict[str, Any],
    decoration_constraints: list[str],
    lifetime: timedelta,
) -> Demand:
    """Combine payload, subnet, payment decorations and expiration into a demand."""
    expiration = timestamps.now() + lifetime
    properties: dict[str, Any] = dict(payload.properties)
    properties.update(
        {
            "golem.node.debug.subnet": subnet,
            "golem.srv.comp.expiration": int(expiration.timestamp() * 1000),
            "golem.srv.caps.multi-activity": True,
            ACCEPT_TIMEOUT: DEFAULT_ACCEPT_TIMEOUT,
        }
    )
    properties.update(decoration_properties)
    parts = [*payload.constraints, f"(golem.node.debug.subnet={subnet})", *decoration_constraints]
    constraints = parts[0] if len(parts) == 1 else "(&" + "\n\t".join(parts) + ")"
    return Demand(properties, constraints)


@dataclass(frozen=True)
class Hire:
    """An approved agreement, ready for a worker thread."""

    agreement_id: str
    provider_id: str
    provider_name: str
    pricing: Optional[LinearPricing]
    cpu_threads: int
    properties: dict[str, Any] = field(repr=False)


@dataclass
class _Draft:
    offer: Offer
    score: float
    draft_id: str


class Staffing(Protocol):
    """What the negotiation asks of the job it hires for (one typed seam, no callbacks)."""

    def wanted(self) -> int:
        """How many more providers the job could use now."""

    def at_work(self) -> int:
        """How many providers are working for the job now."""

    def excluded(self) -> Collection[str]:
        """Provider ids not to hire now (failed in this job, or at work for it already)."""

    def can_afford(self, offer: Offer) -> bool:
        """Whether the budget left covers hiring ``offer``."""

    def signed(self, hire: Hire) -> None:
        """An agreement was created (its invoice must be paid whatever happens next)."""

    def hired(self, hire: Hire) -> None:
        """The agreement was approved: put the provider to work."""

    def abandoned(self, agreement_id: str, terminated: bool) -> None:
        """An agreement was given up before work started (``terminated``: an invoice may come)."""

    def failed(self, error: BaseException) -> None:
        """The negotiation cannot go on: end the job with ``error``."""


@dataclass(frozen=True)
class MarketSettings:
    """Timing of the negotiation (all seconds)."""

    poll_timeout: float = 3.0
    approval_timeout: float = 30.0
    resubscribe_after: float = 10.0
    #: With no usable offer for this long and nobody at work, look at every offer on the
    #: subnet to tell whether any could ever match (the diagnosis of an impossible demand).
    probe_after: float = 1.0
    agreement_lifetime: float = 3600.0
    #: The window of an agreement-events poll while agreements await approval (short: the
    #: negotiation thread also collects offers, and a stopping job waits at most this long).
    approval_poll: float = 0.25


@dataclass
class MarketReport:
    """What the negotiation saw: the diagnosis a job's error carries."""

    offers_seen: int = 0
    providers_seen: set[str] = field(default_factory=set)
    refused: dict[str, int] = field(default_factory=dict)  # reason -> offers refused for it
    counter_failed: int = 0
    agreements_refused: dict[str, str] = field(default_factory=dict)  # provider -> why
    unmet: list[str] = field(default_factory=list)  # the probe's findings
    probe_offers: int = -1  # offers on the subnet at the last probe (-1: never probed)
    slowest_call: float = 0.0  # seconds, of the negotiation's non-polling calls

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def lines(self) -> list[str]:
        """The report as human-readable lines."""
        out = [f"offers seen: {self.offers_seen} from {len(self.providers_seen)} providers"]
        out += [f"offers refused ({reason}): {count}" for reason, count in self.refused.items()]
        if self.counter_failed:
            out.append(f"counter-proposals that failed: {self.counter_failed}")
        out += [f"agreement refused by {name}: {why}"
                for name, why in self.agreements_refused.items()]
        if self.probe_offers >= 0:
            out.append(f"offers on the subnet, whatever the constraints: {self.probe_offers}")
        out += self.unmet
        if self.slowest_call >= 2.0:
            out.append(f"the daemon was slow: slowest negotiation call {self.slowest_call:.1f} s")
        return out


class Negotiator:
    """The market thread of one job (see the module docstring).

    It asks its :class:`Staffing` how many providers are wanted, and tells it of every
    agreement signed, hired or abandoned. It keeps a :class:`MarketReport` for the diagnosis
    and, when the job is stuck with no usable offer, probes the subnet's offers: if none could
    ever meet the payload's requirements the job ends at once with :class:`NoOffersError`
    naming the requirement, instead of after ``offer_timeout``.
    """

    def __init__(
        self,
        market_api: MarketApi,
        demand: Demand,
        staffing: Staffing,
        *,
        strategy: Strategy,
        platform: str,
        stop: threading.Event,
        settings: MarketSettings = MarketSettings(),
        requirements: Sequence[Requirement] = (),
        probe_constraints: str = "",
        emit: Optional[Callable[[Event], None]] = None,
    ) -> None:
        self._api = market_api
        self._demand = demand
        self._staff = staffing
        self._strategy = strategy
        self._platform = platform
        self._stop = stop
        self._settings = settings
        self._requirements = tuple(requirements)
        self._probe_constraints = probe_constraints
        self._emit = emit if emit is not None else (lambda event: None)
        self._sub_lock = threading.Lock()  # guards _subscription and _withdrawn
        self._subscription: Optional[str] = None
        self._withdrawn: Optional[str] = None  # withdrawn from another thread by interrupt()
        self._countered: dict[str, Offer] = {}  # our counter-proposal id -> the offer it answers
        self._drafts: dict[str, _Draft] = {}  # provider id -> best draft from that provider
        self._refused: set[str] = set()  # providers that refused to sign in this job
        self._declined: set[str] = set()  # providers whose offers we refused (price, platform)
        self._last_offer_at = time.monotonic()
        self._stuck_since: Optional[float] = None
        self._last_probe = 0.0
        # confirmed agreements awaiting approval: agreement id -> (hire, deadline); their
        # approvals come through the node's agreement events, all of them in one poll
        self._approving: dict[str, tuple[Hire, float]] = {}
        self._events_after: Optional[datetime] = None
        self.report = MarketReport()

    @property
    def offers_seen(self) -> int:
        return self.report.offers_seen

    # -- thread body -------------------------------------------------------------------------
    def run(self) -> None:
        """Negotiate until ``stop`` is set. Never raises: errors go to ``on_error``."""
        try:
            self._subscribe()
            self._stuck_since = time.monotonic()
            while not self._stop.is_set():
                self._collect_once()
                self._hire_while_wanted()
                self._follow_approvals()
                self._check_stuck()
        except GolemError as exc:
            if not self._stop.is_set():
                self._staff.failed(exc)
        except Exception as exc:  # a bug must still end the job loudly, not hang it
            logger.exception("market thread crashed")
            self._staff.failed(exc)
        finally:
            self._abandon_approvals()
            self._unsubscribe()

    def interrupt(self) -> None:
        """End a pending offers poll at once (called from another thread once ``stop`` is set):
        withdrawing the demand answers the poll, so leaving a job never waits out its window."""
        with self._sub_lock:
            subscription = self._withdrawn = self._subscription
        if subscription is None:
            return
        try:
            self._api.unsubscribe_demand(subscription)
        except GolemError as exc:
            logger.debug("unsubscribe %s: %s", subscription, exc)

    def _subscribe(self) -> None:
        subscription = self._api.subscribe_demand(self._demand.properties,
                                                  self._demand.constraints)
        with self._sub_lock:
            self._subscription = subscription
        self._last_offer_at = time.monotonic()
        logger.info("demand subscribed: %s", self._subscription)

    def _unsubscribe(self) -> None:
        with self._sub_lock:
            subscription, self._subscription = self._subscription, None
            withdrawn = subscription == self._withdrawn
        if subscription is None or withdrawn:
            return
        try:
            self._api.unsubscribe_demand(subscription)
        except GolemError as exc:
            logger.debug("unsubscribe %s: %s", subscription, exc)

    def _collect_once(self) -> None:
        assert self._subscription is not None
        # while agreements await approval, their events are the long-poll (see
        # _follow_approvals) and offers are only collected
        window = 0.0 if self._approving else self._settings.poll_timeout
        try:
            events = self._api.collect_offers(self._subscription, timeout=window)
        except NotFound:
            if self._stop.is_set():
                return  # withdrawn by interrupt(): the job is stopping
            logger.info("demand subscription ended; subscribing again")
            self._subscription = None
            self._subscribe()
            return
        for event in events:
            proposal = getattr(event, "proposal", None)
            if proposal is not None:
                self._on_proposal(proposal)
        if not self._stop.is_set() and self._should_refresh():
            self._unsubscribe()
            self._subscribe()

    def _should_refresh(self) -> bool:
        # Offers are delivered once per subscription: when the job still wants providers but
        # every offer seen is used up, a fresh subscription brings the market's offers again.
        idle = time.monotonic() - self._last_offer_at > self._settings.resubscribe_after
        return idle and not self._drafts and not self._countered and self._staff.wanted() > 0

    # -- negotiation --------------------------------------------------------------------------
    def _on_proposal(self, proposal: Proposal) -> None:
        if proposal.state == "Draft" and proposal.prev_proposal_id in self._countered:
            offer = self._countered.pop(proposal.prev_proposal_id)
            score = self._strategy.score(offer)
            if score is not None:
                self._keep_draft(_Draft(offer, score, proposal.proposal_id))
            return
        if proposal.state != "Initial":
            return
        self.report.offers_seen += 1
        self.report.providers_seen.add(proposal.issuer_id)
        self._last_offer_at = time.monotonic()
        offer = Offer(
            proposal.proposal_id,
            proposal.issuer_id,
            str(proposal.properties.get("golem.node.id.name", proposal.issuer_id)),
            dict(proposal.properties),
            LinearPricing.from_properties(proposal.properties),
        )
        self._emit(OfferReceived(provider_id=offer.provider_id, provider_name=offer.provider_name))
        self._consider(offer)

    def _consider(self, offer: Offer) -> None:
        if offer.provider_id in self._staff.excluded() or offer.provider_id in self._refused:
            return
        reason = self._refusal(offer)
        if reason is not None:
            logger.debug("offer from %s refused: %s", offer.provider_name, reason)
            self.report.refuse(reason)
            self._declined.add(offer.provider_id)
            self._reject(offer, reason)
            return
        properties = dict(self._demand.properties)
        properties["golem.com.payment.chosen-platform"] = self._platform
        timeout = offer.properties.get(ACCEPT_TIMEOUT)
        if isinstance(timeout, int) and timeout >= 30:
            properties[ACCEPT_TIMEOUT] = timeout
        assert self._subscription is not None
        try:
            ours = self._api.counter_proposal(
                self._subscription, offer.proposal_id, properties, self._demand.constraints
            )
        except ApiError as exc:
            logger.info("counter-proposal to %s failed: %s", offer.provider_name, exc)
            self.report.counter_failed += 1
            return
        self._countered[ours] = offer

    def _refusal(self, offer: Offer) -> Optional[str]:
        if self._platform not in offer.platforms():
            return f"no common payment platform (we pay on {self._platform})"
        if offer.pricing is None:
            return "no linear price model"
        if self._strategy.score(offer) is None:
            return "refused by the strategy"
        return None

    def _reject(self, offer: Offer, reason: str) -> None:
        assert self._subscription is not None
        try:
            self._api.reject_proposal(self._subscription, offer.proposal_id, reason)
        except ApiError as exc:
            logger.debug("reject %s: %s", offer.proposal_id, exc)

    def _keep_draft(self, draft: _Draft) -> None:
        current = self._drafts.get(draft.offer.provider_id)
        if current is None or draft.score > current.score:
            self._drafts[draft.offer.provider_id] = draft

    # -- agreements ---------------------------------------------------------------------------
    def _hire_while_wanted(self) -> None:
        while not self._stop.is_set() and self._staff.wanted() > len(self._approving):
            draft = self._best_draft()
            if draft is None:
                return
            if not self._staff.can_afford(draft.offer):
                return
            self._sign(draft)
            if self._staff.at_work() == 0:  # the first provider to approve starts at once
                self._follow_approvals(wait=0.0)

    def _best_draft(self) -> Optional[_Draft]:
        excluded = self._staff.excluded()
        for provider_id in [p for p in self._drafts if p in excluded or p in self._refused]:
            del self._drafts[provider_id]
        if not self._drafts:
            return None
        best = max(self._drafts.values(), key=lambda d: d.score)
        del self._drafts[best.offer.provider_id]
        return best

    def _sign(self, draft: _Draft) -> None:
        offer = draft.offer
        try:
            with self._timed():
                agreement_id = self._api.create_agreement(
                    draft.draft_id,
                    timestamps.now() + timedelta(seconds=self._settings.agreement_lifetime))
        except ApiError as exc:
            logger.info("agreement with %s failed: %s", offer.provider_name, exc)
            self._refused.add(offer.provider_id)
            self.report.agreements_refused[offer.provider_name] = f"create failed: {exc}"
            return
        hire = Hire(agreement_id, offer.provider_id, offer.provider_name, offer.pricing,
                    offer.cpu_threads, offer.properties)
        self._staff.signed(hire)
        if self._events_after is None:  # the node's events of this agreement come after this
            self._events_after = timestamps.now() - EVENTS_MARGIN
        try:
            self._api.confirm_agreement(agreement_id)
        except ApiError as exc:
            logger.info("agreement with %s failed: %s", offer.provider_name, exc)
            self._staff.abandoned(agreement_id, False)
            self._not_approved(hire, f"confirm failed: {exc}")
            return
        self._approving[agreement_id] = (hire, time.monotonic() +
                                         self._settings.approval_timeout)

    def _follow_approvals(self, wait: Optional[float] = None) -> None:
        """Poll the node's agreement events while agreements await approval: each approved
        one is hired, a rejected or cancelled one refused, one past ``approval_timeout``
        withdrawn (:meth:`_cancel`). One poll serves every agreement awaiting approval; it
        waits ``wait`` s at most (default: ``approval_poll``, none while drafts wait)."""
        if not self._approving or self._stop.is_set():
            return
        window = wait if wait is not None else \
            0.0 if self._countered or self._drafts else self._settings.approval_poll
        try:
            events = self._api.agreement_events(after=self._events_after, timeout=window,
                                                max_events=100)
        except ApiError as exc:
            logger.info("agreement events: %s", exc)
            events = []
        for event in events:
            if self._events_after is None or event.event_date > self._events_after:
                self._events_after = event.event_date
            pending = self._approving.pop(event.agreement_id, None)
            if pending is None:
                continue  # not awaited here (another job's, or decided already)
            hire = pending[0]
            if event.event_type == "AgreementApprovedEvent":
                logger.info("agreement %s approved by %s", hire.agreement_id,
                            hire.provider_name)
                self._staff.hired(hire)
            else:
                self._staff.abandoned(hire.agreement_id,
                                      event.event_type == "AgreementTerminatedEvent")
                self._not_approved(hire, event.event_type.replace("Agreement", "")
                                   .replace("Event", "").lower())
        now = time.monotonic()
        for agreement_id, (hire, deadline) in list(self._approving.items()):
            if now >= deadline:
                del self._approving[agreement_id]
                self._staff.abandoned(agreement_id, self._cancel(agreement_id))
                self._not_approved(hire, "not approved")

    def _abandon_approvals(self) -> None:
        """The negotiation ends: withdraw every agreement still awaiting approval."""
        for agreement_id in list(self._approving):
            del self._approving[agreement_id]
            self._staff.abandoned(agreement_id, self._cancel(agreement_id))

    def _not_approved(self, hire: Hire, why: str) -> None:
        self._refused.add(hire.provider_id)
        self.report.agreements_refused.setdefault(hire.provider_name, why)

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.report.slowest_call = max(self.report.slowest_call, time.monotonic() - began)

    # -- diagnosis ------------------------------------------------------------------------------
    def _check_stuck(self) -> None:
        """With nobody at work, providers wanted and no usable offer, probe the subnet."""
        stuck = (self._staff.wanted() > 0 and self._staff.at_work() == 0 and not self._drafts
                 and not self._countered)
        now = time.monotonic()
        if not stuck:
            self._stuck_since = None
            return
        if self._stuck_since is None:
            self._stuck_since = now
        patience = self._settings.probe_after
        if now - self._stuck_since < patience or now - self._last_probe < max(patience, 5.0):
            return
        self._last_probe = now
        error = self._probe()
        if error is not None:
            self._staff.failed(error)
            self._stop.wait(self._settings.poll_timeout)  # the job is ending; stop soon

    def _probe(self) -> Optional[BaseException]:
        """Subscribe a demand with only the subnet and payment constraints, read the offers
        it gets, and explain why none is usable; an error when none ever can be."""
        offers = self._probe_offers()
        report = self.report
        report.probe_offers = len(offers)
        if not offers:
            return None  # nothing on the subnet yet: keep waiting (offer_timeout decides)
        report.unmet = [f"{req.constraint}: met by {sum(req.met_by(o) for o in offers)} of "
                        f"{len(offers)} offers{_best(req, offers)}"
                        for req in self._requirements if not all(req.met_by(o) for o in offers)]
        fitting = [o for o in offers if all(r.met_by(o) for r in self._requirements)]
        if not fitting:
            unmet = [r.constraint for r in self._requirements
                     if not any(r.met_by(o) for o in offers)]
            what = " and ".join(unmet) if unmet else "requirements taken together"
            return NoOffersError(f"no offer on the market can meet the demand: none has {what}; "
                                 "lower the payload's requirements")
        excluded = set(self._staff.excluded()) | self._refused
        open_ = [o for o in fitting if o["__issuer__"] not in excluded]
        if not open_:
            return ProvidersExhausted("every provider whose offer fits failed in this job or "
                                      "refused to sign")
        if all(o["__issuer__"] in self._declined for o in open_):
            reasons = ", ".join(sorted(report.refused))
            return NoOffersError(f"every offer that fits the demand was refused ({reasons})")
        return None  # an offer that fits exists: it may still reach our demand

    def _probe_offers(self) -> list[dict[str, Any]]:
        try:
            subscription = self._api.subscribe_demand(self._demand.properties,
                                                      self._probe_constraints)
        except ApiError as exc:
            logger.info("market probe failed: %s", exc)
            return []
        found: dict[str, dict[str, Any]] = {}
        try:
            for attempt in range(3):  # until a poll brings nothing new
                wait = self._settings.poll_timeout if attempt == 0 else 0.5
                events = self._api.collect_offers(subscription, timeout=min(1.0, wait))
                before = len(found)
                for event in events:
                    proposal = getattr(event, "proposal", None)
                    if proposal is not None and proposal.state == "Initial":
                        found[proposal.issuer_id] = {**proposal.properties,
                                                     "__issuer__": proposal.issuer_id}
                if found and len(found) == before:
                    break
        except ApiError as exc:
            logger.info("market probe failed: %s", exc)
        finally:
            try:
                self._api.unsubscribe_demand(subscription)
            except GolemError as exc:
                logger.debug("unsubscribe probe %s: %s", subscription, exc)
        return list(found.values())

    def _cancel(self, agreement_id: str) -> bool:
        """Withdraw an agreement we stopped waiting for; if the provider approved it in the
        meantime (cancel then fails), terminate it instead, so none is left open.
        Returns True when it was terminated (an invoice may follow)."""
        reason = {"message": "the requestor stopped waiting for approval",
                  "golem.requestor.code": "Cancelled"}
        try:
            self._api.cancel_agreement(agreement_id, reason)
            return False
        except ApiError as exc:
            logger.debug("cancel %s: %s; terminating it instead", agreement_id, exc)
        try:
            self._api.terminate_agreement(agreement_id, reason)
        except ApiError as exc:
            logger.warning("could not cancel or terminate agreement %s: %s", agreement_id, exc)
            return False
        return True


def _best(requirement: Requirement, offers: Sequence[dict[str, Any]]) -> str:
    """', best offered: X' for a numeric requirement (what the biggest offer has)."""
    if requirement.op != ">=":
        return ""
    values = [o[requirement.key] for o in offers
              if isinstance(o.get(requirement.key), (int, float))]
    return f" (the most offered: {max(values)})" if values else ""
