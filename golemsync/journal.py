"""A job's journal: resume after a crash, and settle what a killed run left on the daemon.

::

    for task in golem.execute_tasks(worker, data, payload, journal="crack.journal"):
        print(task.data, task.result, "(from the journal)" if task.resumed else "")

``execute_tasks(..., journal=PATH)`` (or ``journal=Journal(PATH, codec=...)``) keeps a local
SQLite file (stdlib ``sqlite3``, WAL, ``synchronous=FULL``, one commit per write) holding:

* every accepted task's **key** and **result**. The key is ``Task(key=...)`` when given, else
  the SHA-256 of the task's data serialised as JSON with sorted keys (data that cannot be
  serialised needs a key: :class:`~golemsync.errors.ConfigurationError` names the task). The
  result is stored with the journal's codec: JSON by default, or any object with
  ``dumps``/``loads`` (the ``pickle`` module works);
* the session's **agreements** (id, provider, state), their **activities** and the session's
  **allocation**, with the daemon's URL.

A rerun with the same journal yields the tasks it finds finished at once, with
``task.resumed = True`` and the recorded result: they are not run and not paid again. Only the
rest run. One journal belongs to one job's tasks: tasks with the same key (or the same data)
share one record.

**Recovery.** The first ``execute_tasks`` with a journal in a ``Golem`` opens it (an exclusive
lock: one process at a time) and, before its job hires anyone, settles the orphans that
earlier runs *on the same daemon URL* left behind, re-reading each one's state from the
daemon: an agreement still Approved is terminated (its activities destroyed first, including
any the journal did not hear of, found with the activity API); one still Proposal/Pending is
cancelled; the invoices of terminated agreements are awaited for up to ``invoice_timeout``
and accepted when their amount fits the agreed linear price for the time from approval to
termination (the check of :class:`~golemsync.payments.AgreementCost`), else rejected; an
invoice already accepted is left alone. The old allocation pays them, then it is released
(if it is gone, the current one pays). :attr:`Journal.recovery` reports what was done.

**Crash semantics** (``kill -9`` at any instant, then a rerun with the same journal):

* the file is never corrupt: a write is one SQLite transaction, committed or not;
* a task is committed when its result is accepted, on the worker's thread, before that
  provider gets another task, and in any case before ``execute_tasks`` yields it: every task
  you were given is in the journal. A task accepted but not yet committed when the process
  died runs again (the only work that can be done, and paid, twice);
* an agreement is committed as soon as the daemon returns its id, before it is confirmed: an
  agreement the journal lacks (the kill came between the daemon creating it and the commit)
  was never confirmed, so can never be approved and owes nothing; it stays a Proposal until
  its ``validTo``. Activities are committed as they are created, and recovery also
  asks the daemon for each orphan agreement's activities: none is left running;
* after recovery no agreement of an earlier run is Approved, none of its activities is alive,
  each invoice was accepted at most once and within the agreed price, and every earlier
  allocation is released. A kill *during* recovery is safe: the next run redoes it, each step
  being idempotent and read back from the daemon;
* not covered: runs against another daemon URL (left alone, logged), providers that send no
  invoice within ``invoice_timeout`` (marked unpaid and left: what their debit notes got
  accepted before the crash is all they are paid), results the codec cannot round-trip.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Optional, Protocol, Union

from . import timestamps
from .errors import ApiError, ConfigurationError, GolemError, NotFound
from .events import Event, InvoiceAccepted, InvoiceRejected
from .market import LinearPricing
from .payments import TIME_SLACK_SECONDS, TOLERANCE, AgreementCost
from .tasks import Task, TaskStatus

if TYPE_CHECKING:
    from .market import Hire
    from .rest import YagnaClient

try:  # POSIX: an advisory lock keeps two processes from sharing a journal
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    key TEXT PRIMARY KEY, result NOT NULL, run INTEGER, finished_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY AUTOINCREMENT, daemon_url TEXT NOT NULL, identity TEXT,
    allocation_id TEXT, allocation_state TEXT NOT NULL, started_at REAL NOT NULL,
    state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agreements (
    agreement_id TEXT PRIMARY KEY, run INTEGER NOT NULL, provider_id TEXT,
    provider_name TEXT, state TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS activities (
    activity_id TEXT PRIMARY KEY, agreement_id TEXT NOT NULL, state TEXT NOT NULL);
"""

