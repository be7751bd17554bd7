"""One hired provider's session: its activity, the user's worker over queued tasks, the end.

The session creates the activity, then drives the user's worker generator (the activity's
deploy and start go in the same ``exec`` as the first script's commands, ahead of them:
:meth:`BatchRunner.boot_with <golemsync.execution.BatchRunner.boot_with>`). Every script it
yields is executed on this provider and the generator resumes when the batch is over (a
failed command is thrown into it, so it may catch :class:`~golemsync.errors.CommandFailed`).
What happens when something goes wrong depends on whose fault it is (:func:`classify`):

* a **task failure** (a command failed, an attempt timed out) sends the tasks the generator
  held back to the queue, and the session goes on with a fresh generator (after a timeout, on a
  fresh activity: the old one may still be busy). After ``max_task_failures`` failed attempts
  in a row with no accepted task between them the provider is deemed unreliable and released
  (a task that failed here comes back here only when no other provider serves the job);
* a **provider failure** (the activity died, the provider stopped answering, its activity could
  not be created or started) ends the session; the job releases and excludes the provider
  (a failed deploy or start sends the first script's tasks back to the queue, no attempt lost);
* a **requestor error** (a missing local file, the worker raised its own exception or yielded
  something other than a script) fails the task the worker held at once, with that error, and
  the session goes on: the provider is not blamed. Raised before the worker took any task it
  ends the job (:class:`~golemsync.errors.WorkerFailed`);
* **fatal** errors (the app key refused, the daemon gone) end the job.

Model: ``concurrent.futures.thread._worker``: the session gets exactly the collaborators it
uses (a task source, the activity API, a ledger port, an emit function, a stop event and frozen
settings), never the job itself.
"""

from __future__ import annotations

import enum
import inspect
import logging
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from .context import Usage, WorkContext
from .errors import (
    ActivityTerminated,
    ApiError,
    AuthenticationError,
    BadRequest,
    CommandFailed,
    DaemonUnreachable,
    GolemError,
    JobTimeout,
    ProtocolError,
    ProviderUnreliable,
    TransportError,
    WorkerFailed,
)
from .events import ActivityStarted, Event
from .execution import BatchRunner, BootFailed
from .market import Hire
from .script import Script
from .tasks import DRAINED, Task, TaskStatus, Verdict

if TYPE_CHECKING:
    from .rest import ActivityApi
    from .storage.base import StorageProvider

logger = logging.getLogger(__name__)

#: The user's worker: a generator function ``worker(ctx, tasks)`` yielding scripts.
Worker = Callable[[WorkContext, Iterator[Task[Any]]], Iterator[Script]]


class Fault(enum.Enum):
    """Whose fault a failure is (see the module docstring)."""

    TASK = "task"
    PROVIDER = "provider"
    REQUESTOR = "requestor"
    FATAL = "fatal"


def classify(error: BaseException) -> Fault:
    """Whose fault ``error`` is, when it ends a worker generator on a provider."""
    if isinstance(error, (AuthenticationError, DaemonUnreachable)):
        return Fault.FATAL
    if isinstance(error, (CommandFailed, JobTimeout)):
        return Fault.TASK
    if isinstance(error, BadRequest):
        return Fault.REQUESTOR  # the daemon refused what we sent (e.g. a malformed command)
    if isinstance(error, (ActivityTerminated, ApiError, TransportError, ProtocolError)):
        return Fault.PROVIDER
    return Fault.REQUESTOR  # the worker's own exception, junk yielded, a local file missing


@dataclass(frozen=True)
class SessionSettings:
    """What a provider session needs to know of the job's settings."""

    poll_timeout: float = 3.0
    activity_timeout: float = 60.0
    max_task_failures: int = 3


