"""The devnet's small HTTP toolkit: requests, responses, errors and a path router.

Handlers are plain functions ``handler(request) -> Response``; they signal daemon-style errors
by raising :class:`HttpError`, which carries the exact status and body the daemon would send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from re import Pattern
from typing import Any, Callable, Optional

from golemsync import timestamps

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
TEXT = "text/plain; charset=utf-8"


class HttpError(Exception):
    """An error reply: ``status`` with a JSON (or plain-text) ``body``."""

    def __init__(self, status: int, body: Any, content_type: str = JSON) -> None:
        super().__init__(f"{status}: {body!r}")
        self.status = status
        self.body = body
        self.content_type = content_type

    @classmethod
    def message(cls, status: int, message: Optional[str]) -> HttpError:
        """The daemon's usual error body ``{"message": ...}``."""
        return cls(status, {"message": message})

    def response(self) -> Response:
        if self.content_type == TEXT:
            return Response(self.status, str(self.body).encode(), TEXT)
        return Response(self.status, _dump(self.body), self.content_type)


StreamBody = Callable[[Callable[[bytes], None]], None]
Upgrade = Callable[[Any, Any], None]  # (socket, buffered reader): runs the switched protocol


@dataclass
class Response:
    """A reply; ``stream`` (when set) writes the body itself, chunk by chunk, until it returns.

    ``upgrade`` (with a 101) takes the connection over once the headers are sent.
    """

    status: int
    body: bytes = b""
    content_type: Optional[str] = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: Optional[StreamBody] = None
    upgrade: Optional[Upgrade] = None


def json_response(status: int, value: Any) -> Response:
    """A JSON reply (``None`` is the literal ``null`` the daemon sends)."""
    return Response(status, _dump(value), JSON)


def empty(status: int) -> Response:
    """A reply with no body (204, and the daemon's empty 200s)."""
    return Response(status)


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class Request:
    """One parsed HTTP request as handlers see it."""

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    raw_query: str = ""  # the query string as sent, before decoding

    def header(self, name: str) -> Optional[str]:
        """A request header, looked up case-insensitively (``headers`` keys are lower-case)."""
        return self.headers.get(name.lower())

    def json(self, *, wrap: bool = True) -> Any:
        """The body as JSON, as actix's JSON extractor reads it; errors are 400.

        ``wrap`` gives the market's ``{"message": ...}`` body; otherwise the plain-text body
        the activity and payment APIs send. A non-JSON ``Content-Type`` is refused like actix.
        """
        content_type = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise _body_error("Content type error", wrap)
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _body_error(f"Json deserialize error: {exc}", wrap) from exc

    def json_object(self, *, wrap: bool = True) -> dict[str, Any]:
        """The body as a JSON object, else 400."""
        value = self.json(wrap=wrap)
        if not isinstance(value, dict):
            raise _body_error("Json deserialize error: expected a JSON object", wrap)
        return value

    def query_float(self, name: str, default: float) -> float:
        """A float query parameter (400 when unparseable); negative values count as 0."""
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise HttpError(400, f"Query deserialize error: invalid {name}", TEXT) from None
        return max(0.0, value) if value == value else default

    def query_int(self, name: str) -> Optional[int]:
        """An optional integer query parameter (400 when unparseable)."""
        raw = self.query.get(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise HttpError(400, f"Query deserialize error: invalid {name}", TEXT) from None

    def query_time(self, name: str) -> Optional[datetime]:
        """An optional RFC 3339 query parameter (400 when unparseable)."""
        raw = self.query.get(name)
        if not raw:
            return None
        try:
            return timestamps.parse(raw)
        except ValueError:
            raise HttpError(400, f"Query deserialize error: invalid {name}", TEXT) from None


def websocket_key(request: Request, *,
                  no_connection: str = "No Connection upgrade") -> str:
    """The client's ``Sec-WebSocket-Key`` of an upgrade request; 400 in text, as the daemon's
    actix answers, when it is none. ``no_connection`` is the text when ``Connection`` lacks
    ``upgrade`` (the daemon's net API says the same as for a missing ``Upgrade``)."""
    if (request.header("Upgrade") or "").lower() != "websocket":
        raise HttpError(400, "No WebSocket Upgrade header found", TEXT)
    if "upgrade" not in (request.header("Connection") or "").lower():
        raise HttpError(400, no_connection, TEXT)
    if (request.header("Sec-WebSocket-Version") or "") != "13":
        raise HttpError(400, "Unsupported WebSocket version", TEXT)
    key = request.header("Sec-WebSocket-Key")
    if not key:
        raise HttpError(400, "Handshake error", TEXT)
    return key


def _body_error(text: str, wrap: bool) -> HttpError:
    return HttpError.message(400, text) if wrap else HttpError(400, text, TEXT)


Handler = Callable[[Request], Response]


class Router:
    """Maps ``METHOD /path/{param}`` patterns to handlers."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method.upper(), re.compile(f"^{regex}$"), handler))

    def resolve(self, method: str, path: str) -> tuple[Optional[Handler], dict[str, str]]:
        """The handler for a request and its path parameters; ``(None, {})`` when none."""
        for route_method, regex, handler in self._routes:
            match = regex.match(path)
            if match and route_method == method.upper():
                return handler, match.groupdict()
        return None, {}
