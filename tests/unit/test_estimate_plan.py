"""estimate.plan: the arithmetic of a job's low / likely / high cost and wall time."""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

import pytest

from golemsync import ConfigurationError, LeastExpensive, LinearPricing, Offer
from golemsync.estimate import plan

PLATFORM = "golem.com.payment.platform.erc20-holesky-tglm.address"


def offer(provider: str, start: str, per_second: str, per_cpu: str, threads: int = 2,
          priced: bool = True) -> Offer:
    pricing: Optional[LinearPricing] = LinearPricing(
        Decimal(start), Decimal(per_second), Decimal(per_cpu)) if priced else None
    return Offer(f"proposal-{provider}", provider, provider,
                 {"golem.inf.cpu.threads": threads, PLATFORM: "0xabc"}, pricing)


def test_the_cheapest_providers_share_the_tasks() -> None:
    offers = [offer("dear", "1", "1", "1"), offer("cheap", "0.1", "0.01", "0.02"),
              offer("mid", "0.1", "0.02", "0.02"), offer("unpriced", "0", "0", "0", priced=False)]
    estimate = plan(offers, tasks=5, seconds_per_task=10, max_workers=2,
                    budget=Decimal("1"), startup_seconds=2)
    assert [(q.provider_name, q.tasks) for q in estimate.providers] == [("cheap", 3),
                                                                          ("mid", 2)]
    assert estimate.wall_low == 2 + 5 * 10 / 2
    assert estimate.wall_likely == 2 + 3 * 10
    assert estimate.wall_high == 2 + 3 * 10 * 1.5
    cheap, mid = estimate.providers
    # likely: billed for the whole wall time, one CPU thread busy while its tasks run
    assert cheap.likely == Decimal("0.1") + Decimal("0.01") * 32 + Decimal("0.02") * 30
    assert mid.likely == Decimal("0.1") + Decimal("0.02") * 32 + Decimal("0.02") * 20
    assert cheap.low == Decimal("0.1") + Decimal("0.01") * 27  # perfect split, idle CPU
    assert cheap.high == Decimal("0.1") + Decimal("0.01") * 47 + Decimal("0.02") * 47 * 2
    assert estimate.likely == cheap.likely + mid.likely
    assert estimate.low < estimate.likely < estimate.high
    assert estimate.covered is False  # 2.46 GLM likely, 1 GLM budget
    assert "does NOT cover" in str(estimate)
    assert estimate.to_dict()["cost_glm"]["likely"] == format(estimate.likely, "f")


def test_fewer_tasks_than_workers_and_no_offers() -> None:
    one = plan([offer("a", "0", "0.001", "0"), offer("b", "0", "0.002", "0")], tasks=1,
               seconds_per_task=60, max_workers=4)
    assert [q.provider_name for q in one.providers] == ["a"] and one.covered
    none = plan([], tasks=3, seconds_per_task=1, max_workers=2)
    assert none.providers == [] and none.likely == 0 and none.wall_likely == 0


def test_the_strategy_decides_who_is_hired() -> None:
    offers = [offer("cheap", "0", "0.001", "0"), offer("banned", "0", "0.0001", "0")]
    estimate = plan(offers, tasks=4, seconds_per_task=1, max_workers=1,
                    strategy=LeastExpensive(deny=["banned"]))
    assert [q.provider_name for q in estimate.providers] == ["cheap"]


@pytest.mark.parametrize("bad", [{"tasks": -1}, {"max_workers": 0}, {"seconds_per_task": 0}])
def test_bad_arguments_are_refused(bad: dict[str, float]) -> None:
    arguments = {"tasks": 1, "seconds_per_task": 1.0, "max_workers": 1, **bad}
    with pytest.raises(ConfigurationError):
        plan([], **arguments)  # type: ignore[arg-type]
