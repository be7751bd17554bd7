"""The service model: long-running instances on providers, driven and stopped by the requestor.

::

    class Echo(Service):
        def start(self):
            script = self.new_script()
            script.run("/bin/sh", "-c", "echo ready")
            yield script

        def run(self):
            while not self.stopping:
                request = self.receive_message(timeout=1.0)
                if request is None:
                    continue
                script = self.new_script(timeout=30)
                out = script.run("/bin/echo", str(request))
                yield script
                self.send_message(out.result().text.strip())

    with Golem(budget=1) as golem:
        cluster = golem.run_service(Echo, payload=payload, num_instances=2)
        cluster.instances[0].wait_for(ServiceState.RUNNING, timeout=60)
        cluster.instances[0].send("hello")
        print(cluster.instances[0].receive(timeout=30))
        cluster.stop()

``Golem.run_service`` returns a :class:`Cluster` at once. Each :class:`ServiceInstance` has one
thread (``golemsync-service-<cluster>-<n>``) that waits for a provider from the cluster's market
thread, creates and deploys its activity (with the network's deploy arguments when the cluster has
a ``network``), drives the service's ``start()`` generator to its end (the instance is then
*running*), then ``run()``; when ``run()`` ends, or the cluster is stopped, it drives
``shutdown()`` (bounded by ``shutdown_timeout``), destroys the activity and terminates the
agreement; the session's payment thread pays its invoice with the same checks as for tasks.
The three methods are plain generators yielding :class:`~golemsync.script.Script` objects,
exactly like a task worker: the instance's thread executes each yielded script and resumes the
generator when it is done, throwing a failed command's
:class:`~golemsync.errors.CommandFailed` into it.

States (:class:`ServiceState`)::

    pending ──▶ starting ──▶ running ──▶ stopping ──▶ terminated
       ▲  │         │  │         │           ▲
       │  │         │  └─────────┼───────────┘   stopped during start (shutdown() not run)
       │  └─────────┴────────────┴──▶ failed      the provider failed and no respawn, or the
       │            │            │                service's code raised
       └────────────┴────────────┘                respawn: the provider failed, another is hired

A *provider failure* is the activity dying, the provider becoming unreachable, deploy/start
refused, or a command failing in ``start()`` that the generator did not catch. With
``respawn=True`` the instance goes back to *pending* and is restarted on another provider (the
failed one is never hired again by this cluster); its :attr:`ServiceInstance.history` shows every
step. A command failing in ``run()`` uncaught, or the service's own exception, fails the instance
(no respawn: the same code would fail again elsewhere).

Messages: one bounded, thread-safe queue each way per instance (``max_messages`` items, default
100). The requestor calls :meth:`ServiceInstance.send` / :meth:`ServiceInstance.receive`; the
service's generators call :meth:`Service.receive_message` / :meth:`Service.send_message`. A
queue outlives respawns; once the instance has ended, :meth:`ServiceInstance.send` raises
:class:`~golemsync.errors.ServiceEnded` and :meth:`ServiceInstance.receive` returns what is
left, then raises it.

Stopping (:meth:`Cluster.stop`, leaving the cluster's or the ``Golem``'s ``with`` block,
Ctrl-C): every instance is asked to stop; a script in flight is abandoned (its futures fail),
a ``run()`` waiting in :meth:`Service.receive_message` wakes up, the generator is closed at its
next ``yield``, ``shutdown()`` runs on instances that were running, and then each activity is
destroyed and each agreement terminated. Every thread is joined.
"""

from __future__ import annotations

import collections
import enum
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Union

from . import timestamps
from .context import WorkContext
from .errors import (
    ActivityTerminated,
    ApiError,
    AuthenticationError,
    BudgetExceeded,
    CommandFailed,
    ConfigurationError,
    GolemError,
    JobTimeout,
    NoOffersError,
    ServiceEnded,
    ServiceFailed,
)
from .events import AgreementCreated, Event, JobFinished, JobStarted, ServiceStateChanged
from .execution import BatchRunner
from .market import Demand, Hire, MarketSettings, Negotiator, Offer, build_demand
from .payload import Payload
from .script import Script
from .session import (
    Fault,
    classify,
    create_activity,
    deploy_and_start,
    destroy_activity,
    drive_scripts,
)

if TYPE_CHECKING:
    from .engine import JobParts

logger = logging.getLogger(__name__)

_cluster_numbers = itertools.count(1)

#: How long ``Cluster.stop`` waits by default for every instance to shut down.
STOP_TIMEOUT = 60.0


class ServiceState(enum.Enum):
    """Where a service instance is in its life (see the module docstring's diagram)."""

    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    TERMINATED = "terminated"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (ServiceState.TERMINATED, ServiceState.FAILED)


