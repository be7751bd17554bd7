"""The transport: what is retried and what is not, the deadline, the stop event, error mapping."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import responses
from helpers import ACTIVITY, BASE, MARKET, make_client

from golemsync.config import Config
from golemsync.errors import DaemonUnreachable, RequestTimeout, ServerError
from golemsync.rest import RequestsTransport, RetryPolicy, YagnaClient


@responses.activate
def test_a_get_is_retried_after_503() -> None:
    responses.get(f"{BASE}/me", status=503, json={"message": "busy"})
    responses.get(f"{BASE}/me", json={"identity": "0x1"})
    assert make_client().identity.me().identity == "0x1"
    assert len(responses.calls) == 2


@responses.activate
@pytest.mark.parametrize("status", [502, 504])
def test_exec_is_never_resent_after_it_may_have_arrived(status: int) -> None:
    responses.post(f"{ACTIVITY}/activity/a/exec", status=status, json={"message": "gateway"})
    with pytest.raises(ServerError):
        make_client().activity.exec("a", [{"deploy": {}}])
    assert len(responses.calls) == 1


@responses.activate
def test_exec_read_timeout_is_not_retried() -> None:
    responses.post(f"{ACTIVITY}/activity/a/exec", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(RequestTimeout):
        make_client().activity.exec("a", [])
    assert len(responses.calls) == 1


@responses.activate
def test_exec_is_resent_after_503_and_429_which_were_not_processed() -> None:
    responses.post(f"{ACTIVITY}/activity/a/exec", status=503, json={"message": "later"})
    responses.post(f"{ACTIVITY}/activity/a/exec", status=429, headers={"Retry-After": "0"},
                   json={"message": "slow down"})
    responses.post(f"{ACTIVITY}/activity/a/exec", json="b1")
    assert make_client().activity.exec("a", []) == "b1"
    assert len(responses.calls) == 3


@responses.activate
def test_retry_after_is_honoured() -> None:
    responses.get(f"{BASE}/me", status=429, headers={"Retry-After": "0.05"})
    responses.get(f"{BASE}/me", json={"identity": "0x1"})
    waits: list[float] = []
    client = make_client()
    client.session._sleep = waits.append  # type: ignore[method-assign]
    client.identity.me()
    assert waits == [0.05]


@responses.activate
def test_attempts_are_limited() -> None:
    responses.get(f"{BASE}/me", status=503, json={"message": "down"})
    with pytest.raises(ServerError, match="503"):
        make_client(RetryPolicy(attempts=4, backoff=0.001, max_backoff=0.001)).identity.me()
    assert len(responses.calls) == 4


@responses.activate
def test_the_deadline_holds() -> None:
    responses.get(f"{BASE}/me", status=503, json={"message": "down"})
    policy = RetryPolicy(attempts=1000, backoff=0.01, max_backoff=0.01, deadline=0.2)
    began = time.monotonic()
    with pytest.raises(ServerError):
        make_client(policy).identity.me()
    assert time.monotonic() - began < 5  # far fewer than 1000 attempts were made
    assert len(responses.calls) < 1000


@responses.activate
def test_a_set_stop_event_ends_retrying() -> None:
    responses.get(f"{BASE}/me", status=503, json={"message": "down"})
    stop = threading.Event()
    stop.set()
    config = Config.load(app_key="k", api_url=BASE, environ={})
    client = YagnaClient(config, stop_event=stop, transport=RequestsTransport(),
                         retry=RetryPolicy(attempts=50, backoff=10, max_backoff=10))
    with pytest.raises(ServerError):
        client.identity.me()
    assert len(responses.calls) == 1


def test_connection_refused_says_how_to_get_a_daemon() -> None:
    config = Config.load(app_key="k", api_url="http://127.0.0.1:9", environ={})
    client = YagnaClient(config, retry=RetryPolicy(attempts=2, backoff=0.001))
    with pytest.raises(DaemonUnreachable, match="golemsync devnet"):
        client.identity.me()
    client.close()


@responses.activate
def test_plain_text_500_keeps_the_text() -> None:
    responses.post(f"{MARKET}/demands", status=500, body="internal kaboom",
                   content_type="text/plain")
    with pytest.raises(ServerError) as caught:
        make_client().market.subscribe_demand({}, "()")
    assert caught.value.server_message == "internal kaboom" and caught.value.status == 500
    assert len(responses.calls) == 1  # a subscription is not re-posted


@responses.activate
def test_each_thread_has_its_own_session_and_close_closes_all() -> None:
    responses.get(f"{BASE}/me", json={"identity": "0x1"})
    client = make_client()
    sessions = []

    def call() -> None:
        client.identity.me()
        sessions.append(client.transport._local.session)

    threads = [threading.Thread(target=call, name=f"s{i}") for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len({id(s) for s in sessions}) == 3
    client.close()
    assert client.transport._sessions == []
    assert client.request_count == 3
