"""One ExeScript command and the ``concurrent.futures.Future`` of its result.

A :class:`Command` is the one place where its Future changes state, as a work item of a
thread pool is (CPython's ``concurrent.futures.thread._WorkItem.run``). The engine drives it
through four public calls, always from the provider's worker thread:

* :meth:`Command.start` when the batch is about to be sent: the Future becomes running (or the
  command is left out, when the Future was cancelled) and the ``prepare`` hook runs;
* :meth:`Command.settle` with the provider's :class:`CommandResult`: a result, or a
  :class:`~golemsync.errors.CommandFailed`;
* :meth:`Command.abandon` when the command will never run (an earlier one failed, the script
  timed out, the activity died): a ``CommandFailed`` saying so, unless already settled;
* :meth:`Command.release` once the batch is over: the ``cleanup`` hook.

Users only ever see the Future; the user may cancel it from any thread until it starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Optional, Union

from .errors import CommandFailed

Output = Union[str, bytes, None]

#: A progress callback: ``(bytes moved so far, total bytes or None)``.
Progress = Callable[[int, Optional[int]], None]

#: An output callback: one line of a running command's stdout or stderr (without its line end).
LineCallback = Callable[[str], None]

# The golemsync devnet's note on a stream cut at its capture limit (devnet/capture.py).
_TRUNCATED = re.compile(r"\b(?:stdout|stderr) truncated at \d+ MiB")
_EXIT_CODE = re.compile(r"exited with code (-?\d+)")


@dataclass(frozen=True)
class CommandResult:
    """What one command produced.

    ``index`` is the command's position in the batch that was sent. ``exit_code`` is known for
    ``run`` commands (0 on success; parsed from the exe-unit's message on failure) and ``None``
    otherwise.
    """

    index: int
    command: str
    success: bool
    stdout: Output = None
    stderr: Output = None
    message: Optional[str] = None
    exit_code: Optional[int] = None
    finished_at: Optional[datetime] = None  # when the provider reported it finished (UTC)

    @property
    def truncated(self) -> bool:
        """Whether the provider cut ``stdout`` or ``stderr`` at its capture limit (the devnet
        says so in ``message``; a real exe-unit does not report it)."""
        return bool(self.message and _TRUNCATED.search(self.message))

    @property
    def text(self) -> str:
        """``stdout`` as text ('' when nothing was captured)."""
        if self.stdout is None:
            return ""
        if isinstance(self.stdout, bytes):
            return self.stdout.decode("utf-8", errors="replace")
        return self.stdout


def result_from_wire(name: str, index: int, ok: bool, stdout: Output, stderr: Output,
                     message: Optional[str],
                     finished_at: Optional[datetime] = None) -> CommandResult:
    """Build a :class:`CommandResult` from one item of the batch results."""
    exit_code: Optional[int] = None
    if name == "run":
        match = _EXIT_CODE.search(message or "")
        exit_code = int(match.group(1)) if match else (0 if ok else None)
    return CommandResult(index, name, ok, stdout, stderr, message, exit_code, finished_at)


class Command:
    """One command of a script, owning its Future from creation to its end.

    Hooks: ``prepare(command)`` runs in :meth:`start`, just before the batch is sent, and may
    rewrite ``args`` (e.g. publish a file and put its URL in); ``finish(result)`` turns a
    successful result into the Future's value (e.g. read a downloaded file) and a hook that
    raises fails the Future with that exception; ``cleanup(ok)`` runs once in
    :meth:`release`. ``on_progress`` receives transfer progress while the batch runs, and
    ``on_output`` (``{"stdout": callback, "stderr": callback}``, either key optional) the lines
    of a ``run`` command's output (see :mod:`golemsync.streaming`).
    """

    def __init__(
        self,
        name: str,
        args: Mapping[str, Any],
        *,
        provider: str,
        prepare: Optional[Callable[[Command], None]] = None,
        finish: Optional[Callable[[CommandResult], Any]] = None,
        cleanup: Optional[Callable[[bool], None]] = None,
        on_progress: Optional[Progress] = None,
        on_output: Optional[Mapping[str, LineCallback]] = None,
    ) -> None:
        self.name = name
        self.args: dict[str, Any] = dict(args)
        self.provider = provider
        self.on_progress = on_progress
        self.on_output: dict[str, LineCallback] = dict(on_output or {})
        self.future: Future[Any] = Future()
        self._prepare = prepare
        self._finish = finish
        self._cleanup = cleanup
        # Touched only by the worker thread that executes the script (no lock needed):
        self._started = False
        self._settled = False

    def __repr__(self) -> str:
        return f"Command({self.name!r}, provider={self.provider!r})"

    def wire(self) -> dict[str, Any]:
        """The command as an ExeScript item (``{name: args}``)."""
        return {self.name: self.args}

    # -- the Future's life, driven by the engine ---------------------------------------------
    def start(self) -> bool:
        """Mark the Future running and run the ``prepare`` hook.

        Returns False, and does nothing else, when the Future was cancelled: the command is
        then not sent and its Future stays cancelled. An exception from the hook propagates
        (the Future is running then; :meth:`abandon` fails it).
        """
        if self._started:
            raise RuntimeError(f"{self!r} was already started")
        if not self.future.set_running_or_notify_cancel():
            return False
        self._started = True
        if self._prepare is not None:
            self._prepare(self)
        return True

    def settle(self, result: CommandResult) -> None:
        """Resolve the Future from the provider's result (exactly once).

        A failed result gives :class:`CommandFailed`; a successful one the ``finish`` hook's
        value (the result itself without a hook), or the exception that hook raised.
        """
        if not self._started or self._settled:
            raise RuntimeError(f"{self!r} cannot be settled now")
        self._settled = True
        if not result.success:
            self.future.set_exception(self._failure(result))
            return
        try:
            value = self._finish(result) if self._finish is not None else result
        except Exception as exc:  # a hook failing (e.g. bad JSON downloaded) fails this command
            self.future.set_exception(exc)
        else:
            self.future.set_result(value)

    def abandon(self, reason: str) -> None:
        """Fail the Future with "did not run: ``reason``", unless it was settled or cancelled.

        Works whether or not the command was started; idempotent.
        """
        if self._settled:
            return
        if not self._started:
            if not self.future.set_running_or_notify_cancel():
                return  # cancelled by the user: it stays cancelled
            self._started = True
        self._settled = True
        self.future.set_exception(CommandFailed(f"{self.name} did not run: {reason}",
                                                command=self.name, provider=self.provider))

    def release(self, ok: bool) -> None:
        """Run the ``cleanup`` hook (once; ``ok`` says whether the whole batch succeeded)."""
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            cleanup(ok)

    @property
    def error(self) -> Optional[BaseException]:
        """The exception the Future was settled with, or None (also when not settled yet)."""
        if not self._settled:
            return None
        return self.future.exception(timeout=0)

    def _failure(self, result: CommandResult) -> CommandFailed:
        return CommandFailed(
            f"{result.command} (command {result.index}) failed on provider "
            f"{self.provider}: {result.message}",
            index=result.index,
            command=result.command,
            stdout=result.stdout,
            stderr=result.stderr,
            provider=self.provider,
            exit_code=result.exit_code,
            reason=result.message,
        )
