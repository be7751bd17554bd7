"""Activity API status codes and bodies, as the daemon answers them."""

from __future__ import annotations

from typing import Any

import pytest
from devnet_http import ACTIVITY, EXEC_SCRIPT, MARKET, Client

from golemsync.devnet import Devnet

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(devnet: Devnet) -> Any:
    with Client(devnet) as c:
        yield c


@pytest.fixture
def agreement(client: Client) -> str:
    _, sub, demand, offers = client.hired()
    return client.approved_agreement(sub, demand, offers[0])


def test_create_mirrors_the_body_form(client: Client, agreement: str) -> None:
    legacy = client.post(f"{ACTIVITY}/activity", json=agreement)
    assert legacy.status_code == 200 and isinstance(legacy.json(), str)
    modern = client.post(f"{ACTIVITY}/activity", json={"agreementId": agreement})
    assert list(modern.json()) == ["activityId"]
    listed = client.get(f"{ACTIVITY}/activity", params={"agreementId": agreement}).json()
    assert sorted(listed) == sorted([legacy.json(), modern.json()["activityId"]])
    reply = client.get(f"{ACTIVITY}/activity/{legacy.json()}/agreement")
    assert reply.json() == agreement
    state = client.get(f"{ACTIVITY}/activity/{legacy.json()}/state").json()
    assert state == {"state": ["Initialized", None]}


def test_create_needs_an_approved_agreement(client: Client) -> None:
    _, sub, demand, offers = client.hired()
    pending = client.agreement(client.negotiate(sub, demand, offers[0]))
    reply = client.post(f"{ACTIVITY}/activity", json={"agreementId": pending})
    assert reply.status_code == 400
    assert reply.json()["message"].endswith("is not Approved. Current state: Proposal")
    unknown = client.post(f"{ACTIVITY}/activity", json={"agreementId": "ab" * 32})
    assert unknown.status_code == 404


def test_exec_bad_input(client: Client, agreement: str) -> None:
    activity_id = client.activity(agreement)
    path = f"{ACTIVITY}/activity/{activity_id}/exec"
    garbled = client.post(path, json={"text": "[{\"deploy\": {}"})
    assert garbled.status_code == 400
    assert garbled.json()["message"].startswith('Bad request: Error("')
    unknown = client.exec(activity_id, [{"foo": {}}])
    assert unknown.status_code == 400 and "foo" in unknown.json()["message"]
    assert client.post(path, json={"script": "[]"}).status_code == 400


def test_unknown_activity_is_a_dao_500(client: Client) -> None:
    missing = "0" * 32
    reply = client.exec(missing, EXEC_SCRIPT)
    assert reply.status_code == 500
    assert reply.json() == {"message": f"DAO error: Not found: agreement id for activity: "
                                       f"{missing}"}
    assert client.get(f"{ACTIVITY}/activity/{missing}/state").status_code == 500


def test_results_unknown_batch_and_usage(client: Client, agreement: str) -> None:
    activity_id = client.activity(agreement)
    reply = client.get(f"{ACTIVITY}/activity/{activity_id}/exec/{'f' * 32}")
    assert reply.status_code == 404
    assert reply.json() == {"message": f"Not found: batch_id = {'f' * 32}"}
    usage = client.get(f"{ACTIVITY}/activity/{activity_id}/usage").json()
    assert len(usage["currentUsage"]) == 2 and isinstance(usage["timestamp"], int)
    idle = client.get(f"{ACTIVITY}/activity/{activity_id}/command")
    assert idle.status_code in (200, 404)


def test_destroy_terminates_and_later_calls_fail(client: Client, agreement: str) -> None:
    activity_id = client.activity(agreement)
    reply = client.delete(f"{ACTIVITY}/activity/{activity_id}")
    assert reply.status_code == 200 and reply.json() is None
    state = client.get(f"{ACTIVITY}/activity/{activity_id}/state").json()
    assert state["state"] == ["Terminated", None]
    after = client.exec(activity_id, EXEC_SCRIPT)
    assert after.status_code == 500 and "GSB error" in after.json()["message"]
    assert client.delete(f"{ACTIVITY}/activity/{activity_id}").status_code == 200


def test_terminating_the_agreement_destroys_its_activities(devnet: Devnet, client: Client,
                                                           agreement: str) -> None:
    activity_id = client.activity(agreement)
    client.post(f"{MARKET}/agreements/{agreement}/terminate", json={"message": "done"})
    client.get("/payment-api/v1/invoiceEvents", params={"timeout": 10})  # provider finished
    state = client.get(f"{ACTIVITY}/activity/{activity_id}/state").json()
    assert state["state"][0] == "Terminated"


def test_bodies_need_a_json_content_type(client: Client, agreement: str) -> None:
    reply = client.post(f"{ACTIVITY}/activity", data=f'"{agreement}"',
                        headers={"Content-Type": "text/plain"})
    assert reply.status_code == 400 and reply.text == "Content type error"
    market = client.post(f"{MARKET}/demands", data="{}", headers={"Content-Type": "text/plain"})
    assert market.status_code == 400 and market.json() == {"message": "Content type error"}
