from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Optional

from golemsync.market import (
    Hire,
    LeastExpensive,
    LinearPricing,
    MarketSettings,
    Negotiator,
    Offer,
    build_demand,
)
from golemsync.payload import vm
from golemsync.rest.wire import AgreementEvent

PLATFORM = "erc20-holesky-tglm"


def offer_props(name: str, coeffs: list[float], threads: int = 2) -> dict[str, Any]:
    return {
        "golem.node.id.name": name,
        "golem.inf.cpu.threads": threads,
        "golem.com.usage.vector": ["golem.usage.cpu_sec", "golem.usage.duration_sec"],
        "golem.com.pricing.model.linear.coeffs": coeffs,
        f"golem.com.payment.platform.{PLATFORM}.address": "0x" + "ab" * 20,
        "golem.com.payment.debit-notes.accept-timeout?": 240,
    }


def make_offer(name: str, coeffs: list[float]) -> Offer:
    props = offer_props(name, coeffs)
    return Offer("R-" + name, "0x" + name, name, props, LinearPricing.from_properties(props))


def test_linear_pricing_follows_the_usage_vector_order() -> None:
    props = offer_props("a", [0.1, 0.01, 0.5])
    props["golem.com.usage.vector"] = ["golem.usage.duration_sec", "golem.usage.cpu_sec"]
    price = LinearPricing.from_properties(props)
    assert price == LinearPricing(Decimal("0.5"), Decimal("0.1"), Decimal("0.01"))
    assert price.cost(10, 20) == Decimal("0.5") + Decimal("1.0") + Decimal("0.2")


def test_pricing_missing_or_inconsistent_is_none() -> None:
    props = offer_props("a", [0.1, 0.5])  # one coefficient short
    assert LinearPricing.from_properties(props) is None
    assert LinearPricing.from_properties({}) is None


def test_least_expensive_prefers_cheaper_and_applies_caps_and_lists() -> None:
    cheap, dear = make_offer("cheap", [0.01, 0.001, 0.0]), make_offer("dear", [0.1, 0.01, 0.0])
    strategy = LeastExpensive()
    assert strategy.score(cheap) > strategy.score(dear)  # type: ignore[operator]
    assert LeastExpensive(max_price_per_cpu_second=Decimal("0.05")).score(dear) is None
    assert LeastExpensive(deny=["cheap"]).score(cheap) is None
    assert LeastExpensive(allow=["0xdear"]).score(cheap) is None
    assert LeastExpensive(allow=["0xdear"]).score(dear) is not None


def test_demand_combines_payload_subnet_and_decorations() -> None:
    payload = vm.repo(image_hash="ab" * 28, image_url="http://x/img.gvmi", min_mem_gib=1.0)
    demand = build_demand(
        payload, subnet="devnet-beta",
        decoration_properties={f"golem.com.payment.platform.{PLATFORM}.address": "0x1"},
        decoration_constraints=[f"(golem.com.payment.platform.{PLATFORM}.address=*)"],
        lifetime=__import__("datetime").timedelta(minutes=30),
    )
    assert demand.properties["golem.node.debug.subnet"] == "devnet-beta"
    assert demand.properties["golem.srv.comp.task_package"].startswith("hash:sha3:")
    assert isinstance(demand.properties["golem.srv.comp.expiration"], int)
    assert demand.constraints.startswith("(&")
    assert "(golem.inf.mem.gib>=1.0)" in demand.constraints
    assert "(golem.node.debug.subnet=devnet-beta)" in demand.constraints
    assert f"(golem.com.payment.platform.{PLATFORM}.address=*)" in demand.constraints


@dataclass
class FakeProposal:
    proposal_id: str
    issuer_id: str
    state: str
    properties: dict[str, Any]
    prev_proposal_id: Optional[str] = None


@dataclass
class FakeEvent:
    proposal: FakeProposal
    event_date: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


class FakeMarket:
    """Answers every counter-proposal with a Draft on the next collect."""

    def __init__(self, offers: list[tuple[str, list[float]]], stop: threading.Event) -> None:
        self.stop = stop
        self.pending = [
            FakeEvent(FakeProposal(f"R-{n}", f"0x{n}", "Initial", offer_props(n, c)))
            for n, c in offers
        ]
        self.counters: list[dict[str, Any]] = []
        self.agreements: list[str] = []
        self.confirmed: list[str] = []
        self.cancelled: list[str] = []
        self.event_polls = 0
        self.unsubscribed = False

    def subscribe_demand(self, properties: Any, constraints: str) -> str:
        return "sub"

    def unsubscribe_demand(self, sub: str) -> None:
        self.unsubscribed = True

    def collect_offers(self, sub: str, timeout: float = 5.0) -> list[FakeEvent]:
        events, self.pending = self.pending, []
        if not events and not self.stop.is_set():
            self.stop.wait(0.05)
        return events

    def counter_proposal(self, sub: str, pid: str, props: dict[str, Any], cons: str) -> str:
        name = pid[2:]
        self.counters.append(props)
        draft = FakeProposal(f"D-{name}", f"0x{name}", "Draft", offer_props(name, [0]),
                             prev_proposal_id=f"C-{name}")
        self.pending.append(FakeEvent(draft))
        return f"C-{name}"

    def reject_proposal(self, sub: str, pid: str, message: Optional[str] = None) -> None:
        pass

    def create_agreement(self, pid: str, valid_to: datetime) -> str:
        self.agreements.append(pid)
        return "AG-" + pid

    def confirm_agreement(self, aid: str) -> None:
        self.confirmed.append(aid)

    def agreement_events(self, *, after: Optional[datetime] = None, timeout: float = 5.0,
                         max_events: Optional[int] = None) -> list[AgreementEvent]:
        """The provider approves every confirmed agreement; the next poll says so."""
        self.event_polls += 1
        events = [AgreementEvent("AgreementApprovedEvent", a, datetime.now(timezone.utc))
                  for a in self.confirmed]
        self.confirmed = []
        if not events and not self.stop.is_set():
            self.stop.wait(min(timeout, 0.05))
        return events

    def cancel_agreement(self, aid: str, reason: Any = None) -> None:
        self.cancelled.append(aid)


