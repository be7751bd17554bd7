"""Capturing a command's output the way the exe-unit does (PROTOCOL §4.5).

A capture mode is ``{"atEnd": {...}}`` (keep everything, or ``head``/``tail``/``headTail`` N
bytes) or ``{"stream": {"limit": N}}`` (also sent live as runtime events), each with an
optional ``format`` of ``str`` (default) or ``bin``. Memory is bounded whatever the command
prints: at most :data:`MAX_KEPT` bytes are kept per stream.

**Hitting the limit is never silent.** When a stream printed more than :data:`MAX_KEPT` bytes
and its mode asked for more than that (``atEnd`` without a size, or a ``head``/``tail``/
``headTail``/``stream`` limit above it), :attr:`Capture.truncated` is set and the exe-unit adds
``"<stream> truncated at 16 MiB"`` to the command's result ``message`` (joined with ``"; "``
after any other message, e.g. ``"ExeScript command exited with code 3; stdout truncated at 16
MiB"``); the result stays ``Ok`` if the command succeeded. The wire format is the daemon's
(a real exe-unit answers ``message: null`` there), so any client keeps working, and golemsync's
``CommandResult.truncated`` reads the flag back from the message (:func:`truncation_note`).
A size the caller asked for (``head: 10``) is not a truncation.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import termios
from collections import deque
from typing import IO, Any, Callable, Optional, Union

MAX_KEPT = 16 << 20
CHUNK = 64 << 10

Wire = Union[str, list[int], None]


def _drain(fd: int, capture: Capture) -> None:
    """Take what the pipe holds now, without waiting for more."""
    left = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    while left > 0:
        chunk = os.read(fd, min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        capture._take(chunk)


def pump(pairs: list[tuple[Capture, IO[bytes]]], stop: Optional[int],
         tick: Optional[tuple[float, Callable[[], None]]] = None) -> bool:
    """Read every pipe to its end, or once ``stop`` is readable, what each holds then (on the
    calling thread; True when ``stop`` ended it). ``tick`` = ``(seconds, call)``: ``call()``
    whenever that long passed without anything to read. Every pipe is closed at the end."""
    open_pipes = {pipe.fileno(): (capture, pipe) for capture, pipe in pairs}
    timeout_ms = None if tick is None else max(1, int(tick[0] * 1000))
    try:
        poller = select.poll()
        for fd in open_pipes:
            poller.register(fd, select.POLLIN)
        if stop is not None:
            poller.register(stop, select.POLLIN)
        while open_pipes:
            events = poller.poll(timeout_ms)
            if not events:
                if tick is not None:
                    tick[1]()
                continue
            if stop is not None and any(handle == stop for handle, _ in events):
                for fd, (capture, _) in open_pipes.items():
                    _drain(fd, capture)
                return True
            for handle, _ in events:
                if handle not in open_pipes:
                    continue
                capture, pipe = open_pipes[handle]
                chunk = os.read(handle, CHUNK)
                if chunk:
                    capture._take(chunk)
                else:
                    poller.unregister(handle)
                    del open_pipes[handle]
                    pipe.close()
    finally:
        for _, pipe in open_pipes.values():
            pipe.close()
    return False


def truncation_note(stream: str) -> str:
    """The text added to a result's message when ``stream`` hit :data:`MAX_KEPT`."""
    return f"{stream} truncated at {MAX_KEPT >> 20} MiB"


class Capture:
    """What one output stream keeps (and streams) of what :func:`pump` reads from its pipe."""

    def __init__(self, mode: Optional[dict[str, Any]],
                 on_chunk: Optional[Callable[[bytes], None]] = None) -> None:
        self.enabled = isinstance(mode, dict) and bool(mode)
        kind, options = next(iter(mode.items())) if self.enabled and mode else ("atEnd", {})
        options = options if isinstance(options, dict) else {}
        self.binary = str(options.get("format", "str")).lower() in ("bin", "binary")
        self.streaming = kind == "stream"
        self._on_chunk = on_chunk if self.streaming else None
        self._head_limit, self._tail_limit = _limits(kind, options)
        requested = _requested(kind, options)
        self._capped = requested is None or requested > MAX_KEPT
        self._seen = 0
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._streamed = 0
        self._stream_limit = _int(options.get("limit")) if self.streaming else None

    def _take(self, chunk: bytes) -> None:
        if self.enabled:
            self._keep(chunk)
            self._stream(chunk)

    @property
    def truncated(self) -> bool:
        """Whether the stream lost bytes to :data:`MAX_KEPT` (not to a size asked for)."""
        return self.enabled and self._capped and self._seen > MAX_KEPT

    def _keep(self, chunk: bytes) -> None:
        self._seen += len(chunk)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self._tail_limit > 0:
            self._tail.append(chunk)
            self._tail_size += len(chunk)
            while self._tail and self._tail_size - len(self._tail[0]) >= self._tail_limit:
                self._tail_size -= len(self._tail.popleft())

    def _stream(self, chunk: bytes) -> None:
        if self._on_chunk is None:
            return
        if self._stream_limit is not None:
            chunk = chunk[: max(0, self._stream_limit - self._streamed)]
        if chunk:
            self._streamed += len(chunk)
            self._on_chunk(chunk)

    def data(self) -> bytes:
        tail = b"".join(self._tail)
        if self._tail_size > self._tail_limit:
            tail = tail[len(tail) - self._tail_limit:]
        return bytes(self._head) + tail

    def wire(self) -> Wire:
        """The captured output as the results API carries it (None when nothing)."""
        if not self.enabled:
            return None
        return encode(self.data(), self.binary)


def encode(data: bytes, binary: bool) -> Wire:
    if not data:
        return None
    if binary:
        return list(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # one character per byte, as the exe-unit does


def _limits(kind: str, options: dict[str, Any]) -> tuple[int, int]:
    """(head bytes, tail bytes) to keep."""
    if kind == "stream":
        limit = _int(options.get("limit"))
        return (MAX_KEPT if limit is None else min(limit, MAX_KEPT)), 0
    if "head" in options:
        return min(_int(options["head"]) or 0, MAX_KEPT), 0
    if "tail" in options:
        return 0, min(_int(options["tail"]) or 0, MAX_KEPT)
    if "headTail" in options:
        total = min(_int(options["headTail"]) or 0, MAX_KEPT)
        return (total + 1) // 2, total // 2
    return MAX_KEPT // 2, MAX_KEPT // 2


def _requested(kind: str, options: dict[str, Any]) -> Optional[int]:
    """The bytes a mode asks to keep; None for "everything"."""
    for key in ("limit",) if kind == "stream" else ("head", "tail", "headTail"):
        if key in options:
            return _int(options[key]) or 0
    return None


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and value >= 0 else None
