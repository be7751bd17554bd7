"""The layer above the transport seam: what every call to the daemon has in common.

:class:`ApiSession` turns a call (method, URL, query parameters, JSON body) into a
:class:`~golemsync.rest.transport.Request`, sends it through a
:class:`~golemsync.rest.transport.Transport` and turns the reply back into parsed JSON. It
owns, in this one place and for every transport alike: the auth header, timeouts, request
counting, the retry policy and the translation of failures and error statuses into
golemsync's exception tree.

Retries (tenacity, exponential backoff with jitter, a total deadline, sleeps interruptible by
the stop event) are applied only where repeating is safe:

* a connection that could not be made (the request never left): any call;
* 503 and 429 (the server did not process the request; 429 honours ``Retry-After``): any call;
* a read timeout, 502 and 504 (the request may have been processed): idempotent calls only.

Every reply is read with a size limit, never into memory beyond it: ``max_reply_bytes``
(:data:`MAX_REPLY`, 16 MiB) for JSON replies and ``max_exec_reply_bytes``
(:data:`MAX_EXEC_REPLY`, 200 MiB) for ExeScript results: a provider captures up to 16 MiB
of each of stdout and stderr, and JSON escaping can make a byte six.
A reply past its limit raises :class:`ProtocolError` naming the endpoint and the limit (and
is not retried); the connection is dropped rather than drained. Error replies are read up to
:data:`ERROR_BODY_LIMIT` for their message, the rest ignored.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional
from urllib.parse import quote, urlencode, urlsplit

import tenacity

from .. import timestamps
from ..config import Config
from ..errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    Conflict,
    DaemonUnreachable,
    Forbidden,
    Gone,
    NotFound,
    NotImplementedByDaemon,
    PollTimeout,
    ProtocolError,
    RequestTimeout,
    ServerError,
    TransportError,
)
from .transport import Request, Response, Transport, Urllib3Transport

logger = logging.getLogger(__name__)

#: Extra seconds of HTTP read timeout over a long-poll's server-side ``timeout``.
POLL_MARGIN = 5.0
ABSENT: Any = object()  # "send no body" (distinct from a JSON null body)
#: The default size limit of a JSON reply's body.
MAX_REPLY = 16 * 1024 * 1024
#: The default size limit of an ExeScript results reply (captured outputs can be big).
MAX_EXEC_REPLY = 200 * 1024 * 1024  # two 16 MiB captures, JSON-escaped (up to 6x), and more
#: How much of an error reply's body is read (for its message); the rest is dropped.
ERROR_BODY_LIMIT = 64 * 1024

_STATUS_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: AuthenticationError, 403: Forbidden, 404: NotFound,
    408: PollTimeout, 409: Conflict, 410: Gone, 501: NotImplementedByDaemon,
}


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: ``attempts`` at most, within ``deadline`` seconds,
    sleeping ``backoff`` × 2ⁿ (capped at ``max_backoff``, with full jitter) between tries."""

    attempts: int = 5
    backoff: float = 0.2
    max_backoff: float = 3.0
    deadline: float = 20.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError(f"RetryPolicy.attempts must be at least 1, not "
                                     f"{self.attempts} (1 means: never retry)")
        if self.backoff < 0 or self.max_backoff < 0 or self.deadline <= 0:
            raise ConfigurationError("RetryPolicy: backoff and max_backoff cannot be negative "
                                     "and deadline must be positive")


@dataclass(frozen=True)
class ClientOptions:
    """How the client talks to the daemon, as one value (settings objects can hold one).

    ``retry``: the retry policy; ``connect_timeout`` / ``read_timeout``: seconds to connect
    and to wait for a reply (long-polls wait their own timeout plus :data:`POLL_MARGIN`);
    ``pool_size``: pooled connections of the default transport; ``max_reply_bytes`` /
    ``max_exec_reply_bytes``: the reply size limits; ``proxies``: a scheme-to-proxy-URL
    mapping for the default transport (none by default, the environment is not consulted).
    Invalid values raise :class:`ConfigurationError`.
    """

    retry: RetryPolicy = RetryPolicy()
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    pool_size: int = 16
    max_reply_bytes: int = MAX_REPLY
    max_exec_reply_bytes: int = MAX_EXEC_REPLY
    proxies: Optional[Mapping[str, str]] = None

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "pool_size", "max_reply_bytes",
                     "max_exec_reply_bytes"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"ClientOptions.{name} must be positive, not "
                                         f"{getattr(self, name)!r}")


