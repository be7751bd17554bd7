"""Payment API, requestor side: accounts, allocations and demand decorations.

Allocations reserve part of the requestor's (simulated) funds; accepting debit notes and
invoices books amounts against them (:meth:`Payments.book`). Errors follow the daemon:
problem+json for create/amend validation (with ``parseError``, ``requestedPaymentPlatform``
and ``requestedTimeout``), ``{"message": ...}`` elsewhere; as the daemon 0.17.6 was measured
to: a released allocation is not found (``GET`` → 404 ``{"message": null}``; a second
``DELETE`` → 410), an allocation created without ``timeout`` gets now + 10 years, and
``demandDecorations?allocationIds=a%2Cb`` is a 400 (the ids must be joined by a literal comma).
``GET /payments/status`` lists the driver's problems: none here.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Optional

from golemsync import money, timestamps
from golemsync.devnet.config import DevnetConfig
from golemsync.devnet.http import PROBLEM_JSON, HttpError, Request, Response, Router, json_response

PREFIX = "/payment-api/v1"
_VALIDATION = "/payment-api/v1/allocations/validation-error"


@dataclass
class Allocation:
    allocation_id: str
    address: str
    platform: str
    total: Decimal
    timeout: Optional[datetime]
    make_deposit: bool
    created: str = field(default_factory=lambda: timestamps.to_wire(timestamps.now()))
    updated: str = ""
    spent: Decimal = Decimal(0)
    released: bool = False

    @property
    def remaining(self) -> Decimal:
        return self.total - self.spent

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "allocationId": self.allocation_id, "address": self.address,
            "paymentPlatform": self.platform, "totalAmount": money.to_wire(self.total),
            "spentAmount": money.to_wire(self.spent),
            "remainingAmount": money.to_wire(self.remaining),
            "timestamp": self.updated or self.created, "createdTs": self.created,
            "updatedTs": self.updated or self.created, "makeDeposit": self.make_deposit,
        }
        if self.timeout is not None:
            body["timeout"] = timestamps.to_wire(self.timeout)
        return body


def split_platform(platform: str) -> tuple[str, str, str]:
    """``erc20-holesky-tglm`` → ``("erc20", "holesky", "tglm")``."""
    parts = platform.split("-")
    if len(parts) != 3 or not all(parts):
        raise ValueError(platform)
    return parts[0], parts[1], parts[2]


def _problem(status: int, kind: str, detail: str, body: Any, **extra: Any) -> HttpError:
    given = body if isinstance(body, dict) else {}
    problem = {"type": _VALIDATION, "instance": f"{_VALIDATION}/{kind}", "detail": detail,
               "requestBody": body, "parseError": None,
               "requestedPaymentPlatform": given.get("paymentPlatform"),
               "requestedTimeout": given.get("timeout")}
    problem.update(extra)
    return HttpError(status, problem, PROBLEM_JSON)


class Payments:
    """The requestor's account and allocations."""

    def __init__(self, config: DevnetConfig, requestor_id: str) -> None:
        self.config = config
        self.requestor_id = requestor_id
        self._lock = threading.Lock()  # guards _allocations and their amounts
        self._allocations: dict[str, Allocation] = {}

    def routes(self, router: Router) -> None:
        router.add("GET", f"{PREFIX}/requestorAccounts", self.accounts)
        router.add("POST", f"{PREFIX}/allocations", self.create)
        router.add("GET", f"{PREFIX}/allocations", self.list_allocations)
        router.add("GET", f"{PREFIX}/allocations/{{id}}", self.get)
        router.add("PUT", f"{PREFIX}/allocations/{{id}}", self.amend)
        router.add("DELETE", f"{PREFIX}/allocations/{{id}}", self.release)
        router.add("GET", f"{PREFIX}/demandDecorations", self.decorations)
        router.add("GET", f"{PREFIX}/payments/status", self.driver_status)

    def snapshot(self) -> list[Allocation]:
        with self._lock:
            return list(self._allocations.values())

    def accounts(self, request: Request) -> Response:
        driver, network, token = split_platform(self.config.payment_platform)
        display = "tGLM" if token == "tglm" else token.upper()
        return json_response(200, [{
            "platform": self.config.payment_platform, "address": self.requestor_id,
            "driver": driver, "network": network, "token": display,
            "send": True, "receive": False}])

    # -- allocations -----------------------------------------------------------------------

    def create(self, request: Request) -> Response:
        body = request.json_object(wrap=False)
        total = self._amount(body, body.get("totalAmount"))
        platform = self._platform(body)
        address = body.get("address") or self.requestor_id
        timeout = self._timeout(body) or timestamps.now() + timedelta(days=3652)  # 10 years
        if address != self.requestor_id or platform != self.config.payment_platform:
            raise _problem(500, "account-not-registered",
                           f"Account not registered: {platform} {address}", body,
                           paymentPlatform=platform, address=address)
        allocation = Allocation(str(uuid.uuid4()), address, platform, total, timeout,
                                bool(body.get("makeDeposit", False)))
        with self._lock:
            self._check_funds(body, total, Decimal(0))
            self._allocations[allocation.allocation_id] = allocation
            return json_response(201, allocation.wire())

    def _amount(self, body: dict[str, Any], raw: Any) -> Decimal:
        try:
            amount = money.to_decimal(raw)
        except ValueError:
            raise _problem(400, "invalid-amount", f"Invalid totalAmount: {raw!r}", body) from None
        if amount < 0:
            raise _problem(400, "negative-amount", "totalAmount must not be negative", body)
        return amount

    def _platform(self, body: dict[str, Any]) -> str:
        raw = body.get("paymentPlatform")
        if raw is None or isinstance(raw, dict):
            parts = raw or {}
            token = parts.get("token") or "tglm"
            default_network = "polygon" if token == "glm" else "holesky"
            raw = "-".join([parts.get("driver") or "erc20",
                            parts.get("network") or default_network, token])
        if not isinstance(raw, str) or raw != raw.lower():
            raise _problem(400, "invalid-platform", f"Invalid payment platform: {raw!r}", body)
        try:
            split_platform(raw)
        except ValueError:
            raise _problem(400, "invalid-platform", f"Invalid payment platform: {raw!r}",
                           body) from None
        return raw

    def _timeout(self, body: dict[str, Any]) -> Optional[datetime]:
        raw = body.get("timeout")
        if raw is None:
            return None
        try:
            moment = timestamps.parse(str(raw))
        except ValueError:
            raise _problem(400, "invalid-timeout", f"Invalid timeout: {raw!r}", body) from None
        if moment <= timestamps.now():
            raise _problem(400, "timeout-in-past", "Allocation timeout is in the past", body)
        return moment

    def _check_funds(self, body: Any, wanted: Decimal, current: Decimal) -> None:
        """Refuse reserving more than the account holds (lock held)."""
        reserved = sum((a.remaining for a in self._allocations.values() if not a.released),
                       Decimal(0)) - current
        available = self.config.requestor_funds - reserved
        if wanted > available:
            raise _problem(
                400, "insufficient-account-funds",
                "Insufficient funds to create the allocation. Top up your account or release "
                "all existing allocations to unlock the funds via `yagna payment release-"
                "allocations`", body, requestedFunds=money.to_wire(wanted),
                availableFunds=money.to_wire(available), reservedFunds=money.to_wire(reserved),
                paymentPlatform=self.config.payment_platform, address=self.requestor_id)

    def list_allocations(self, request: Request) -> Response:
        with self._lock:
            live = [a.wire() for a in self._allocations.values() if not self._released(a)]
        return json_response(200, live)

    def _released(self, allocation: Allocation) -> bool:
        if not allocation.released and allocation.timeout is not None \
                and timestamps.now() >= allocation.timeout:
            allocation.released = True
        return allocation.released

    def _require(self, allocation_id: str) -> Allocation:
        """The live allocation (lock held): 404 unknown, 410 released."""
        allocation = self._allocations.get(allocation_id)
        if allocation is None:
            raise HttpError.message(404, None)
        if self._released(allocation):
            raise HttpError.message(
                410, f"Allocation {allocation_id} has been already released")
        return allocation

    def get(self, request: Request) -> Response:
        with self._lock:
            allocation = self._allocations.get(request.params["id"])
            if allocation is None or self._released(allocation):
                raise HttpError.message(404, None)  # the daemon: released is not found
            return json_response(200, allocation.wire())

    def amend(self, request: Request) -> Response:
        body = request.json_object(wrap=False)
        with self._lock:
            allocation = self._require(request.params["id"])
            if "totalAmount" in body:
                total = self._amount(body, body["totalAmount"])
                if total < allocation.spent:
                    raise _problem(400, "total-below-spent",
                                   "totalAmount is less than the amount already spent", body)
                self._check_funds(body, total - allocation.spent, allocation.remaining)
                allocation.total = total
            if body.get("timeout") is not None:
                allocation.timeout = self._timeout(body)
            allocation.updated = timestamps.to_wire(timestamps.now())
            return json_response(200, allocation.wire())

    def release(self, request: Request) -> Response:
        with self._lock:
            self._require(request.params["id"]).released = True
        return json_response(200, None)

    def driver_status(self, request: Request) -> Response:
        """The payment driver's actionable problems: none on the devnet."""
        return json_response(200, [])

    def decorations(self, request: Request) -> Response:
        if "%2c" in request.raw_query.lower():  # the daemon wants a literal comma
            raise HttpError(400, "Query deserialize error: invalid type: string, expected a "
                                 "borrowed string", "text/plain; charset=utf-8")
        raw = request.query.get("allocationIds")
        if not raw:
            raise HttpError(400, "Query deserialize error: missing field `allocationIds`",
                            "text/plain; charset=utf-8")
        with self._lock:
            found = [self._allocations.get(i.strip()) for i in raw.split(",") if i.strip()]
            if not found or any(a is None for a in found):
                raise HttpError.message(404, None)
            allocations = [a for a in found if a is not None]
        return json_response(200, _decoration(allocations))

    # -- booking ---------------------------------------------------------------------------

    def book(self, allocation_id: str, amount: Decimal) -> None:
        """Spend ``amount`` from an allocation (400/410 as the daemon answers accept calls)."""
        with self._lock:
            allocation = self._allocations.get(allocation_id)
            if allocation is None:
                raise HttpError.message(400, f"Allocation {allocation_id} not found")
            if self._released(allocation):
                raise HttpError.message(
                    410, f"Allocation {allocation_id} has been already released")
            if amount > allocation.remaining:
                raise HttpError.message(400, "Not enough funds. Allocated: "
                                        f"{money.to_wire(allocation.remaining)} Needed: "
                                        f"{money.to_wire(amount)}")
            allocation.spent += amount
            allocation.updated = timestamps.to_wire(timestamps.now())


def _decoration(allocations: list[Allocation]) -> dict[str, Any]:
    properties: dict[str, str] = {}
    for allocation in allocations:
        properties[f"golem.com.payment.platform.{allocation.platform}.address"] = \
            allocation.address
    properties["golem.com.payment.protocol.version"] = "3"
    platforms = list(dict.fromkeys(a.platform for a in allocations))
    present = [f"(golem.com.payment.platform.{p}.address=*)" for p in platforms]
    first = present[0] if len(present) == 1 else "(|\n  " + "\n  ".join(present) + "\n)"
    version = ">2" if any(a.make_deposit for a in allocations) else ">1"
    return {"properties": [{"key": k, "value": v} for k, v in properties.items()],
            "constraints": [first, f"(golem.com.payment.protocol.version{version})"]}