#: The legal moves; *failed* can be reached from every state that is not final.
ALLOWED: Mapping[ServiceState, frozenset[ServiceState]] = {
    ServiceState.PENDING: frozenset({ServiceState.STARTING, ServiceState.TERMINATED,
                                     ServiceState.FAILED}),
    ServiceState.STARTING: frozenset({ServiceState.RUNNING, ServiceState.STOPPING,
                                      ServiceState.PENDING, ServiceState.FAILED}),
    ServiceState.RUNNING: frozenset({ServiceState.STOPPING, ServiceState.PENDING,
                                     ServiceState.FAILED}),
    ServiceState.STOPPING: frozenset({ServiceState.TERMINATED, ServiceState.FAILED}),
    ServiceState.TERMINATED: frozenset(),
    ServiceState.FAILED: frozenset(),
}


@dataclass(frozen=True)
class StateChange:
    """One step of an instance's history: the state entered, on which provider, and why."""

    state: ServiceState
    provider_name: Optional[str] = None
    reason: Optional[str] = None
    at: float = field(default_factory=time.monotonic, compare=False)


# -- the network seam ----------
class NetworkNode(Protocol):
    """One provider's place in a VPN (``golemsync.network``'s node)."""

    ip: str

    def deploy_args(self) -> dict[str, Any]: ...

    def forward(self, port: int) -> AbstractContextManager[int]: ...

    def connect(self, port: int) -> Any: ...


class NetworkLike(Protocol):
    """What a cluster needs of a VPN: a node per provider it hires."""

    def add_node(self, node_id: str) -> NetworkNode: ...


# -- the message queues ----------
class _Channel:
    """A bounded FIFO between two threads that can be closed (the instance ended) and woken
    (the instance is stopping). ``queue.Queue`` has neither, hence this small one."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._cond = threading.Condition()  # guards _items and _closed
        self._items: collections.deque[Any] = collections.deque()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, value: Any, timeout: Optional[float],
            abort: Callable[[], bool] = lambda: False) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed and len(self._items) >= self._maxsize:
                if abort():
                    raise ServiceEnded("the service instance is stopping")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"the message queue stayed full ({self._maxsize} "
                                       f"messages) for {timeout} s; nobody reads it")
                self._cond.wait(left)
            if self._closed:
                raise ServiceEnded("the service instance has ended; it takes no more messages")
            self._items.append(value)
            self._cond.notify_all()

    def get(self, timeout: Optional[float], abort: Callable[[], bool] = lambda: False) -> Any:
        """The next item; TimeoutError after ``timeout`` s, ServiceEnded when closed and empty
        or when ``abort()`` turns true while waiting."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    raise ServiceEnded("the service instance has ended; no more messages")
                if abort():
                    raise ServiceEnded("the service instance is stopping")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"no message within {timeout} s")
                self._cond.wait(left)
            value = self._items.popleft()
            self._cond.notify_all()
            return value

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


# -- what the user writes ----------
class Service:
    """Base of a service: override :meth:`start`, :meth:`run` and :meth:`shutdown`, each a
    generator yielding scripts (made with :meth:`new_script`).

    A subclass may take keyword arguments in ``__init__`` (one dict per instance, given as
    ``run_service(..., instance_params=[...])``); it need not call ``super().__init__()``.
    Everything below is usable only inside the three generators, on the instance's thread.
    """

    _golemsync_instance: Optional[ServiceInstance] = None

    def start(self) -> Iterator[Script]:
        """Prepare the service on its provider (default: nothing). When it ends, the instance
        is running. A command failing here uncaught is the provider's failure (respawn)."""
        return iter(())

    def run(self) -> Iterator[Script]:
        """The service's life (default: wait until the cluster is stopped). When it ends, the
        instance shuts down."""
        self.wait_until_stopping()
        return iter(())

    def shutdown(self) -> Iterator[Script]:
        """Clean up on the provider (default: nothing); bounded by ``shutdown_timeout``."""
        return iter(())

    # -- the instance, as the service sees it --------------------------------------------------
    @property
    def instance(self) -> ServiceInstance:
        instance = self._golemsync_instance
        if instance is None:
            raise RuntimeError("this service is not running in a cluster; use it through "
                               "golem.run_service(...)")
        return instance

    @property
    def ctx(self) -> WorkContext:
        """The provider's context (``ctx.run(script)`` executes a script and blocks)."""
        ctx = self.instance._ctx
        if ctx is None:
            raise RuntimeError("the instance has no activity now; use ctx only inside start(), "
                               "run() or shutdown()")
        return ctx

    def new_script(self, *, timeout: Optional[float] = None) -> Script:
        """A new script for this instance's provider (``timeout`` in seconds bounds it)."""
        return self.ctx.new_script(timeout=timeout)

    @property
    def provider_name(self) -> Optional[str]:
        return self.instance.provider_name

    @property
    def network_node(self) -> Optional[NetworkNode]:
        return self.instance.network_node

    @property
    def stopping(self) -> bool:
        """True once the cluster (or this instance) was asked to stop."""
        return self.instance._stop_requested.is_set()

    def wait_until_stopping(self, timeout: Optional[float] = None) -> bool:
        """Block until a stop is requested (True) or ``timeout`` s pass (False).

        While it waits, the provider's activity is checked every ``liveness_interval`` s: if
        the provider ended it, :class:`~golemsync.errors.ActivityTerminated` is raised (a
        provider failure: the instance is respawned when asked)."""
        instance = self.instance
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            instance._watch()
            piece = instance._slice(deadline)
            if instance._stop_requested.wait(piece):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def receive_message(self, timeout: Optional[float] = 0.0, default: Any = None) -> Any:
        """The next value the requestor sent (:meth:`ServiceInstance.send`), waiting at most
        ``timeout`` s (0: do not wait; None: until one comes); ``default`` when none came in
        time or a stop was requested while waiting. A long wait checks the provider's
        activity as :meth:`wait_until_stopping` does."""
        instance = self.instance
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            instance._watch()
            try:
                return instance._inbox.get(instance._slice(deadline),
                                           abort=instance._stop_requested.is_set)
            except ServiceEnded:
                return default
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    return default

    def send_message(self, value: Any, timeout: Optional[float] = None) -> None:
        """Queue ``value`` for the requestor (:meth:`ServiceInstance.receive`). Blocks while
        the queue is full, at most ``timeout`` s (TimeoutError); raises
        :class:`~golemsync.errors.ServiceEnded` when a stop is requested while it waits."""
        instance = self.instance
        instance._outbox.put(value, timeout, abort=instance._stop_requested.is_set)


