"""Differential test: the same requestor REST calls to a fresh devnet and to a real yagna node.

One scenario (:func:`scenario`) drives a world — the devnet (``golemsync.devnet.Devnet``, two
providers, in-process) or the localnet's requestor node (yagna 0.17.6 with the project's
provider programs behind the real central net) — through identity, allocations, demand
decorations, the market (demands, events, scans, negotiation, agreements), the activity API
(exec, results polls with and without ``commandIndex``, a command failing mid-batch, state,
usage, destroy) and the payment documents, recording every reply. The two recordings are then
compared step by step: status code, content type, the reply's *shape* (keys, JSON types,
and the values of enum-like keys; never ids, times or amounts) and, for errors, the text with
ids, times and serde's positions masked. :func:`shape_diff` names the first difference by its
path (``$.proposal.state: 'Draft' != 'Initial'``).

The differences that are meant to be there are listed, with their reason, in
:data:`INTENDED`; anything else found is a devnet bug to fix in ``golemsync/devnet``.

What it cannot judge: on the localnet the exe-unit behind the provider node is the project's
own (``golemsync.localnet.provider`` runs the devnet's ``ExeUnit``), so exe-unit behaviour —
e.g. the failed-batch poll of PROTOCOL §4.6 — is checked here only for what the daemon adds
(it relays the wait and the 408 unchanged); the behaviour itself comes from the daemon's
exe-unit as PROTOCOL.md describes it.

Skips (with the reason) when yagna or anvil is missing, like the rest of the tier.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

import pytest
import requests

from golemsync.devnet import Devnet, DevnetConfig
from golemsync.localnet import Localnet

pytestmark = pytest.mark.timeout(240)

MARKET = "/market-api/v1"
ACTIVITY = "/activity-api/v1"
PAYMENT = "/payment-api/v1"
PLATFORM = "erc20-holesky-tglm"
CHOSEN = "golem.com.payment.chosen-platform"
MALFORMED_ID = "not-an-id"
UNKNOWN_SUBSCRIPTION = "0" * 32 + "-" + "0" * 64
UNKNOWN_PROPOSAL = "R-" + "0" * 64
FAILED_POLL_WINDOW = 2.0  # seconds a results poll may wait on a failed batch

# Keys whose values are compared, not only their types (enum-like values of the protocol).
ENUM_KEYS = frozenset({"eventType", "event", "state", "result", "isBatchFinished", "status",
                       "type", "role", "driver", "network", "token", "send", "receive",
                       "makeDeposit", "paymentPlatform", "platform", "terminator"})
# Keys whose objects are open maps (an offer's or a demand's properties): compared as objects,
# not key by key — their content is what a provider or the requestor chose, not protocol.
OPEN_MAPS = frozenset({"properties"})

# The intended differences: step -> (what may differ, why). "status" lets the status code
# differ; "body" skips the shape (and the error text); "content" skips the content type;
# "length" lets lists have different lengths; "message" skips the error text (compared with
# ids and times masked otherwise). Anything not listed here must match.
INTENDED: dict[str, tuple[frozenset[str], str]] = {
    "allocation.create.not-registered": (frozenset({"body"}), (
        "a platform on which the requestor has no account: the localnet node is offline and "
        "answers 500 internal-error (no RPC for polygon, 'Server is unreachable'); the devnet, "
        "which has no chain, answers 500 validation-error/account-not-registered")),
    "activity.usage": (frozenset({"body"}), (
        "the daemon answers usage from the provider node's records, which a real exe-unit "
        "fills over its node's local bus; the localnet's provider program has only REST "
        "(no usage setter), so the daemon's answer lacks currentUsage. The devnet reports "
        "the exe-unit's counters, as the daemon does with a real exe-unit")),
    "activity.command.idle": (frozenset({"status", "body"}), (
        "the provider node does not route GetRunningCommand to the localnet's provider "
        "program (500 'endpoint address not found' from the provider node); the devnet "
        "answers as the real exe-unit: 404 'No running command' when idle (PROTOCOL §4)")),
    "allocation.create.bad-json": (frozenset({"message"}), (
        "a body that is not JSON: the devnet's message is Python's JSON parser's, not serde's")),
    "market.demand.bad-json": (frozenset({"message"}), (
        "a demand that is a JSON array: serde reads a struct from a sequence ('invalid length "
        "0, expected struct DemandOfferBase'); the devnet says it expects an object")),
    "activity.results.unknown-batch": (frozenset({"message"}), (
        "the daemon relays the exe-unit's text, here the localnet's provider program's; the "
        "devnet keeps the real exe-unit's 'batch_id = ...' (PROTOCOL §4.6)")),
    "activity.exec.destroyed": (frozenset({"status", "message"}), (
        "after a destroy the localnet's provider program unbinds its GSB API service; the "
        "daemon then lets calls to it time out (408 after 6 s). A real exe-unit's binding "
        "goes with its process and the daemon answers 500 'endpoint address not found' "
        "(LOCALNET §5), which is what the devnet answers")),
}


# -- recording --------------------------------------------------------------------------------

@dataclass
class Reply:
    """One recorded reply: status, content kind (``json``, ``problem+json``, ``text``,
    ``sse``, ``none``), the parsed body, and how long the call took."""

    step: str
    status: int
    kind: str
    body: Any
    seconds: float

    def ok(self) -> bool:
        return 200 <= self.status < 300


class ScenarioError(AssertionError):
    """A step the scenario needs to go on did not succeed."""


@dataclass
class World:
    """One API (a devnet or a real requestor node) and the replies recorded from it."""

    name: str
    base: str
    app_key: str
    replies: dict[str, Reply] = field(default_factory=dict)
    started: str = ""  # when the scenario began (afterTimestamp of the event polls)
    allocation_id: str = ""  # the scenario's live allocation
    http: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.http.headers["Authorization"] = f"Bearer {self.app_key}"

    def call(self, step: str, method: str, path: str, *, need: Optional[int] = None,
             normal: Optional[Callable[[Any], Any]] = None, **kwargs: Any) -> Reply:
        """Send one request, record its reply under ``step``; ``need`` is the status the
        scenario must get to go on (else :class:`ScenarioError`); ``normal`` rewrites the
        body before it is recorded (e.g. keeps one kind of event)."""
        if step in self.replies:
            raise ValueError(f"step {step!r} recorded twice")
        kwargs.setdefault("timeout", 40)
        began = time.monotonic()
        answer = self.http.request(method, self.base + path, **kwargs)
        seconds = time.monotonic() - began
        reply = _reply(step, answer, seconds)
        if normal is not None:
            reply.body = normal(reply.body)
        self.replies[step] = reply
        if need is not None and reply.status != need:
            raise ScenarioError(f"{self.name}: step {step!r} ({method} {path}) answered "
                                f"{reply.status} {answer.text[:300]!r}, the scenario needs "
                                f"{need}")
        return reply

    def first_event(self, step: str, path: str) -> Reply:
        """Open ``path`` as a server-sent event stream, record its first event as
        ``{"event": name, "data": JSON}`` (kind ``sse``), and close it."""
        began = time.monotonic()
        with self.http.get(self.base + path, headers={"Accept": "text/event-stream"},
                           stream=True, timeout=20) as answer:
            mime = (answer.headers.get("Content-Type") or "").split(";")[0].strip()
            event: dict[str, Any] = {}
            for line in answer.iter_lines(decode_unicode=True):
                if line.startswith("event:"):
                    event["event"] = line[6:].strip()
                elif line.startswith("data:"):
                    event["data"] = json.loads(line[5:].strip())
                elif not line and event:
                    break
        kind = "sse" if mime == "text/event-stream" else mime
        reply = Reply(step, answer.status_code, kind, event, time.monotonic() - began)
        self.replies[step] = reply
        return reply

    def close(self) -> None:
        self.http.close()


def _reply(step: str, answer: requests.Response, seconds: float) -> Reply:
    mime = (answer.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    body: Any = None
    if not answer.content:
        kind = "none"
    elif mime == "application/json" or mime.endswith("+json"):
        kind = "problem+json" if mime == "application/problem+json" else "json"
        body = answer.json()
    else:
        kind = "text"
        body = answer.text
        try:  # the daemon sends some JSON bodies as text/plain: keep their shape
            body = json.loads(answer.text)
        except ValueError:
            pass
    return Reply(step, answer.status_code, kind, body, seconds)


# -- shapes ------------------------------------------------------------------------------------

def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dict):
        return "object"
    return "array" if isinstance(value, list) else "string"


def shape_diff(left: Any, right: Any, path: str = "$", *, length: bool = True) -> Optional[str]:
    """The first difference in shape between two JSON values, as ``path: what``; None if
    they have the same shape. Lists are compared element by element (and by length unless
    ``length`` is false); values are compared only under :data:`ENUM_KEYS`."""
    kinds = _type(left), _type(right)
    if kinds[0] != kinds[1]:
        return f"{path}: {kinds[0]} {_short(left)} != {kinds[1]} {_short(right)}"
    if isinstance(left, dict):
        if path.rsplit(".", 1)[-1] in OPEN_MAPS:
            return None
        only_left = sorted(set(left) - set(right))
        only_right = sorted(set(right) - set(left))
        if only_left or only_right:
            return f"{path}: keys only on the left {only_left}, only on the right {only_right}"
        for key in sorted(left):
            if key in ENUM_KEYS and not isinstance(left[key], (dict, list)) \
                    and left[key] != right[key]:
                return f"{path}.{key}: {left[key]!r} != {right[key]!r}"
            found = shape_diff(left[key], right[key], f"{path}.{key}", length=length)
            if found is not None:
                return found
        return None
    if isinstance(left, list):
        if length and len(left) != len(right):
            return f"{path}: {len(left)} items != {len(right)} items"
        for index, (one, other) in enumerate(zip(left, right)):
            found = shape_diff(one, other, f"{path}[{index}]", length=length)
            if found is not None:
                return found
    return None


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def reply_diff(left: Reply, right: Reply, allowed: frozenset[str] = frozenset()) -> Optional[str]:
    """The first difference between two recorded replies of one step, or None."""
    if "status" not in allowed and left.status != right.status:
        return f"status {left.status} != {right.status}"
    if "content" not in allowed and left.kind != right.kind:
        return f"content {left.kind} != {right.kind}"
    if "body" in allowed:
        return None
    found = shape_diff(left.body, right.body, length="length" not in allowed)
    if found is None and "message" not in allowed and left.status >= 400:
        mine, theirs = error_text(left.body), error_text(right.body)
        if mine != theirs:
            return f"error text {mine!r} != {theirs!r}"
    return found


_ID = re.compile(r"\b(0x)?[0-9a-f]{8,}(-[0-9a-f]{4,})*\b|\bR-[0-9a-f]{64}\b", re.IGNORECASE)
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?")
_POSITION = re.compile(r",? ?(at )?line:? \d+,? column:? \d+")  # serde's: not compared
_NUMBER = re.compile(r'"\d+"')


def error_text(body: Any) -> Optional[str]:
    """An error reply's text (``message``, a problem's ``detail``, or a plain body) with ids
    and times masked, so that two worlds' texts compare."""
    text = body
    if isinstance(body, dict):
        text = body.get("message", body.get("detail"))
    if not isinstance(text, str):
        return None
    masked = _ID.sub("<id>", _STAMP.sub("<time>", text))
    return _NUMBER.sub('"<n>"', _POSITION.sub("", masked)).strip()


