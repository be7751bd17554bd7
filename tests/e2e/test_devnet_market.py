"""Market and agreement status codes: bad input and illegal transitions answer as the daemon."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from devnet_http import MARKET, Client

from golemsync.devnet import Devnet

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(devnet: Devnet) -> Any:
    with Client(devnet) as c:
        yield c


def test_malformed_constraints_subscribe_but_never_match(client: Client) -> None:
    allocation_id = client.allocation()
    demand = client.demand(allocation_id)
    demand["constraints"] = "(&(golem.runtime.name=vm)"
    sub = client.subscribe(demand)
    assert client.offers(sub, timeout=0) == []


def test_constraints_are_evaluated_both_ways(client: Client) -> None:
    allocation_id = client.allocation()
    demand = client.demand(allocation_id, "(golem.inf.mem.gib>=12)")
    big = [e["proposal"] for e in client.offers(client.subscribe(demand), timeout=0)]
    assert big and all(p["properties"]["golem.inf.mem.gib"] >= 12 for p in big)
    demand = client.demand(allocation_id)
    del demand["properties"]["golem.srv.comp.expiration"]  # offers require it
    assert client.offers(client.subscribe(demand), timeout=0) == []


def test_collect_validates_max_events_and_consumes_events(client: Client) -> None:
    _, sub, demand, offers = client.hired()
    assert len(offers) == 4
    assert client.offers(sub, timeout=0) == []  # consumed
    reply = client.get(f"{MARKET}/demands/{sub}/events", params={"maxEvents": 0})
    assert reply.status_code == 400
    assert reply.json() == {"message": "Invalid maxEvents '0', should be between 1 and 100."}
    assert client.get(f"{MARKET}/demands/{sub}/events",
                      params={"maxEvents": 101}).status_code == 400


def test_max_events_limits_a_page(client: Client) -> None:
    sub = client.subscribe(client.demand(client.allocation()))
    page = client.get(f"{MARKET}/demands/{sub}/events", params={"maxEvents": 3}).json()
    assert len(page) == 3 and len(client.offers(sub, timeout=0)) == 1


def test_unsubscribe_ends_waiting_collect_with_404(client: Client, devnet: Devnet) -> None:
    allocation_id = client.allocation()
    demand = client.demand(allocation_id, "(golem.inf.mem.gib>=1000)")
    sub = client.subscribe(demand)
    replies: list[int] = []
    started = time.monotonic()

    def poll() -> None:
        with Client(devnet) as other:
            replies.append(other.get(f"{MARKET}/demands/{sub}/events",
                                     params={"timeout": 20}).status_code)

    waiter = threading.Thread(target=poll, name="test-collect")
    waiter.start()
    assert client.delete(f"{MARKET}/demands/{sub}").status_code == 204
    waiter.join(20)
    assert replies == [404] and time.monotonic() - started < 15
    again = client.delete(f"{MARKET}/demands/{sub}")
    assert again.status_code == 404 and sub in again.json()["message"]
    assert client.get(f"{MARKET}/demands/{sub}/events").status_code == 404


def test_subscription_expires(make_devnet: Any) -> None:
    net = make_devnet(subscription_ttl=0.3)
    with Client(net) as client:
        sub = client.subscribe(client.demand(client.allocation(), "(golem.inf.mem.gib>=1000)"))
        reply = client.get(f"{MARKET}/demands/{sub}/events", params={"timeout": 5})
    assert reply.status_code == 404 and "expired" in reply.json()["message"]


def test_negotiation_rules(client: Client) -> None:
    _, sub, demand, offers = client.hired()
    initial = offers[0]["proposalId"]
    reply = client.post(f"{MARKET}/agreements",
                        json={"proposalId": initial, "validTo": "2099-01-01T00:00:00Z"})
    assert reply.status_code == 400 and "counter Proposal" in reply.json()["message"]
    mine = client.counter(sub, initial, demand)
    assert mine.status_code == 200 and mine.json().startswith("R-")
    assert client.counter(sub, initial, demand).status_code == 410
    assert client.counter(sub, mine.json(), demand).status_code == 400  # own proposal
    assert client.counter(sub, "R-" + "0" * 64, demand).status_code == 404
    draft = [e["proposal"] for e in client.offers(sub)][0]
    assert draft["state"] == "Draft" and draft["prevProposalId"] == mine.json()
    fetched = client.get(f"{MARKET}/demands/{sub}/proposals/{draft['proposalId']}").json()
    assert fetched == draft
    agreement_id = client.agreement(draft["proposalId"])
    assert len(agreement_id) == 64
    again = client.post(f"{MARKET}/agreements",
                        json={"proposalId": draft["proposalId"], "validTo": "2099-01-01T00:00Z"})
    assert again.status_code == 409


def test_counter_without_chosen_platform_is_rejected(client: Client) -> None:
    _, sub, demand, offers = client.hired()
    mine = client.counter(sub, offers[0]["proposalId"], demand, chosen=None).json()
    events = client.offers(sub)
    assert [e["eventType"] for e in events] == ["ProposalRejectedEvent"]
    assert events[0]["proposalId"] == mine and "message" in events[0]["reason"]
    other = client.counter(sub, offers[1]["proposalId"], demand, chosen="erc20-polygon-glm")
    assert other.status_code == 200
    assert client.offers(sub)[0]["eventType"] == "ProposalRejectedEvent"


def test_reject_proposal(client: Client) -> None:
    _, sub, demand, offers = client.hired()
    pid = offers[0]["proposalId"]
    reply = client.post(f"{MARKET}/demands/{sub}/proposals/{pid}/reject",
                        json={"message": "Score too low"})
    assert reply.status_code == 204
    assert client.get(f"{MARKET}/demands/{sub}/proposals/{pid}").json()["state"] == "Rejected"
    assert client.counter(sub, pid, demand).status_code == 410


def test_agreement_state_transitions(client: Client) -> None:
    _, sub, demand, offers = client.hired()
    agreement_id = client.agreement(client.negotiate(sub, demand, offers[0]))
    path = f"{MARKET}/agreements/{agreement_id}"
    assert client.post(f"{path}/wait", params={"timeout": 0}).status_code == 400
    assert client.post(f"{path}/terminate", json={"message": "x"}).status_code == 409
    assert client.get(f"{path}/terminate/reason").status_code == 400
    assert client.post(f"{path}/confirm").status_code == 204
    assert client.post(f"{path}/confirm").status_code == 410
    assert client.post(f"{path}/wait", params={"timeout": 10}).status_code == 204
    assert client.post(f"{path}/cancel", json=None).status_code == 410
    assert client.post(f"{path}/terminate", json={"message": "bye"}).status_code == 200
    second = client.post(f"{path}/terminate", json={"message": "bye"})
    assert second.status_code == 410 and "Terminated to Terminated" in second.json()["message"]
    assert client.post(f"{path}/wait", params={"timeout": 1}).status_code == 400
    reason = client.get(f"{path}/terminate/reason").json()
    assert reason["terminator"] == "Requestor" and reason["reason"] == {"message": "bye"}
    assert client.get(f"{MARKET}/agreements/{'0' * 64}").status_code == 404
    assert client.post(f"{MARKET}/agreements/{'0' * 64}/wait").status_code == 404


def test_cancel_then_wait_is_gone(client: Client) -> None:
    _, sub, demand, offers = client.hired()
    agreement_id = client.agreement(client.negotiate(sub, demand, offers[0]))
    path = f"{MARKET}/agreements/{agreement_id}"
    assert client.post(f"{path}/cancel", json={"message": "changed my mind"}).status_code == 200
    reply = client.post(f"{path}/wait", params={"timeout": 1})
    assert reply.status_code == 410 and reply.json() == {"message": "Cancelled"}


def test_expired_agreement(client: Client) -> None:
    _, sub, demand, offers = client.hired()
    draft = client.negotiate(sub, demand, offers[0])
    reply = client.post(f"{MARKET}/agreements",
                        json={"proposalId": draft, "validTo": "2001-01-01T00:00:00Z"})
    path = f"{MARKET}/agreements/{reply.json()}"
    assert client.get(path).json()["state"] == "Expired"
    assert client.post(f"{path}/wait").status_code == 410


def test_agreement_events_follow_after_timestamp(client: Client) -> None:
    _, sub, demand, offers = client.hired()
    first = client.approved_agreement(sub, demand, offers[0])
    events = client.get(f"{MARKET}/agreementEvents", params={"timeout": 5}).json()
    assert [(e["eventType"], e["agreementId"]) for e in events] == [
        ("AgreementApprovedEvent", first)]
    cursor = events[-1]["eventDate"]
    assert client.get(f"{MARKET}/agreementEvents",
                      params={"timeout": 0, "afterTimestamp": cursor}).json() == []
    client.post(f"{MARKET}/agreements/{first}/terminate", json={"message": "done"})
    later = client.get(f"{MARKET}/agreementEvents",
                       params={"timeout": 5, "afterTimestamp": cursor}).json()
    assert [e["eventType"] for e in later] == ["AgreementTerminatedEvent"]
    assert later[0]["terminator"] == "Requestor"
    assert client.get(f"{MARKET}/agreementEvents",
                      params={"maxEvents": 0}).status_code == 400


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"properties": {}}'])
def test_malformed_demand_bodies_are_400(client: Client, body: bytes) -> None:
    reply = client.post(f"{MARKET}/demands", data=body,
                        headers={"Content-Type": "application/json"})
    assert reply.status_code == 400 and "message" in reply.json()


def test_nested_demand_properties_are_flattened(client: Client) -> None:
    demand = client.demand(client.allocation())
    demand["properties"]["golem"] = {"node": {"debug": {"subnet": "public"}},
                                     "srv": {"comp": {"expiration": 99999999999999}}}
    del demand["properties"]["golem.srv.comp.expiration"]
    sub = client.subscribe(demand)
    assert len(client.offers(sub, timeout=0)) == 4
    listed = client.get(f"{MARKET}/demands").json()
    assert listed[0]["properties"]["golem.srv.comp.expiration"] == 99999999999999


def test_wait_times_out_while_the_provider_deliberates(make_devnet: Any) -> None:
    net = make_devnet(provider_faults={"approval_delay": 60.0})
    with Client(net) as client:
        _, sub, demand, offers = client.hired()
        agreement_id = client.agreement(client.negotiate(sub, demand, offers[0]))
        path = f"{MARKET}/agreements/{agreement_id}"
        assert client.post(f"{path}/confirm").status_code == 204
        assert client.get(path).json()["state"] == "Pending"
        reply = client.post(f"{path}/wait", params={"timeout": 0.2})
        assert reply.status_code == 408 and agreement_id in reply.json()["message"]
        assert client.post(f"{path}/cancel", json=None).status_code == 200


def test_app_session_filters_agreements_and_events(client: Client) -> None:
    _, sub, demand, offers = client.hired()
    tagged = client.agreement(client.negotiate(sub, demand, offers[0]))
    client.post(f"{MARKET}/agreements/{tagged}/confirm", params={"appSessionId": "s1"})
    client.post(f"{MARKET}/agreements/{tagged}/wait", params={"timeout": 10})
    other = client.approved_agreement(sub, demand, offers[1])
    events = client.get(f"{MARKET}/agreementEvents",
                        params={"timeout": 5, "appSessionId": "s1"}).json()
    assert [e["agreementId"] for e in events] == [tagged]
    assert client.get(f"{MARKET}/agreements/{tagged}").json()["appSessionId"] == "s1"
    listed = client.get(f"{MARKET}/agreements", params={"appSessionId": "s1"}).json()
    assert [a["id"] for a in listed] == [tagged] and listed[0]["role"] == "Requestor"
    everything = {a["id"] for a in client.get(f"{MARKET}/agreements").json()}
    assert everything == {tagged, other}
