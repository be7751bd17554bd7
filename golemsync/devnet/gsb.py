"""The devnet's GSB API: services a requestor program binds, and the calls made to them.

A program binds a *service* (``POST /gsb-api/v1/services`` with an address prefix such as
``/public/gftp/<name>`` and the message types it answers, its *components*), then listens on
a WebSocket at ``/gsb-api/v1/services/<servicesId>`` (``servicesId``: the prefix in URL-safe
base64 without padding). The devnet's exe-units call those services: each call is a request
frame sent to the listening socket and a :class:`concurrent.futures.Future` settled by the
reply with the same id.

As on the daemon, calls made while no socket listens are buffered and sent when one
connects; a new socket replaces the old one (whose unanswered calls fail); a socket that
closes fails the calls sent through it; ``DELETE`` unbinds the service, fails every call
still waiting and closes the socket.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from golemsync.devnet import gftpstore
from golemsync.devnet.errors import DevnetError
from golemsync.devnet.gsbwire import Reply, describe_error, encode_request

logger = logging.getLogger(__name__)

GFTP_PREFIX = "/public/gftp/"
CLOSE_NORMAL, CLOSE_POLICY = 1000, 1008


class GsbCallError(DevnetError):
    """A call to a bound service failed: refused, closed, or answered with an error."""


class BindError(DevnetError):
    """A bind was refused; ``status`` and the message are the daemon's reply."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Listener(Protocol):
    """What a service needs from the socket that listens for its calls."""

    def send_frame(self, frame: bytes) -> None:
        """Send one binary frame; ``OSError`` when the socket is gone."""

    def close(self, code: int, reason: str) -> None:
        """Start closing the socket with a close frame (no effect when already closing)."""


@dataclass
class _Call:
    future: Future[Any]
    frame: bytes
    listener: Optional[Listener] = None  # the socket it was sent through; None: buffered


class GsbService:
    """One bound service: its address prefix, components, socket and calls in flight."""

    def __init__(self, address: str, components: Sequence[str]) -> None:
        self.address = address
        self.components = tuple(components)
        self.services_id = services_id(address)
        self._lock = threading.Lock()  # guards _listener, _calls, _closed
        self._listener: Optional[Listener] = None
        self._calls: dict[str, _Call] = {}  # request id -> call awaiting its reply
        self._closed: Optional[str] = None  # why it was unbound

    def call(self, component: str, payload: Mapping[str, Any]) -> Future[Any]:
        """Send one request; the Future gives the reply's payload or raises GsbCallError.

        Never blocks on the socket for long: the frame is written (or buffered until a
        socket listens) and the Future returned. It is settled by the reply, by the socket
        closing, or by unbinding; the caller bounds its own wait.
        """
        if component not in self.components:
            raise GsbCallError(f"No supported msg type for addr: {self.address}/{component}")
        request_id = str(uuid.uuid4())
        call = _Call(Future(), encode_request(request_id, component, payload))
        with self._lock:
            if self._closed is not None:
                raise GsbCallError(f"service {self.address} is closed: {self._closed}")
            call.listener = self._listener
            self._calls[request_id] = call
        if call.listener is not None:
            self._send(call.listener, request_id, call)
        return call.future

    def attach(self, listener: Listener) -> bool:
        """Make ``listener`` the service's socket and send it the buffered calls.

        A previous socket is closed and its unanswered calls fail. False when the service
        has been unbound meanwhile.
        """
        with self._lock:
            if self._closed is not None:
                return False
            previous, self._listener = self._listener, listener
            stranded = self._take(previous) if previous is not None else []
            buffered = [(rid, c) for rid, c in self._calls.items() if c.listener is None]
            for _, call in buffered:
                call.listener = listener
        if previous is not None:
            reason = "Closing old WS connection in favour of new WS connection"
            _fail(stranded, f"{self.address}: {reason}")
            previous.close(CLOSE_POLICY, reason)
        for request_id, call in buffered:
            self._send(listener, request_id, call)
        return True

    def deliver(self, reply: Reply) -> None:
        """Settle the call ``reply`` answers (an unknown id is logged and dropped)."""
        with self._lock:
            call = self._calls.pop(reply.request_id, None)
        if call is None:
            logger.debug("gsb %s: reply to unknown request %s", self.address, reply.request_id)
        elif reply.failed:
            call.future.set_exception(GsbCallError(describe_error(reply.error)))
        else:
            call.future.set_result(reply.payload)

    def detach(self, listener: Listener, reason: str) -> None:
        """``listener`` closed: fail the calls sent through it; later calls are buffered."""
        with self._lock:
            if self._listener is listener:
                self._listener = None
            stranded = self._take(listener)
        _fail(stranded, f"{self.address}: connection closed ({reason})")

    def close(self, reason: str) -> None:
        """Unbind: fail every call still waiting, refuse new ones, close the socket."""
        with self._lock:
            if self._closed is not None:
                return
            self._closed = reason
            listener, self._listener = self._listener, None
            stranded = list(self._calls.values())
            self._calls.clear()
        _fail(stranded, f"{self.address}: {reason}")
        if listener is not None:
            listener.close(CLOSE_NORMAL, reason)

    @property
    def listening(self) -> bool:
        with self._lock:
            return self._listener is not None

    def _take(self, listener: Listener) -> list[_Call]:
        # called with _lock held
        taken = [rid for rid, c in self._calls.items() if c.listener is listener]
        return [self._calls.pop(rid) for rid in taken]

    def _send(self, listener: Listener, request_id: str, call: _Call) -> None:
        try:
            listener.send_frame(call.frame)
        except OSError as exc:
            with self._lock:
                gone = self._calls.pop(request_id, None)
            _fail([gone] if gone else [], f"{self.address}: cannot send ({exc})")


