"""The devnet's HTTP server: stdlib ``http.server`` on loopback, HTTP/1.1 keep-alive.

One named, non-daemon thread per connection (so hundreds of long-polls can wait at once);
:meth:`DevnetHTTPServer.stop` stops accepting, wakes every waiting handler through
``closing``, shuts down idle keep-alive sockets and joins every thread.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlsplit

from golemsync.devnet.faults import HttpFaults
from golemsync.devnet.http import TEXT, HttpError, Request, Response, Router, json_response

logger = logging.getLogger(__name__)

OPEN_PREFIXES = ("/version/get", "/metrics-api", "/dashboard")
JOIN_TIMEOUT = 10.0


class Application:
    """Authentication, fault injection, routing and last-resort error handling."""

    def __init__(self, router: Router, app_key: str, faults: HttpFaults,
                 closing: threading.Event) -> None:
        self.router = router
        self.app_key = app_key
        self.faults = faults
        self.closing = closing

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises."""
        try:
            return self._handle(request)
        except HttpError as error:
            return error.response()
        except Exception as exc:  # the devnet keeps serving everyone else
            logger.exception("devnet: handler for %s %s failed", request.method, request.path)
            return json_response(500, {"message": f"Internal devnet error: {exc}"})

    def _handle(self, request: Request) -> Response:
        if not request.path.startswith(OPEN_PREFIXES):
            self._authenticate(request)
            if self.faults.active:
                delay, error = self.faults.draw()
                if delay:
                    self.closing.wait(delay)
                if error is not None:
                    raise error
        handler, params = self.router.resolve(request.method, request.path)
        if handler is None:
            return Response(404)
        request.params = params
        return handler(request)

    def _authenticate(self, request: Request) -> None:
        header = request.header("Authorization") or ""
        key: Optional[str] = None
        if header.lower().startswith("bearer "):
            key = header[7:].strip()
        elif "authToken" in request.query:
            key = request.query["authToken"]
        if not key:
            raise HttpError(401, "Missing application key", TEXT)
        if not hmac.compare_digest(key.encode(), self.app_key.encode()):
            raise HttpError(401, "Invalid application key", TEXT)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "golemsync-devnet"
    disable_nagle_algorithm = True  # header and body are separate writes: no 40 ms stalls
    server: DevnetHTTPServer

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("devnet %s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        try:
            request = self._read_request()
        except ValueError:
            self.close_connection = True
            self._write(Response(400, b"Bad Content-Length", TEXT))
            return
        response = self.server.application.handle(request)
        self._write(response)

    def _read_request(self) -> Request:
        parts = urlsplit(self.path)
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        return Request(self.command, parts.path, query, headers, body, raw_query=parts.query)

    def _read_chunked(self) -> bytes:
        """A ``Transfer-Encoding: chunked`` body (ValueError when malformed)."""
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"x", 16)
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(8)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        if response.stream is not None:
            self._write_stream(response)
            return
        if response.upgrade is not None:  # e.g. a WebSocket: the connection is no longer HTTP
            self.end_headers()
            self.wfile.flush()
            self.close_connection = True
            response.upgrade(self.connection, self.rfile)
            return
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)
        self.wfile.flush()

    def _write_stream(self, response: Response) -> None:
        # No length: the stream ends when the connection closes.
        self.send_header("Connection", "close")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True

        def write(chunk: bytes) -> None:
            self.wfile.write(chunk)
            self.wfile.flush()

        assert response.stream is not None
        response.stream(write)


class DevnetHTTPServer(ThreadingHTTPServer):
    """A loopback HTTP server with one named non-daemon thread per connection."""

    daemon_threads = False
    block_on_close = False  # stop() joins the threads itself
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, port: int, application: Application) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.application = application
        self._lock = threading.Lock()  # guards _threads and _sockets
        self._conn_threads: set[threading.Thread] = set()
        self._sockets: dict[int, socket.socket] = {}
        self._counter = itertools.count(1)
        self._loop: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        """Serve in a background thread ``golemsync-devnet-http``."""
        self._loop = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                      name="golemsync-devnet-http", daemon=False)
        self._loop.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        name = f"golemsync-devnet-conn-{next(self._counter)}"
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address),
                                  name=name, daemon=False)
        with self._lock:
            self._conn_threads.add(thread)
            self._sockets[id(request)] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: tuple[str, int]) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._lock:
                self._sockets.pop(id(request), None)
                self._conn_threads.discard(threading.current_thread())
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("devnet: connection from %s ended with an error", client_address,
                     exc_info=True)

    def stop(self, wake: Callable[[], None]) -> None:
        """Stop accepting, ``wake`` the waiters, close every connection and join all threads."""
        if self._loop is not None:
            self.shutdown()
            self._loop.join()
        wake()
        with self._lock:
            sockets = list(self._sockets.values())
            threads = list(self._conn_threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("devnet: %s did not stop in time", thread.name)
        self.server_close()
