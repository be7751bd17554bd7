"""The transport seam: one HTTP exchange in, one reply out, nothing else.

Everything golemsync sends over HTTP — the daemon's REST API and the image registry — goes
through a :class:`Transport`: ``send(Request) -> Response`` and ``close()``. A transport knows
nothing of yagna: it does not add the auth header, retry, count requests or interpret status
codes; :class:`~golemsync.rest.session.ApiSession` does all that above it, the same way for
every transport. Three implementations ship:

* :class:`Urllib3Transport`, the default for the daemon: thread-safe ``urllib3`` pools, the
  layer ``requests`` is built on, without ``requests``' per-request settings merging
  (cookies, hooks, environment), which cost more CPU than everything else the client does.
  It never reads the environment; ``proxies=`` configures one explicitly.
* :class:`RequestsTransport`: ``requests`` sessions (one per thread, since a
  ``requests.Session`` is not promised to be thread-safe) with a connection pool of
  ``pool_size``. The sessions ignore the environment (``trust_env=False``): ``requests``
  would otherwise look for proxy variables and ``.netrc`` on every request, which costs CPU
  and would send the local daemon's traffic through a proxy. Pass ``proxies=`` (a
  ``requests``-style mapping such as ``{"http": "http://proxy:3128"}``) to use one
  explicitly, or ``trust_env=True`` to restore requests' environment lookups (the image
  registry, a public internet service, does that).
* :class:`~golemsync.rest.mock.MockTransport`, which answers from a handler function, for
  tests that want the whole client (retries, error mapping, parsing) without a server.

Contract of ``send``:

* It returns as soon as the status line and headers are in; the body is read from
  :attr:`Response.chunks` (an iterator of byte strings), so the caller decides how much of it
  to read (:meth:`Response.read` enforces a size limit without reading past it). Always
  :meth:`Response.close` the response.
* ``Request.stream`` asks for chunks to be handed over as soon as they arrive (server-sent
  events) rather than in large blocks.
* Failures before a reply raise golemsync's transport errors: :class:`DaemonUnreachable` when
  no connection could be made (the request never left, so any call may be retried),
  :class:`RequestTimeout` when no answer came within ``Request.read_timeout``, and
  :class:`TransportError` for anything else (the request may have arrived). Iterating the
  body raises the same errors.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol
from urllib.parse import parse_qsl, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, ReadTimeoutError
from urllib3.exceptions import HTTPError as Urllib3Error

from ..errors import DaemonUnreachable, ProtocolError, RequestTimeout, TransportError

#: Size of the blocks a non-streamed body is read in.
CHUNK_SIZE = 64 * 1024


@dataclass(frozen=True)
class Request:
    """One HTTP request. ``url`` is absolute and already carries its encoded query string."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Optional[bytes] = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    stream: bool = False

    @property
    def path(self) -> str:
        """The URL's path (``/activity-api/v1/activity``)."""
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        """The decoded query parameters (the last value of a repeated one)."""
        return dict(parse_qsl(urlsplit(self.url).query, keep_blank_values=True))

    def header(self, name: str) -> Optional[str]:
        """A request header, looked up case-insensitively."""
        return _lookup(self.headers, name)

    def json(self) -> Any:
        """The body decoded as JSON (``None`` without a body)."""
        return None if self.body is None else json.loads(self.body)


