"""Wire models of the yagna REST API: camelCase JSON on the wire, snake_case in Python.

Built with dataclasses-json; unknown fields are ignored (the daemon adds fields over time),
optional ones may be missing, timestamps become aware UTC datetimes (``Z`` and nine fractional
digits handled), money becomes ``Decimal`` (sent back as strings), ids are always strings.
A reply that does not fit raises :class:`~golemsync.errors.ProtocolError`, never a
``KeyError``. Annotations use ``typing`` generics because dataclasses-json evaluates them at
runtime, also on Python 3.9.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Optional, TypeVar, Union

from dataclasses_json import DataClassJsonMixin, LetterCase, Undefined, config

from .. import money, timestamps
from ..errors import ProtocolError

T = TypeVar("T", bound="Wire")


def _time_or_none(value: Any) -> Optional[datetime]:
    return None if value is None else timestamps.parse(str(value))


def _output(value: Any) -> Union[str, bytes, None]:
    # stdout/stderr: a string (format "str"), an array of byte values (format "bin"), or null
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return bytes(value)
    raise ValueError(f"unexpected command output {value!r}")


def when(optional: bool = False) -> Any:
    """A timestamp field (RFC 3339 on the wire)."""
    codec = config(decoder=_time_or_none if optional else (lambda v: timestamps.parse(str(v))),
                   encoder=lambda v: None if v is None else timestamps.to_wire(v))
    return field(default=None, metadata=codec) if optional else field(metadata=codec)


def amount(optional: bool = False) -> Any:
    """A money field (a decimal string on the wire)."""
    codec = config(decoder=lambda v: None if v is None else money.to_decimal(v),
                   encoder=lambda v: None if v is None else money.to_wire(v))
    return field(default=None, metadata=codec) if optional else field(metadata=codec)


class Wire(DataClassJsonMixin):
    """Base of the wire models."""

    dataclass_json_config = config(letter_case=LetterCase.CAMEL,  # type: ignore[assignment]
                                   undefined=Undefined.EXCLUDE)["dataclasses_json"]

    @classmethod
    def parse(cls: type[T], data: Any) -> T:
        """Build from decoded JSON; :class:`ProtocolError` when it does not fit."""
        if not isinstance(data, dict):
            raise ProtocolError(f"expected a {cls.__name__} object, got {_short(data)}")
        try:
            return cls._decode(data)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise ProtocolError(f"malformed {cls.__name__} from the daemon: {exc!r} in "
                                f"{_short(data)}") from exc

    @classmethod
    def _decode(cls: type[T], data: dict[str, Any]) -> T:
        """The model from a JSON object (dataclasses-json; the documents read once per task
        or more decode by hand, the same result at a fiftieth of the cost)."""
        return cls.from_dict(data)

    @classmethod
    def parse_list(cls: type[T], data: Any) -> list[T]:
        if data is None:
            return []
        if not isinstance(data, list):
            raise ProtocolError(f"expected a list of {cls.__name__}, got {_short(data)}")
        return [cls.parse(item) for item in data]


def _short(data: Any) -> str:
    text = repr(data)
    return text if len(text) <= 200 else text[:200] + "..."


_REQUIRED: Any = object()


def _text(data: dict[str, Any], key: str, default: Any = _REQUIRED) -> Any:
    """``data[key]``, a string (or ``default`` when absent or null; required without one)."""
    value = data.get(key)
    if value is None:
        if default is _REQUIRED:
            raise KeyError(key)
        return default
    if not isinstance(value, str):
        raise TypeError(f"{key} {value!r} is not a string")
    return value


def _stamp(data: dict[str, Any], key: str) -> Optional[datetime]:
    return _time_or_none(data.get(key))


def _required_stamp(data: dict[str, Any], key: str) -> datetime:
    value = data.get(key)
    if value is None:
        raise KeyError(key)
    return timestamps.parse(str(value))


def _object(data: dict[str, Any], key: str) -> Optional[dict[str, Any]]:
    value = data.get(key)
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"{key} {value!r} is not an object")
    return value


def _numbers(value: Any, key: str) -> Optional[list[float]]:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise TypeError(f"{key} {value!r} is not a list of numbers")
    return list(value)


def parse_id(data: Any, what: str) -> str:
    """A bare JSON string id (or a number the daemon sent as an id)."""
    if isinstance(data, bool) or not isinstance(data, (str, int)):
        raise ProtocolError(f"expected {what} as a JSON string, got {_short(data)}")
    return str(data)


# -- identity -----------------------------------------------------------------------------------
@dataclass
class Identity(Wire):
    identity: str
    name: str = ""
    role: str = ""


@dataclass
class Release(Wire):
    version: str
    name: str = ""
    seen: bool = False


@dataclass
class VersionInfo(Wire):
    current: Optional[Release] = None
    pending: Optional[Release] = None


# -- market ------------------------------------------------------------------------------------
@dataclass
class Proposal(Wire):
    proposal_id: str
    issuer_id: str
    state: str
    timestamp: datetime = when()
    properties: dict[str, Any] = field(default_factory=dict)
    constraints: str = ""
    prev_proposal_id: Optional[str] = None

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> Proposal:
        properties = _object(data, "properties")
        return cls(_text(data, "proposalId"), _text(data, "issuerId"), _text(data, "state"),
                   _required_stamp(data, "timestamp"),
                   {} if properties is None else properties, _text(data, "constraints", ""),
                   _text(data, "prevProposalId", None))


@dataclass
class MarketOffer(Wire):
    """An offer as a market scan returns it."""

    offer_id: str
    provider_id: str
    properties: dict[str, Any] = field(default_factory=dict)
    constraints: str = ""
    timestamp: Optional[datetime] = when(optional=True)


@dataclass
class ProposalEvent(Wire):
    proposal: Proposal
    event_date: datetime = when()
    event_type: str = "ProposalEvent"

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> ProposalEvent:
        proposal = _object(data, "proposal")
        if proposal is None:
            raise KeyError("proposal")
        return cls(Proposal._decode(proposal),
                   _required_stamp(data, "eventDate"),
                   _text(data, "eventType", "ProposalEvent"))


@dataclass
class ProposalRejectedEvent(Wire):
    proposal_id: str
    event_date: datetime = when()
    reason: Optional[dict[str, Any]] = None
    event_type: str = "ProposalRejectedEvent"


@dataclass
class UnknownMarketEvent(Wire):
    event_type: str
    event_date: Optional[datetime] = when(optional=True)
    raw: dict[str, Any] = field(default_factory=dict)


MarketEvent = Union[ProposalEvent, ProposalRejectedEvent, UnknownMarketEvent]


def parse_market_event(data: Any) -> MarketEvent:
    """One item of ``/demands/{id}/events`` by its ``eventType``."""
    kind = data.get("eventType") if isinstance(data, dict) else None
    if kind == "ProposalEvent":
        return ProposalEvent.parse(data)
    if kind == "ProposalRejectedEvent":
        return ProposalRejectedEvent.parse(data)
    if not isinstance(kind, str):
        raise ProtocolError(f"market event without eventType: {_short(data)}")
    return UnknownMarketEvent(kind, _time_or_none(data.get("eventDate")), dict(data))


@dataclass
class AgreementDemand(Wire):
    demand_id: str = ""
    requestor_id: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    constraints: str = ""
    timestamp: Optional[datetime] = when(optional=True)


@dataclass
class AgreementOffer(Wire):
    offer_id: str = ""
    provider_id: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    constraints: str = ""
    timestamp: Optional[datetime] = when(optional=True)


@dataclass
class Agreement(Wire):
    agreement_id: str
    state: str
    demand: AgreementDemand = field(default_factory=AgreementDemand)
    offer: AgreementOffer = field(default_factory=AgreementOffer)
    valid_to: Optional[datetime] = when(optional=True)
    approved_date: Optional[datetime] = when(optional=True)
    timestamp: Optional[datetime] = when(optional=True)
    app_session_id: Optional[str] = None


@dataclass
class AgreementEvent(Wire):
    event_type: str
    agreement_id: str
    event_date: datetime = when()
    terminator: Optional[str] = None
    reason: Optional[dict[str, Any]] = None


@dataclass
class TerminationReason(Wire):
    agreement_id: str
    event_date: Optional[datetime] = when(optional=True)
    terminator: Optional[str] = None
    reason: Optional[dict[str, Any]] = None


# -- activity ------------------------------------------------------------------------------------
_OUTPUT = config(decoder=_output, encoder=lambda v: list(v) if isinstance(v, bytes) else v)


@dataclass
class ExeScriptCommandResult(Wire):
    """One item of a batch's results. Decoded by hand (this reply is polled all the time and
    dataclasses-json costs ~50 times more), with the same checks: a missing or mistyped
    field raises :class:`ProtocolError`."""

    index: int
    result: str
    event_date: datetime = when()
    stdout: Union[str, bytes, None] = field(default=None, metadata=_OUTPUT)
    stderr: Union[str, bytes, None] = field(default=None, metadata=_OUTPUT)
    message: Optional[str] = None
    is_batch_finished: bool = False

    @classmethod
    def parse(cls, data: Any) -> ExeScriptCommandResult:
        if not isinstance(data, dict):
            raise ProtocolError(f"expected an ExeScriptCommandResult object, got {_short(data)}")
        try:
            index = data["index"]
            result = data["result"]
            stamp = data["eventDate"]
            message = data.get("message")
            finished = data.get("isBatchFinished", False)
            if isinstance(index, bool) or not isinstance(index, int):
                raise TypeError(f"index {index!r} is not an integer")
            if not isinstance(result, str) or not isinstance(stamp, str):
                raise TypeError("result and eventDate must be strings")
            if message is not None and not isinstance(message, str):
                raise TypeError(f"message {message!r} is not a string")
            if not isinstance(finished, bool):
                raise TypeError(f"isBatchFinished {finished!r} is not a boolean")
            return cls(index, result, timestamps.parse(stamp), _output(data.get("stdout")),
                       _output(data.get("stderr")), message, finished)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed ExeScriptCommandResult from the daemon: {exc!r} "
                                f"in {_short(data)}") from exc


@dataclass
class RuntimeEvent:
    """One server-sent ``runtime`` event: ``kind`` is started/stdout/stderr/progress/finished."""

    batch_id: str
    index: int
    timestamp: Optional[datetime]
    kind: str
    payload: Any

    @classmethod
    def parse(cls, data: Any) -> RuntimeEvent:
        if not isinstance(data, dict) or not isinstance(data.get("kind"), dict):
            raise ProtocolError(f"malformed runtime event: {_short(data)}")
        ((kind, payload),) = data["kind"].items() if len(data["kind"]) == 1 else (("?", None),)
        stamp = data.get("timestamp")
        return cls(str(data.get("batch_id", "")), int(data.get("index", -1)),
                   _time_or_none(stamp), kind, payload)


@dataclass
class ActivityState:
    """``[current, pending]`` state of an activity."""

    current: str
    pending: Optional[str] = None
    reason: Optional[str] = None
    error_message: Optional[str] = None

    @property
    def alive(self) -> bool:
        return "Terminated" not in (self.current, self.pending)

    @classmethod
    def parse(cls, data: Any) -> ActivityState:
        pair = data.get("state") if isinstance(data, dict) else None
        if not isinstance(pair, list) or not pair or not isinstance(pair[0], str):
            raise ProtocolError(f"malformed activity state: {_short(data)}")
        pending = pair[1] if len(pair) > 1 else None
        return cls(pair[0], pending, data.get("reason"), data.get("errorMessage"))


@dataclass
class ActivityUsage(Wire):
    timestamp: int = 0
    current_usage: Optional[list[float]] = None


# -- payment ---------------------------------------------------------------------------
@dataclass
class Account(Wire):
    platform: str
    address: str
    driver: str = ""
    network: str = ""
    token: str = ""
    send: bool = False
    receive: bool = False


@dataclass
class Allocation(Wire):
    allocation_id: str
    total_amount: Decimal = amount()
    spent_amount: Decimal = amount()
    remaining_amount: Decimal = amount()
    address: str = ""
    payment_platform: str = ""
    timestamp: Optional[datetime] = when(optional=True)
    timeout: Optional[datetime] = when(optional=True)
    make_deposit: bool = False


@dataclass
class MarketDecoration:
    """What the payment API asks us to add to a demand."""

    properties: dict[str, Any]
    constraints: list[str]

    @classmethod
    def parse(cls, data: Any) -> MarketDecoration:
        if not isinstance(data, dict):
            raise ProtocolError(f"malformed demand decoration: {_short(data)}")
        try:
            props = {str(p["key"]): p["value"] for p in data.get("properties") or []}
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"malformed decoration properties: {_short(data)}") from exc
        constraints = data.get("constraints") or []
        if not all(isinstance(c, str) for c in constraints):
            raise ProtocolError(f"malformed decoration constraints: {_short(data)}")
        return cls(props, list(constraints))


@dataclass
class DebitNote(Wire):
    debit_note_id: str
    agreement_id: str
    activity_id: str
    total_amount_due: Decimal = amount()
    issuer_id: str = ""
    recipient_id: str = ""
    payee_addr: str = ""
    payer_addr: str = ""
    payment_platform: str = ""
    previous_debit_note_id: Optional[str] = None
    timestamp: Optional[datetime] = when(optional=True)
    usage_counter_vector: Optional[list[float]] = None
    payment_due_date: Optional[datetime] = when(optional=True)
    status: str = ""

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> DebitNote:
        due = data.get("totalAmountDue")
        if due is None:
            raise KeyError("totalAmountDue")
        return cls(_text(data, "debitNoteId"), _text(data, "agreementId"),
                   _text(data, "activityId"), money.to_decimal(due), _text(data, "issuerId", ""),
                   _text(data, "recipientId", ""), _text(data, "payeeAddr", ""),
                   _text(data, "payerAddr", ""), _text(data, "paymentPlatform", ""),
                   _text(data, "previousDebitNoteId", None), _stamp(data, "timestamp"),
                   _numbers(data.get("usageCounterVector"), "usageCounterVector"),
                   _stamp(data, "paymentDueDate"), _text(data, "status", ""))


@dataclass
class Invoice(Wire):
    invoice_id: str
    agreement_id: str
    amount: Decimal = amount()
    activity_ids: list[str] = field(default_factory=list)
    issuer_id: str = ""
    recipient_id: str = ""
    payee_addr: str = ""
    payer_addr: str = ""
    payment_platform: str = ""
    timestamp: Optional[datetime] = when(optional=True)
    payment_due_date: Optional[datetime] = when(optional=True)
    status: str = ""

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> Invoice:
        total = data.get("amount")
        if total is None:
            raise KeyError("amount")
        activities = data.get("activityIds")
        if activities is None:
            activities = []
        if not isinstance(activities, list) or not all(isinstance(a, str) for a in activities):
            raise TypeError(f"activityIds {activities!r} is not a list of strings")
        return cls(_text(data, "invoiceId"), _text(data, "agreementId"), money.to_decimal(total),
                   list(activities), _text(data, "issuerId", ""), _text(data, "recipientId", ""),
                   _text(data, "payeeAddr", ""), _text(data, "payerAddr", ""),
                   _text(data, "paymentPlatform", ""), _stamp(data, "timestamp"),
                   _stamp(data, "paymentDueDate"), _text(data, "status", ""))


@dataclass
class InvoiceEvent(Wire):
    event_type: str
    invoice_id: str
    event_date: datetime = when()
    rejection: Optional[dict[str, Any]] = None
    property: Optional[dict[str, Any]] = None

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> InvoiceEvent:
        return cls(_text(data, "eventType"), _text(data, "invoiceId"),
                   _required_stamp(data, "eventDate"),
                   _object(data, "rejection"), _object(data, "property"))


@dataclass
class DebitNoteEvent(Wire):
    event_type: str
    debit_note_id: str
    event_date: datetime = when()
    rejection: Optional[dict[str, Any]] = None
    property: Optional[dict[str, Any]] = None

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> DebitNoteEvent:
        return cls(_text(data, "eventType"), _text(data, "debitNoteId"),
                   _required_stamp(data, "eventDate"),
                   _object(data, "rejection"), _object(data, "property"))
