"""The whole requestor flow against the devnet over real HTTP, plus auth and identity."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Callable

import pytest
import requests
from devnet_http import ACTIVITY, EXEC_SCRIPT, MARKET, PAYMENT, Client

from golemsync.devnet import Devnet

pytestmark = pytest.mark.e2e


def test_full_requestor_flow(devnet: Devnet) -> None:
    with Client(devnet) as client:
        me = client.get("/me").json()
        assert me["identity"] == devnet.node_id and me["role"] == "manager"
        allocation_id, sub, demand, offers = client.hired()
        assert len(offers) == 4 and all(o["state"] == "Initial" for o in offers)
        agreement_id = client.approved_agreement(sub, demand, offers[0])
        agreement = client.get(f"{MARKET}/agreements/{agreement_id}").json()
        assert agreement["state"] == "Approved"
        assert agreement["offer"]["providerId"] == offers[0]["issuerId"]
        activity_id = client.activity(agreement_id)
        batch = client.exec(activity_id, EXEC_SCRIPT)
        assert batch.status_code == 200, batch.text
        results = client.batch_results(activity_id, batch.json())
        assert [r["result"] for r in results] == ["Ok", "Ok", "Ok"]
        assert results[-1]["stdout"] == "hello devnet\n" and results[-1]["isBatchFinished"]
        state = client.get(f"{ACTIVITY}/activity/{activity_id}/state").json()
        assert state["state"][0] == "Ready"
        assert client.delete(f"{ACTIVITY}/activity/{activity_id}").json() is None
        reply = client.post(f"{MARKET}/agreements/{agreement_id}/terminate",
                            json={"message": "done", "golem.requestor.code": "Success"})
        assert reply.status_code == 200 and reply.content == b""
        invoice = _invoice_of(client, agreement_id)
        assert invoice["activityIds"] == [activity_id] and Decimal(invoice["amount"]) >= 0
        accept = {"totalAmountAccepted": invoice["amount"], "allocationId": allocation_id}
        reply = client.post(f"{PAYMENT}/invoices/{invoice['invoiceId']}/accept", json=accept)
        assert reply.status_code == 200 and reply.json() is None
        allocation = client.get(f"{PAYMENT}/allocations/{allocation_id}").json()
        assert Decimal(allocation["spentAmount"]) == Decimal(invoice["amount"])
        assert client.delete(f"{PAYMENT}/allocations/{allocation_id}").json() is None
        assert client.delete(f"{MARKET}/demands/{sub}").status_code == 204
    entry = devnet.ledger()["agreements"][0]
    assert entry["state"] == "Terminated" and entry["invoice_status"] == "ACCEPTED"
    assert entry["accepted_total"] == Decimal(invoice["amount"])
    assert devnet.ledger()["allocations"][0]["released"] is True


def _invoice_of(client: Client, agreement_id: str) -> dict[str, object]:
    events = client.get(f"{PAYMENT}/invoiceEvents", params={"timeout": 10}).json()
    assert [e["eventType"] for e in events] == ["InvoiceReceivedEvent"]
    invoice: dict[str, object] = client.get(
        f"{PAYMENT}/invoices/{events[0]['invoiceId']}").json()
    assert invoice["agreementId"] == agreement_id and invoice["status"] == "RECEIVED"
    return invoice


def test_results_stream_as_server_sent_events(devnet: Devnet) -> None:
    # Events sent before the stream opens are lost (as on yagna): the sleep keeps the batch
    # running long enough for the stream to connect.
    script = [*EXEC_SCRIPT[:2], {"run": {"entry_point": "/bin/sleep", "args": ["0.5"]}},
              EXEC_SCRIPT[2]]
    with Client(devnet) as client:
        _, sub, demand, offers = client.hired()
        activity_id = client.activity(client.approved_agreement(sub, demand, offers[0]))
        batch_id = client.exec(activity_id, script).json()
        reply = client.get(f"{ACTIVITY}/activity/{activity_id}/exec/{batch_id}",
                           headers={"Accept": "text/event-stream"}, stream=True)
        assert reply.headers["Content-Type"].startswith("text/event-stream")
        events = []
        for line in reply.iter_lines(chunk_size=1, decode_unicode=True):
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if "finished" in events[-1]["kind"] and events[-1]["index"] == 3:
                    break
        reply.close()
    assert all(e["batch_id"] == batch_id for e in events)
    assert events[-1]["kind"]["finished"]["return_code"] == 0


def test_sse_sends_ping_comments_while_idle(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(sse_ping_interval=0.2)
    with Client(net) as client:
        _, sub, demand, offers = client.hired()
        activity_id = client.activity(client.approved_agreement(sub, demand, offers[0]))
        batch_id = client.exec(activity_id, [{"deploy": {}}]).json()
        client.batch_results(activity_id, batch_id)
        reply = client.get(f"{ACTIVITY}/activity/{activity_id}/exec/{batch_id}",
                           headers={"Accept": "text/event-stream"}, stream=True)
        for line in reply.iter_lines(chunk_size=1, decode_unicode=True):
            if line == ":ping":
                break
        reply.close()


@pytest.mark.parametrize("headers, params, body", [
    ({}, {}, "Missing application key"),
    ({"Authorization": "Bearer nope"}, {}, "Invalid application key"),
    ({}, {"authToken": "nope"}, "Invalid application key"),
])
def test_auth_failures_are_plain_text_401(devnet: Devnet, headers: dict[str, str],
                                          params: dict[str, str], body: str) -> None:
    reply = requests.get(f"{devnet.url}/me", headers=headers, params=params, timeout=10)
    assert reply.status_code == 401 and reply.text == body
    assert reply.headers["Content-Type"].startswith("text/plain")


def test_auth_token_query_parameter_and_open_version(devnet: Devnet) -> None:
    reply = requests.get(f"{devnet.url}/me", params={"authToken": devnet.app_key}, timeout=10)
    assert reply.status_code == 200
    version = requests.get(f"{devnet.url}/version/get", timeout=10).json()
    assert "golemsync-devnet" in version["current"]["name"] and version["pending"] is None


def test_unknown_route_is_an_empty_404(devnet: Devnet) -> None:
    with Client(devnet) as client:
        reply = client.get("/market-api/v1/nothing-here")
    assert reply.status_code == 404 and reply.content == b""


def test_env_and_requestor_accounts(devnet: Devnet) -> None:
    assert devnet.env == {"YAGNA_API_URL": devnet.url, "YAGNA_APPKEY": devnet.app_key}
    with Client(devnet) as client:
        accounts = client.get(f"{PAYMENT}/requestorAccounts").json()
    assert accounts == [{"platform": "erc20-holesky-tglm", "address": devnet.node_id,
                         "driver": "erc20", "network": "holesky", "token": "tGLM",
                         "send": True, "receive": False}]


def test_chunked_request_bodies_are_read(devnet: Devnet) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"totalAmount":'
        yield b' "1"}'

    with Client(devnet) as client:
        reply = client.post(f"{PAYMENT}/allocations", data=chunks(),
                            headers={"Content-Type": "application/json"})
    assert reply.status_code == 201 and reply.json()["totalAmount"] == "1"
