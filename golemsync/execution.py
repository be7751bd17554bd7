"""Running one script on one activity: a single ``exec``, then long-polls of its results.

Each poll asks the daemon to wait (``timeout``) until the batch is finished; commands that
finish inside that window come back in one reply, so a script normally costs one ``exec`` and
one poll. A poll that returns early with part of the batch settles those commands' Futures at
once. Results always start at index 0; a cursor skips what was already settled.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from .errors import ActivityTerminated, ApiError, GolemError, JobTimeout
from .events import CommandFinished, Event, ScriptSent
from .script import Script, result_from_wire

if TYPE_CHECKING:
    from .rest import ActivityApi

logger = logging.getLogger(__name__)


class ScriptTimeout(JobTimeout):
    """A script or its task ran past its deadline on a provider."""


class BatchRunner:
    """Executes scripts on one activity (used only by that provider's worker thread)."""

    def __init__(
        self,
        activity: ActivityApi,
        activity_id: str,
        *,
        provider_id: str,
        provider_name: str,
        poll_timeout: float,
        stop: threading.Event,
        emit: Callable[[Event], None],
    ) -> None:
        self._activity = activity
        self._activity_id = activity_id
        self._provider = provider_name
        self._provider_id = provider_id
        self._emit = emit
        self._poll_timeout = poll_timeout
        self._stop = stop

    def execute(self, script: Script, deadline: Optional[float]) -> None:
        """Send ``script`` and settle every command's Future; blocks until the batch is over.

        ``deadline`` is a ``time.monotonic()`` instant (or None). Raises :class:`ScriptTimeout`
        when it passes and :class:`ActivityTerminated` when the activity dies; in both cases
        the unsettled Futures are failed first. A failed command is not raised here: its
        Future holds the error.
        """
        batch = script._begin()
        ok = False
        listener: Optional[ProgressListener] = None
        try:
            if batch:
                batch_id = self._activity.exec(self._activity_id, batch)
                self._emit(ScriptSent(provider_id=self._provider_id, provider_name=self._provider,
                                      commands=len(batch)))
                if any(c.on_progress is not None for c in script.commands):
                    listener = ProgressListener(self._activity, self._activity_id, batch_id,
                                                script)
                self._follow(script, batch_id, len(batch), deadline)
            ok = script._first_error() is None
        except BaseException as exc:
            script._abandon(0, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if listener is not None:
                listener.stop()
            script._cleanup(ok)

    def _follow(self, script: Script, batch_id: str, count: int, deadline: Optional[float]) -> None:
        cursor = 0
        while cursor < count:
            wait = self._window(deadline, script)
            results = self._activity.get_exec_results(self._activity_id, batch_id, timeout=wait)
            progressed = False
            for item in results[cursor:]:
                command = script.commands[item.index]
                ok = item.result == "Ok"
                script._resolve(
                    item.index,
                    result_from_wire(command.name, item.index, ok, item.stdout, item.stderr,
                                     item.message, item.event_date),
                )
                cursor = item.index + 1
                progressed = True
                self._emit(CommandFinished(provider_id=self._provider_id,
                                           provider_name=self._provider, index=item.index,
                                           command=command.name, success=ok,
                                           message=item.message))
                if not ok:
                    script._abandon(cursor, f"command {item.index} before it failed")
                    return
            if not progressed:
                self._check_alive()

    def _window(self, deadline: Optional[float], script: Script) -> float:
        if self._stop.is_set():
            raise ActivityTerminated("the job is stopping", provider=self._provider)
        if deadline is None:
            return self._poll_timeout
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ScriptTimeout(
                f"{script!r} did not finish in time on provider {self._provider}"
            )
        return min(self._poll_timeout, remaining)

    def _check_alive(self) -> None:
        """After a poll window with no progress, make sure the activity still exists."""
        try:
            state = self._activity.get_state(self._activity_id)
        except ApiError as exc:
            raise ActivityTerminated(
                f"activity on {self._provider} is unreachable: {exc}", provider=self._provider
            ) from exc
        if not state.alive:
            reason = state.reason or state.error_message or "no reason given"
            raise ActivityTerminated(
                f"provider {self._provider} terminated the activity ({reason})",
                provider=self._provider,
            )


class ProgressListener:
    """Follows a batch's runtime events and hands transfer progress to the callbacks.

    Runs on its own thread (``golemsync-progress-...``) while the batch runs; callbacks run
    there too, so a slow one never delays result polling. The stream is read with a short
    read timeout, so :meth:`stop` is noticed within it; after an idle timeout the stream is
    opened again (progress values already delivered are not repeated).
    """

    READ_TIMEOUT = 1.0

    def __init__(self, activity: ActivityApi, activity_id: str, batch_id: str,
                 script: Script) -> None:
        self._activity = activity
        self._ids = (activity_id, batch_id)
        self._script = script
        self._stop = threading.Event()
        self._delivered: dict[int, int] = {}  # command index -> bytes last reported
        self._thread = threading.Thread(target=self._run,
                                        name=f"golemsync-progress-{batch_id[:8]}")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                stream = self._activity.stream_exec_results(*self._ids,
                                                            read_timeout=self.READ_TIMEOUT)
            except GolemError as exc:
                logger.info("no progress for batch %s: %s", self._ids[1], exc)
                return
            try:
                if self._follow(stream):
                    return
            finally:
                stream.close()

    def _follow(self, stream: Any) -> bool:
        """Read events until the batch ends (True) or the stream idles/breaks (False)."""
        last = len(self._script.commands) - 1
        try:
            for event in stream:
                if event.kind == "progress":
                    self._deliver(event.index, event.payload)
                elif event.kind == "finished" and (event.index >= last or _failed(event)):
                    return True
                if self._stop.is_set():
                    return True
        except GolemError:
            return self._stop.is_set()
        return True

    def _deliver(self, index: int, payload: Any) -> None:
        try:
            callback = self._script.commands[index].on_progress
            moved, total = payload["progress"]
        except (IndexError, KeyError, TypeError, ValueError):
            return
        if callback is None or moved <= self._delivered.get(index, -1):
            return
        self._delivered[index] = moved
        try:
            callback(int(moved), None if total is None else int(total))
        except Exception:
            logger.exception("progress callback raised")

    def stop(self) -> None:
        """Ask the listener to end and wait for it (at most about the read timeout)."""
        self._stop.set()
        self._thread.join(self.READ_TIMEOUT + 5)


def _failed(event: Any) -> bool:
    payload = event.payload if isinstance(event.payload, dict) else {}
    return bool(payload.get("return_code"))
