"""Following a batch while it runs: transfer progress and streamed command output.

When a script has a command with ``on_progress`` or ``on_stdout``/``on_stderr``, the engine
opens the batch's event stream (``GET /activity/{id}/exec/{batch}`` with ``Accept:
text/event-stream``) right after ``exec`` and hands it to a :class:`BatchListener`; without
such a command no stream is opened (a one-command script stays one ``exec`` and its polls).

The listener has two threads per batch, neither of them the one that polls for results:

* a **reader** (``golemsync-events-<batch>``) reads the stream, cuts output into lines and
  queues them; it never runs user code, so it keeps up with the provider;
* a **deliverer** (``golemsync-output-<batch>``) runs the callbacks, one at a time, in the
  order the provider produced the output.

Rules the callbacks can rely on:

* ``on_stdout(line)`` / ``on_stderr(line)`` get whole lines of text, without the line end
  (``\\n`` or ``\\r\\n``), decoded as UTF-8 with undecodable bytes replaced (U+FFFD). The last
  line is delivered when its command ends even if it has no line end. A line longer than
  :attr:`BatchListener.MAX_LINE` characters is delivered in pieces of that size.
* A command's Future resolves when the command ends, whether or not its lines were all
  delivered (a slow callback never delays it). The script's batch is over for the worker —
  ``yield script`` returns — only after every line was delivered, or after
  :attr:`BatchListener.DRAIN_TIMEOUT` seconds of waiting for a slow callback at the end; what
  is still undelivered then is dropped and a warning logged.
* At most :attr:`BatchListener.MAX_BUFFERED` characters wait for a slow callback; lines
  arriving while the buffer is full are dropped (whole lines, never part of one), and a
  warning is logged once per batch with the count at the end. Nothing is lost from the
  command's result: ``CommandResult.stdout`` still holds the whole output.
* An exception raised by a callback is logged (with its traceback) the first time, counted
  after that, and never fails the task; the callback keeps receiving the following lines.
* The yagna daemon streams only what is produced after the stream is connected (the listener
  connects right after ``exec``); output of the command's first instant can be missing from
  the callbacks there (it is in the result). The devnet sends a batch's events from its start.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Optional, Protocol

from .command import Command, Progress
from .errors import GolemError
from .rest.wire import RuntimeEvent

logger = logging.getLogger(__name__)

OUTPUT_STREAMS = ("stdout", "stderr")


class EventStream(Protocol):
    """A batch's runtime events (``ActivityApi.stream_exec_results``)."""

    def __iter__(self) -> Iterator[RuntimeEvent]: ...

    def close(self) -> None: ...


class StreamOpener(Protocol):
    """The call of :class:`golemsync.rest.ActivityApi` the listener makes."""

    def stream_exec_results(self, activity_id: str, batch_id: str, *,
                            read_timeout: float = 60.0) -> EventStream: ...


@dataclass
class _Delivery:
    """One queued callback call."""

    callback: Callable[..., None]
    args: tuple[Any, ...]
    what: str  # e.g. "on_stdout of command 2", for the log
    size: int  # characters it holds in the buffer


