"""Tasks and the thread-safe queue that hands them to worker threads.

A :class:`Task` is one independent fragment of a job. Worker threads take tasks from a
:class:`TaskQueue`; a task that fails goes back to the queue and is preferably handed to a
*different* provider next time, until it runs out of attempts. Every task reaches the caller
exactly once: accepted, or failed with its last error.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, Callable, Generic, Optional, TypeVar

from .errors import GolemError, TaskFailed

logger = logging.getLogger(__name__)

D = TypeVar("D")


class TaskStatus(enum.Enum):
    """Where a task is in its life."""

    PENDING = "pending"  # waiting in the queue (first time or for a retry)
    RUNNING = "running"  # handed to a worker on some provider
    DONE = "done"  # result accepted
    FAILED = "failed"  # out of attempts; ``task.error`` says why


class Task(Generic[D]):
    """One fragment of work: ``data`` in, ``result`` out.

    The worker decides a task's fate with :meth:`accept_result` or :meth:`reject_result`.
    ``result`` of a failed task raises :class:`~golemsync.errors.TaskFailed` (like
    ``Future.result()``), so a failure cannot pass unnoticed.
    """

    def __init__(self, data: D) -> None:
        self.data = data
        self.status = TaskStatus.PENDING
        self.attempts = 0
        self.provider_name: Optional[str] = None
        self.provider_id: Optional[str] = None
        self.running_time = 0.0
        self.cost: Optional[Decimal] = None
        self.error: Optional[BaseException] = None
        self.failed_on: set[str] = set()  # provider ids this task already failed on
        self._result: Any = None
        self._lock = threading.Lock()  # guards status/_result/error against racing verdicts
        self._started_at = 0.0
        self._deadline: Optional[float] = None
        self._on_verdict: Optional[Callable[[Task[D], bool, Optional[BaseException]], None]] = None

    def __repr__(self) -> str:
        return f"Task(data={self.data!r}, status={self.status.value}, attempts={self.attempts})"

    @property
    def result(self) -> Any:
        """The accepted result; raises :class:`TaskFailed` if the task failed for good."""
        if self.status is TaskStatus.FAILED:
            raise TaskFailed(f"task {self.data!r} failed: {self.error}", task=self) from self.error
        return self._result

    @property
    def done(self) -> bool:
        """True once the task has a final outcome (accepted or failed)."""
        return self.status in (TaskStatus.DONE, TaskStatus.FAILED)

    @property
    def deadline(self) -> Optional[float]:
        """``time.monotonic()`` instant by which the current attempt must end, if any."""
        return self._deadline

    def accept_result(self, result: Any = None) -> None:
        """Accept ``result`` as this task's outcome. Accepting twice raises ``RuntimeError``."""
        with self._lock:
            if self.status is not TaskStatus.RUNNING:
                raise RuntimeError(f"task {self.data!r} is {self.status.value}; cannot accept")
            self._result = result
            self.status = TaskStatus.DONE
            callback = self._finish_attempt()
        if callback is not None:
            callback(self, True, None)

    def reject_result(self, reason: str = "rejected by worker", *, retry: bool = True) -> None:
        """Reject this attempt; with ``retry`` it goes back to the queue (attempts allowing)."""
        self._fail(GolemError(reason), retry=retry)

    def _fail(self, error: BaseException, *, retry: bool) -> None:
        with self._lock:
            if self.status is not TaskStatus.RUNNING:
                return  # already decided; the first verdict stands
            self.error = error
            self.status = TaskStatus.PENDING if retry else TaskStatus.FAILED
            if self.provider_id:
                self.failed_on.add(self.provider_id)
            callback = self._finish_attempt()
        if callback is not None:
            callback(self, False, error)

    def _start_attempt(
        self, provider_id: str, provider_name: str, timeout: Optional[float]
    ) -> None:
        with self._lock:
            self.status = TaskStatus.RUNNING
            self.attempts += 1
            self.provider_id = provider_id
            self.provider_name = provider_name
            self._started_at = time.monotonic()
            self._deadline = None if timeout is None else self._started_at + timeout

    def _finish_attempt(self) -> Optional[Callable[[Task[D], bool, Optional[BaseException]], None]]:
        # Called with the lock held; the callback runs after it is released.
        self.running_time += time.monotonic() - self._started_at
        self._deadline = None
        return self._on_verdict


class _Drained:
    """Sentinel returned by :meth:`TaskQueue.get` when no task will ever come again."""


DRAINED = _Drained()


