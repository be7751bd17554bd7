"""A client of a yagna node's service bus: how the localnet's provider program *calls* services.

The GSB API (``/gsb-api/v1``) only lets a program bind services; calling one, such as the
requestor's ``/public/gftp/<name>`` on another node, takes the bus's own protocol, spoken to
the node's router at its ``GSB_URL`` (``tcp://host:port`` or ``unix:/path``):

* a frame is a 4-byte big-endian length and a protobuf ``Packet`` (``proto/gsb_bus.proto``;
  the descriptor compiled from it, ``proto/gsb_bus.desc``, is loaded at import, so no
  generated code is tied to one protobuf release);
* both sides send ``Hello`` first; the router's ``Ping`` is answered with ``Pong``;
* a call is ``CallRequest{caller, address, request_id, data, no_reply}``: ``address`` is the
  service's address, ``/`` and the message's name (``GetChunk``...), ``data`` the message as
  flexbuffers; the answer is ``CallReply{request_id, code, reply_type, data}`` where code 0
  carries the flexbuffers of ``{"Ok": item}`` or ``{"Err": error}`` (possibly zlib-compressed,
  which the bus tries first), and 400/500 an error text.

A remote node's public service ``/public/<rest>`` is reached as ``/transfer/net/<node id>/<rest>``
(the net module's transfer channel, as the real exe-unit's gftp does); the node's net module
replaces the caller with its own identity, so ``caller`` is only a label.

:class:`BusClient` is thread-safe: calls are written under a lock, one reader thread settles
their :class:`~concurrent.futures.Future` s; ``close`` shuts the socket and joins the reader,
failing every call still waiting.
"""

from __future__ import annotations

import logging
import secrets
import socket
import struct
import threading
import zlib
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

from flatbuffers import flexbuffers
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from golemsync.devnet.gsb import GsbCallError

logger = logging.getLogger(__name__)

PROTO_DIR = Path(__file__).with_name("proto")
MAX_FRAME = 256 << 20  # a longer frame means we lost the framing: drop the connection
CALL_OK, CALL_BAD_REQUEST, CALL_FAILURE = 0, 400, 500
REPLY_FULL, REPLY_PARTIAL = 0, 1
CLIENT_VERSION = "0.7.3"  # the bus version golemsync's client speaks (its Hello says so)


