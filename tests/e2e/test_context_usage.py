"""``ctx.usage()`` and ``ctx.cost()``: the activity's counters and their agreed price, live."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from jobs import PAYLOAD, golem_for

from golemsync import Script, Task, WorkContext
from golemsync.context import Usage
from golemsync.devnet import Devnet


def test_usage_and_cost_grow_while_the_activity_works(devnet: Devnet) -> None:
    readings: list[tuple[Usage, Any]] = []

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            readings.append((ctx.usage(), ctx.cost()))
            script = ctx.new_script(timeout=30)
            script.run("/bin/sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
            yield script
            readings.append((ctx.usage(), ctx.cost()))
            task.accept_result(ctx.provider_name)

    with golem_for(devnet) as golem:
        (task,) = golem.execute_tasks(worker, [0], PAYLOAD, max_workers=1)
    (before, cost_before), (after, cost_after) = readings
    assert set(after.counters) == {"golem.usage.duration_sec", "golem.usage.cpu_sec"}
    assert after.duration is not None and before.duration is not None
    assert after.duration > before.duration >= 0
    assert after.cpu is not None and after.cpu > 0  # the loop used CPU on the provider
    assert isinstance(cost_after, Decimal) and cost_after > cost_before >= 0
    # The invoice, settled after the activity ended, is at least what was due at the end.
    (agreement,) = golem.summary().providers.values()
    assert agreement.cost >= cost_after
