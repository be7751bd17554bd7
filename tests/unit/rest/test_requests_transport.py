"""The HTTP transports against real local HTTP servers: environment ignored, proxies explicit,
streams handed over as they arrive, failures mapped. Each runs with both shipped transports."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import APP_KEY, FAST

from golemsync.config import Config
from golemsync.errors import (
    ConfigurationError,
    DaemonUnreachable,
    ProtocolError,
    RequestTimeout,
    TransportError,
)
from golemsync.rest import (
    MockTransport,
    Request,
    RequestsTransport,
    Response,
    Transport,
    Urllib3Transport,
    YagnaClient,
)


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every GET with an identity and keeps the request lines it saw."""

    seen: list[str] = []
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        body = json.dumps({"identity": "0xlocal"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    Recorder.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="recorder-server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


KINDS = ["urllib3", "requests"]


def make_transport(kind: str, proxies: Any = None) -> Transport:
    if kind == "urllib3":
        return Urllib3Transport(proxies=proxies)
    return RequestsTransport(proxies=proxies)


def client_for(url: str, kind: str = "urllib3", proxies: Any = None,
               **kwargs: Any) -> YagnaClient:
    return YagnaClient(Config.load(app_key=APP_KEY, api_url=url, environ={}), retry=FAST,
                       transport=make_transport(kind, proxies), **kwargs)


@pytest.mark.parametrize("kind", KINDS)
def test_environment_proxies_are_not_used(server: str, monkeypatch: pytest.MonkeyPatch,
                                          kind: str) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with client_for(server, kind) as client:
        assert client.identity.me().identity == "0xlocal"
    assert Recorder.seen == ["/me"]  # asked directly: origin-form request line


@pytest.mark.parametrize("kind", KINDS)
def test_an_explicit_proxy_is_used(server: str, kind: str) -> None:
    # the recorder plays the proxy: a proxied request line carries the absolute URL
    with client_for("http://daemon.invalid:7465", kind, proxies={"http": server}) as client:
        assert client.identity.me().identity == "0xlocal"
    assert Recorder.seen == ["http://daemon.invalid:7465/me"]


def test_the_default_transport_takes_proxies_from_the_options(server: str) -> None:
    config = Config.load(app_key=APP_KEY, api_url="http://daemon.invalid:7465", environ={})
    with YagnaClient(config, retry=FAST, proxies={"http": server}) as client:
        assert isinstance(client.session.transport, Urllib3Transport)
        assert client.identity.me().identity == "0xlocal"
    assert Recorder.seen == ["http://daemon.invalid:7465/me"]


def test_proxies_with_a_given_transport_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="proxies"):
        YagnaClient(Config.load(app_key=APP_KEY, api_url="http://x", environ={}),
                    transport=RequestsTransport(), proxies={"http": "http://p"})


@pytest.mark.parametrize("kind", KINDS)
def test_a_streamed_request_reads_its_whole_body(server: str, kind: str) -> None:
    transport = make_transport(kind)
    try:
        response = transport.send(Request("GET", f"{server}/x", stream=True))
        assert response.status == 200 and response.header("content-type") == "application/json"
        assert json.loads(response.read(1000)) == {"identity": "0xlocal"}
        response.close()
    finally:
        transport.close()


def results_client(items: Any) -> YagnaClient:
    reply = Response.from_json(items)
    return YagnaClient(Config.load(app_key=APP_KEY, api_url="http://x", environ={}),
                       transport=MockTransport(lambda request: reply))


TS = "2025-05-01T12:00:03.5Z"
GOOD = {"index": 1, "eventDate": TS, "result": "Ok", "stdout": [0, 255], "stderr": "e",
        "message": None, "isBatchFinished": True}


def test_hand_decoded_exec_results_keep_the_types() -> None:
    (item,) = results_client([GOOD]).activity.get_exec_results("a", "b")
    assert (item.index, item.result, item.stdout, item.stderr, item.message) == (
        1, "Ok", b"\x00\xff", "e", None)
    assert item.is_batch_finished and item.event_date.tzinfo is not None
    assert item.to_dict()["stdout"] == [0, 255]  # still a wire model


@pytest.mark.parametrize("bad, message", [
    ({k: v for k, v in GOOD.items() if k != "eventDate"}, "eventDate"),
    ({**GOOD, "index": "1"}, "index"),
    ({**GOOD, "index": True}, "index"),
    ({**GOOD, "eventDate": "yesterday"}, "yesterday"),
    ({**GOOD, "stdout": [300]}, "ExeScriptCommandResult"),
    ({**GOOD, "stdout": {"x": 1}}, "unexpected command output"),
    ({**GOOD, "isBatchFinished": "yes"}, "isBatchFinished"),
    ({**GOOD, "message": 3}, "message"),
    ("Ok", "expected an ExeScriptCommandResult"),
])
def test_malformed_exec_results_are_protocol_errors(bad: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        results_client([bad]).activity.get_exec_results("a", "b")


def test_a_results_reply_that_is_not_a_list_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="expected a list"):
        results_client({"index": 0}).activity.get_exec_results("a", "b")


RUNTIME = ('event: runtime\ndata: {{"batch_id":"b","index":{0},"kind":{{"finished":'
           '{{"return_code":0}}}}}}\n\n')


class Trickle(http.server.BaseHTTPRequestHandler):
    """An event stream without length or chunking (ended by closing): one event, then a
    wait for the test's word, then a second event. A client waiting for a block to fill
    would hang on the first event until its read timeout."""

    release = threading.Event()
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(RUNTIME.format(0).encode())
        self.wfile.flush()
        if type(self).release.wait(20):
            self.wfile.write(RUNTIME.format(1).encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_hands_each_event_over_as_soon_as_it_arrives(kind: str) -> None:
    Trickle.release = threading.Event()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="trickle-server")
    thread.start()
    client = client_for(f"http://127.0.0.1:{httpd.server_address[1]}", kind)
    try:
        indexes = []
        with client.activity.stream_exec_results("a", "b", read_timeout=10) as stream:
            for event in stream:  # a hang here ends in a read timeout, failing the test
                indexes.append(event.index)
                Trickle.release.set()
        assert indexes == [0, 1]
    finally:
        Trickle.release.set()
        client.close()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


class Silent(http.server.BaseHTTPRequestHandler):
    """Says nothing until the test's word (a reply that never comes), or cuts a body short."""

    release = threading.Event()
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            self.close_connection = True
            return
        type(self).release.wait(20)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def silent() -> Iterator[str]:
    Silent.release = threading.Event()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="silent-server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        Silent.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.mark.parametrize("kind", KINDS)
def test_failures_map_to_the_transport_errors(silent: str, kind: str) -> None:
    transport = make_transport(kind)
    try:
        with pytest.raises(RequestTimeout, match="no answer"):
            transport.send(Request("GET", f"{silent}/wait", read_timeout=0.2))
        with pytest.raises(DaemonUnreachable, match="cannot connect"):
            transport.send(Request("GET", "http://127.0.0.1:9/x"))
        response = transport.send(Request("GET", f"{silent}/short"))
        with pytest.raises(TransportError, match="broke off"):
            response.read(10_000)
        response.close()
    finally:
        transport.close()
    with pytest.raises(TransportError, match="closed"):
        transport.send(Request("GET", f"{silent}/x"))