class TaskSource(Protocol):
    """Where a session takes its tasks from (the job's :class:`~golemsync.tasks.TaskQueue`)."""

    def join(self, provider_id: str) -> None: ...

    def leave(self, provider_id: str) -> None: ...

    def get(self, provider_id: str, provider_name: str,
            timeout: float) -> Optional[Task[Any]]: ...


class Ledger(Protocol):
    """The payments side a session reports to (:class:`~golemsync.payments.Payments`)."""

    def add_task(self, agreement_id: str, task: Task[Any]) -> None: ...

    def activity_started(self, agreement_id: str, activity_id: str,
                         requested_at: Optional[float] = None) -> None: ...

    def activity_ended(self, agreement_id: str, activity_id: str,
                       final_usage: Optional[Sequence[float]] = None,
                       usage_age: float = 0.0) -> None: ...

    def may_continue(self, agreement_id: str) -> bool: ...


@dataclass(frozen=True)
class SessionEnd:
    """How a session ended: ``provider_failed`` excludes the provider for the job; ``fatal``
    ends the whole job; ``reason`` is the last error, for the diagnosis."""

    provider_failed: bool = False
    reason: Optional[str] = None
    fatal: Optional[BaseException] = None


class TaskFeed:
    """The blocking iterator of tasks one worker generator sees.

    Each ``next()`` waits for a task for this provider; it ends when the job has nothing left,
    is stopping, or the budget left cannot pay this provider for another task. A task the
    worker moved past without a verdict is accepted with ``None``.
    """

    def __init__(self, tasks: TaskSource, hire: Hire, ledger: Ledger,
                 stop: threading.Event) -> None:
        self._tasks = tasks
        self._hire = hire
        self._ledger = ledger
        self._stop = stop
        self.handed: list[Task[Any]] = []  # every task this feed gave out
        self.budget_reached = False

    def __iter__(self) -> TaskFeed:
        return self

    def __next__(self) -> Task[Any]:
        self.settle_implicitly()
        hire = self._hire
        while not self._stop.is_set():
            if not self._ledger.may_continue(hire.agreement_id):
                self.budget_reached = True
                break
            task = self._tasks.get(hire.provider_id, hire.provider_name, timeout=1.0)
            if task is DRAINED:  # type: ignore[comparison-overlap]
                break
            if task is not None:
                self.handed.append(task)
                self._ledger.add_task(hire.agreement_id, task)
                return task
        raise StopIteration

    @property
    def outstanding(self) -> list[Task[Any]]:
        """Tasks handed out and still without a verdict."""
        return [t for t in self.handed
                if t.status is TaskStatus.RUNNING and t.provider_id == self._hire.provider_id]

    @property
    def accepted_any(self) -> bool:
        return any(t.status is TaskStatus.DONE and t.provider_id == self._hire.provider_id
                   for t in self.handed)

    def settle_implicitly(self) -> None:
        """Accept (with ``None``) tasks the worker is done with but did not decide."""
        if self._stop.is_set():
            return
        for task in self.outstanding:
            logger.warning("worker moved past task %r without accept_result(); accepting None",
                           task.data)
            task.accept_result(None)

    def end_outstanding(self, error: Optional[BaseException], verdict: Verdict) -> None:
        """End every undecided task with ``verdict`` (retried, returned or failed)."""
        for task in self.outstanding:
            task._end(error, verdict)

    def fail_culprit(self, error: BaseException) -> bool:
        """A requestor error: the task taken last fails at once, the others go back untouched.
        False when the worker held no task (the error is not any task's)."""
        undecided = self.outstanding
        if not undecided:
            return False
        *others, culprit = undecided
        for task in others:
            task._end(None, Verdict.RETURNED)
        culprit._end(error, Verdict.FAILED_FINAL)
        return True


def create_activity(api: ActivityApi, hire: Hire, ledger: Ledger, *, timeout: float) -> str:
    """Create an activity on ``hire``'s agreement and tell the ledger; its id.

    Shared by task sessions and service instances (:mod:`golemsync.services`)."""
    requested_at = time.monotonic()  # the ledger bounds usage by what we observed
    activity_id = api.create_activity(hire.agreement_id, timeout=timeout)
    ledger.activity_started(hire.agreement_id, activity_id, requested_at)
    return activity_id


