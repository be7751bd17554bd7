"""Activity API status codes and bodies, as the daemon answers them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from devnet_http import ACTIVITY, EXEC_SCRIPT, MARKET, Client
from jobs import PAYLOAD

from golemsync import CommandFailed, Golem, Script, Task, WorkContext
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


FAILS_MID_BATCH: list[dict[str, Any]] = [*EXEC_SCRIPT[:2],
                   {"run": {"entry_point": "/bin/echo", "args": ["one"]}},
                   {"run": {"entry_point": "/bin/sh", "args": ["-c", "exit 3"]}},
                   {"run": {"entry_point": "/bin/echo", "args": ["never"]}}]


def _poll(client: Client, activity_id: str, batch_id: str,
          **params: Any) -> tuple[Any, float]:
    began = time.monotonic()
    reply = client.get(f"{ACTIVITY}/activity/{activity_id}/exec/{batch_id}", params=params,
                       timeout=400)
    return reply, time.monotonic() - began


def test_a_poll_past_a_failed_command_waits_out_its_timeout(client: Client,
                                                           agreement: str) -> None:
    """The daemon's exe-unit quirk (PROTOCOL §4.6), the devnet's default: a yapapi-style poll
    (no commandIndex) on a batch whose command failed mid-way answers when its timeout ends;
    a poll for the failed command itself answers at once."""
    activity_id = client.activity(agreement)
    batch_id = client.exec(activity_id, FAILS_MID_BATCH).json()
    failed, _ = _poll(client, activity_id, batch_id, timeout=300, commandIndex=3)
    assert failed.status_code == 200 and failed.json()[-1]["result"] == "Error"  # at once:
    # with a 300 s window, the pytest timeout would fail this test had it waited
    whole, waited = _poll(client, activity_id, batch_id, timeout=1.0)
    assert waited >= 1.0
    assert [i["result"] for i in whole.json()] == ["Ok"] * 3 + ["Error"]
    later, waited = _poll(client, activity_id, batch_id, timeout=1.0, commandIndex=4)
    assert later.status_code == 408 and waited >= 1.0


def test_quick_failed_batch_poll_keeps_the_quick_answer(make_devnet: Any) -> None:
    net = make_devnet(quick_failed_batch_poll=True)
    with Client(net) as client:
        _, sub, demand, offers = client.hired()
        activity_id = client.activity(client.approved_agreement(sub, demand, offers[0]))
        batch_id = client.exec(activity_id, FAILS_MID_BATCH).json()
        # 300 s windows: the pytest timeout fails the test if either poll waits them out
        whole, _ = _poll(client, activity_id, batch_id, timeout=300)
        assert [i["result"] for i in whole.json()] == ["Ok"] * 3 + ["Error"]
        later, _ = _poll(client, activity_id, batch_id, timeout=300, commandIndex=4)
        assert later.status_code == 408


def test_golemsync_is_not_held_up_by_a_failed_command(devnet: Devnet) -> None:
    """golemsync polls the command it waits for, so the failed one answers at once even with
    a poll window far beyond the pytest timeout."""
    failures: list[str] = []

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=600)
            script.run("/bin/echo", "one")
            script.run("/bin/sh", "-c", "exit 3")
            script.run("/bin/echo", "never")
            try:
                yield script
            except CommandFailed as exc:
                failures.append(str(exc))
                task.reject_result("failed as planned", retry=False)

    with Golem(api_url=devnet.url, app_key=devnet.app_key, budget=5, poll_timeout=300,
               invoice_timeout=15) as golem:
        (task,) = golem.execute_tasks(worker, [0], PAYLOAD, max_workers=1)
    assert task.error is not None
    assert len(failures) == 1 and "code 3" in failures[0]
