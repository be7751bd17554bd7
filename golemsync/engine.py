"""Golem: the blocking entry point that wires the market, worker and payment threads together.

::

    with Golem(budget=1.0) as golem:
        for task in golem.execute_tasks(worker, [Task(i) for i in range(100)], payload):
            print(task.data, task.result)

Entering ``Golem`` connects to the daemon (or devnet), reserves the budget as an allocation and
starts following payments. Each ``execute_tasks`` call is a *job*: a market thread hires up to
``max_workers`` providers, one worker thread per provider runs the user's worker over tasks
from a shared queue, and the caller's iterator yields every task once, as it completes.
Leaving ``Golem`` stops the job, releases every provider, pays what is owed (waiting a bounded
time for invoices), releases the allocation and joins every thread.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sized
from datetime import timedelta
from decimal import Decimal
from types import FrameType, TracebackType
from typing import Any, Callable, Optional

from . import progress as show_progress
from . import timestamps
from .config import Config
from .errors import BudgetExceeded, ConfigurationError, GolemError, JobTimeout, NoOffersError
from .events import (
    AgreementCreated,
    Callback,
    Event,
    EventBus,
    JobFinished,
    JobStarted,
    TaskAccepted,
    TaskFailedEvent,
    TaskRetried,
)
from .executor import GolemExecutor
from .market import Demand, Hire, LeastExpensive, MarketWorker, Offer, Strategy, build_demand
from .money import to_decimal
from .payload import Payload
from .payments import Payments
from .rest import YagnaClient
from .summary import Summary
from .tasks import Task, TaskQueue, TaskStatus
from .worker import ProviderWorker, Worker

logger = logging.getLogger(__name__)

_JOB_DONE = object()


class Golem:
    """A connection to the Golem market with a budget; use it as a context manager.

    ``budget`` (GLM, as ``Decimal``/``str``/``int``/``float``) is reserved as an allocation on
    entry and is never exceeded. Connection settings come from the arguments, else the
    environment (``YAGNA_APPKEY``, ``YAGNA_API_URL``, ...). ``invoice_timeout`` bounds how long
    leaving the ``with`` block waits for the invoices owed. ``poll_timeout`` is the server-side
    wait of every long-poll, which is also how quickly a stop request is noticed.
    """

    def __init__(
        self,
        *,
        budget: Any,
        subnet_tag: Optional[str] = None,
        payment_driver: Optional[str] = None,
        payment_network: Optional[str] = None,
        strategy: Optional[Strategy] = None,
        app_key: Optional[str] = None,
        api_url: Optional[str] = None,
        invoice_timeout: float = 30.0,
        poll_timeout: float = 3.0,
        gftp_program: Optional[str] = None,
        on_event: Optional[Callback] = None,
    ) -> None:
        try:
            self.budget = to_decimal(budget)
        except ValueError as exc:
            raise ConfigurationError(f"budget must be a number of GLM, got {budget!r}") from exc
        if self.budget <= 0:
            raise ConfigurationError("budget must be more than 0 GLM")
        self.config = Config.load(app_key=app_key, api_url=api_url, subnet=subnet_tag,
                                  payment_driver=payment_driver, payment_network=payment_network)
        self.strategy: Strategy = strategy if strategy is not None else LeastExpensive()
        self.invoice_timeout = invoice_timeout
        self.poll_timeout = poll_timeout
        self._gftp_program = gftp_program
        self.events = EventBus()
        self._on_event = on_event
        self._summary = Summary()
        self._lock = threading.Lock()  # guards _state, _job, _storage
        self._state = "new"
        self._job: Optional[Job] = None
        self._executors: list[GolemExecutor] = []
        self._storage: Any = None
        self._client_stop = threading.Event()
        self._payments_stop = threading.Event()
        self.client: Optional[YagnaClient] = None
        self.payments: Optional[Payments] = None
        self.allocation_id: Optional[str] = None
        self.identity: Optional[str] = None
        self._decorations: Any = None

    def __repr__(self) -> str:
        return f"Golem(api_url={self.config.api_url!r}, budget={self.budget}, state={self._state})"

    @property
    def spent(self) -> Decimal:
        """GLM accepted for payment so far (final once the ``with`` block has been left)."""
        return self.payments.spent if self.payments is not None else Decimal(0)

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> Golem:
        self.start()
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        with _second_interrupt_exits():
            self.close()

    def start(self) -> None:
        """Connect, reserve the budget and start following payments.

        Blocks for a few HTTP round trips. Raises :class:`DaemonUnreachable`,
        :class:`AuthenticationError` or another :class:`GolemError` when the daemon refuses.
        """
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"this Golem is {self._state}; create a new one")
            self._state = "starting"
        try:
            self._connect()
        except BaseException:
            self._teardown()
            with self._lock:
                self._state = "closed"
            raise
        with self._lock:
            self._state = "running"

    def _connect(self) -> None:
        self.events.subscribe(self._summary)
        if self._on_event is not None:
            self.events.subscribe(self._on_event)
        self.client = YagnaClient(self.config, stop_event=self._client_stop)
        self.identity = self.client.identity.me().identity
        allocation = self.client.payment.create_allocation(
            self.budget,
            payment_platform=self.config.payment_platform,
            address=self.identity,
            timeout=timestamps.now() + timedelta(days=1),
        )
        self.allocation_id = allocation.allocation_id
        self._decorations = self.client.payment.demand_decorations([allocation.allocation_id])
        self.payments = Payments(self.client.payment, allocation.allocation_id, self.budget,
                                 stop=self._payments_stop, poll_timeout=self.poll_timeout,
                                 emit=self.events.emit)
        self.payments.start()
        logger.info("connected as %s; allocation %s for %s GLM",
                    self.identity, self.allocation_id, self.budget)

    def close(self) -> None:
        """Stop any job, release providers, pay what is owed, release the budget. Idempotent.

        Blocks at most about ``invoice_timeout`` seconds plus one poll window.
        """
        with self._lock:
            if self._state in ("closed", "new"):
                self._state = "closed"
                return
            self._state = "closing"
            job = self._job
            executors = list(self._executors)
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)
        if job is not None:
            job.stop_and_join()
        for executor in executors:
            executor.join(60)
        self._teardown()
        with self._lock:
            self._state = "closed"

    def _teardown(self) -> None:
        if self.payments is not None:
            unpaid = self.payments.wait_settled(self.invoice_timeout)
            for record in unpaid:
                logger.warning("no invoice from %s for agreement %s within %ss; paid only "
                               "accepted debit notes (%s GLM)", record.provider_name,
                               record.agreement_id, self.invoice_timeout, record.spent)
        self._payments_stop.set()
        if self.payments is not None:
            self.payments.join(self.poll_timeout + 5)
        self._release_allocation()
        if self._storage is not None:
            self._storage.close()
        self._client_stop.set()
        if self.client is not None:
            self.client.close()
        self.events.close()

    def _release_allocation(self) -> None:
        if self.client is None or self.allocation_id is None:
            return
        try:
            self.client.payment.release_allocation(self.allocation_id)
        except GolemError as exc:
            logger.warning("could not release allocation %s: %s", self.allocation_id, exc)

    # -- jobs ----------------------------------------------------------------------------------
    def execute_tasks(
        self,
        worker: Worker,
        data: Iterable[Any],
        payload: Payload,
        *,
        max_workers: int = 4,
        timeout: Optional[float] = None,
        task_timeout: Optional[float] = None,
        max_retries: int = 3,
        offer_timeout: float = 60.0,
        progress: Optional[bool] = None,
    ) -> Iterator[Task[Any]]:
        """Run ``worker`` over ``data`` on up to ``max_workers`` providers; yield finished tasks.

        ``data`` is any iterable of :class:`Task` objects or plain values (wrapped in tasks);
        it may be a generator that keeps producing while the job runs. The returned iterator
        blocks until the next task finishes and yields each task exactly once, in completion
        order: accepted, or failed after ``max_retries`` retries (``task.result`` then raises
        :class:`TaskFailed`). ``timeout`` bounds the whole job (:class:`JobTimeout`),
        ``task_timeout`` one attempt of a task (the attempt is abandoned and retried elsewhere),
        ``offer_timeout`` how long to wait for a provider when none is at work
        (:class:`NoOffersError`). ``progress`` draws a progress bar (default: only on a
        terminal, see :mod:`golemsync.progress`). Leaving the iteration early stops the job.
        """
        if max_workers < 1:
            raise ConfigurationError("max_workers must be at least 1")
        if not callable(worker):
            raise ConfigurationError("worker must be a generator function: worker(ctx, tasks)")
        with self._lock:
            if self._state != "running":
                raise RuntimeError("use execute_tasks inside `with Golem(...) as golem:`")
            if self._job is not None:
                raise RuntimeError("one job at a time: finish the previous execute_tasks first")
            job = Job(self, worker, data, payload, max_workers=max_workers, timeout=timeout,
                      task_timeout=task_timeout, max_retries=max_retries,
                      offer_timeout=offer_timeout)
            self._job = job
        total = len(data) if isinstance(data, Sized) else None
        return self._iterate(job, show_progress.wanted(progress), total)

    def _iterate(self, job: Job, draw: bool, total: Optional[int]) -> Iterator[Task[Any]]:
        error: Optional[BaseException] = None
        bar = show_progress.ProgressBar(total, lambda: self.spent) if draw else None
        unsubscribe = self.events.subscribe(bar) if bar is not None else None
        try:
            job.start()
            yield from job.results()
        except BaseException as exc:
            error = exc
            raise
        finally:
            job.stop_and_join()
            with self._lock:
                self._job = None
            self.events.emit(JobFinished(error=None if error is None else repr(error)))
            if bar is not None and unsubscribe is not None:
                unsubscribe()
                bar.close()

    def executor(self, payload: Payload, *, max_workers: int = 4, max_retries: int = 3,
                 task_timeout: Optional[float] = None,
                 offer_timeout: float = 60.0) -> GolemExecutor:
        """A ``concurrent.futures.Executor`` running calls on providers (see
        :mod:`golemsync.executor`). It runs as this session's job until it is shut down."""
        executor = GolemExecutor(self, payload, max_workers=max_workers, max_retries=max_retries,
                                 task_timeout=task_timeout, offer_timeout=offer_timeout)
        with self._lock:
            self._executors.append(executor)
        return executor

    def summary(self) -> Summary:
        """Per-provider and total figures of everything run so far; ``print()`` it."""
        return self._summary

    def storage(self) -> Any:
        """The file-transfer storage shared by all workers, started on first use."""
        with self._lock:
            if self._storage is None:
                from .storage.factory import create_storage  # only jobs that transfer need it

                assert self.client is not None
                self._storage = create_storage(self.client, self.config, self._gftp_program)
            return self._storage

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Receive every later :class:`~golemsync.events.Event` (see :mod:`golemsync.events`).

        Callbacks run on the event thread, in order; returns a function that unsubscribes.
        """
        return self.events.subscribe(callback)


class Job:
    """One ``execute_tasks`` call: the queue, the market thread and the worker threads."""

    def __init__(self, golem: Golem, worker: Worker, data: Iterable[Any], payload: Payload, *,
                 max_workers: int, timeout: Optional[float], task_timeout: Optional[float],
                 max_retries: int, offer_timeout: float) -> None:
        assert golem.client is not None and golem.payments is not None
        self.golem = golem
        self.client = golem.client
        self.payments = golem.payments
        self.worker = worker
        self.payload = payload
        self.max_workers = max_workers
        self.timeout = timeout
        self.offer_timeout = offer_timeout
        self.poll_timeout = golem.poll_timeout
        self.activity_timeout = 60.0
        self.stop = threading.Event()
        self._results: queue.Queue[Any] = queue.Queue()
        self.queue = TaskQueue(data, max_retries=max_retries, task_timeout=task_timeout,
                               on_final=self._final, on_retry=self._retried,
                               read_ahead=max(64, 4 * max_workers))
        self._lock = threading.Lock()  # guards _workers, _excluded, _threads, _last_busy, flags
        self._workers: dict[str, ProviderWorker] = {}
        self._excluded: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._last_busy = time.monotonic()
        self._budget_blocked = False
        self._hired = 0

    # -- wiring ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.emit(JobStarted(max_workers=self.max_workers))
        demand = self._demand()
        market = MarketWorker(
            self.client.market, demand, strategy=self.golem.strategy,
            platform=self.golem.config.payment_platform, wanted=self._wanted, hire=self._hire,
            signed=self.payments.track, abandoned=self._abandoned,
            can_afford=self._can_afford, excluded=self._excluded_ids, on_error=self.fatal,
            stop=self.stop, poll_timeout=self.poll_timeout, emit=self.emit,
        )
        self._spawn("golemsync-feeder", lambda: self._feed())
        self._spawn("golemsync-market", market.run)

    def _demand(self) -> Demand:
        decorations = self.golem._decorations
        lifetime = timedelta(seconds=max(1800.0, (self.timeout or 0) + 300.0))
        return build_demand(self.payload, subnet=self.golem.config.subnet,
                            decoration_properties=dict(decorations.properties),
                            decoration_constraints=list(decorations.constraints),
                            lifetime=lifetime)

    def _spawn(self, name: str, body: Callable[[], None]) -> None:
        thread = threading.Thread(target=body, name=name)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _feed(self) -> None:
        self.queue.feed(self.stop)
        if self.queue.source_error is not None:
            self.fatal(self.queue.source_error)
        elif self.queue.drained:
            self._results.put(_JOB_DONE)

    def _final(self, task: Task[Any]) -> None:
        who = {"provider_id": task.provider_id or "", "provider_name": task.provider_name or "",
               "data": task.data, "attempts": task.attempts, "running_time": task.running_time}
        if task.status is TaskStatus.DONE:
            self.emit(TaskAccepted(**who))
        else:
            self.emit(TaskFailedEvent(**who, error=str(task.error)))
        self._results.put(task)
        if self.queue.drained:
            self._results.put(_JOB_DONE)

    def fatal(self, error: BaseException) -> None:
        """End the job with ``error``, raised to the caller of ``execute_tasks``."""
        self._results.put(error)

    # -- the market's questions --------------------------------------------------------------
    def _wanted(self) -> int:
        with self._lock:
            free_slots = self.max_workers - len(self._workers)
        return 0 if self.stop.is_set() else min(free_slots, self.queue.wanted_providers())

    def _can_afford(self, offer: Offer) -> bool:
        ok = self.payments.can_afford(offer)
        with self._lock:
            self._budget_blocked = not ok
        return ok

    def _excluded_ids(self) -> set[str]:
        overcharged = set(self.payments.overcharged_providers())  # never hired again
        with self._lock:
            return set(self._excluded) | overcharged

    def _abandoned(self, agreement_id: str, terminated: bool) -> None:
        if terminated:
            self.payments.ended(agreement_id)
        else:
            self.payments.forget(agreement_id)  # never approved: no invoice will come

    def _hire(self, hire: Hire) -> None:
        worker = ProviderWorker(self, hire)
        with self._lock:
            self._workers[hire.provider_id] = worker
            self._excluded.add(hire.provider_id)
            self._hired += 1
        self.emit(AgreementCreated(provider_id=hire.provider_id, provider_name=hire.provider_name,
                                   agreement_id=hire.agreement_id))
        self._spawn(f"golemsync-worker-{hire.provider_name}", worker.run)

    def worker_done(self, worker: ProviderWorker) -> None:
        with self._lock:
            self._workers.pop(worker.hire.provider_id, None)
            self._last_busy = time.monotonic()

    def storage(self) -> Any:
        return self.golem.storage()

    def emit(self, event: Event) -> None:
        self.golem.events.emit(event)

    def _retried(self, task: Task[Any], error: Optional[BaseException]) -> None:
        self.emit(TaskRetried(provider_id=task.provider_id or "",
                              provider_name=task.provider_name or "", data=task.data,
                              attempts=task.attempts, running_time=task.running_time,
                              error=str(error)))

    # -- the caller's iterator ---------------------------------------------------------------------
    def results(self) -> Iterator[Task[Any]]:
        """Yield finished tasks until the job is done; raise job-level errors."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait <= 0:
                raise JobTimeout(f"the job did not finish within {self.timeout} s")
            try:
                item = self._results.get(timeout=wait)
            except queue.Empty:
                self._check_progress()
                continue
            if item is _JOB_DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _check_progress(self) -> None:
        with self._lock:
            idle = not self._workers
            stalled_for = time.monotonic() - self._last_busy
            budget_blocked = self._budget_blocked
            hired = self._hired
        if not idle or self.queue.wanted_providers() == 0 or stalled_for < self.offer_timeout:
            return
        if budget_blocked:
            raise BudgetExceeded(f"the remaining budget (of {self.golem.budget} GLM, "
                                 f"{self.payments.spent} spent) cannot pay another provider; "
                                 "raise budget= or lower max_workers")
        what = "no provider offer matched the demand" if hired == 0 else (
            f"no further provider could be hired ({hired} hired so far, failed or finished)")
        raise NoOffersError(f"{what} within {self.offer_timeout} s: check the payload's "
                            "requirements, subnet_tag and payment network")

    def stop_and_join(self, timeout: float = 60.0) -> None:
        """Stop hiring and handing out tasks; wait for every thread to end. Idempotent."""
        self.stop.set()
        self.queue.close()
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                alive = [t for t in self._threads if t.is_alive()]
            if not alive:
                return
            for thread in alive:
                thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                names = [t.name for t in alive if t.is_alive()]
                if names:
                    logger.error("threads still running after %ss: %s", timeout, names)
                return


class _second_interrupt_exits:
    """While active in the main thread, Ctrl-C ends the process at once (exit code 130)."""

    def __enter__(self) -> None:
        self._previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    @staticmethod
    def _handler(signum: int, frame: Optional[FrameType]) -> None:
        sys.stderr.write("\ngolemsync: interrupted again during shutdown; exiting now "
                         "(agreements or invoices may be left open)\n")
        sys.stderr.flush()
        os._exit(130)