def compare(left: World, right: World) -> list[str]:
    """Every step's first difference, as lines naming the step and both worlds."""
    problems = []
    for step, mine in left.replies.items():
        theirs = right.replies.get(step)
        if theirs is None:
            problems.append(f"{step}: only {left.name} recorded it")
            continue
        allowed = INTENDED.get(step, (frozenset(), ""))[0]
        found = reply_diff(mine, theirs, allowed)
        if found is not None:
            problems.append(f"{step}: {found}   [{left.name} {_short(mine.body)} | "
                            f"{right.name} {_short(theirs.body)}]")
    problems.extend(f"{step}: only {right.name} recorded it"
                    for step in right.replies if step not in left.replies)
    return problems


# -- the scenario ------------------------------------------------------------------------------

def _in(seconds: float) -> str:
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return moment.isoformat().replace("+00:00", "Z")


def _events_of(kind: str) -> Callable[[Any], Any]:
    def keep(body: Any) -> Any:
        if not isinstance(body, list):
            return body
        return [e for e in body if isinstance(e, dict) and e.get("eventType") == kind][:1]
    return keep


def _first(body: Any) -> Any:
    return body[:1] if isinstance(body, list) else body


def scenario(world: World, subnet: str) -> None:
    """Every call of the comparison, in order, recorded in ``world.replies``."""
    world.started = _in(-1)
    _identity(world)
    allocation_id = _allocations(world)
    demand = _demand(world, allocation_id, subnet)
    _market_misc(world, subnet)
    draft, sub = _negotiate(world, demand)
    agreement_id = _agreement(world, draft)
    _activity(world, agreement_id)
    _payments(world, agreement_id)
    world.call("market.unsubscribe", "DELETE", f"{MARKET}/demands/{sub}", need=204)
    world.call("market.unsubscribe.again", "DELETE", f"{MARKET}/demands/{sub}")
    world.call("market.events.unsubscribed", "GET", f"{MARKET}/demands/{sub}/events",
               params={"timeout": 0.1})


