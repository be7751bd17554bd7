"""Tasks and the thread-safe queue that hands them to provider sessions and back to the caller.

A :class:`Task` is one independent fragment of a job. Provider sessions take tasks from a
:class:`TaskQueue`; a task that fails goes back to the queue and is preferably handed to a
*different* provider next time, until it runs out of attempts.

The queue is also where finished tasks wait for the caller, so *the* invariant of a job is kept
in one place, under one lock::

    submitted == pending + running + finished-not-yet-yielded + yielded + parked

Every task read from the caller's iterable is yielded exactly once (accepted or failed); when
the job ends early, :meth:`TaskQueue.unfinished` returns every task read but not yielded.

Retry rules (see the guide's "failures" chapter):

* a task *failure* (a command failed, the worker rejected the result, the attempt timed out)
  sends the task back, unless it has failed ``max_retries + 1`` times, or it failed **the same
  way on two different providers** (:func:`failure_signature` — same command, same exit code,
  same error output; or a timeout on both): a deterministic failure is the task's, so it is
  not tried on every provider in turn;
* a *requestor error* (a missing local file, a worker that raised or yielded junk) fails the
  task at once, with that error;
* a task *returned* (its provider session ended for reasons not its own, e.g. the job stops,
  or the budget for that provider ran out) goes back without using up an attempt.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Generic, Optional, TypeVar

from .errors import CommandFailed, GolemError, JobTimeout, RepeatedFailure, TaskFailed

logger = logging.getLogger(__name__)

D = TypeVar("D")

#: How many providers may fail a task with the same signature before it fails for good.
SAME_FAILURE_PROVIDERS = 2

_VOLATILE = re.compile(r"0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+")


class TaskStatus(enum.Enum):
    """Where a task is in its life."""

    PENDING = "pending"  # waiting in the queue (first time or for a retry)
    RUNNING = "running"  # handed to a worker on some provider
    DONE = "done"  # result accepted
    FAILED = "failed"  # out of attempts, or failed for good; ``task.error`` says why


class Verdict(enum.Enum):
    """How an attempt ended (what the queue does next depends on it)."""

    ACCEPTED = "accepted"
    FAILED = "failed"  # the task's own failure: retried, attempts and signatures allowing
    FAILED_FINAL = "failed-final"  # fails the task at once (requestor error, no-retry reject)
    RETURNED = "returned"  # not the task's fault: back to the queue, the attempt not counted


@dataclass(frozen=True)
class Attempt:
    """One finished attempt of a task, as the queue's callbacks see it."""

    provider_id: str
    provider_name: str
    verdict: Verdict
    error: Optional[BaseException]


def failure_signature(error: Optional[BaseException]) -> Optional[str]:
    """What makes two failures "the same" for the deterministic-failure rule, or None.

    A timeout is always comparable. A failed ``run`` is comparable only when it wrote error
    output (exit code plus that output); a failed transfer or other command by its message.
    Ids and numbers are blanked so the same error from two providers compares equal. Silent
    failures (no output: killed, crashed) are not comparable: they are retried as usual.
    """
    if isinstance(error, JobTimeout):
        return "timeout"
    if not isinstance(error, CommandFailed):
        return None
    if error.command == "run":
        output = error.stderr if error.stderr else error.stdout
        if not output:
            return None
        text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
        return f"run:{error.index}:{error.exit_code}:{_VOLATILE.sub('#', text.strip())}"
    text = str(error.message or error)
    if error.provider:
        text = text.replace(error.provider, "")
    return f"{error.command}:{error.index}:{_VOLATILE.sub('#', text)}"


