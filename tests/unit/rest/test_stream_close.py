"""Closing a streamed reply from another thread frees the thread blocked reading it.

An event stream is read on a listener thread while the worker decides when the batch is over;
without this, closing would leave the reader blocked until its read timeout (here 10 minutes,
far beyond the test's wait).
"""

from __future__ import annotations

import socket
import threading

import pytest

from golemsync.errors import TransportError
from golemsync.rest.transport import Request, RequestsTransport

WAIT = 30.0


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n6\r\nhello\n\r\n"
UNTIL_CLOSE = HEAD + b"Connection: close\r\n\r\nhello\n"  # as the devnet answers


@pytest.mark.parametrize("reply", [CHUNKED, UNTIL_CLOSE], ids=["chunked", "until-close"])
def test_close_frees_a_reader_blocked_in_another_thread(reply: bytes) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    done = threading.Event()

    def serve() -> None:  # one event, then silence until the test ends
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(reply)
            done.wait(WAIT * 2)

    server = threading.Thread(target=serve)
    server.start()
    transport = RequestsTransport()
    got: list[bytes] = []
    ended: list[str] = []
    first = threading.Event()
    try:
        response = transport.send(Request("GET", f"http://127.0.0.1:{port}/events",
                                          read_timeout=600.0, stream=True))

        def read() -> None:
            try:
                for chunk in response.chunks:
                    got.append(chunk)
                    first.set()
                ended.append("end")
            except TransportError as exc:
                ended.append(f"error: {exc}")

        reader = threading.Thread(target=read)
        reader.start()
        assert first.wait(WAIT)
        response.close()
        reader.join(WAIT)
        assert not reader.is_alive()
        assert got == [b"hello\n"] and len(ended) == 1
    finally:
        done.set()
        server.join(WAIT)
        listener.close()
        transport.close()