class _Lines:
    """Cuts one output stream's chunks into lines (text chunks, or bytes decoded as UTF-8)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._part: list[str] = []
        self._size = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: Any) -> list[str]:
        if isinstance(chunk, str):
            text = chunk
        elif isinstance(chunk, list):
            text = self._decoder.decode(bytes(chunk))
        else:
            return []
        lines: list[str] = []
        while text:
            end = text.find("\n")
            piece, text = (text, "") if end < 0 else (text[:end], text[end + 1:])
            self._part.append(piece)
            self._size += len(piece)
            if end >= 0:
                lines.extend(self._take(complete=True))
            elif self._size >= self._limit:
                lines.extend(self._take(complete=False))
        return lines

    def flush(self) -> list[str]:
        """What is left when the command ends (its last line without a line end)."""
        self._part.append(self._decoder.decode(b"", final=True))
        return self._take(complete=True) if any(self._part) else []

    def _take(self, complete: bool) -> list[str]:
        line = "".join(self._part)
        self._part, self._size = [], 0
        if complete and line.endswith("\r"):
            line = line[:-1]
        pieces = [line[i:i + self._limit] for i in range(0, len(line), self._limit)] or [""]
        if not complete:  # keep the unfinished tail for the next chunk
            tail = pieces.pop() if len(pieces[-1]) < self._limit else ""
            self._part, self._size = ([tail], len(tail)) if tail else ([], 0)
        return pieces


class BatchListener:
    """Follows one batch's events and runs its commands' progress and output callbacks.

    ``commands`` are the commands sent, in batch order (their index is their position); the
    first ``ahead`` of them are not the script's (the activity's deploy and start), so the
    messages name a command by its index in the script.
    Call :meth:`finish` once the batch is over (it joins both threads).
    """

    #: Seconds without any bytes on the stream before it counts as broken (the daemon and
    #: the devnet send a keep-alive every 15 s).
    READ_TIMEOUT = 30.0
    #: Characters of output waiting for a slow callback, at most, per batch.
    MAX_BUFFERED = 1 << 20
    #: Longest line delivered whole (characters); longer lines come in pieces of this size.
    MAX_LINE = 64 << 10
    #: Seconds the end of a batch waits for the callbacks to take what is still queued.
    DRAIN_TIMEOUT = 10.0
    #: Seconds a batch that ended normally waits for the stream's last events.
    GRACE = 5.0
    #: Times a broken stream is opened again (events already seen are skipped).
    REOPENS = 3

    def __init__(self, activity: StreamOpener, activity_id: str, batch_id: str,
                 commands: Sequence[Command], *, ahead: int = 0) -> None:
        self._activity = activity
        self._ahead = ahead
        self._ids = (activity_id, batch_id)
        self._progress: list[Optional[Progress]] = [c.on_progress for c in commands]
        self._output: list[Mapping[str, Callable[[str], None]]] = [
            c.on_output for c in commands]
        self._lines = {(i, name): _Lines(self.MAX_LINE)
                       for i, outputs in enumerate(self._output) for name in outputs}
        self._moved: dict[int, int] = {}  # command index -> bytes last reported (reader only)
        self._last: Optional[tuple[datetime, int]] = None  # newest stamp seen, events at it
        self._skip: Optional[tuple[datetime, int]] = None  # what a reopened stream replays
        self._skipped = 0
        self._cond = threading.Condition()  # guards everything below
        self._queue: deque[_Delivery] = deque()
        self._buffered = 0
        self._dropped = 0  # characters dropped because the buffer was full
        self._discard = False  # the drain timed out: drop what is left
        self._read_done = False
        self._stopping = False
        self._stream: Optional[EventStream] = None
        self._failures: dict[str, int] = {}  # callback description -> times it raised
        tag = batch_id[:8]
        self._reader = threading.Thread(target=self._read, name=f"golemsync-events-{tag}")
        self._deliverer = threading.Thread(target=self._deliver, daemon=True,
                                           name=f"golemsync-output-{tag}")
        self._deliverer.start()
        self._reader.start()

    # -- the reader thread --------------------------------------------------------------------
    def _read(self) -> None:
        try:
            for _ in range(1 + self.REOPENS):
                try:
                    stream = self._activity.stream_exec_results(
                        *self._ids, read_timeout=self.READ_TIMEOUT)
                except GolemError as exc:
                    logger.info("no live events for batch %s: %s", self._ids[1], exc)
                    return
                with self._cond:
                    if self._stopping:
                        stream.close()
                        return
                    self._stream = stream
                try:
                    if self._follow(stream):
                        return
                finally:
                    with self._cond:
                        self._stream = None
                    stream.close()
                self._skip, self._skipped = self._last, 0
            logger.warning("the event stream of batch %s kept breaking; streamed output and "
                           "progress stop here (results are not affected)", self._ids[1])
        finally:
            for (index, name), lines in self._lines.items():
                self._queue_lines(index, name, lines.flush())
            with self._cond:
                self._read_done = True
                self._cond.notify_all()

    def _follow(self, stream: EventStream) -> bool:
        """Read events until the batch ends (True) or the stream breaks (False)."""
        last = len(self._output) - 1
        try:
            for event in stream:
                if not self._fresh(event):
                    continue
                if event.kind in OUTPUT_STREAMS:
                    lines = self._lines.get((event.index, event.kind))
                    if lines is not None:
                        self._queue_lines(event.index, event.kind, lines.feed(event.payload))
                elif event.kind == "progress":
                    self._queue_progress(event.index, event.payload)
                elif event.kind == "finished":
                    for name in OUTPUT_STREAMS:
                        lines = self._lines.get((event.index, name))
                        if lines is not None:
                            self._queue_lines(event.index, name, lines.flush())
                    if event.index >= last or _failed(event):
                        return True
                with self._cond:
                    if self._stopping:
                        return True
        except GolemError as exc:
            with self._cond:
                if self._stopping:
                    return True
            logger.info("event stream of batch %s broke: %s", self._ids[1], exc)
            return False
        with self._cond:
            return self._stopping

    def _fresh(self, event: RuntimeEvent) -> bool:
        """False for an event a reopened stream repeats (the devnet replays from the start;
        the daemon sends only new events): judged by timestamps, which never go back."""
        stamp = event.timestamp
        if stamp is None:
            return True
        if self._skip is not None:
            newest, count = self._skip
            if stamp < newest:
                return False
            if stamp == newest and self._skipped < count:
                self._skipped += 1
                return False
            self._skip = None
        if self._last is not None and self._last[0] == stamp:
            self._last = (stamp, self._last[1] + 1)
        else:
            self._last = (stamp, 1)
        return True

    def _queue_lines(self, index: int, name: str, lines: list[str]) -> None:
        if not lines:
            return
        callback = self._output[index][name]
        what = f"on_{name} of command {index - self._ahead}"
        for line in lines:
            self._put(_Delivery(callback, (line,), what, len(line) + 1))

    def _queue_progress(self, index: int, payload: Any) -> None:
        try:
            callback = self._progress[index]
            moved, total = payload["progress"]
            moved = int(moved)
            total = None if total is None else int(total)
        except (IndexError, KeyError, TypeError, ValueError):
            return
        if callback is None or moved <= self._moved.get(index, -1):
            return
        self._moved[index] = moved
        what = f"progress of command {index - self._ahead}"
        self._put(_Delivery(callback, (moved, total), what, 64))

    def _put(self, item: _Delivery) -> None:
        with self._cond:
            if self._buffered + item.size > self.MAX_BUFFERED:
                if not self._dropped:
                    logger.warning(
                        "output callbacks of batch %s are slower than the command's output: "
                        "over %d characters wait, so new lines are dropped until they catch "
                        "up (the command's result keeps the whole output)",
                        self._ids[1], self.MAX_BUFFERED)
                self._dropped += item.size
                return
            self._buffered += item.size
            self._queue.append(item)
            self._cond.notify_all()

    # -- the deliverer thread -----------------------------------------------------------------
    def _deliver(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._read_done:
                    self._cond.wait()
                if not self._queue or self._discard:
                    return
                item = self._queue.popleft()
                self._buffered -= item.size
            try:
                item.callback(*item.args)
            except Exception:
                with self._cond:
                    count = self._failures.get(item.what, 0)
                    self._failures[item.what] = count + 1
                if not count:
                    logger.exception("%s raised; it keeps receiving output and the task is "
                                     "not affected", item.what)

    # -- the end ------------------------------------------------------------------------------
    def finish(self, *, completed: bool) -> None:
        """End the listener: the batch is over (``completed``: every command settled).

        After a completed batch the stream's last events are awaited (at most :attr:`GRACE`
        seconds); otherwise the stream is closed at once. Then the callbacks get what is
        queued (at most :attr:`DRAIN_TIMEOUT` seconds). Both threads are joined.
        """
        if completed:
            self._reader.join(self.GRACE)
        with self._cond:
            self._stopping = True
            stream = self._stream
        if stream is not None:
            with contextlib.suppress(GolemError):
                stream.close()
        self._reader.join(self.READ_TIMEOUT + 5)
        self._deliverer.join(self.DRAIN_TIMEOUT)
        with self._cond:
            left = sum(item.size for item in self._queue)
            if self._deliverer.is_alive():
                self._discard = True
                self._queue.clear()
            dropped, failures = self._dropped, dict(self._failures)
        if self._deliverer.is_alive():
            logger.warning("a callback of batch %s still runs after %.0f s; %d characters of "
                           "output it had not taken are dropped", self._ids[1],
                           self.DRAIN_TIMEOUT, left)
        if dropped:
            logger.warning("output callbacks of batch %s missed %d characters (the buffer of "
                           "%d was full)", self._ids[1], dropped, self.MAX_BUFFERED)
        for what, count in failures.items():
            if count > 1:
                logger.warning("%s raised %d times in all", what, count)


def _failed(event: RuntimeEvent) -> bool:
    payload = event.payload if isinstance(event.payload, dict) else {}
    return bool(payload.get("return_code"))
