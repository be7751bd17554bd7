"""The localnet's provider program: a provider on a real yagna node, without ya-provider.

One :class:`LocalProvider` per provider node, run as threads of the process that started
the localnet. It speaks only its node's REST API and GSB API (LOCALNET.md §5):

* **market** (thread ``market``): publishes an offer built like the devnet's
  (:func:`golemsync.devnet.providers.offer_properties`, prices from a
  :class:`~golemsync.devnet.config.ProviderSpec`), answers every proposal of a requestor with
  the offer again, approves every agreement;
* **agreements** (thread ``agreements``): on ``AgreementTerminatedEvent`` issues the
  agreement's invoice (the sum of its activities' final costs) and sends it;
* **activity** (thread ``activity``): on ``CreateActivity`` starts a devnet
  :class:`~golemsync.devnet.exeunit.ExeUnit` for it, binds ``/public/exeunit/<activity>``
  through the GSB API (``Exec``, ``GetExecBatchResults``, ``GetRunningCommand``,
  ``GetActivityState``, ``GetActivityUsage``), and only then sets the state to
  ``Initialized`` (the requestor's ``POST /activity`` returns on that); it follows the exe-unit's
  state into the daemon (``PUT .../state``) after every batch; on ``DestroyActivity`` it
  stops the exe-unit and unbinds;
* **transfers**: the exe-unit's ``transfer`` commands with ``gftp://<requestor>/<name>`` URLs
  call the requestor's ``/public/gftp/<name>`` over the Golem net through the node's service
  bus (:mod:`golemsync.localnet.bus`, one connection per provider, reopened if it breaks):
  ``GetMetadata``/``GetChunk`` to fetch, ``UploadChunk``/``UploadFinished`` to push, a window
  of chunks in flight, SHA3-256 checked at both ends;
* **usage** (thread ``usage``): every second each running activity's usage goes to the node's
  local activity service over the bus, the exe-unit's heartbeat without which the node
  destroys an activity after 10 s;
* **billing** (thread ``billing``): every ``debit_note_interval`` seconds a cumulative debit
  note (linear price × usage) per running activity, sent through the payment API.

Every long-poll has a short timeout so :meth:`LocalProvider.stop` (which withdraws the offer,
destroys the exe-units, unbinds their services and joins all threads) returns promptly.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional, cast

import requests

from golemsync import money, timestamps
from golemsync.devnet.config import USAGE_VECTOR, DevnetConfig, ProviderSpec
from golemsync.devnet.errors import BatchNotFound, ResultsTimeout
from golemsync.devnet.exeunit import ExeUnit
from golemsync.devnet.gsb import GsbCallError
from golemsync.devnet.invoicing import cost
from golemsync.devnet.providers import offer_properties
from golemsync.localnet.bus import BusLink, RemoteGftp
from golemsync.localnet.gsbservice import BoundService, ServiceError

logger = logging.getLogger(__name__)

POLL = 2.0  # seconds of every long-poll: bounds how long stop() waits for a thread
USAGE_INTERVAL = 1.0  # seconds between usage reports (the node's limits: 5 s, then 10 s)
ACTIVITY_LOCAL = "/local/activity"  # the node's activity service for its exe-units
EXEUNIT_COMPONENTS = ("Exec", "GetExecBatchResults", "GetRunningCommand", "GetActivityState",
                      "GetActivityUsage")


@dataclass
class _Activity:
    activity_id: str
    agreement_id: str
    unit: ExeUnit
    service: Optional[BoundService] = None
    batches: dict[str, str] = field(default_factory=dict)  # requestor batch id -> exe-unit's
    reported: tuple[str, Optional[str]] = ("New", None)
    last_note: Optional[Decimal] = None
    cpu_reported: Optional[float] = None  # the CPU counter of the last usage report
    lock: threading.Lock = field(default_factory=threading.Lock)
    # held while a debit note is made and sent: the final amount waits for the one in flight
    billing: threading.Lock = field(default_factory=threading.Lock)
    ended: bool = False  # no debit note after this (under ``billing``)


class ProviderError(RuntimeError):
    """The provider's node refused a call the program cannot do without."""