#: Agreement states in the journal that may still owe something or hold a provider.
OPEN_AGREEMENT_STATES = ("signed", "approved", "terminated")
_DONE_INVOICE = ("ACCEPTED", "SETTLED", "REJECTED", "CANCELLED", "FAILED")


class Codec(Protocol):
    """How results are stored: ``loads(dumps(value))`` must give ``value`` back."""

    def dumps(self, value: Any) -> Union[str, bytes]: ...

    def loads(self, data: Any) -> Any: ...


class JsonCodec:
    """The default codec: JSON (so tuples come back as lists)."""

    def dumps(self, value: Any) -> str:
        return json.dumps(value, sort_keys=True, allow_nan=False)

    def loads(self, data: Any) -> Any:
        return json.loads(data)


def task_key(task: Task[Any]) -> str:
    """The journal's name for ``task``: its ``key``, else a hash of its data as JSON."""
    if task.key is not None:
        return f"key:{task.key}"
    try:
        text = json.dumps(task.data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"task {task.data!r} cannot be journaled: its data is not JSON-serialisable "
            f"({exc}); give it a key: Task(data, key='...')") from exc
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Recovery:
    """What recovering a journal's orphans did (``Journal.recovery``)."""

    agreements_terminated: list[str] = field(default_factory=list)
    agreements_cancelled: list[str] = field(default_factory=list)
    activities_destroyed: list[str] = field(default_factory=list)
    invoices_accepted: dict[str, Decimal] = field(default_factory=dict)  # agreement -> GLM
    invoices_rejected: list[str] = field(default_factory=list)
    unpaid: list[str] = field(default_factory=list)  # agreements with no invoice in time
    allocations_released: list[str] = field(default_factory=list)
    other_daemons: list[str] = field(default_factory=list)  # runs left alone

    @property
    def paid(self) -> Decimal:
        return sum(self.invoices_accepted.values(), Decimal(0))

    @property
    def empty(self) -> bool:
        return not (self.agreements_terminated or self.agreements_cancelled
                    or self.activities_destroyed or self.invoices_accepted
                    or self.invoices_rejected or self.unpaid or self.allocations_released)