def _load_packet_class() -> Any:
    files = descriptor_pb2.FileDescriptorSet.FromString((PROTO_DIR / "gsb_bus.desc").read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    packet = pool.FindMessageTypeByName("GSB_API.Packet")
    if hasattr(message_factory, "GetMessageClass"):  # protobuf 4.22 and later
        return message_factory.GetMessageClass(packet)
    return message_factory.MessageFactory(pool).GetPrototype(packet)  # pragma: no cover


Packet = _load_packet_class()


class BusError(RuntimeError):
    """The bus connection could not be opened, or broke."""


def encode_frame(packet: Any) -> bytes:
    body: bytes = packet.SerializeToString()
    return struct.pack(">I", len(body)) + body


def decode_result(data: bytes) -> Any:
    """The item of a code-0 reply's ``{"Ok": item}``; :class:`GsbCallError` for ``{"Err"}``."""
    try:
        data = zlib.decompress(data)
    except zlib.error:
        pass  # not compressed: the usual case
    try:
        result = flexbuffers.Loads(data)
    except Exception as exc:
        raise GsbCallError(f"unreadable reply ({len(data)} bytes): {exc}") from None
    if isinstance(result, dict) and len(result) == 1:
        ((tag, value),) = result.items()
        if tag == "Ok":
            return value
        if tag == "Err":
            raise GsbCallError(_describe(value))
    raise GsbCallError(f"reply is neither Ok nor Err: {result!r}")


def _describe(error: Any) -> str:
    if isinstance(error, dict) and len(error) == 1:
        ((variant, detail),) = error.items()
        return f"{variant}: {detail}" if detail not in (None, "") else str(variant)
    return str(error)


def remote_address(node_id: str, public_address: str) -> str:
    """The bus address of ``/public/<rest>`` on node ``node_id`` through the Golem net."""
    prefix = "/public/"
    if not public_address.startswith(prefix):
        raise ValueError(f"only /public services are reachable remotely: {public_address}")
    return f"/transfer/net/{node_id.lower()}/{public_address[len(prefix):]}"


class BusClient:
    """One connection to a node's service bus router (see the module docstring)."""

    def __init__(self, gsb_url: str, *, name: str = "golemsync-localnet",
                 connect_timeout: float = 10.0) -> None:
        self.gsb_url = gsb_url
        self._sock = _connect(gsb_url, connect_timeout)
        self._sock.settimeout(None)
        self._lock = threading.Lock()  # guards _calls, _closed and writes to the socket
        self._calls: dict[str, Future[bytes]] = {}
        self._closed: Optional[str] = None
        self.server_hello: Optional[tuple[str, str]] = None
        self._hello = threading.Event()
        hello = Packet()
        hello.hello.name = name
        hello.hello.version = CLIENT_VERSION
        hello.hello.instance_id = secrets.token_bytes(16)
        try:
            self._sock.sendall(encode_frame(hello))
        except OSError as exc:
            self._sock.close()
            raise BusError(f"service bus at {gsb_url}: cannot send Hello: {exc}") from None
        self._reader = threading.Thread(target=self._read, name="golemsync-ln-bus")
        self._reader.start()
        if not self._hello.wait(connect_timeout) or self.server_hello is None:
            self.close()
            raise BusError(f"service bus at {gsb_url} sent no Hello within "
                           f"{connect_timeout:.0f} s: is GSB_URL a yagna node's bus?")

    def __enter__(self) -> BusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call_raw(self, address: str, data: bytes) -> Future[bytes]:
        """Send one call; the Future gives the code-0 reply's data or raises GsbCallError."""
        request_id = secrets.token_hex(8)
        future: Future[bytes] = Future()
        packet = Packet()
        request = packet.call_request
        request.caller = "local"
        request.address = address
        request.request_id = request_id
        request.data = data
        frame = encode_frame(packet)
        with self._lock:
            if self._closed is not None:
                raise GsbCallError(f"service bus connection closed: {self._closed}")
            self._calls[request_id] = future
            try:
                self._sock.sendall(frame)
            except OSError as exc:
                self._calls.pop(request_id, None)
                raise GsbCallError(f"service bus: cannot send to {address}: {exc}") from None
        return future

    def call(self, address: str, component: str, payload: Mapping[str, Any]) -> Future[Any]:
        """Call message ``component`` of the service at ``address`` with a flexbuffers map;
        the Future gives the reply's item (``Ok``) or raises GsbCallError (``Err``, refusal)."""
        raw = self.call_raw(f"{address}/{component}", bytes(flexbuffers.Dumps(dict(payload))))
        typed: Future[Any] = Future()

        def settle(done: Future[bytes]) -> None:
            try:
                typed.set_result(decode_result(done.result()))
            except GsbCallError as exc:
                typed.set_exception(exc)
            except Exception as exc:  # pragma: no cover - a bug in decoding
                typed.set_exception(GsbCallError(f"{component}: {exc}"))

        raw.add_done_callback(settle)
        return typed

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed is not None

    def close(self) -> None:
        """Shut the socket, join the reader, fail every call still waiting. Idempotent."""
        self._shut("closed by golemsync")
        if self._reader is not threading.current_thread():
            self._reader.join()
        self._sock.close()

    # -- reading ---------------------------------------------------------------------------
    def _shut(self, reason: str) -> None:
        with self._lock:
            if self._closed is None:
                self._closed = reason
            stranded, self._calls = list(self._calls.values()), {}
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader's recv
        except OSError:
            pass
        for future in stranded:
            if not future.done():
                future.set_exception(GsbCallError(f"service bus connection closed: {reason}"))
        self._hello.set()

    def _read(self) -> None:
        reason = "the router closed the connection"
        try:
            while True:
                header = self._recv_exactly(4)
                if header is None:
                    break
                (length,) = struct.unpack(">I", header)
                if length > MAX_FRAME:
                    reason = f"frame of {length} bytes: lost the framing"
                    break
                body = self._recv_exactly(length)
                if body is None:
                    break
                packet = Packet.FromString(body)
                self._dispatch(packet)
        except OSError as exc:
            reason = f"connection lost ({exc})"
        except Exception as exc:  # an unreadable packet: the framing cannot be trusted
            reason = f"protocol error ({type(exc).__name__}: {exc})"
        with self._lock:
            ours = self._closed is not None
        if not ours:
            logger.warning("service bus at %s: %s", self.gsb_url, reason)
        self._shut(reason)

    def _recv_exactly(self, size: int) -> Optional[bytes]:
        chunks, missing = [], size
        while missing:
            chunk = self._sock.recv(min(missing, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def _dispatch(self, packet: Any) -> None:
        kind = packet.WhichOneof("packet")
        if kind == "call_reply":
            self._reply(packet.call_reply)
        elif kind == "hello":
            self.server_hello = (packet.hello.name, packet.hello.version)
            self._hello.set()
        elif kind == "ping":
            pong = Packet()
            pong.pong.SetInParent()
            self._send(pong)
        elif kind == "call_request":  # nothing is registered here: refuse, never leave waiting
            call = packet.call_request
            if not call.no_reply:
                answer = Packet()
                answer.call_reply.request_id = call.request_id
                answer.call_reply.code = CALL_BAD_REQUEST
                answer.call_reply.data = f"no service at {call.address}".encode()
                self._send(answer)
        else:
            logger.debug("service bus at %s: ignored %s", self.gsb_url, kind)

    def _reply(self, reply: Any) -> None:
        with self._lock:
            future = self._calls.pop(reply.request_id, None)
        if future is None:
            logger.debug("service bus: reply to unknown request %s", reply.request_id)
            return
        if reply.code != CALL_OK:
            text = bytes(reply.data).decode("utf-8", "replace")
            future.set_exception(GsbCallError(f"refused by the bus (code {reply.code}): {text}"))
        elif reply.reply_type == REPLY_PARTIAL:
            future.set_exception(GsbCallError("a streamed reply (not supported by this client)"))
        else:
            future.set_result(bytes(reply.data))

    def _send(self, packet: Any) -> None:
        frame = encode_frame(packet)
        with self._lock:
            if self._closed is not None:
                return
            try:
                self._sock.sendall(frame)
            except OSError as exc:
                logger.debug("service bus: send failed: %s", exc)


def _connect(gsb_url: str, timeout: float) -> socket.socket:
    parsed = urlparse(gsb_url if "://" in gsb_url or gsb_url.startswith("unix:")
                      else f"tcp://{gsb_url}")
    try:
        if parsed.scheme == "tcp" and parsed.hostname and parsed.port:
            return socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
        if parsed.scheme == "unix" and parsed.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(parsed.path)
            except BaseException:
                sock.close()
                raise
            return sock
    except OSError as exc:
        raise BusError(f"cannot connect to the service bus at {gsb_url}: {exc}; is the node "
                       "running, and is this its GSB_URL?") from None
    raise BusError(f"unsupported GSB_URL {gsb_url!r}: expected tcp://host:port or unix:/path")


class BusLink:
    """A node's bus connection that is opened again when it broke (the node restarted...).

    ``get`` gives the live :class:`BusClient`, connecting when there is none; ``close``
    closes it for good. Thread-safe.
    """

    def __init__(self, gsb_url: str, *, name: str = "golemsync-localnet",
                 connect_timeout: float = 10.0) -> None:
        self.gsb_url = gsb_url
        self._name = name
        self._timeout = connect_timeout
        self._lock = threading.Lock()  # guards _client and _closed; held while connecting
        self._client: Optional[BusClient] = None
        self._closed = False

    def get(self) -> BusClient:
        with self._lock:
            if self._closed:
                raise GsbCallError("the provider's bus link is closed")
            if self._client is None or self._client.closed:
                if self._client is not None:
                    self._client.close()
                try:
                    self._client = BusClient(self.gsb_url, name=self._name,
                                             connect_timeout=self._timeout)
                except BusError as exc:
                    self._client = None
                    raise GsbCallError(str(exc)) from None
            return self._client

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()


class RemoteGftp:
    """What the devnet's exe-unit asks for gftp URLs, served over a node's bus: every
    ``gftp://<node>/<name>`` is the service ``/public/gftp/<name>`` on that node."""

    def __init__(self, link: BusLink | BusClient) -> None:
        self._link = link

    def gftp_service(self, url: str) -> Optional[RemoteService]:
        scheme = "gftp://"
        if not url.startswith(scheme):
            return None
        node, _, name = url[len(scheme):].partition("/")
        if not node or not name or "/" in name:
            return None
        return RemoteService(self._link, remote_address(node, f"/public/gftp/{name}"))


class RemoteService:
    """A remote service, called like a devnet :class:`~golemsync.devnet.gsb.GsbService`."""

    def __init__(self, link: BusLink | BusClient, address: str) -> None:
        self.address = address
        self._link = link

    def call(self, component: str, payload: Mapping[str, Any]) -> Future[Any]:
        """Send one call (:class:`GsbCallError` when the bus cannot be reached)."""
        client = self._link.get() if isinstance(self._link, BusLink) else self._link
        return client.call(self.address, component, payload)
