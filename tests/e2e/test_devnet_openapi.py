"""The devnet's JSON replies validated against the yagna OpenAPI schemas.

Where the daemon and the spec disagree the devnet follows the daemon (PROTOCOL.md §9); those
cases are listed in ``DAEMON_WINS`` and validated against the spec's success schema of the
spec's status code (the body shape is the same) or skipped with the reason.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import pytest
import requests
from devnet_http import ACTIVITY, EXEC_SCRIPT, MARKET, PAYMENT, Client
from openapi_schemas import API_DIR, response_schema

from golemsync.devnet import Devnet

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not (API_DIR / "market-api.yaml").exists(),
    reason=f"yagna OpenAPI files not found in {API_DIR} (set GOLEMSYNC_YAGNA_API_DIR)")]

# (spec file, spec path, method) -> (status the spec documents, why the devnet differs)
DAEMON_WINS: dict[tuple[str, str, str], tuple[Optional[int], str]] = {
    ("market-api.yaml", "/demands/{subscriptionId}/proposals/{proposalId}", "post"):
        (201, "counterProposal answers 200, spec says 201"),
    ("market-api.yaml", "/agreements", "post"): (201, "createAgreement answers 200"),
    ("activity-api.yaml", "/activity", "post"):
        (201, "createActivity answers 200 and mirrors the legacy bare-string form"),
    ("market-api.yaml", "/agreements/{agreementId}/terminate/reason", "get"):
        (None, "the daemon serves terminate/reason as GET; the spec documents POST"),
}

# Fields the daemon writes in another shape than the spec's schema: (spec file, path, method) ->
# (field, check of the daemon's shape, why). The field is checked by itself and then left out
# of the schema validation.
DAEMON_SHAPES: dict[tuple[str, str, str], tuple[str, Any, str]] = {
    ("payment-api.yaml", "/debitNotes", "get"): (
        "usageCounterVector",
        lambda v: isinstance(v, list) and all(isinstance(x, (int, float)) for x in v),
        "the spec says object; the daemon sends the usage vector as a list of numbers"
        " (PROTOCOL §2)"),
}

# Replies where the daemon writes explicit nulls for absent optional fields.
DAEMON_NULLS: dict[tuple[str, str, str], str] = {
    ("activity-api.yaml", "/activity/{activityId}/exec/{batchId}", "get"):
        "stdout/stderr/message are null when nothing was captured (PROTOCOL §4.6)",
    ("version-api.yaml", "/version/get", "get"):
        "pending, insertionTs and updateTs are null (PROTOCOL §1.3)",
}

SPEC = {"/market-api/v1": "market-api.yaml", "/activity-api/v1": "activity-api.yaml",
        "/payment-api/v1": "payment-api.yaml", "": "identity-api.yaml"}


class Recorder(Client):
    """A client that remembers every JSON reply with the spec path it belongs to."""

    def __init__(self, net: Devnet) -> None:
        super().__init__(net)
        self.seen: list[tuple[str, str, str, int, Any]] = []

    def record(self, reply: requests.Response, prefix: str, template: str) -> None:
        body = reply.json() if reply.content else None
        self.seen.append((SPEC[prefix], template, reply.request.method or "", reply.status_code,
                          body))


def _flow(net: Devnet) -> list[tuple[str, str, str, int, Any]]:
    with Recorder(net) as c:
        c.record(c.get("/me"), "", "/me")
        allocation_id = c.allocation()
        c.record(c.get(f"{PAYMENT}/allocations/{allocation_id}"), PAYMENT,
                 "/allocations/{allocationId}")
        c.record(c.get(f"{PAYMENT}/allocations"), PAYMENT, "/allocations")
        c.record(c.get(f"{PAYMENT}/requestorAccounts"), PAYMENT, "/requestorAccounts")
        c.record(c.get(f"{PAYMENT}/demandDecorations", params={"allocationIds": allocation_id}),
                 PAYMENT, "/demandDecorations")
        demand = c.demand(allocation_id)
        sub = c.subscribe(demand)
        reply = c.get(f"{MARKET}/demands/{sub}/events", params={"timeout": 2})
        c.record(reply, MARKET, "/demands/{subscriptionId}/events")
        offer = reply.json()[0]["proposal"]
        c.record(c.counter(sub, offer["proposalId"], demand), MARKET,
                 "/demands/{subscriptionId}/proposals/{proposalId}")
        reply = c.get(f"{MARKET}/demands/{sub}/events", params={"timeout": 2})
        c.record(reply, MARKET, "/demands/{subscriptionId}/events")
        draft = reply.json()[0]["proposal"]["proposalId"]
        c.record(c.get(f"{MARKET}/demands/{sub}/proposals/{draft}"), MARKET,
                 "/demands/{subscriptionId}/proposals/{proposalId}")
        reply = c.post(f"{MARKET}/agreements",
                       json={"proposalId": draft, "validTo": "2099-01-01T00:00:00Z"})
        c.record(reply, MARKET, "/agreements")
        agreement_id = reply.json()
        c.post(f"{MARKET}/agreements/{agreement_id}/confirm")
        c.post(f"{MARKET}/agreements/{agreement_id}/wait", params={"timeout": 10})
        c.record(c.get(f"{MARKET}/agreements/{agreement_id}"), MARKET,
                 "/agreements/{agreementId}")
        _activity_flow(c, agreement_id)
        c.post(f"{MARKET}/agreements/{agreement_id}/terminate", json={"message": "done"})
        c.record(c.get(f"{MARKET}/agreementEvents", params={"timeout": 0}), MARKET,
                 "/agreementEvents")
        c.record(c.get(f"{MARKET}/agreements/{agreement_id}/terminate/reason"), MARKET,
                 "/agreements/{agreementId}/terminate/reason")
        _payment_flow(c)
        return c.seen


def _activity_flow(c: Recorder, agreement_id: str) -> None:
    reply = c.post(f"{ACTIVITY}/activity", json={"agreementId": agreement_id})
    c.record(reply, ACTIVITY, "/activity")
    activity_id = reply.json()["activityId"]
    batch = c.post(f"{ACTIVITY}/activity/{activity_id}/exec",
                   json={"text": json.dumps(EXEC_SCRIPT)})
    c.record(batch, ACTIVITY, "/activity/{activityId}/exec")
    c.batch_results(activity_id, batch.json())
    # Long-poll until the provider has sent a debit note, so the listing below always holds one.
    notes = c.get(f"{PAYMENT}/debitNoteEvents", params={"timeout": 10}).json()
    assert notes, "no debit note within 10 s of a finished batch"
    c.record(c.get(f"{ACTIVITY}/activity/{activity_id}/exec/{batch.json()}"), ACTIVITY,
             "/activity/{activityId}/exec/{batchId}")
    for suffix in ("state", "usage", "agreement"):
        c.record(c.get(f"{ACTIVITY}/activity/{activity_id}/{suffix}"), ACTIVITY,
                 f"/activity/{{activityId}}/{suffix}")
    c.record(c.delete(f"{ACTIVITY}/activity/{activity_id}"), ACTIVITY,
             "/activity/{activityId}")


def _payment_flow(c: Recorder) -> None:
    events = c.get(f"{PAYMENT}/invoiceEvents", params={"timeout": 10})
    c.record(events, PAYMENT, "/invoiceEvents")
    invoice_id = events.json()[0]["invoiceId"]
    c.record(c.get(f"{PAYMENT}/invoices/{invoice_id}"), PAYMENT, "/invoices/{invoiceId}")
    c.record(c.get(f"{PAYMENT}/invoices"), PAYMENT, "/invoices")
    c.record(c.get(f"{PAYMENT}/debitNotes"), PAYMENT, "/debitNotes")
    c.record(c.get(f"{PAYMENT}/debitNoteEvents", params={"timeout": 0}), PAYMENT,
             "/debitNoteEvents")


def test_replies_match_the_openapi_schemas(make_devnet: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("yaml")
    net = make_devnet(debit_note_interval=0.05)
    problems = []
    for api, path, method, status, body in _flow(net):
        exception = DAEMON_WINS.get((api, path, method.lower()))
        if exception is not None and exception[0] is None:
            continue
        schema = response_schema(api, path, method, exception[0] if exception else status)
        if schema is None:
            continue
        if (api, path, method.lower()) in DAEMON_NULLS:
            body = _without_nulls(body)
        shape = DAEMON_SHAPES.get((api, path, method.lower()))
        if shape is not None:
            body = _checked_field(body, shape, problems, f"{method} {path}")
        try:
            jsonschema.validate(body, schema)
        except jsonschema.ValidationError as error:
            problems.append(f"{method} {path} ({status}): {error.message}")
    assert not problems, "\n".join(problems)


def test_version_reply_matches_the_schema(devnet: Devnet) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    body = _without_nulls(requests.get(f"{devnet.url}/version/get", timeout=10).json())
    jsonschema.validate(body, response_schema("version-api.yaml", "/version/get", "get", 200))


def _checked_field(body: Any, shape: tuple[str, Any, str], problems: list[str],
                   where: str) -> Any:
    """Check ``shape``'s field in each item of ``body`` and return the items without it."""
    field, check, _why = shape
    items = body if isinstance(body, list) else [body]
    if not any(isinstance(item, dict) and field in item for item in items):
        problems.append(f"{where}: no item carries {field}, so its shape went unchecked")
    kept = []
    for item in items:
        if isinstance(item, dict) and field in item:
            if not check(item[field]):
                problems.append(f"{where}: {field} {item[field]!r} is not the daemon's shape")
            item = {k: v for k, v in item.items() if k != field}
        kept.append(item)
    return kept if isinstance(body, list) else kept[0]


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