@dataclass(frozen=True)
class Response:
    """One HTTP reply: status, headers and the body as an iterator of byte strings.

    ``on_close`` releases what the transport holds (the connection); :meth:`close` calls it.
    """

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] = ()
    on_close: Optional[Callable[[], None]] = field(default=None, compare=False)

    @classmethod
    def from_bytes(cls, body: bytes = b"", *, status: int = 200,
                   headers: Optional[Mapping[str, str]] = None) -> Response:
        """A reply with a body known in advance (for mock transports)."""
        all_headers = {"Content-Length": str(len(body)), **(headers or {})}
        return cls(status, all_headers, (body,) if body else ())

    @classmethod
    def from_json(cls, data: Any, *, status: int = 200,
                  headers: Optional[Mapping[str, str]] = None) -> Response:
        """A JSON reply (for mock transports)."""
        return cls.from_bytes(json.dumps(data).encode("utf-8"), status=status,
                              headers={"Content-Type": "application/json", **(headers or {})})

    def header(self, name: str) -> Optional[str]:
        """A reply header, looked up case-insensitively."""
        return _lookup(self.headers, name)

    def read(self, limit: int, what: str = "the reply") -> bytes:
        """The whole body, at most ``limit`` bytes.

        A larger body (by its ``Content-Length`` or by what arrives) raises
        :class:`ProtocolError` naming ``what`` and the limit as soon as the limit is passed:
        the rest is never read. Does not close the response.
        """
        length = self.header("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise _too_large(what, limit, f"it announces {int(length)} bytes")
        parts: list[bytes] = []
        size = 0
        for chunk in self.chunks:
            size += len(chunk)
            if size > limit:
                raise _too_large(what, limit, "more arrived")
            parts.append(chunk)
        return b"".join(parts)

    def read_prefix(self, limit: int) -> bytes:
        """At most the first ``limit`` bytes of the body; the rest is left unread."""
        parts: list[bytes] = []
        size = 0
        for chunk in self.chunks:
            parts.append(chunk[: limit - size])
            size += len(parts[-1])
            if size >= limit:
                break
        return b"".join(parts)

    def close(self) -> None:
        """Release the connection (an unread body is dropped, not drained). Idempotent."""
        if self.on_close is not None:
            self.on_close()


def _too_large(what: str, limit: int, detail: str) -> ProtocolError:
    return ProtocolError(f"{what}: the reply is larger than the limit of {limit} bytes "
                         f"({detail}); raise the client's reply limit if this is expected")


def _lookup(headers: Mapping[str, str], name: str) -> Optional[str]:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


class Transport(Protocol):
    """The seam's interface (structural: any object with these two methods will do).

    :class:`RequestsTransport` and :class:`~golemsync.rest.mock.MockTransport` implement it.
    Implementations must be safe to call from many threads at once.
    """

    def send(self, request: Request) -> Response:
        """Send ``request``; see the module docstring for what it returns and raises."""

    def close(self) -> None:
        """Release every connection. Idempotent; later sends raise :class:`TransportError`."""


class RequestsTransport:
    """The default transport: ``requests``, one session per thread, pooled connections."""

    def __init__(self, *, pool_size: int = 16, proxies: Optional[Mapping[str, str]] = None,
                 trust_env: bool = False) -> None:
        self.pool_size = pool_size
        self.proxies = dict(proxies or {})
        self.trust_env = trust_env
        self._local = threading.local()
        self._lock = threading.Lock()  # guards _sessions and _closed
        self._sessions: list[requests.Session] = []
        self._closed = False

    def _session(self) -> requests.Session:
        session: Optional[requests.Session] = getattr(self._local, "session", None)
        if session is not None:
            return session
        session = requests.Session()
        session.trust_env = self.trust_env
        session.proxies.update(self.proxies)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        with self._lock:
            if self._closed:
                session.close()
                raise TransportError("this client is closed")
            self._sessions.append(session)
        self._local.session = session
        return session

    def send(self, request: Request) -> Response:
        method, url = request.method, request.url
        if self._closed:  # a thread's session outlives close() in its thread-local
            raise TransportError("this client is closed", method=method, url=url)
        try:
            reply = self._session().request(
                method, url, headers=dict(request.headers), data=request.body, stream=True,
                timeout=(request.connect_timeout, request.read_timeout))
        except requests.exceptions.ConnectionError as exc:
            if isinstance(exc, requests.exceptions.ConnectTimeout) or _refused(exc):
                raise DaemonUnreachable(f"{method} {_path(url)}: cannot connect to "
                                        f"{_origin(url)} ({_reason(exc)})", method=method,
                                        url=url) from exc
            raise TransportError(f"{method} {_path(url)}: connection failed ({_reason(exc)})",
                                 method=method, url=url) from exc
        except requests.exceptions.Timeout as exc:
            raise _timeout(request) from exc
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"{method} {_path(url)}: {_reason(exc)}", method=method,
                                 url=url) from exc
        closer = _interrupting_closer(reply) if request.stream else reply.close
        return Response(reply.status_code, reply.headers, _body(reply, request), closer)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


class Urllib3Transport:
    """The default transport: ``urllib3`` connection pools, shared by every thread.

    The daemon's API is a plain JSON exchange on loopback (or a LAN), and golemsync sends a
    few of them per task; ``requests`` adds, per request, the merging of session settings,
    cookie jars and hooks that none of them use — most of the client's CPU on a busy job (see
    ``bench/profile_client.py``). This transport goes one layer down, to the pools
    ``requests`` itself is built on: one :class:`urllib3.PoolManager` (thread-safe), no
    retries or redirects of its own (:class:`~golemsync.rest.session.ApiSession` decides
    those), nothing read from the environment. ``proxies`` maps a URL scheme (``"http"``,
    ``"https"``) to a proxy URL, as with :class:`RequestsTransport`; without one, requests go
    directly.
    """

    def __init__(self, *, pool_size: int = 16,
                 proxies: Optional[Mapping[str, str]] = None) -> None:
        self.pool_size = pool_size
        self.proxies = dict(proxies or {})
        self._direct = urllib3.PoolManager(num_pools=8, maxsize=pool_size, retries=False)
        self._proxied = {scheme: urllib3.ProxyManager(url, num_pools=8, maxsize=pool_size,
                                                      retries=False)
                         for scheme, url in self.proxies.items()}
        self._timeouts: dict[tuple[float, Optional[float]], urllib3.Timeout] = {}
        self._closed = False

    def _timeout(self, request: Request) -> urllib3.Timeout:
        key = (request.connect_timeout, request.read_timeout)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = urllib3.Timeout(connect=request.connect_timeout,
                                                            read=request.read_timeout)
        return timeout

    def send(self, request: Request) -> Response:
        if self._closed:
            raise TransportError("this client is closed", method=request.method,
                                 url=request.url)
        method, url = request.method, request.url
        manager = self._proxied.get(url.partition(":")[0], self._direct) if self._proxied \
            else self._direct
        try:
            reply = manager.urlopen(method, url, body=request.body,
                                    headers=dict(request.headers),
                                    timeout=self._timeout(request), retries=False,
                                    redirect=False, preload_content=False)
        except ConnectTimeoutError as exc:  # NewConnectionError (refused, no name) too
            raise DaemonUnreachable(f"{method} {_path(url)}: cannot connect to "
                                    f"{_origin(url)} ({_reason(exc)})", method=method,
                                    url=url) from exc
        except ReadTimeoutError as exc:
            raise _timeout(request) from exc
        except (Urllib3Error, OSError) as exc:
            raise TransportError(f"{method} {_path(url)}: {_reason(exc)}", method=method,
                                 url=url) from exc

        def close() -> None:
            if reply.closed:
                reply.release_conn()  # read to the end: the connection is clean for reuse
                return
            if request.stream:  # wake a reader blocked on it in another thread
                sock = _raw_socket(reply)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            reply.close()  # a body left unread: the connection cannot be reused
            reply.release_conn()

        return Response(reply.status, reply.headers, _raw_body(reply, request), close)

    def close(self) -> None:
        self._closed = True
        self._direct.clear()
        for manager in self._proxied.values():
            manager.clear()