def deploy_and_start(ctx: WorkContext, emit: Callable[[Event], None],
                     deploy_args: Optional[dict[str, Any]] = None) -> None:
    """Deploy (with ``deploy_args``) and start the activity of ``ctx``; blocks until done.

    A refused deploy or start is the provider's failure: :class:`ActivityTerminated`."""
    boot = ctx.new_script()
    boot.deploy(**(deploy_args or {}))
    boot.start()
    try:
        ctx.run(boot)
    except CommandFailed as exc:  # the provider could not start what it offered
        raise ActivityTerminated(f"deploy/start failed on {ctx.provider_name}: {exc}",
                                 provider=ctx.provider_name) from exc
    emit(ActivityStarted(provider_id=ctx.provider_id, provider_name=ctx.provider_name,
                         activity_id=ctx.activity_id))


def destroy_activity(api: ActivityApi, hire: Hire, ledger: Ledger, activity_id: str, *,
                     read_usage: bool) -> None:
    """Destroy ``activity_id``; never raises. With ``read_usage`` (no command running) its
    usage is read first: the ledger bounds the invoice by it."""
    final_usage, age = None, 0.0
    try:  # the usage at the end bounds what the invoice may ask for this activity
        if read_usage:
            reading = api.get_usage(activity_id)
            final_usage = reading.current_usage
            if reading.timestamp > 0:  # whole seconds: the reading is at least this old
                age = max(0.0, time.time() - reading.timestamp - 1.0)
    except GolemError as exc:
        logger.info("usage of the activity on %s: %s", hire.provider_name, exc)
    try:
        api.destroy_activity(activity_id)
    except GolemError as exc:
        logger.info("destroy activity on %s: %s", hire.provider_name, exc)
    ledger.activity_ended(hire.agreement_id, activity_id, final_usage, age)


def drive_scripts(generator: Generator[Any, None, Any], ctx: WorkContext,
                  execute: Callable[[Script], Optional[BaseException]], *, who: str,
                  maker: str, proceed: Callable[[], bool] = lambda: True) -> bool:
    """Run every script ``generator`` yields, each through ``execute``; the error it returns
    (a failed command) is thrown back into the generator, which may catch it. False when
    ``proceed()`` said to stop before a script; the generator is closed either way. ``who``
    and ``maker`` name the generator and how scripts are made, in errors."""
    error: Optional[BaseException] = None
    try:
        while True:
            try:
                script = generator.throw(error) if error is not None else next(generator)
            except StopIteration:
                return True
            if not proceed():
                return False
            if not isinstance(script, Script):
                raise TypeError(f"{who} yielded {script!r}; yield scripts made with {maker}")
            if script.ctx is not ctx:
                raise ValueError(f"{who} yielded a script of another provider's context")
            error = execute(script)
    finally:
        generator.close()


def _leaves_idle(error: BaseException) -> bool:
    """Whether the activity is idle after the worker ended with ``error``: a task's own failure
    or the requestor's error (nothing runs any more), not a timeout (its batch may still run)
    nor a failure of the provider or the daemon (a usage read would only fail, or wait)."""
    if isinstance(error, (ProviderUnreliable, WorkerFailed)):
        return True
    return classify(error) in (Fault.TASK, Fault.REQUESTOR) and not isinstance(error, JobTimeout)