class ApiSession:
    """Blocking JSON-over-HTTP calls to the daemon, safe to use from many threads.

    ``transport`` defaults to a :class:`~golemsync.rest.transport.Urllib3Transport` built
    from ``options`` (its pool size and proxies). :meth:`close` closes whichever transport it uses.
    """

    def __init__(self, config: Config, options: Optional[ClientOptions] = None, *,
                 transport: Optional[Transport] = None,
                 stop_event: Optional[threading.Event] = None) -> None:
        options = options if options is not None else ClientOptions()
        if transport is not None and options.proxies is not None:
            raise ConfigurationError("proxies configure the default transport: give them to "
                                     "the transport passed as transport= instead")
        self.config = config
        self.options = options
        self.transport: Transport = (
            transport if transport is not None
            else Urllib3Transport(pool_size=options.pool_size, proxies=options.proxies))
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.retry = options.retry
        self.connect_timeout = options.connect_timeout
        self.read_timeout = options.read_timeout
        self.max_reply_bytes = options.max_reply_bytes
        self.max_exec_reply_bytes = options.max_exec_reply_bytes
        self._headers = {"Authorization": f"Bearer {config.app_key}",
                         "Accept": "application/json"}
        self._lock = threading.Lock()  # guards request_count
        self.request_count = 0

    def close(self) -> None:
        """Close the transport. Idempotent; later calls raise TransportError."""
        self.transport.close()

    # -- calls --------------------------------------------------------------------------------
    def call(self, method: str, url: str, *, params: Optional[dict[str, Any]] = None,
             body: Any = ABSENT, headers: Optional[dict[str, str]] = None,
             poll: Optional[float] = None, idempotent: Optional[bool] = None,
             limit: Optional[int] = None) -> Any:
        """Send one request (with retries where safe) and return the parsed JSON reply.

        ``poll`` is the server-side wait of a long-poll: the read timeout becomes
        ``poll + POLL_MARGIN``. A 2xx reply with no body gives ``None``; one larger than
        ``limit`` bytes (default ``max_reply_bytes``) raises :class:`ProtocolError`. Blocks
        for at most the retry policy's deadline plus one read timeout.
        """
        safe = method in ("GET", "HEAD", "DELETE") if idempotent is None else idempotent
        read = self.read_timeout if poll is None else poll + POLL_MARGIN
        request = self._request(method, url, params, body, headers, read, stream=False)
        limit = self.max_reply_bytes if limit is None else limit
        started = time.monotonic()
        try:  # the first attempt runs bare: building a retry loop per call costs more CPU
            return self._once(request, limit)  # than the request itself on a busy job
        except Exception as exc:
            if (not transient(exc, safe) or self.retry.attempts <= 1
                    or self.stop_event.is_set()):
                raise
            first = exc
        # the policy's later attempts, as one tenacity loop: its back-off, deadline and stop
        # event, counted from the first attempt
        self._sleep(self._backoff(first, 1))
        elapsed = time.monotonic() - started
        if self.stop_event.is_set() or elapsed >= self.retry.deadline:
            raise first
        attempt = self._retrying(safe, self.retry.attempts - 1, self.retry.deadline - elapsed)
        return attempt(self._once, request, limit)

    def _once(self, request: Request, limit: int) -> Any:
        response = self._send(request)
        try:
            if response.status >= 400:
                raise error_for(response, request.method, request.url)
            content = response.read(limit, f"{request.method} {_path(request.url)}")
        finally:
            response.close()
        return parse_body(content, request.method, request.url)

    def open_stream(self, url: str, *, headers: dict[str, str], read: float) -> Response:
        """GET ``url`` as a stream (for server-sent events); the caller closes the response."""
        request = self._request("GET", url, None, ABSENT, headers, read, stream=True)
        response = self._send(request)
        if response.status >= 400:
            try:
                raise error_for(response, "GET", url)
            finally:
                response.close()
        return response

    def _request(self, method: str, url: str, params: Optional[dict[str, Any]], body: Any,
                 headers: Optional[dict[str, str]], read: float, stream: bool) -> Request:
        all_headers = dict(self._headers)
        if headers:
            all_headers.update(headers)
        data: Optional[bytes] = None
        if body is not ABSENT:
            data = json.dumps(body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        return Request(method, with_query(url, params), all_headers, data,
                       self.connect_timeout, read, stream)

    def _send(self, request: Request) -> Response:
        with self._lock:
            self.request_count += 1
        try:
            return self.transport.send(request)
        except DaemonUnreachable as exc:
            raise _unreachable(request.method, request.url) from exc

    # -- retry policy ------------------------------------------------------------------------------
    def _retrying(self, safe: bool, attempts: int, deadline: float) -> tenacity.Retrying:
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: transient(exc, safe)),
            stop=(tenacity.stop_after_attempt(attempts)
                  | tenacity.stop_after_delay(deadline)
                  | tenacity.stop_when_event_set(self.stop_event)),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda state: logger.debug(
                "retrying after %s", state.outcome.exception() if state.outcome else None),
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        return self._backoff(error, state.attempt_number + 1)  # the bare first one came before

    def _backoff(self, error: Optional[BaseException], failed: int) -> float:
        """Seconds to sleep after ``failed`` attempts, the last of which raised ``error``."""
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, (int, float)):
            return float(min(retry_after, self.retry.deadline))
        ceiling = min(self.retry.max_backoff, self.retry.backoff * 2 ** (failed - 1))
        return random.uniform(0, ceiling)

    def _sleep(self, seconds: float) -> None:
        self.stop_event.wait(seconds)