# -- one instance ----------
class _Outcome(enum.Enum):
    DONE = "done"
    RESPAWN = "respawn"
    FAILED = "failed"


class ServiceInstance:
    """One running copy of a service: its state, its provider, its message queues.

    Made by :class:`Cluster`; read its attributes from any thread.
    """

    def __init__(self, cluster: Cluster, index: int, service: Service,
                 max_messages: int, liveness_interval: float = 10.0) -> None:
        self.cluster = cluster
        self.name = f"{cluster.id}-{index}"
        self.service = service
        service._golemsync_instance = self
        self._cond = threading.Condition()  # guards the state, history, hire, error, node
        self._state = ServiceState.PENDING
        self._history: list[StateChange] = [StateChange(ServiceState.PENDING)]
        self._hire: Optional[Hire] = None
        self._node: Optional[NetworkNode] = None
        self._error: Optional[BaseException] = None
        self._ctx: Optional[WorkContext] = None  # only the instance thread touches it
        self._runner: Optional[BatchRunner] = None  # the runner of the current phase
        self._until: Optional[float] = None  # the deadline of the current phase (shutdown)
        self._liveness_interval = liveness_interval
        self._checked_at = time.monotonic()  # the last liveness check (instance thread only)
        self._stop_requested = threading.Event()
        self._interrupt = threading.Event()  # abandons the start()/run() script in flight
        self._kill = threading.Event()  # abandons the shutdown() script (stop ran out of time)
        self._inbox = _Channel(max_messages)  # requestor -> service
        self._outbox = _Channel(max_messages)  # service -> requestor
        self._thread = threading.Thread(target=self._body, name=f"golemsync-service-{self.name}")

    def __repr__(self) -> str:
        return f"ServiceInstance({self.name!r}, {self.state.value}, {self.provider_name!r})"

    # -- observing -----------------------------------------------------------------------------
    @property
    def state(self) -> ServiceState:
        with self._cond:
            return self._state

    @property
    def history(self) -> list[StateChange]:
        """Every state this instance entered, in order (respawns included)."""
        with self._cond:
            return list(self._history)

    @property
    def provider_name(self) -> Optional[str]:
        with self._cond:
            return self._hire.provider_name if self._hire is not None else None

    @property
    def provider_id(self) -> Optional[str]:
        with self._cond:
            return self._hire.provider_id if self._hire is not None else None

    @property
    def network_node(self) -> Optional[NetworkNode]:
        """This instance's node in the cluster's network (None without a network)."""
        with self._cond:
            return self._node

    def forward(self, port: int) -> AbstractContextManager[int]:
        """``with instance.forward(remote_port) as local_port:`` tunnels a local port to
        ``port`` on the provider, through the cluster's network (see its node's ``forward``)."""
        return self._require_node().forward(port)

    def connect(self, port: int) -> Any:
        """A connection to ``port`` on the provider through the cluster's network."""
        return self._require_node().connect(port)

    def _require_node(self) -> NetworkNode:
        node = self.network_node
        if node is None:
            raise RuntimeError(f"service instance {self.name} has no network node: pass "
                               "network=golem.create_network(...) to run_service, and wait "
                               "until the instance is starting or running")
        return node

    @property
    def error(self) -> Optional[BaseException]:
        """Why the instance failed (None unless it is *failed*)."""
        with self._cond:
            return self._error

    def wait_for(self, state: ServiceState, timeout: Optional[float] = None) -> bool:
        """Block until the instance is in ``state``: True. False when ``timeout`` s pass first,
        or when the instance ended (*terminated*) without reaching it. Raises
        :class:`~golemsync.errors.ServiceFailed` when it *failed* instead."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._state is not state:
                if self._state.final:
                    if self._state is ServiceState.FAILED:
                        raise ServiceFailed(f"service instance {self.name} failed: "
                                            f"{self._error}") from self._error
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # -- messages ------------------------------------------------------------------------------
    def send(self, value: Any, timeout: Optional[float] = None) -> None:
        """Queue ``value`` for the service (its :meth:`Service.receive_message`). Blocks while
        the queue is full, at most ``timeout`` s (TimeoutError). Raises
        :class:`~golemsync.errors.ServiceEnded` once the instance has ended."""
        self._inbox.put(value, timeout)

    def receive(self, timeout: Optional[float] = None) -> Any:
        """The next value the service sent (:meth:`Service.send_message`); blocks at most
        ``timeout`` s (None: until one comes), then TimeoutError. Once the instance has ended
        and nothing is left, raises :class:`~golemsync.errors.ServiceEnded`."""
        return self._outbox.get(timeout)

    def stop(self) -> None:
        """Ask this instance to stop (returns at once; see :meth:`Cluster.stop`)."""
        self._stop_requested.set()
        if self.state is not ServiceState.RUNNING:
            self._interrupt.set()  # a start() script in flight is abandoned at once
        self._inbox.wake()
        self._outbox.wake()
        self.cluster._wake()

    # -- liveness -------------------------------------------------------------------------------
    def _slice(self, deadline: Optional[float]) -> float:
        """How long one piece of a long wait may be (the liveness checks fall between)."""
        if deadline is None:
            return self._liveness_interval
        return max(0.0, min(self._liveness_interval, deadline - time.monotonic()))

    def _watch(self) -> None:
        """On the instance's own thread, at most every ``liveness_interval`` s: raise
        ActivityTerminated if the provider ended the activity (a wait would never notice)."""
        ctx = self._ctx
        if ctx is None or threading.current_thread() is not self._thread \
                or self._stop_requested.is_set():
            return
        now = time.monotonic()
        if now - self._checked_at < self._liveness_interval:
            return
        self._checked_at = now
        self.cluster._check_alive(ctx)

    # -- state machine ----------------------------------------------------------------------------
    def _enter(self, state: ServiceState, reason: Optional[str] = None,
               error: Optional[BaseException] = None) -> None:
        with self._cond:
            previous = self._state
            if state not in ALLOWED[previous]:
                raise RuntimeError(f"service instance {self.name}: {previous.value} -> "
                                   f"{state.value} is not a valid transition")
            self._state = state
            provider = self._hire.provider_name if self._hire is not None else None
            provider_id = self._hire.provider_id if self._hire is not None else ""
            self._history.append(StateChange(state, provider, reason))
            if error is not None:
                self._error = error
            self._cond.notify_all()
        if state.final:
            self._inbox.close()
            self._outbox.close()
        logger.info("service instance %s: %s -> %s%s", self.name, previous.value, state.value,
                    f" ({reason})" if reason else "")
        self.cluster.emit(ServiceStateChanged(
            provider_id=provider_id, provider_name=provider or "", instance=self.name,
            state=state.value, previous=previous.value, reason=reason))

    # -- the thread ----------------------------------------------------------------------------
    def _start_thread(self) -> None:
        if self._thread.ident is None:  # called with the cluster's lock held: once
            self._thread.start()

    def _body(self) -> None:
        try:
            self._live()
        except BaseException as exc:  # noqa: B036 - a bug must still end the instance
            logger.exception("service instance %s crashed", self.name)
            if not self.state.final:
                self._force_end(exc)
        finally:
            self.cluster._instance_ended(self)

    def _force_end(self, exc: BaseException) -> None:
        self._enter(ServiceState.FAILED, f"{type(exc).__name__}: {exc}", exc)

    def _live(self) -> None:
        while True:
            hire = self.cluster._await_hire(self)
            if hire is None:
                if self._stop_requested.is_set():
                    self._enter(ServiceState.TERMINATED, "stopped before a provider was hired")
                    return
                missing = self.cluster._no_provider_error()
                self._enter(ServiceState.FAILED, str(missing), missing)
                return
            with self._cond:
                self._hire = hire
            self._enter(ServiceState.STARTING)
            outcome, error = self.cluster._serve_on(self, hire)
            if outcome is _Outcome.RESPAWN:
                reason = f"provider {hire.provider_name} failed: {error}; respawning"
                with self._cond:
                    self._hire, self._node = None, None
                self._enter(ServiceState.PENDING, reason)
                continue
            if outcome is _Outcome.FAILED:
                assert error is not None
                self._enter(ServiceState.FAILED, f"on {hire.provider_name}: "
                                                 f"{type(error).__name__}: {error}", error)
                return
            if self.state is not ServiceState.STOPPING:
                self._enter(ServiceState.STOPPING, "stopped during start")
            self._enter(ServiceState.TERMINATED)
            return

    # -- driving the generators --------------------------------------------------------------------
    def _execute(self, script: Script) -> Optional[BaseException]:
        """Run ``script`` on the current phase's runner, within its timeout and the phase's
        deadline (``_until``, set for shutdown()); the first command error, or None."""
        runner = self._runner
        assert runner is not None
        limits = [t for t in (self._until, None if script.timeout is None
                              else time.monotonic() + script.timeout) if t is not None]
        return runner.execute(script, min(limits) if limits else None)

    def _drive(self, generator: Any, phase: str) -> bool:
        """Run every script ``generator`` yields; False when it was closed early by a stop
        (``phase`` names it in errors)."""
        if not inspect.isgenerator(generator):
            if generator is None or isinstance(generator, Iterator):
                generator = iter(()) if generator is None else generator
                return self._drive_iterator(generator, phase)
            raise TypeError(f"{type(self.service).__name__}.{phase}() must be a generator "
                            f"yielding scripts (got {type(generator).__name__})")
        ctx = self._ctx
        assert ctx is not None  # set once the activity is up, before any phase runs
        return drive_scripts(
            generator, ctx, lambda script: self._run_checked(script, phase),
            who=f"{type(self.service).__name__}.{phase}()", maker="self.new_script()",
            proceed=lambda: phase == "shutdown" or not self._stop_requested.is_set())

    def _drive_iterator(self, scripts: Iterator[Any], phase: str) -> bool:
        for script in scripts:
            if phase != "shutdown" and self._stop_requested.is_set():
                return False
            error = self._run_yielded(script, phase)
            if error is not None:
                raise error
        return True

    def _run_yielded(self, script: Any, phase: str) -> Optional[BaseException]:
        if not isinstance(script, Script):
            raise TypeError(f"{type(self.service).__name__}.{phase}() yielded {script!r}; "
                            "yield scripts made with self.new_script()")
        if script.ctx is not self._ctx:
            raise ValueError(f"{phase}() yielded a script of another provider's context")
        return self._run_checked(script, phase)

    def _run_checked(self, script: Script, phase: str) -> Optional[BaseException]:
        if phase != "shutdown":
            self.cluster._check_budget(self)
        return self._execute(script)


# -- the cluster ----------
@dataclass(frozen=True)
class ClusterSettings:
    """One ``run_service`` call's arguments (validated there)."""

    respawn: bool
    offer_timeout: float
    shutdown_timeout: float
    max_messages: int
    lifetime: float  # seconds the agreements and the demand live
    liveness_interval: float = 10.0  # seconds between activity checks while a service waits


