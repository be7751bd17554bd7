"""The devnet's GSB API over real HTTP and a real WebSocket (websocket-client)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from devnet_http import Client
from flatbuffers import flexbuffers

from golemsync.devnet import Devnet
from golemsync.devnet.gsb import GsbCallError, GsbService, services_id

pytestmark = pytest.mark.e2e

GSB = "/gsb-api/v1"
ADDRESS = "/public/gftp/route-test"


@pytest.fixture
def client(devnet: Devnet) -> Iterator[Client]:
    with Client(devnet) as c:
        yield c


def bind(client: Client, address: str = ADDRESS,
         components: tuple[str, ...] = ("GetMetadata", "GetChunk")) -> str:
    reply = client.post(f"{GSB}/services",
                        json={"listen": {"on": address, "components": list(components)}})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["servicesId"])


def connect(net: Devnet, sid: str, **kwargs: Any) -> websocket.WebSocket:
    url = net.url.replace("http://", "ws://") + f"{GSB}/services/{sid}"
    kwargs.setdefault("header", [f"Authorization: Bearer {net.app_key}"])
    return websocket.create_connection(url, subprotocols=["gsb+flexbuffers"], timeout=10,
                                       **kwargs)


def service(net: Devnet, address: str = ADDRESS) -> GsbService:
    assert net._node is not None
    found = net._node.gsb.find(address)
    assert found is not None
    return found


def test_bind_answers_201_with_the_services_id_and_location(client: Client) -> None:
    reply = client.post(f"{GSB}/services",
                        json={"listen": {"on": ADDRESS, "components": ["GetChunk"]}})
    assert reply.status_code == 201
    sid = services_id(ADDRESS)
    assert reply.json() == {"listen": {"on": ADDRESS, "components": ["GetChunk"]},
                            "servicesId": sid}
    assert reply.headers["Location"] == f"/{sid}"


def test_bind_refuses_a_duplicate_an_empty_prefix_and_a_bad_body(client: Client) -> None:
    bind(client)
    again = client.post(f"{GSB}/services",
                        json={"listen": {"on": ADDRESS, "components": ["GetChunk"]}})
    assert again.status_code == 400
    assert again.json() == {"message": f"Duplicated service address prefix: {ADDRESS}"}
    empty = client.post(f"{GSB}/services", json={"listen": {"on": "", "components": []}})
    assert empty.status_code == 400 and "Empty prefix" in empty.json()["message"]
    missing = client.post(f"{GSB}/services", json={"on": ADDRESS})
    assert missing.status_code == 400 and "listen" in missing.text


def test_delete_answers_null_then_404(client: Client) -> None:
    sid = bind(client)
    first = client.delete(f"{GSB}/services/{sid}")
    assert first.status_code == 200 and first.json() is None
    second = client.delete(f"{GSB}/services/{sid}")
    assert second.status_code == 404
    assert second.json() == {"message": f"Service prefix not found: Cannot find service: "
                                        f"{ADDRESS}"}
    assert client.delete(f"{GSB}/services/%25%25").status_code == 400


def test_the_socket_needs_a_bound_service_an_upgrade_and_the_app_key(devnet: Devnet,
                                                                     client: Client) -> None:
    assert client.get(f"{GSB}/services/{services_id('/public/gftp/none')}").status_code == 404
    sid = bind(client)
    assert client.get(f"{GSB}/services/{sid}").status_code == 400  # no upgrade
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(devnet, sid, header=["Authorization: Bearer wrong"])
    assert refused.value.status_code == 401


def test_a_call_goes_out_as_a_frame_and_the_reply_settles_it(devnet: Devnet,
                                                             client: Client) -> None:
    sid = bind(client)
    buffered = service(devnet).call("GetMetadata", {})  # before anyone listens
    ws = connect(devnet, sid)
    try:
        assert ws.getsubprotocol() == "gsb+flexbuffers"
        request = flexbuffers.Loads(ws.recv())
        assert request["component"] == "GetMetadata" and request["payload"] == {}
        ws.send_binary(bytes(flexbuffers.Dumps({"id": request["id"],
                                                "payload": {"fileSize": 42}})))
        assert buffered.result(10) == {"fileSize": 42}
        chunk = service(devnet).call("GetChunk", {"offset": 0, "size": 3})
        request = flexbuffers.Loads(ws.recv())
        assert request["payload"] == {"offset": 0, "size": 3}
        ws.send_binary(bytes(flexbuffers.Dumps({"id": request["id"],
                                                "error": {"ReadError": "disk on fire"}})))
        with pytest.raises(GsbCallError, match="ReadError: disk on fire"):
            chunk.result(10)
        ws.ping(b"hi")
        assert ws.recv_data_frame(control_frame=True)[1].data == b"hi"  # the pong
    finally:
        ws.close()


def test_the_token_may_come_in_the_query(devnet: Devnet, client: Client) -> None:
    sid = bind(client)
    ws = connect(devnet, f"{sid}?authToken={devnet.app_key}", header=[])
    ws.close()


def test_unbinding_closes_the_socket_and_fails_waiting_calls(devnet: Devnet,
                                                            client: Client) -> None:
    sid = bind(client)
    ws = connect(devnet, sid)
    try:
        waiting = service(devnet).call("GetMetadata", {})
        ws.recv()  # the request, left unanswered
        assert client.delete(f"{GSB}/services/{sid}").status_code == 200
        with pytest.raises(GsbCallError, match="Unbinding service"):
            waiting.result(10)
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1000
        assert frame.data[2:].decode() == f"Unbinding service: {ADDRESS}"
    finally:
        ws.close()


@pytest.mark.parametrize(("send", "code"), [
    (lambda ws: ws.send("text is not allowed"), 1003),
    (lambda ws: ws.send_binary(b"not flexbuffers"), 1008),
])
def test_a_bad_message_closes_the_socket_and_fails_its_calls(devnet: Devnet, client: Client,
                                                             send: Any, code: int) -> None:
    sid = bind(client)
    ws = connect(devnet, sid)
    try:
        waiting = service(devnet).call("GetMetadata", {})
        ws.recv()
        send(ws)
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == code
        with pytest.raises(GsbCallError, match="connection closed"):
            waiting.result(10)
    finally:
        ws.close()


def test_a_client_that_goes_away_fails_the_calls_sent_to_it(devnet: Devnet,
                                                           client: Client) -> None:
    sid = bind(client)
    ws = connect(devnet, sid)
    waiting = service(devnet).call("GetMetadata", {})
    ws.recv()
    ws.close()
    with pytest.raises(GsbCallError, match="connection closed"):
        waiting.result(10)


def test_a_second_socket_takes_over(devnet: Devnet, client: Client) -> None:
    sid = bind(client)
    old = connect(devnet, sid)
    new = connect(devnet, sid)
    try:
        opcode, frame = old.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1008
        call = service(devnet).call("GetMetadata", {})
        request = flexbuffers.Loads(new.recv())
        new.send_binary(bytes(flexbuffers.Dumps({"id": request["id"], "payload": None})))
        assert call.result(10) is None
    finally:
        old.close()
        new.close()


def test_stopping_the_devnet_ends_open_sockets(make_devnet: Any) -> None:
    net = make_devnet(providers=1)
    with Client(net) as c:
        sid = bind(c)
    ws = connect(net, sid)
    waiting = service(net).call("GetMetadata", {})
    net.stop()
    with pytest.raises(GsbCallError):
        waiting.result(10)
    ws.close()