def _identity(world: World) -> None:
    world.call("identity.me", "GET", "/me", need=200)
    world.call("identity.me.no-key", "GET", "/me", headers={"Authorization": ""})
    world.call("identity.me.bad-key", "GET", "/me", headers={"Authorization": "Bearer nope"})
    world.call("identity.accounts", "GET", f"{PAYMENT}/requestorAccounts",
               normal=lambda body: [a for a in body if a.get("platform") == PLATFORM]
               if isinstance(body, list) else body)


ALLOCATION_ERRORS: dict[str, Callable[[], dict[str, Any]]] = {
    "bad-network": lambda: {"totalAmount": "1", "paymentPlatform": "erc20-nowhere-tglm"},
    "bad-driver": lambda: {"totalAmount": "1", "paymentPlatform": "zksync-holesky-tglm"},
    "upper-case": lambda: {"totalAmount": "1", "paymentPlatform": "ERC20-HOLESKY-TGLM"},
    "not-registered": lambda: {"totalAmount": "1", "paymentPlatform": "erc20-polygon-glm"},
    "past-timeout": lambda: {"totalAmount": "1", "paymentPlatform": PLATFORM,
                             "timeout": _in(-3600)},
    "bad-timeout": lambda: {"totalAmount": "1", "timeout": "tomorrow"},
    "bad-amount": lambda: {"totalAmount": "abc"},
    "negative": lambda: {"totalAmount": "-1"},
    "too-much": lambda: {"totalAmount": "100000000", "paymentPlatform": PLATFORM},
}


