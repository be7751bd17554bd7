#!/usr/bin/env python3
"""A bare requestor: ``requests`` and threads speaking the yagna REST API directly.

The baseline of bench/compare.py: what a careful hand-written client costs, with no library.
Per task exactly one ``exec`` and one long-poll of its results. Minimal, but it does what a
correct requestor must (PROTOCOL.md): an allocation, a demand decorated for it, a
counter-proposal naming the payment platform, agreements confirmed and approved, one activity
per provider (deploy + start once), debit notes and invoices accepted from their event
streams, and on the way out (or on SIGINT) activities destroyed, agreements terminated,
invoices waited for (bounded) and accepted, the allocation released, the demand withdrawn.

Tasks are ``/bin/echo i`` for i in range(N); a failed task goes back to the queue and its
provider is dropped. A second SIGINT exits at once.

    YAGNA_API_URL=... YAGNA_APPKEY=... python bench/bare_client.py --tasks N --workers P
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Optional

import requests
from client_events import Milestones, emit, latency_summary

IMAGE = f"hash:sha3:{'ab' * 28}:http://registry.invalid/image.gvmi"
POLL = 5.0  # server-side wait of every long-poll, seconds
INVOICE_WAIT = 30.0  # how long the end waits for the invoices owed
# The payment event polls' server-side wait: it bounds how long the end waits for the payment
# threads (a bare client has nothing to wake them with), at 4 idle polls a second.
PAYMENT_POLL = 0.25
JSON_HEADERS = {"Content-Type": "application/json"}


def now() -> datetime:
    return datetime.now(timezone.utc)


def wire_time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp with ``Z`` and up to 9 fractional digits."""
    text = text.replace("Z", "+00:00")
    head, _, zone = text.partition("+")
    if "." in head:
        base, fraction = head.split(".", 1)
        head = f"{base}.{fraction[:6].ljust(6, '0')}"
    return datetime.fromisoformat(f"{head}+{zone or '00:00'}")


class HttpFailure(Exception):
    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url}: {status} {body[:200]}")
        self.status = status


class Api:
    """Blocking calls to the daemon; one ``requests.Session`` per thread."""

    def __init__(self, base: str, app_key: str) -> None:
        self.market = os.environ.get("YAGNA_MARKET_URL", f"{base}/market-api/v1")
        self.activity = os.environ.get("YAGNA_ACTIVITY_URL", f"{base}/activity-api/v1")
        self.payment = os.environ.get("YAGNA_PAYMENT_URL", f"{base}/payment-api/v1")
        self.base = base
        self._auth = {"Authorization": f"Bearer {app_key}"}
        self._local = threading.local()

    def call(self, method: str, url: str, body: Any = None, *, params: Any = None,
             timeout: float = 10.0, ok: tuple[int, ...] = ()) -> Any:
        """The JSON reply (None when empty); HttpFailure on a status not 2xx nor in ``ok``."""
        session: Optional[requests.Session] = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self._auth)
        data = None if body is None and method in ("GET", "DELETE") else json.dumps(body)
        reply = session.request(method, url, data=data, params=params, timeout=timeout,
                                headers=JSON_HEADERS if data is not None else None)
        if not (200 <= reply.status_code < 300 or reply.status_code in ok):
            raise HttpFailure(method, url, reply.status_code, reply.text)
        return reply.json() if reply.content else None


