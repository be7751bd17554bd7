"""Scripts: a batch of ExeScript commands, each with its own ``concurrent.futures.Future``.

A worker builds a :class:`Script` with ``ctx.new_script()``, adds commands (each call returns
the command's Future) and yields it; the engine sends the batch in one ``exec`` and resolves
each Future as soon as a poll of the batch results reports its command. A failed command's
Future holds a :class:`~golemsync.errors.CommandFailed`; commands after it never ran, and their
Futures say so with the same exception type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from .errors import CommandFailed

if TYPE_CHECKING:
    from .context import WorkContext

Output = Union[str, bytes, None]

_EXIT_CODE = re.compile(r"exited with code (-?\d+)")


@dataclass(frozen=True)
class CommandResult:
    """What one command produced.

    ``exit_code`` is known for ``run`` commands (0 on success; parsed from the exe-unit's
    message on failure) and ``None`` otherwise.
    """

    index: int
    command: str
    success: bool
    stdout: Output = None
    stderr: Output = None
    message: Optional[str] = None
    exit_code: Optional[int] = None

    @property
    def text(self) -> str:
        """``stdout`` as text ('' when nothing was captured)."""
        if self.stdout is None:
            return ""
        if isinstance(self.stdout, bytes):
            return self.stdout.decode("utf-8", errors="replace")
        return self.stdout


@dataclass
class Command:
    """One ExeScript command of a script with its Future and optional hooks.

    ``prepare`` runs just before the batch is sent (e.g. publish a file) and may rewrite the
    wire form; ``finish`` turns the raw result into the Future's value (e.g. read a downloaded
    file) and runs on the worker thread after the command succeeded; ``cleanup`` always runs
    once the batch is over.
    """

    name: str
    args: dict[str, Any]
    future: Future[Any]
    prepare: Optional[Callable[[Command], None]] = None
    finish: Optional[Callable[[CommandResult], Any]] = None
    cleanup: Optional[Callable[[bool], None]] = None

    def wire(self) -> dict[str, Any]:
        return {self.name: self.args}


class Script:
    """A batch of commands for one provider, built by a worker and executed by the engine.

    Build it, then ``yield`` it from the worker (or pass it to ``ctx.run``). A script runs once;
    adding commands after it was sent raises ``RuntimeError``. ``timeout`` (seconds) bounds the
    whole batch on the provider; when it passes, the provider is abandoned and its tasks retried.
    """

    def __init__(self, ctx: WorkContext, *, timeout: Optional[float] = None) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        self.ctx = ctx
        self.timeout = timeout
        self.commands: list[Command] = []
        self._sent = False

    def __repr__(self) -> str:
        names = ", ".join(c.name for c in self.commands)
        return f"Script([{names}], provider={self.ctx.provider_name!r})"

    # -- building ---------------------------------------------------------------------------
    def add(self, name: str, args: Mapping[str, Any], **hooks: Any) -> Future[Any]:
        """Append a raw ExeScript command; returns its Future. Prefer the typed helpers below."""
        if self._sent:
            raise RuntimeError("this script was already sent; make a new one: ctx.new_script()")
        future: Future[Any] = Future()
        self.commands.append(Command(name, dict(args), future, **hooks))
        return future

    def deploy(self, **kwargs: Any) -> Future[CommandResult]:
        """Prepare the runtime (the engine does this for you when an activity starts)."""
        return self.add("deploy", kwargs)

    def start(self, *args: str) -> Future[CommandResult]:
        """Start the runtime (the engine does this for you when an activity starts)."""
        return self.add("start", {"args": list(args)})

    def run(
        self,
        command: str,
        *args: str,
        env: Optional[Mapping[str, str]] = None,
        stdout: Optional[Mapping[str, Any]] = None,
        stderr: Optional[Mapping[str, Any]] = None,
    ) -> Future[CommandResult]:
        """Run ``command`` (an absolute path inside the VM) with ``args``.

        Output is captured whole by default (``{"atEnd": {}}``); pass another capture mode as
        ``stdout=``/``stderr=`` (e.g. ``{"atEnd": {"tail": 4096}}``). ``env`` sets variables for
        this command only (through ``/usr/bin/env``, which VM images provide).
        """
        if not command.startswith("/"):
            raise ValueError(f"run() needs an absolute path inside the VM, got {command!r}")
        argv = [str(a) for a in args]
        if env:
            argv = [f"{k}={v}" for k, v in env.items()] + [command, *argv]
            command = "/usr/bin/env"
        capture = {
            "stdout": dict(stdout) if stdout is not None else {"atEnd": {}},
            "stderr": dict(stderr) if stderr is not None else {"atEnd": {}},
        }
        return self.add("run", {"entry_point": command, "args": argv, "capture": capture})

    def terminate(self) -> Future[CommandResult]:
        """Stop the runtime (it returns to Initialized; the engine normally does not need this)."""
        return self.add("terminate", {})

    # -- execution, used by the engine ------------------------------------------------------
    def _begin(self) -> list[dict[str, Any]]:
        """Mark the script sent; run prepare hooks; return the wire batch of live commands.

        Commands whose Future was cancelled before sending are dropped: a cancelled future
        never runs.
        """
        if self._sent:
            raise RuntimeError("a script can be executed only once")
        self._sent = True
        self.commands = [c for c in self.commands if c.future.set_running_or_notify_cancel()]
        for command in self.commands:
            if command.prepare is not None:
                command.prepare(command)
        return [c.wire() for c in self.commands]

    def _resolve(self, index: int, result: CommandResult) -> None:
        """Settle command ``index`` from its result (runs the finish hook on success)."""
        command = self.commands[index]
        if not result.success:
            command.future.set_exception(self._failure(result))
            return
        try:
            value = command.finish(result) if command.finish is not None else result
        except Exception as exc:  # a hook failing (e.g. bad JSON downloaded) fails this command
            command.future.set_exception(exc)
        else:
            command.future.set_result(value)

    def _failure(self, result: CommandResult) -> CommandFailed:
        return CommandFailed(
            f"{result.command} (command {result.index}) failed on provider "
            f"{self.ctx.provider_name}: {result.message}",
            index=result.index,
            command=result.command,
            stdout=result.stdout,
            stderr=result.stderr,
            provider=self.ctx.provider_name,
        )

    def _abandon(self, start: int, reason: str) -> None:
        """Fail every command from ``start`` on that has not been settled: they never ran."""
        for command in self.commands[start:]:
            if not command.future.done():
                command.future.set_exception(
                    CommandFailed(
                        f"{command.name} did not run: {reason}",
                        command=command.name,
                        provider=self.ctx.provider_name,
                    )
                )

    def _cleanup(self, ok: bool) -> None:
        for command in self.commands:
            if command.cleanup is not None:
                command.cleanup(ok)

    def _first_error(self) -> Optional[BaseException]:
        for command in self.commands:
            if command.future.done() and command.future.exception() is not None:
                return command.future.exception()
        return None


def result_from_wire(name: str, index: int, ok: bool, stdout: Output, stderr: Output,
                     message: Optional[str]) -> CommandResult:
    """Build a :class:`CommandResult` from one item of the batch results."""
    exit_code: Optional[int] = None
    if name == "run":
        match = _EXIT_CODE.search(message or "")
        exit_code = int(match.group(1)) if match else (0 if ok else None)
    return CommandResult(index, name, ok, stdout, stderr, message, exit_code)


def json_bytes(value: Any) -> bytes:
    """Serialize ``value`` for ``send_json`` (UTF-8, no NaN: the other side may not be Python)."""
    return json.dumps(value, allow_nan=False).encode("utf-8")