def _allocations(world: World) -> str:
    timed = world.call("allocation.create.timeout", "POST", f"{PAYMENT}/allocations", need=201,
                       json={"totalAmount": "1", "paymentPlatform": PLATFORM,
                             "timeout": _in(3600), "makeDeposit": False})
    allocation_id = str(timed.body["allocationId"])
    world.allocation_id = allocation_id
    untimed = world.call("allocation.create.no-timeout", "POST", f"{PAYMENT}/allocations",
                         need=201, json={"totalAmount": "0.5", "paymentPlatform": PLATFORM})
    other = str(untimed.body["allocationId"])
    world.call("allocation.get", "GET", f"{PAYMENT}/allocations/{allocation_id}", need=200)
    world.call("allocation.amend", "PUT", f"{PAYMENT}/allocations/{allocation_id}", need=200,
               json={"totalAmount": "2"})
    world.call("allocation.amend.past-timeout", "PUT", f"{PAYMENT}/allocations/{other}",
               json={"timeout": _in(-3600)})
    world.call("allocation.amend.too-much", "PUT", f"{PAYMENT}/allocations/{other}",
               json={"totalAmount": "100000000"})
    world.call("allocation.amend.bad-amount", "PUT", f"{PAYMENT}/allocations/{other}",
               json={"totalAmount": "abc"})
    world.call("allocation.amend.unknown", "PUT",
               f"{PAYMENT}/allocations/00000000-0000-0000-0000-000000000000",
               json={"totalAmount": "2"})
    world.call("allocation.list", "GET", f"{PAYMENT}/allocations", need=200,
               normal=lambda body: [a for a in body if a.get("allocationId") == allocation_id])
    world.call("decorations.one", "GET", f"{PAYMENT}/demandDecorations",
               params={"allocationIds": allocation_id}, need=200)
    world.call("decorations.two", "GET",
               f"{PAYMENT}/demandDecorations?allocationIds={allocation_id},{other}", need=200)
    world.call("decorations.two.encoded-comma", "GET",
               f"{PAYMENT}/demandDecorations?allocationIds={allocation_id}%2C{other}")
    world.call("decorations.unknown", "GET", f"{PAYMENT}/demandDecorations",
               params={"allocationIds": "00000000-0000-0000-0000-000000000000"})
    world.call("allocation.release", "DELETE", f"{PAYMENT}/allocations/{other}", need=200)
    world.call("allocation.get.released", "GET", f"{PAYMENT}/allocations/{other}")
    world.call("allocation.release.again", "DELETE", f"{PAYMENT}/allocations/{other}")
    world.call("allocation.get.unknown", "GET",
               f"{PAYMENT}/allocations/00000000-0000-0000-0000-000000000000")
    for step, body in ALLOCATION_ERRORS.items():
        world.call(f"allocation.create.{step}", "POST", f"{PAYMENT}/allocations", json=body())
    world.call("allocation.create.bad-json", "POST", f"{PAYMENT}/allocations",
               data=b"{", headers={"Content-Type": "application/json"})
    return allocation_id


