"""A typed stream of what the engine does, for callbacks, logs, progress bars and summaries.

Subscribe with ``Golem(on_event=callback)`` or ``golem.subscribe(callback)``. Every event is a
frozen dataclass deriving from :class:`Event`; callbacks receive them in the order they
happened, on one dedicated thread (``golemsync-events``), so a slow callback never delays the
engine and a raising one is logged and skipped, never breaking the job.

Events (all carry ``at``, a ``time.monotonic()`` instant):

==========================  ==============================================================
``JobStarted``              a job began (``max_workers``)
``OfferReceived``           an offer from a provider was seen
``AgreementCreated``        a provider was hired (agreement approved)
``ActivityStarted``         its activity is deployed and started
``ScriptSent``              a batch was sent (``commands``)
``CommandFinished``         one command of a batch settled (``success``, ``message``)
``TaskAccepted``            a task's result was accepted
``TaskRetried``             a task attempt failed; it goes back to the queue
``TaskFailedEvent``         a task ran out of attempts
``AgreementTerminated``     a provider was released (``failed``)
``DebitNoteAccepted``       a debit note was accepted (``amount``)
``InvoiceAccepted``         an invoice was accepted (``amount``)
``InvoiceRejected``         an invoice was rejected (``amount``, ``reason``)
``DebitNoteRejected``       a debit note was left unaccepted (``amount``, ``reason``)
``InvoiceUnpaid``           a fitting invoice was left unpaid: the budget (``amount``)
``ProviderOvercharged``     a provider asked more than it may (``document``, ``reason``)
``JobFinished``             a job ended (``error`` when it raised)
``ServiceStateChanged``     a service instance changed state (``instance``, ``state``,
                            ``previous``, ``reason``)
==========================  ==============================================================
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Optional

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Base of every engine event; ``job_id`` names the job it belongs to ('' for none)."""

    at: float = field(default_factory=time.monotonic, compare=False)
    job_id: str = ""


@dataclass(frozen=True)
class JobStarted(Event):
    max_workers: int = 0


@dataclass(frozen=True)
class JobFinished(Event):
    error: Optional[str] = None


@dataclass(frozen=True)
class ProviderEvent(Event):
    """An event about one provider."""

    provider_id: str = ""
    provider_name: str = ""


@dataclass(frozen=True)
class OfferReceived(ProviderEvent):
    pass


@dataclass(frozen=True)
class AgreementCreated(ProviderEvent):
    agreement_id: str = ""


@dataclass(frozen=True)
class ActivityStarted(ProviderEvent):
    activity_id: str = ""


@dataclass(frozen=True)
class ScriptSent(ProviderEvent):
    commands: int = 0


@dataclass(frozen=True)
class CommandFinished(ProviderEvent):
    index: int = 0
    command: str = ""
    success: bool = True
    message: Optional[str] = None


@dataclass(frozen=True)
class AgreementTerminated(ProviderEvent):
    agreement_id: str = ""
    failed: bool = False
    reason: Optional[str] = None


@dataclass(frozen=True)
class TaskEvent(ProviderEvent):
    """An event about one task (``data`` is the task's input)."""

    data: Any = None
    attempts: int = 0
    running_time: float = 0.0


@dataclass(frozen=True)
class TaskAccepted(TaskEvent):
    pass


@dataclass(frozen=True)
class TaskRetried(TaskEvent):
    error: str = ""


@dataclass(frozen=True)
class TaskFailedEvent(TaskEvent):
    error: str = ""


@dataclass(frozen=True)
class PaymentEvent(ProviderEvent):
    """A payment document decided for an agreement."""

    agreement_id: str = ""
    amount: Decimal = Decimal(0)


@dataclass(frozen=True)
class DebitNoteAccepted(PaymentEvent):
    pass


@dataclass(frozen=True)
class InvoiceAccepted(PaymentEvent):
    pass


@dataclass(frozen=True)
class InvoiceRejected(PaymentEvent):
    reason: str = ""


@dataclass(frozen=True)
class DebitNoteRejected(PaymentEvent):
    """A debit note not accepted (the daemon cannot reject them): ``reason`` says why."""

    reason: str = ""


@dataclass(frozen=True)
class InvoiceUnpaid(PaymentEvent):
    """An invoice that fits the price but not the budget: never sent for acceptance."""

    reason: str = ""


@dataclass(frozen=True)
class ProviderOvercharged(PaymentEvent):
    """A provider sent a ``document`` ("debit note" or "invoice") beyond what it may charge
    (``amount`` asked); the engine should not hire it again."""

    document: str = ""
    document_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ServiceStateChanged(ProviderEvent):
    """A service instance (``instance``, its name) went from ``previous`` to ``state`` (the
    :class:`~golemsync.services.ServiceState` values, e.g. ``"running"``); ``job_id`` is its
    cluster's id, ``provider_*`` the provider it is on (empty while pending)."""

    instance: str = ""
    state: str = ""
    previous: str = ""
    reason: Optional[str] = None


Callback = Callable[[Event], None]

_STOP = object()


class EventBus:
    """Delivers events to subscribers on one thread, in order. ``emit`` never blocks."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _callbacks, _wanted, _thread, _closed
        self._callbacks: list[tuple[Callback, Optional[tuple[type[Event], ...]]]] = []
        self._wanted: dict[type[Event], bool] = {}  # event type -> whether anyone wants it
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def subscribe(self, callback: Callback,
                  kinds: Optional[tuple[type[Event], ...]] = None) -> Callable[[], None]:
        """Call ``callback(event)`` for every later event (only those of ``kinds``, if given);
        returns a function that unsubscribes."""
        entry = (callback, kinds)
        with self._lock:
            self._callbacks.append(entry)
            self._wanted.clear()
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._deliver, name="golemsync-events")
                self._thread.start()

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._callbacks:
                    self._callbacks.remove(entry)
                    self._wanted.clear()

        return unsubscribe

    def wants(self, kind: type[Event]) -> bool:
        """Whether a subscriber takes events of ``kind`` (hot paths skip building the rest)."""
        with self._lock:
            wanted = self._wanted.get(kind)
            if wanted is None:
                wanted = self._wanted[kind] = not self._closed and any(
                    kinds is None or issubclass(kind, kinds) for _, kinds in self._callbacks)
            return wanted

    def emit(self, event: Event) -> None:
        """Queue ``event`` for delivery (dropped when nobody wants it)."""
        if self.wants(type(event)):
            self._queue.put(event)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then stop the delivery thread. Idempotent."""
        with self._lock:
            self._closed = True
            self._wanted.clear()
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    def _deliver(self) -> None:
        while True:
            event = self._queue.get()
            if event is _STOP:
                return
            with self._lock:
                callbacks = [c for c, kinds in self._callbacks
                             if kinds is None or isinstance(event, kinds)]
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:
                    logger.exception("event callback %r raised on %s", callback,
                                     type(event).__name__)