class Journal:
    """A journal file (see the module docstring). ``execute_tasks(journal=...)`` opens it;
    it is closed when the ``Golem`` closes. With ``record_tasks=False`` it records only the
    session's agreements, activities and allocation (what ``golem.executor(journal=...)``
    uses: its calls are not data that can be resumed)."""

    def __init__(self, path: Union[str, os.PathLike[str]], *,
                 codec: Optional[Codec] = None, record_tasks: bool = True) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.codec: Codec = codec if codec is not None else JsonCodec()
        self.record_tasks = record_tasks  # False: agreements only (``golem.executor``)
        self.recovery: Optional[Recovery] = None
        self._lock = threading.Lock()  # guards the connection and everything below
        self._db: Optional[sqlite3.Connection] = None
        self._lock_file: Optional[Any] = None
        self._run: Optional[int] = None
        self._recorded: set[str] = set()
        self.resumed = 0  # tasks resumed by this session
        self.recorded = 0  # tasks committed by this session

    def __repr__(self) -> str:
        return f"Journal({self.path!r})"

    @property
    def attached(self) -> bool:
        """True while a ``Golem`` session records into it (between ``attach`` and ``close``)."""
        with self._lock:
            return self._run is not None and self._db is not None

    # -- file ------------------------------------------------------------------------------
    def open(self) -> None:
        """Open (creating) the file and take its lock; ConfigurationError if it is in use."""
        with self._lock:
            if self._db is not None:
                return
            lock_file = open(self.path + "-lock", "a+b")  # held (locked) while the journal is open
            if fcntl is not None:
                try:
                    fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    lock_file.close()
                    raise ConfigurationError(f"journal {self.path} is in use by another "
                                             "process") from exc
            try:
                db = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                     check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                lock_file.close()
                raise ConfigurationError(f"cannot open journal {self.path}: {exc}") from exc
            self._db, self._lock_file = db, lock_file

    def close(self, *, allocation_released: bool = False) -> None:
        """Mark this run closed (and its allocation released), close the file. Idempotent."""
        with self._lock:
            db, self._db = self._db, None
            if db is None:
                return
            if self._run is not None:
                state = "released" if allocation_released else "open"
                db.execute("UPDATE runs SET state='closed', allocation_state=? WHERE run=?",
                           (state, self._run))
            db.close()
            self._run = None
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            if self._db is None:
                raise RuntimeError(f"journal {self.path} is not open")
            self._db.execute(sql, args)  # autocommit: one durable transaction per write

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._db is None:
                raise RuntimeError(f"journal {self.path} is not open")
            return list(self._db.execute(sql, args).fetchall())

    # -- the session -----------------------------------------------------------------------
    def attach(self, client: YagnaClient, *, daemon_url: str, identity: Optional[str],
               allocation_id: Optional[str], invoice_timeout: float,
               poll_timeout: float) -> Recovery:
        """Open the journal for a ``Golem`` session, settle earlier runs' orphans on this
        daemon, and start recording this run. Blocks for the recovery (bounded)."""
        self.open()
        run = self._begin_run(daemon_url, identity, allocation_id)
        report = _Recoverer(self, client, run, daemon_url, allocation_id, invoice_timeout,
                            poll_timeout).run()
        self.recovery = report
        if not report.empty:
            logger.warning("journal %s: recovered a killed run: %d agreements terminated, "
                           "%d activities destroyed, %s GLM paid, %d allocations released",
                           self.path, len(report.agreements_terminated),
                           len(report.activities_destroyed), format(report.paid, "f"),
                           len(report.allocations_released))
        return report

    def _begin_run(self, daemon_url: str, identity: Optional[str],
                   allocation_id: Optional[str]) -> int:
        with self._lock:
            assert self._db is not None
            cursor = self._db.execute(
                "INSERT INTO runs (daemon_url, identity, allocation_id, allocation_state, "
                "started_at, state) VALUES (?, ?, ?, 'open', ?, 'running')",
                (daemon_url, identity, allocation_id, time.time()))
            self._run = int(cursor.lastrowid or 0)
            return self._run

    # -- tasks -------------------------------------------------------------------------------
    def resume(self, data: Iterable[Any]) -> Iterator[Task[Any]]:
        """``data`` as tasks, those the journal holds already finished (``resumed``)."""
        for item in data:
            task = item if isinstance(item, Task) else Task(item)
            if not self.record_tasks:
                yield task
                continue
            key = task_key(task)
            rows = self._read("SELECT result FROM tasks WHERE key=?", (key,))
            if rows and task.status is TaskStatus.PENDING and not task.attempts:
                try:
                    result = self.codec.loads(rows[0][0])
                except Exception as exc:
                    raise ConfigurationError(f"journal {self.path}: the result of task "
                                             f"{task.data!r} cannot be decoded: {exc}") from exc
                task._resume(result)
                with self._lock:
                    self._recorded.add(key)
                    self.resumed += 1
            yield task

    def task_done(self, task: Task[Any]) -> None:
        """Commit an accepted task's result (idempotent within a session)."""
        if not self.record_tasks:
            return
        key = task_key(task)
        with self._lock:
            if key in self._recorded:
                return
        try:
            encoded = self.codec.dumps(task.result)
        except Exception as exc:
            raise ConfigurationError(
                f"the result of task {task.data!r} cannot be journaled ({exc}); return a "
                "JSON value or give the Journal a codec: Journal(path, codec=...)") from exc
        with self._lock:
            if self._db is None:
                raise RuntimeError(f"journal {self.path} is not open")
            if key in self._recorded:
                return
            self._db.execute("INSERT OR REPLACE INTO tasks (key, result, run, finished_at) "
                             "VALUES (?, ?, ?, ?)", (key, encoded, self._run, time.time()))
            self._recorded.add(key)
            self.recorded += 1

    def finished_keys(self) -> set[str]:
        """Every task key the journal holds."""
        return {row[0] for row in self._read("SELECT key FROM tasks")}

    def count_unfinished(self, data: Iterable[Any]) -> int:
        """How many of ``data`` (a collection: it is iterated) the journal does not hold."""
        if not self.record_tasks:
            return sum(1 for _ in data)
        done = self.finished_keys()
        return sum(1 for item in data
                   if task_key(item if isinstance(item, Task) else Task(item)) not in done)

    # -- agreements and activities -----------------------------------------------------------
    def agreement_signed(self, hire: Hire) -> None:
        """An agreement exists (created, not yet approved)."""
        self._write("INSERT OR REPLACE INTO agreements (agreement_id, run, provider_id, "
                    "provider_name, state, updated_at) VALUES (?, ?, ?, ?, 'signed', ?)",
                    (hire.agreement_id, self._run, hire.provider_id, hire.provider_name,
                     time.time()))

    def agreement_state(self, agreement_id: str, state: str) -> None:
        """``approved``, ``terminated`` (an invoice may come), ``cancelled`` or ``settled``."""
        if state not in ("approved", "terminated", "cancelled", "settled", "unpaid"):
            raise ValueError(f"unknown agreement state {state!r}")
        self._write("UPDATE agreements SET state=?, updated_at=? WHERE agreement_id=?",
                    (state, time.time(), agreement_id))

    def activity_started(self, agreement_id: str, activity_id: str) -> None:
        self._write("INSERT OR REPLACE INTO activities (activity_id, agreement_id, state) "
                    "VALUES (?, ?, 'created')", (activity_id, agreement_id))

    def on_event(self, event: Event) -> None:
        """Event-bus subscriber: an agreement whose invoice was decided is settled."""
        if isinstance(event, (InvoiceAccepted, InvoiceRejected)):
            with self._lock:
                if self._db is None:
                    return
                self._db.execute("UPDATE agreements SET state='settled', updated_at=? "
                                 "WHERE agreement_id=?", (time.time(), event.agreement_id))

    def ledger(self, payments: Any) -> JournaledLedger:
        """A provider session's ledger that also journals its activities."""
        return JournaledLedger(payments, self)