def _raw_body(reply: Any, request: Request) -> Iterator[bytes]:
    """The body of a urllib3 ``reply`` in blocks, failures mapped to transport errors."""
    try:
        while True:
            # read1: whatever has arrived, at once (an event must not wait for a block to
            # fill); a plain body is read in whole blocks
            chunk = reply.read1(CHUNK_SIZE) if request.stream else reply.read(CHUNK_SIZE)
            if not chunk:
                return
            yield chunk
    except ReadTimeoutError as exc:
        raise _timeout(request) from exc
    except (Urllib3Error, OSError, ValueError, AttributeError) as exc:
        # ValueError/AttributeError: the response was closed under the reader
        raise _broken(request, exc) from exc


def _interrupting_closer(reply: requests.Response) -> Callable[[], None]:
    """``close`` for a streamed reply that also frees a reader blocked in another thread.

    Closing a socket does not wake a thread blocked reading it (it waits for its read
    timeout); shutting the connection down does, so an event stream stops at once.
    """
    def close() -> None:
        sock = _socket_of(reply)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        reply.close()
    return close


def _socket_of(reply: requests.Response) -> Optional[socket.socket]:
    """The socket a reply is read from (see :func:`_raw_socket`)."""
    return _raw_socket(reply.raw)


def _raw_socket(raw: Any) -> Optional[socket.socket]:
    """The socket a urllib3 reply is read from: urllib3's connection holds it, unless the
    reply is delimited by the connection's end (``Connection: close``): then only
    http.client's response file does. None when neither is found (then close waits for the
    read timeout)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if not isinstance(sock, socket.socket):
        buffered = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(buffered, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _body(reply: requests.Response, request: Request) -> Iterator[bytes]:
    """The body of ``reply`` in blocks, ``requests`` failures mapped to transport errors."""
    raw = reply.raw
    read1 = getattr(raw, "read1", None)
    try:
        if request.stream and read1 is not None:
            # whatever has arrived, at once: an event must not wait for a block to fill
            while True:
                chunk = read1(CHUNK_SIZE, decode_content=True)
                if not chunk:
                    return
                yield chunk
        else:
            # without read1 (urllib3 < 2) a stream is read byte-wise for the same reason
            yield from reply.iter_content(1 if request.stream else CHUNK_SIZE)
    except requests.exceptions.ConnectionError as exc:
        if any(isinstance(arg, ReadTimeoutError) for arg in exc.args):
            raise _timeout(request) from exc
        raise _broken(request, exc) from exc
    except ReadTimeoutError as exc:  # read1 raises urllib3's errors directly
        raise _timeout(request) from exc
    except (requests.exceptions.RequestException, Urllib3Error, OSError, ValueError,
            AttributeError) as exc:
        # ValueError/AttributeError: the response was closed under the reader
        raise _broken(request, exc) from exc


def _timeout(request: Request) -> RequestTimeout:
    return RequestTimeout(f"{request.method} {_path(request.url)}: no answer within "
                          f"{request.read_timeout:.0f} s", method=request.method,
                          url=request.url)


def _broken(request: Request, exc: BaseException) -> TransportError:
    return TransportError(f"{request.method} {_path(request.url)}: the reply broke off "
                          f"({_reason(exc)})", method=request.method, url=request.url)


def _refused(exc: requests.exceptions.ConnectionError) -> bool:
    text = repr(exc)
    return any(s in text for s in ("Connection refused", "NewConnectionError",
                                   "Failed to establish", "Name or service not known"))


def _reason(exc: BaseException) -> str:
    return type(exc).__name__ if not str(exc) else str(exc)[:300]


def _path(url: str) -> str:
    return urlsplit(url).path


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
