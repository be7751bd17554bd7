"""Where the daemon 0.17.6 was measured to answer differently from the protocol notes, the
devnet answers like the daemon (``../shared/LOCALNET.md`` §6), and the market scan."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from devnet_http import Client

from golemsync.config import Config
from golemsync.devnet import Devnet
from golemsync.rest import YagnaClient

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(devnet: Devnet) -> Iterator[Client]:
    with Client(devnet) as c:
        yield c


def test_a_scan_lists_every_offer_that_meets_its_constraints_once(devnet: Devnet) -> None:
    with YagnaClient(Config.load(app_key=devnet.app_key, api_url=devnet.url)) as yagna:
        scan = yagna.market.begin_scan("(golem.inf.mem.gib>=8)")
        offers = yagna.market.collect_scan(scan)
        assert offers and all(o.properties["golem.inf.mem.gib"] >= 8 for o in offers)
        assert len({o.provider_id for o in offers}) == len(offers)
        assert yagna.market.collect_scan(scan, timeout=0) == []  # each offer once per scan
        everything = yagna.market.begin_scan()
        assert len(yagna.market.collect_scan(everything)) == 4 > len(offers)
        yagna.market.end_scan(scan)
        yagna.market.end_scan(everything)


def test_scan_errors(client: Client) -> None:
    assert client.post("/market-api/v1/scan", json={"type": "neither"}).status_code == 400
    assert client.get("/market-api/v1/scan/nope/events").status_code == 404
    assert client.get("/market-api/v1/offers").json() == []


def test_events_of_a_malformed_subscription_id_are_a_text_plain_400(client: Client) -> None:
    reply = client.get("/market-api/v1/demands/not-an-id/events")
    assert reply.status_code == 400
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert "Path deserialize error" in reply.json()["message"]
    well_formed = "ab" * 16 + "-" + "cd" * 32
    assert client.get(f"/market-api/v1/demands/{well_formed}/events").status_code == 404


def test_rejecting_an_unknown_proposal_is_a_500(client: Client) -> None:
    sub = client.post("/market-api/v1/demands", json={"properties": {}, "constraints": ""}).json()
    reply = client.post(f"/market-api/v1/demands/{sub}/proposals/R-{'00' * 32}/reject",
                        json=None)
    assert reply.status_code == 500


def test_allocation_replies_follow_the_daemon(client: Client) -> None:
    created = client.post("/payment-api/v1/allocations", json={"totalAmount": "1"}).json()
    assert created["timeout"] > "2035"  # no timeout given: now + 10 years
    bad = client.post("/payment-api/v1/allocations",
                      json={"totalAmount": "1", "timeout": "2001-01-01T00:00:00Z"})
    assert bad.status_code == 400
    problem = bad.json()
    assert problem["requestedTimeout"] == "2001-01-01T00:00:00+00:00"  # as the daemon writes it
    assert problem["instance"].endswith("/timeout-passed")
    assert client.get("/payment-api/v1/payments/status").json() == []


def test_decorations_want_a_literal_comma(client: Client) -> None:
    first = client.post("/payment-api/v1/allocations", json={"totalAmount": "1"}).json()
    second = client.post("/payment-api/v1/allocations", json={"totalAmount": "1"}).json()
    ids = f"{first['allocationId']},{second['allocationId']}"
    both = client.get(f"/payment-api/v1/demandDecorations?allocationIds={ids}").json()
    key = "golem.com.payment.platform.erc20-holesky-tglm.address"
    # the daemon lists each allocation's address, the same platform twice included
    assert [p["key"] for p in both["properties"]] == [
        key, key, "golem.com.payment.protocol.version"]
    assert both["constraints"][0] == f"(|\n  ({key}=*)\n  ({key}=*)\n)"
    encoded = ids.replace(",", "%2C")
    refused = client.get(f"/payment-api/v1/demandDecorations?allocationIds={encoded}")
    assert refused.status_code == 400 and "borrowed string" in refused.text


def test_offers_advertise_the_vpn_the_devnet_serves(devnet: Devnet, client: Client) -> None:
    with YagnaClient(Config.load(app_key=devnet.app_key, api_url=devnet.url)) as yagna:
        offers = yagna.market.collect_scan(yagna.market.begin_scan())
    assert offers and all("vpn" in o.properties["golem.runtime.capabilities"]
                          for o in offers)
    listed = client.get("/net-api/v1/net")
    assert listed.status_code == 200 and isinstance(listed.json(), list)  # test_devnet_vpn


def test_a_scan_streams_its_offers_as_server_sent_events(client: Client, devnet: Devnet) -> None:
    """As the daemon does with ``Accept: text/event-stream`` (how golem-js 3.6 reads a scan):
    one ``event: offer`` per matching offer; ending the scan ends the stream."""
    wanted = sum(1 for spec in devnet.config.providers if spec.mem_gib >= 8)
    scan = client.post("/market-api/v1/scan",
                       json={"type": "offer", "constraints": "(golem.inf.mem.gib>=8)"}).json()
    offers: list[dict[str, Any]] = []
    with client.session.get(f"{client.base}/market-api/v1/scan/{scan}/events", stream=True,
                            headers={"Accept": "text/event-stream"}, timeout=20) as reply:
        assert reply.status_code == 200
        assert reply.headers["Content-Type"] == "text/event-stream"
        lines = reply.iter_lines(chunk_size=1, decode_unicode=True)  # not 512-byte blocks
        event = None
        for line in lines:
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                assert event == "offer"
                offers.append(json.loads(line[5:]))
                if len(offers) == wanted:
                    break
        assert client.delete(f"/market-api/v1/scan/{scan}").status_code == 204
        assert all(not line or line.startswith(":") for line in lines)  # then it ends
    assert {o["properties"]["golem.inf.mem.gib"] >= 8 for o in offers} == {True}
    assert len({o["providerId"] for o in offers}) == wanted
    assert {"offerId", "providerId", "properties", "constraints", "timestamp"} == set(offers[0])