class LocalProvider:
    """A provider program on one node (see the module docstring)."""

    def __init__(self, *, name: str, api_url: str, app_key: str, node_id: str,
                 spec: ProviderSpec, config: DevnetConfig, workdir: Path, seed: int,
                 gsb_url: Optional[str] = None) -> None:
        self.name = name
        # The node's service bus, for transfers: calls the requestor's gftp services.
        self._bus = BusLink(gsb_url, name=f"golemsync-provider-{name}") if gsb_url else None
        self.node_id = node_id
        self.spec = spec
        self._config = config
        self._workdir = workdir
        self._api = api_url.rstrip("/")
        self._http = requests.Session()
        self._http.headers["Authorization"] = f"Bearer {app_key}"
        self._app_key = app_key
        self._rng = random.Random(f"golemsync-localnet:{seed}:{name}")
        self.properties = offer_properties(spec, node_id, config)
        self.constraints = ("(&(golem.srv.comp.expiration>0)\n"
                            f"\t(golem.node.debug.subnet={spec.subnet or config.subnet}))")
        self.offer_id = ""
        self._lock = threading.Lock()  # guards _activities, _agreements, _invoiced, _finals
        self._activities: dict[str, _Activity] = {}
        self._agreements: dict[str, list[str]] = {}  # approved agreement -> its activities
        self._invoiced: set[str] = set()
        self._finals: dict[str, Decimal] = {}  # ended activity -> its final cost
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Check the node's service bus answers, publish the offer and start the threads."""
        if self._bus is not None:
            try:
                self._bus.get()
            except GsbCallError as exc:
                raise ProviderError(f"provider {self.name}: {exc}") from None
        self.offer_id = str(self._call("POST", "/market-api/v1/offers", json={
            "properties": self.properties, "constraints": self.constraints}))
        for role, target in (("market", self._market_loop),
                             ("agreements", self._agreement_loop),
                             ("activity", self._activity_loop),
                             ("billing", self._billing_loop),
                             ("usage", self._usage_loop)):
            thread = threading.Thread(target=self._guard, args=(target,),
                                      name=f"golemsync-ln-{self.name}-{role}")
            self._threads.append(thread)
            thread.start()

    def republish(self) -> None:
        """Withdraw the offer and publish it again (a new offer id, broadcast anew)."""
        with self._lock:
            old = self.offer_id
        self._quiet("DELETE", f"/market-api/v1/offers/{old}")
        new = str(self._call("POST", "/market-api/v1/offers", json={
            "properties": self.properties, "constraints": self.constraints}))
        with self._lock:
            self.offer_id = new

    def stop(self) -> None:
        """Withdraw the offer, stop every activity, join every thread. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self.offer_id:
            self._quiet("DELETE", f"/market-api/v1/offers/{self.offer_id}")
        for thread in self._threads:
            thread.join()
        with self._lock:
            activities = list(self._activities.values())
            self._activities.clear()
        for activity in activities:
            self._end_activity(activity)
        if self._bus is not None:
            self._bus.close()
        self._http.close()

    def _guard(self, target: Any) -> None:
        try:
            target()
        except Exception:
            if not self._stop.is_set():
                logger.exception("localnet provider %s: %s died", self.name, target.__name__)

    # -- market ------------------------------------------------------------------------------
    def _market_loop(self) -> None:
        countered: set[str] = set()
        while not self._stop.is_set():
            with self._lock:
                offer_id = self.offer_id
            events = self._poll(f"/market-api/v1/offers/{offer_id}/events",
                                {"timeout": POLL, "maxEvents": 20})
            for event in events:
                kind = event.get("eventType")
                if kind == "ProposalEvent":
                    proposal = event.get("proposal") or {}
                    proposal_id = str(proposal.get("proposalId", ""))
                    if proposal_id and proposal_id not in countered \
                            and proposal.get("issuerId") != self.node_id:
                        countered.add(proposal_id)
                        self._quiet("POST", f"/market-api/v1/offers/{offer_id}/proposals/"
                                            f"{proposal_id}",
                                    json={"properties": self.properties,
                                          "constraints": self.constraints})
                elif kind == "AgreementEvent":
                    agreement = event.get("agreement") or {}
                    agreement_id = str(agreement.get("agreementId", ""))
                    if agreement_id:
                        self._approve(agreement_id)

    def _approve(self, agreement_id: str) -> None:
        with self._lock:
            self._agreements.setdefault(agreement_id, [])
        self._quiet("POST", f"/market-api/v1/agreements/{agreement_id}/approve",
                    params={"timeout": 10})

    def _agreement_loop(self) -> None:
        after = timestamps.to_wire(timestamps.now())
        while not self._stop.is_set():
            events = self._poll("/market-api/v1/agreementEvents",
                                {"timeout": POLL, "afterTimestamp": after, "maxEvents": 20})
            for event in events:
                after = str(event.get("eventDate") or after)
                if event.get("eventType") == "AgreementTerminatedEvent":
                    self._invoice(str(event.get("agreementId", "")))

    # -- activities ----------------------------------------------------------------------------
    def _activity_loop(self) -> None:
        after = timestamps.to_wire(timestamps.now())
        while not self._stop.is_set():
            events = self._poll("/activity-api/v1/events",
                                {"timeout": POLL, "afterTimestamp": after, "maxEvents": 20})
            for event in events:
                after = str(event.get("eventDate") or after)
                kind, body = _tagged(event)
                activity_id = str(body.get("activityId") or event.get("activityId") or "")
                agreement_id = str(body.get("agreementId") or event.get("agreementId") or "")
                if kind == "CreateActivity" and activity_id:
                    self._create_activity(activity_id, agreement_id)
                elif kind == "DestroyActivity" and activity_id:
                    with self._lock:
                        activity = self._activities.pop(activity_id, None)
                    if activity is not None:
                        self._end_activity(activity, _monotonic_at(event.get("eventDate")))

    def _create_activity(self, activity_id: str, agreement_id: str) -> None:
        with self._lock:
            invoiced = agreement_id in self._invoiced
        if invoiced:  # created while the agreement was being terminated: it cannot run
            logger.info("localnet provider %s: activity %s of ended agreement %s refused",
                        self.name, activity_id, agreement_id)
            self._quiet("PUT", f"/activity-api/v1/activity/{activity_id}/state",
                        json={"state": ["Terminated", None]})
            return
        unit = ExeUnit(activity_id, workdir=self._workdir / activity_id, provider=self.spec,
                       rng=random.Random(self._rng.getrandbits(64)),
                       gftp_root=self._workdir / "gftp", usage_vector=USAGE_VECTOR,
                       on_crash=lambda reason: None,
                       gsb=cast(Any, RemoteGftp(self._bus)) if self._bus is not None else None)
        activity = _Activity(activity_id, agreement_id, unit)
        try:
            activity.service = BoundService(
                self._api, self._app_key, f"/public/exeunit/{activity_id}",
                EXEUNIT_COMPONENTS, lambda component, payload: self._exeunit_call(
                    activity, component, payload))
        except Exception:
            unit.destroy()
            raise
        with self._lock:
            self._activities[activity_id] = activity
            self._agreements.setdefault(agreement_id, []).append(activity_id)
        self._report_state(activity)

    def _end_activity(self, activity: _Activity, destroyed_at: Optional[float] = None) -> None:
        # The unit first: destroying it stops the usage clock the invoice bills, and wakes any
        # results poll still in flight, so closing the bus service (an unbind request, then
        # waiting for its reader and for calls in flight) adds nothing to the bill. The clock
        # stops when the node recorded the requestor's destroy (``destroyed_at``), not when
        # this program got round to its event: a busy machine must not bill the delay.
        activity.unit.destroy(ended_at=destroyed_at)
        if activity.service is not None:
            activity.service.close()
        with activity.billing:  # a debit note in flight lands first; none after
            activity.ended = True
            # Debit notes are cumulative and the node refuses an invoice below the last one:
            # one sent while the destroy was on its way (the clock has since been set back to
            # the destroy) sets the floor.
            final = max(cost(self.spec.coeffs, activity.unit.usage()),
                        activity.last_note or Decimal(0))
        with self._lock:
            self._finals[activity.activity_id] = final
        self._set_state(activity, ("Terminated", None))

    def _report_state(self, activity: _Activity) -> None:
        state = activity.unit.state()
        with activity.lock:
            changed = state != activity.reported
            activity.reported = state
        if changed:
            self._set_state(activity, state)

    def _set_state(self, activity: _Activity, state: tuple[str, Optional[str]]) -> None:
        with activity.lock:
            activity.reported = state
        self._quiet("PUT", f"/activity-api/v1/activity/{activity.activity_id}/state",
                    json={"state": [state[0], state[1]]})

    # -- the exe-unit's bus messages ---------------------------------------------------------
    def _exeunit_call(self, activity: _Activity, component: str,
                      payload: Mapping[str, Any]) -> Any:
        unit = activity.unit
        if component == "Exec":
            script = payload.get("exeScript")
            if not isinstance(script, list):
                raise ServiceError("badRequest", "exeScript must be a list of commands")
            own = unit.exec(script)
            batch_id = str(payload.get("batchId") or own)
            with activity.lock:
                activity.batches[batch_id] = own
            return batch_id
        if component == "GetExecBatchResults":
            with activity.lock:
                known = activity.batches.get(str(payload.get("batchId")))
            if known is None:
                raise ServiceError("notFound", f"batch {payload.get('batchId')} not found")
            timeout = payload.get("timeout")
            index = payload.get("commandIndex")
            try:
                results = unit.results(known, float(timeout) if timeout is not None else 0.0,
                                       int(index) if index is not None else None)
            except ResultsTimeout:
                raise ServiceError("timeout") from None
            except BatchNotFound:
                raise ServiceError("notFound", f"batch {payload.get('batchId')} not found") \
                    from None
            if results and results[-1].get("isBatchFinished"):
                self._report_state(activity)  # deploy/start moved it on: tell the daemon
            if results and self._bus is not None:
                # A command's CPU is counted when it ends. The node answers a requestor's
                # usage query from the last report, so report before the requestor can see
                # the result: its usage read after the last command then includes that CPU.
                self._report_usage(activity, only_if_cpu_changed=True)
            return results
        if component == "GetRunningCommand":
            return [{"command": c["command"], "params": c["params"], "progress": None}
                    for c in unit.running_commands()]
        if component == "GetActivityState":
            current, pending = unit.state()
            return {"state": [current, pending], "reason": None, "errorMessage": None}
        if component == "GetActivityUsage":
            return {"currentUsage": unit.usage(), "timestamp": int(time.time())}
        raise ServiceError("badRequest", f"unsupported message {component}")

    # -- the exe-unit's heartbeat -------------------------------------------------------------
    def _usage_loop(self) -> None:
        """Report every running activity's usage to the node each second, as an exe-unit does.

        The provider node's activity monitor marks an activity Unresponsive when its usage
        has not been reported for 5 s and destroys it after 10 s (``UNRESPONSIVE_LIMIT_SECONDS``,
        ``INACTIVITY_LIMIT_SECONDS``); the only way to report it is the node's local activity
        service on the bus (``/local/activity/SetActivityUsage``).
        """
        if self._bus is None:
            return
        while not self._stop.wait(USAGE_INTERVAL):
            with self._lock:
                running = list(self._activities.values())
            for activity in running:
                self._report_usage(activity)

    def _report_usage(self, activity: _Activity, only_if_cpu_changed: bool = False) -> None:
        assert self._bus is not None
        usage = [float(v) for v in activity.unit.usage()]
        cpu = usage[USAGE_VECTOR.index("golem.usage.cpu_sec")]
        with activity.lock:
            if only_if_cpu_changed and activity.cpu_reported == cpu:
                return
            activity.cpu_reported = cpu
        message = {"activityId": activity.activity_id, "timeout": None,
                   "usage": {"currentUsage": usage, "timestamp": int(time.time())}}
        try:
            self._bus.get().call(ACTIVITY_LOCAL, "SetActivityUsage", message).result(
                POLL + 10)
        except (GsbCallError, FutureTimeout) as exc:
            if not self._stop.is_set():
                logger.warning("localnet provider %s: usage of %s not reported: %s",
                               self.name, activity.activity_id, exc)

    # -- payments ----------------------------------------------------------------------------
    def _billing_loop(self) -> None:
        interval = float(self._config.debit_note_interval)
        while not self._stop.wait(interval):
            with self._lock:
                running = list(self._activities.values())
            for activity in running:
                self._debit_note(activity)

    def _debit_note(self, activity: _Activity) -> None:
        with activity.billing:
            if activity.ended:
                return
            usage = activity.unit.usage()
            due = cost(self.spec.coeffs, usage)
            with activity.lock:
                if activity.last_note == due:
                    return
                activity.last_note = due
            note = self._quiet("POST", "/payment-api/v1/debitNotes", json={
                "activityId": activity.activity_id, "totalAmountDue": money.to_wire(due),
                "usageCounterVector": usage, "paymentDueDate": None})
            if isinstance(note, dict) and note.get("debitNoteId"):
                self._quiet("POST",
                            f"/payment-api/v1/debitNotes/{note['debitNoteId']}/send")

    def _invoice(self, agreement_id: str) -> None:
        with self._lock:
            if agreement_id not in self._agreements or agreement_id in self._invoiced:
                return
            self._invoiced.add(agreement_id)
            activity_ids = list(self._agreements[agreement_id])
            running = [self._activities.pop(a) for a in activity_ids if a in self._activities]
        for activity in running:  # the requestor terminated without destroying them
            self._end_activity(activity)
        with self._lock:
            total = sum((self._finals.get(a, Decimal(0)) for a in activity_ids), Decimal(0))
        due = timestamps.to_wire(timestamps.now() + timedelta(
            seconds=self._config.invoice_due_seconds))
        listed = list(activity_ids)
        while True:
            invoice = self._quiet("POST", "/payment-api/v1/invoices", json={
                "agreementId": agreement_id, "activityIds": listed,
                "amount": money.to_wire(total), "paymentDueDate": due})
            if not isinstance(invoice, dict) or not invoice.get("invoiceId"):
                return
            invoice_id = invoice["invoiceId"]
            try:
                self._call("POST", f"/payment-api/v1/invoices/{invoice_id}/send")
                break
            except (ProviderError, requests.RequestException) as exc:
                # The requestor's node refuses an invoice naming an activity it never heard
                # of (its requestor was killed while the activity was being created): cancel
                # it and send the invoice again without that activity.
                unknown = [a for a in listed if a in str(exc)] \
                    if "Not found" in str(exc) else []
                logger.warning("localnet provider %s: sending invoice %s: %s", self.name,
                               invoice_id, exc)
                if not unknown:
                    return
                self._quiet("POST", f"/payment-api/v1/invoices/{invoice_id}/cancel")
                listed = [a for a in listed if a not in unknown]
        logger.info("localnet provider %s: invoice %s for %s GLM sent", self.name,
                    invoice_id, money.to_wire(total))

    # -- HTTP --------------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self._http.request(method, self._api + path, timeout=POLL + 30, **kwargs)
        if reply.status_code >= 400:
            raise ProviderError(f"{method} {path}: HTTP {reply.status_code} {reply.text[:300]}")
        if not reply.content:
            return None
        try:
            return reply.json()
        except ValueError:
            return reply.text

    def _quiet(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call whose failure is logged, not raised (the other side may have moved on)."""
        try:
            return self._call(method, path, **kwargs)
        except (ProviderError, requests.RequestException) as exc:
            logger.warning("localnet provider %s: %s", self.name, exc)
            return None

    def _poll(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One long-poll; [] on its timeout (the daemon answers 408) or a passing error."""
        try:
            reply = self._http.get(self._api + path, params=dict(params), timeout=POLL + 30)
        except requests.RequestException as exc:
            if not self._stop.is_set():
                logger.warning("localnet provider %s: %s: %s", self.name, path, exc)
                self._stop.wait(POLL)
            return []
        if reply.status_code == 408:
            return []
        if reply.status_code >= 400:
            if not self._stop.is_set():
                logger.warning("localnet provider %s: GET %s: HTTP %d %s", self.name, path,
                               reply.status_code, reply.text[:300])
                self._stop.wait(POLL)
            return []
        body = reply.json()
        return [e for e in body if isinstance(e, dict)] if isinstance(body, list) else []


def _monotonic_at(event_date: Any) -> Optional[float]:
    """The ``time.monotonic()`` instant of an event's wall-clock ``eventDate`` (None if it has
    none): the node and this program share the machine's clock."""
    if not isinstance(event_date, str):
        return None
    try:
        when = timestamps.parse(event_date)
    except ValueError:
        return None
    return time.monotonic() - max(0.0, (timestamps.now() - when).total_seconds())


def _tagged(event: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """``(kind, body)`` of a provider activity event, externally tagged or flat."""
    kind = event.get("eventType")
    if isinstance(kind, dict) and len(kind) == 1:
        ((name, body),) = kind.items()
        return str(name), body if isinstance(body, dict) else {}
    return str(kind), event
