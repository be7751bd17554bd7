"""Injected faults, reproducible from the seed: HTTP errors and latency, provider misbehaviour."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest
from devnet_http import ACTIVITY, EXEC_SCRIPT, MARKET, PAYMENT, Client

from golemsync.devnet import Devnet, DevnetConfig

pytestmark = pytest.mark.e2e


def _statuses(net: Devnet, count: int) -> list[int]:
    with Client(net) as client:
        replies = [client.get("/me") for _ in range(count)]
    for reply in replies:
        if reply.status_code == 503:
            assert reply.json()["message"].startswith("Service error")
    return [r.status_code for r in replies]


def test_http_errors_are_reproducible_from_the_seed(make_devnet: Callable[..., Devnet]) -> None:
    first = _statuses(make_devnet(http_error_rate=0.3, seed=5), 40)
    again = _statuses(make_devnet(http_error_rate=0.3, seed=5), 40)
    other = _statuses(make_devnet(http_error_rate=0.3, seed=6), 40)
    assert first == again and first != other
    assert {200, 503} == set(first)


def test_version_is_never_faulted(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(http_error_rate=1.0)
    with Client(net) as client:
        assert client.get("/version/get").status_code == 200
        assert client.get("/me").status_code == 503


def test_http_latency_is_added(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(http_latency=0.05)
    with Client(net) as client:
        started = time.monotonic()
        for _ in range(10):
            assert client.get("/me").status_code == 200
    assert time.monotonic() - started >= 0.2  # mean 0.05 s each, seeded draws


def test_same_seed_same_network(make_devnet: Callable[..., Devnet]) -> None:
    assert DevnetConfig.default(4, 3) == DevnetConfig.default(4, 3)
    one, two = make_devnet(seed=3), make_devnet(seed=3)
    assert one.node_id == two.node_id
    with Client(one) as a, Client(two) as b:
        ids_a = sorted(p["issuerId"] for p in a.hired()[3])
        ids_b = sorted(p["issuerId"] for p in b.hired()[3])
    assert ids_a == ids_b and len(set(ids_a)) == 4


def test_default_providers_differ_in_price_and_speed() -> None:
    specs = DevnetConfig.default(4, 1).providers
    assert len({s.coeffs[0] for s in specs}) == 4 and len({s.slow_factor for s in specs}) > 1
    assert len({s.name for s in specs}) == 4


def test_refusing_provider_rejects_the_agreement(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(provider_faults={"refuse_agreement": True})
    with Client(net) as client:
        _, sub, demand, offers = client.hired()
        agreement_id = client.agreement(client.negotiate(sub, demand, offers[0]))
        client.post(f"{MARKET}/agreements/{agreement_id}/confirm")
        reply = client.post(f"{MARKET}/agreements/{agreement_id}/wait", params={"timeout": 10})
        assert reply.status_code == 410 and reply.json() == {"message": "Rejected"}
        events = client.get(f"{MARKET}/agreementEvents", params={"timeout": 0}).json()
        assert [e["eventType"] for e in events] == ["AgreementRejectedEvent"]


def test_provider_without_invoice(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(provider_faults={"no_invoice": True})
    with Client(net) as client:
        _, sub, demand, offers = client.hired()
        agreement_id = client.approved_agreement(sub, demand, offers[0])
        client.activity(agreement_id)
        client.post(f"{MARKET}/agreements/{agreement_id}/terminate", json={"message": "x"})
    net.stop()  # drains the providers' pending work
    [entry] = net.ledger()["agreements"]
    assert entry["state"] == "Terminated" and entry["invoice_id"] is None


def test_crashing_provider_terminates_the_agreement(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(provider_faults={"crash_rate": 1.0})
    with Client(net) as client:
        _, sub, demand, offers = client.hired()
        agreement_id = client.approved_agreement(sub, demand, offers[0])
        cursor = client.get(f"{MARKET}/agreementEvents").json()[-1]["eventDate"]
        activity_id = client.activity(agreement_id)
        client.exec(activity_id, EXEC_SCRIPT)
        events = client.get(f"{MARKET}/agreementEvents",
                            params={"timeout": 20, "afterTimestamp": cursor}).json()
        assert [e["eventType"] for e in events] == ["AgreementTerminatedEvent"]
        assert events[0]["terminator"] == "Provider"
        invoice = client.get(f"{PAYMENT}/invoiceEvents", params={"timeout": 10}).json()
        assert [e["eventType"] for e in invoice] == ["InvoiceReceivedEvent"]
        state = client.get(f"{ACTIVITY}/activity/{activity_id}/state").json()
        assert state["state"][0] == "Terminated"
    [entry] = net.ledger()["agreements"]
    assert entry["terminator"] == "Provider" and entry["invoice_amount"] is not None


def test_failing_provider_fails_commands(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(provider_faults={"fail_rate": 1.0})
    with Client(net) as client:
        _, sub, demand, offers = client.hired()
        activity_id = client.activity(client.approved_agreement(sub, demand, offers[0]))
        batch_id = client.exec(activity_id, EXEC_SCRIPT).json()
        results = client.batch_results(activity_id, batch_id)
    assert results[-1]["result"] == "Error"


def test_a_failing_handler_is_a_500_and_the_devnet_keeps_serving(
        make_devnet: Callable[..., Devnet]) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    net = make_devnet(exeunit_factory=broken)
    with Client(net) as client:
        _, sub, demand, offers = client.hired()
        agreement_id = client.approved_agreement(sub, demand, offers[0])
        reply = client.post(f"{ACTIVITY}/activity", json={"agreementId": agreement_id})
        assert reply.status_code == 500 and "boom" in reply.json()["message"]
        assert client.get("/me").status_code == 200
