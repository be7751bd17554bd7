"""Every request body the REST layer sends validates against the yagna OpenAPI request schema.

The specs are read from ``../shared/yagna-api`` (beside the checkout); the test is skipped with
a reason when they are absent. Where the daemon accepts something other than what the spec
describes and golemsync follows the daemon, the case is listed in :data:`DAEMON_WINS`.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import jsonschema
import pytest
import responses
import yaml
from helpers import ACTIVITY, MARKET, PAYMENT, make_client, sent

from golemsync.rest import YagnaClient

SPEC_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "yagna-api"
PREFIXES = {"/market-api/v1": "market-api.yaml", "/activity-api/v1": "activity-api.yaml",
            "/payment-api/v1": "payment-api.yaml"}

#: (method, spec path, call) → why golemsync sends what the daemon accepts rather than what
#: the spec describes, and the shape the daemon accepts (validated instead of the spec's).
DAEMON_WINS: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {
    ("POST", "/allocations", "create_allocation"): (
        "the spec reuses the whole Allocation (allocationId, spentAmount, ... required) as the "
        "request; the daemon's NewAllocation needs only totalAmount (PROTOCOL §2.2)",
        {"type": "object", "required": ["totalAmount"],
         "properties": {"totalAmount": {"type": "string"}, "paymentPlatform": {"type": "string"},
                        "address": {"type": "string"}, "timeout": {"type": "string"},
                        "makeDeposit": {"type": "boolean"}}}),
    ("POST", "/demands/{subscriptionId}/proposals/{proposalId}/reject", "reject_proposal_null"): (
        "no reason is sent as JSON null, which the daemon's Json<Option<Reason>> accepts",
        {"type": "null"}),
}

pytestmark = pytest.mark.skipif(not SPEC_DIR.is_dir(),
                                reason=f"OpenAPI files not found at {SPEC_DIR}")


class Specs:
    """The yaml files with $refs resolved (across files) into plain JSON schemas."""

    def __init__(self, directory: Path) -> None:
        self.files = {p.name: yaml.safe_load(p.read_text()) for p in directory.glob("*.yaml")}

    def pointer(self, ref: str, current: str) -> tuple[Any, str]:
        name, _, path = ref.partition("#")
        name = name or current
        node: Any = self.files[name]
        for part in filter(None, path.split("/")):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, name

    def resolve(self, node: Any, current: str, depth: int = 0) -> Any:
        if depth > 40:
            return {}
        if isinstance(node, dict):
            if "$ref" in node:
                target, name = self.pointer(node["$ref"], current)
                return self.resolve(target, name, depth + 1)
            out = {k: self.resolve(v, current, depth + 1) for k, v in node.items()
                   if k not in ("example", "examples", "discriminator", "xml")}
            if out.pop("nullable", False):
                return {"anyOf": [out, {"type": "null"}]}
            return out
        if isinstance(node, list):
            return [self.resolve(v, current, depth + 1) for v in node]
        return node

    def request_schema(self, method: str, url: str) -> tuple[str, Any]:
        path = urlsplit(url).path
        prefix = next(p for p in PREFIXES if path.startswith(p))
        spec_name = PREFIXES[prefix]
        rest = path[len(prefix):]
        for template, operations in self.files[spec_name]["paths"].items():
            pattern = "^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"
            if re.match(pattern, rest) and method.lower() in operations:
                body = operations[method.lower()].get("requestBody")
                if body is None:
                    return template, None
                body = self.resolve(body, spec_name)
                return template, body["content"]["application/json"]["schema"]
        raise AssertionError(f"{method} {rest} is not in {spec_name}")


@functools.lru_cache(maxsize=1)
def load_specs() -> Specs:
    return Specs(SPEC_DIR)


CALLS: list[tuple[str, Callable[[YagnaClient], Any]]] = [
    ("subscribe_demand", lambda c: c.market.subscribe_demand(
        {"golem.node.debug.subnet": "public", "golem.srv.comp.expiration": 1746101400000},
        "(&(golem.runtime.name=vm))")),
    ("counter_proposal", lambda c: c.market.counter_proposal(
        "sub", "R-1", {"golem.com.payment.chosen-platform": "erc20-holesky-tglm"}, "()")),
    ("reject_proposal", lambda c: c.market.reject_proposal("sub", "R-1", "too dear")),
    ("reject_proposal_null", lambda c: c.market.reject_proposal("sub", "R-1")),
    ("create_agreement", lambda c: c.market.create_agreement(
        "R-2", datetime(2025, 5, 1, 13, tzinfo=timezone.utc))),
    ("terminate_agreement", lambda c: c.market.terminate_agreement(
        "ag", {"message": "done", "golem.requestor.code": "Success"})),
    ("cancel_agreement", lambda c: c.market.cancel_agreement("ag", {"message": "late"})),
    ("create_activity", lambda c: c.activity.create_activity("ag")),
    ("exec", lambda c: c.activity.exec("a1", [{"deploy": {}}, {"start": {}}])),
    ("create_allocation", lambda c: c.payment.create_allocation(
        Decimal("1.5"), payment_platform="erc20-holesky-tglm", address="0x1",
        timeout=datetime(2030, 1, 1, tzinfo=timezone.utc))),
    ("amend_allocation", lambda c: c.payment.amend_allocation("al", total_amount=Decimal(2))),
    ("accept_invoice", lambda c: c.payment.accept_invoice("i1", Decimal("0.5"), "al")),
    ("accept_debit_note", lambda c: c.payment.accept_debit_note("d1", Decimal("0.5"), "al")),
    ("reject_invoice", lambda c: c.payment.reject_invoice("i1", reason="INCORRECT_AMOUNT",
                                                          message="too much")),
]


def _reply_everything() -> None:
    allocation = {"allocationId": "al", "totalAmount": "2", "spentAmount": "0",
                  "remainingAmount": "2"}
    for base in (MARKET, ACTIVITY, PAYMENT):
        for method in ("POST", "PUT"):
            reply: Any = allocation if base == PAYMENT else "id-1"
            responses.add(method, re.compile(re.escape(base) + r"/.*"), json=reply)


@pytest.mark.parametrize("name, call", CALLS, ids=[n for n, _ in CALLS])
@responses.activate
def test_request_body_matches_the_spec(name: str, call: Callable[[YagnaClient], Any]) -> None:
    specs = load_specs()
    _reply_everything()
    try:
        call(make_client())
    except Exception:  # replies are generic: only the request matters here
        pass
    request = responses.calls[0].request
    template, schema = specs.request_schema(request.method or "", request.url)
    body = sent(0)
    exception = DAEMON_WINS.get((request.method or "", template, name))
    if exception is not None:
        _, daemon_schema = exception
        jsonschema.validate(body, daemon_schema)
        return
    assert schema is not None, f"{request.method} {template} has no request body in the spec"
    jsonschema.validate(body, schema)


def test_every_daemon_wins_case_really_differs_from_the_spec() -> None:
    """Keeps the exception list honest: each listed body is refused by the spec's schema."""
    specs = load_specs()
    for (method, _template, name), _ in DAEMON_WINS.items():
        call = dict(CALLS)[name]
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            for base in (MARKET, ACTIVITY, PAYMENT):
                mock.add(method, re.compile(re.escape(base) + r"/.*"),
                         json={"allocationId": "al", "totalAmount": "1", "spentAmount": "0",
                               "remainingAmount": "1"})
            try:
                call(make_client())
            except Exception:
                pass
            body = json.loads(mock.calls[0].request.body or b"null")
            url = mock.calls[0].request.url
        _, schema = specs.request_schema(method, url)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(body, schema)
