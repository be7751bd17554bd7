"""Running one script on one activity: a single ``exec``, then one long-poll per command.

Each poll names the command it waits for (``commandIndex``): the daemon answers as soon as that
command is done, so every command's Future resolves when its own command ends, whatever the
later commands do and whatever the poll window (``poll_timeout``) is. A one-command script that
ends within the window costs one ``exec`` and one poll; a command longer than the window costs
one more poll per window (the daemon answers 408, which is normal), nothing else.

Polling for the next unsettled command also avoids the daemon's quirk with a command failing in
the middle of a batch (a poll for a *later* index would only return at the end of its window):
the failed command is the one polled for, so it is reported at once.

The activity's liveness is checked (``GET .../state``) only when something looks wrong:

* a poll fails with an error status (500 "endpoint address not found" after the exe-unit died,
  404, 410 ...): a terminated activity raises :class:`ActivityTerminated`; a live one is polled
  again after a short back-off, and the third such error in a row is raised;
* a 408 comes back well before its window ended: the batch stopped without reaching the command
  (the devnet answers so when the exe-unit crashed); counted like an error;
* no command settled for :attr:`BatchRunner.LIVENESS_INTERVAL` seconds of empty polls.

Only when a command has a progress or output callback is the batch's event stream opened too,
followed by a :class:`~golemsync.streaming.BatchListener` on its own threads (never this one):
polling and the Futures do not wait for the callbacks, and the batch ends for the worker once
the callbacks got everything (bounded; see :mod:`golemsync.streaming`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

from .command import Command, result_from_wire
from .errors import (
    ActivityTerminated,
    ApiError,
    AuthenticationError,
    JobTimeout,
    PollTimeout,
    ProtocolError,
)
from .events import CommandFinished, Event, ScriptSent
from .rest.wire import ActivityState, ExeScriptCommandResult
from .script import Script
from .streaming import BatchListener, EventStream

logger = logging.getLogger(__name__)


class ScriptTimeout(JobTimeout):
    """A script or its task ran past its deadline on a provider."""


class BootFailed(ActivityTerminated):
    """The provider could not deploy or start its runtime (the commands sent ahead of the
    first script): the provider's failure, and no attempt of the script's tasks."""


class ActivityCalls(Protocol):
    """The calls of :class:`golemsync.rest.ActivityApi` a :class:`BatchRunner` makes."""

    def exec(self, activity_id: str, commands: Sequence[Mapping[str, Any]]) -> str: ...

    def get_exec_results(self, activity_id: str, batch_id: str, *, timeout: float = 0.0,
                         command_index: Optional[int] = None
                         ) -> list[ExeScriptCommandResult]: ...

    def get_state(self, activity_id: str) -> ActivityState: ...

    def stream_exec_results(self, activity_id: str, batch_id: str, *,
                            read_timeout: float = 60.0) -> EventStream: ...


class BatchRunner:
    """Executes scripts on one activity (used only by that provider's worker thread)."""

    #: Seconds without a settled command after which the activity's state is checked.
    LIVENESS_INTERVAL = 30.0
    #: Consecutive failed (or cut-short) polls of a live activity before giving up.
    MAX_POLL_ERRORS = 3

    def __init__(
        self,
        activity: ActivityCalls,
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
        self._boot: list[Command] = []
        self._booted: Callable[[], None] = lambda: None

    def boot_with(self, commands: Sequence[Command], booted: Callable[[], None]) -> None:
        """Send ``commands`` (the activity's deploy and start) ahead of the first script's, in
        the same ``exec``: a fresh activity's first task costs one batch, not two. ``booted``
        is called once they succeeded; if one fails, :meth:`execute` raises
        :class:`BootFailed` and the script's commands did not run. The script's deadline
        (its ``timeout``, its tasks' deadlines) runs from when they are done."""
        self._boot, self._booted = list(commands), booted

    def execute(self, script: Script, deadline: Optional[float]) -> Optional[BaseException]:
        """Send ``script`` and settle every command's Future; blocks until the batch is over.

        Returns the first command error (a :class:`~golemsync.errors.CommandFailed`, or what a
        download's conversion raised), None when every command succeeded. ``deadline`` is a
        ``time.monotonic()`` instant (or None). Raises :class:`ScriptTimeout` when it passes,
        :class:`ActivityTerminated` when the activity dies (or the job stops), and any error of
        the calls it makes; in every such case the unsettled Futures are failed first ("did not
        run"). Commands whose Future was cancelled before sending are left out of the batch.
        """
        commands = script.seal()
        listener: Optional[BatchListener] = None
        completed = False  # every sent command settled by its provider's result
        error: Optional[BaseException] = None
        ok = False
        boot: list[Command] = []
        try:
            sent = [command for command in commands if command.start()]
            if sent:
                boot, self._boot = self._boot, []
                for command in boot:
                    command.start()
                batch = boot + sent
                batch_id = self._activity.exec(self._activity_id, [c.wire() for c in batch])
                self._emit(ScriptSent(provider_id=self._provider_id, provider_name=self._provider,
                                      commands=len(sent)))
                if any(c.on_progress is not None or c.on_output for c in sent):
                    listener = BatchListener(self._activity, self._activity_id, batch_id, batch,
                                             ahead=len(boot))
                self._follow(script, batch, len(boot), batch_id, deadline)
                completed = True
            failed = next((c for c in boot if c.error is not None), None)
            if failed is not None:
                raise BootFailed(f"{failed.name} failed on {self._provider}: {failed.error}",
                                 provider=self._provider) from failed.error
            error = next((c.error for c in sent if c.error is not None), None)
            ok = error is None
        except BaseException as exc:
            for command in boot + commands:
                command.abandon(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if listener is not None:
                listener.finish(completed=completed)
            for command in boot + commands:
                command.release(ok)
        return error

    def _follow(self, script: Script, batch: list[Command], booting: int, batch_id: str,
                deadline: Optional[float]) -> None:
        """Settle the batch's commands in order, one ``commandIndex`` long-poll at a time; the
        first ``booting`` are the activity's deploy and start (no deadline while they run).

        The first poll of a booting batch asks for the script's first command at once (the
        daemon's answer holds every result before it, so an ordinary start costs no poll of
        its own); if that poll times out (a slow deploy, or one that failed: the daemon then
        answers only at the end of the window), the boot commands are polled one by one."""
        began = time.monotonic()
        watch = _Watch(began)
        cursor = 0
        leap = booting > 0  # poll past the boot commands in one go
        while cursor < len(batch):
            target = booting if leap else cursor
            wait = self._window(deadline if cursor >= booting else None, script)
            items = self._poll(batch_id, cursor, target, wait, watch)
            if items is None:
                leap = False
                continue
            now = time.monotonic()
            watch.progressed(now)
            for item in items:
                ok = self._settle(batch[cursor], item, first=0 if cursor < booting else booting)
                cursor += 1
                if not ok:
                    why = f"command {item.index - booting} before it failed" \
                        if cursor > booting else f"the activity's {batch[cursor - 1].name} failed"
                    for command in batch[cursor:]:
                        command.abandon(why)
                    return
                if cursor == booting:
                    self._booted()
                    if deadline is not None:  # the script's time starts now
                        deadline += now - began
            leap = False

    def _poll(self, batch_id: str, cursor: int, index: int, wait: float,
              watch: _Watch) -> Optional[list[ExeScriptCommandResult]]:
        """Wait (``wait`` s at most) for command ``index``; the results from ``cursor`` to it,
        in order, or None to poll again."""
        began = time.monotonic()
        try:
            items = self._activity.get_exec_results(self._activity_id, batch_id, timeout=wait,
                                                    command_index=index)
        except PollTimeout as exc:
            now = time.monotonic()
            if wait >= 0.5 and now - began < wait / 2:
                self._suspect(exc, f"batch {batch_id} stopped before command {index} finished",
                              watch)
            else:
                watch.errors = 0
                if now - watch.quiet_since >= self.LIVENESS_INTERVAL:
                    self._check_alive()
                    watch.quiet_since = now
            return None
        except AuthenticationError:
            raise
        except ApiError as exc:
            self._suspect(exc, str(exc), watch)
            return None
        by_index = {item.index: item for item in items}
        wanted: list[ExeScriptCommandResult] = []
        for i in range(cursor, index + 1):
            item = by_index.get(i)
            if item is None:
                raise ProtocolError(f"results of batch {batch_id} lack command {i}: {items!r}")
            wanted.append(item)
            if item.result != "Ok":  # nothing after a failed command ran
                break
        return wanted

    def _suspect(self, exc: ApiError, what: str, watch: _Watch) -> None:
        """A poll went wrong: raise if the activity is gone, else back off (or give up)."""
        self._check_alive()
        watch.errors += 1
        if watch.errors >= self.MAX_POLL_ERRORS:
            raise ActivityTerminated(f"results unavailable on provider {self._provider}: {what}",
                                     provider=self._provider) from exc
        logger.info("results poll on %s: %s; polling again", self._provider, what)
        self._stop.wait(0.25 * 2 ** watch.errors)

    def _settle(self, command: Command, item: ExeScriptCommandResult, first: int) -> bool:
        """Settle ``command`` with ``item``; its index in its script is the batch's minus
        ``first`` (the boot commands sent ahead of it)."""
        ok = item.result == "Ok"
        index = item.index - first
        command.settle(result_from_wire(command.name, index, ok, item.stdout, item.stderr,
                                        item.message, item.event_date))
        self._emit(CommandFinished(provider_id=self._provider_id, provider_name=self._provider,
                                   index=index, command=command.name, success=ok,
                                   message=item.message))
        return ok

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
        """Raise :class:`ActivityTerminated` unless the activity's state says it is alive."""
        try:
            state = self._activity.get_state(self._activity_id)
        except AuthenticationError:
            raise  # the job's problem, not this provider's
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


@dataclass
class _Watch:
    """How one batch's polling goes: for deciding when to check the activity's liveness."""

    quiet_since: float  # monotonic time of the last settled command (or liveness check)
    errors: int = 0  # consecutive failed or cut-short polls

    def progressed(self, now: float) -> None:
        self.quiet_since = now
        self.errors = 0
