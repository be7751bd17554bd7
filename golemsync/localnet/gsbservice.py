"""A GSB service bound on a yagna node through its GSB API (``/gsb-api/v1``).

``POST /gsb-api/v1/services {"listen": {"on": <address>, "components": [...]}}`` binds the
address on the node's service bus (201 ``{"servicesId"}``); the daemon then forwards every
call to it over the WebSocket ``/gsb-api/v1/services/<servicesId>`` (subprotocol
``gsb+flexbuffers``): binary frames holding flexbuffers maps ``{"id", "component",
"payload"}``, answered with ``{"id", "payload"}`` or ``{"id", "error"}``, where ``error`` is the
message's error enum as serde writes it (``{"notFound": "..."}``, or a bare ``"timeout"``).

Requests are answered on a small thread pool, so a long-poll (``GetExecBatchResults`` with a
timeout) does not hold up the others; replies are sent under a lock. ``close`` unbinds the
service (the daemon then closes the socket), joins the reader thread and the pool.

This module is the localnet provider's own, small counterpart of the requestor-side GSB
code in ``golemsync.storage.gsb``; the frame format is the same.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

import requests
import websocket

from golemsync.devnet.gsbwire import FrameError, Reply, decode_request, encode_reply

logger = logging.getLogger(__name__)

SUBPROTOCOL = "gsb+flexbuffers"


class ServiceError(Exception):
    """A call the handler refuses; ``wire`` is the error enum value sent back."""

    def __init__(self, variant: str, detail: Optional[str] = None) -> None:
        super().__init__(f"{variant}: {detail}" if detail is not None else variant)
        self.variant = variant
        self.detail = detail

    def wire(self) -> Any:
        return self.variant if self.detail is None else {self.variant: self.detail}


Handler = Callable[[str, Mapping[str, Any]], Any]


class BoundService:
    """One bound address and the threads answering it. ``close`` is idempotent."""

    def __init__(self, api_url: str, app_key: str, address: str, components: Sequence[str],
                 handler: Handler, *, workers: int = 4, connect_timeout: float = 15.0) -> None:
        self.address = address
        self._api = api_url.rstrip("/") + "/gsb-api/v1/services"
        self._headers = {"Authorization": f"Bearer {app_key}"}
        self._handler = handler
        reply = requests.post(self._api, headers=self._headers, timeout=connect_timeout,
                              json={"listen": {"on": address, "components": list(components)}})
        if reply.status_code != 201:
            raise RuntimeError(f"binding {address}: HTTP {reply.status_code} {reply.text}")
        self.services_id = str(reply.json()["servicesId"])
        ws_base = "ws" + self._api[len("http"):]
        try:
            self._ws = websocket.create_connection(
                f"{ws_base}/{self.services_id}", timeout=connect_timeout,
                header=[f"Authorization: Bearer {app_key}"], subprotocols=[SUBPROTOCOL])
        except BaseException:
            self._unbind()
            raise
        self._ws.settimeout(None)
        self._send_lock = threading.Lock()
        self._closing = threading.Event()
        self._closed = False
        short = address.rsplit("/", 1)[-1][:8]
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"golemsync-ln-gsb-{short}")
        self._reader = threading.Thread(target=self._read, name=f"golemsync-ln-gsbread-{short}")
        self._reader.start()

    def close(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._unbind()
        self._reader.join(timeout)
        if self._reader.is_alive():
            self._ws.abort()  # type: ignore[no-untyped-call]  # wakes the blocked receive
            self._reader.join()
        self._pool.shutdown(wait=True)
        self._ws.shutdown()  # type: ignore[no-untyped-call]

    def _unbind(self) -> None:
        try:
            requests.delete(f"{self._api}/{self.services_id}", headers=self._headers, timeout=10)
        except requests.RequestException as exc:
            logger.debug("unbinding %s: %s", self.address, exc)

    def _read(self) -> None:
        try:
            while True:
                opcode, frame = self._ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return
                if opcode == websocket.ABNF.OPCODE_BINARY:
                    self._pool.submit(self._answer, bytes(frame))
        except (websocket.WebSocketException, OSError, RuntimeError) as exc:
            if not self._closing.is_set():
                logger.warning("GSB service %s: connection lost (%s)", self.address, exc)

    def _answer(self, frame: bytes) -> None:
        try:
            request_id, component, payload = decode_request(frame)
        except FrameError:
            logger.warning("GSB service %s: unreadable frame dropped", self.address)
            return
        try:
            reply = Reply(request_id, payload=self._handler(component, payload))
        except ServiceError as exc:
            reply = Reply(request_id, error=exc.wire())
        except Exception as exc:
            logger.exception("GSB service %s: %s failed", self.address, component)
            reply = Reply(request_id, error={"service": f"{type(exc).__name__}: {exc}"})
        data = encode_reply(reply)
        try:
            with self._send_lock:
                self._ws.send_binary(data)
        except (websocket.WebSocketException, OSError) as exc:
            if not self._closing.is_set():
                logger.warning("GSB service %s: reply lost (%s)", self.address, exc)

