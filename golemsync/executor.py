"""``concurrent.futures.Executor`` on Golem: code written for a thread pool, run on providers.

::

    def square(ctx, n):                      # runs on a worker thread, on some provider
        script = ctx.new_script()
        out = script.run("/bin/sh", "-c", f"echo $(({n} * {n}))")
        ctx.run(script)                      # blocks until the script is done
        return int(out.result().stdout)

    with Golem(budget=1) as golem, golem.executor(payload, max_workers=4) as pool:
        print(list(pool.map(square, range(10))))

``submit(fn, *args)`` returns a standard Future of ``fn(ctx, *args)``'s return value, so
``as_completed``, ``wait`` and callbacks work. Semantics follow ``ThreadPoolExecutor``:

* a Future cancelled before it starts never runs;
* an exception raised by ``fn`` is set on its Future — except provider failures
  (:class:`~golemsync.errors.ActivityTerminated`, :class:`~golemsync.errors.CommandFailed`,
  a script timeout), which retry the call on another provider up to ``max_retries`` times,
  after which the last one is set;
* ``shutdown(wait=True, cancel_futures=False)``: no new submissions; ``cancel_futures``
  cancels what has not started; ``wait`` blocks until the running calls are done and the
  providers released.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from .errors import ActivityTerminated, CommandFailed, GolemError, JobTimeout
from .script import Script
from .tasks import Task, TaskStatus

if TYPE_CHECKING:
    from .context import WorkContext
    from .payload import Payload

logger = logging.getLogger(__name__)

#: Failures that are the provider's, not the function's: the call is retried elsewhere.
RETRIED = (ActivityTerminated, CommandFailed, JobTimeout)

_END = object()


class _Call:
    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        self.future, self.fn, self.args, self.kwargs = future, fn, args, kwargs


class JobRunner(Protocol):
    """What the executor needs of a ``Golem``: a way to run a job (no import of the engine)."""

    def execute_tasks(self, worker: Any, data: Iterable[Any], payload: Payload, *,
                      max_workers: int = ..., max_retries: int = ...,
                      task_timeout: Optional[float] = ..., offer_timeout: float = ...,
                      progress: Optional[bool] = ...,
                      journal: Any = ...) -> Iterator[Task[Any]]: ...


class GolemExecutor(Executor):
    """An Executor whose workers are Golem providers; create it with ``golem.executor()``."""

    def __init__(self, golem: JobRunner, payload: Payload, *, max_workers: int = 4,
                 max_retries: int = 3, task_timeout: Optional[float] = None,
                 offer_timeout: float = 60.0, journal: Any = None) -> None:
        self._golem = golem
        self._journal = journal
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _shutdown and _pending
        self._shutdown = False
        self._pending: set[Future[Any]] = set()
        self._error: Optional[BaseException] = None
        self._driver = threading.Thread(
            target=self._drive, name="golemsync-executor",
            args=(payload, max_workers, max_retries, task_timeout, offer_timeout))
        self._driver.start()

    # -- Executor API --------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Schedule ``fn(ctx, *args, **kwargs)`` on a provider; returns its Future at once."""
        future: Future[Any] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            if self._error is not None:
                raise RuntimeError(f"the executor's job failed: {self._error}")
            self._pending.add(future)
        future.add_done_callback(self._forget)
        self._calls.put(_Call(future, fn, args, kwargs))
        return future

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait for the driver thread (after :meth:`shutdown`)."""
        self._driver.join(timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting calls; optionally cancel unstarted ones; optionally wait for the rest."""
        with self._lock:
            already = self._shutdown
            self._shutdown = True
            pending = list(self._pending) if cancel_futures else []
        for future in pending:
            future.cancel()
        if not already:
            self._calls.put(_END)
        if wait:
            self._driver.join()

    # -- the job ---------------------------------------------------------------------------------
    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _source(self) -> Iterator[Task[_Call]]:
        while True:
            item = self._calls.get()
            if item is _END:
                return
            yield Task(item)

    def _drive(self, payload: Payload, max_workers: int, max_retries: int,
               task_timeout: Optional[float], offer_timeout: float) -> None:
        try:
            for task in self._golem.execute_tasks(
                    _worker, self._source(), payload, max_workers=max_workers,
                    max_retries=max_retries, task_timeout=task_timeout,
                    offer_timeout=offer_timeout, progress=False, journal=self._journal):
                _settle(task)
        except BaseException as exc:  # noqa: B036 - every Future must hear of it
            logger.error("executor job failed: %s", exc)
            self._fail_all(exc)
            return
        # Normally nothing is left; calls still pending here were cut off by Golem closing.
        self._fail_all(GolemError("the Golem session ended before this call could run"))

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            self._error = error
            self._shutdown = True
            pending = list(self._pending)
        for future in pending:
            if future.set_running_or_notify_cancel() or future.running():
                if not future.done():
                    future.set_exception(error)
        while True:  # drain calls submitted meanwhile
            try:
                item = self._calls.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Call) and not item.future.done():
                if item.future.set_running_or_notify_cancel():
                    item.future.set_exception(error)


def _settle(task: Task[_Call]) -> None:
    """Give a finished task's outcome to its Future (exactly once)."""
    future = task.data.future
    if future.done():
        return
    if task.status is TaskStatus.DONE:
        outcome = task.result
        if isinstance(outcome, _Raised):
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome)
    elif task.error is not None:
        future.set_exception(task.error)


class _Raised:
    """The function raised an error of its own: the task is done, the Future gets the error."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _worker(ctx: WorkContext, tasks: Iterator[Task[_Call]]) -> Iterator[Script]:
    for task in tasks:
        call = task.data
        if task.attempts == 1 and not call.future.set_running_or_notify_cancel():
            task.cancelled = True  # cancelled before it started: never runs
            task.accept_result(None)
            continue
        try:
            value = call.fn(ctx, *call.args, **call.kwargs)
        except RETRIED:
            raise  # the provider failed: the engine retries the call elsewhere
        except Exception as exc:
            task.accept_result(_Raised(exc))
        else:
            task.accept_result(value)
    return
    yield  # a generator without scripts to yield: calls run them with ctx.run()
