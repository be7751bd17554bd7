"""The transport seam: the whole client driven through MockTransport, no server involved."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Callable, Optional

import pytest
from helpers import APP_KEY, BASE, FAST, TS

from golemsync.config import Config
from golemsync.errors import (
    ApiError,
    ConfigurationError,
    DaemonUnreachable,
    GolemError,
    NotFound,
    PollTimeout,
    RequestTimeout,
    TransportError,
)
from golemsync.rest import ClientOptions, MockTransport, Request, Response, RetryPolicy, YagnaClient
from golemsync.rest.images import ImageRegistry

Handler = Callable[[Request], Response]


def client_with(handler: Handler, retry: RetryPolicy = FAST,
                stop: Optional[threading.Event] = None) -> tuple[YagnaClient, MockTransport]:
    transport = MockTransport(handler)
    config = Config.load(app_key=APP_KEY, api_url=BASE, environ={})
    return YagnaClient(config, transport=transport, retry=retry, stop_event=stop), transport


def routes(table: dict[tuple[str, str], Response]) -> Handler:
    def handler(request: Request) -> Response:
        reply = table.get((request.method, request.path))
        return reply if reply is not None else Response.from_json({"message": "nope"},
                                                                  status=404)
    return handler


def test_identity_through_the_mock_carries_auth_and_timeouts() -> None:
    client, transport = client_with(routes({
        ("GET", "/me"): Response.from_json({"identity": "0x1", "name": "r"})}))
    assert client.identity.me().identity == "0x1"
    (request,) = transport.requests
    assert request.header("authorization") == f"Bearer {APP_KEY}"
    assert request.header("Accept") == "application/json" and request.body is None
    assert (request.connect_timeout, request.read_timeout) == (5.0, 30.0)
    assert client.request_count == 1


def test_market_through_the_mock_sends_json_and_long_poll_timeouts() -> None:
    client, transport = client_with(routes({
        ("POST", "/market-api/v1/demands"): Response.from_json("sub1", status=201),
        ("GET", "/market-api/v1/demands/sub1/events"): Response.from_json([
            {"eventType": "ProposalRejectedEvent", "eventDate": TS, "proposalId": "p1"}])}))
    assert client.market.subscribe_demand({"golem.node.id.name": "x"}, "()") == "sub1"
    (event,) = client.market.collect_offers("sub1", timeout=7, max_events=3)
    assert event.proposal_id == "p1"  # type: ignore[union-attr]
    post, poll = transport.requests
    assert post.json() == {"properties": {"golem.node.id.name": "x"}, "constraints": "()"}
    assert post.header("Content-Type") == "application/json"
    assert poll.query == {"timeout": "7", "maxEvents": "3"} and poll.read_timeout == 12.0


def test_activity_through_the_mock_exec_and_results() -> None:
    results = Response.from_json([{"index": 0, "eventDate": TS, "result": "Ok", "stdout": "hi",
                                   "isBatchFinished": True}])
    client, transport = client_with(routes({
        ("POST", "/activity-api/v1/activity/a1/exec"): Response.from_json("b1"),
        ("GET", "/activity-api/v1/activity/a1/exec/b1"): results}))
    assert client.activity.exec("a1", [{"deploy": {}}]) == "b1"
    (result,) = client.activity.get_exec_results("a1", "b1", timeout=2)
    assert result.stdout == "hi" and result.is_batch_finished
    assert transport.requests[1].query == {"timeout": "2"}


def test_payment_through_the_mock() -> None:
    client, transport = client_with(routes({
        ("POST", "/payment-api/v1/allocations"): Response.from_json(
            {"allocationId": "al", "totalAmount": "5", "spentAmount": "0",
             "remainingAmount": "5"}, status=201)}))
    allocation = client.payment.create_allocation(Decimal("5"))
    assert allocation.allocation_id == "al" and allocation.remaining_amount == Decimal(5)
    assert transport.requests[0].json() == {"totalAmount": "5", "makeDeposit": False}
    with pytest.raises(NotFound, match="nope"):
        client.payment.get_invoice("missing")


def test_retries_go_through_the_mock_503_then_success() -> None:
    replies = iter([Response.from_json({"message": "busy"}, status=503),
                    Response.from_json({"identity": "0x1"})])
    client, transport = client_with(lambda request: next(replies))
    assert client.identity.me().identity == "0x1"
    assert len(transport.requests) == 2 and client.request_count == 2


def test_an_exec_is_not_resent_after_a_timeout_from_the_transport() -> None:
    def handler(request: Request) -> Response:
        raise RequestTimeout("no answer", method=request.method, url=request.url)

    client, transport = client_with(handler)
    with pytest.raises(RequestTimeout):
        client.activity.exec("a", [])
    assert len(transport.requests) == 1
    with pytest.raises(RequestTimeout):
        client.activity.get_state("a")  # a GET is idempotent: retried up to the attempts
    assert len(transport.requests) == 1 + FAST.attempts


def test_unreachable_from_the_transport_is_retried_and_explained() -> None:
    def handler(request: Request) -> Response:
        raise DaemonUnreachable("refused", method=request.method, url=request.url)

    client, transport = client_with(handler)
    with pytest.raises(DaemonUnreachable, match="golemsync devnet"):
        client.market.subscribe_demand({}, "()")  # even a POST: it never left
    assert len(transport.requests) == FAST.attempts


def test_retry_after_and_attempt_limit_through_the_mock() -> None:
    client, transport = client_with(
        lambda request: Response.from_json({"message": "slow"}, status=429,
                                           headers={"retry-after": "0.25"}),
        retry=RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.001))
    waits: list[float] = []
    client.session._sleep = waits.append  # type: ignore[method-assign]
    with pytest.raises(ApiError, match="429"):
        client.identity.me()
    assert waits == [0.25, 0.25] and len(transport.requests) == 3


def test_poll_timeout_408_is_mapped_and_not_retried() -> None:
    client, transport = client_with(
        lambda request: Response.from_json({"message": "Timeout"}, status=408))
    with pytest.raises(PollTimeout):
        client.activity.get_exec_results("a", "b", timeout=1, command_index=0)
    assert len(transport.requests) == 1


def test_a_stream_through_the_mock_yields_events_as_chunks_arrive() -> None:
    closed = threading.Event()
    event = (b'event: runtime\r\ndata: {"batch_id":"b","index":0,"kind":{"finished":'
             b'{"return_code":0}}}\r\n\r\n')

    def chunks() -> Iterator[bytes]:
        yield b":ping\n\n"
        for i in range(0, len(event), 7):  # lines split across chunks, CRLF split too
            yield event[i:i + 7]

    client, transport = client_with(lambda request: Response(
        200, {"Content-Type": "text/event-stream"}, chunks(), closed.set))
    with client.activity.stream_exec_results("a", "b", read_timeout=3) as stream:
        (finished,) = list(stream)
    assert finished.kind == "finished" and finished.payload == {"return_code": 0}
    assert closed.is_set()
    request = transport.requests[0]
    assert request.stream and request.header("Accept") == "text/event-stream"
    assert request.read_timeout == 3


def test_a_closed_client_closes_the_mock_and_refuses_calls() -> None:
    client, transport = client_with(routes({}))
    client.close()
    assert transport.closed
    with pytest.raises(TransportError, match="closed"):
        client.identity.me()


def test_the_image_registry_goes_through_the_seam() -> None:
    transport = MockTransport(routes({("GET", "/v1/image/info"): Response.from_json(
        {"sha3": "ab" * 28, "http": "http://r/x.gvmi"})}))
    image = ImageRegistry("https://registry.test", transport=transport).resolve(image_tag="a:1")
    assert image.url == "http://r/x.gvmi"
    assert transport.requests[0].query == {"tag": "a:1"}

    def broken(request: Request) -> Response:
        raise DaemonUnreachable("refused", method=request.method, url=request.url)

    with pytest.raises(GolemError, match="image_url"):
        ImageRegistry("https://registry.test", transport=MockTransport(broken)).resolve(
            image_hash="ab" * 28)


def test_demand_decorations_send_a_literal_comma_and_other_values_stay_encoded() -> None:
    client, transport = client_with(lambda request: Response.from_json(
        {"properties": [], "constraints": []}))
    client.payment.demand_decorations(["a 1", "b&c", "d"])
    assert transport.requests[0].url.endswith("/demandDecorations?allocationIds=a+1,b%26c,d")
    assert transport.requests[0].query == {"allocationIds": "a 1,b&c,d"}


def test_client_options_pass_through_and_keywords_win() -> None:
    options = ClientOptions(retry=RetryPolicy(attempts=2, backoff=0.001, max_backoff=0.001),
                            connect_timeout=1.5, read_timeout=9.0, max_reply_bytes=4096)
    transport = MockTransport(lambda request: Response.from_json({"message": "x"}, status=503))
    config = Config.load(app_key=APP_KEY, api_url=BASE, environ={})
    client = YagnaClient(config, options=options, transport=transport, read_timeout=11.0)
    assert client.options == ClientOptions(retry=options.retry, connect_timeout=1.5,
                                           read_timeout=11.0, max_reply_bytes=4096)
    with pytest.raises(ApiError, match="503"):
        client.identity.me()
    assert len(transport.requests) == 2  # the options' retry policy
    assert {(r.connect_timeout, r.read_timeout) for r in transport.requests} == {(1.5, 11.0)}
    assert client.session.max_reply_bytes == 4096


@pytest.mark.parametrize("make, message", [
    (lambda: RetryPolicy(attempts=0), "attempts"),
    (lambda: RetryPolicy(deadline=0), "deadline"),
    (lambda: ClientOptions(read_timeout=0), "read_timeout"),
    (lambda: YagnaClient(Config.load(app_key="k", environ={}), max_reply_bytes=-1),
     "max_reply_bytes"),
])
def test_invalid_client_options_are_configuration_errors(make: Callable[[], object],
                                                         message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()
