"""One hired provider's thread: activity up, the user's worker over queued tasks, release.

The thread creates the activity, deploys and starts it, then drives the user's worker
generator: every script it yields is executed on this provider and the generator resumes when
the batch is over (a failed command is thrown into it, so it may catch
:class:`~golemsync.errors.CommandFailed`). When the generator ends or anything fails, the
provider is released: the activity destroyed and the agreement terminated, always. Tasks this
worker held without a verdict go back to the queue on failure.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional

from .context import WorkContext
from .errors import AuthenticationError, DaemonUnreachable, GolemError
from .events import ActivityStarted, AgreementTerminated
from .execution import BatchRunner
from .market import Hire
from .script import Script
from .tasks import DRAINED, Task, TaskQueue, TaskStatus

logger = logging.getLogger(__name__)

Worker = Callable[[WorkContext, Iterator[Task[Any]]], Iterator[Script]]

#: Errors that are not the provider's fault: the whole job must stop on them.
FATAL = (AuthenticationError, DaemonUnreachable)


class TaskFeed:
    """The blocking iterator of tasks a worker generator sees.

    Each ``next()`` waits for a task for this provider; it ends when the job has nothing left
    or is stopping. A task the worker moved past without a verdict is accepted with ``None``.
    """

    def __init__(self, queue: TaskQueue, hire: Hire, stop: threading.Event,
                 on_task: Callable[[Task[Any]], None],
                 may_continue: Callable[[], bool] = lambda: True) -> None:
        self._queue = queue
        self._hire = hire
        self._stop = stop
        self._on_task = on_task
        self._may_continue = may_continue
        self.outstanding: list[Task[Any]] = []

    def __iter__(self) -> TaskFeed:
        return self

    def __next__(self) -> Task[Any]:
        self.settle_implicitly()
        if not self._may_continue():
            logger.warning("the budget left does not cover more work on %s; releasing it",
                           self._hire.provider_name)
            raise StopIteration
        while not self._stop.is_set():
            task = self._queue.get(self._hire.provider_id, self._hire.provider_name, timeout=1.0)
            if task is DRAINED:  # type: ignore[comparison-overlap]
                break
            if task is not None:
                self.outstanding.append(task)
                self._on_task(task)
                return task
        raise StopIteration

    def settle_implicitly(self) -> None:
        """Accept (with ``None``) tasks the worker is done with but did not decide."""
        if self._stop.is_set():
            return
        for task in self._take_outstanding():
            logger.warning("worker moved past task %r without accept_result(); accepting None",
                           task.data)
            task.accept_result(None)

    def fail_outstanding(self, error: BaseException) -> None:
        """Send undecided tasks back to the queue (or to failure, attempts allowing)."""
        for task in self._take_outstanding():
            task._fail(error, retry=True)

    def _take_outstanding(self) -> list[Task[Any]]:
        undecided = [t for t in self.outstanding if t.status is TaskStatus.RUNNING]
        self.outstanding = []
        return undecided


class ProviderWorker:
    """Everything one hired provider does for a job; :meth:`run` is the thread body."""

    def __init__(self, job: Any, hire: Hire) -> None:
        self.job = job
        self.hire = hire
        self.activity_id: Optional[str] = None
        self.failed = False
        self.failure: Optional[str] = None

    def run(self) -> None:
        """Never raises: failures release the provider and requeue its tasks."""
        job, hire = self.job, self.hire
        feed = TaskFeed(job.queue, hire, job.stop,
                        lambda task: job.payments.add_task(hire.agreement_id, task),
                        lambda: job.payments.may_continue(hire.agreement_id))
        try:
            self._work(feed)
            feed.settle_implicitly()
        except BaseException as exc:  # noqa: B036 - the thread must release its provider
            self.failed = not job.stop.is_set()
            self.failure = f"{type(exc).__name__}: {exc}"
            feed.fail_outstanding(exc)
            self._report(exc)
        finally:
            self._release()
            job.worker_done(self)

    def _report(self, exc: BaseException) -> None:
        if isinstance(exc, FATAL):
            self.job.fatal(exc)
        elif not self.job.stop.is_set():
            logger.warning("provider %s failed: %s", self.hire.provider_name, exc)

    def _work(self, feed: TaskFeed) -> None:
        job, hire = self.job, self.hire
        api = job.client.activity
        requested_at = time.monotonic()
        self.activity_id = api.create_activity(hire.agreement_id, timeout=job.activity_timeout)
        job.payments.activity_started(hire.agreement_id, self.activity_id, requested_at)
        runner = BatchRunner(api, self.activity_id, provider_id=hire.provider_id,
                             provider_name=hire.provider_name, poll_timeout=job.poll_timeout,
                             stop=job.stop, emit=job.emit)
        ctx = WorkContext(
            hire.provider_id, hire.provider_name, hire.agreement_id, self.activity_id,
            _execute=lambda script: runner.execute(script, self._deadline(script, feed)),
            _storage=job.storage,
        )
        boot = ctx.new_script()
        boot.deploy()
        boot.start()
        ctx.run(boot)
        job.emit(ActivityStarted(provider_id=hire.provider_id, provider_name=hire.provider_name,
                                 activity_id=self.activity_id))
        self._drive(ctx, feed)

    def _drive(self, ctx: WorkContext, feed: TaskFeed) -> None:
        generator = self.job.worker(ctx, feed)
        if not inspect.isgenerator(generator):
            raise TypeError("the worker must be a generator function that yields scripts "
                            f"(got {type(generator).__name__})")
        error: Optional[BaseException] = None
        try:
            while True:
                try:
                    script = generator.throw(error) if error is not None else next(generator)
                except StopIteration:
                    return
                if not isinstance(script, Script):
                    raise TypeError(f"the worker yielded {script!r}; yield scripts made with "
                                    "ctx.new_script()")
                ctx._execute(script)
                # A failed command is thrown into the generator: it may catch CommandFailed.
                error = script._first_error()
        finally:
            generator.close()

    def _deadline(self, script: Script, feed: TaskFeed) -> Optional[float]:
        limits = [t.deadline for t in feed.outstanding if t.deadline is not None]
        if script.timeout is not None:
            limits.append(time.monotonic() + script.timeout)
        return min(limits) if limits else None

    def _release(self) -> None:
        """Destroy the activity and terminate the agreement; best effort, never raises."""
        job, hire = self.job, self.hire
        if self.activity_id is not None:
            try:
                job.client.activity.destroy_activity(self.activity_id)
            except GolemError as exc:
                logger.info("destroy activity on %s: %s", hire.provider_name, exc)
            job.payments.activity_ended(hire.agreement_id, self.activity_id)
        reason = {"message": "Work finished" if not self.failed else "Provider failed",
                  "golem.requestor.code": "Success" if not self.failed else "Cancelled"}
        try:
            job.client.market.terminate_agreement(hire.agreement_id, reason)
        except GolemError as exc:
            logger.info("terminate agreement with %s: %s", hire.provider_name, exc)
        job.payments.ended(hire.agreement_id)
        job.emit(AgreementTerminated(provider_id=hire.provider_id,
                                     provider_name=hire.provider_name,
                                     agreement_id=hire.agreement_id, failed=self.failed,
                                     reason=self.failure))

