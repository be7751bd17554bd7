"""The service bus client against a small router of this test's own (no daemon needed).

The router is a real TCP server in a thread speaking the bus's framing (4-byte big-endian
length + protobuf Packet): it checks the client's Hello, answers calls the way a yagna node's
router does, splits frames across writes, pings, and can drop the connection.
"""

from __future__ import annotations

import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest

pytest.importorskip("google.protobuf")

from flatbuffers import flexbuffers

from golemsync.devnet.gsb import GsbCallError
from golemsync.localnet.bus import (
    BusClient,
    BusError,
    BusLink,
    Packet,
    RemoteGftp,
    encode_frame,
    remote_address,
)

Answer = Callable[[Any], Optional[Any]]  # a CallRequest -> a Packet to send back, or None


class Router:
    """Accepts connections one after another; ``answer`` decides each call's reply."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.hellos: list[Any] = []
        self.requests: list[Any] = []
        self.pongs = threading.Event()
        self.connections: list[socket.socket] = []
        self._talkers: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._serve, name="test-router")
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(conn)
            talker = threading.Thread(target=self._talk, args=(conn,), name="test-router-conn")
            self._talkers.append(talker)
            talker.start()

    def _talk(self, conn: socket.socket) -> None:
        hello = Packet()
        hello.hello.name = "test-router"
        hello.hello.version = "0.0.1"
        conn.sendall(encode_frame(hello))
        ping = Packet()
        ping.ping.SetInParent()
        frame = encode_frame(ping)
        conn.sendall(frame[:3])  # a frame split across writes
        conn.sendall(frame[3:])
        try:
            while True:
                packet = _read(conn)
                if packet is None:
                    return
                kind = packet.WhichOneof("packet")
                if kind == "hello":
                    self.hellos.append(packet.hello)
                elif kind == "pong":
                    self.pongs.set()
                elif kind == "call_request":
                    self.requests.append(packet.call_request)
                    reply = self.answer(packet.call_request)
                    if reply is not None:
                        conn.sendall(encode_frame(reply))
        except OSError:
            return

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept (Linux)
        self._thread.join()
        self.server.close()
        for conn in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for talker in self._talkers:
            talker.join()
        for conn in self.connections:
            conn.close()


def _read(conn: socket.socket) -> Optional[Any]:
    header = _exactly(conn, 4)
    if header is None:
        return None
    body = _exactly(conn, struct.unpack(">I", header)[0])
    return None if body is None else Packet.FromString(body)


def _exactly(conn: socket.socket, size: int) -> Optional[bytes]:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def reply(request: Any, *, code: int = 0, data: bytes = b"", reply_type: int = 0) -> Any:
    packet = Packet()
    packet.call_reply.request_id = request.request_id
    packet.call_reply.code = code
    packet.call_reply.reply_type = reply_type
    packet.call_reply.data = data
    return packet


def gftp_like(request: Any) -> Optional[Any]:
    """A published 100-byte file at .../gftp/f; anything else is refused like the bus does."""
    content = bytes(range(100))
    name = request.address.rsplit("/", 1)[-1]
    body = flexbuffers.Loads(request.data)
    if "/gftp/f/" not in request.address:
        return reply(request, code=400, data=f"No service registered under given address "
                                              f"'{request.address}'".encode())
    if name == "GetMetadata":
        return reply(request, data=bytes(flexbuffers.Dumps({"Ok": {"fileSize": 100}})))
    if name == "GetChunk":
        if body["offset"] > 100:
            return reply(request, data=bytes(flexbuffers.Dumps(
                {"Err": {"ReadError": "past the end"}})))
        chunk = content[body["offset"]:body["offset"] + body["size"]]
        result = flexbuffers.Dumps({"Ok": {"offset": body["offset"], "content": chunk}})
        return reply(request, data=zlib.compress(bytes(result)))  # the bus may compress
    if name == "Stream":
        return reply(request, data=b"", reply_type=1)
    if name == "Silent":
        return None
    return reply(request, code=500, data=b"service failure")


@pytest.fixture
def router() -> Iterator[Router]:
    running = Router(gftp_like)
    yield running
    running.close()


def test_calls_are_answered_by_request_id_and_results_decoded(router: Router) -> None:
    with BusClient(router.url, name="golemsync-test") as bus:
        assert bus.server_hello == ("test-router", "0.0.1")
        service = RemoteGftp(bus).gftp_service("gftp://0xABC/f")
        assert service is not None and service.address == "/transfer/net/0xabc/gftp/f"
        calls = [service.call("GetChunk", {"offset": o, "size": 30}) for o in (0, 30, 60, 90)]
        meta = service.call("GetMetadata", {})
        assert meta.result(10) == {"fileSize": 100}
        assert b"".join(c.result(10)["content"] for c in calls) == bytes(range(100))
        with pytest.raises(GsbCallError, match="ReadError: past the end"):
            service.call("GetChunk", {"offset": 101, "size": 1}).result(10)
        assert router.pongs.wait(10)  # the router's Ping was answered
    (hello,) = router.hellos
    assert hello.name == "golemsync-test" and len(hello.instance_id) == 16
    assert router.requests[0].address == "/transfer/net/0xabc/gftp/f/GetChunk"
    assert len({r.request_id for r in router.requests}) == len(router.requests)


def test_refusals_streams_and_a_dropped_connection_fail_their_calls(router: Router) -> None:
    bus = BusClient(router.url)
    try:
        with pytest.raises(GsbCallError, match="code 400.*No service registered"):
            bus.call("/transfer/net/0x1/gftp/other", "GetMetadata", {}).result(10)
        with pytest.raises(GsbCallError, match="code 500"):
            bus.call("/transfer/net/0x1/gftp/f", "Unknown", {}).result(10)
        with pytest.raises(GsbCallError, match="streamed"):
            bus.call("/transfer/net/0x1/gftp/f", "Stream", {}).result(10)
        waiting = bus.call("/transfer/net/0x1/gftp/f", "Silent", {})
        for conn in router.connections:
            conn.shutdown(socket.SHUT_RDWR)  # the node goes away
        with pytest.raises(GsbCallError, match="closed"):
            waiting.result(10)
        assert bus.closed
        with pytest.raises(GsbCallError, match="closed"):
            bus.call("/transfer/net/0x1/gftp/f", "GetMetadata", {})
    finally:
        bus.close()


def test_a_link_reconnects_after_the_connection_broke(router: Router) -> None:
    link = BusLink(router.url)
    try:
        service = RemoteGftp(link).gftp_service("gftp://0x1/f")
        assert service is not None
        assert service.call("GetMetadata", {}).result(10) == {"fileSize": 100}
        first = link.get()
        router.connections[0].shutdown(socket.SHUT_RDWR)
        first._reader.join(10)
        assert first.closed
        assert service.call("GetMetadata", {}).result(10) == {"fileSize": 100}
        assert link.get() is not first and len(router.hellos) == 2
    finally:
        link.close()


def test_a_socket_that_is_no_bus_is_named_in_the_error() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never says Hello
    port = silent.getsockname()[1]
    try:
        with pytest.raises(BusError, match="no Hello"):
            BusClient(f"tcp://127.0.0.1:{port}", connect_timeout=0.5)
    finally:
        silent.close()
    with pytest.raises(BusError, match="cannot connect"):
        BusClient(f"tcp://127.0.0.1:{port}", connect_timeout=2)
    with pytest.raises(BusError, match="unsupported GSB_URL"):
        BusClient("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="/public"):
        remote_address("0x1", "/private/x")
