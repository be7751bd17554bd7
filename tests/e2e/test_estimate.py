"""golem.estimate on a devnet with known prices, against what the same job then costs."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Callable

import pytest
from jobs import PAYLOAD, echo_worker, golem_for

from golemsync import BudgetExceeded, Script, Task, WorkContext
from golemsync.devnet import Devnet
from golemsync.devnet.config import ProviderSpec

pytestmark = pytest.mark.e2e


def sleep_worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
    """One second of wall time per task, whatever the load of the machine running the test."""
    for task in tasks:
        script = ctx.new_script(timeout=60)
        script.run("/bin/sleep", "1")
        yield script
        task.accept_result(task.data)


def priced_providers() -> list[ProviderSpec]:
    # Duration and start dominate: the tasks sleep, so the CPU counter stays near zero and
    # the estimate's CPU share (one thread busy per running task) is a small part.
    return [ProviderSpec("cheap", cpu_threads=2, price_cpu_sec=0.0001, price_duration_sec=0.001,
                         price_start=0.002),
            ProviderSpec("fair", cpu_threads=2, price_cpu_sec=0.0001, price_duration_sec=0.0012,
                         price_start=0.002),
            ProviderSpec("dear", cpu_threads=2, price_cpu_sec=0.001, price_duration_sec=0.01,
                         price_start=0.02)]


def test_the_likely_cost_is_within_a_quarter_of_the_real_one(
        make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=priced_providers(), debit_note_interval=0.5)
    with golem_for(net) as golem:
        estimate = golem.estimate(PAYLOAD, tasks=6, seconds_per_task=1.0, max_workers=2)
        assert sorted(q.provider_name for q in estimate.providers) == ["cheap", "fair"]
        assert [q.tasks for q in estimate.providers] == [3, 3]
        assert estimate.offers_seen == 3 and estimate.covered
        assert estimate.low < estimate.likely < estimate.high
        assert estimate.wall_likely == 3.0
        done = list(golem.execute_tasks(sleep_worker, range(6), PAYLOAD, max_workers=2))
        assert len(done) == 6
    assert {t.provider_name for t in done} <= {"cheap", "fair"}
    spent = golem.spent
    assert abs(estimate.likely - spent) <= Decimal("0.25") * spent, (estimate.likely, spent)
    assert "E" not in str(estimate) and "likely" in str(estimate)


def test_refuse_over_budget_raises_before_hiring(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=priced_providers())
    with golem_for(net, budget=Decimal("0.001")) as golem:
        with pytest.raises(BudgetExceeded, match="would likely cost .* nothing was hired") as info:
            list(golem.execute_tasks(echo_worker, range(6), PAYLOAD, max_workers=2,
                                     refuse_over_budget=True))
        assert "cheap" in info.value.report
        assert net.ledger()["agreements"] == []
    with golem_for(net, budget=5) as golem:  # a budget that covers it: the job runs
        done = list(golem.execute_tasks(echo_worker, range(2), PAYLOAD, max_workers=2,
                                        refuse_over_budget=True))
    assert len(done) == 2
