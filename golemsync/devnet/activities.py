"""Activity API routes: one exe-unit per activity, created on an Approved agreement.

The exe-unit itself (command execution, results, runtime events, usage) lives behind the
:class:`ExeUnitLike` seam; this module owns ids, ownership, and the daemon's HTTP behaviour
around it — including the 500s it answers for unknown or destroyed activities.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from golemsync.devnet import exescript
from golemsync.devnet.agreements import Agreement, Agreements
from golemsync.devnet.errors import BatchNotFound, ExeScriptError, ResultsTimeout
from golemsync.devnet.faults import derived_rng
from golemsync.devnet.gsb import GsbServices
from golemsync.devnet.http import HttpError, Request, Response, Router, json_response
from golemsync.devnet.sandbox import remove_tree
from golemsync.devnet.sse import EventSubscriptionLike, sse_stream

logger = logging.getLogger(__name__)
PREFIX = "/activity-api/v1"


class ExeUnitLike(Protocol):
    """What the devnet needs from an exe-unit (contract B, golemsync/devnet/exeunit.py)."""

    def state(self) -> tuple[str, Optional[str]]: ...

    def exec(self, commands: Any) -> str: ...

    def results(self, batch_id: str, timeout: float,
                command_index: Optional[int]) -> list[dict[str, Any]]: ...

    def subscribe(self, batch_id: str) -> EventSubscriptionLike: ...

    def usage(self) -> list[float]: ...

    def running_commands(self) -> list[dict[str, Any]]: ...

    def destroy(self) -> None: ...

    def crash(self, reason: str) -> None: ...


ExeUnitFactory = Callable[..., ExeUnitLike]
CrashHook = Callable[["Activity", str], None]


@dataclass
class Activity:
    activity_id: str
    agreement: Agreement
    unit: ExeUnitLike
    workdir: Path
    final_usage: Optional[list[float]] = None
    started: float = 0.0

    @property
    def destroyed(self) -> bool:
        return self.final_usage is not None


class Activities:
    """Every activity of the devnet and its exe-unit."""

    def __init__(self, agreements: Agreements, factory: ExeUnitFactory, workroot: Path,
                 gftp_root: Path, usage_vector: Sequence[str], seed: int,
                 ping_interval: float, closing: threading.Event,
                 gsb: Optional[GsbServices] = None, quick_failed_poll: bool = False) -> None:
        self.agreements = agreements
        self.factory = factory
        self.workroot = workroot
        self.gftp_root = gftp_root
        self.usage_vector = list(usage_vector)
        self.seed = seed
        self.ping_interval = ping_interval
        self.closing = closing
        self.gsb = gsb
        self.quick_failed_poll = quick_failed_poll  # DevnetConfig.quick_failed_batch_poll
        self._lock = threading.Lock()  # guards _activities and _per_provider
        self._activities: dict[str, Activity] = {}
        self._per_provider: dict[int, int] = {}
        self.on_crash: CrashHook = lambda activity, reason: None

    def routes(self, router: Router) -> None:
        router.add("POST", f"{PREFIX}/activity", self.create)
        router.add("GET", f"{PREFIX}/activity", self.list_for_agreement)
        router.add("DELETE", f"{PREFIX}/activity/{{aid}}", self.destroy)
        router.add("POST", f"{PREFIX}/activity/{{aid}}/exec", self.exec)
        router.add("GET", f"{PREFIX}/activity/{{aid}}/exec/{{bid}}", self.results)
        router.add("GET", f"{PREFIX}/activity/{{aid}}/state", self.state)
        router.add("GET", f"{PREFIX}/activity/{{aid}}/usage", self.usage)
        router.add("GET", f"{PREFIX}/activity/{{aid}}/command", self.command)
        router.add("GET", f"{PREFIX}/activity/{{aid}}/agreement", self.agreement_of)

    def snapshot(self) -> list[Activity]:
        with self._lock:
            return list(self._activities.values())

    def of_agreement(self, agreement_id: str) -> list[Activity]:
        with self._lock:
            return [a for a in self._activities.values()
                    if a.agreement.agreement_id == agreement_id]

    # -- lifecycle -------------------------------------------------------------------------

    def create(self, request: Request) -> Response:
        body = request.json(wrap=False)
        legacy = isinstance(body, str)
        agreement_id = body if legacy else (body or {}).get("agreementId") \
            if isinstance(body, dict) else None
        if not isinstance(agreement_id, str):
            raise HttpError(400, "Json deserialize error: expected an agreement id",
                            "text/plain; charset=utf-8")
        agreement = self._approved(agreement_id)
        activity = self._start(agreement)
        reply: Any = activity.activity_id if legacy else {"activityId": activity.activity_id}
        return json_response(200, reply)

    def _approved(self, agreement_id: str) -> Agreement:
        agreement = self.agreements.lookup(agreement_id)
        if agreement is None:
            raise HttpError.message(404, f"Not found: Agreement {agreement_id} not found")
        if agreement.state != "Approved":
            raise HttpError.message(400, f"Bad request: Agreement {agreement_id} is not "
                                         f"Approved. Current state: {agreement.state}")
        return agreement

    def _start(self, agreement: Agreement) -> Activity:
        provider = agreement.provider
        activity_id = secrets.token_hex(16)
        with self._lock:
            ordinal = self._per_provider.get(provider.index, 0)
            self._per_provider[provider.index] = ordinal + 1
        workdir = self.workroot / activity_id
        workdir.mkdir(parents=True, exist_ok=True)
        holder: list[Activity] = []
        unit = self.factory(
            activity_id, workdir=workdir, provider=provider.spec,
            rng=derived_rng(self.seed, "exeunit", provider.index, ordinal),
            gftp_root=self.gftp_root, gsb=self.gsb, usage_vector=list(self.usage_vector),
            quick_failed_poll=self.quick_failed_poll,
            on_crash=lambda reason: self.on_crash(holder[0], reason) if holder else None)
        activity = Activity(activity_id, agreement, unit, workdir, started=time.monotonic())
        holder.append(activity)
        with self._lock:
            self._activities[activity_id] = activity
        return activity

    def destroy(self, request: Request) -> Response:
        activity = self._require(request.params["aid"])
        self.finish(activity)
        return json_response(200, None)

    def finish(self, activity: Activity) -> None:
        """Destroy the exe-unit (idempotent) and freeze its final usage."""
        activity.unit.destroy()
        with self._lock:
            if activity.final_usage is None:
                activity.final_usage = list(activity.unit.usage())
        remove_tree(activity.workdir)

    def finish_all(self) -> None:
        for activity in self.snapshot():
            try:
                self.finish(activity)
            except Exception:
                logger.exception("devnet: destroying activity %s failed", activity.activity_id)

    def _require(self, activity_id: str) -> Activity:
        with self._lock:
            activity = self._activities.get(activity_id)
        if activity is None:
            raise HttpError.message(
                500, f"DAO error: Not found: agreement id for activity: {activity_id}")
        return activity

    def _alive(self, activity_id: str) -> Activity:
        activity = self._require(activity_id)
        if activity.destroyed:
            raise HttpError.message(
                500, f"GSB error: GSB failure: Bad request: endpoint address not found: "
                     f"/public/activity/{activity_id}/exeunit")
        return activity

    # -- commands --------------------------------------------------------------------------

    def exec(self, request: Request) -> Response:
        activity = self._alive(request.params["aid"])
        body = request.json_object(wrap=False)
        text = body.get("text")
        if not isinstance(text, str):
            raise HttpError.message(400, "Bad request: Json deserialize error: missing field "
                                         "`text`")
        try:
            batch_id = activity.unit.exec(exescript.parse(text))
        except ExeScriptError as exc:
            raise HttpError.message(400, str(exc)) from None
        return json_response(200, batch_id)

    def results(self, request: Request) -> Response:
        activity = self._alive(request.params["aid"])
        batch_id = request.params["bid"]
        if "text/event-stream" in (request.header("Accept") or ""):
            return self._stream(activity, batch_id)
        timeout = request.query_float("timeout", 0.0)
        index = request.query_int("commandIndex")
        try:
            items = activity.unit.results(batch_id, timeout, index)
        except BatchNotFound as exc:
            raise HttpError.message(404, str(exc)) from None
        except ResultsTimeout:
            raise HttpError.message(408, "Timeout") from None
        return json_response(200, items)

    def _stream(self, activity: Activity, batch_id: str) -> Response:
        try:
            subscription = activity.unit.subscribe(batch_id)
        except BatchNotFound as exc:
            raise HttpError.message(404, str(exc)) from None
        return sse_stream(subscription, self.ping_interval, self.closing)

    def state(self, request: Request) -> Response:
        activity = self._require(request.params["aid"])
        current, pending = activity.unit.state()
        if activity.destroyed:
            current, pending = "Terminated", None
        return json_response(200, {"state": [current, pending]})

    def usage(self, request: Request) -> Response:
        activity = self._require(request.params["aid"])
        usage = activity.final_usage or activity.unit.usage()
        return json_response(200, {"currentUsage": list(usage), "timestamp": int(time.time())})

    def command(self, request: Request) -> Response:
        activity = self._alive(request.params["aid"])
        running = activity.unit.running_commands()
        if not running:
            raise HttpError.message(
                404, f"Not found: No running command within activity: {activity.activity_id}")
        return json_response(200, running)

    def agreement_of(self, request: Request) -> Response:
        activity = self._require(request.params["aid"])
        return json_response(200, activity.agreement.agreement_id)

    def list_for_agreement(self, request: Request) -> Response:
        agreement_id = request.query.get("agreementId")
        if not agreement_id:
            raise HttpError(400, "Query deserialize error: missing field `agreementId`",
                            "text/plain; charset=utf-8")
        return json_response(200, [a.activity_id for a in self.of_agreement(agreement_id)])

