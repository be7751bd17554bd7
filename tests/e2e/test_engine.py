"""The task engine end to end: Golem + execute_tasks against a real devnet over HTTP."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Callable

import pytest
from jobs import PAYLOAD, assert_all_settled, echo_worker, golem_for

from golemsync import (
    AuthenticationError,
    CommandFailed,
    DaemonUnreachable,
    Golem,
    NoOffersError,
    Script,
    Task,
    TaskFailed,
    TaskStatus,
    WorkContext,
    vm,
)
from golemsync.devnet import Devnet, DevnetConfig

pytestmark = pytest.mark.e2e

SEED = 4242


def providers(count: int, **faults_by_index: dict[str, Any]) -> list[Any]:
    specs = DevnetConfig.default(count, SEED).providers
    return [dataclasses.replace(spec, **faults_by_index.get(f"p{i}", {}))
            for i, spec in enumerate(specs)]


def test_hello_one_task(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=2)

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=30)
            date = script.run("/bin/sh", "-c", "date -u +%Y")
            yield script
            task.accept_result(date.result().text.strip())

    with golem_for(net) as golem:
        done = list(golem.execute_tasks(worker, [Task("hello")], PAYLOAD, max_workers=1))
    assert len(done) == 1
    (task,) = done
    assert task.status is TaskStatus.DONE and task.result.isdigit()
    assert task.provider_name and task.attempts == 1
    assert task.cost is not None and task.cost > 0
    assert golem.spent > 0
    assert_all_settled(net, golem)


def test_200_tasks_on_8_providers_each_accepted_once(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=8)
    with golem_for(net, budget=20) as golem:
        done = list(golem.execute_tasks(echo_worker, range(200), PAYLOAD, max_workers=8))
    assert len(done) == 200
    assert len({id(t) for t in done}) == 200
    assert sorted(int(t.result) for t in done) == list(range(200))
    assert len({t.provider_id for t in done}) > 1
    agreements = Counter(a["provider_id"] for a in net.ledger()["agreements"])
    assert max(agreements.values()) == 1  # nobody hired twice in one job
    assert_all_settled(net, golem)


def test_generator_of_tasks_feeds_the_running_job(devnet: Devnet) -> None:
    produced: list[int] = []

    def source() -> Iterator[Task[int]]:
        for i in range(15):
            produced.append(i)
            yield Task(i)

    with golem_for(devnet) as golem:
        results = sorted(int(t.result) for t in golem.execute_tasks(echo_worker, source(),
                                                                     PAYLOAD, max_workers=3))
    assert results == list(range(15)) == produced
    assert_all_settled(devnet, golem)


def test_failing_provider_is_not_hired_again(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=providers(4, p0={"fail_rate": 1.0}, p1={"fail_rate": 1.0}))
    bad = {spec.name for spec in net.config.providers[:2]}
    with golem_for(net) as golem:
        done = list(golem.execute_tasks(echo_worker, range(30), PAYLOAD, max_workers=4))
    assert sorted(int(t.result) for t in done) == list(range(30))
    assert not {t.provider_name for t in done} & bad
    per_provider = Counter(a["provider_name"] for a in net.ledger()["agreements"])
    assert all(per_provider[name] <= 1 for name in bad)
    assert_all_settled(net, golem)


def test_crashing_provider_tasks_move_elsewhere(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=providers(3, p0={"crash_rate": 1.0}))
    crashing = net.config.providers[0].name
    with golem_for(net) as golem:
        done = list(golem.execute_tasks(echo_worker, range(12), PAYLOAD, max_workers=3))
    assert sorted(int(t.result) for t in done) == list(range(12))
    assert crashing not in {t.provider_name for t in done}
    per_provider = Counter(a["provider_name"] for a in net.ledger()["agreements"])
    assert per_provider[crashing] <= 1
    assert_all_settled(net, golem)


def test_task_timeout_reassigns_from_a_slow_provider(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=providers(2, p0={"slow_factor": 200.0}))
    slow = net.config.providers[0].name

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script()
            out = script.run("/bin/sh", "-c", f"sleep 0.05; echo {task.data}")
            yield script
            task.accept_result(out.result().text.strip())

    with golem_for(net) as golem:
        done = list(golem.execute_tasks(worker, range(6), PAYLOAD, max_workers=2,
                                        task_timeout=3))
    assert sorted(int(t.result) for t in done) == list(range(6))
    assert slow not in {t.provider_name for t in done}
    assert_all_settled(net, golem)


def test_http_errors_are_survived(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=4, http_error_rate=0.05)
    with golem_for(net) as golem:
        done = list(golem.execute_tasks(echo_worker, range(20), PAYLOAD, max_workers=4))
    assert sorted(int(t.result) for t in done) == list(range(20))
    assert_all_settled(net, golem)


def test_task_that_always_fails_surfaces_as_failed(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=4)

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=30)
            out = script.run("/bin/sh", "-c", "exit 3" if task.data == "bad" else "echo ok")
            yield script
            task.accept_result(out.result().text.strip())

    with golem_for(net) as golem:
        done = {t.data: t for t in golem.execute_tasks(worker, ["bad", "good"], PAYLOAD,
                                                       max_workers=4, max_retries=1)}
    assert done["good"].result == "ok"
    bad = done["bad"]
    assert bad.status is TaskStatus.FAILED and bad.attempts == 2
    assert isinstance(bad.error, CommandFailed) and "code 3" in str(bad.error)
    with pytest.raises(TaskFailed):
        _ = bad.result
    assert_all_settled(net, golem)


def test_worker_exception_fails_its_task_at_once_and_keeps_the_provider(devnet: Devnet) -> None:
    seen: list[str] = []

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            seen.append(ctx.provider_id)
            if task.data == "bad":
                raise RuntimeError("a bug in the worker")
            script = ctx.new_script()
            out = script.run("/bin/echo", "fine")
            yield script
            task.accept_result(out.result().text.strip())

    with golem_for(devnet) as golem:
        done = {t.data: t for t in golem.execute_tasks(worker, ["bad", "ok"], PAYLOAD,
                                                        max_workers=1)}
    bad, ok = done["bad"], done["ok"]
    assert bad.status is TaskStatus.FAILED and bad.attempts == 1  # not retried elsewhere
    assert isinstance(bad.error, RuntimeError) and "a bug in the worker" in str(bad.error)
    with pytest.raises(TaskFailed, match="a bug in the worker"):
        _ = bad.result
    assert ok.result == "fine" and seen == [seen[0], seen[0]]  # the provider was kept
    assert not any(line.released_after_failure for line in golem.summary().providers.values())
    assert_all_settled(devnet, golem)


def test_leaving_the_iteration_early_releases_everything(devnet: Devnet) -> None:
    with golem_for(devnet) as golem:
        for _ in golem.execute_tasks(echo_worker, range(50), PAYLOAD, max_workers=2):
            break
    assert_all_settled(devnet, golem)


def test_wrong_app_key_says_what_to_check(devnet: Devnet) -> None:
    with pytest.raises(AuthenticationError, match="YAGNA_APPKEY") as caught:
        Golem(budget=1, api_url=devnet.url, app_key="not-the-key").start()
    assert "not-the-key" not in str(caught.value)


def test_daemon_down_is_a_clear_error() -> None:
    with pytest.raises(DaemonUnreachable, match="devnet"):
        Golem(budget=1, api_url="http://127.0.0.1:9", app_key="k").start()


def test_no_matching_offers(devnet: Devnet) -> None:
    huge = vm.repo(image_hash="ab" * 28, image_url="http://registry.invalid/image.gvmi",
                   min_mem_gib=100000)
    with golem_for(devnet) as golem, pytest.raises(NoOffersError, match="demand"):
        list(golem.execute_tasks(echo_worker, range(3), huge, offer_timeout=2))
    assert_all_settled(devnet, golem)


def test_budget_is_kept_and_invoices_paid(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=3, debit_note_interval=0.2)

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script()
            script.run("/bin/sh", "-c", "sleep 0.3")
            yield script
            task.accept_result(task.data)

    with golem_for(net, budget=Decimal("2")) as golem:
        done = list(golem.execute_tasks(worker, range(6), PAYLOAD, max_workers=3))
    assert len(done) == 6
    ledger = net.ledger()
    paid = sum((a["accepted_total"] for a in ledger["agreements"]), Decimal(0))
    assert paid == golem.spent <= Decimal("2")
    assert any(a["debit_notes"] for a in ledger["agreements"])
    assert_all_settled(net, golem)


def test_a_budget_too_small_for_any_provider_is_a_clear_error(devnet: Devnet) -> None:
    from golemsync import BudgetExceeded

    with golem_for(devnet, budget=Decimal("0.000000001")) as golem:
        with pytest.raises(BudgetExceeded, match="raise budget="):
            list(golem.execute_tasks(echo_worker, range(3), PAYLOAD, offer_timeout=2))
    assert golem.spent == 0
    assert not [a for a in devnet.ledger()["agreements"] if a["state"] == "Approved"]


def test_two_jobs_at_once_share_one_golem(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=4)
    results: dict[str, list[Task[Any]]] = {}
    errors: list[BaseException] = []
    events: list[Any] = []

    def run(name: str, golem: Golem, data: list[str]) -> None:
        try:
            results[name] = list(golem.execute_tasks(echo_worker, data, PAYLOAD, max_workers=2))
        except BaseException as exc:  # noqa: B036 - reported by the test thread
            errors.append(exc)

    with golem_for(net, on_event=events.append) as golem:
        threads = [threading.Thread(target=run, name=f"test-job-{name}",
                                    args=(name, golem, [f"{name}{i}" for i in range(8)]))
                   for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors
    for name in ("a", "b"):
        assert sorted(t.result for t in results[name]) == sorted(f"{name}{i}" for i in range(8))
    started = [e for e in events if type(e).__name__ == "JobStarted"]
    assert len({e.job_id for e in started}) == 2
    accepted = [e for e in events if type(e).__name__ == "TaskAccepted"]
    jobs = {e.job_id: {str(x.data)[0] for x in accepted if x.job_id == e.job_id} for e in accepted}
    assert sorted(jobs.values(), key=sorted) == [{"a"}, {"b"}]  # each job's events are its own
    assert golem.summary().tasks_done == 16  # one summary for both
    assert_all_settled(net, golem)