def _demand(world: World, allocation_id: str, subnet: str) -> dict[str, Any]:
    decoration = world.replies["decorations.one"].body
    properties: dict[str, Any] = {
        "golem.srv.comp.expiration": int((time.time() + 900) * 1000),
        "golem.node.debug.subnet": subnet, "golem.srv.caps.multi-activity": True,
        "golem.com.payment.debit-notes.accept-timeout?": 240,
        "golem.com.scheme.payu.payment-timeout-sec?": 120}
    properties.update({p["key"]: p["value"] for p in decoration["properties"]})
    parts = [f"(golem.node.debug.subnet={subnet})", *decoration["constraints"]]
    return {"properties": properties, "constraints": "(&" + "\n\t".join(parts) + ")"}


def _market_misc(world: World, subnet: str) -> None:
    world.call("market.offers", "GET", f"{MARKET}/offers", need=200)
    scan = world.call("market.scan", "POST", f"{MARKET}/scan", need=201,
                      json={"type": "offer", "constraints": f"(golem.node.debug.subnet={subnet})"})
    scan_id = str(scan.body)
    world.call("market.scan.events", "GET", f"{MARKET}/scan/{scan_id}/events",
               params={"timeout": 3, "maxEvents": 10}, need=200, normal=_first)
    world.call("market.scan.end", "DELETE", f"{MARKET}/scan/{scan_id}")
    streamed = world.call("market.scan.stream", "POST", f"{MARKET}/scan", need=201,
                          json={"type": "offer", "properties": {},
                                "constraints": f"(golem.node.debug.subnet={subnet})"})
    world.first_event("market.scan.stream.first", f"{MARKET}/scan/{streamed.body}/events")
    world.call("market.scan.stream.end", "DELETE", f"{MARKET}/scan/{streamed.body}")
    world.call("market.scan.events.ended", "GET", f"{MARKET}/scan/{scan_id}/events",
               params={"timeout": 0.1})
    world.call("market.scan.bad-type", "POST", f"{MARKET}/scan", json={"type": "nonsense"})
    world.call("market.events.malformed-id", "GET", f"{MARKET}/demands/{MALFORMED_ID}/events",
               params={"timeout": 0.1})
    world.call("market.events.unknown", "GET", f"{MARKET}/demands/{UNKNOWN_SUBSCRIPTION}/events",
               params={"timeout": 0.1})
    world.call("market.demand.bad-json", "POST", f"{MARKET}/demands", data=b"[]",
               headers={"Content-Type": "application/json"})
    world.call("market.agreement.unknown", "GET", f"{MARKET}/agreements/{'0' * 64}")