class JournaledLedger:
    """:class:`~golemsync.session.Ledger` forwarding to the payments, journaling activities."""

    def __init__(self, payments: Any, journal: Journal) -> None:
        self._payments = payments
        self._journal = journal

    def add_task(self, agreement_id: str, task: Task[Any]) -> None:
        self._payments.add_task(agreement_id, task)

    def activity_started(self, agreement_id: str, activity_id: str,
                         requested_at: Optional[float] = None) -> None:
        self._journal.activity_started(agreement_id, activity_id)
        self._payments.activity_started(agreement_id, activity_id, requested_at)

    def activity_ended(self, agreement_id: str, activity_id: str,
                       final_usage: Optional[Sequence[float]] = None,
                       usage_age: float = 0.0) -> None:
        self._payments.activity_ended(agreement_id, activity_id, final_usage, usage_age)

    def may_continue(self, agreement_id: str) -> bool:
        return bool(self._payments.may_continue(agreement_id))


@dataclass
class _Owed:
    agreement_id: str
    run: int
    record: AgreementCost


class _Recoverer:
    """Settles earlier runs' orphans (see the module docstring); every step is idempotent."""

    def __init__(self, journal: Journal, client: YagnaClient, run: int, daemon_url: str,
                 allocation_id: Optional[str], invoice_timeout: float,
                 poll_timeout: float) -> None:
        self._journal = journal
        self._client = client
        self._run = run
        self._url = daemon_url
        self._allocation_id = allocation_id
        self._invoice_timeout = invoice_timeout
        self._poll_timeout = poll_timeout
        self.report = Recovery()

    def run(self) -> Recovery:
        journal = self._journal
        runs = journal._read("SELECT run, daemon_url, allocation_id, allocation_state, state "
                             "FROM runs WHERE run != ?", (self._run,))
        here = {r[0] for r in runs if r[1] == self._url}
        self.report.other_daemons = sorted({r[1] for r in runs if r[1] != self._url
                                            and (r[3] == "open" or r[4] != "closed")})
        for url in self.report.other_daemons:
            logger.warning("journal %s: runs on %s are left alone (this session uses %s)",
                           journal.path, url, self._url)
        placeholders = ",".join("?" * len(OPEN_AGREEMENT_STATES))
        rows = journal._read(
            f"SELECT agreement_id, run FROM agreements WHERE state IN ({placeholders})",
            OPEN_AGREEMENT_STATES)
        owed = []
        for agreement_id, run in rows:
            if run in here:
                item = self._end_agreement(agreement_id, run)
                if item is not None:
                    owed.append(item)
        open_allocations = {r[0]: r[2] for r in runs
                            if r[0] in here and r[2] and r[3] == "open"}
        self._pay(owed, open_allocations)
        for run, allocation_id in open_allocations.items():
            self._release(run, allocation_id)
        for run in here:
            journal._write("UPDATE runs SET state='recovered' WHERE run=? AND state='running'",
                           (run,))
        return self.report

    # -- agreements --------------------------------------------------------------------------
    def _end_agreement(self, agreement_id: str, run: int) -> Optional[_Owed]:
        market = self._client.market
        try:
            agreement = market.get_agreement(agreement_id)
        except NotFound:
            self._journal.agreement_state(agreement_id, "cancelled")
            return None
        state = agreement.state
        if state in ("Proposal", "Pending"):
            reason = {"message": "the requestor's earlier run ended",
                      "golem.requestor.code": "Cancelled"}
            try:
                market.cancel_agreement(agreement_id, reason)
                self.report.agreements_cancelled.append(agreement_id)
                self._journal.agreement_state(agreement_id, "cancelled")
                return None
            except ApiError:  # approved meanwhile: terminate it below
                agreement = market.get_agreement(agreement_id)
                state = agreement.state
        if state not in ("Approved", "Terminated"):
            self._journal.agreement_state(agreement_id, "cancelled")  # never owed anything
            return None
        self._destroy_activities(agreement_id)
        terminated_at = timestamps.now()
        if state == "Approved":
            reason = {"message": "the requestor's earlier run was killed; ending its work",
                      "golem.requestor.code": "Cancelled"}
            try:
                market.terminate_agreement(agreement_id, reason)
                self.report.agreements_terminated.append(agreement_id)
            except ApiError as exc:
                logger.info("terminate orphan agreement %s: %s", agreement_id, exc)
        else:
            try:
                when = market.termination_reason(agreement_id).event_date
                terminated_at = when if when is not None else terminated_at
            except GolemError as exc:
                logger.debug("termination of %s: %s", agreement_id, exc)
        self._journal.agreement_state(agreement_id, "terminated")
        return _Owed(agreement_id, run, _cost_record(agreement, terminated_at))

    def _destroy_activities(self, agreement_id: str) -> None:
        activity = self._client.activity
        known = {r[0] for r in self._journal._read(
            "SELECT activity_id FROM activities WHERE agreement_id=? AND state != 'destroyed'",
            (agreement_id,))}
        try:
            known.update(activity.list_activities(agreement_id))
        except GolemError as exc:
            logger.debug("list activities of %s: %s", agreement_id, exc)
        for activity_id in sorted(known):
            try:
                alive = activity.get_state(activity_id).current != "Terminated"
            except GolemError:
                alive = False  # unknown to the daemon: nothing to destroy
            if alive:
                try:
                    activity.destroy_activity(activity_id)
                    self.report.activities_destroyed.append(activity_id)
                except GolemError as exc:
                    logger.info("destroy orphan activity %s: %s", activity_id, exc)
            self._journal._write(
                "INSERT OR REPLACE INTO activities (activity_id, agreement_id, state) "
                "VALUES (?, ?, 'destroyed')", (activity_id, agreement_id))

    # -- invoices ------------------------------------------------------------------------------
    def _pay(self, owed: list[_Owed], allocations: dict[int, str]) -> None:
        waiting = {item.agreement_id: item for item in owed}
        if not waiting:
            return
        payment = self._client.payment
        deadline = time.monotonic() + self._invoice_timeout
        since = timestamps.now()
        while waiting:
            for invoice in payment.list_invoices():
                item = waiting.get(invoice.agreement_id)
                if item is not None and self._settle(invoice, item, allocations):
                    del waiting[invoice.agreement_id]
            remaining = deadline - time.monotonic()
            if not waiting or remaining <= 0:
                break
            # the events only wake us up; the invoices' states are read from the list
            events = payment.invoice_events(after=since,
                                            timeout=min(remaining, self._poll_timeout))
            for event in events:
                since = max(since, event.event_date)
        for agreement_id in waiting:
            logger.warning("journal: no invoice for orphan agreement %s within %ss; left "
                           "unpaid", agreement_id, self._invoice_timeout)
            self.report.unpaid.append(agreement_id)
            self._journal.agreement_state(agreement_id, "unpaid")

    def _settle(self, invoice: Any, item: _Owed, allocations: dict[int, str]) -> bool:
        """Decide one orphan's invoice; True once it is decided (now or earlier)."""
        if invoice.status in _DONE_INVOICE:
            self._journal.agreement_state(item.agreement_id, "settled")
            return True
        if invoice.status != "RECEIVED":
            return False
        payment = self._client.payment
        ceiling = _orphan_ceiling(item.record, len(invoice.activity_ids))
        if ceiling is not None and invoice.amount > ceiling:
            message = (f"amount {invoice.amount} exceeds the agreed price for the time used "
                       f"({ceiling})")
            logger.warning("orphan invoice %s rejected: %s", invoice.invoice_id, message)
            try:
                payment.reject_invoice(invoice.invoice_id, reason="INCORRECT_AMOUNT",
                                       message=message)
            except ApiError as exc:
                logger.error("reject invoice %s: %s", invoice.invoice_id, exc)
            self.report.invoices_rejected.append(item.agreement_id)
            self._journal.agreement_state(item.agreement_id, "settled")
            return True
        candidates = [allocations.get(item.run), self._allocation_id]
        for allocation_id in [a for a in candidates if a]:
            try:
                payment.accept_invoice(invoice.invoice_id, invoice.amount, allocation_id)
            except ApiError as exc:
                logger.info("accept orphan invoice %s from allocation %s: %s",
                            invoice.invoice_id, allocation_id, exc)
                continue
            self.report.invoices_accepted[item.agreement_id] = invoice.amount
            self._journal.agreement_state(item.agreement_id, "settled")
            return True
        return False

    def _release(self, run: int, allocation_id: str) -> None:
        try:
            self._client.payment.release_allocation(allocation_id)
            self.report.allocations_released.append(allocation_id)
        except ApiError as exc:  # already released or expired: the same outcome
            logger.debug("release allocation %s: %s", allocation_id, exc)
        self._journal._write("UPDATE runs SET allocation_state='released' WHERE run=?", (run,))


