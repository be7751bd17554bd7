"""Nothing lost: under the devnet's fault modes every task comes back exactly once.

And the requestor's own mistakes (a missing local file, junk yielded, an impossible demand)
fail fast, name the cause and the task, and never cost a provider its place.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest
from jobs import PAYLOAD, assert_all_settled, golem_for

from golemsync import (
    CommandFailed,
    JobTimeout,
    NoOffersError,
    RepeatedFailure,
    Script,
    Task,
    TaskStatus,
    WorkContext,
    WorkerFailed,
    vm,
)
from golemsync.devnet import Devnet, DevnetConfig

pytestmark = pytest.mark.e2e


def triple_worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
    """A checkable result per task, with no handling of CommandFailed at all."""
    for task in tasks:
        script = ctx.new_script(timeout=30)
        out = script.run("/bin/sh", "-c", f"echo $(( {task.data} * 3 ))")
        yield script
        task.accept_result(int(out.result().text))


def faulty_network(providers: int, seed: int) -> DevnetConfig:
    """10 % of commands fail everywhere, a fifth of the providers crash now and then, and the
    last provider bills nine times what it should."""
    base = DevnetConfig.default(providers, seed)
    crashing = max(1, providers // 5)
    specs = [dataclasses.replace(spec, fail_rate=0.1, crash_rate=0.05 if i < crashing else 0.0)
             for i, spec in enumerate(base.providers)]
    specs[-1] = dataclasses.replace(specs[-1], overcharge=9.0)
    return dataclasses.replace(base, providers=specs, http_error_rate=0.05)


@pytest.mark.slow
def test_every_task_comes_back_once_under_faults(make_devnet: Callable[..., Devnet]) -> None:
    config = faulty_network(8, seed=7)
    net = make_devnet(providers=config.providers, http_error_rate=config.http_error_rate)
    count = 120
    with golem_for(net, budget=20) as golem:
        done = list(golem.execute_tasks(triple_worker, range(count), PAYLOAD, max_workers=8,
                                        max_retries=6))
    assert Counter(t.data for t in done) == Counter(range(count))  # each exactly once
    assert [t for t in done if t.status is not TaskStatus.DONE] == []
    assert all(t.result == 3 * t.data for t in done)
    assert sum(t.attempts for t in done) > count  # faults did happen and were retried
    cheat = config.providers[-1].name
    for agreement in net.ledger()["agreements"]:
        if agreement["provider_name"] == cheat and agreement["invoice_amount"] is not None:
            assert agreement["accepted_total"] <= agreement["invoice_amount"] / 9
    assert golem.spent <= golem.budget
    assert sum((t.cost for t in done if t.cost is not None), Decimal(0)) == golem.spent
    assert_all_settled(net, golem, honest_only=True)


def test_a_missing_local_file_fails_only_its_task(devnet: Devnet, tmp_path: Path) -> None:
    present = tmp_path / "present.txt"
    present.write_text("here\n")

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=30)
            script.send_file(str(tmp_path / task.data), "/golem/input/in.txt")
            out = script.run("/bin/cat", "/golem/input/in.txt")
            yield script
            task.accept_result(out.result().text.strip())

    names = ["present.txt", "missing.txt", "present.txt", "present.txt"]
    with golem_for(devnet) as golem:
        done = list(golem.execute_tasks(worker, names, PAYLOAD, max_workers=2))
    assert len(done) == 4
    (bad,) = [t for t in done if t.status is TaskStatus.FAILED]
    assert bad.data == "missing.txt" and bad.attempts == 1
    assert "missing.txt" in str(bad.error)
    assert [t.result for t in done if t is not bad] == ["here"] * 3
    assert not any(line.released_after_failure for line in golem.summary().providers.values())
    assert_all_settled(devnet, golem)


def test_junk_yielded_fails_the_tasks_not_the_providers(devnet: Devnet) -> None:
    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for _task in tasks:
            yield "not a script"  # type: ignore[misc]

    with golem_for(devnet) as golem:
        done = list(golem.execute_tasks(worker, range(10), PAYLOAD, max_workers=2))
    assert sorted(t.data for t in done) == list(range(10))
    assert all(t.status is TaskStatus.FAILED and t.attempts == 1 for t in done)
    assert all("yield scripts made with ctx.new_script()" in str(t.error) for t in done)
    assert not any(line.released_after_failure for line in golem.summary().providers.values())
    assert_all_settled(devnet, golem)


def test_a_worker_broken_before_any_task_ends_the_job(devnet: Devnet) -> None:
    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        raise NameError("undefined_helper")
        yield  # a generator

    with golem_for(devnet) as golem, pytest.raises(WorkerFailed, match="undefined_helper") as e:
        list(golem.execute_tasks(worker, range(5), PAYLOAD, max_workers=2))
    assert sorted(t.data for t in e.value.unfinished) == list(range(5))
    assert_all_settled(devnet, golem)


def test_an_impossible_demand_names_the_requirement_at_once(devnet: Devnet) -> None:
    huge = vm.repo(image_hash="ab" * 28, image_url="http://registry.invalid/image.gvmi",
                   min_mem_gib=10000)
    with golem_for(devnet) as golem, pytest.raises(NoOffersError) as caught:
        list(golem.execute_tasks(triple_worker, range(3), huge))  # default offer_timeout: 60 s
    message = str(caught.value)
    assert "none has (golem.inf.mem.gib>=10000.0)" in message
    assert "(golem.inf.mem.gib>=10000.0): met by 0 of 4 offers" in message
    assert "the most offered: 16.0" in message
    assert len(caught.value.unfinished) == 3
    assert_all_settled(devnet, golem)


def test_a_deterministic_failure_is_not_tried_on_every_provider(devnet: Devnet) -> None:
    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=30)
            command = "echo 'no such input' >&2; exit 3" if task.data == "bad" else "echo ok"
            out = script.run("/bin/sh", "-c", command)
            yield script
            task.accept_result(out.result().text.strip())

    with golem_for(devnet) as golem:
        done = {t.data: t for t in golem.execute_tasks(worker, ["bad", "a", "b"], PAYLOAD,
                                                       max_workers=4, max_retries=5)}
    bad = done["bad"]
    assert bad.status is TaskStatus.FAILED and bad.attempts == 2  # not 6
    assert isinstance(bad.error, RepeatedFailure)
    assert isinstance(bad.error.__cause__, CommandFailed)
    assert done["a"].result == done["b"].result == "ok"
    assert not any(line.released_after_failure for line in golem.summary().providers.values())
    assert_all_settled(devnet, golem)


def test_a_job_ended_early_hands_back_what_it_did_not_yield(devnet: Devnet) -> None:
    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=30)
            out = script.run("/bin/sh", "-c", "sleep 0.2; echo ok")
            yield script
            task.accept_result(out.result().text.strip())

    data = list(range(200))
    yielded: list[Task[Any]] = []
    with golem_for(devnet) as golem, pytest.raises(JobTimeout) as caught:
        for task in golem.execute_tasks(worker, data, PAYLOAD, max_workers=2, timeout=3):
            yielded.append(task)
    unfinished = caught.value.unfinished
    assert yielded  # some finished before the deadline
    assert Counter(t.data for t in yielded + unfinished) == Counter(data)
    assert_all_settled(devnet, golem)
