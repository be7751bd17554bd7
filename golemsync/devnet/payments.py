"""Payment API, requestor side: accounts, allocations and demand decorations.

Allocations reserve part of the requestor's (simulated) funds; accepting debit notes and
invoices books amounts against them (:meth:`Payments.book`). Errors follow the daemon 0.17.6
as measured by the differential test (``tests/localnet/test_differential.py``):

* a ``totalAmount`` or ``timeout`` that does not parse is the JSON extractor's 400
  ``text/plain`` ``Json deserialize error: ...``; a negative amount is accepted;
* a payment platform that does not parse (unknown network or driver) is a 400 problem+json
  of type ``.../bad-payment-platform`` with ``parseError`` and ``requestedPaymentPlatform``;
* a timeout in the past is a 400 ``validation-error/timeout-passed`` with ``address``,
  ``paymentPlatform`` and ``requestedTimeout``; too large an amount a 400
  ``validation-error/insufficient-account-funds`` with ``requestedFunds``,
  ``availableFunds`` and ``reservedFunds``; every problem echoes the request as the daemon
  parsed it (``requestBody``, all seven fields);
* a released allocation is not found (``GET`` → 404 ``{"message": null}``; a second
  ``DELETE`` → 410); an allocation created without ``timeout`` gets now + 10 years;
* ``demandDecorations`` lists one address property and one constraint per allocation (the
  same platform twice is listed twice), and ``allocationIds=a%2Cb`` is a 400 (the ids must be
  joined by a literal comma).

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
from golemsync.devnet.http import (
    PROBLEM_JSON,
    TEXT,
    HttpError,
    Request,
    Response,
    Router,
    json_response,
)

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


NETWORKS = ("amoy", "goerli", "holesky", "hoodi", "mainnet", "mumbai", "polygon", "rinkeby",
            "sepolia")  # the erc20 driver's networks in the daemon 0.17.6
DRIVERS = ("erc20",)


def _echo(body: dict[str, Any]) -> dict[str, Any]:
    """The request as the daemon parsed it, every field present (its ``requestBody``)."""
    amount = body.get("totalAmount")
    return {"address": body.get("address"), "deposit": body.get("deposit"),
            "extendTimeout": body.get("extendTimeout"),
            "makeDeposit": bool(body.get("makeDeposit") or False),
            "paymentPlatform": body.get("paymentPlatform"), "timeout": body.get("timeout"),
            "totalAmount": money.to_wire(money.to_decimal(amount)) if amount is not None
            else None}


def _problem(status: int, kind: str, detail: str, body: dict[str, Any],
             **extra: Any) -> HttpError:
    """A ``validation-error`` problem of ``kind`` (the daemon's instance suffix)."""
    problem = {"type": _VALIDATION, "detail": detail, "instance": f"{_VALIDATION}/{kind}",
               "requestBody": _echo(body)}
    problem.update(extra)
    return HttpError(status, problem, PROBLEM_JSON)


def _bad_platform(body: dict[str, Any], raw: Any, parse_error: str) -> HttpError:
    return HttpError(400, {"type": "/payment-api/v1/allocations/bad-payment-platform",
                           "detail": "Payment platform doesn't parse",
                           "parseError": parse_error, "requestBody": _echo(body),
                           "requestedPaymentPlatform": raw}, PROBLEM_JSON)


def _deserialize_error(text: str) -> HttpError:
    return HttpError(400, f"Json deserialize error: {text}", TEXT)


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
        total = self._amount(body.get("totalAmount"))
        timeout = self._timeout(body.get("timeout"))
        platform = self._platform(body)
        address = body.get("address") or self.requestor_id
        if timeout is not None and timeout <= timestamps.now():
            raise _problem(400, "timeout-passed", "Requested allocation timeout is in the past",
                           body, address=address, paymentPlatform=platform,
                           requestedTimeout=timeout.isoformat())
        if address != self.requestor_id or platform != self.config.payment_platform:
            raise _problem(500, "account-not-registered",
                           f"Account not registered: {platform} {address}", body,
                           address=address, paymentPlatform=platform)
        allocation = Allocation(str(uuid.uuid4()), address, platform, total,
                                timeout or timestamps.now() + timedelta(days=3652),  # 10 years
                                bool(body.get("makeDeposit", False)))
        with self._lock:
            self._check_funds(body, total, Decimal(0))
            self._allocations[allocation.allocation_id] = allocation
            return json_response(201, allocation.wire())

    @staticmethod
    def _amount(raw: Any) -> Decimal:
        """A decimal as the daemon's JSON extractor reads it (a negative one is accepted)."""
        if raw is None:
            raise _deserialize_error("missing field `totalAmount`")
        try:
            return money.to_decimal(raw)
        except ValueError:
            raise _deserialize_error("invalid digit found in string") from None

    def _platform(self, body: dict[str, Any]) -> str:
        raw = body.get("paymentPlatform")
        if raw is None or isinstance(raw, dict):
            parts = raw or {}
            token = parts.get("token") or "tglm"
            default_network = "polygon" if token == "glm" else "holesky"
            raw = "-".join([parts.get("driver") or "erc20",
                            parts.get("network") or default_network, token])
        if not isinstance(raw, str):
            raise _deserialize_error(f"invalid type for paymentPlatform: {raw!r}")
        try:
            driver, network, _token = split_platform(raw)
        except ValueError:
            raise _bad_platform(body, raw, f"Invalid payment platform: {raw}") from None
        if network not in NETWORKS:
            raise _bad_platform(body, raw,
                                f"Validate network failed (2): Invalid network name: {network}")
        if driver not in DRIVERS:
            raise _bad_platform(body, raw,
                                f"Validate driver failed (2): Invalid driver name {driver}")
        return raw

    @staticmethod
    def _timeout(raw: Any) -> Optional[datetime]:
        if raw is None:
            return None
        try:
            return timestamps.parse(str(raw))
        except ValueError:
            raise _deserialize_error("input contains invalid characters") from None

    def _check_funds(self, body: dict[str, Any], wanted: Decimal, current: Decimal,
                     echo: Optional[dict[str, Any]] = None) -> None:
        """Refuse reserving ``wanted`` more than the account holds (lock held); ``current``
        is a part of the reserved funds not to count; ``echo`` the problem's requestBody."""
        reserved = sum((a.remaining for a in self._allocations.values() if not a.released),
                       Decimal(0)) - current
        available = self.config.requestor_funds - reserved
        if wanted > available:
            raise _problem(
                400, "insufficient-account-funds",
                "Insufficient funds to create the allocation. Top up your account or release "
                "all existing allocations to unlock the funds via `yagna payment release-"
                "allocations`", body, address=self.requestor_id,
                **({} if echo is None else {"requestBody": echo}),
                availableFunds=money.to_wire(available),
                paymentPlatform=self.config.payment_platform,
                requestedFunds=money.to_wire(wanted), reservedFunds=money.to_wire(reserved))

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
        """``PUT``: a new ``totalAmount`` and/or ``timeout``, checked before either applies."""
        body = request.json_object(wrap=False)
        echo = {k: body[k] for k in ("totalAmount", "timeout") if body.get(k) is not None}
        total = self._amount(body["totalAmount"]) if "totalAmount" in body else None
        timeout = self._timeout(body.get("timeout"))
        with self._lock:
            allocation = self._require(request.params["id"])
            if timeout is not None and timeout <= timestamps.now():
                raise HttpError.message(400, "New allocation timeout is in the past")
            if total is not None:
                if total < allocation.spent:
                    raise _problem(400, "total-below-spent",
                                   "totalAmount is less than the amount already spent", body,
                                   requestBody=echo)
                self._check_funds(body, total - allocation.total, Decimal(0), echo)
                allocation.total = total
            if timeout is not None:
                allocation.timeout = timeout
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
            given = request.query.get("allocationIds", "")
            raise HttpError(400, f"Query deserialize error: invalid type: string \"{given}\", "
                                 "expected a borrowed string", TEXT)
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
    properties = [{"key": f"golem.com.payment.platform.{a.platform}.address", "value": a.address}
                  for a in allocations]  # one per allocation, repeated like the daemon's
    properties.append({"key": "golem.com.payment.protocol.version", "value": "3"})
    present = [f"(golem.com.payment.platform.{a.platform}.address=*)" for a in allocations]
    first = present[0] if len(present) == 1 else "(|\n  " + "\n  ".join(present) + "\n)"
    version = ">2" if any(a.make_deposit for a in allocations) else ">1"
    return {"properties": properties,
            "constraints": [first, f"(golem.com.payment.protocol.version{version})"]}
