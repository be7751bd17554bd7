"""File transfer through the daemon's GSB API: no ``gftp`` program needed.

A provider's exe-unit fetches ``gftp://<requestor node>/<name>`` by calling the GSB service
``/public/gftp/<name>`` on the requestor's node. :class:`GsbStorage` binds that service
itself (``POST /gsb-api/v1/services``), listens on its WebSocket (subprotocol
``gsb+flexbuffers``) and answers gftp's messages, one named thread per service:

* a published file answers ``GetMetadata`` (``{"fileSize"}``) and ``GetChunk``
  ``{"offset", "size"}`` → ``{"offset", "content"}``, read from the file at that offset (memory
  stays bounded by the chunk the provider asks for);
* a receive slot answers ``UploadChunk`` ``{"chunk": {"offset", "content"}}`` by writing at that
  offset, and ``UploadFinished`` ``{"hash"}`` by checking the file's SHA3-256 against it.

Every publication is its own service with a fresh name; its URL carries the file's SHA3-256
as an integrity prefix (``hash:sha3:<hex>:gftp://...``), so the provider checks what it got.
Releasing a publication, finishing a receive slot and :meth:`GsbStorage.close` unbind the
service (``DELETE``), which closes its socket, and join its thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Optional, Protocol

import websocket
from flatbuffers import flexbuffers

from ..errors import GolemError, NotFound, StorageError
from .base import Published, Receiving, StorageProvider

logger = logging.getLogger(__name__)

SUBPROTOCOL = "gsb+flexbuffers"
PUBLISH = ("GetMetadata", "GetChunk")
RECEIVE = ("UploadChunk", "UploadFinished")
MAX_CHUNK = 64 << 20  # a larger GetChunk is refused rather than read into memory
_HASH_BLOCK = 1 << 20

class Responder(Protocol):
    """Answers one service's requests on its thread; closed once that thread has ended."""

    def handle(self, component: str, payload: Mapping[str, Any]) -> Any:
        """The reply's payload, or raise :class:`GftpError`."""

    def close(self) -> None: ...


class GftpError(Exception):
    """A request a service refuses; ``variant`` is gftp's error name (``ReadError``...)."""

    def __init__(self, variant: str, detail: Optional[str] = None) -> None:
        super().__init__(f"{variant}: {detail}" if detail else variant)
        self.variant = variant
        self.detail = detail

    def wire(self) -> Any:
        return self.variant if self.detail is None else {self.variant: self.detail}