class TaskQueue:
    """Thread-safe queue of tasks for one job, fed from the caller's iterable.

    A feeder thread pulls from the caller's iterable (which may be a generator producing tasks
    while the job runs) and keeps at most ``read_ahead`` tasks pending. ``get`` prefers tasks
    that have not failed on the asking provider. Finished tasks are delivered through the
    ``on_final`` callback exactly once.
    """

    def __init__(
        self,
        source: Iterable[Any],
        *,
        max_retries: int,
        task_timeout: Optional[float],
        on_final: Callable[[Task[Any]], None],
        on_retry: Optional[Callable[[Task[Any], Optional[BaseException]], None]] = None,
        read_ahead: int = 64,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self._source: Iterator[Any] = iter(source)
        self._max_retries = max_retries
        self._task_timeout = task_timeout
        self._on_final = on_final
        self._on_retry = on_retry
        self._read_ahead = max(1, read_ahead)
        # _cond guards: _pending, _running, _exhausted, _waiting, _closed, _source_error.
        self._cond = threading.Condition()
        self._pending: deque[Task[Any]] = deque()
        self._running = 0
        self._waiting = 0
        self._exhausted = False
        self._closed = False
        self.source_error: Optional[BaseException] = None

    # -- feeding -------------------------------------------------------------------------
    def feed(self, stop: threading.Event) -> None:
        """Pull tasks from the source until it ends or ``stop`` is set (feeder thread body)."""
        try:
            for item in self._source:
                task = item if isinstance(item, Task) else Task(item)
                task._on_verdict = self._verdict
                with self._cond:
                    while len(self._pending) >= self._read_ahead and not self._stopping(stop):
                        self._cond.wait(0.5)
                    if self._stopping(stop):
                        return
                    self._pending.append(task)
                    self._cond.notify_all()
        except Exception as exc:  # the caller's generator raised: the job must hear of it
            logger.error("task source raised %r", exc)
            with self._cond:
                self.source_error = exc
        finally:
            with self._cond:
                self._exhausted = True
                self._cond.notify_all()

    def _stopping(self, stop: threading.Event) -> bool:
        return stop.is_set() or self._closed

    # -- consuming ------------------------------------------------------------------------
    def get(self, provider_id: str, provider_name: str, timeout: float) -> Optional[Task[Any]]:
        """Wait up to ``timeout`` s for a task for this provider.

        Returns a task (now RUNNING), ``None`` on timeout, or :data:`DRAINED` (typed as a task
        for callers' convenience, compare with ``is``) when the job has nothing left to hand out.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    if self._closed or self._is_drained():
                        return DRAINED  # type: ignore[return-value]
                    task = self._pick(provider_id)
                    if task is not None:
                        self._running += 1
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cond.wait(remaining)
            finally:
                self._waiting -= 1
            self._cond.notify_all()  # the feeder may refill now
        task._start_attempt(provider_id, provider_name, self._task_timeout)
        return task

    def _pick(self, provider_id: str) -> Optional[Task[Any]]:
        for task in self._pending:
            if provider_id not in task.failed_on:
                self._pending.remove(task)
                return task
        return None

    def _is_drained(self) -> bool:
        return self._exhausted and not self._pending and self._running == 0

    def _verdict(self, task: Task[Any], accepted: bool, error: Optional[BaseException]) -> None:
        final = accepted or task.status is TaskStatus.FAILED
        if not accepted and not final and task.attempts > self._max_retries:
            with task._lock:
                task.status = TaskStatus.FAILED
            final = True
        with self._cond:
            self._running -= 1
            if not final:
                self._pending.appendleft(task)  # retries go first: they are the oldest work
            self._cond.notify_all()
        if final:
            self._on_final(task)
            return
        logger.info("task %r failed on %s (%s); retrying", task.data, task.provider_name, error)
        if self._on_retry is not None:
            self._on_retry(task, error)

    # -- state for the market and the engine ------------------------------------------------
    def wanted_providers(self) -> int:
        """How many more providers could start work now (pending tasks beyond idle workers)."""
        with self._cond:
            backlog = len(self._pending) + (0 if self._exhausted else 1)
            return max(0, backlog - self._waiting)

    def only_failed_here(self, provider_id: str) -> bool:
        """True when every pending task already failed on ``provider_id``."""
        with self._cond:
            return bool(self._pending) and all(provider_id in t.failed_on for t in self._pending)

    @property
    def drained(self) -> bool:
        """True when every task of the job has reached its final outcome."""
        with self._cond:
            return self._is_drained()

    def close(self) -> list[Task[Any]]:
        """Stop handing out tasks; returns the tasks that were still pending."""
        with self._cond:
            self._closed = True
            left = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        return left