class Cluster:
    """The instances of one service, hired and run as one of the ``Golem`` session's jobs.

    It is the :class:`~golemsync.market.Staffing` of its own market thread, wanting one
    provider per instance waiting for one. Use it as a context manager (leaving stops it), or
    call :meth:`stop`; leaving the ``Golem`` stops it too.
    """

    def __init__(self, parts: JobParts, service_class: type[Service], payload: Payload, *,
                 params: Sequence[Mapping[str, Any]], network: Optional[NetworkLike],
                 settings: ClusterSettings) -> None:
        self.id = f"cluster-{next(_cluster_numbers)}"
        self.service_class = service_class
        self._parts = parts
        self._payload = payload
        self._network = network
        self._settings = settings
        self._market_stop = threading.Event()
        self._lock = threading.Condition()  # guards every attribute below it
        self._instances: list[ServiceInstance] = []
        self._waiting: list[ServiceInstance] = []  # instances waiting for a provider, in order
        self._offered: dict[str, Hire] = {}  # instance name -> the hire handed to it
        self._signed: dict[str, Hire] = {}  # agreement id -> hire, until its instance ends
        self._at_work: dict[str, str] = {}  # provider id -> instance name
        self._excluded: set[str] = set()  # providers failed in this cluster
        self._market_error: Optional[BaseException] = None
        self._stopping = False
        self._ended = False  # every instance reached a final state; the market thread ends
        self._reported = False  # JobFinished was emitted (once, by the first stop())
        self._started = False
        self._negotiator: Optional[Negotiator] = None
        self._market_thread: Optional[threading.Thread] = None
        self._numbers = itertools.count()
        for kwargs in params:
            self._add(kwargs)

    def __repr__(self) -> str:
        return f"Cluster({self.id!r}, {self.service_class.__name__}, {self.state})"

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.stop()

    # -- public --------------------------------------------------------------------------------
    @property
    def instances(self) -> list[ServiceInstance]:
        with self._lock:
            return list(self._instances)

    @property
    def state(self) -> dict[str, int]:
        """How many instances are in each state, e.g. ``{"running": 2, "pending": 1}``."""
        counts: dict[str, int] = {}
        for instance in self.instances:
            key = instance.state.value
            counts[key] = counts.get(key, 0) + 1
        return counts

    def wait_for(self, state: ServiceState, timeout: Optional[float] = None) -> bool:
        """Block until every instance is in ``state`` (see :meth:`ServiceInstance.wait_for`);
        False when ``timeout`` s pass first or an instance terminated without reaching it;
        :class:`~golemsync.errors.ServiceFailed` when one failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for instance in self.instances:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not instance.wait_for(state, left):
                return False
        return True

    def spawn_instances(self, count: int = 1,
                        instance_params: Optional[Sequence[Mapping[str, Any]]] = None
                        ) -> list[ServiceInstance]:
        """Add ``count`` instances (or one per ``instance_params`` dict); returns them."""
        params = list(instance_params) if instance_params is not None else [{}] * count
        return [self._add(kwargs) for kwargs in params]

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop every instance, shut them down, release their providers; join every thread.

        Blocks until done, at most about ``timeout`` s: ``shutdown()`` generators get what is
        left of it minus a margin, and scripts still running after it are abandoned. Idempotent.
        """
        self.request_stop()
        with self._lock:
            instances = list(self._instances)
            market = self._market_thread
        deadline = time.monotonic() + timeout
        self._join([i._thread for i in instances], deadline - min(5.0, timeout / 4))
        for instance in instances:  # out of time: abandon every script still in flight
            instance._interrupt.set()
            instance._kill.set()
        threads = [i._thread for i in instances]
        if market is not None:
            threads.append(market)
        self._join(threads, deadline)
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            logger.error("cluster %s: threads still running after %ss: %s", self.id, timeout,
                         alive)
        self._parts.claims.release_all(self.id)
        with self._lock:
            first, self._reported = not self._reported, True
        if first and self._started:
            failed = [i.name for i in instances if i.state is ServiceState.FAILED]
            self.emit(JobFinished(error=f"failed instances: {', '.join(failed)}"
                                  if failed else None))

    def request_stop(self) -> bool:
        """Ask every instance to stop and the market to end; returns at once (True the first
        time). :meth:`stop` calls it, then waits; call it first to stop several clusters at
        once."""
        with self._lock:
            first = not self._stopping
            self._stopping = True
            instances = list(self._instances)
            negotiator = self._negotiator
            self._lock.notify_all()
        for instance in instances:
            instance.stop()
        self._market_stop.set()
        if negotiator is not None:
            negotiator.interrupt()
        return first

    # -- wiring ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the market thread and every instance's thread (once; not after a stop)."""
        parts = self._parts
        settings = parts.settings
        negotiator = Negotiator(
            parts.client.market, self._demand(), self, strategy=parts.strategy,
            platform=parts.config.payment_platform, stop=self._market_stop,
            settings=MarketSettings(settings.poll_timeout, settings.approval_timeout,
                                    settings.resubscribe_after, settings.probe_after,
                                    self._settings.lifetime),
            requirements=self._payload.requirements, emit=self.emit,
            probe_constraints=_probe_constraints(parts))
        with self._lock:  # started under the lock: a stop() joins what it sees, all of it
            if self._started or self._stopping:
                return
            self._started = True
            self._negotiator = negotiator
            self.emit(JobStarted(max_workers=len(self._instances)))  # a queue put, no callback
            self._market_thread = threading.Thread(target=negotiator.run,
                                                   name=f"golemsync-market-{self.id}")
            self._market_thread.start()
            for instance in self._instances:
                instance._start_thread()

    def _demand(self) -> Demand:
        decorations = self._parts.decorations
        return build_demand(self._payload, subnet=self._parts.config.subnet,
                            decoration_properties=dict(decorations.properties),
                            decoration_constraints=list(decorations.constraints),
                            lifetime=timedelta(seconds=self._settings.lifetime))

    def _add(self, kwargs: Mapping[str, Any]) -> ServiceInstance:
        try:
            service = self.service_class(**kwargs)
        except TypeError as exc:
            raise ConfigurationError(f"{self.service_class.__name__}(**{dict(kwargs)!r}) "
                                     f"failed: {exc}; check instance_params") from exc
        with self._lock:  # checked, added and started at once: a stop sees it or refuses it
            if self._stopping or self._ended:
                why = "stopping" if self._stopping else "over"
                raise RuntimeError(f"cluster {self.id} is {why}; it takes no new instances "
                                   "(run a new one)")
            instance = ServiceInstance(self, next(self._numbers), service,
                                       self._settings.max_messages,
                                       self._settings.liveness_interval)
            self._instances.append(instance)
            if self._started:
                instance._start_thread()
        return instance

    def emit(self, event: Event) -> None:
        self._parts.bus.emit(replace(event, job_id=self.id) if not event.job_id else event)

    def _wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def _join(self, threads: list[threading.Thread], deadline: float) -> None:
        for thread in threads:
            if thread.ident is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    # -- the instances' side --------------------------------------------------------------------
    def _await_hire(self, instance: ServiceInstance) -> Optional[Hire]:
        """Block until the market hands ``instance`` a provider; None when the cluster or the
        instance stops, the market failed, or none came within ``offer_timeout``."""
        deadline = time.monotonic() + self._settings.offer_timeout
        with self._lock:
            self._waiting.append(instance)
            try:
                while instance.name not in self._offered:
                    left = deadline - time.monotonic()
                    # the instance's own flag, not _stopping: stop() sets it after _stopping,
                    # and a wake in between must not read as "no provider came"
                    if instance._stop_requested.is_set() or left <= 0 \
                            or self._market_error is not None:
                        return None
                    self._lock.wait(min(left, 1.0))
                return self._offered.pop(instance.name)
            finally:
                if instance in self._waiting:
                    self._waiting.remove(instance)

    def _no_provider_error(self) -> BaseException:
        with self._lock:
            error = self._market_error
        if error is not None:
            return error
        negotiator = self._negotiator
        lines = negotiator.report.lines() if negotiator is not None else []
        with self._lock:
            failed = len(self._excluded)
        if failed:
            lines.append(f"providers failed in this cluster (not hired again): {failed}")
        return NoOffersError(f"no provider could be hired for the service within "
                             f"{self._settings.offer_timeout} s; check the payload's "
                             "requirements, subnet_tag and budget",
                             report="\n".join("  " + line for line in lines))

    def _serve_on(self, instance: ServiceInstance,
                  hire: Hire) -> tuple[_Outcome, Optional[BaseException]]:
        """One provider's turn: activity, start/run/shutdown, release. Never raises."""
        outcome: _Outcome = _Outcome.DONE
        error: Optional[BaseException] = None
        activity_id: Optional[str] = None
        idle = False
        try:
            activity_id = self._open(instance, hire)
            idle = self._run_phases(instance, hire)
        except BaseException as exc:  # noqa: B036 - sorted by fault below
            error = exc
            outcome = self._fault(instance, exc)
        finally:
            instance._ctx, instance._runner = None, None
            if activity_id is not None:
                destroy_activity(self._parts.client.activity, hire, self._parts.payments,
                                 activity_id, read_usage=idle and error is None)
            self._release(hire, failed=outcome is not _Outcome.DONE,
                          reason=None if error is None else f"{type(error).__name__}: {error}")
        return outcome, error

    def _open(self, instance: ServiceInstance, hire: Hire) -> str:
        parts = self._parts
        deploy_args: dict[str, Any] = {}
        if self._network is not None:
            node = self._network.add_node(hire.provider_id)
            with instance._cond:
                instance._node = node
            deploy_args.update(node.deploy_args())
        activity_id = create_activity(parts.client.activity, hire, parts.payments,
                                      timeout=parts.settings.activity_timeout)
        instance._ctx = WorkContext(hire.provider_id, hire.provider_name, hire.agreement_id,
                                    activity_id, _execute=instance._execute,
                                    _storage=parts.storage)
        instance._runner = self._runner(hire, activity_id, instance._interrupt)
        if instance._stop_requested.is_set():
            raise ActivityTerminated("the cluster is stopping", provider=hire.provider_name)
        deploy_and_start(instance._ctx, self.emit, deploy_args)
        return activity_id

    def _check_alive(self, ctx: WorkContext) -> None:
        """Raise ActivityTerminated unless the activity of ``ctx`` is alive."""
        try:
            state = self._parts.client.activity.get_state(ctx.activity_id)
        except AuthenticationError:
            raise  # the session's problem, not the provider's
        except ApiError as exc:
            raise ActivityTerminated(f"activity on {ctx.provider_name} is unreachable: {exc}",
                                     provider=ctx.provider_name) from exc
        if not state.alive:
            reason = state.reason or state.error_message or "no reason given"
            raise ActivityTerminated(f"provider {ctx.provider_name} terminated the activity "
                                     f"({reason})", provider=ctx.provider_name)

    def _runner(self, hire: Hire, activity_id: str, stop: threading.Event) -> BatchRunner:
        return BatchRunner(self._parts.client.activity, activity_id,
                           provider_id=hire.provider_id, provider_name=hire.provider_name,
                           poll_timeout=self._parts.settings.poll_timeout, stop=stop,
                           emit=self.emit)

    def _run_phases(self, instance: ServiceInstance, hire: Hire) -> bool:
        """start(), run(), shutdown(); True when no command is left running (usage readable)."""
        service = instance.service
        try:
            started = instance._drive(service.start(), "start")
        except (CommandFailed, JobTimeout) as exc:  # the provider could not start the service
            raise ActivityTerminated(f"start() failed on {hire.provider_name}: {exc}",
                                     provider=hire.provider_name) from exc
        if not started or instance._stop_requested.is_set():
            return not instance._interrupt.is_set()
        instance._enter(ServiceState.RUNNING)
        try:
            finished = instance._drive(service.run(), "run")
        except Exception as exc:
            if not instance._stop_requested.is_set():
                raise
            logger.info("run() of %s ended by the stop: %s: %s", instance.name,
                        type(exc).__name__, exc)
            finished = False
        stopped = not finished or instance._stop_requested.is_set()
        instance._enter(ServiceState.STOPPING, "stop requested" if stopped else None)
        self._shutdown(instance, hire)
        return not instance._interrupt.is_set()

    def _shutdown(self, instance: ServiceInstance, hire: Hire) -> None:
        """Drive shutdown() on a runner of its own (the start/run one may be interrupted)."""
        assert instance._ctx is not None
        instance._runner = self._runner(hire, instance._ctx.activity_id, instance._kill)
        instance._until = time.monotonic() + self._settings.shutdown_timeout
        try:
            instance._drive(instance.service.shutdown(), "shutdown")
        except GolemError as exc:
            logger.warning("shutdown() of %s on %s failed: %s", instance.name,
                           hire.provider_name, exc)
        finally:
            instance._until = None

    def _fault(self, instance: ServiceInstance, exc: BaseException) -> _Outcome:
        if instance._stop_requested.is_set():
            logger.info("service instance %s ended while stopping: %s: %s", instance.name,
                        type(exc).__name__, exc)
            return _Outcome.DONE
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt and the like: not anyone's fault to sort
        fault = classify(exc)
        if fault is Fault.PROVIDER:
            provider_id = instance.provider_id
            with self._lock:
                if provider_id is not None:
                    self._excluded.add(provider_id)
            logger.warning("service instance %s: provider %s failed: %s", instance.name,
                           instance.provider_name, exc)
            return _Outcome.RESPAWN if self._settings.respawn else _Outcome.FAILED
        return _Outcome.FAILED

    def _release(self, hire: Hire, *, failed: bool, reason: Optional[str]) -> None:
        from .engine import end_agreement  # engine imports this module lazily

        end_agreement(self._parts, hire, failed=failed, reason=reason, emit=self.emit)
        with self._lock:
            self._signed.pop(hire.agreement_id, None)
            self._at_work.pop(hire.provider_id, None)
        self._parts.claims.release(hire.provider_id, self.id)

    def _check_budget(self, instance: ServiceInstance) -> None:
        hire = instance._hire
        if hire is not None and not self._parts.payments.may_continue(hire.agreement_id):
            raise BudgetExceeded(f"the budget left ({format(self._parts.budget, 'f')} GLM, "
                                 f"{format(self._parts.payments.spent, 'f')} spent) cannot pay "
                                 f"provider {hire.provider_name} for more; raise budget=")

    def _instance_ended(self, instance: ServiceInstance) -> None:
        with self._lock:
            done = self._ended = all(i.state.final for i in self._instances)
            negotiator = self._negotiator
        if done:
            self._market_stop.set()  # nothing left to hire for: the market thread ends
            if negotiator is not None:
                negotiator.interrupt()

    # -- Staffing: the negotiator's questions ------------------------------------------------------
    def wanted(self) -> int:
        with self._lock:
            return 0 if self._stopping else len(self._waiting)

    def at_work(self) -> int:
        with self._lock:
            return len(self._at_work)

    def excluded(self) -> Collection[str]:
        overcharged = set(self._parts.payments.overcharged_providers())
        with self._lock:
            mine = self._excluded | set(self._at_work)
        return mine | overcharged | self._parts.claims.others(self.id)

    def can_afford(self, offer: Offer) -> bool:
        ok = self._parts.payments.can_afford(offer, self._parts.settings.expected_task_seconds)
        return ok and self._parts.claims.claim(offer.provider_id, self.id)

    def signed(self, hire: Hire) -> None:
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
            self._parts.payments.forget(agreement_id)

    def hired(self, hire: Hire) -> None:
        with self._lock:
            instance = self._waiting.pop(0) if self._waiting and not self._stopping else None
            if instance is not None:
                self._offered[instance.name] = hire
                self._at_work[hire.provider_id] = instance.name
                self._lock.notify_all()
        self.emit(AgreementCreated(provider_id=hire.provider_id,
                                   provider_name=hire.provider_name,
                                   agreement_id=hire.agreement_id))
        if instance is None:  # nobody waits any more (stopped meanwhile): release it now
            self._release(hire, failed=False, reason="no instance waits for it")

    def failed(self, error: BaseException) -> None:
        """The market cannot go on: every instance still waiting for a provider fails."""
        with self._lock:
            if self._market_error is None:
                self._market_error = error
            self._lock.notify_all()


def _probe_constraints(parts: JobParts) -> str:
    items = [f"(golem.node.debug.subnet={parts.config.subnet})", *parts.decorations.constraints]
    return items[0] if len(items) == 1 else "(&" + "\n\t".join(items) + ")"


def lifetime_of(expiration: Union[datetime, timedelta, float, None], default: float) -> float:
    """Seconds from now until ``expiration`` (a datetime, a timedelta or seconds)."""
    if expiration is None:
        return default
    if isinstance(expiration, datetime):
        if expiration.tzinfo is None:
            raise ConfigurationError("expiration must be a timezone-aware datetime "
                                     "(e.g. datetime.now(timezone.utc) + timedelta(hours=1))")
        seconds = (expiration - timestamps.now()).total_seconds()
    elif isinstance(expiration, timedelta):
        seconds = expiration.total_seconds()
    elif isinstance(expiration, (int, float)):
        seconds = float(expiration)
    else:
        raise ConfigurationError(f"expiration must be a datetime, a timedelta or seconds, got "
                                 f"{type(expiration).__name__}")
    if seconds < 60:
        raise ConfigurationError(f"expiration must be at least a minute ahead (got {seconds:.0f}"
                                 " s); providers refuse shorter agreements")
    return seconds