def _negotiate(world: World, demand: dict[str, Any]) -> tuple[str, str]:
    sub = str(world.call("market.subscribe", "POST", f"{MARKET}/demands", json=demand,
                         need=201).body)
    world.call("market.demands", "GET", f"{MARKET}/demands", need=200,
               normal=lambda body: [d for d in body if d.get("demandId") == sub])
    offers = world.call("market.events.offers", "GET", f"{MARKET}/demands/{sub}/events",
                        params={"timeout": 5, "maxEvents": 10}, need=200,
                        normal=_events_of("ProposalEvent"))
    if not offers.body:
        raise ScenarioError(f"{world.name}: no offer reached the demand")
    offer = offers.body[0]["proposal"]
    world.call("market.proposal.get", "GET", f"{MARKET}/demands/{sub}/proposals/"
               f"{offer['proposalId']}", need=200)
    world.call("market.reject.unknown", "POST",
               f"{MARKET}/demands/{sub}/proposals/{UNKNOWN_PROPOSAL}/reject",
               json={"message": "no"})
    counter = dict(demand)
    counter["properties"] = {**demand["properties"], CHOSEN: PLATFORM}
    mine = world.call("market.counter", "POST",
                      f"{MARKET}/demands/{sub}/proposals/{offer['proposalId']}",
                      json=counter, need=200)
    draft = _draft(world, sub, str(mine.body))
    world.call("market.counter.again", "POST",
               f"{MARKET}/demands/{sub}/proposals/{offer['proposalId']}", json=counter)
    return draft, sub


def _wait_for(world: World, step: str, path: str, params: dict[str, Any],
              found: Callable[[dict[str, Any]], bool], within: float = 20.0) -> dict[str, Any]:
    """Poll ``path`` until an item ``found`` accepts arrives; the first poll is recorded under
    ``step`` with that item as its body (later polls only wait)."""
    deadline = time.monotonic() + within
    tries = 0
    while time.monotonic() < deadline:
        tries += 1
        name = step if tries == 1 else f"{step}.{tries}"
        reply = world.call(name, "GET", path, params=params, need=200)
        if tries > 1:
            world.replies.pop(name)
        for item in reply.body:
            if isinstance(item, dict) and found(item):
                world.replies[step].body = [item]
                return item
    raise ScenarioError(f"{world.name}: nothing for step {step!r} within {within:.0f} s")


def _draft(world: World, sub: str, mine: str) -> str:
    """The provider's answer to the counter-proposal ``mine`` (waits for it)."""
    event = _wait_for(world, "market.events.draft", f"{MARKET}/demands/{sub}/events",
                      {"timeout": 5, "maxEvents": 10},
                      lambda e: e.get("eventType") == "ProposalEvent"
                      and (e.get("proposal") or {}).get("prevProposalId") == mine)
    return str(event["proposal"]["proposalId"])


def _agreement(world: World, draft: str) -> str:
    agreement_id = str(world.call("agreement.create", "POST", f"{MARKET}/agreements", need=200,
                                  json={"proposalId": draft, "validTo": _in(3600)}).body)
    world.call("agreement.create.again", "POST", f"{MARKET}/agreements",
               json={"proposalId": draft, "validTo": _in(3600)})
    world.call("agreement.get.proposal", "GET", f"{MARKET}/agreements/{agreement_id}",
               need=200)
    world.call("agreement.confirm", "POST", f"{MARKET}/agreements/{agreement_id}/confirm",
               need=204)
    world.call("agreement.wait", "POST", f"{MARKET}/agreements/{agreement_id}/wait",
               params={"timeout": 15}, need=204)
    world.call("agreement.get.approved", "GET", f"{MARKET}/agreements/{agreement_id}",
               need=200)
    world.call("agreement.list", "GET", f"{MARKET}/agreements", need=200,
               normal=lambda body: [a for a in body if a.get("id", a.get("agreementId"))
                                    == agreement_id])
    world.call("agreement.cancel.approved", "POST",
               f"{MARKET}/agreements/{agreement_id}/cancel", json={"message": "no"})
    world.call("agreement.wait.approved", "POST", f"{MARKET}/agreements/{agreement_id}/wait",
               params={"timeout": 1})
    world.call("agreement.reason.approved", "GET",
               f"{MARKET}/agreements/{agreement_id}/terminate/reason")
    return agreement_id


def _exec(world: World, step: str, activity_id: str, commands: list[dict[str, Any]]) -> str:
    reply = world.call(step, "POST", f"{ACTIVITY}/activity/{activity_id}/exec", need=200,
                       json={"text": json.dumps(commands)})
    return str(reply.body)


