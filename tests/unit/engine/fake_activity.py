"""A small in-memory activity for BatchRunner tests: the few ActivityApi calls it makes.

It answers the results long-poll as the daemon does (PROTOCOL §4.6): it really waits (on a
condition, up to the requested timeout) for the command asked for, answers 408 when that
command did not finish in time, and with ``commandIndex`` gives output only for that item.
The test plays the provider: :meth:`FakeActivity.finish` ends the next command,
:meth:`FakeActivity.crash` makes the exe-unit die, :meth:`FakeActivity.destroy` removes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any, Optional

from golemsync.errors import PollTimeout, ServerError, TransportError
from golemsync.rest.wire import ActivityState, ExeScriptCommandResult, RuntimeEvent

BATCH_ID = "b" * 32


@dataclass
class Poll:
    """One results poll the runner made."""

    timeout: float
    command_index: Optional[int]


@dataclass
class FakeActivity:
    """One activity with at most one batch at a time; thread-safe (the runner polls from the
    worker thread while the test finishes commands from its own)."""

    activity_id: str = "act-1"
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    polls: list[Poll] = field(default_factory=list)
    state_checks: int = 0
    state: str = "Ready"
    destroyed: bool = False
    #: errors the next polls raise, in order (before looking at results)
    poll_errors: list[Exception] = field(default_factory=list)
    exec_error: Optional[Exception] = None
    events: list[RuntimeEvent] = field(default_factory=list)
    # guards every field above and below; notified on any change
    cond: threading.Condition = field(default_factory=threading.Condition)
    _results: list[ExeScriptCommandResult] = field(default_factory=list)
    _ended: bool = False  # the batch will produce no more results

    # -- the provider side, played by the test ---------------------------------------------
    def finish(self, ok: bool = True, *, stdout: Any = None, stderr: Any = None,
               message: Optional[str] = None) -> datetime:
        """End the next command of the current batch; returns its eventDate."""
        with self.cond:
            index = len(self._results)
            assert index < len(self.batches[-1]), "no command left to finish"
            when = datetime.now(timezone.utc)
            last = index == len(self.batches[-1]) - 1
            self._results.append(ExeScriptCommandResult(
                index=index, result="Ok" if ok else "Error", event_date=when, stdout=stdout,
                stderr=stderr, message=message, is_batch_finished=last or not ok))
            self._ended = last or not ok
            self.cond.notify_all()
        return when

    def crash(self) -> None:
        """The exe-unit dies: the batch ends unfinished and the state becomes Terminated."""
        with self.cond:
            self.state = "Terminated"
            self._ended = True
            self.cond.notify_all()

    def destroy(self) -> None:
        """The activity is gone: calls on its exe-unit answer 500 as the daemon does."""
        with self.cond:
            self.destroyed = True
            self.state = "Terminated"
            self._ended = True
            self.cond.notify_all()

    def wait_for(self, *, polls: int = 0, batches: int = 0, timeout: float = 10.0) -> None:
        """Block until the runner has made ``polls`` polls and sent ``batches`` batches."""
        with self.cond:
            assert self.cond.wait_for(
                lambda: len(self.polls) >= polls and len(self.batches) >= batches, timeout
            ), f"runner made {len(self.polls)} polls, {len(self.batches)} batches"

    # -- the ActivityApi calls -------------------------------------------------------------
    def exec(self, activity_id: str, commands: Sequence[Mapping[str, Any]]) -> str:
        assert activity_id == self.activity_id
        with self.cond:
            if self.exec_error is not None:
                raise self.exec_error
            self._gone()
            self.batches.append([dict(c) for c in commands])
            self._results, self._ended = [], False
            self.cond.notify_all()
        return BATCH_ID

    def get_exec_results(self, activity_id: str, batch_id: str, *, timeout: float = 0.0,
                         command_index: Optional[int] = None) -> list[ExeScriptCommandResult]:
        assert (activity_id, batch_id) == (self.activity_id, BATCH_ID)
        with self.cond:
            self.polls.append(Poll(timeout, command_index))
            self.cond.notify_all()
            if self.poll_errors:
                raise self.poll_errors.pop(0)
            self._gone()
            target = len(self.batches[-1]) - 1 if command_index is None else command_index
            deadline = time.monotonic() + timeout
            while len(self._results) <= target and not self._ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(remaining)
            self._gone()
            if len(self._results) <= target and command_index is not None:
                raise PollTimeout("Timeout", status=408)
            items = list(self._results[: target + 1])
        if command_index is not None and items:
            items = [_without_output(item) for item in items[:-1]] + [items[-1]]
        return items

    def get_state(self, activity_id: str) -> ActivityState:
        with self.cond:
            self.state_checks += 1
            return ActivityState(self.state)

    def stream_exec_results(self, activity_id: str, batch_id: str, *,
                            read_timeout: float = 60.0) -> FakeStream:
        return FakeStream(self, read_timeout)

    def _gone(self) -> None:
        if self.destroyed:
            raise ServerError("GSB error: GSB failure: Bad request: endpoint address not found",
                              status=500)


def _without_output(item: ExeScriptCommandResult) -> ExeScriptCommandResult:
    return ExeScriptCommandResult(index=item.index, result=item.result,
                                  event_date=item.event_date, message=item.message,
                                  is_batch_finished=item.is_batch_finished)


class FakeStream:
    """The batch's runtime events: those in ``activity.events``, as they are added."""

    def __init__(self, activity: FakeActivity, read_timeout: float) -> None:
        self._activity = activity
        self._read_timeout = read_timeout
        self._closed = False

    def __iter__(self) -> Iterator[RuntimeEvent]:
        cond, events, cursor = self._activity.cond, self._activity.events, 0
        while True:
            with cond:
                if not cond.wait_for(partial(self._ready, cursor), self._read_timeout):
                    raise TransportError("event stream idle")
                if self._closed:
                    return
                event = events[cursor]
            cursor += 1
            yield event

    def _ready(self, cursor: int) -> bool:
        return self._closed or cursor < len(self._activity.events)

    def close(self) -> None:
        with self._activity.cond:
            self._closed = True
            self._activity.cond.notify_all()
