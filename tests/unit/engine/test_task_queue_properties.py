"""Property-based tests of the task queue: every task is accounted for exactly once.

The invariant, under any interleaving of hand-outs, verdicts (accepted, failed, failed for good,
returned), provider sessions joining and leaving, and the caller taking results::

    submitted == pending + running + finished-not-taken + yielded

and once the source is exhausted and every task decided, the caller has received each task
exactly once (DONE or FAILED) before it is told the queue is drained.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from golemsync.errors import CommandFailed
from golemsync.tasks import DRAINED, Task, TaskQueue, TaskStatus, Verdict

PROVIDERS = ["p1", "p2", "p3"]


def failure(kind: int) -> Optional[BaseException]:
    """0: a silent failure (not comparable); 1 and 2: two distinct, comparable failures."""
    if kind == 0:
        return CommandFailed("exited with code 1", command="run", index=0)
    return CommandFailed("boom", command="run", index=0, stderr=f"error {'AB'[kind - 1]}")


def end(task: Task[Any], verdict: str, kind: int) -> None:
    if verdict == "accept":
        task.accept_result(task.data)
    elif verdict == "fail":
        task._end(failure(kind), Verdict.FAILED)
    elif verdict == "final":
        task._end(RuntimeError("requestor error"), Verdict.FAILED_FINAL)
    else:
        task._end(None, Verdict.RETURNED)


class QueueMachine(RuleBasedStateMachine):
    """One thread drives the queue through every operation in random order."""

    def __init__(self) -> None:
        super().__init__()
        self.queue = TaskQueue(range(12), max_retries=3, task_timeout=None, read_ahead=5)
        self.feeder = threading.Thread(target=self.queue.feed, args=(threading.Event(),),
                                       name="test-feeder")
        self.feeder.start()
        self.running: list[Task[Any]] = []
        self.yielded: list[Task[Any]] = []

    @rule(provider=st.sampled_from(PROVIDERS))
    def join(self, provider: str) -> None:
        self.queue.join(provider)

    @rule(provider=st.sampled_from(PROVIDERS))
    def leave(self, provider: str) -> None:
        self.queue.leave(provider)

    @rule(provider=st.sampled_from(PROVIDERS))
    def hand_out(self, provider: str) -> None:
        task = self.queue.get(provider, provider, timeout=0.01)
        if task is not None and task is not DRAINED:  # type: ignore[comparison-overlap]
            assert task.status is TaskStatus.RUNNING
            self.running.append(task)

    @precondition(lambda self: bool(self.running))
    @rule(pick=st.integers(0, 100), verdict=st.sampled_from(["accept", "fail", "final", "back"]),
          kind=st.integers(0, 2))
    def decide(self, pick: int, verdict: str, kind: int) -> None:
        task = self.running.pop(pick % len(self.running))
        end(task, verdict, kind)

    @rule()
    def take(self) -> None:
        item = self.queue.next_result(0.0)
        if item is not None and item is not DRAINED:  # type: ignore[comparison-overlap]
            assert item.done
            self.yielded.append(item)

    @invariant()
    def accounted_once(self) -> None:
        counts = self.queue.counts()
        assert counts["running"] == len(self.running)
        assert counts["yielded"] == len(self.yielded)
        in_flight = counts["pending"] + counts["running"] + counts["finished"] + counts["parked"]
        assert counts["submitted"] == in_flight + counts["yielded"]
        assert len({id(t) for t in self.yielded}) == len(self.yielded)

    def teardown(self) -> None:
        # Finish everything on a fresh provider; the caller must then get every task once.
        for task in self.running:
            task.accept_result(task.data)
        while True:
            task = self.queue.get("fresh", "fresh", timeout=1.0)
            if task is DRAINED:  # type: ignore[comparison-overlap]
                break
            assert task is not None, "a pending task was never handed out"
            task.accept_result(task.data)
        while (item := self.queue.next_result(1.0)) is not DRAINED:  # type: ignore[comparison-overlap]
            assert item is not None
            self.yielded.append(item)
        self.feeder.join(5)
        assert Counter(t.data for t in self.yielded) == Counter(range(12))
        assert all(t.done for t in self.yielded)
        assert self.queue.unfinished() == []


QueueMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40,
                                          deadline=None)
TestQueueMachine = QueueMachine.TestCase


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans=st.lists(st.lists(st.tuples(st.sampled_from(["accept", "fail", "final", "back"]),
                                         st.integers(0, 2)), min_size=1, max_size=8),
                      min_size=2, max_size=5),
       count=st.integers(0, 40))
def test_concurrent_verdicts_never_lose_or_repeat_a_task(plans: list[list[tuple[str, int]]],
                                                         count: int) -> None:
    """Provider threads decide tasks concurrently while the caller drains the results: the
    caller sees every task exactly once, and only then the end of the queue."""
    queue = TaskQueue(range(count), max_retries=2, task_timeout=None, read_ahead=4)
    stop = threading.Event()

    def provider(name: str, plan: list[tuple[str, int]]) -> None:
        queue.join(name)
        step = 0
        while True:
            task = queue.get(name, name, timeout=0.2)
            if task is DRAINED:  # type: ignore[comparison-overlap]
                break
            if task is None:
                continue
            verdict, kind = plan[step % len(plan)]
            step += 1
            # A provider that returns every task forever would never finish: accept instead.
            end(task, "accept" if verdict == "back" and step > 50 else verdict, kind)
        queue.leave(name)

    threads = [threading.Thread(target=queue.feed, args=(stop,), name="test-feeder")]
    threads += [threading.Thread(target=provider, args=(f"p{i}", plan), name=f"test-p{i}")
                for i, plan in enumerate(plans)]
    for thread in threads:
        thread.start()
    seen: list[Task[Any]] = []
    while (item := queue.next_result(5.0)) is not DRAINED:  # type: ignore[comparison-overlap]
        assert item is not None, "the queue stalled"
        seen.append(item)
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    assert Counter(t.data for t in seen) == Counter(range(count))
    assert all(t.status in (TaskStatus.DONE, TaskStatus.FAILED) for t in seen)
    assert queue.counts()["yielded"] == count