def _run(*args: str) -> dict[str, Any]:
    return {"run": {"entry_point": args[0], "args": list(args[1:]),
                    "capture": {"stdout": {"atEnd": {}}, "stderr": {"atEnd": {}}}}}


def _activity(world: World, agreement_id: str) -> None:
    created = world.call("activity.create", "POST", f"{ACTIVITY}/activity", need=200,
                         json={"agreementId": agreement_id})
    aid = str(created.body["activityId"])
    path = f"{ACTIVITY}/activity/{aid}"
    world.call("activity.state.initialized", "GET", f"{path}/state", need=200)
    batch = _exec(world, "activity.exec.deploy", aid,
                  [{"deploy": {}}, {"start": {}}, _run("/bin/echo", "hello")])
    world.call("activity.results.index", "GET", f"{path}/exec/{batch}",
               params={"timeout": 20, "commandIndex": 2}, need=200)
    world.call("activity.results.all", "GET", f"{path}/exec/{batch}",
               params={"timeout": 5}, need=200)
    world.call("activity.state.ready", "GET", f"{path}/state", need=200)
    failing = _exec(world, "activity.exec.failing", aid,
                    [_run("/bin/echo", "one"), _run("/bin/sh", "-c", "echo bad >&2; exit 3"),
                     _run("/bin/echo", "never")])
    world.call("activity.results.failed.index", "GET", f"{path}/exec/{failing}",
               params={"timeout": 20, "commandIndex": 1}, need=200)
    world.call("activity.results.failed.all", "GET", f"{path}/exec/{failing}",
               params={"timeout": FAILED_POLL_WINDOW}, need=200)
    world.call("activity.results.failed.later", "GET", f"{path}/exec/{failing}",
               params={"timeout": FAILED_POLL_WINDOW, "commandIndex": 2})
    world.call("activity.results.unknown-batch", "GET", f"{path}/exec/{'0' * 32}",
               params={"timeout": 0.1})
    world.call("activity.exec.bad-script", "POST", f"{path}/exec", json={"text": "[{\"x\":1}]"})
    world.call("activity.usage", "GET", f"{path}/usage", need=200)
    note = _wait_for(world, "payment.debit-note.events", f"{PAYMENT}/debitNoteEvents",
                     {"timeout": 3, "afterTimestamp": world.started, "maxEvents": 10},
                     lambda e: e.get("eventType") == "DebitNoteReceivedEvent")
    world.call("payment.debit-note", "GET", f"{PAYMENT}/debitNotes/{note['debitNoteId']}",
               need=200)
    world.call("payment.debit-notes", "GET", f"{PAYMENT}/debitNotes", need=200,
               normal=lambda body: [n for n in body if n.get("activityId") == aid][:1])
    world.call("activity.command.idle", "GET", f"{path}/command")
    world.call("activity.agreement", "GET", f"{path}/agreement")
    world.call("activity.state.unknown", "GET", f"{ACTIVITY}/activity/{'0' * 32}/state")
    world.call("activity.destroy", "DELETE", f"{path}", need=200)
    world.call("activity.state.destroyed", "GET", f"{path}/state")
    world.call("activity.exec.destroyed", "POST", f"{path}/exec",
               json={"text": json.dumps([_run("/bin/echo", "late")])})
    world.call("activity.destroy.again", "DELETE", f"{path}")