class Task(Generic[D]):
    """One fragment of work: ``data`` in, ``result`` out.

    The worker decides a task's fate with :meth:`accept_result` or :meth:`reject_result`.
    ``result`` of a failed task raises :class:`~golemsync.errors.TaskFailed` (like
    ``Future.result()``), so a failure cannot pass unnoticed. ``provider_name``/``provider_id``
    name the provider of the latest attempt (for a failed task: the one it last failed on).

    ``key`` names the task in a journal (see :mod:`golemsync.journal`); without one the journal
    derives it from ``data``. ``resumed`` is True for a task a journal found finished by an
    earlier run: it was not run again and its ``result`` is the one recorded then.
    """

    def __init__(self, data: D, *, key: Optional[str] = None) -> None:
        self.data = data
        self.key = key
        self.resumed = False
        self.status = TaskStatus.PENDING
        self.attempts = 0
        self.provider_name: Optional[str] = None
        self.provider_id: Optional[str] = None
        self.running_time = 0.0
        self.cost: Optional[Decimal] = None
        self.error: Optional[BaseException] = None
        self.failed_on: set[str] = set()  # provider ids this task already failed on
        self.cancelled = False  # set when the submitter withdrew it before it ran (executor)
        self._signatures: dict[str, str] = {}  # failure signature -> first provider id
        self._result: Any = None
        self._lock = threading.Lock()  # guards status/_result/error against racing verdicts
        self._started_at = 0.0
        self._deadline: Optional[float] = None
        self._on_verdict: Optional[Callable[[Task[D], Attempt], None]] = None

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
            self.error = None  # an earlier attempt's error no longer describes the task
            self.status = TaskStatus.DONE
        self._finish(Verdict.ACCEPTED, None)

    def reject_result(self, reason: str = "rejected by worker", *, retry: bool = True) -> None:
        """Reject this attempt; with ``retry`` it goes back to the queue (attempts allowing)."""
        self._end(GolemError(reason), Verdict.FAILED if retry else Verdict.FAILED_FINAL)

    def _end(self, error: Optional[BaseException], verdict: Verdict) -> bool:
        """End the running attempt (not by acceptance). False if it was already decided."""
        with self._lock:
            if self.status is not TaskStatus.RUNNING:
                return False  # already decided; the first verdict stands
            if verdict is not Verdict.RETURNED:
                self.error = error
            self.status = TaskStatus.PENDING  # the queue decides whether it is final
        self._finish(verdict, error)
        return True

    def _finish(self, verdict: Verdict, error: Optional[BaseException]) -> None:
        with self._lock:
            self.running_time += time.monotonic() - self._started_at
            self._deadline = None
            attempt = Attempt(self.provider_id or "", self.provider_name or "", verdict, error)
            callback = self._on_verdict
        if callback is not None:
            callback(self, attempt)

    def _resume(self, result: Any) -> None:
        """Mark the task finished by an earlier run (a journal's record): it will not run."""
        with self._lock:
            if self.status is not TaskStatus.PENDING or self.attempts:
                raise RuntimeError(f"task {self.data!r} already ran; cannot resume it")
            self._result = result
            self.status = TaskStatus.DONE
            self.resumed = True

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


class _Drained:
    """Sentinel returned by :meth:`TaskQueue.get` when no task will ever come again."""

    def __repr__(self) -> str:
        return "DRAINED"


DRAINED = _Drained()