def _fail(calls: Sequence[_Call], message: str) -> None:
    for call in calls:
        if not call.future.done():
            call.future.set_exception(GsbCallError(message))


def services_id(address: str) -> str:
    """The id of the services bound at ``address``: its URL-safe base64, unpadded."""
    return base64.urlsafe_b64encode(address.encode()).decode().rstrip("=")


def address_of(services: str) -> str:
    """The address prefix behind a services id; ``ValueError`` with the daemon's text."""
    try:
        raw = base64.urlsafe_b64decode(services + "=" * (-len(services) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("Service address should be encoded in base64. Unable to decode. "
                         f"Err: {exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("Service address should be a string. Unable to parse address. "
                         f"Err: {exc}") from exc


class GsbServices:
    """Every service bound on one devnet node (its requestor identity ``node_id``)."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._lock = threading.Lock()  # guards _services and _closed
        self._services: dict[str, GsbService] = {}
        self._closed = False

    def bind(self, address: str, components: Sequence[str]) -> GsbService:
        """Bind ``components`` at ``address``; :class:`BindError` (400) when refused."""
        if not address:
            raise BindError(400, "Invalid service address prefix: Cannot bind service. "
                                 "Empty prefix.")
        service = GsbService(address, tuple(components))
        with self._lock:
            if self._closed:
                raise BindError(503, "the devnet is stopping")
            if address in self._services:
                raise BindError(400, f"Duplicated service address prefix: {address}")
            self._services[address] = service
        return service

    def find(self, address: str) -> Optional[GsbService]:
        with self._lock:
            return self._services.get(address)

    def unbind(self, address: str) -> bool:
        """Unbind the service at ``address``; False when none is bound there."""
        with self._lock:
            service = self._services.pop(address, None)
        if service is None:
            return False
        service.close(f"Unbinding service: {address}")
        return True

    def gftp_service(self, url: str) -> Optional[GsbService]:
        """The service bound for a ``gftp://<this node>/<name>`` URL, if any."""
        try:
            node, name = gftpstore.split_url(url)
        except ValueError:
            return None
        if node.lower() != self.node_id.lower():
            return None
        return self.find(GFTP_PREFIX + name)

    def close(self) -> None:
        """The devnet is stopping: unbind everything, so no exe-unit waits on a call."""
        with self._lock:
            self._closed = True
            services, self._services = list(self._services.values()), {}
        for service in services:
            service.close("the devnet is stopping")
