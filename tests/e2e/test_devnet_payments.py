"""Payment API: allocations, decorations, debit notes, invoices and their events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

import pytest
from devnet_http import ACTIVITY, MARKET, PAYMENT, Client

from golemsync import timestamps
from golemsync.devnet import Devnet

pytestmark = pytest.mark.e2e
ALL_EVENTS = "RECEIVED,ACCEPTED,REJECTED,SETTLED,CANCELLED,PAYMENT_EVENT,PAYMENT_OK"


@pytest.fixture
def client(devnet: Devnet) -> Any:
    with Client(devnet) as c:
        yield c


def _finished_agreement(client: Client) -> tuple[str, str, dict[str, Any]]:
    """Allocation id, agreement id and its invoice, after one short activity."""
    allocation_id, sub, demand, offers = client.hired()
    agreement_id = client.approved_agreement(sub, demand, offers[0])
    activity_id = client.activity(agreement_id)
    client.delete(f"{ACTIVITY}/activity/{activity_id}")
    client.post(f"{MARKET}/agreements/{agreement_id}/terminate", json={"message": "done"})
    events = client.get(f"{PAYMENT}/invoiceEvents", params={"timeout": 10}).json()
    invoice = client.get(f"{PAYMENT}/invoices/{events[-1]['invoiceId']}").json()
    return allocation_id, agreement_id, invoice


ECHOED = {"address", "deposit", "extendTimeout", "makeDeposit", "paymentPlatform", "timeout",
          "totalAmount"}  # the daemon's requestBody: the request as it parsed it


@pytest.mark.parametrize("body, status, instance, keys", [
    ({"totalAmount": "1", "timeout": "2001-01-01T00:00:00Z"}, 400, "timeout-passed",
     {"address", "paymentPlatform", "requestedTimeout"}),
    ({"totalAmount": "5000"}, 400, "insufficient-account-funds",
     {"address", "paymentPlatform", "requestedFunds", "availableFunds", "reservedFunds"}),
    ({"totalAmount": "1", "paymentPlatform": "erc20-polygon-glm"}, 500, "account-not-registered",
     {"address", "paymentPlatform"}),
])
def test_allocation_errors_are_problem_details(client: Client, body: dict[str, Any],
                                               status: int, instance: str,
                                               keys: set[str]) -> None:
    """As measured on the daemon 0.17.6 (tests/localnet/test_differential.py)."""
    reply = client.post(f"{PAYMENT}/allocations", json=body)
    assert reply.status_code == status
    assert reply.headers["Content-Type"] == "application/problem+json"
    problem = reply.json()
    assert problem["type"] == "/payment-api/v1/allocations/validation-error"
    assert problem["instance"].endswith(instance) and problem["detail"]
    assert set(problem) == {"type", "detail", "instance", "requestBody", *keys}
    assert set(problem["requestBody"]) == ECHOED


@pytest.mark.parametrize("platform, parse_error", [
    ("ERC20-HOLESKY-TGLM", "Validate network failed (2): Invalid network name: HOLESKY"),
    ("erc20-nowhere-tglm", "Validate network failed (2): Invalid network name: nowhere"),
    ("zksync-holesky-tglm", "Validate driver failed (2): Invalid driver name zksync"),
])
def test_a_platform_that_does_not_parse_is_a_bad_payment_platform(
        client: Client, platform: str, parse_error: str) -> None:
    reply = client.post(f"{PAYMENT}/allocations",
                        json={"totalAmount": "1", "paymentPlatform": platform})
    assert reply.status_code == 400
    assert reply.headers["Content-Type"] == "application/problem+json"
    problem = reply.json()
    assert problem["type"] == "/payment-api/v1/allocations/bad-payment-platform"
    assert problem["parseError"] == parse_error
    assert problem["requestedPaymentPlatform"] == platform
    assert set(problem) == {"type", "detail", "parseError", "requestBody",
                            "requestedPaymentPlatform"}


@pytest.mark.parametrize("body", [{"totalAmount": "abc"}, {"totalAmount": "1", "timeout": "x"},
                                  {"timeout": "2099-01-01T00:00:00Z"}])
def test_values_that_do_not_deserialize_are_a_plain_text_400(client: Client,
                                                            body: dict[str, Any]) -> None:
    reply = client.post(f"{PAYMENT}/allocations", json=body)
    assert reply.status_code == 400
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert reply.text.startswith("Json deserialize error: ")


def test_a_negative_allocation_is_accepted_like_the_daemon_does(client: Client) -> None:
    reply = client.post(f"{PAYMENT}/allocations", json={"totalAmount": "-1"})
    assert reply.status_code == 201 and reply.json()["remainingAmount"] == "-1"


def test_allocation_lifecycle(client: Client) -> None:
    object_platform = {"totalAmount": 2, "paymentPlatform": {"driver": "erc20"}}
    created = client.post(f"{PAYMENT}/allocations", json=object_platform)
    assert created.status_code == 201
    allocation = created.json()
    assert allocation["paymentPlatform"] == "erc20-holesky-tglm"
    assert allocation["totalAmount"] == "2" and allocation["remainingAmount"] == "2"
    path = f"{PAYMENT}/allocations/{allocation['allocationId']}"
    amended = client.call("PUT", path, json={"totalAmount": "3"}).json()
    assert amended["totalAmount"] == "3"
    assert [a["allocationId"] for a in client.get(f"{PAYMENT}/allocations").json()] == [
        allocation["allocationId"]]
    assert client.delete(path).json() is None
    gone = client.delete(path)
    assert gone.status_code == 410 and "already released" in gone.json()["message"]
    released = client.get(path)  # the daemon 0.17.6: a released allocation is not found
    assert released.status_code == 404 and released.json() == {"message": None}
    unknown = client.get(f"{PAYMENT}/allocations/00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 404 and unknown.json() == {"message": None}


def test_demand_decorations(client: Client, devnet: Devnet) -> None:
    first, second = client.allocation(), client.allocation()
    one = client.get(f"{PAYMENT}/demandDecorations", params={"allocationIds": first}).json()
    key = "golem.com.payment.platform.erc20-holesky-tglm.address"
    assert one == {"properties": [{"key": key, "value": devnet.node_id},
                                  {"key": "golem.com.payment.protocol.version", "value": "3"}],
                   "constraints": [f"({key}=*)", "(golem.com.payment.protocol.version>1)"]}
    # a literal comma: the daemon refuses %2C (see test_devnet_fidelity)
    both = client.get(f"{PAYMENT}/demandDecorations?allocationIds={first},{second}")
    assert both.status_code == 200
    missing = client.get(f"{PAYMENT}/demandDecorations?allocationIds={first},nope")
    assert missing.status_code == 404
    assert client.get(f"{PAYMENT}/demandDecorations").status_code == 400


def test_invoice_accept_rules(client: Client, devnet: Devnet) -> None:
    allocation_id, agreement_id, invoice = _finished_agreement(client)
    path = f"{PAYMENT}/invoices/{invoice['invoiceId']}/accept"
    wrong = client.post(path, json={"totalAmountAccepted": str(Decimal(invoice["amount"]) + 1),
                                    "allocationId": allocation_id})
    assert wrong.status_code == 400 and wrong.json() == {"message": "Invalid amount accepted"}
    bad_allocation = client.post(path, json={"totalAmountAccepted": invoice["amount"],
                                             "allocationId": "nope"})
    assert bad_allocation.status_code == 400
    body = {"totalAmountAccepted": invoice["amount"], "allocationId": allocation_id}
    assert client.post(path, json=body).status_code == 200
    assert client.post(path, json=body).status_code == 200  # idempotent
    assert client.get(f"{PAYMENT}/invoices/{invoice['invoiceId']}").json()["status"] == \
        "ACCEPTED"
    rejected = client.post(f"{PAYMENT}/invoices/{invoice['invoiceId']}/reject",
                           json={"rejectionReason": "BAD_SERVICE", "totalAmountAccepted": "0"})
    assert rejected.status_code == 400
    unknown = client.post(f"{PAYMENT}/invoices/nope/accept", json=body)
    assert unknown.status_code == 404 and unknown.json() == {"message": None}
    [entry] = devnet.ledger()["agreements"]
    assert entry["agreement_id"] == agreement_id and entry["invoice_status"] == "ACCEPTED"


def test_overspending_an_allocation_is_refused(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=[_pricey()])
    with Client(net) as client:
        allocation_id, sub, demand, offers = client.hired()
        small = client.allocation("0.5")
        agreement_id = client.approved_agreement(sub, demand, offers[0])
        client.activity(agreement_id)
        client.post(f"{MARKET}/agreements/{agreement_id}/terminate", json={"message": "x"})
        event = client.get(f"{PAYMENT}/invoiceEvents", params={"timeout": 10}).json()[0]
        invoice = client.get(f"{PAYMENT}/invoices/{event['invoiceId']}").json()
        assert invoice["amount"] == "1"  # one activity's start price; usage is free
        reply = client.post(f"{PAYMENT}/invoices/{invoice['invoiceId']}/accept",
                            json={"totalAmountAccepted": "1", "allocationId": small})
        assert reply.status_code == 400
        assert reply.json() == {"message": "Not enough funds. Allocated: 0.5 Needed: 1"}


def _pricey() -> Any:
    from golemsync.devnet import ProviderSpec

    return ProviderSpec(name="pricey-node", price_cpu_sec=0.0, price_duration_sec=0.0,
                        price_start=1.0)


def test_reject_invoice_then_accept(client: Client) -> None:
    allocation_id, _, invoice = _finished_agreement(client)
    reject = {"rejectionReason": "INCORRECT_AMOUNT", "totalAmountAccepted": "0",
              "message": "too much"}
    path = f"{PAYMENT}/invoices/{invoice['invoiceId']}"
    assert client.post(f"{path}/reject", json=reject).json() is None
    assert client.post(f"{path}/reject", json=reject).status_code == 200
    events = client.get(f"{PAYMENT}/invoiceEvents", params={"timeout": 0},
                        headers={"X-Requestor-Events": "REJECTED"}).json()
    assert events[0]["eventType"] == "InvoiceRejectedEvent"
    assert events[0]["rejection"]["rejectionReason"] == "INCORRECT_AMOUNT"
    body = {"totalAmountAccepted": invoice["amount"], "allocationId": allocation_id}
    assert client.post(f"{path}/accept", json=body).status_code == 200


def test_debit_notes_are_cumulative_and_accepted_by_difference(
        make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(debit_note_interval=0.1)
    with Client(net) as client:
        allocation_id, sub, demand, offers = client.hired()
        activity_id = client.activity(client.approved_agreement(sub, demand, offers[0]))
        notes = _debit_notes(client, 2)
        assert notes[1]["previousDebitNoteId"] == notes[0]["debitNoteId"]
        assert all(n["activityId"] == activity_id for n in notes)
        assert Decimal(notes[1]["totalAmountDue"]) >= Decimal(notes[0]["totalAmountDue"])
        for note in notes:
            reply = client.post(f"{PAYMENT}/debitNotes/{note['debitNoteId']}/accept",
                                json={"totalAmountAccepted": note["totalAmountDue"],
                                      "allocationId": allocation_id})
            assert reply.status_code == 200, reply.text
        spent = client.get(f"{PAYMENT}/allocations/{allocation_id}").json()["spentAmount"]
        assert Decimal(spent) == Decimal(notes[1]["totalAmountDue"])
        reject = client.post(f"{PAYMENT}/debitNotes/{notes[0]['debitNoteId']}/reject",
                             json={"rejectionReason": "BAD_SERVICE", "totalAmountAccepted": "0"})
        assert reject.status_code == 501


@pytest.mark.parametrize("asked, followed", [(1.0, True), (0.01, False)])
def test_providers_follow_the_debit_note_interval_the_requestor_asks_for(
        make_devnet: Callable[..., Devnet], asked: float, followed: bool) -> None:
    """A longer interval than the provider's own (as golem-js proposes) is accepted, a shorter
    one is not; a payment timeout within bounds makes debit notes payable (a due date)."""
    net = make_devnet(debit_note_interval=0.2)
    with Client(net) as client:
        _, sub, demand, offers = client.hired()
        demand["properties"].update({
            "golem.com.scheme.payu.debit-note.interval-sec?": asked,
            "golem.com.scheme.payu.payment-timeout-sec?": 18000})
        client.activity(client.approved_agreement(sub, demand, offers[0]))
        first, second = _debit_notes(client, 2)
    gap = (timestamps.parse(second["timestamp"]) - timestamps.parse(first["timestamp"]))
    assert (gap.total_seconds() >= 0.95) is followed
    due = timestamps.parse(first["paymentDueDate"]) - timestamps.parse(first["timestamp"])
    assert 17990 <= due.total_seconds() <= 18010


def test_listings_keep_documents_after_a_timestamp_and_at_most_max_items(
        make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(debit_note_interval=0.1)
    with Client(net) as client:
        _, sub, demand, offers = client.hired()
        client.activity(client.approved_agreement(sub, demand, offers[0]))
        first, second, third = _debit_notes(client, 3)
        listed = client.get(f"{PAYMENT}/debitNotes").json()
        assert [n["debitNoteId"] for n in listed][:3] == [
            n["debitNoteId"] for n in (first, second, third)]
        after = client.get(f"{PAYMENT}/debitNotes",
                           params={"afterTimestamp": first["timestamp"]}).json()
        ids = [n["debitNoteId"] for n in after]
        assert first["debitNoteId"] not in ids  # strictly after its own timestamp
        assert ids[:2] == [second["debitNoteId"], third["debitNoteId"]]
        capped = client.get(f"{PAYMENT}/debitNotes", params={
            "afterTimestamp": first["timestamp"], "maxItems": 1}).json()
        assert [n["debitNoteId"] for n in capped] == [second["debitNoteId"]]
        assert client.get(f"{PAYMENT}/invoices",
                          params={"afterTimestamp": "not a time"}).status_code == 400


def _debit_notes(client: Client, count: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    while len(seen) < count:
        params = {"timeout": 5, **({"afterTimestamp": cursor} if cursor else {})}
        events = client.get(f"{PAYMENT}/debitNoteEvents", params=params).json()
        assert events, "no debit note within the timeout"
        cursor = events[-1]["eventDate"]
        seen += [client.get(f"{PAYMENT}/debitNotes/{e['debitNoteId']}").json() for e in events]
    return seen[:count]


def test_payment_events_are_persistent_and_filtered(client: Client) -> None:
    allocation_id, _, invoice = _finished_agreement(client)
    received = client.get(f"{PAYMENT}/invoiceEvents", params={"timeout": 0}).json()
    assert received == client.get(f"{PAYMENT}/invoiceEvents", params={"timeout": 0}).json()
    cursor = received[-1]["eventDate"]
    client.post(f"{PAYMENT}/invoices/{invoice['invoiceId']}/accept",
                json={"totalAmountAccepted": invoice["amount"], "allocationId": allocation_id})
    default = client.get(f"{PAYMENT}/invoiceEvents",
                         params={"timeout": 0, "afterTimestamp": cursor}).json()
    assert default == []  # ACCEPTED is hidden from the requestor by default
    widened = client.get(f"{PAYMENT}/invoiceEvents",
                         params={"timeout": 0, "afterTimestamp": cursor},
                         headers={"X-Requestor-Events": ALL_EVENTS}).json()
    assert [e["eventType"] for e in widened] == ["InvoiceAcceptedEvent"]
    everything = client.get(f"{PAYMENT}/invoiceEvents", params={"timeout": 0},
                            headers={"X-Requestor-Events": ALL_EVENTS}).json()
    assert [e["eventType"] for e in everything] == ["InvoiceReceivedEvent",
                                                   "InvoiceAcceptedEvent"]


def test_event_poll_wakes_when_an_event_arrives(client: Client) -> None:
    allocation_id, sub, demand, offers = client.hired()
    agreement_id = client.approved_agreement(sub, demand, offers[0])
    client.post(f"{MARKET}/agreements/{agreement_id}/terminate", json={"message": "x"})
    events = client.get(f"{PAYMENT}/invoiceEvents", params={"timeout": 30}, timeout=40)
    assert events.elapsed.total_seconds() < 10 and len(events.json()) == 1


def test_amend_errors_follow_the_daemon(client: Client) -> None:
    """As measured on the daemon 0.17.6: a past timeout is a plain message; too large a total
    asks for the difference and echoes only what was sent; nothing changes on an error."""
    allocation = client.post(f"{PAYMENT}/allocations", json={"totalAmount": "1"}).json()
    path = f"{PAYMENT}/allocations/{allocation['allocationId']}"
    past = client.call("PUT", path, json={"totalAmount": "2", "timeout": "2001-01-01T00:00:00Z"})
    assert past.status_code == 400
    assert past.json() == {"message": "New allocation timeout is in the past"}
    too_much = client.call("PUT", path, json={"totalAmount": "100000"})
    assert too_much.status_code == 400
    problem = too_much.json()
    assert problem["instance"].endswith("/insufficient-account-funds")
    assert problem["requestBody"] == {"totalAmount": "100000"}
    assert problem["requestedFunds"] == "99999"
    assert client.get(path).json()["totalAmount"] == "1"
