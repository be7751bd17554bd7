"""Golem: the blocking entry point that wires the market, provider and payment threads together.

::

    with Golem(budget=1.0) as golem:
        for task in golem.execute_tasks(worker, [Task(i) for i in range(100)], payload):
            print(task.data, task.result)

Entering ``Golem`` connects to the daemon (or devnet), reserves the budget as an allocation and
starts following payments. Each ``execute_tasks`` call is a *job* (several may run at once, from
different threads, sharing the session's allocation, payments and summary): a market thread
hires up to ``max_workers`` providers, one session thread per provider runs the user's worker
over tasks from the job's queue, and the caller's iterator yields every task once, as it
completes. Leaving ``Golem`` stops the jobs, releases every provider, pays what is owed
(waiting a bounded time for invoices), releases the allocation and joins every thread.

Signals (when ``Golem`` is entered in the main thread and the handlers are Python's defaults):
the first Ctrl-C (SIGINT) or SIGTERM raises :class:`KeyboardInterrupt` in the main thread, and
leaving the ``with`` block then shuts down as usual (terminate, pay, release; bounded); a
second one, at any moment after the first, exits the process at once (status 130).
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from . import progress as show_progress
from . import timestamps
from .config import Config
from .errors import (
    BudgetExceeded,
    ConfigurationError,
    GolemError,
    JobError,
    JobTimeout,
    NoOffersError,
    ProvidersExhausted,
)
from .events import (
    AgreementCreated,
    AgreementTerminated,
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
from .journal import Journal
from .market import (
    Demand,
    Hire,
    LeastExpensive,
    MarketSettings,
    Negotiator,
    Offer,
    Strategy,
    build_demand,
)
from .money import to_decimal
from .payload import Payload
from .payments import Payments
from .rest import MarketDecoration, Transport, YagnaClient
from .session import Ledger, ProviderSession, SessionEnd, SessionSettings, Worker
from .settings import Settings
from .summary import Summary
from .tasks import DRAINED, Attempt, Task, TaskQueue, TaskStatus

if TYPE_CHECKING:
    from .estimate import Estimate
    from .services import Cluster, NetworkLike, Service
    from .storage.base import StorageProvider
    from .vpn import Network

logger = logging.getLogger(__name__)

#: Threads that destroy the activities of a stopping job at once (each destroy ends the
#: session's results poll in flight; the sessions then terminate their agreements).
INTERRUPT_THREADS = 8

_job_numbers = itertools.count(1)


class Golem:
    """A connection to the Golem market with a budget; use it as a context manager.

    ``budget`` (GLM, as ``Decimal``/``str``/``int``/``float``) is reserved as an allocation on
    entry and is never exceeded. Connection settings come from the arguments, else the
    environment (``YAGNA_APPKEY``, ``YAGNA_API_URL``, ...). ``settings`` holds every timing and
    policy knob (:class:`~golemsync.settings.Settings`); ``poll_timeout`` and
    ``invoice_timeout`` are shortcuts that override its fields. ``transport`` replaces the HTTP
    transport (e.g. a :class:`~golemsync.rest.MockTransport` in tests).
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
        settings: Optional[Settings] = None,
        invoice_timeout: Optional[float] = None,
        poll_timeout: Optional[float] = None,
        gftp_program: Optional[str] = None,
        on_event: Optional[Callback] = None,
        transport: Optional[Transport] = None,
    ) -> None:
        try:
            self.budget = to_decimal(budget)
        except ValueError as exc:
            raise ConfigurationError(f"budget must be a number of GLM, got {budget!r}") from exc
        if self.budget <= 0:
            raise ConfigurationError("budget must be more than 0 GLM")
        settings = settings if settings is not None else Settings()
        if poll_timeout is not None:
            settings = replace(settings, poll_timeout=poll_timeout)
        if invoice_timeout is not None:
            settings = replace(settings, invoice_timeout=invoice_timeout)
        self.settings = settings
        self.config = Config.load(app_key=app_key, api_url=api_url, subnet=subnet_tag,
                                  payment_driver=payment_driver, payment_network=payment_network)
        expected = settings.expected_task_seconds
        self.strategy: Strategy = (strategy if strategy is not None
                                   else LeastExpensive(expected_seconds=expected))
        self._gftp_program = gftp_program
        self._transport = transport
        self._events = EventBus()
        self._on_event = on_event
        self._summary = Summary()
        self._lock = threading.Lock()  # guards _state, _jobs, _executors, _clusters, _busy,
        # _storage
        self._state = "new"
        self._jobs: set[Job] = set()
        self._executors: list[GolemExecutor] = []
        self._clusters: list[Cluster] = []  # service clusters (golemsync.services)
        self._busy: dict[str, str] = {}  # provider id -> job id, across this session's jobs
        self._storage: Optional[StorageProvider] = None
        self._client_stop = threading.Event()
        self._payments_stop = threading.Event()
        self._client: Optional[YagnaClient] = None
        self._payments: Optional[Payments] = None
        self._allocation_id: Optional[str] = None
        self._decorations: Optional[MarketDecoration] = None
        self._signals = _SignalGuard()
        self.identity: Optional[str] = None
        self._journals: dict[str, Journal] = {}  # path -> journal in use (guarded by _lock)
        self._journal_lock = threading.Lock()  # serialises journal recovery (HTTP calls)
        self._allocation_released = False
        self._networks: list[Network] = []  # removed on close (guarded by _lock)

    def __repr__(self) -> str:
        return f"Golem(api_url={self.config.api_url!r}, budget={self.budget}, state={self._state})"

    @property
    def spent(self) -> Decimal:
        """GLM accepted for payment so far (final once the ``with`` block has been left)."""
        return self._payments.spent if self._payments is not None else Decimal(0)

    @property
    def request_count(self) -> int:
        """HTTP requests sent to the daemon so far (for benchmarks and diagnostics)."""
        return self._client.request_count if self._client is not None else 0

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> Golem:
        self.start()
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
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
        self._signals.install()
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
        self._events.subscribe(self._summary, Summary.KINDS)
        if self._on_event is not None:
            self._events.subscribe(self._on_event)
        settings = self.settings
        self._client = client = YagnaClient(
            self.config, transport=self._transport, stop_event=self._client_stop,
            retry=settings.retry, connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout)
        self.identity = client.identity.me().identity
        allocation = client.payment.create_allocation(
            self.budget,
            payment_platform=self.config.payment_platform,
            address=self.identity,
            timeout=timestamps.now() + timedelta(days=1),
        )
        self._allocation_id = allocation.allocation_id
        self._decorations = client.payment.demand_decorations([allocation.allocation_id])
        self._payments = Payments(client.payment, allocation.allocation_id, self.budget,
                                  stop=self._payments_stop,
                                  poll_timeout=self.settings.poll_timeout,
                                  emit=self._events.emit)
        self._payments.start()
        logger.info("connected as %s; allocation %s for %s GLM",
                    self.identity, self._allocation_id, self.budget)

    def close(self) -> None:
        """Stop every job, release providers, pay what is owed, release the budget. Idempotent.

        Blocks at most about ``invoice_timeout`` seconds plus one poll window. A second Ctrl-C
        or SIGTERM while it runs exits the process at once.
        """
        with self._lock:
            if self._state in ("closed", "new"):
                self._state = "closed"
                return
            self._state = "closing"
            jobs = list(self._jobs)
            executors = list(self._executors)
            clusters = list(self._clusters)
        try:
            for cluster in clusters:  # every shutdown() at once, while the session still pays
                cluster.request_stop()
            for cluster in clusters:
                cluster.stop()
            for executor in executors:
                executor.shutdown(wait=False, cancel_futures=True)
            for job in jobs:
                job.stop_and_join()
            for executor in executors:
                executor.join(60)
            self._teardown()
        finally:
            self._close_journals()
            with self._lock:
                self._state = "closed"
            self._signals.restore()

    def create_network(self, ip: str = "192.168.0.0/24", *, owner_ip: Optional[str] = None,
                       mask: Optional[str] = None, gateway: Optional[str] = None) -> Network:
        """A VPN between this requestor (at ``owner_ip``, by default the first host address)
        and the providers added to it (:mod:`golemsync.vpn`); removed when this closes."""
        with self._lock:
            if self._state != "running" or self._client is None or self.identity is None:
                raise RuntimeError(f"this Golem is {self._state}: create networks inside "
                                   "`with Golem(...)`")
            client, identity = self._client, self.identity
        from .rest.net_api import NetApi
        from .vpn import Network  # loaded with the first network (websocket-client)

        network = Network.create(NetApi(client.session), self.config.app_key, identity, ip,
                                 owner_ip=owner_ip, mask=mask, gateway=gateway)
        with self._lock:
            self._networks.append(network)
        return network

    def _teardown(self) -> None:
        with self._lock:
            networks, self._networks = self._networks, []
        for network in networks:
            network.remove()
        payments = self._payments
        if payments is not None:
            unpaid = payments.wait_settled(self.settings.invoice_timeout)
            for record in unpaid:
                logger.warning("no invoice from %s for agreement %s within %ss; paid only "
                               "accepted debit notes (%s GLM)", record.provider_name,
                               record.agreement_id, self.settings.invoice_timeout,
                               format(record.spent, "f"))
        self._payments_stop.set()
        if payments is not None:
            payments.stop()
            payments.join(self.settings.poll_timeout + 5)
        self._allocation_released = self._release_allocation()
        with self._lock:
            storage, self._storage = self._storage, None
        if storage is not None:
            storage.close()
        self._client_stop.set()
        if self._client is not None:
            self._client.close()
        self._events.close()

    def _release_allocation(self) -> bool:
        if self._client is None or self._allocation_id is None:
            return False
        try:
            self._client.payment.release_allocation(self._allocation_id)
            return True
        except GolemError as exc:
            logger.warning("could not release allocation %s: %s", self._allocation_id, exc)
            return False

    # -- journals (golemsync.journal) ----------------------------------------------------------
    def _journal(self, spec: Union[str, os.PathLike[str], Journal]) -> Journal:
        # called with the lock held: the one Journal of that path in this session
        journal = spec if isinstance(spec, Journal) else Journal(spec)
        known = self._journals.setdefault(journal.path, journal)
        if isinstance(spec, Journal) and known is not spec:
            raise ConfigurationError(f"another Journal object already uses {journal.path} in "
                                     "this session; pass that one (or its path)")
        return known

    def _attach_journal(self, journal: Journal) -> None:
        """Open the journal and settle earlier runs' orphans, once per session."""
        assert self._client is not None
        with self._journal_lock:
            if journal.attached:
                return
            journal.attach(self._client, daemon_url=self.config.api_url,
                           identity=self.identity, allocation_id=self._allocation_id,
                           invoice_timeout=self.settings.invoice_timeout,
                           poll_timeout=self.settings.poll_timeout)
            self._events.subscribe(journal.on_event)

    def _close_journals(self) -> None:
        with self._lock:
            journals = list(self._journals.values())
        for journal in journals:
            journal.close(allocation_released=self._allocation_released)

    def estimate(self, payload: Payload, *, tasks: int, seconds_per_task: Optional[float] = None,
                 max_workers: int = 4, window: Optional[float] = None,
                 startup_seconds: float = 0.0) -> Estimate:
        """What running ``tasks`` tasks of ``seconds_per_task`` each (default: the settings'
        ``expected_task_seconds``) on up to ``max_workers`` providers would cost and take, from
        the offers on the market now (see :mod:`golemsync.estimate`). Blocks for ``window``
        seconds (default: two poll windows) while it collects offers; ``startup_seconds`` is
        each provider's time before its first task (image download), billed too."""
        from .estimate import estimate_job

        with self._lock:
            if self._state != "running" or self._client is None:
                raise RuntimeError("use estimate inside `with Golem(...) as golem:`")
            client, decorations = self._client, self._decorations
        assert decorations is not None
        seconds = seconds_per_task if seconds_per_task is not None \
            else self.settings.expected_task_seconds
        return estimate_job(client, self.config, decorations, payload, tasks=tasks,
                            seconds_per_task=seconds, max_workers=max_workers,
                            strategy=self.strategy, budget=self.budget - self.spent,
                            window=window if window is not None
                            else 2 * self.settings.poll_timeout,
                            startup_seconds=startup_seconds)

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
        journal: Union[str, os.PathLike[str], Journal, None] = None,
        refuse_over_budget: bool = False,
    ) -> Iterator[Task[Any]]:
        """Run ``worker`` over ``data`` on up to ``max_workers`` providers; yield finished tasks.

        ``data`` is any iterable of :class:`Task` objects or plain values (wrapped in tasks);
        it may be a generator that keeps producing while the job runs. The returned iterator
        blocks until the next task finishes and yields each task exactly once, in completion
        order: accepted, or failed (``task.result`` then raises :class:`TaskFailed`) — see the
        guide's failure rules. ``timeout`` bounds the whole job (:class:`JobTimeout`),
        ``task_timeout`` one attempt of a task (the attempt is abandoned and retried elsewhere),
        ``offer_timeout`` how long to wait for a provider when none is at work
        (:class:`NoOffersError`, :class:`ProvidersExhausted`, :class:`BudgetExceeded`). An
        error that ends the job carries ``unfinished``: the tasks not yielded. ``progress``
        draws a progress bar (default: only on a terminal). Leaving the iteration early stops
        the job. Several jobs may run at once on one ``Golem`` (from different threads).

        ``journal`` (a path or a :class:`~golemsync.journal.Journal`) records accepted tasks
        and the session's agreements: a rerun yields the tasks it holds at once
        (``task.resumed``) and, first, settles what a killed earlier run left on the daemon
        (see :mod:`golemsync.journal`). ``refuse_over_budget`` estimates the job from the
        offers on the market first (``data`` must then be sized) and raises
        :class:`BudgetExceeded` before hiring anyone when the likely cost exceeds the budget
        left.
        """
        _check_job_arguments(worker, payload, max_workers, timeout, task_timeout, max_retries,
                             offer_timeout)
        with self._lock:
            if self._state != "running":
                raise RuntimeError("use execute_tasks inside `with Golem(...) as golem:`")
            opened = self._journal(journal) if journal is not None else None
            job = Job(self._job_parts(), worker, data, payload,
                      limits=JobLimits(max_workers, timeout, task_timeout, max_retries,
                                       offer_timeout), journal=opened)
            self._jobs.add(job)
        total = len(data) if isinstance(data, Sized) else None
        if refuse_over_budget and total is None:
            raise ConfigurationError("refuse_over_budget needs data of known length (a list)")
        check = (lambda: self._refuse_over_budget(payload, data, max_workers, opened)) \
            if refuse_over_budget else None
        return self._iterate(job, show_progress.wanted(progress), total, check)

    def _refuse_over_budget(self, payload: Payload, data: Any, max_workers: int,
                            journal: Optional[Journal]) -> None:
        count = journal.count_unfinished(data) if journal is not None else len(data)
        if count == 0:
            return
        estimate = self.estimate(payload, tasks=count, max_workers=max_workers)
        if not estimate.covered:
            raise BudgetExceeded(f"the job would likely cost {format(estimate.likely, 'f')} "
                                 f"GLM, more than the budget left "
                                 f"({format(estimate.budget, 'f')} GLM); nothing was hired",
                                 report=str(estimate))

    def _job_parts(self) -> JobParts:
        # called with the lock held, while running
        assert self._client is not None and self._payments is not None
        assert self._decorations is not None
        return JobParts(client=self._client, payments=self._payments, storage=self.storage,
                        bus=self._events, strategy=self.strategy, config=self.config,
                        decorations=self._decorations, budget=self.budget,
                        settings=self.settings, claims=_Claims(self._lock, self._busy))

    def _iterate(self, job: Job, draw: bool, total: Optional[int],
                 check: Optional[Callable[[], None]] = None) -> Iterator[Task[Any]]:
        error: Optional[BaseException] = None
        payments = self._payments
        bar = show_progress.ProgressBar(
            total, lambda: payments.agreements() if payments is not None else [],
            job_id=job.id) if draw else None
        unsubscribe = self._events.subscribe(bar) if bar is not None else None
        try:
            if job.journal is not None:
                self._attach_journal(job.journal)
            if check is not None:
                check()
            job.start()
            for task in job.results():
                if job.journal is not None and task.status is TaskStatus.DONE:
                    job.journal.task_done(task)  # committed before the caller sees it
                if bar is not None and task.resumed:
                    bar.task_resumed()
                yield task
        except BaseException as exc:
            error = exc
            job.stop_and_join()
            _attach_unfinished(exc, job.unfinished())
            raise
        finally:
            job.stop_and_join(finished=error is None)
            with self._lock:
                self._jobs.discard(job)
            job.emit(JobFinished(error=None if error is None else repr(error)))
            if bar is not None and unsubscribe is not None:
                unsubscribe()
                bar.close()

    def executor(self, payload: Payload, *, max_workers: int = 4, max_retries: int = 3,
                 task_timeout: Optional[float] = None,
                 offer_timeout: float = 60.0,
                 journal: Union[str, os.PathLike[str], None] = None) -> GolemExecutor:
        """A ``concurrent.futures.Executor`` running calls on providers (see
        :mod:`golemsync.executor`). It runs as one of this session's jobs until shut down.
        ``journal`` records its agreements, activities and allocation (not its calls), so a
        run killed while it works is settled by the next one (see :mod:`golemsync.journal`)."""
        journaled = Journal(journal, record_tasks=False) if journal is not None else None
        executor = GolemExecutor(self, payload, max_workers=max_workers, max_retries=max_retries,
                                 task_timeout=task_timeout, offer_timeout=offer_timeout,
                                 journal=journaled)
        with self._lock:
            self._executors.append(executor)
        return executor

    def run_service(
        self,
        service_class: type[Service],
        *,
        payload: Payload,
        num_instances: Optional[int] = None,
        instance_params: Optional[Sequence[Mapping[str, Any]]] = None,
        network: Optional[NetworkLike] = None,
        respawn: bool = False,
        expiration: Union[datetime, timedelta, float, None] = None,
        offer_timeout: float = 60.0,
        shutdown_timeout: float = 30.0,
        max_messages: int = 100,
        liveness_interval: float = 10.0,
    ) -> Cluster:
        """Run ``num_instances`` instances of ``service_class`` (a
        :class:`~golemsync.services.Service` subclass) on providers; returns the
        :class:`~golemsync.services.Cluster` at once (see :mod:`golemsync.services`).

        ``instance_params`` gives each instance's ``__init__`` keyword arguments (its length is
        the number of instances unless ``num_instances`` is given; default 1 instance).
        ``network`` (a VPN) gives every instance a node whose deploy arguments join the
        deploy. ``respawn`` restarts an instance whose provider failed on another provider.
        ``expiration`` (a datetime, a timedelta or seconds; default one hour) bounds the
        agreements. An instance that gets no provider within ``offer_timeout`` s fails
        (:class:`NoOffersError`); ``shutdown()`` may take ``shutdown_timeout`` s;
        ``max_messages`` bounds each instance's two message queues; while a service waits
        (for a message or the stop) its activity is checked every ``liveness_interval`` s, so a
        dead provider is noticed even when no script runs. The cluster stops when
        :meth:`~golemsync.services.Cluster.stop` is called, or this ``Golem`` is left.
        """
        from .services import Cluster, ClusterSettings, lifetime_of

        params = _instance_params(service_class, payload, num_instances, instance_params,
                                  offer_timeout, shutdown_timeout, liveness_interval,
                                  max_messages)
        lifetime = lifetime_of(expiration, self.settings.agreement_lifetime)
        with self._lock:
            if self._state != "running":
                raise RuntimeError("use run_service inside `with Golem(...) as golem:`")
            parts = self._job_parts()
        # built outside the lock: it calls the service class's __init__ (user code)
        cluster = Cluster(parts, service_class, payload, params=params, network=network,
                          settings=ClusterSettings(respawn=bool(respawn),
                                                   offer_timeout=offer_timeout,
                                                   shutdown_timeout=shutdown_timeout,
                                                   max_messages=max_messages,
                                                   lifetime=lifetime,
                                                   liveness_interval=liveness_interval))
        with self._lock:
            if self._state != "running":
                raise RuntimeError("this Golem closed while the service was being set up")
            self._clusters.append(cluster)
        cluster.start()
        return cluster

    def summary(self) -> Summary:
        """Per-provider and total figures of everything run so far; ``print()`` it."""
        return self._summary

    def storage(self) -> StorageProvider:
        """The file-transfer storage shared by all workers, started on first use."""
        with self._lock:
            storage, client = self._storage, self._client
        if storage is not None:
            return storage
        if client is None:
            raise RuntimeError("use storage inside `with Golem(...) as golem:`")
        from .storage.factory import create_storage  # only jobs that transfer need it

        created: Optional[StorageProvider] = create_storage(client, self.config,
                                                            self._gftp_program)  # no lock: HTTP
        with self._lock:
            if self._storage is None and self._state in ("running", "starting"):
                self._storage, created = created, None
            storage = self._storage
        if created is not None:
            created.close()  # another thread won the race, or the session is closing
        if storage is None:
            raise RuntimeError("this Golem is closing; no new transfers")
        return storage

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Receive every later :class:`~golemsync.events.Event` (see :mod:`golemsync.events`).

        Callbacks run on the event thread, in order; returns a function that unsubscribes.
        """
        return self._events.subscribe(callback)


def _check_job_arguments(worker: Any, payload: Any, max_workers: Any, timeout: Any,
                         task_timeout: Any, max_retries: Any, offer_timeout: Any) -> None:
    """Refuse bad arguments before anything starts, naming the argument."""
    if not callable(worker):
        raise ConfigurationError("worker must be a generator function: worker(ctx, tasks)")
    if not isinstance(payload, Payload):
        raise ConfigurationError(f"payload must be a Payload (e.g. vm.repo(...)), got "
                                 f"{type(payload).__name__}")
    if not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigurationError(f"max_workers must be a whole number, at least 1 (got "
                                 f"{max_workers!r})")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigurationError(f"max_retries must be 0 or more (got {max_retries!r})")
    for name, value in (("timeout", timeout), ("task_timeout", task_timeout),
                        ("offer_timeout", offer_timeout)):
        if value is not None and not (isinstance(value, (int, float)) and value > 0):
            raise ConfigurationError(f"{name} must be a positive number of seconds (got "
                                     f"{value!r})")


def _instance_params(service_class: Any, payload: Any, num_instances: Optional[int],
                     instance_params: Optional[Sequence[Mapping[str, Any]]],
                     offer_timeout: Any, shutdown_timeout: Any, liveness_interval: Any,
                     max_messages: Any) -> list[Mapping[str, Any]]:
    """Check ``run_service``'s arguments (naming the bad one); each instance's kwargs."""
    from .services import Service

    if not (isinstance(service_class, type) and issubclass(service_class, Service)):
        raise ConfigurationError(f"run_service needs a Service subclass, got {service_class!r}")
    if not isinstance(payload, Payload):
        raise ConfigurationError(f"payload must be a Payload (e.g. vm.repo(...)), got "
                                 f"{type(payload).__name__}")
    params = [dict(p) for p in instance_params] if instance_params is not None else None
    if num_instances is not None and (not isinstance(num_instances, int) or num_instances < 1):
        raise ConfigurationError(f"num_instances must be a whole number, at least 1 (got "
                                 f"{num_instances!r})")
    if params is not None and not params:
        raise ConfigurationError("instance_params is empty: give one dict per instance")
    count = num_instances if num_instances is not None else len(params) if params else 1
    if params is not None and len(params) < count:
        raise ConfigurationError(f"instance_params has {len(params)} dicts for {count} "
                                 "instances; give one per instance")
    for name, value in (("offer_timeout", offer_timeout), ("shutdown_timeout", shutdown_timeout),
                        ("liveness_interval", liveness_interval)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise ConfigurationError(f"{name} must be a positive number of seconds (got "
                                     f"{value!r})")
    if not isinstance(max_messages, int) or max_messages < 1:
        raise ConfigurationError(f"max_messages must be a whole number, at least 1 (got "
                                 f"{max_messages!r})")
    return list(params[:count]) if params is not None else [{} for _ in range(count)]


def _attach_unfinished(error: BaseException, unfinished: list[Task[Any]]) -> None:
    """Make the tasks a job did not yield reachable from the error that ended it."""
    try:
        error.unfinished = unfinished  # type: ignore[attr-defined]
    except AttributeError:  # an exception type with __slots__: nothing to attach to
        logger.warning("%d tasks were not finished when the job ended", len(unfinished))


class _Claims:
    """Which provider works for which job, across a session's jobs (one provider, one job)."""

    def __init__(self, lock: threading.Lock, busy: dict[str, str]) -> None:
        self._lock = lock  # the Golem's lock, which guards ``busy``
        self._busy = busy

    def claim(self, provider_id: str, job_id: str) -> bool:
        with self._lock:
            owner = self._busy.setdefault(provider_id, job_id)
        return owner == job_id

    def release(self, provider_id: str, job_id: str) -> None:
        with self._lock:
            if self._busy.get(provider_id) == job_id:
                del self._busy[provider_id]

    def release_all(self, job_id: str) -> None:
        with self._lock:
            for provider_id in [p for p, owner in self._busy.items() if owner == job_id]:
                del self._busy[provider_id]

    def others(self, job_id: str) -> set[str]:
        with self._lock:
            return {p for p, owner in self._busy.items() if owner != job_id}