class Payer:
    """Accepts our debit notes and invoices from their event streams (two threads)."""

    def __init__(self, api: Api, allocation_id: str, closing: threading.Event) -> None:
        self.api = api
        self.allocation_id = allocation_id
        self.closing = closing
        self._lock = threading.Lock()  # guards the three sets
        self._ours: set[str] = set()  # agreement ids
        self._owed: set[str] = set()  # terminated agreements whose invoice is not accepted
        self._paid: set[str] = set()
        self._changed = threading.Condition(self._lock)
        self.threads = [threading.Thread(target=self._loop, args=(kind,), name=f"bare-{kind}")
                        for kind in ("debitNote", "invoice")]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def ours(self, agreement_id: str) -> None:
        with self._lock:
            self._ours.add(agreement_id)

    def owe(self, agreement_id: str) -> None:
        with self._lock:
            if agreement_id not in self._paid:
                self._owed.add(agreement_id)

    def wait_invoices(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._owed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _loop(self, kind: str) -> None:
        after = wire_time(now() - timedelta(seconds=5))
        events = f"{self.api.payment}/{kind}Events"
        while not self.closing.is_set():
            try:
                batch = self.api.call("GET", events, params={"afterTimestamp": after,
                                                             "timeout": PAYMENT_POLL},
                                      timeout=PAYMENT_POLL + 5)
            except (requests.RequestException, HttpFailure) as exc:
                print(f"bare: {kind} events: {exc}", file=sys.stderr)
                self.closing.wait(1.0)
                continue
            for event in batch or []:
                after = event["eventDate"]
                if event["eventType"].endswith("ReceivedEvent"):
                    try:
                        self._accept(kind, event[f"{kind}Id"])
                    except (requests.RequestException, HttpFailure) as exc:
                        print(f"bare: accepting {kind}: {exc}", file=sys.stderr)

    def _accept(self, kind: str, doc_id: str) -> None:
        doc = self.api.call("GET", f"{self.api.payment}/{kind}s/{doc_id}")
        agreement_id = doc["agreementId"]
        with self._lock:
            if agreement_id not in self._ours:
                return  # not one of this run's agreements
        amount = doc["amount"] if kind == "invoice" else doc["totalAmountDue"]
        self.api.call("POST", f"{self.api.payment}/{kind}s/{doc_id}/accept",
                      {"totalAmountAccepted": str(Decimal(amount)),
                       "allocationId": self.allocation_id}, timeout=20)
        if kind == "invoice":
            with self._changed:
                self._paid.add(agreement_id)
                self._owed.discard(agreement_id)
                self._changed.notify_all()


class Requestor:
    def __init__(self, api: Api, tasks: int, workers: int, notify_at: Optional[int]) -> None:
        self.api = api
        self.workers = workers
        self.todo: queue.Queue[int] = queue.Queue()
        for index in range(tasks):
            self.todo.put(index)
        self.total = tasks
        self.milestones = Milestones(tasks, notify_at)
        self.stop = threading.Event()  # SIGINT, or every task done
        self.closing = threading.Event()  # payment loops end
        self.lags: list[float] = []
        self._lock = threading.Lock()  # guards lags, _done, _hired, _live
        self._done = 0
        self._hired: set[str] = set()  # provider ids with an agreement
        self._live = 0  # worker threads still running
        self.all_done = threading.Event()
        self.threads: list[threading.Thread] = []

    # -- the whole run ---------------------------------------------------------------------

    def run(self) -> None:
        api = self.api
        me = api.call("GET", f"{api.base}/me")["identity"]
        driver = os.environ.get("YAGNA_PAYMENT_DRIVER", "erc20").lower()
        network = os.environ.get("YAGNA_PAYMENT_NETWORK", "holesky").lower()
        platform = f"{driver}-{network}-{'tglm' if network != 'polygon' else 'glm'}"
        allocation = api.call("POST", f"{api.payment}/allocations", {
            "totalAmount": "100", "paymentPlatform": platform, "address": me,
            "timeout": wire_time(now() + timedelta(hours=1)), "makeDeposit": False})
        allocation_id = allocation["allocationId"]
        payer = Payer(api, allocation_id, self.closing)
        payer.start()
        subscription = None
        try:
            decoration = api.call("GET", f"{api.payment}/demandDecorations",
                                  params={"allocationIds": allocation_id})
            demand = self._demand(decoration, platform)
            subscription = api.call("POST", f"{api.market}/demands", demand)
            self._negotiate(subscription, demand, platform, payer)
            self.all_done.wait()
        finally:
            self.stop.set()
            for thread in self.threads:
                thread.join()
            if subscription is not None:
                api.call("DELETE", f"{api.market}/demands/{subscription}", ok=(404,))
            if not payer.wait_invoices(INVOICE_WAIT):
                print("bare: some invoices did not come in time", file=sys.stderr)
            self.closing.set()
            for thread in payer.threads:
                thread.join()
            api.call("DELETE", f"{api.payment}/allocations/{allocation_id}", ok=(404, 410))

    def _demand(self, decoration: dict[str, Any], platform: str) -> dict[str, Any]:
        subnet = os.environ.get("YAGNA_SUBNET", "public")
        expiration = int((time.time() + 15 * 60) * 1000)
        properties: dict[str, Any] = {
            "golem.node.debug.subnet": subnet,
            "golem.srv.comp.expiration": expiration,
            "golem.srv.caps.multi-activity": True,
            "golem.srv.comp.task_package": IMAGE,
            "golem.srv.comp.vm.package_format": "gvmkit-squash",
        }
        properties.update({p["key"]: p["value"] for p in decoration["properties"]})
        constraints = [f"(golem.node.debug.subnet={subnet})", *decoration["constraints"],
                       "(golem.inf.mem.gib>=0.5)", "(golem.inf.storage.gib>=2.0)",
                       "(golem.inf.cpu.threads>=1)", "(golem.runtime.name=vm)"]
        return {"properties": properties,
                "constraints": "(&" + "\n\t".join(constraints) + ")"}

    # -- market ----------------------------------------------------------------------------

    def _negotiate(self, sub: str, demand: dict[str, Any], platform: str, payer: Payer) -> None:
        """Counter the first offer of each provider; hire on each Draft, up to ``workers``."""
        api = self.api
        ours: set[str] = set()  # our counter-proposal ids
        counter = dict(demand, properties={**demand["properties"],
                                           "golem.com.payment.chosen-platform": platform})
        while not self.stop.is_set() and not self.all_done.is_set():
            with self._lock:
                if len(self._hired) >= self.workers:
                    return
            events = api.call("GET", f"{api.market}/demands/{sub}/events",
                              params={"timeout": 1.0, "maxEvents": 100}, timeout=1.0 + 5)
            for event in events:
                if event["eventType"] != "ProposalEvent":
                    continue
                proposal = event["proposal"]
                provider = proposal["issuerId"]
                with self._lock:
                    if provider in self._hired or len(self._hired) >= self.workers:
                        continue
                if proposal["state"] == "Initial":
                    address = f"golem.com.payment.platform.{platform}.address"
                    if address in proposal["properties"]:
                        mine = api.call("POST", f"{api.market}/demands/{sub}/proposals/"
                                        f"{proposal['proposalId']}", counter)
                        ours.add(mine)
                elif proposal["state"] == "Draft" and proposal.get("prevProposalId") in ours:
                    with self._lock:
                        self._hired.add(provider)
                        self._live += 1
                    thread = threading.Thread(
                        target=self._provider, args=(proposal["proposalId"], payer),
                        name=f"bare-worker-{len(self.threads)}")
                    self.threads.append(thread)
                    thread.start()

    # -- one provider ----------------------------------------------------------------------

    def _provider(self, proposal_id: str, payer: Payer) -> None:
        api = self.api
        agreement = None
        activity = None
        try:
            valid_to = wire_time(now() + timedelta(hours=1))
            agreement = api.call("POST", f"{api.market}/agreements",
                                 {"proposalId": proposal_id, "validTo": valid_to})
            payer.ours(agreement)
            api.call("POST", f"{api.market}/agreements/{agreement}/confirm")
            api.call("POST", f"{api.market}/agreements/{agreement}/wait",
                     params={"timeout": 15}, timeout=16)
            activity = api.call("POST", f"{api.activity}/activity",
                                {"agreementId": agreement}, params={"timeout": 30},
                                timeout=31)["activityId"]
            self._batch(activity, [{"deploy": {}}, {"start": {}}])
            while not self.stop.is_set():
                try:
                    index = self.todo.get_nowait()
                except queue.Empty:
                    break
                try:
                    self._task(activity, index)
                except BaseException:
                    self.todo.put(index)  # someone else's, then
                    raise
        except (requests.RequestException, HttpFailure, RuntimeError) as exc:
            print(f"bare: provider dropped: {exc}", file=sys.stderr)
        finally:
            self._release(agreement, activity, payer)
            with self._lock:
                self._live -= 1
                if self._live == 0 and (self.todo.empty() or len(self._hired) >= self.workers):
                    self.all_done.set()

    def _task(self, activity: str, index: int) -> None:
        run = {"run": {"entry_point": "/bin/echo", "args": [str(index)],
                       "capture": {"stdout": {"atEnd": {}}, "stderr": {"atEnd": {}}}}}
        results = self._batch(activity, [run])
        finished = parse_time(results[0]["eventDate"])
        lag = (now() - finished).total_seconds()
        if results[0]["stdout"].strip() != str(index):
            raise RuntimeError(f"task {index}: unexpected output {results[0]['stdout']!r}")
        with self._lock:
            self.lags.append(lag)
            self._done += 1
            done = self._done
        self.milestones.result()
        if done == self.total:
            self.all_done.set()

    def _batch(self, activity: str, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Exec ``commands``; long-poll until the batch finishes; every result, or raise."""
        api = self.api
        batch = api.call("POST", f"{api.activity}/activity/{activity}/exec",
                         {"text": json.dumps(commands)})
        url = f"{api.activity}/activity/{activity}/exec/{batch}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            results: list[dict[str, Any]] = api.call("GET", url, params={"timeout": POLL},
                                                     timeout=POLL + 5)
            if results and (results[-1]["isBatchFinished"] or results[-1]["result"] == "Error"):
                failed = [r for r in results if r["result"] == "Error"]
                if failed:
                    raise RuntimeError(f"command {failed[0]['index']} failed: "
                                       f"{failed[0].get('message')}")
                return results
        raise RuntimeError(f"batch {batch} did not finish in time")

    def _release(self, agreement: Optional[str], activity: Optional[str],
                 payer: Payer) -> None:
        api = self.api
        try:
            if activity is not None:
                api.call("DELETE", f"{api.activity}/activity/{activity}", timeout=15)
            if agreement is not None:
                try:
                    api.call("POST", f"{api.market}/agreements/{agreement}/terminate",
                             {"message": "Work finished", "golem.requestor.code": "Success"})
                    payer.owe(agreement)
                except HttpFailure as exc:  # never approved: withdraw it instead
                    if exc.status not in (409, 410):
                        raise
                    api.call("POST", f"{api.market}/agreements/{agreement}/cancel", None,
                             ok=(400, 409, 410))
        except (requests.RequestException, HttpFailure) as exc:
            print(f"bare: release failed: {exc}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--notify-at", type=int, default=None)
    args = parser.parse_args()
    base = os.environ.get("YAGNA_API_URL", "http://127.0.0.1:7465").rstrip("/")
    app_key = os.environ.get("YAGNA_APPKEY")
    if not app_key:
        print("bare: YAGNA_APPKEY is not set", file=sys.stderr)
        return 2
    requestor = Requestor(Api(base, app_key), args.tasks, args.workers, args.notify_at)
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if interrupted.is_set():
            os._exit(130)  # second Ctrl-C: at once
        interrupted.set()
        requestor.stop.set()
        requestor.all_done.set()

    signal.signal(signal.SIGINT, on_sigint)
    requestor.run()
    with requestor._lock:
        figures = latency_summary(requestor.lags)
    emit("summary", done=requestor.milestones.done, accepted=requestor.milestones.done,
         interrupted=interrupted.is_set(), client_requests=None, **figures)
    return 130 if interrupted.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
