"""gftp over a service bound through the GSB API: the exe-unit's side of ``transfer``.

A requestor program that publishes ``gftp://<node>/<name>`` through the GSB API binds
``/public/gftp/<name>``; the exe-unit then talks gftp's messages to it, as the real exe-unit
does over the Golem net: downloads ask ``GetMetadata`` (``{"fileSize"}``) and then ``GetChunk``
``{"offset", "size"}`` (a ``GftpChunk`` ``{"offset", "content"}`` back), a window of chunks in
flight; uploads send ``UploadChunk`` ``{"chunk": GftpChunk}`` and finally ``UploadFinished``
``{"hash"}`` with the SHA3-256 hex of what was sent, which the receiver checks.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import threading
import time
from concurrent.futures import Future
from typing import Any, Optional

from golemsync.devnet.gsb import GsbCallError, GsbService

CHUNK = 40 * 1024  # what the daemon's gftp asks for
DOWNLOAD_WINDOW = 12  # chunks requested ahead, as the daemon's gftp does
UPLOAD_WINDOW = 3
CALL_TIMEOUT = 60.0
_ABORT_CHECK = 0.25  # how often a wait looks at the abort flag


class GsbTransferError(Exception):
    """A gftp exchange with a bound service failed; the message says which step and why."""


class GsbSource:
    """A published file read through its service: ``read`` gives the bytes in order."""

    def __init__(self, service: GsbService, abort: threading.Event,
                 timeout: float = CALL_TIMEOUT) -> None:
        self._service = service
        self._abort = abort
        self._timeout = timeout
        metadata = self._wait(_call(service, "GetMetadata", {}), "GetMetadata")
        size = metadata.get("fileSize") if isinstance(metadata, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise GsbTransferError(f"GetMetadata gave no file size: {metadata!r}")
        self.size = size
        self._asked = 0  # offset of the next chunk to ask for
        self._window: collections.deque[tuple[int, Future[Any]]] = collections.deque()
        self._buffer = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (at most one chunk's worth); ``b""`` only at the end."""
        if not self._buffer:
            self._buffer = memoryview(self._next_chunk())
        limit = len(self._buffer) if size is None or size < 0 else size
        data, self._buffer = self._buffer[:limit], self._buffer[limit:]
        return bytes(data)

    def close(self) -> None:
        self._window.clear()  # replies still on their way are dropped by the service

    def _next_chunk(self) -> bytes:
        while len(self._window) < DOWNLOAD_WINDOW and self._asked < self.size:
            call = _call(self._service, "GetChunk", {"offset": self._asked, "size": CHUNK})
            self._window.append((self._asked, call))
            self._asked += CHUNK
        if not self._window:
            return b""
        offset, call = self._window.popleft()
        chunk = self._wait(call, "GetChunk")
        content = chunk.get("content") if isinstance(chunk, dict) else None
        expected = min(CHUNK, self.size - offset)
        if not isinstance(content, bytes) or len(content) != expected:
            got = len(content) if isinstance(content, bytes) else type(content).__name__
            raise GsbTransferError(f"GetChunk at offset {offset}: expected {expected} bytes, "
                                   f"got {got}")
        return content

    def _wait(self, call: Future[Any], step: str) -> Any:
        return wait(call, step, self._abort, self._timeout)


def upload(service: GsbService, reader: Any, abort: threading.Event, *,
           digest: Optional[Any] = None, timeout: float = CALL_TIMEOUT) -> int:
    """Send everything ``reader`` gives to a receiving service; returns the bytes sent.

    ``digest`` (a hashlib object), when given, is also fed every byte sent.
    """
    sent = 0
    sha3 = hashlib.sha3_256()
    window: collections.deque[Future[Any]] = collections.deque()
    for content in iter(lambda: reader.read(CHUNK), b""):
        sha3.update(content)
        if digest is not None:
            digest.update(content)
        window.append(_call(service, "UploadChunk",
                            {"chunk": {"offset": sent, "content": content}}))
        sent += len(content)
        if len(window) >= UPLOAD_WINDOW:
            wait(window.popleft(), "UploadChunk", abort, timeout)
    while window:
        wait(window.popleft(), "UploadChunk", abort, timeout)
    wait(_call(service, "UploadFinished", {"hash": sha3.hexdigest()}), "UploadFinished",
         abort, timeout)
    return sent


def _call(service: GsbService, component: str, payload: dict[str, Any]) -> Future[Any]:
    try:
        return service.call(component, payload)
    except GsbCallError as exc:
        raise GsbTransferError(f"{component} failed: {exc}") from None


def wait(call: Future[Any], step: str, abort: threading.Event, timeout: float) -> Any:
    """The reply's payload; :class:`GsbTransferError` on failure, timeout or abort."""
    deadline = time.monotonic() + timeout
    while True:
        if abort.is_set():
            raise GsbTransferError("activity terminated during the transfer")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GsbTransferError(f"{step}: no answer within {timeout:.0f} s")
        try:
            return call.result(min(remaining, _ABORT_CHECK))
        except concurrent.futures.TimeoutError:
            continue
        except GsbCallError as exc:
            raise GsbTransferError(f"{step} failed: {exc}") from None