@dataclass(frozen=True)
class JobParts:
    """What a job uses of its ``Golem`` session: exactly this, nothing reached through it."""

    client: YagnaClient
    payments: Payments
    storage: Callable[[], StorageProvider]
    bus: EventBus
    strategy: Strategy
    config: Config
    decorations: MarketDecoration
    budget: Decimal
    settings: Settings
    claims: _Claims


@dataclass(frozen=True)
class JobLimits:
    """One job's arguments (validated by ``execute_tasks``)."""

    max_workers: int
    timeout: Optional[float]
    task_timeout: Optional[float]
    max_retries: int
    offer_timeout: float


def end_agreement(parts: JobParts, hire: Hire, *, failed: bool, reason: Optional[str],
                  emit: Callable[[Event], None], journal: Optional[Journal] = None) -> None:
    """Terminate ``hire``'s agreement, let the ledger expect its invoice and say so; best
    effort, never raises. Shared by task jobs and service clusters."""
    wire_reason = {"message": "Work finished" if not failed else "Provider failed",
                   "golem.requestor.code": "Success" if not failed else "Cancelled"}
    try:
        parts.client.market.terminate_agreement(hire.agreement_id, wire_reason)
    except GolemError as exc:
        logger.info("terminate agreement with %s: %s", hire.provider_name, exc)
    if journal is not None:
        journal.agreement_state(hire.agreement_id, "terminated")
    parts.payments.ended(hire.agreement_id)
    emit(AgreementTerminated(provider_id=hire.provider_id, provider_name=hire.provider_name,
                             agreement_id=hire.agreement_id, failed=failed, reason=reason))