@dataclass
class FakeStaffing:
    """A job that wants ``wanted[0]`` providers and hands each hire to ``hire``."""

    want: list[int]
    hire: Any
    errors: list[BaseException]

    def wanted(self) -> int:
        return self.want[0]

    def at_work(self) -> int:
        return 0

    def excluded(self) -> set[str]:
        return set()

    def can_afford(self, offer: Offer) -> bool:
        return True

    def signed(self, hire: Hire) -> None:
        pass

    def hired(self, hire: Hire) -> None:
        self.hire(hire)

    def abandoned(self, agreement_id: str, terminated: bool) -> None:
        pass

    def failed(self, error: BaseException) -> None:
        self.errors.append(error)


def negotiate(api: FakeMarket, staff: FakeStaffing, stop: threading.Event,
              settings: Optional[MarketSettings] = None) -> None:
    """Run a negotiator for a small payload on its own thread until ``stop``; joined."""
    payload = vm.repo(image_hash="ab" * 28, image_url="http://x/img.gvmi")
    demand = build_demand(payload, subnet="public", decoration_properties={},
                          decoration_constraints=[],
                          lifetime=__import__("datetime").timedelta(minutes=30))
    worker = Negotiator(api, demand, staff, strategy=LeastExpensive(), platform=PLATFORM,
                        stop=stop, settings=settings or MarketSettings())
    thread = threading.Thread(target=worker.run, name="test-market")
    thread.start()
    thread.join(10)
    assert not thread.is_alive()


def test_market_worker_counters_and_hires_the_cheapest_first() -> None:
    stop = threading.Event()
    api = FakeMarket([("dear", [0.1, 0.01, 0.0]), ("cheap", [0.01, 0.001, 0.0])], stop)
    hired: list[Hire] = []
    wanted = [1]

    def hire(h: Hire) -> None:
        hired.append(h)
        wanted[0] = 0
        stop.set()

    errors: list[BaseException] = []
    negotiate(api, FakeStaffing(wanted, hire, errors), stop)
    assert not errors
    assert [h.provider_name for h in hired] == ["cheap"]
    assert all(c["golem.com.payment.chosen-platform"] == PLATFORM for c in api.counters)
    assert api.agreements == ["D-cheap"]
    assert api.unsubscribed


class SilentProvider(FakeMarket):
    """The provider named ``silent`` never approves; the others do at once."""

    def agreement_events(self, *, after: Optional[datetime] = None, timeout: float = 5.0,
                         max_events: Optional[int] = None) -> list[AgreementEvent]:
        self.confirmed = [a for a in self.confirmed if "silent" not in a]
        return super().agreement_events(after=after, timeout=timeout, max_events=max_events)


def test_approvals_come_together_and_a_silent_provider_blocks_nobody() -> None:
    stop = threading.Event()
    names = ["silent", "a", "b", "c"]
    api = SilentProvider([(n, [0.01, 0.001, 0.0]) for n in names], stop)
    hired: list[Hire] = []
    wanted = [4]
    abandoned: list[str] = []

    def hire(h: Hire) -> None:
        hired.append(h)
        if len(hired) == 3:
            stop.set()

    class Staff(FakeStaffing):
        def wanted(self) -> int:
            return self.want[0] - len(hired)

        def at_work(self) -> int:
            return len(hired)

        def abandoned(self, agreement_id: str, terminated: bool) -> None:
            abandoned.append(agreement_id)

    errors: list[BaseException] = []
    negotiate(api, Staff(wanted, hire, errors), stop, MarketSettings(approval_timeout=60.0))
    assert not errors
    # the three that approved were hired while the silent one still awaited approval ...
    assert sorted(h.provider_name for h in hired) == ["a", "b", "c"]
    # ... the first signing polled at once (its provider starts without waiting for the
    # others to be signed), the rest read together
    assert api.event_polls <= 4
    # ... and the silent one was withdrawn when the negotiation ended
    assert abandoned == ["AG-D-silent"] and api.cancelled == ["AG-D-silent"]
