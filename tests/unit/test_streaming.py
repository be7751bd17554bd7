"""The line cutting and the bounded buffer of :mod:`golemsync.streaming`.

The listener is driven by an in-memory event stream here (its threads are real): the full
overflow case needs a callback held inside a line while more output arrives, which this stream
orders exactly. The end-to-end behaviour on the devnet is in tests/e2e/test_streamed_output.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from golemsync.command import Command
from golemsync.rest.wire import RuntimeEvent
from golemsync.streaming import BatchListener, _Lines

WAIT = 30.0


def test_lines_are_cut_at_newlines_and_flushed_at_the_end() -> None:
    lines = _Lines(limit=100)
    assert lines.feed("a\nb") == ["a"]
    assert lines.feed("c\r\n\n") == ["bc", ""]
    assert lines.feed("tail") == []
    assert lines.flush() == ["tail"]
    assert lines.flush() == []


def test_bytes_are_decoded_across_chunks_and_bad_bytes_replaced() -> None:
    lines = _Lines(limit=100)
    e_acute = list("é".encode())
    assert lines.feed([0x61, e_acute[0]]) == []  # half a character: kept for the next chunk
    assert lines.feed([e_acute[1], 0x0A, 0xFF, 0x0A]) == ["aé", "\ufffd"]
    assert lines.feed([0xC3]) == []
    assert lines.flush() == ["\ufffd"]  # a truncated character at the very end


def test_a_long_line_comes_in_pieces() -> None:
    lines = _Lines(limit=4)
    assert lines.feed("abcdefghij") == ["abcd", "efgh"]
    assert lines.feed("k\nxy") == ["ijk"]
    assert lines.flush() == ["xy"]


class _Stream:
    """Events for one command, handed out in two parts: the second once ``gate`` is set."""

    def __init__(self, first: list[RuntimeEvent], second: list[RuntimeEvent],
                 gate: threading.Event) -> None:
        self._parts = (first, second)
        self._gate = gate
        self.closed = False

    def __iter__(self) -> Iterator[RuntimeEvent]:
        yield from self._parts[0]
        assert self._gate.wait(WAIT)
        yield from self._parts[1]

    def close(self) -> None:
        self.closed = True


class _Opener:
    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self.opened = 0

    def stream_exec_results(self, activity_id: str, batch_id: str, *,
                            read_timeout: float = 60.0) -> _Stream:
        self.opened += 1
        return self.stream


def _events(kinds: list[tuple[str, Any]]) -> list[RuntimeEvent]:
    start = datetime(2026, 1, 1)
    return [RuntimeEvent("batch", 0, start + timedelta(milliseconds=n), kind, payload)
            for n, (kind, payload) in enumerate(kinds)]


def test_a_full_buffer_drops_whole_lines_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    entered = threading.Event()
    release = threading.Event()
    got: list[str] = []

    def slow(line: str) -> None:
        got.append(line)
        if line == "line-0...":
            entered.set()
            assert release.wait(WAIT)

    class Small(BatchListener):
        MAX_BUFFERED = 35  # three lines of 9 characters (10 with their line ends) fit

    events = _events([("stdout", f"line-{i}...\n") for i in range(8)]
                     + [("finished", {"return_code": 0, "message": None})])
    stream = _Stream(events[:1], events[1:], entered)
    command = Command("run", {}, provider="p", on_output={"stdout": slow})
    with caplog.at_level(logging.WARNING, logger="golemsync.streaming"):
        listener = Small(_Opener(stream), "activity", "batch-1", [command])
        assert entered.wait(WAIT)
        listener._reader.join(WAIT)  # read to the end while line-0 is held in the callback:
        assert not listener._reader.is_alive()  # three lines queued, four dropped
        release.set()
        listener.finish(completed=True)
    assert got == ["line-0...", "line-1...", "line-2...", "line-3..."]
    assert stream.closed
    messages = [r.getMessage() for r in caplog.records]
    assert sum("new lines are dropped" in m for m in messages) == 1
    assert any("missed 40 characters" in m for m in messages)
    assert not [t for t in threading.enumerate() if t.name.endswith("batch-1")]


def test_a_reopened_stream_does_not_repeat_what_was_delivered() -> None:
    got: list[str] = []
    events = _events([("stdout", "one\n"), ("stdout", "two\n"), ("stdout", "three\n"),
                      ("finished", {"return_code": 0, "message": None})])

    class Breaking:
        """The first stream breaks after two events; the next replays from the start."""

        def __init__(self) -> None:
            self.opened = 0

        def stream_exec_results(self, activity_id: str, batch_id: str, *,
                                read_timeout: float = 60.0) -> Any:
            self.opened += 1
            return _Replay(events, broken_after=2 if self.opened == 1 else None)

    opener = Breaking()
    command = Command("run", {}, provider="p", on_output={"stdout": got.append})
    listener = BatchListener(opener, "activity", "batch-2", [command])
    listener.finish(completed=True)
    assert got == ["one", "two", "three"]
    assert opener.opened == 2


class _Replay:
    def __init__(self, events: list[RuntimeEvent], broken_after: Any) -> None:
        self._events = events
        self._broken_after = broken_after

    def __iter__(self) -> Iterator[RuntimeEvent]:
        from golemsync.errors import TransportError

        for n, event in enumerate(self._events):
            if n == self._broken_after:
                raise TransportError("event stream broke: test", method="GET", url="/x")
            yield event

    def close(self) -> None:
        pass