class Job:
    """One ``execute_tasks`` call: its queue, its market thread and its provider sessions.

    The job is the :class:`~golemsync.market.Staffing` its negotiator hires for, and the
    owner of the sessions' ends (it terminates agreements and excludes failed providers).
    """

    def __init__(self, parts: JobParts, worker: Worker, data: Iterable[Any], payload: Payload,
                 *, limits: JobLimits, journal: Optional[Journal] = None) -> None:
        self.id = f"job-{next(_job_numbers)}"
        self._parts = parts
        self._worker = worker
        self._data = data
        self._payload = payload
        self._limits = limits
        self._stop = threading.Event()
        self._finished = threading.Event()  # set when the job ended with every task done
        self.journal = journal
        source = journal.resume(data) if journal is not None else data
        self.queue = TaskQueue(source, max_retries=limits.max_retries,
                               task_timeout=limits.task_timeout,
                               on_final=self._final, on_retry=self._retried,
                               read_ahead=max(64, 4 * limits.max_workers))
        self._lock = threading.Lock()  # guards every attribute below it
        self._sessions: dict[str, ProviderSession] = {}
        self._signed: dict[str, Hire] = {}  # agreement id -> hire, until its session ends
        self._excluded: set[str] = set()  # provider ids failed in this job
        self._released: dict[str, str] = {}  # provider name -> why it was released
        self._threads: list[threading.Thread] = []
        self._last_busy = time.monotonic()
        self._budget_blocked = False
        self._hired = 0
        self._fatal: Optional[BaseException] = None
        self._negotiator: Optional[Negotiator] = None
        self._interrupted = False  # the long-polls were woken for the stop

    # -- wiring ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.emit(JobStarted(max_workers=self._limits.max_workers))
        settings = self._parts.settings
        self._negotiator = Negotiator(
            self._parts.client.market, self._demand(), self, strategy=self._parts.strategy,
            platform=self._parts.config.payment_platform, stop=self._stop,
            settings=MarketSettings(settings.poll_timeout, settings.approval_timeout,
                                    settings.resubscribe_after, settings.probe_after,
                                    settings.agreement_lifetime),
            requirements=self._payload.requirements, probe_constraints=self._probe_constraints(),
            emit=self.emit)
        self._spawn("golemsync-feeder", self._feed)
        self._spawn("golemsync-market", self._negotiator.run)

    def _demand(self) -> Demand:
        decorations = self._parts.decorations
        lifetime = timedelta(seconds=max(1800.0, (self._limits.timeout or 0) + 300.0))
        return build_demand(self._payload, subnet=self._parts.config.subnet,
                            decoration_properties=dict(decorations.properties),
                            decoration_constraints=list(decorations.constraints),
                            lifetime=lifetime)

    def _probe_constraints(self) -> str:
        parts = [f"(golem.node.debug.subnet={self._parts.config.subnet})",
                 *self._parts.decorations.constraints]
        return parts[0] if len(parts) == 1 else "(&" + "\n\t".join(parts) + ")"

    def _spawn(self, name: str, body: Callable[[], None]) -> None:
        thread = threading.Thread(target=body, name=name)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _feed(self) -> None:
        self.queue.feed(self._stop)
        if self.queue.source_error is not None:
            self.failed(self.queue.source_error)

    def emit(self, event: Event) -> None:
        bus = self._parts.bus
        if bus.wants(type(event)):  # (with only the summary listening, most per-command
            # events are not wanted: neither copied nor queued)
            bus.emit(replace(event, job_id=self.id) if not event.job_id else event)

    def _final(self, task: Task[Any], attempt: Attempt) -> None:
        if task.cancelled:
            return  # withdrawn before it ran: not a provider's work
        who = {"provider_id": attempt.provider_id, "provider_name": attempt.provider_name,
               "data": task.data, "attempts": task.attempts, "running_time": task.running_time}
        if task.status is TaskStatus.DONE:
            if self.journal is not None:
                try:
                    self.journal.task_done(task)
                except GolemError as exc:  # a result the codec cannot store: say so now
                    self.failed(exc)
            self.emit(TaskAccepted(**who))
        else:
            self.emit(TaskFailedEvent(**who, error=str(task.error)))

    def _retried(self, task: Task[Any], attempt: Attempt) -> None:
        self.emit(TaskRetried(provider_id=attempt.provider_id,
                              provider_name=attempt.provider_name, data=task.data,
                              attempts=task.attempts, running_time=task.running_time,
                              error=str(attempt.error)))

    # -- Staffing: the negotiator's questions ------------------------------------------------------
    def wanted(self) -> int:
        with self._lock:
            free_slots = self._limits.max_workers - len(self._sessions)
        return 0 if self._stop.is_set() else min(free_slots, self.queue.wanted_providers())

    def at_work(self) -> int:
        with self._lock:
            return len(self._sessions)

    def excluded(self) -> Collection[str]:
        overcharged = set(self._parts.payments.overcharged_providers())  # never hired again
        with self._lock:
            mine = self._excluded | set(self._sessions)
        return mine | overcharged | self._parts.claims.others(self.id)

    def can_afford(self, offer: Offer) -> bool:
        ok = self._parts.payments.can_afford(offer, self._parts.settings.expected_task_seconds)
        with self._lock:
            self._budget_blocked = not ok
        return ok and self._parts.claims.claim(offer.provider_id, self.id)

    def signed(self, hire: Hire) -> None:
        if self.journal is not None:
            self.journal.agreement_signed(hire)
        with self._lock:
            self._signed[hire.agreement_id] = hire
        self._parts.payments.track(hire)

    def abandoned(self, agreement_id: str, terminated: bool) -> None:
        with self._lock:
            hire = self._signed.pop(agreement_id, None)
        if hire is not None:
            self._parts.claims.release(hire.provider_id, self.id)
        if terminated:
            self._parts.payments.ended(agreement_id)
        else:
            self._parts.payments.forget(agreement_id)  # never approved: no invoice will come
        if self.journal is not None:
            self.journal.agreement_state(agreement_id,
                                         "terminated" if terminated else "cancelled")

    def hired(self, hire: Hire) -> None:
        ledger: Ledger = self._parts.payments
        if self.journal is not None:
            self.journal.agreement_state(hire.agreement_id, "approved")
            ledger = self.journal.ledger(ledger)
        session = ProviderSession(
            hire, worker=self._worker, tasks=self.queue,
            activity=self._parts.client.activity, ledger=ledger,
            storage=self._parts.storage, emit=self.emit, stop=self._stop,
            finished=self._finished,
            settings=SessionSettings(self._parts.settings.poll_timeout,
                                     self._parts.settings.activity_timeout,
                                     self._parts.settings.max_task_failures))
        with self._lock:
            self._sessions[hire.provider_id] = session
            self._hired += 1
        self.emit(AgreementCreated(provider_id=hire.provider_id, provider_name=hire.provider_name,
                                   agreement_id=hire.agreement_id))
        self._spawn(f"golemsync-worker-{hire.provider_name}", lambda: self._serve(session))

    def failed(self, error: BaseException) -> None:
        """End the job with ``error``, raised to the caller of ``execute_tasks``."""
        with self._lock:
            if self._fatal is None:
                self._fatal = error
        self.queue.wake()

    # -- provider sessions ------------------------------------------------------------------------
    def _serve(self, session: ProviderSession) -> None:
        end = session.run()
        hire = session.hire
        self._terminate(hire, end)
        with self._lock:
            self._sessions.pop(hire.provider_id, None)
            self._signed.pop(hire.agreement_id, None)
            if end.provider_failed:
                self._excluded.add(hire.provider_id)
            if end.provider_failed or end.fatal is not None:
                self._released[hire.provider_name] = end.reason or "failed"
            self._last_busy = time.monotonic()
        self._parts.claims.release(hire.provider_id, self.id)
        if end.fatal is not None:
            self.failed(end.fatal)

    def _terminate(self, hire: Hire, end: SessionEnd) -> None:
        """Terminate the agreement; best effort, never raises."""
        end_agreement(self._parts, hire, failed=end.provider_failed, reason=end.reason,
                      emit=self.emit, journal=self.journal)

    # -- the caller's iterator ---------------------------------------------------------------------
    def results(self) -> Iterator[Task[Any]]:
        """Yield finished tasks until the job is done; raise job-level errors."""
        limit = self._limits.timeout
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            self._raise_fatal()
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait <= 0:
                raise JobTimeout(f"the job did not finish within {limit} s",
                                 report=self.report())
            item = self.queue.next_result(wait)
            if item is DRAINED:  # type: ignore[comparison-overlap]
                self._raise_fatal()
                return
            if item is None:
                self._check_progress()
                continue
            yield item

    def _raise_fatal(self) -> None:
        with self._lock:
            error = self._fatal
        if error is None:
            return
        if isinstance(error, JobError) and not error.report:
            error.report = self.report()
        raise error

    def _check_progress(self) -> None:
        with self._lock:
            idle = not self._sessions
            stalled_for = time.monotonic() - self._last_busy
            budget_blocked = self._budget_blocked
            hired = self._hired
        limit = self._limits.offer_timeout
        if not idle or self.queue.wanted_providers() == 0 or stalled_for < limit:
            return
        report = self.report()
        if budget_blocked or self._parts.payments.out_of_budget:
            raise BudgetExceeded(f"the remaining budget (of {format(self._parts.budget, 'f')} "
                                 f"GLM, {format(self._parts.payments.spent, 'f')} spent) "
                                 "cannot pay another "
                                 "provider; raise budget= or lower max_workers", report=report)
        seen = self._negotiator.report.offers_seen if self._negotiator is not None else 0
        if hired == 0 and not self._released:
            raise NoOffersError(f"no usable provider offer matched the demand within {limit} s "
                                f"({seen} offers seen): check the payload's requirements, "
                                "subnet_tag and payment network", report=report)
        raise ProvidersExhausted(f"no further provider could be hired within {limit} s "
                                 f"({hired} hired so far, failed or finished)", report=report)

    def report(self) -> str:
        """The job's diagnosis: the market's report and the providers released, with why."""
        lines = self._negotiator.report.lines() if self._negotiator is not None else []
        with self._lock:
            released = dict(self._released)
        lines += [f"provider {name} released: {why}" for name, why in released.items()]
        counts = self.queue.counts()
        lines.append("tasks: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return "\n".join("  " + line for line in lines)

    def unfinished(self) -> list[Task[Any]]:
        """Every task not yielded (after the threads ended), plus the rest of a sized source."""
        left = self.queue.unfinished()
        if isinstance(self._data, Sized):
            left += [item if isinstance(item, Task) else Task(item)
                     for item in self.queue.rest_of_source()]
        return left

    def _interrupt_polls(self, finished: bool = False) -> None:
        """Wake every thread blocked in a long-poll, so stopping never waits out a window.
        ``finished`` (every task is done): idle sessions read their usage first."""
        with self._lock:
            if self._interrupted:
                return
            self._interrupted = True
            sessions = list(self._sessions.values())
        if self._negotiator is not None:
            self._negotiator.interrupt()
        if len(sessions) <= 1:
            for session in sessions:
                session.interrupt(finished)
            return
        # Each interrupt is a round trip (destroying the activity): a few at a time, so the
        # last session's agreement is not terminated only after every other activity is gone.
        workers = min(INTERRUPT_THREADS, len(sessions))
        with ThreadPoolExecutor(workers, thread_name_prefix="golemsync-interrupt") as pool:
            for _ in pool.map(lambda session: session.interrupt(finished), sessions):
                pass

    def stop_and_join(self, timeout: float = 60.0, *, finished: bool = False) -> None:
        """Stop hiring and handing out tasks; wait for every thread to end. Idempotent.
        ``finished``: the job ended with every task done (idle activities read their usage
        before they are destroyed, as on a session's own end; an interrupted job does not)."""
        if finished:
            self._finished.set()  # before stop: sessions ending now still read their usage
        self._stop.set()
        self.queue.close()
        self._interrupt_polls(finished)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                alive = [t for t in self._threads if t.is_alive()]
            if not alive:
                self._parts.claims.release_all(self.id)
                return
            for thread in alive:
                thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                names = [t.name for t in alive if t.is_alive()]
                if names:
                    logger.error("threads still running after %ss: %s", timeout, names)
                return


SignalHandler = Union[Callable[[int, Optional[FrameType]], Any], int, None]


class _SignalGuard:
    """Ctrl-C and SIGTERM while a ``Golem`` runs in the main thread (see the module docstring).

    Installed only over Python's default handlers, so an application's own handlers win.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._previous: dict[int, SignalHandler] = {}
        self._interrupted = False

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
        for signum in self.SIGNALS:
            current = signal.getsignal(signum)
            if current is defaults[signum]:
                self._previous[signum] = current
                signal.signal(signum, self._handle)

    def restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self._interrupted:
            sys.stderr.write("\ngolemsync: interrupted again during shutdown; exiting now "
                             "(agreements or invoices may be left open)\n")
            sys.stderr.flush()
            os._exit(130)
        self._interrupted = True
        name = signal.Signals(signum).name
        sys.stderr.write(f"\ngolemsync: {name} received; stopping: terminating agreements, "
                         "paying what is owed (send it again to exit at once)\n")
        sys.stderr.flush()
        raise KeyboardInterrupt(name)