class GsbStorage(StorageProvider):
    """A :class:`StorageProvider` on the daemon's GSB API (thread-safe, see the module doc).

    ``client`` is the session's :class:`~golemsync.rest.yagna.YagnaClient` (its transport
    makes the REST calls, its identity names the node in URLs). Connecting a service's socket
    waits at most ``connect_timeout`` seconds; stopping one waits at most
    ``shutdown_timeout`` for the daemon to close it, then closes it from this side.
    """

    def __init__(self, client: Any, *, connect_timeout: float = 30.0,
                 shutdown_timeout: float = 5.0) -> None:
        self._client = client
        base = client.config.api_url.rstrip("/")
        self._rest = f"{base}/gsb-api/v1/services"
        self._ws = "ws" + base[len("http"):] if base.startswith("http") else base
        self._ws += "/gsb-api/v1/services"
        self._app_key = client.config.app_key
        self._connect_timeout = connect_timeout
        self._shutdown_timeout = shutdown_timeout
        self._lock = threading.Lock()  # guards _services, _node_id, _closed
        self._services: dict[str, _Service] = {}  # services id -> running service
        self._node_id: Optional[str] = None
        self._closed = False
        self._tempdir = Path(tempfile.mkdtemp(prefix="golemsync-transfer-"))

    def __repr__(self) -> str:
        return f"GsbStorage(api={self._rest!r})"

    # -- StorageProvider ---------------------------------------------------------------------
    def publish_file(self, path: Path) -> Published:
        self._check_open()
        source = Path(path).resolve()
        if not source.is_file():  # before opening: opening a FIFO would block
            raise StorageError(f"cannot publish {path}: not a readable file")
        try:
            handle = open(source, "rb")  # owned by the service until released
        except OSError as exc:
            raise StorageError(f"cannot publish {path}: {exc.strerror or exc}") from exc
        return self._publish(handle)

    def publish_bytes(self, data: bytes) -> Published:
        self._check_open()
        temp = self._tempdir / f"send-{secrets.token_hex(8)}"
        temp.write_bytes(data)
        handle = open(temp, "rb")
        temp.unlink()  # the open handle keeps the content until the service is released
        return self._publish(handle)

    def receive_file(self, path: Optional[Path]) -> Receiving:
        """A receive slot; its ``finish(True)`` raises :class:`StorageError` (and keeps
        nothing) when the provider's upload never finished or its hash did not match."""
        self._check_open()
        final = Path(path) if path is not None else self._tempdir / f"recv-{secrets.token_hex(8)}"
        partial = final.with_name(f".{final.name}.part-{secrets.token_hex(4)}")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)  # missing directories are created
            slot = _Slot(open(partial, "w+b"))  # closed when the slot finishes
        except OSError as exc:
            raise StorageError(f"cannot receive into {final}: {exc.strerror or exc}") from exc
        try:
            service, url = self._bind(RECEIVE, slot)
        except BaseException:
            slot.close()
            partial.unlink(missing_ok=True)
            raise

        def finish(ok: bool) -> Path:
            self._stop(service)
            slot.close()
            if ok and slot.verified:
                os.replace(partial, final)
                return final
            partial.unlink(missing_ok=True)
            if ok:
                raise StorageError(f"download into {final} did not complete: "
                                   f"{slot.problem or 'the provider never finished the upload'}")
            return final

        return Receiving(url, partial, finish)

    def close(self) -> None:
        """Unbind every service still running, join their threads, delete temporary files."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            services = list(self._services.values())
        for service in services:
            self._stop(service)
        shutil.rmtree(self._tempdir, ignore_errors=True)

    # -- services ----------------------------------------------------------------------------
    def _publish(self, handle: IO[bytes]) -> Published:
        try:
            digest = _sha3(handle)
            service, url = self._bind(PUBLISH, _Source(handle))
        except BaseException:
            handle.close()
            raise
        return Published(f"hash:sha3:{digest}:{url}", lambda: self._stop(service))

    def _bind(self, components: tuple[str, ...],
              responder: Responder) -> tuple[_Service, str]:
        """Bind a fresh ``/public/gftp/<name>`` and start answering on its socket."""
        node = self._node()
        name = str(uuid.uuid4())
        reply = self._call("POST", self._rest, body={"listen": {
            "on": f"/public/gftp/{name}", "components": list(components)}}, idempotent=False)
        services_id = reply.get("servicesId") if isinstance(reply, dict) else None
        if not isinstance(services_id, str) or not services_id:
            raise StorageError(f"the daemon's GSB API gave no servicesId: {reply!r}")
        service = _Service(services_id, name, responder)
        with self._lock:
            closed = self._closed
            if not closed:
                self._services[services_id] = service
        if closed:
            self._unbind(services_id)
            raise StorageError("this storage is closed")
        try:
            service.start(self._connect(services_id))
        except BaseException:
            self._stop(service)
            raise
        return service, f"gftp://{node}/{name}"

    def _connect(self, services_id: str) -> websocket.WebSocket:
        """Open the service's socket; a 503 or 429 is retried like any REST call."""
        transport = self._client.session
        attempts, backoff = transport.retry.attempts, transport.retry.backoff
        for attempt in range(1, attempts + 1):
            try:
                return self._open_socket(services_id)
            except websocket.WebSocketBadStatusException as exc:
                if exc.status_code not in (429, 503) or attempt == attempts:
                    raise StorageError(f"the GSB API refused the WebSocket for {services_id} "
                                       f"(HTTP {exc.status_code})") from None
            delay = min(transport.retry.max_backoff, backoff * 2 ** (attempt - 1))
            if transport.stop_event.wait(delay):
                break
        raise StorageError("stopped while opening a GSB API WebSocket")

    def _open_socket(self, services_id: str) -> websocket.WebSocket:
        try:
            ws = websocket.create_connection(
                f"{self._ws}/{services_id}", header=[f"Authorization: Bearer {self._app_key}"],
                subprotocols=[SUBPROTOCOL], timeout=self._connect_timeout)
        except websocket.WebSocketBadStatusException:
            raise
        except (websocket.WebSocketException, OSError) as exc:
            raise StorageError(f"cannot open the GSB API WebSocket: {exc}") from None
        ws.settimeout(None)  # from now on the thread waits for requests as long as it takes
        return ws

    def _stop(self, service: _Service) -> None:
        """Unbind (the daemon then closes the socket), join the thread. Idempotent."""
        with self._lock:
            running = self._services.pop(service.services_id, None)
        if running is None:
            return
        self._unbind(service.services_id)
        service.stop(self._shutdown_timeout)

    def _unbind(self, services_id: str) -> None:
        try:
            self._call("DELETE", f"{self._rest}/{services_id}")
        except StorageError as exc:
            logger.debug("unbinding GSB service %s: %s", services_id, exc)

    def _check_open(self) -> None:
        with self._lock:
            if self._closed:
                raise StorageError("this storage is closed")

    def _node(self) -> str:
        self._check_open()
        with self._lock:
            node = self._node_id
        if node is None:
            try:
                node = str(self._client.identity.me().identity)
            except GolemError as exc:
                raise StorageError(f"cannot learn this node's id for gftp URLs: {exc}") from exc
            with self._lock:
                self._node_id = node
        return node

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            return self._client.session.call(method, url, **kwargs)
        except NotFound:
            if method == "DELETE":
                return None  # already unbound (a retried DELETE, or the daemon restarted)
            raise StorageError(f"the daemon has no GSB API at {self._rest} (HTTP 404)") from None
        except GolemError as exc:
            raise StorageError(f"GSB API {method} failed: {exc}") from exc


