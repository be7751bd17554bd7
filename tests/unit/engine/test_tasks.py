from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from golemsync.errors import TaskFailed
from golemsync.tasks import DRAINED, Task, TaskQueue, TaskStatus


def make_queue(
    source: Any, *, max_retries: int = 2, read_ahead: int = 64
) -> tuple[TaskQueue, list[Task[Any]]]:
    finals: list[Task[Any]] = []
    queue = TaskQueue(source, max_retries=max_retries, task_timeout=None,
                      on_final=lambda task, _attempt: finals.append(task),
                      read_ahead=read_ahead)
    return queue, finals


def test_each_task_is_delivered_once_when_accepted() -> None:
    queue, finals = make_queue([1, 2, 3])
    queue.feed(threading.Event())
    got = [queue.get("p1", "one", timeout=1) for _ in range(3)]
    assert [t.data for t in got] == [1, 2, 3]
    for task in got:
        task.accept_result(task.data * 10)
    assert [t.result for t in finals] == [10, 20, 30]
    assert queue.get("p1", "one", timeout=1) is DRAINED
    with pytest.raises(RuntimeError, match="cannot accept"):
        got[0].accept_result(99)
    assert got[0].result == 10


def test_failed_task_prefers_another_provider() -> None:
    queue, finals = make_queue(["x"])
    queue.feed(threading.Event())
    task = queue.get("p1", "one", timeout=1)
    task.reject_result("bad output")
    assert task.status is TaskStatus.PENDING
    assert queue.get("p1", "one", timeout=0.01) is None  # only a task that failed here is left
    again = queue.get("p2", "two", timeout=1)
    assert again is task and task.attempts == 2 and task.provider_name == "two"
    again.accept_result("ok")
    assert finals == [task]


def test_task_out_of_attempts_fails_loudly() -> None:
    queue, finals = make_queue(["x"], max_retries=1)
    queue.feed(threading.Event())
    queue.get("p1", "one", timeout=1).reject_result("first")
    task = queue.get("p2", "two", timeout=1)
    task.reject_result("second")
    assert finals == [task]
    assert task.status is TaskStatus.FAILED
    with pytest.raises(TaskFailed, match="second"):
        _ = task.result
    assert queue.drained


def test_reject_without_retry_fails_at_once() -> None:
    queue, finals = make_queue(["x"], max_retries=5)
    queue.feed(threading.Event())
    task = queue.get("p1", "one", timeout=1)
    task.reject_result("hopeless", retry=False)
    assert finals == [task] and task.attempts == 1


def test_generator_source_error_is_kept_for_the_job() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise ValueError("broken source")

    queue, _ = make_queue(source())
    queue.feed(threading.Event())
    assert isinstance(queue.source_error, ValueError)


def test_feeder_applies_back_pressure_and_stops() -> None:
    stop = threading.Event()
    produced = []

    def source() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    queue, _ = make_queue(source(), read_ahead=4)
    feeder = threading.Thread(target=queue.feed, args=(stop,), name="test-feeder")
    feeder.start()
    first = queue.get("p", "p", timeout=1)
    assert first is not None
    stop.set()
    queue.close()
    feeder.join(5)
    assert not feeder.is_alive()
    assert len(produced) < 20


def test_wanted_providers_counts_backlog_beyond_idle_workers() -> None:
    queue, _ = make_queue([1, 2, 3])
    queue.feed(threading.Event())
    assert queue.wanted_providers() == 3
    task = queue.get("p", "p", timeout=1)
    assert queue.wanted_providers() == 2
    task.accept_result(None)


def test_close_returns_pending_and_drains() -> None:
    queue, _ = make_queue([1, 2])
    queue.feed(threading.Event())
    left = queue.close()
    assert [t.data for t in left] == [1, 2]
    assert queue.get("p", "p", timeout=1) is DRAINED
