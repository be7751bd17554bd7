"""Server-sent events for exec results: ``event: runtime`` frames, ``:ping`` keep-alives.

Like the daemon, the stream stays open after the batch ends; it ends when the client goes
away (a write fails) or the devnet stops.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Optional, Protocol

from golemsync.devnet.http import Response


class EventSubscriptionLike(Protocol):
    """One subscriber's view of a batch's runtime events (the exe-unit's side)."""

    def get(self, timeout: float) -> Optional[dict[str, Any]]: ...

    def close(self) -> None: ...

EVENT_STREAM = "text/event-stream"
_POLL = 0.25  # how often a quiet stream re-checks for shutdown


def frame(event: dict[str, Any], counter: int) -> bytes:
    """One SSE event as the daemon writes it."""
    data = json.dumps(event, separators=(",", ":"))
    return f"event: runtime\ndata: {data}\nid: {counter}\n\n".encode()


def sse_stream(subscription: EventSubscriptionLike, ping_interval: float,
               closing: threading.Event) -> Response:
    """A streaming 200 reply that relays ``subscription`` until the client or devnet leaves."""

    def run(write: Callable[[bytes], None]) -> None:
        try:
            _relay(subscription, write, ping_interval, closing)
        except OSError:
            pass  # the client closed the stream: the normal way it ends
        finally:
            subscription.close()

    return Response(200, content_type=EVENT_STREAM, stream=run)


def _relay(subscription: EventSubscriptionLike, write: Callable[[bytes], None],
           ping_interval: float, closing: threading.Event) -> None:
    counter = 0
    last_write = time.monotonic()
    while not closing.is_set():
        event: Optional[dict[str, Any]] = subscription.get(min(_POLL, ping_interval))
        if event is not None:
            write(frame(event, counter))
            counter += 1
            last_write = time.monotonic()
        elif time.monotonic() - last_write >= ping_interval:
            write(b":ping\n\n")
            last_write = time.monotonic()
