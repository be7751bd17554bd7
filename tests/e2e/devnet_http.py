"""Plain-``requests`` helpers for driving a devnet in the e2e tests (no golemsync.rest)."""

from __future__ import annotations

import json
import time
from typing import Any, Optional

import requests

from golemsync.devnet import Devnet

MARKET = "/market-api/v1"
ACTIVITY = "/activity-api/v1"
PAYMENT = "/payment-api/v1"
PLATFORM = "erc20-holesky-tglm"
CHOSEN = "golem.com.payment.chosen-platform"
EXEC_SCRIPT = [{"deploy": {}}, {"start": {}},
               {"run": {"entry_point": "/bin/echo", "args": ["hello", "devnet"],
                        "capture": {"stdout": {"atEnd": {}}}}}]


class Client:
    """A requests.Session bound to one devnet, with the app key set."""

    def __init__(self, net: Devnet, app_key: Optional[str] = None) -> None:
        self.base = net.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {app_key or net.app_key}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.base + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, **kwargs)

    # -- flows -----------------------------------------------------------------------------

    def allocation(self, total: str = "10") -> str:
        reply = self.post(f"{PAYMENT}/allocations", json={"totalAmount": total})
        assert reply.status_code == 201, reply.text
        return str(reply.json()["allocationId"])

    def demand(self, allocation_id: str, extra_constraints: str = "") -> dict[str, Any]:
        decoration = self.get(f"{PAYMENT}/demandDecorations",
                              params={"allocationIds": allocation_id}).json()
        properties = {"golem.srv.comp.expiration": int(time.time() * 1000) + 900_000,
                      "golem.node.debug.subnet": "public",
                      "golem.srv.caps.multi-activity": True}
        properties.update({p["key"]: p["value"] for p in decoration["properties"]})
        parts = ["(golem.node.debug.subnet=public)", "(golem.runtime.name=vm)",
                 *decoration["constraints"], extra_constraints]
        return {"properties": properties, "constraints": "(&" + "\n\t".join(parts) + ")"}

    def subscribe(self, demand: dict[str, Any]) -> str:
        reply = self.post(f"{MARKET}/demands", json=demand)
        assert reply.status_code == 201, reply.text
        return str(reply.json())

    def offers(self, sub: str, timeout: float = 2.0) -> list[dict[str, Any]]:
        reply = self.get(f"{MARKET}/demands/{sub}/events",
                         params={"timeout": timeout, "maxEvents": 100})
        assert reply.status_code == 200, reply.text
        return list(reply.json())

    def counter(self, sub: str, proposal_id: str, demand: dict[str, Any],
                chosen: Optional[str] = PLATFORM) -> requests.Response:
        properties = dict(demand["properties"])
        if chosen is not None:
            properties[CHOSEN] = chosen
        body = {"properties": properties, "constraints": demand["constraints"]}
        return self.post(f"{MARKET}/demands/{sub}/proposals/{proposal_id}", json=body)

    def negotiate(self, sub: str, demand: dict[str, Any], offer: dict[str, Any]) -> str:
        """Counter ``offer`` and return the provider's Draft proposal id."""
        reply = self.counter(sub, offer["proposalId"], demand)
        assert reply.status_code == 200, reply.text
        events = self.offers(sub, timeout=5)
        drafts = [e["proposal"] for e in events if e["eventType"] == "ProposalEvent"
                  and e["proposal"].get("prevProposalId") == reply.json()]
        assert drafts, events
        return str(drafts[0]["proposalId"])

    def agreement(self, draft_id: str) -> str:
        reply = self.post(f"{MARKET}/agreements",
                          json={"proposalId": draft_id, "validTo": "2099-01-01T00:00:00Z"})
        assert reply.status_code == 200, reply.text
        return str(reply.json())

    def approved_agreement(self, sub: str, demand: dict[str, Any],
                           offer: dict[str, Any]) -> str:
        agreement_id = self.agreement(self.negotiate(sub, demand, offer))
        assert self.post(f"{MARKET}/agreements/{agreement_id}/confirm").status_code == 204
        reply = self.post(f"{MARKET}/agreements/{agreement_id}/wait", params={"timeout": 10})
        assert reply.status_code == 204, reply.text
        return agreement_id

    def activity(self, agreement_id: str) -> str:
        reply = self.post(f"{ACTIVITY}/activity", json={"agreementId": agreement_id})
        assert reply.status_code == 200, reply.text
        return str(reply.json()["activityId"])

    def exec(self, activity_id: str, commands: list[dict[str, Any]]) -> requests.Response:
        return self.post(f"{ACTIVITY}/activity/{activity_id}/exec",
                         json={"text": json.dumps(commands)})

    def batch_results(self, activity_id: str, batch_id: str,
                      deadline: float = 20.0) -> list[dict[str, Any]]:
        """Poll (server-side long-poll) until the batch finishes or fails."""
        end = time.monotonic() + deadline
        while True:
            reply = self.get(f"{ACTIVITY}/activity/{activity_id}/exec/{batch_id}",
                             params={"timeout": 2})
            assert reply.status_code == 200, reply.text
            items: list[dict[str, Any]] = reply.json()
            if items and (items[-1]["isBatchFinished"] or items[-1]["result"] == "Error"):
                return items
            assert time.monotonic() < end, items

    def hired(self) -> tuple[str, str, dict[str, Any], list[dict[str, Any]]]:
        """Allocation, subscription, demand and offers: the start of every flow."""
        allocation_id = self.allocation()
        demand = self.demand(allocation_id)
        sub = self.subscribe(demand)
        offers = [e["proposal"] for e in self.offers(sub)]
        return allocation_id, sub, demand, offers
