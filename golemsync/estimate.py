"""What a job would cost and take, from the offers on the market now, before hiring anyone.

``golem.estimate(payload, tasks=100, seconds_per_task=30, max_workers=4)`` (and the
``golemsync estimate`` command) subscribes the job's demand for a poll window or two, reads the
offers, unsubscribes, and plans the job the way the engine would run it: the ``max_workers``
best offers by the session's :class:`~golemsync.market.Strategy` (by default
:class:`~golemsync.market.LeastExpensive`), tasks shared evenly between them. Each hired
provider's activity lives from the job's start until the queue drains, so it is billed for
the job's whole wall time (plus its start price), and for the CPU its tasks use.

The three figures (:class:`Estimate`):

* **low** — the tasks divide perfectly, the CPU stays idle (e.g. tasks that wait on I/O);
* **likely** — ``ceil(tasks / providers)`` rounds of ``seconds_per_task``, each running task
  keeping one CPU thread busy;
* **high** — the providers are half as fast again, and keep every offered CPU thread busy.

``startup_seconds`` adds each provider's time before its first task (image download, deploy),
billed as duration. The figures assume the tasks run once: retries after failures cost more.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Optional

from .errors import ConfigurationError, GolemError
from .market import Demand, LeastExpensive, LinearPricing, Offer, Strategy, build_demand
from .money import to_decimal
from .payload import Payload

logger = logging.getLogger(__name__)

#: How much slower than ``seconds_per_task`` the "high" figure assumes the providers are.
HIGH_SLOWDOWN = 1.5


@dataclass(frozen=True)
class ProviderQuote:
    """One provider the job would hire, and what it would be paid."""

    provider_id: str
    provider_name: str
    pricing: LinearPricing
    cpu_threads: int
    tasks: int  # tasks it would run (likely)
    low: Decimal
    likely: Decimal
    high: Decimal


@dataclass(frozen=True)
class Estimate:
    """Cost (GLM) and wall time (seconds) of a job, low / likely / high."""

    tasks: int
    seconds_per_task: float
    max_workers: int
    offers_seen: int
    providers: list[ProviderQuote]
    low: Decimal
    likely: Decimal
    high: Decimal
    wall_low: float
    wall_likely: float
    wall_high: float
    budget: Optional[Decimal] = None
    refused: dict[str, int] = field(default_factory=dict)  # why offers were not usable

    @property
    def covered(self) -> bool:
        """Whether the budget covers the likely cost (True without a budget)."""
        return self.budget is None or self.likely <= self.budget

    @property
    def covers_high(self) -> bool:
        return self.budget is None or self.high <= self.budget

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: amounts as plain decimal strings."""
        def glm(value: Decimal) -> str:
            return format(value, "f")

        return {
            "tasks": self.tasks, "seconds_per_task": self.seconds_per_task,
            "max_workers": self.max_workers, "offers_seen": self.offers_seen,
            "cost_glm": {"low": glm(self.low), "likely": glm(self.likely),
                         "high": glm(self.high)},
            "wall_seconds": {"low": round(self.wall_low, 3), "likely": round(self.wall_likely, 3),
                             "high": round(self.wall_high, 3)},
            "budget_glm": None if self.budget is None else glm(self.budget),
            "budget_covers_likely": self.covered, "budget_covers_high": self.covers_high,
            "providers": [{"name": q.provider_name, "provider_id": q.provider_id,
                           "cpu_threads": q.cpu_threads, "tasks": q.tasks,
                           "start_glm": glm(q.pricing.start),
                           "glm_per_hour": glm(q.pricing.per_second * 3600),
                           "glm_per_cpu_hour": glm(q.pricing.per_cpu_second * 3600),
                           "cost_glm": {"low": glm(q.low), "likely": glm(q.likely),
                                        "high": glm(q.high)}}
                          for q in self.providers],
            "refused": dict(self.refused),
        }

    def __str__(self) -> str:
        rows = [f"{self.tasks} tasks of {self.seconds_per_task:g} s on "
                f"{len(self.providers)} providers ({self.offers_seen} offers seen)",
                f"{'':<10}{'cost GLM':>22}{'wall s':>10}"]
        for name, cost, wall in (("low", self.low, self.wall_low),
                                 ("likely", self.likely, self.wall_likely),
                                 ("high", self.high, self.wall_high)):
            rows.append(f"{name:<10}{_glm(cost):>22}{wall:>10.1f}")
        if self.providers:
            rows.append(f"{'provider':<16}{'threads':>8}{'tasks':>7}{'start GLM':>14}"
                        f"{'GLM/h':>14}{'GLM/cpu-h':>14}{'likely GLM':>22}")
        for q in self.providers:
            rows.append(f"{q.provider_name[:16]:<16}{q.cpu_threads:>8}{q.tasks:>7}"
                        f"{_glm(q.pricing.start):>14}{_glm(q.pricing.per_second * 3600):>14}"
                        f"{_glm(q.pricing.per_cpu_second * 3600):>14}{_glm(q.likely):>22}")
        if self.budget is not None:
            verdict = "covers" if self.covered else "does NOT cover"
            rows.append(f"budget {_glm(self.budget)} GLM {verdict} the likely cost"
                        + ("" if self.covers_high or not self.covered
                           else " (but not the high one)"))
        return "\n".join(rows)


def _glm(value: Decimal) -> str:
    return format(value.quantize(Decimal("1e-12")).normalize(), "f")


