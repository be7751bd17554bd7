"""Jobs through golemsync's Golem on real yagna nodes (see conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from localnet_helpers import PAYLOAD, assert_paid_in_full, echo_worker, golem_on

from golemsync import Script, Task, WorkContext
from golemsync.localnet import Localnet

pytestmark = pytest.mark.timeout(180)


def test_hello_runs_on_a_real_daemon(localnet: Localnet) -> None:
    names = {p.name for p in localnet.providers}
    with golem_on(localnet) as golem:
        (task,) = list(golem.execute_tasks(echo_worker, ["hello"], PAYLOAD, max_workers=1))
    assert task.result == "hello"
    assert task.provider_name in names
    assert golem.spent > 0  # the provider program's invoice was accepted
    assert_paid_in_full(golem)


def test_ten_tasks_on_two_providers(localnet: Localnet) -> None:
    """Both providers are hired and work: each worker waits, before its first script, until the
    other provider's worker has started too (else the first could echo all ten alone)."""
    names = {p.name for p in localnet.providers}
    both_started = threading.Barrier(2, timeout=120)

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        both_started.wait()
        yield from echo_worker(ctx, tasks)

    with golem_on(localnet) as golem:
        done = list(golem.execute_tasks(worker, range(10), PAYLOAD, max_workers=2))
    assert sorted(t.data for t in done) == list(range(10))
    assert all(t.result == str(t.data) for t in done)
    assert {t.provider_name for t in done} == names
    assert golem.spent > 0
    assert_paid_in_full(golem)


def test_an_activity_outlives_the_nodes_inactivity_limit(localnet: Localnet) -> None:
    """The provider node destroys an activity whose usage is not reported for 10 s; the
    provider program reports it every second, so a long-lived activity keeps working."""

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            outputs = []
            for step in range(3):  # 3 batches of 5 s on one activity: 15 s in all
                script = ctx.new_script(timeout=30)
                outputs.append(script.run("/bin/sh", "-c", f"sleep 5; echo {step}"))
                yield script
            task.accept_result([o.result().stdout.strip() for o in outputs])

    with golem_on(localnet) as golem:
        (task,) = list(golem.execute_tasks(worker, ["long"], PAYLOAD, max_workers=1,
                                           max_retries=0))
    assert task.result == ["0", "1", "2"]
    assert task.attempts == 1
    assert_paid_in_full(golem)
