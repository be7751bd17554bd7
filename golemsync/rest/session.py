"""The transport seam: every HTTP exchange of golemsync goes through :class:`Transport`.

It owns the ``requests`` sessions (one per thread: ``requests.Session`` is not promised to be
thread-safe), the auth header, timeouts, the retry policy and the translation of every
``requests`` failure and error status into golemsync's exception tree — in this one place.

Retries (tenacity, exponential backoff with jitter, a total deadline, sleeps interruptible by
the stop event) are applied only where repeating is safe:

* a connection that could not be made (the request never left): any call;
* 503 and 429 (the server did not process the request; 429 honours ``Retry-After``): any call;
* a read timeout, 502 and 504 (the request may have been processed): idempotent calls only.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional
from urllib.parse import quote, urlsplit

import requests
import tenacity
from requests.adapters import HTTPAdapter

from .. import timestamps
from ..config import Config
from ..errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
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

logger = logging.getLogger(__name__)

#: Extra seconds of HTTP read timeout over a long-poll's server-side ``timeout``.
POLL_MARGIN = 5.0
ABSENT: Any = object()  # "send no body" (distinct from a JSON null body)

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


class Transport:
    """Blocking JSON-over-HTTP calls to the daemon, safe to use from many threads."""

    def __init__(self, config: Config, *, stop_event: Optional[threading.Event] = None,
                 retry: Optional[RetryPolicy] = None, pool_size: int = 16,
                 connect_timeout: float = 5.0, read_timeout: float = 30.0) -> None:
        self.config = config
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.retry = retry if retry is not None else RetryPolicy()
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._local = threading.local()
        self._lock = threading.Lock()  # guards _sessions, _closed, request_count
        self._sessions: list[requests.Session] = []
        self._closed = False
        self.request_count = 0

    # -- sessions -----------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        session: Optional[requests.Session] = getattr(self._local, "session", None)
        if session is not None:
            return session
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["Authorization"] = f"Bearer {self.config.app_key}"
        session.headers["Accept"] = "application/json"
        with self._lock:
            if self._closed:
                session.close()
                raise TransportError("this client is closed")
            self._sessions.append(session)
        self._local.session = session
        return session

    def close(self) -> None:
        """Close every thread's session. Idempotent; later calls raise TransportError."""
        with self._lock:
            self._closed = True
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    # -- calls --------------------------------------------------------------------------------
    def call(self, method: str, url: str, *, params: Optional[dict[str, Any]] = None,
             body: Any = ABSENT, headers: Optional[dict[str, str]] = None,
             poll: Optional[float] = None, idempotent: Optional[bool] = None) -> Any:
        """Send one request (with retries where safe) and return the parsed JSON reply.

        ``poll`` is the server-side wait of a long-poll: the read timeout becomes
        ``poll + POLL_MARGIN``. A 2xx reply with no body gives ``None``. Blocks for at most
        the retry policy's deadline plus one read timeout.
        """
        safe = method in ("GET", "HEAD", "DELETE") if idempotent is None else idempotent
        read = self.read_timeout if poll is None else poll + POLL_MARGIN
        attempt = self._retrying(safe)
        return attempt(self._once, method, url, params, body, headers, read)

    def _once(self, method: str, url: str, params: Optional[dict[str, Any]], body: Any,
              headers: Optional[dict[str, str]], read: float) -> Any:
        response = self._send(method, url, params=params, body=body, headers=headers,
                              read=read, stream=False)
        with response:
            if response.status_code >= 400:
                raise error_for(response, method, url)
            return parse_body(response, method, url)

    def open_stream(self, url: str, *, headers: dict[str, str],
                    read: float) -> requests.Response:
        """GET ``url`` as a stream (for server-sent events); the caller closes the response."""
        response = self._send("GET", url, params=None, body=ABSENT, headers=headers, read=read,
                              stream=True)
        if response.status_code >= 400:
            with response:
                raise error_for(response, "GET", url)
        return response

    def _send(self, method: str, url: str, *, params: Optional[dict[str, Any]], body: Any,
              headers: Optional[dict[str, str]], read: float, stream: bool) -> requests.Response:
        kwargs: dict[str, Any] = {"params": params, "headers": headers, "stream": stream,
                                  "timeout": (self.connect_timeout, read)}
        if body is not ABSENT:
            kwargs["data"] = json.dumps(body).encode("utf-8")
            kwargs["headers"] = {**(headers or {}), "Content-Type": "application/json"}
        with self._lock:
            self.request_count += 1
        try:
            return self._session().request(method, url, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            if isinstance(exc, requests.exceptions.ConnectTimeout) or _refused(exc):
                raise _unreachable(self.config.api_url, method, url) from exc
            raise TransportError(f"{method} {_path(url)}: connection failed ({_reason(exc)})",
                                 method=method, url=url) from exc
        except requests.exceptions.Timeout as exc:
            raise RequestTimeout(f"{method} {_path(url)}: no answer within {read:.0f} s",
                                 method=method, url=url) from exc
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"{method} {_path(url)}: {_reason(exc)}", method=method,
                                 url=url) from exc

    # -- retry policy ------------------------------------------------------------------------------
    def _retrying(self, safe: bool) -> tenacity.Retrying:
        policy = self.retry
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: transient(exc, safe)),
            stop=(tenacity.stop_after_attempt(policy.attempts)
                  | tenacity.stop_after_delay(policy.deadline)
                  | tenacity.stop_when_event_set(self.stop_event)),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda state: logger.debug(
                "retrying after %s", state.outcome.exception() if state.outcome else None),
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, (int, float)):
            return float(min(retry_after, self.retry.deadline))
        ceiling = min(self.retry.max_backoff, self.retry.backoff * 2 ** (state.attempt_number - 1))
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


def error_for(response: requests.Response, method: str, url: str) -> ApiError:
    """The golemsync exception for an error reply (JSON ``message``, problem ``detail`` or text)."""
    status = response.status_code
    body, text = _error_body(response)
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


def parse_body(response: requests.Response, method: str, url: str) -> Any:
    """Parse a success reply: JSON, or ``None`` for an empty body."""
    content = response.content
    if not content.strip():
        return None
    try:
        return json.loads(content)
    except ValueError as exc:
        snippet = content[:200].decode("utf-8", "replace")
        raise ProtocolError(f"{method} {_path(url)}: the daemon's reply is not JSON: "
                            f"{snippet!r}") from exc


def _error_body(response: requests.Response) -> tuple[Any, str]:
    text = response.content.decode("utf-8", "replace").strip()
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


def _retry_after(response: requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _unreachable(base: str, method: str, url: str) -> DaemonUnreachable:
    return DaemonUnreachable(
        f"no yagna daemon answers at {_origin(url)}: start it (`yagna service run`), point "
        "YAGNA_API_URL at it, or try golemsync without one on the devnet (`golemsync devnet`)",
        method=method, url=url)


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


