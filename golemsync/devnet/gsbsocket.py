"""A GSB service's WebSocket, after the HTTP upgrade, on the connection's own thread.

The HTTP server answers the handshake (101) and hands over the socket; :func:`serve` then
runs the frame protocol (``wsproto``, sans-IO) until either side closes: binary frames are
replies to the service's calls, pings are answered, a text frame or a malformed reply
closes the socket as the daemon does (1003 / 1008). Calls are written by the exe-unit
threads through :meth:`WebSocketChannel.send_frame`.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import IO

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

from golemsync.devnet.gsb import CLOSE_POLICY, GsbService
from golemsync.devnet.gsbwire import FrameError, decode_reply

logger = logging.getLogger(__name__)

CLOSE_UNSUPPORTED = 1003
READ_SIZE = 1 << 16


class WebSocketChannel:
    """The server side of one WebSocket: a :class:`~golemsync.devnet.gsb.Listener`."""

    def __init__(self, sock: socket.socket, rfile: IO[bytes]) -> None:
        self._sock = sock
        self._rfile = rfile
        self._conn = Connection(ConnectionType.SERVER)
        self._state_lock = threading.Lock()  # guards _conn (wsproto is not thread-safe)
        self._write_lock = threading.Lock()  # one frame on the wire at a time, in order
        self._parts: list[bytes] = []  # a fragmented message so far (reader thread only)
        self.close_reason = "Closing"

    # -- Listener ----------------------------------------------------------------------------
    def send_frame(self, frame: bytes) -> None:
        self._send(BytesMessage(data=frame))

    def close(self, code: int, reason: str) -> None:
        try:
            self._send(CloseConnection(code=code, reason=reason))
        except OSError:
            pass  # already closing or gone: nothing to tell the peer

    # -- the reader --------------------------------------------------------------------------
    def run(self, service: GsbService) -> None:
        """Serve ``service`` until the socket closes; returns when it has."""
        if not service.attach(self):
            self.close(1000, f"Unbinding service: {service.address}")
            return
        try:
            while self._pump(service):
                pass
        except OSError as exc:
            self.close_reason = f"connection lost ({exc})"
        finally:
            service.detach(self, self.close_reason)

    def _pump(self, service: GsbService) -> bool:
        """Read once and handle what arrived; False when the connection is over."""
        data = self._rfile.read1(READ_SIZE)  # type: ignore[attr-defined]
        with self._state_lock:
            self._conn.receive_data(data or None)
            events = list(self._conn.events())
        for event in events:
            if not self._handle(service, event):
                return False
        return bool(data)

    def _handle(self, service: GsbService, event: Event) -> bool:
        if isinstance(event, BytesMessage):
            self._parts.append(bytes(event.data))
            if event.message_finished:
                frame, self._parts = b"".join(self._parts), []
                return self._reply(service, frame)
        elif isinstance(event, TextMessage):
            self._refuse(CLOSE_UNSUPPORTED, "Text msg unsupported.")
            return False
        elif isinstance(event, Ping):
            self._send(event.response())
        elif isinstance(event, CloseConnection):
            self.close_reason = event.reason or f"close code {event.code}"
            self._answer_close(event)
            return False
        return True

    def _reply(self, service: GsbService, frame: bytes) -> bool:
        try:
            reply = decode_reply(frame)
        except FrameError as exc:
            self._refuse(CLOSE_POLICY, f"Failed to read response. Err: {exc}")
            return False
        service.deliver(reply)
        return True

    def _refuse(self, code: int, reason: str) -> None:
        logger.debug("gsb socket: closing (%d %s)", code, reason)
        self.close_reason = reason
        self.close(code, reason)

    def _answer_close(self, event: CloseConnection) -> None:
        try:
            with self._state_lock:
                answer = self._conn.state is ConnectionState.REMOTE_CLOSING
            if answer:
                self._send(event.response())
        except OSError:
            pass

    def _send(self, event: Event) -> None:
        with self._write_lock:
            with self._state_lock:
                try:
                    data = self._conn.send(event)
                except LocalProtocolError as exc:  # the connection is closing or closed
                    raise BrokenPipeError(str(exc)) from exc
            self._sock.sendall(data)


def serve(service: GsbService, sock: socket.socket, rfile: IO[bytes]) -> None:
    """Run ``service``'s socket on the calling thread (the HTTP connection's)."""
    WebSocketChannel(sock, rfile).run(service)
