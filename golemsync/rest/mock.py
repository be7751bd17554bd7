"""A transport that answers from a function: the whole client without a server, for tests.

::

    def daemon(request: Request) -> Response:
        if request.path == "/me":
            return Response.from_json({"identity": "0x1"})
        return Response.from_json({"message": "no such thing"}, status=404)

    client = YagnaClient(config, transport=MockTransport(daemon))

Everything above the seam runs as with a real daemon: the auth header is added, retries
happen (a handler that answers 503 once sees the request twice), error statuses become
golemsync's exceptions and replies are parsed and size-checked. The handler may raise
:class:`~golemsync.errors.DaemonUnreachable`, :class:`~golemsync.errors.RequestTimeout` or
:class:`~golemsync.errors.TransportError` to act out a network failure, and may answer with
``Response(status, headers, chunks=<iterator>)`` to act out a streamed body (server-sent
events). Every request is recorded in :attr:`MockTransport.requests`, in order.
"""

from __future__ import annotations

import threading
from typing import Callable

from ..errors import TransportError
from .transport import Request, Response

Handler = Callable[[Request], Response]


class MockTransport:
    """Calls ``handler`` for each request (from the calling thread; it must be thread-safe
    if the client is used from several threads)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._lock = threading.Lock()  # guards requests and closed
        self.requests: list[Request] = []
        self.closed = False

    def send(self, request: Request) -> Response:
        with self._lock:
            if self.closed:
                raise TransportError("this client is closed", method=request.method,
                                     url=request.url)
            self.requests.append(request)
        return self.handler(request)

    def close(self) -> None:
        with self._lock:
            self.closed = True