class ProviderSession:
    """Everything one hired provider does for a job; :meth:`run` is the thread body."""

    def __init__(
        self,
        hire: Hire,
        *,
        worker: Worker,
        tasks: TaskSource,
        activity: ActivityApi,
        ledger: Ledger,
        storage: Callable[[], StorageProvider],
        emit: Callable[[Event], None],
        stop: threading.Event,
        settings: SessionSettings,
        finished: Optional[threading.Event] = None,
    ) -> None:
        self.hire = hire
        self._finished = finished  # set (before stop) when the job ended with every task done
        self._worker = worker
        self._tasks = tasks
        self._activity = activity
        self._ledger = ledger
        self._storage = storage
        self._emit = emit
        self._stop = stop
        self._settings = settings
        self.activity_id: Optional[str] = None
        self.budget_reached = False
        self._feed: Optional[TaskFeed] = None  # the current generator's feed
        self._runner: Optional[BatchRunner] = None  # runs scripts on the current activity
        self._activity_lock = threading.Lock()  # guards activity_id (interrupt() races the end)
        self._busy = False  # a script is running (read by interrupt() from another thread)

    def run(self) -> SessionEnd:
        """Serve the job until it has nothing left for this provider. Never raises."""
        self._tasks.join(self.hire.provider_id)
        idle = False  # whether the worker ended with no command running
        try:
            self._serve()
            idle = True
            return SessionEnd()
        except BaseException as exc:  # noqa: B036 - the thread must report every ending
            idle = not self._busy and _leaves_idle(exc)
            return self._ending(exc)
        finally:
            # the usage read bounds the invoice; only an interrupted job skips it (speed)
            interrupted = self._stop.is_set() and not (
                self._finished is not None and self._finished.is_set())
            self._destroy_activity(read_usage=idle and not interrupted)
            self._tasks.leave(self.hire.provider_id)

    def _ending(self, exc: BaseException) -> SessionEnd:
        reason = f"{type(exc).__name__}: {exc}"
        if self._stop.is_set():
            return SessionEnd(reason=reason)  # stopping: nothing is anyone's fault
        fault = classify(exc) if not isinstance(exc, (WorkerFailed, ProviderUnreliable)) else None
        if fault is Fault.FATAL or isinstance(exc, WorkerFailed):
            return SessionEnd(reason=reason, fatal=exc)
        logger.warning("provider %s released: %s", self.hire.provider_name, reason)
        return SessionEnd(provider_failed=True, reason=reason)

    # -- the activity ----------------------------------------------------------------------------
    def _open_activity(self) -> WorkContext:
        hire = self.hire
        activity_id = create_activity(self._activity, hire, self._ledger,
                                      timeout=self._settings.activity_timeout)
        with self._activity_lock:
            self.activity_id = activity_id
        if self._stop.is_set():  # stopped while the activity was being created
            raise ActivityTerminated("the job is stopping", provider=hire.provider_name)
        runner = BatchRunner(self._activity, activity_id, provider_id=hire.provider_id,
                             provider_name=hire.provider_name,
                             poll_timeout=self._settings.poll_timeout, stop=self._stop,
                             emit=self._emit)
        self._runner = runner
        ctx = WorkContext(
            hire.provider_id, hire.provider_name, hire.agreement_id, activity_id,
            _execute=self._execute, _storage=self._storage,
            _usage=lambda: self._read_usage(activity_id), _pricing=hire.pricing,
        )
        boot = ctx.new_script()
        boot.deploy()
        boot.start()

        def booted() -> None:
            self._emit(ActivityStarted(provider_id=hire.provider_id,
                                       provider_name=hire.provider_name,
                                       activity_id=activity_id))

        runner.boot_with(boot.seal(), booted)  # sent ahead of the first script's commands
        return ctx

    def _read_usage(self, activity_id: str) -> Usage:
        """The activity's usage counters by name (the agreement's usage vector)."""
        reply = self._activity.get_usage(activity_id)
        names = self.hire.properties.get("golem.com.usage.vector")
        values = reply.current_usage or []
        if not isinstance(names, list) or len(names) != len(values):
            raise ProtocolError(f"usage of the activity on {self.hire.provider_name} does not "
                                f"match the agreed usage vector: {values!r} for {names!r}")
        return Usage({str(n): float(v) for n, v in zip(names, values)})

    def interrupt(self, read_usage: bool = False) -> None:
        """The job is stopping (``stop`` is set): destroy the activity now, from the stopping
        thread, so a results poll in flight ends at once instead of waiting out its window.
        ``read_usage`` (the job finished: no hurry) reads its usage first unless a script is
        running, so the invoice is bounded by it as when the session ends by itself."""
        self._destroy_activity(read_usage=read_usage and not self._busy)

    def _destroy_activity(self, read_usage: bool) -> None:
        """Destroy the activity (once); with ``read_usage`` (no command running) its usage is
        read first: the ledger bounds the invoice by it."""
        with self._activity_lock:
            activity_id, self.activity_id = self.activity_id, None
        if activity_id is None:
            return
        destroy_activity(self._activity, self.hire, self._ledger, activity_id,
                         read_usage=read_usage)

    # -- the worker generator ------------------------------------------------------------------
    def _serve(self) -> None:
        ctx = self._open_activity()
        streak = 0  # failed attempts in a row here, with no accepted task between
        while not self._stop.is_set():
            feed = self._feed = TaskFeed(self._tasks, self.hire, self._ledger, self._stop)
            try:
                self._drive(ctx, feed)
            except BaseException as exc:  # noqa: B036 - sorted by fault below
                if feed.accepted_any:
                    streak = 0
                streak += classify(exc) is Fault.TASK
                if not self._recover(exc, feed, streak):
                    raise
                if isinstance(exc, JobTimeout):  # the timed-out batch may still be running
                    self._destroy_activity(read_usage=False)
                    ctx = self._open_activity()
                continue
            feed.settle_implicitly()
            self.budget_reached = feed.budget_reached
            return

    def _recover(self, exc: BaseException, feed: TaskFeed, streak: int) -> bool:
        """Settle the generator's tasks after ``exc``; True when the session can go on."""
        if self._stop.is_set():
            feed.end_outstanding(None, Verdict.RETURNED)
            return False
        fault = classify(exc)
        if fault is Fault.TASK:
            feed.end_outstanding(exc, Verdict.FAILED)
            if streak >= self._settings.max_task_failures:
                raise ProviderUnreliable(
                    f"{streak} task attempts in a row failed on provider "
                    f"{self.hire.provider_name}; the last: {exc}") from exc
            return True
        if fault is Fault.REQUESTOR:
            if feed.fail_culprit(exc):
                logger.error("task failed by the requestor's own error on %s: %s: %s",
                             self.hire.provider_name, type(exc).__name__, exc)
                return True
            raise WorkerFailed(f"the worker raised {type(exc).__name__} before taking a task: "
                               f"{exc}") from exc
        task_failed = fault is Fault.PROVIDER and not isinstance(exc, BootFailed)
        feed.end_outstanding(exc, Verdict.FAILED if task_failed else Verdict.RETURNED)
        return False

    def _drive(self, ctx: WorkContext, feed: TaskFeed) -> None:
        generator = self._worker(ctx, feed)
        if not inspect.isgenerator(generator):
            raise TypeError("the worker must be a generator function that yields scripts "
                            f"(got {type(generator).__name__})")
        drive_scripts(generator, ctx, self._execute, who="the worker",
                      maker="ctx.new_script()")

    def _execute(self, script: Script) -> Optional[BaseException]:
        """Run ``script`` on the current activity; the first command error, or None."""
        assert self._runner is not None
        self._busy = True
        try:
            return self._runner.execute(script, self._deadline(script))
        finally:
            self._busy = False

    def _deadline(self, script: Script) -> Optional[float]:
        feed = self._feed
        limits = [t.deadline for t in (feed.outstanding if feed else ()) if t.deadline is not None]
        if script.timeout is not None:
            limits.append(time.monotonic() + script.timeout)
        return min(limits) if limits else None