class _Service:
    """One bound service's socket and the thread that answers its requests."""

    def __init__(self, services_id: str, name: str, responder: Responder) -> None:
        self.services_id = services_id
        self.name = name
        self._responder = responder
        self._ws: Optional[websocket.WebSocket] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()

    def start(self, ws: websocket.WebSocket) -> None:
        self._ws = ws
        self._thread = threading.Thread(target=self._serve, args=(ws,),
                                        name=f"golemsync-gsb-{self.name[:8]}")
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Wait (bounded) for the daemon to close the socket, else close it; join."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._ws is not None:
                self._ws.abort()  # type: ignore[no-untyped-call]  # wakes the receive
            self._thread.join()
        if self._ws is not None:
            self._ws.shutdown()  # type: ignore[no-untyped-call]
        self._responder.close()

    def _serve(self, ws: websocket.WebSocket) -> None:
        try:
            while True:
                opcode, frame = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return
                if opcode == websocket.ABNF.OPCODE_BINARY:
                    ws.send_binary(self._answer(frame))
        except (websocket.WebSocketException, OSError) as exc:
            if not self._stopping.is_set():
                logger.warning("GSB service %s: connection lost (%s)", self.name, exc)

    def _answer(self, frame: bytes) -> bytes:
        try:
            request = flexbuffers.Loads(frame)
            request_id, component = str(request["id"]), str(request["component"])
            payload = request.get("payload") or {}
        except Exception as exc:  # a frame we cannot read: nothing to answer to
            raise websocket.WebSocketProtocolException(f"unreadable request: {exc}") from exc
        body: dict[str, Any] = {"id": request_id}
        try:
            body["payload"] = self._responder.handle(component, payload)
        except GftpError as exc:
            body["error"] = exc.wire()
        return bytes(flexbuffers.Dumps(body))


class _Source:
    """Answers a published file's requests from its open handle (this thread only)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._file = handle
        self._size = os.fstat(handle.fileno()).st_size

    def handle(self, component: str, payload: Mapping[str, Any]) -> Any:
        if component == "GetMetadata":
            return {"fileSize": self._size}
        if component != "GetChunk":
            raise GftpError("InternalError", f"unsupported message {component}")
        offset, size = payload.get("offset"), payload.get("size")
        if not isinstance(offset, int) or not isinstance(size, int) or offset < 0 or size < 0:
            raise GftpError("ReadError", f"bad GetChunk {dict(payload)!r}")
        if offset > self._size:
            raise GftpError("ReadError", f"offset {offset} is past the end ({self._size})")
        if size > MAX_CHUNK:
            raise GftpError("ReadError", f"chunks are limited to {MAX_CHUNK} bytes")
        self._file.seek(offset)
        return {"offset": offset, "content": self._file.read(min(size, self._size - offset))}

    def close(self) -> None:
        self._file.close()


class _Slot:
    """Writes a receive slot's uploads into its partial file and checks the final hash."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._file = handle
        self.verified = False
        self.problem: Optional[str] = None

    def handle(self, component: str, payload: Mapping[str, Any]) -> Any:
        if component == "UploadChunk":
            chunk = payload.get("chunk")
            content = chunk.get("content") if isinstance(chunk, dict) else None
            offset = chunk.get("offset") if isinstance(chunk, dict) else None
            if not isinstance(content, (bytes, bytearray)) or not isinstance(offset, int):
                raise GftpError("WriteError", "UploadChunk without offset and content")
            self._file.seek(offset)
            self._file.write(content)
            return None
        if component == "UploadFinished":
            return self._finished(payload.get("hash"))
        raise GftpError("InternalError", f"unsupported message {component}")

    def _finished(self, expected: Any) -> Any:
        self._file.flush()
        if isinstance(expected, str) and expected:
            actual = _sha3(self._file)
            if actual != expected.lower():
                self.problem = f"hash mismatch: the provider sent {expected}, got {actual}"
                raise GftpError("IntegrityError")
        self.verified = True
        return None

    def close(self) -> None:
        self._file.close()


def _sha3(handle: IO[bytes]) -> str:
    """SHA3-256 hex of a whole open file, read in blocks."""
    digest = hashlib.sha3_256()
    handle.seek(0)
    for block in iter(lambda: handle.read(_HASH_BLOCK), b""):
        digest.update(block)
    return digest.hexdigest()