def _cost_record(agreement: Any, terminated_at: datetime) -> AgreementCost:
    """The payments module's ledger of an orphan, its clock set from the daemon's dates."""
    properties = agreement.offer.properties
    threads = properties.get("golem.inf.cpu.threads", 1)
    record = AgreementCost(agreement.agreement_id, agreement.offer.provider_id,
                           str(properties.get("golem.node.id.name", "")),
                           LinearPricing.from_properties(properties),
                           threads if isinstance(threads, int) and threads > 0 else 1)
    approved = agreement.approved_date or agreement.timestamp or terminated_at
    now_wall, now = timestamps.now(), time.monotonic()
    record.started = now - max(0.0, (now_wall - approved).total_seconds())
    record.ended = now - max(0.0, (now_wall - terminated_at).total_seconds())
    return record


def _orphan_ceiling(record: AgreementCost, activities: int) -> Optional[Decimal]:
    """The most an orphan agreement can owe: its linear price for the whole time from approval
    to termination at full CPU, per activity it lists (no usage was observed by this run)."""
    if record.pricing is None:
        return None
    end = record.ended if record.ended is not None else time.monotonic()
    seconds = max(0.0, end - record.started) + TIME_SLACK_SECONDS
    per_activity = record.pricing.cost(seconds, seconds * record.cpu_threads)
    return per_activity * max(1, activities) * (1 + TOLERANCE)