class TaskQueue:
    """Thread-safe queue of one job's tasks, fed from the caller's iterable.

    A feeder thread pulls from the caller's iterable (which may be a generator producing tasks
    while the job runs) and keeps at most ``read_ahead`` tasks pending. ``get`` prefers tasks
    that have not failed on the asking provider. Finished tasks wait in the queue until the
    caller takes them with :meth:`next_result`; ``on_final``/``on_retry`` are notified (outside
    the lock) as tasks finish or go back for another attempt.
    """

    def __init__(
        self,
        source: Iterable[Any],
        *,
        max_retries: int,
        task_timeout: Optional[float],
        on_final: Optional[Callable[[Task[Any], Attempt], None]] = None,
        on_retry: Optional[Callable[[Task[Any], Attempt], None]] = None,
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
        # _cond guards every attribute below it.
        self._cond = threading.Condition()
        self._pending: deque[Task[Any]] = deque()
        self._finished: deque[Task[Any]] = deque()  # final, not yet taken by the caller
        self._unyielded: dict[int, Task[Any]] = {}  # id() -> every task read, not yet yielded
        self._active: dict[str, int] = {}  # provider id -> sessions serving the job
        self._running = 0
        self._waiting = 0
        self._submitted = 0
        self._yielded = 0
        self._parked = 0  # read, then left out by close(): unfinished
        self._exhausted = False
        self._closed = False
        self._woken = False
        self.source_error: Optional[BaseException] = None

    # -- feeding -------------------------------------------------------------------------
    def feed(self, stop: threading.Event) -> None:
        """Pull tasks from the source until it ends or ``stop`` is set (feeder thread body)."""
        try:
            for item in self._source:
                task = item if isinstance(item, Task) else Task(item)
                if not self._admit(task, stop):
                    return
        except Exception as exc:  # the caller's generator raised: the job must hear of it
            logger.error("task source raised %r", exc)
            with self._cond:
                self.source_error = exc
        finally:
            with self._cond:
                self._exhausted = True
                self._cond.notify_all()

    def _admit(self, task: Task[Any], stop: threading.Event) -> bool:
        with self._cond:
            resumed = task.resumed and task.status is TaskStatus.DONE
            if (task.status is not TaskStatus.PENDING and not resumed) \
                    or id(task) in self._unyielded:
                raise ValueError(f"{task!r} was given to the job twice or already ran; "
                                 "give each Task object once")
            if resumed:  # finished by an earlier run: straight to the caller
                self._unyielded[id(task)] = task
                self._submitted += 1
                self._finished.append(task)
                self._cond.notify_all()
                return True
            while len(self._pending) >= self._read_ahead and not self._stopping(stop):
                self._cond.wait(0.5)  # woken by get(); the timeout only re-checks ``stop``
            task._on_verdict = self._verdict
            self._unyielded[id(task)] = task  # read from the source: now accounted for
            self._submitted += 1
            if self._stopping(stop):
                self._parked += 1
                return False
            self._pending.append(task)
            self._cond.notify_all()
        return True

    def _stopping(self, stop: threading.Event) -> bool:
        return stop.is_set() or self._closed

    # -- provider sessions ------------------------------------------------------------------
    def join(self, provider_id: str) -> None:
        """A session on ``provider_id`` starts serving this job."""
        with self._cond:
            self._active[provider_id] = self._active.get(provider_id, 0) + 1

    def leave(self, provider_id: str) -> None:
        """That session ended; tasks that failed only on the remaining providers may move."""
        with self._cond:
            count = self._active.get(provider_id, 0) - 1
            if count > 0:
                self._active[provider_id] = count
            else:
                self._active.pop(provider_id, None)
            self._cond.notify_all()

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
                    if self._closed or self._nothing_to_hand_out():
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
            task._start_attempt(provider_id, provider_name, self._task_timeout)
            self._cond.notify_all()  # the feeder may refill now
        return task

    def _pick(self, provider_id: str) -> Optional[Task[Any]]:
        for task in self._pending:
            if provider_id not in task.failed_on:
                self._pending.remove(task)
                return task
        # A task that failed here goes back here only when every serving provider failed it.
        others = set(self._active) - {provider_id}
        if provider_id in self._active:
            for task in self._pending:
                if others <= task.failed_on:
                    self._pending.remove(task)
                    return task
        return None

    def _nothing_to_hand_out(self) -> bool:
        return self._exhausted and not self._pending and self._running == 0

    # -- verdicts -------------------------------------------------------------------------------
    def _verdict(self, task: Task[Any], attempt: Attempt) -> None:
        final = self._decide(task, attempt)
        with self._cond:
            self._running -= 1
            if final:
                self._finished.append(task)
            elif self._closed:
                self._parked += 1
            else:
                self._pending.appendleft(task)  # retries go first: they are the oldest work
            self._cond.notify_all()
        if final:
            if self._on_final is not None:
                self._on_final(task, attempt)
        elif attempt.verdict is not Verdict.RETURNED:
            logger.info("task %r failed on %s (%s); retrying", task.data, attempt.provider_name,
                        attempt.error)
            if self._on_retry is not None:
                self._on_retry(task, attempt)

    def _decide(self, task: Task[Any], attempt: Attempt) -> bool:
        """Whether ``attempt`` ends ``task`` for good; sets its final status if so."""
        if attempt.verdict is Verdict.ACCEPTED:
            return True
        with task._lock:
            if attempt.verdict is Verdict.RETURNED:
                task.attempts -= 1  # not the task's attempt: it did not fail
                return False
            task.failed_on.add(attempt.provider_id)
            final = attempt.verdict is Verdict.FAILED_FINAL or self._out_of_attempts(task)
            repeated = self._repeated(task, attempt)
            if repeated is not None and not final:
                task.error = _repeated_failure(repeated, attempt.error)
                final = True
            if final:
                task.status = TaskStatus.FAILED
            return final

    def _out_of_attempts(self, task: Task[Any]) -> bool:
        return task.attempts > self._max_retries

    @staticmethod
    def _repeated(task: Task[Any], attempt: Attempt) -> Optional[str]:
        # called with task._lock held
        signature = failure_signature(attempt.error)
        if signature is None:
            return None
        first = task._signatures.setdefault(signature, attempt.provider_id)
        if first == attempt.provider_id:
            return None
        return first

    # -- the caller's side -------------------------------------------------------------------
    def next_result(self, timeout: float) -> Optional[Task[Any]]:
        """The next finished task, ``None`` after ``timeout`` s, or :data:`DRAINED` when every
        task read from the source has been yielded and the source is exhausted."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._finished:
                if self._nothing_to_hand_out() or (self._closed and self._running == 0
                                                   and not self._pending):
                    return DRAINED  # type: ignore[return-value]
                if self._woken:
                    self._woken = False
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            task = self._finished.popleft()
            del self._unyielded[id(task)]
            self._yielded += 1
            return task

    def wake(self) -> None:
        """Wake a caller blocked in :meth:`next_result` (it returns ``None`` at once)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def rest_of_source(self) -> Iterator[Any]:
        """The items the feeder never read (only once the feeder has ended)."""
        return self._source

    def unfinished(self) -> list[Task[Any]]:
        """Every task read from the source but not yielded (call after the job's threads
        ended): pending, interrupted or finished-but-not-taken, in the order they were read."""
        with self._cond:
            return list(self._unyielded.values())

    def counts(self) -> dict[str, int]:
        """``submitted``, ``yielded``, ``pending``, ``running``, ``finished`` (not yet taken)
        and ``parked`` (left out when the queue closed); the first is the sum of the others."""
        with self._cond:
            return {"submitted": self._submitted, "yielded": self._yielded,
                    "pending": len(self._pending), "running": self._running,
                    "finished": len(self._finished), "parked": self._parked}

    # -- state for the market and the engine ------------------------------------------------
    def wanted_providers(self) -> int:
        """How many more providers could start work now (pending tasks beyond idle workers)."""
        with self._cond:
            if self._closed:
                return 0
            backlog = len(self._pending) + (0 if self._exhausted else 1)
            return max(0, backlog - self._waiting)

    @property
    def drained(self) -> bool:
        """True when every task of the job has reached its final outcome."""
        with self._cond:
            return self._nothing_to_hand_out()

    def close(self) -> list[Task[Any]]:
        """Stop handing out tasks; returns the tasks that were still pending."""
        with self._cond:
            self._closed = True
            left = list(self._pending)
            self._parked += len(left)
            self._pending.clear()
            self._cond.notify_all()
        return left


def _repeated_failure(first_provider: str, error: Optional[BaseException]) -> RepeatedFailure:
    failure = RepeatedFailure(f"{error} (it failed the same way on provider {first_provider}: "
                              "not retried further, the task itself fails this way)",
                              first_provider=first_provider)
    failure.__cause__ = error
    return failure
