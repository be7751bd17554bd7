"""A provider session through the mock transport: the failure rules without a devnet.

The fake exe-unit below answers the activity API from a function: each ``run`` command's
argument decides its fate (``ok``, ``fail`` with error output, ``silent`` failure).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import pytest

from golemsync.config import Config
from golemsync.context import WorkContext
from golemsync.errors import WorkerFailed
from golemsync.market import Hire
from golemsync.rest import MockTransport, Request, Response, YagnaClient
from golemsync.script import Script
from golemsync.session import ProviderSession, SessionEnd, SessionSettings
from golemsync.tasks import Task, TaskQueue, TaskStatus

HIRE = Hire("agr-1", "0xprov", "prov", None, 2, {})


class FakeExeUnit:
    """The activity API of one provider, answered from memory."""

    def __init__(self, *, create_status: int = 200, failing_boot: str = "") -> None:
        self.create_status = create_status
        self.failing_boot = failing_boot  # "deploy" or "start": that command fails
        self.batches: dict[str, list[dict[str, Any]]] = {}
        self.destroyed: list[str] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # guards batches and destroyed

    def __call__(self, request: Request) -> Response:
        path, method = request.path, request.method
        if method == "POST" and path.endswith("/activity"):
            if self.create_status != 200:
                return Response.from_json({"message": "provider gone"}, status=self.create_status)
            return Response.from_json(f"act{next(self._ids)}")
        if method == "POST" and path.endswith("/exec"):
            commands = json.loads(request.json()["text"])
            batch = f"batch{next(self._ids)}"
            with self._lock:
                self.batches[batch] = [self._result(i, c, self.failing_boot)
                                       for i, c in enumerate(commands)]
            return Response.from_json(batch)
        if method == "GET" and "/exec/" in path:
            with self._lock:
                results = self.batches[path.rsplit("/", 1)[1]]
            return Response.from_json(results)
        if method == "DELETE":
            with self._lock:
                self.destroyed.append(path.rsplit("/", 1)[1])
            return Response.from_json(None)
        if method == "GET" and path.endswith("/usage"):
            return Response.from_json({"timestamp": 0, "currentUsage": [0.5, 1.0]})
        if method == "GET" and path.endswith("/state"):
            return Response.from_json({"state": ["Ready", None]})
        return Response.from_json({"message": f"unexpected {method} {path}"}, status=404)

    @staticmethod
    def _result(index: int, command: dict[str, Any], failing_boot: str) -> dict[str, Any]:
        base = {"index": index, "eventDate": "2026-12-02T00:00:00Z", "isBatchFinished": False,
                "stdout": None, "stderr": None, "message": None, "result": "Ok"}
        run = command.get("run")
        fate = run["entry_point"].rsplit("/", 1)[1] if run else "ok"
        if failing_boot in command:
            base.update(result="Error", isBatchFinished=True, message="image not found")
        elif fate == "fail":
            base.update(result="Error", stderr="no such input\n", isBatchFinished=True,
                        message="ExeScript command exited with code 3")
        elif fate == "silent":
            base.update(result="Error", isBatchFinished=True,
                        message="ExeScript command exited with code 1")
        else:
            base["stdout"] = "ok\n"
        return base


class Ledger:
    def __init__(self, budget_for: int = 1000) -> None:
        self.activities: list[str] = []
        self.ended: list[str] = []
        self.tasks: list[Any] = []
        self.budget_for = budget_for

    def add_task(self, agreement_id: str, task: Task[Any]) -> None:
        self.tasks.append(task.data)

    def activity_started(self, agreement_id: str, activity_id: str,
                         requested_at: Optional[float] = None) -> None:
        self.activities.append(activity_id)

    def activity_ended(self, agreement_id: str, activity_id: str,
                       final_usage: Optional[Sequence[float]] = None,
                       usage_age: float = 0.0) -> None:
        self.ended.append(activity_id)

    def may_continue(self, agreement_id: str) -> bool:
        return len(self.tasks) < self.budget_for


def run_session(data: list[Any], worker: Any, unit: FakeExeUnit, ledger: Optional[Ledger] = None,
                max_task_failures: int = 3) -> tuple[SessionEnd, TaskQueue, MockTransport]:
    transport = MockTransport(unit)
    client = YagnaClient(Config.load(app_key="k", api_url="http://daemon.invalid"),
                         transport=transport)
    queue = TaskQueue(data, max_retries=5, task_timeout=None)
    queue.feed(threading.Event())
    session = ProviderSession(
        HIRE, worker=worker, tasks=queue, activity=client.activity,
        ledger=ledger if ledger is not None else Ledger(), storage=lambda: None,  # type: ignore
        emit=lambda event: None, stop=threading.Event(),
        settings=SessionSettings(poll_timeout=0.5, activity_timeout=5,
                                 max_task_failures=max_task_failures))
    return session.run(), queue, transport


def fate_worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
    """Runs the task's data as the command's fate; never catches CommandFailed."""
    for task in tasks:
        script = ctx.new_script()
        out = script.run(f"/bin/{task.data}")
        yield script
        task.accept_result(out.result().text.strip())


def taken(queue: TaskQueue) -> list[Task[Any]]:
    """Every finished task the caller can take now."""
    out = []
    while True:
        item = queue.next_result(0)
        if not isinstance(item, Task):
            return out
        out.append(item)


def test_a_failed_command_retries_the_task_and_keeps_the_provider() -> None:
    unit = FakeExeUnit()
    end, queue, _ = run_session(["ok", "fail", "ok", "ok"], fate_worker, unit)
    done = taken(queue)
    # The failed task went back; the provider kept working on the others ...
    assert [(t.data, t.result) for t in done] == [("ok", "ok")] * 3
    assert len(unit.destroyed) == 1  # ... on the same activity
    # ... and got the failed task back only once nothing else was left (it is the only
    # provider), where failing again and again made it look unreliable.
    assert end.provider_failed and "3 task attempts in a row" in (end.reason or "")
    (back,) = queue.unfinished()
    assert back.data == "fail" and back.status is TaskStatus.PENDING and back.attempts == 4


def test_failures_in_a_row_release_the_provider_as_unreliable() -> None:
    unit = FakeExeUnit()
    end, queue, _ = run_session(["silent", "silent", "silent", "ok"], fate_worker, unit,
                                max_task_failures=2)
    assert end.provider_failed and end.fatal is None
    assert end.reason is not None and "2 task attempts in a row failed" in end.reason
    assert all(t.status is TaskStatus.PENDING for t in queue.unfinished())


def test_the_workers_own_error_fails_its_task_at_once_and_the_session_goes_on() -> None:
    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            if task.data == "bug":
                raise KeyError("missing key")
            yield from fate_worker(ctx, iter([task]))

    end, queue, _ = run_session(["bug", "ok"], worker, FakeExeUnit())
    assert end == SessionEnd()
    done = {t.data: t for t in taken(queue)}
    assert done["bug"].status is TaskStatus.FAILED and done["bug"].attempts == 1
    assert isinstance(done["bug"].error, KeyError)
    assert done["ok"].result == "ok"


def test_a_worker_that_fails_before_any_task_ends_the_job() -> None:
    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        raise ValueError("misconfigured")
        yield  # a generator

    end, queue, _ = run_session(["ok"], worker, FakeExeUnit())
    assert isinstance(end.fatal, WorkerFailed) and not end.provider_failed
    assert [t.status for t in queue.unfinished()] == [TaskStatus.PENDING]


def test_an_activity_that_cannot_be_created_is_the_providers_failure() -> None:
    end, queue, transport = run_session(["ok"], fate_worker, FakeExeUnit(create_status=500))
    assert end.provider_failed and "provider gone" in (end.reason or "")
    assert [t.attempts for t in queue.unfinished()] == [0]  # no task was ever handed out
    assert not [r for r in transport.requests if r.path.endswith("/exec")]


@pytest.mark.parametrize("allowed", [0, 2])
def test_the_budget_stops_the_provider_between_tasks(allowed: int) -> None:
    ledger = Ledger(budget_for=allowed)
    end, queue, _ = run_session(["ok"] * 4, fate_worker, FakeExeUnit(), ledger=ledger)
    assert end == SessionEnd()
    assert len(ledger.tasks) == allowed
    assert [t.status for t in queue.unfinished()].count(TaskStatus.PENDING) == 4 - allowed


def test_deploy_and_start_go_ahead_of_the_first_script_in_one_exec() -> None:
    unit = FakeExeUnit()
    seen: list[int] = []

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script()
            out = script.run("/bin/ok")
            yield script
            seen.append(out.result().index)
            task.accept_result(out.result().text.strip())

    end, queue, transport = run_session(["a", "b"], worker, unit)
    assert end == SessionEnd() and [t.result for t in taken(queue)] == ["ok", "ok"]
    batches = [[next(iter(c)) for c in b] for b in
               (json.loads(r.json()["text"]) for r in transport.requests
                if r.path.endswith("/exec"))]
    assert batches == [["deploy", "start", "run"], ["run"]]
    assert seen == [0, 0]  # indices within the script, whatever went ahead of it


@pytest.mark.parametrize("failing", ["deploy", "start"])
def test_a_failed_deploy_or_start_is_the_providers_and_costs_the_task_no_attempt(
        failing: str) -> None:
    end, queue, transport = run_session(["ok"], fate_worker, FakeExeUnit(failing_boot=failing))
    assert end.provider_failed and f"{failing} failed on prov" in (end.reason or "")
    (back,) = queue.unfinished()
    assert back.status is TaskStatus.PENDING and back.attempts == 0
    assert len([r for r in transport.requests if r.path.endswith("/exec")]) == 1


def test_an_idle_activity_reads_its_usage_before_the_destroy_however_the_worker_ended() -> None:
    """The usage read bounds the invoice: a provider released as unreliable (its commands
    failed; nothing runs any more) is read as one that ran out of tasks; a dead provider is
    not (the read would only fail)."""
    for data, read in ((["ok"], True), (["silent"] * 3, True)):
        unit = FakeExeUnit()
        _, _, transport = run_session(data, fate_worker, unit, max_task_failures=3)
        usage = [r for r in transport.requests if r.path.endswith("/usage")]
        assert bool(usage) is read, data
        last_two = [r.method for r in transport.requests[-2:]]
        assert last_two == ["GET", "DELETE"], last_two  # read, then destroyed
    _, _, transport = run_session(["ok"], fate_worker, FakeExeUnit(create_status=500))
    assert not [r for r in transport.requests if r.path.endswith("/usage")]
