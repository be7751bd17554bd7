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
from typing import TYPE_CHECKING, Callable, Optional

from .errors import ActivityTerminated, ApiError, JobTimeout
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
        try:
            if batch:
                batch_id = self._activity.exec(self._activity_id, batch)
                self._emit(ScriptSent(provider_id=self._provider_id, provider_name=self._provider,
                                      commands=len(batch)))
                self._follow(script, batch_id, len(batch), deadline)
            ok = script._first_error() is None
        except BaseException as exc:
            script._abandon(0, f"{type(exc).__name__}: {exc}")
            raise
        finally:
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