def _payments(world: World, agreement_id: str) -> None:
    world.call("agreement.terminate", "POST", f"{MARKET}/agreements/{agreement_id}/terminate",
               json={"message": "done", "golem.requestor.code": "Success"}, need=200)
    world.call("agreement.terminate.again", "POST",
               f"{MARKET}/agreements/{agreement_id}/terminate", json={"message": "done"})
    world.call("agreement.get.terminated", "GET", f"{MARKET}/agreements/{agreement_id}",
               need=200)
    world.call("agreement.reason", "GET", f"{MARKET}/agreements/{agreement_id}/terminate/reason")
    world.call("agreement.events", "GET", f"{MARKET}/agreementEvents", need=200,
               params={"timeout": 1, "afterTimestamp": world.started},
               normal=lambda body: [e for e in body if e.get("agreementId") == agreement_id])
    invoice = _wait_for(world, "payment.invoice.events", f"{PAYMENT}/invoiceEvents",
                        {"timeout": 3, "afterTimestamp": world.started, "maxEvents": 10},
                        lambda e: e.get("eventType") == "InvoiceReceivedEvent")
    billed = world.call("payment.invoice", "GET", f"{PAYMENT}/invoices/{invoice['invoiceId']}",
                        need=200)
    # accepted, so the session's localnet keeps "every invoice accepted" for the payment proof
    world.call("payment.invoice.accept", "POST",
               f"{PAYMENT}/invoices/{invoice['invoiceId']}/accept", need=200,
               json={"totalAmountAccepted": billed.body["amount"],
                     "allocationId": world.allocation_id})
    world.call("payment.invoices", "GET", f"{PAYMENT}/invoices", need=200,
               normal=lambda body: [i for i in body if i.get("agreementId") == agreement_id])
    world.call("payment.status", "GET", f"{PAYMENT}/payments/status", need=200)
    world.call("payment.payments", "GET", f"{PAYMENT}/payments", need=200,
               params={"afterTimestamp": world.started, "timeout": 0.5}, normal=_first)
    world.call("payment.accounts", "GET", f"{PAYMENT}/requestorAccounts", need=200,
               normal=lambda body: [a for a in body if a.get("platform") == PLATFORM])
    world.call("payment.invoice.unknown", "GET",
               f"{PAYMENT}/invoices/00000000-0000-0000-0000-000000000000")
    world.call("payment.debit-note.unknown", "GET",
               f"{PAYMENT}/debitNotes/00000000-0000-0000-0000-000000000000")


# -- the test ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def worlds(localnet: Localnet) -> Iterator[tuple[World, World]]:
    """The scenario run once on a fresh devnet and once on the localnet's requestor node."""
    daemon = World("yagna", localnet.api_url, localnet.app_key)
    config = DevnetConfig.default(len(localnet.providers), localnet.config.seed)
    with Devnet(config) as net:
        devnet = World("devnet", net.url, net.app_key)
        try:
            scenario(daemon, localnet.config.subnet)
            scenario(devnet, localnet.config.subnet)
            yield devnet, daemon
        finally:
            devnet.close()
            daemon.close()


def test_devnet_answers_like_the_real_daemon(worlds: tuple[World, World]) -> None:
    problems = compare(*worlds)
    assert not problems, "the devnet differs from yagna 0.17.6:\n" + "\n".join(problems)


def test_failed_batch_poll_waits_out_its_timeout(worlds: tuple[World, World]) -> None:
    """PROTOCOL §4.6: a poll without ``commandIndex`` (or for a later index) on a batch whose
    command failed mid-way answers only when its ``timeout`` ends, on the devnet and through
    the real requestor daemon (which relays the exe-unit's wait unchanged); a poll for the
    failed command answers with it. Lower bounds only: never flaky."""
    for world in worlds:
        waited = world.replies["activity.results.failed.all"]
        assert waited.seconds >= FAILED_POLL_WINDOW * 0.9, (world.name, waited)
        assert [i["result"] for i in waited.body] == ["Ok", "Error"], (world.name, waited)
        later = world.replies["activity.results.failed.later"]
        assert later.status == 408 and later.seconds >= FAILED_POLL_WINDOW * 0.9, \
            (world.name, later)
        quick = world.replies["activity.results.failed.index"]
        assert quick.body[-1]["result"] == "Error", (world.name, quick)


def test_shape_diff_names_the_first_difference() -> None:
    assert shape_diff({"a": [{"b": 1}]}, {"a": [{"b": "x"}]}) == \
        '$.a[0].b: number 1 != string "x"'
    assert shape_diff({"state": "Ready"}, {"state": "Deployed"}) == \
        "$.state: 'Ready' != 'Deployed'"
    assert shape_diff({"a": 1, "b": 2}, {"a": 3, "c": 4}) == \
        "$: keys only on the left ['b'], only on the right ['c']"
    assert shape_diff([1, 2], [3]) == "$: 2 items != 1 items"
    assert shape_diff([1, 2], [3], length=False) is None
    assert shape_diff({"properties": {"x": 1}}, {"properties": {"y": "z"}}) is None
    assert shape_diff({"id": "abc", "n": 1.5}, {"id": "def", "n": 2}) is None