def event_query(timeout: float, after: Optional[datetime], max_events: Optional[int],
                app_session_id: Optional[str]) -> dict[str, Any]:
    """Query parameters of the event long-polls (``afterTimestamp`` is strictly-after)."""
    params: dict[str, Any] = {"timeout": timeout}
    if after is not None:
        params["afterTimestamp"] = timestamps.to_wire(after)
    if max_events is not None:
        params["maxEvents"] = max_events
    if app_session_id is not None:
        params["appSessionId"] = app_session_id
    return params


def segment(value: str) -> str:
    """Quote an id for use as one URL path segment (ids are opaque strings)."""
    return quote(value, safe="")


def transient(exc: BaseException, safe: bool) -> bool:
    """Whether ``exc`` may be retried (see the module docstring)."""
    if isinstance(exc, DaemonUnreachable):
        return True
    if isinstance(exc, ApiError):
        if exc.status in (429, 503):
            return True
        return safe and exc.status in (502, 504)
    return safe and isinstance(exc, (RequestTimeout, TransportError))


def with_query(url: str, params: Optional[dict[str, Any]]) -> str:
    """``url`` with ``params`` as its query string (``None`` values are left out).

    Commas stay literal: the daemon splits lists such as ``allocationIds=a,b`` itself and
    answers 400 to the percent-encoded ``a%2Cb`` (yagna 0.17.6).
    """
    if not params:
        return url
    pairs = [(key, _query_text(value)) for key, value in params.items() if value is not None]
    if not pairs:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode(pairs, safe=',')}"


def _query_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def error_for(response: Response, method: str, url: str) -> ApiError:
    """The golemsync exception for an error reply (JSON ``message``, problem ``detail`` or text).

    Only the first :data:`ERROR_BODY_LIMIT` bytes of an error body are read.
    """
    status = response.status
    body, text = _error_body(response.read_prefix(ERROR_BODY_LIMIT))
    server = _server_message(body, text)
    path = _path(url)
    cls = _STATUS_ERRORS.get(status) or (ServerError if status >= 500 else ApiError)
    if status == 401:
        message = (f"the daemon at {_origin(url)} refused the application key ({server}): "
                   "check YAGNA_APPKEY (`yagna app-key list` shows the keys)")
    else:
        message = f"{method} {path} failed with HTTP {status}: {server}"
    error = cls(message, status=status, method=method, url=url, server_message=server, body=body)
    if status == 429:
        error.retry_after = _retry_after(response)  # type: ignore[attr-defined]
    return error


def parse_body(content: bytes, method: str, url: str) -> Any:
    """Parse a success reply: JSON, or ``None`` for an empty body."""
    if not content.strip():
        return None
    try:
        return json.loads(content)
    except ValueError as exc:
        snippet = content[:200].decode("utf-8", "replace")
        raise ProtocolError(f"{method} {_path(url)}: the daemon's reply is not JSON: "
                            f"{snippet!r}") from exc


def _error_body(content: bytes) -> tuple[Any, str]:
    text = content.decode("utf-8", "replace").strip()
    if not text:
        return None, ""
    try:
        return json.loads(text), text
    except ValueError:
        return None, text


def _server_message(body: Any, text: str) -> str:
    if isinstance(body, dict):
        for key in ("message", "detail", "title"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
        return "no message"
    if isinstance(body, str):
        return body
    return text[:500] or "no message"


def _retry_after(response: Response) -> Optional[float]:
    value = response.header("Retry-After") or ""
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _unreachable(method: str, url: str) -> DaemonUnreachable:
    return DaemonUnreachable(
        f"no yagna daemon answers at {_origin(url)}: start it (`yagna service run`), point "
        "YAGNA_API_URL at it, or try golemsync without one on the devnet (`golemsync devnet`)",
        method=method, url=url)


def _path(url: str) -> str:
    return urlsplit(url).path


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
