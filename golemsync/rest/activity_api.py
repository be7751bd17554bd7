"""Activity API (``/activity-api/v1``): activities, ExeScript batches and their results."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Optional

from ..errors import ProtocolError, TransportError
from .session import ApiSession
from .session import segment as _q
from .transport import Response
from .wire import ActivityState, ActivityUsage, ExeScriptCommandResult, RuntimeEvent, parse_id


class ActivityApi:
    """Blocking calls of the activity API."""

    def __init__(self, session: ApiSession) -> None:
        self._t = session
        self._base = session.config.activity_url

    def create_activity(self, agreement_id: str, *, timeout: float = 30.0,
                        legacy_body: bool = False) -> str:
        """Start an activity for an approved agreement; returns its id.

        Blocks until the provider's exe-unit is up (at most ``timeout`` s on the daemon).
        ``legacy_body`` sends the agreement id as a bare JSON string instead of an object;
        both reply forms are understood.
        """
        body: Any = agreement_id if legacy_body else {"agreementId": agreement_id}
        reply = self._t.call("POST", f"{self._base}/activity", params={"timeout": timeout},
                             body=body, poll=timeout, idempotent=False)
        if isinstance(reply, dict):
            return parse_id(reply.get("activityId"), "an activity id")
        return parse_id(reply, "an activity id")

    def exec(self, activity_id: str, commands: Sequence[Mapping[str, Any]]) -> str:
        """Send an ExeScript batch; returns the batch id. Never re-sent once it may have arrived."""
        body = {"text": json.dumps(list(commands))}
        reply = self._t.call("POST", f"{self._base}/activity/{_q(activity_id)}/exec", body=body,
                             idempotent=False)
        return parse_id(reply, "a batch id")

    def get_exec_results(self, activity_id: str, batch_id: str, *, timeout: float = 0.0,
                         command_index: Optional[int] = None) -> list[ExeScriptCommandResult]:
        """Results of a batch so far (from index 0), waiting up to ``timeout`` s for its end.

        With ``command_index`` the wait is for that command; :class:`PollTimeout` (408) when it
        did not finish in time. Without it a timeout just returns what is finished. The reply
        may be up to the client's ``max_exec_reply_bytes`` long (captured outputs).
        """
        params: dict[str, Any] = {"timeout": timeout}
        if command_index is not None:
            params["commandIndex"] = command_index
        url = f"{self._base}/activity/{_q(activity_id)}/exec/{_q(batch_id)}"
        reply = self._t.call("GET", url, params=params, poll=timeout,
                             limit=self._t.max_exec_reply_bytes)
        return ExeScriptCommandResult.parse_list(reply)

    def stream_exec_results(self, activity_id: str, batch_id: str, *,
                            read_timeout: float = 60.0) -> RuntimeEventStream:
        """Open the batch's server-sent event stream (open it right after ``exec``).

        Iterating raises :class:`TransportError` when nothing arrives for ``read_timeout``
        seconds (the daemon pings every 15 s on an idle stream)."""
        url = f"{self._base}/activity/{_q(activity_id)}/exec/{_q(batch_id)}"
        response = self._t.open_stream(url, headers={"Accept": "text/event-stream"},
                                       read=read_timeout)
        return RuntimeEventStream(response, line_limit=self._t.max_reply_bytes)

    def get_state(self, activity_id: str) -> ActivityState:
        return ActivityState.parse(
            self._t.call("GET", f"{self._base}/activity/{_q(activity_id)}/state"))

    def get_usage(self, activity_id: str) -> ActivityUsage:
        return ActivityUsage.parse(
            self._t.call("GET", f"{self._base}/activity/{_q(activity_id)}/usage"))

    def get_running_commands(self, activity_id: str) -> list[dict[str, Any]]:
        reply = self._t.call("GET", f"{self._base}/activity/{_q(activity_id)}/command")
        if isinstance(reply, dict):  # the Rust client's shape; the daemon sends a list
            return [reply]
        if not isinstance(reply, list):
            raise ProtocolError(f"malformed running commands: {reply!r}")
        return [dict(item) for item in reply]

    def get_agreement_id(self, activity_id: str) -> str:
        reply = self._t.call("GET", f"{self._base}/activity/{_q(activity_id)}/agreement")
        return parse_id(reply, "an agreement id")

    def list_activities(self, agreement_id: str) -> list[str]:
        reply = self._t.call("GET", f"{self._base}/activity", params={"agreementId": agreement_id})
        if not isinstance(reply, list):
            raise ProtocolError(f"malformed activity list: {reply!r}")
        return [parse_id(item, "an activity id") for item in reply]

    def destroy_activity(self, activity_id: str, *, timeout: float = 10.0) -> None:
        """Shut the activity down (its exe-unit stops; state becomes Terminated)."""
        self._t.call("DELETE", f"{self._base}/activity/{_q(activity_id)}",
                     params={"timeout": timeout}, poll=timeout)


class RuntimeEventStream:
    """Iterator over a batch's ``runtime`` events; :meth:`close` works from any thread.

    The daemon keeps the stream open after the batch ends: stop after the last command's
    ``finished`` event (or a failed one) and close it. A line longer than ``line_limit``
    bytes raises :class:`ProtocolError` (events are small; the stream is not for bulk data).
    """

    def __init__(self, response: Response, *, line_limit: int = 16 * 1024 * 1024) -> None:
        self._response = response
        self._line_limit = line_limit
        self._lock = threading.Lock()  # guards _closed
        self._closed = False

    def __iter__(self) -> Iterator[RuntimeEvent]:
        event = "message"
        data: list[str] = []
        try:
            for line in _lines(self._response.chunks, self._line_limit):
                if line == "":
                    if data and event == "runtime":
                        yield self._parse("\n".join(data))
                    event, data = "message", []
                elif line.startswith(":"):
                    continue  # keep-alive comment (":ping")
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
        except TransportError as exc:
            if not self._closed:
                raise TransportError(f"event stream broke: {exc}", method=exc.method,
                                     url=exc.url) from exc

    @staticmethod
    def _parse(text: str) -> RuntimeEvent:
        try:
            return RuntimeEvent.parse(json.loads(text))
        except ValueError as exc:
            raise ProtocolError(f"runtime event is not JSON: {text[:200]!r}") from exc

    def close(self) -> None:
        """Close the stream, from any thread: with the default transport a reader blocked in
        another thread is freed at once (its iteration ends); other transports may free it only
        at the stream's read timeout."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._response.close()

    def __enter__(self) -> RuntimeEventStream:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()


def _lines(chunks: Iterable[bytes], limit: int) -> Iterator[str]:
    """The lines of an event stream as they arrive (ends: CRLF, LF or CR), decoded as UTF-8."""
    pending = b""
    cr_last = False  # the previous chunk ended in CR: a LF opening this one is its pair
    for chunk in chunks:
        if cr_last and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        cr_last = chunk.endswith(b"\r")
        pending += chunk
        if b"\r" in pending:
            pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode("utf-8", "replace")
        if len(pending) > limit:
            raise ProtocolError(f"an event stream line is longer than {limit} bytes")