def plan(offers: list[Offer], *, tasks: int, seconds_per_task: float, max_workers: int,
         strategy: Optional[Strategy] = None, budget: Optional[Decimal] = None,
         startup_seconds: float = 0.0, offers_seen: Optional[int] = None,
         refused: Optional[dict[str, int]] = None) -> Estimate:
    """The estimate of a job over ``offers`` (pure: no I/O). Offers the strategy refuses or
    without a linear price are left out; one offer per provider (its best) is kept."""
    if not isinstance(tasks, int) or tasks < 0:
        raise ConfigurationError(f"tasks must be a whole number, 0 or more (got {tasks!r})")
    if not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigurationError(f"max_workers must be at least 1 (got {max_workers!r})")
    if not seconds_per_task > 0 or startup_seconds < 0:
        raise ConfigurationError("seconds_per_task must be positive, startup_seconds 0 or more")
    strategy = strategy if strategy is not None else LeastExpensive(
        expected_seconds=seconds_per_task)
    best: dict[str, tuple[float, Offer]] = {}
    for offer in offers:
        score = strategy.score(offer) if offer.pricing is not None else None
        if score is None:
            continue
        current = best.get(offer.provider_id)
        if current is None or score > current[0]:
            best[offer.provider_id] = (score, offer)
    ranked = [o for _, o in sorted(best.values(), key=lambda p: (-p[0], p[1].provider_id))]
    hired = ranked[:min(max_workers, tasks)] if tasks else []
    quotes: list[ProviderQuote] = []
    count = len(hired)
    if count:
        rounds = math.ceil(tasks / count)
        wall_low = startup_seconds + tasks * seconds_per_task / count
        wall_likely = startup_seconds + rounds * seconds_per_task
        wall_high = startup_seconds + rounds * seconds_per_task * HIGH_SLOWDOWN
        base, extra = divmod(tasks, count)
        for index, offer in enumerate(hired):
            assert offer.pricing is not None
            share = base + (1 if index < extra else 0)
            price = offer.pricing
            busy = share * seconds_per_task
            quotes.append(ProviderQuote(
                offer.provider_id, offer.provider_name, price, offer.cpu_threads, share,
                low=price.cost(wall_low, 0.0),
                likely=price.cost(wall_likely, busy),
                high=price.cost(wall_high, wall_high * offer.cpu_threads)))
    else:
        wall_low = wall_likely = wall_high = 0.0
    zero = Decimal(0)
    return Estimate(
        tasks=tasks, seconds_per_task=seconds_per_task, max_workers=max_workers,
        offers_seen=len(offers) if offers_seen is None else offers_seen, providers=quotes,
        low=sum((q.low for q in quotes), zero), likely=sum((q.likely for q in quotes), zero),
        high=sum((q.high for q in quotes), zero), wall_low=wall_low, wall_likely=wall_likely,
        wall_high=wall_high, budget=None if budget is None else to_decimal(budget),
        refused=dict(refused or {}))


def collect_offers(market: Any, demand: Demand, *, platform: str, window: float,
                   poll_timeout: float = 3.0) -> tuple[list[Offer], int, dict[str, int]]:
    """Subscribe ``demand`` for ``window`` seconds and return the usable offers (one per
    provider, paid on ``platform``, with a linear price), how many offers came, and why the
    others were left out. Always unsubscribes."""
    subscription = market.subscribe_demand(demand.properties, demand.constraints)
    found: dict[str, Offer] = {}
    seen = 0
    refused: dict[str, int] = {}
    try:
        deadline = time.monotonic() + window
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for event in market.collect_offers(subscription,
                                               timeout=min(remaining, poll_timeout)):
                proposal = getattr(event, "proposal", None)
                if proposal is None or proposal.state != "Initial":
                    continue
                seen += 1
                offer = Offer(proposal.proposal_id, proposal.issuer_id,
                              str(proposal.properties.get("golem.node.id.name",
                                                          proposal.issuer_id)),
                              dict(proposal.properties),
                              LinearPricing.from_properties(proposal.properties))
                why = ("no linear price model" if offer.pricing is None
                       else None if platform in offer.platforms()
                       else f"not paid on {platform}")
                if why is not None:
                    refused[why] = refused.get(why, 0) + 1
                    continue
                found[offer.provider_id] = offer
    finally:
        try:
            market.unsubscribe_demand(subscription)
        except GolemError as exc:
            logger.debug("unsubscribe %s: %s", subscription, exc)
    return list(found.values()), seen, refused


def estimate_job(client: Any, config: Any, decorations: Any, payload: Payload, *, tasks: int,
                 seconds_per_task: float, max_workers: int, strategy: Optional[Strategy],
                 budget: Optional[Decimal], window: float,
                 startup_seconds: float = 0.0) -> Estimate:
    """Collect the market's offers for ``payload`` and plan the job (``Golem.estimate``)."""
    if not window > 0:
        raise ConfigurationError(f"window must be a positive number of seconds (got {window!r})")
    demand = build_demand(payload, subnet=config.subnet,
                          decoration_properties=dict(decorations.properties),
                          decoration_constraints=list(decorations.constraints),
                          lifetime=timedelta(minutes=30))
    offers, seen, refused = collect_offers(client.market, demand,
                                           platform=config.payment_platform, window=window,
                                           poll_timeout=min(window, 3.0))
    return plan(offers, tasks=tasks, seconds_per_task=seconds_per_task, max_workers=max_workers,
                strategy=strategy, budget=budget, startup_seconds=startup_seconds,
                offers_seen=seen, refused=refused)
