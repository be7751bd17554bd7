"""Every reply is read with a size limit, and the read stops there (no matter what is sent)."""

from __future__ import annotations

import http.server
import json
import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from helpers import ACTIVITY, APP_KEY, BASE, FAST, TS

from golemsync.config import Config
from golemsync.errors import ProtocolError, ServerError
from golemsync.rest import MockTransport, RequestsTransport, Response, YagnaClient

MIB = 1024 * 1024


def small_client(**limits: int) -> YagnaClient:
    return YagnaClient(Config.load(app_key=APP_KEY, api_url=BASE, environ={}), retry=FAST,
                       transport=RequestsTransport(), **limits)  # `responses` fakes requests


def padded_identity(size: int) -> bytes:
    """A valid /me reply of exactly ``size`` bytes."""
    head = b'{"identity": "0x1", "name": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_default_limits_are_documented_values() -> None:
    session = small_client().session
    assert (session.max_reply_bytes, session.max_exec_reply_bytes) == (16 * MIB, 200 * MIB)


@responses.activate
def test_a_reply_of_the_limit_passes_and_one_byte_more_raises() -> None:
    client = small_client(max_reply_bytes=1000)
    responses.get(f"{BASE}/me", body=padded_identity(1000), content_type="application/json")
    assert client.identity.me().identity == "0x1"
    responses.replace(responses.GET, f"{BASE}/me", body=padded_identity(1001),
                      content_type="application/json")
    with pytest.raises(ProtocolError, match=r"GET /me: .* limit of 1000 bytes"):
        client.identity.me()
    assert len(responses.calls) == 2  # an oversized reply is not retried


def test_the_limit_holds_without_a_content_length() -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        body = padded_identity(1001)
        for i in range(0, len(body), 100):
            sent.append(i)
            yield body[i:i + 100]

    client = YagnaClient(Config.load(app_key=APP_KEY, api_url=BASE, environ={}),
                         transport=MockTransport(lambda r: Response(200, {}, chunks())),
                         max_reply_bytes=1000)
    with pytest.raises(ProtocolError, match="limit of 1000 bytes"):
        client.identity.me()
    assert len(sent) == 11  # all of it was needed to pass the limit, and no more


def exec_results(size: int) -> bytes:
    item = {"index": 0, "eventDate": TS, "result": "Ok", "stdout": "", "isBatchFinished": True}
    empty = len(json.dumps([item]))
    item["stdout"] = "y" * (size - empty)
    return json.dumps([item]).encode()


@responses.activate
def test_exec_results_have_their_own_larger_limit() -> None:
    client = small_client(max_reply_bytes=500, max_exec_reply_bytes=2000)
    responses.get(f"{ACTIVITY}/activity/a/exec/b", body=exec_results(2000),
                  content_type="application/json")
    (result,) = client.activity.get_exec_results("a", "b")
    assert isinstance(result.stdout, str) and len(result.stdout) > 500
    responses.replace(responses.GET, f"{ACTIVITY}/activity/a/exec/b", body=exec_results(2001),
                      content_type="application/json")
    with pytest.raises(ProtocolError, match=r"/exec/b: .*limit of 2000 bytes"):
        client.activity.get_exec_results("a", "b")
    responses.get(f"{ACTIVITY}/activity/a/state", body=b'{"state": ["Ready", null]}' + b" " * 500,
                  content_type="application/json")
    with pytest.raises(ProtocolError, match="limit of 500 bytes"):
        client.activity.get_state("a")


@responses.activate
def test_a_huge_error_reply_is_cut_not_refused() -> None:
    responses.get(f"{BASE}/me", status=500, body="E" * (2 * MIB), content_type="text/plain")
    with pytest.raises(ServerError) as caught:
        small_client().identity.me()
    assert caught.value.server_message == "E" * 500  # the message keeps a bounded prefix


def test_an_event_stream_line_is_bounded() -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield b"data: " + b"z" * 1000

    client = YagnaClient(Config.load(app_key=APP_KEY, api_url=BASE, environ={}),
                         transport=MockTransport(lambda r: Response(200, {}, endless())),
                         max_reply_bytes=10_000)
    with client.activity.stream_exec_results("a", "b") as stream:
        with pytest.raises(ProtocolError, match="longer than 10000 bytes"):
            list(stream)


class Flood(http.server.BaseHTTPRequestHandler):
    """Answers any GET with 100 MiB of JSON-ish bytes, chunked (so no length to refuse it by),
    counting what it managed to send before the client hung up."""

    sent = 0
    done = threading.Event()
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        block = b"[" + b" " * (MIB - 1)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                type(self).sent += len(block)
                block = b" " * MIB
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client stopped reading and closed the connection
        finally:
            self.close_connection = True
            type(self).done.set()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_100_mib_reply_from_a_real_server_is_cut_off_early() -> None:
    Flood.sent, Flood.done = 0, threading.Event()
    server = http.server.HTTPServer(("127.0.0.1", 0), Flood)
    thread = threading.Thread(target=server.serve_forever, name="flood-server")
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    client = YagnaClient(Config.load(app_key=APP_KEY, api_url=url, environ={}), retry=FAST,
                         max_exec_reply_bytes=2 * MIB)
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match=r"/exec/b: .*limit of 2097152 bytes"):
            client.activity.get_exec_results("a", "b")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        client.close()
        assert Flood.done.wait(30), "the server should see the client hang up"
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert peak < 16 * MIB  # the client held about the limit, not the 100 MiB
    # what the server got out is the limit plus what the socket buffers took, far from all
    assert Flood.sent < 50 * MIB


def test_an_announced_length_past_the_limit_is_refused_unread() -> None:
    pulled: list[bytes] = []

    def body() -> Iterator[bytes]:
        pulled.append(b"x")
        yield b"x"

    reply = Response(200, {"content-length": str(100 * MIB)}, body())
    client = YagnaClient(Config.load(app_key=APP_KEY, api_url=BASE, environ={}),
                         transport=MockTransport(lambda r: reply))
    with pytest.raises(ProtocolError, match=f"announces {100 * MIB} bytes"):
        client.identity.me()
    assert pulled == []
