"""Scripts: a batch of ExeScript commands, each with its own ``concurrent.futures.Future``.

A worker builds a :class:`Script` with ``ctx.new_script()``, adds commands (each call returns
the command's Future) and yields it; the engine sends the batch in one ``exec`` and resolves
each Future as soon as a poll of the batch results reports its command. A failed command's
Future holds a :class:`~golemsync.errors.CommandFailed`; commands after it never ran, and their
Futures say so with the same exception type.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from .errors import CommandFailed, StorageError

if TYPE_CHECKING:
    from .context import WorkContext

Output = Union[str, bytes, None]

_EXIT_CODE = re.compile(r"exited with code (-?\d+)")
# The golemsync devnet's note on a stream cut at its capture limit (devnet/capture.py).
_TRUNCATED = re.compile(r"\b(?:stdout|stderr) truncated at \d+ MiB")

#: A progress callback: ``(bytes moved so far, total bytes or None)``.
Progress = Callable[[int, Optional[int]], None]
_PROGRESS_ARGS = {"updateInterval": "300ms", "updateStep": None}


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
    finished_at: Optional[datetime] = None  # when the provider reported it finished (UTC)

    @property
    def truncated(self) -> bool:
        """Whether the provider cut ``stdout`` or ``stderr`` at its capture limit (the devnet
        says so in ``message``; a real exe-unit never reports it)."""
        return bool(self.message and _TRUNCATED.search(self.message))

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
    on_progress: Optional[Progress] = None  # (bytes moved, total bytes or None)

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

    # -- file transfer ----------------------------------------------------------------------
    def send_file(
        self, local_path: str | os.PathLike[str], remote_path: str, *,
        progress: Optional[Progress] = None,
    ) -> Future[CommandResult]:
        """Upload a local file to ``remote_path`` (inside a VM volume, e.g. /golem/input/x).

        The file must exist and be readable now: a :class:`StorageError` is raised here, before
        anything is sent, when it is not. It is published when the batch is sent, and the
        provider checks the content against its SHA3 hash. ``progress(moved, total)`` is
        called (on the worker's event thread) as the provider copies it.
        """
        source = _readable(local_path)
        return self._upload(lambda storage: storage.publish_file(source), remote_path, progress)

    def send_bytes(self, data: bytes, remote_path: str) -> Future[CommandResult]:
        """Upload ``data`` as the file ``remote_path``."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"send_bytes needs bytes, got {type(data).__name__}")
        blob = bytes(data)
        return self._upload(lambda storage: storage.publish_bytes(blob), remote_path)

    def send_json(self, value: Any, remote_path: str) -> Future[CommandResult]:
        """Upload ``value`` serialized as JSON (UTF-8) to ``remote_path``."""
        return self.send_bytes(json_bytes(value), remote_path)

    def download_file(self, remote_path: str, local_path: str | os.PathLike[str], *,
                      progress: Optional[Progress] = None) -> Future[Path]:
        """Download ``remote_path`` into ``local_path``; the Future gives the local path.

        Missing parent directories are created. The file appears only complete: on failure
        nothing is left at ``local_path`` (an existing file there is kept).
        ``progress(moved, total)`` is called as the provider sends it.
        """
        target = Path(local_path)
        return self._download(remote_path, target, lambda path: path, progress)

    def download_bytes(self, remote_path: str, *, limit: int = 64 << 20) -> Future[bytes]:
        """Download ``remote_path`` and give its content (at most ``limit`` bytes, else error)."""
        return self._download(remote_path, None, lambda path: _read_limited(path, limit))

    def download_json(self, remote_path: str, *, limit: int = 64 << 20) -> Future[Any]:
        """Download ``remote_path`` and give it parsed as JSON."""
        return self._download(remote_path, None,
                              lambda path: json.loads(_read_limited(path, limit)))

    def _upload(self, publish: Callable[[Any], Any], remote_path: str,
                progress: Optional[Progress] = None) -> Future[CommandResult]:
        destination = _container_url(remote_path)
        held: list[Any] = []

        def prepare(command: Command) -> None:
            published = publish(self.ctx.storage)
            held.append(published)
            command.args["from"] = _with_hash(published.url)

        def cleanup(ok: bool) -> None:
            for published in held:
                published.release()

        args: dict[str, Any] = {"from": None, "to": destination}
        if progress is not None:
            args["progress"] = dict(_PROGRESS_ARGS)
        return self.add("transfer", args, prepare=prepare, cleanup=cleanup, on_progress=progress)

    def _download(self, remote_path: str, target: Optional[Path],
                  convert: Callable[[Path], Any],
                  progress: Optional[Progress] = None) -> Future[Any]:
        source = _container_url(remote_path)
        held: list[Any] = []

        def prepare(command: Command) -> None:
            receiving = self.ctx.storage.receive_file(target)
            held.append(receiving)
            command.args["to"] = receiving.url

        def finish(result: CommandResult) -> Any:
            receiving = held.pop()
            path = receiving.finish(True)
            try:
                return convert(path)
            finally:
                if target is None:
                    path.unlink(missing_ok=True)

        def cleanup(ok: bool) -> None:
            for receiving in held:  # still held: the command failed or never ran
                receiving.finish(False)
            held.clear()

        args: dict[str, Any] = {"from": source, "to": None}
        if progress is not None:
            args["progress"] = dict(_PROGRESS_ARGS)
        return self.add("transfer", args, prepare=prepare, finish=finish, cleanup=cleanup,
                        on_progress=progress)

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
                     message: Optional[str],
                     finished_at: Optional[datetime] = None) -> CommandResult:
    """Build a :class:`CommandResult` from one item of the batch results."""
    exit_code: Optional[int] = None
    if name == "run":
        match = _EXIT_CODE.search(message or "")
        exit_code = int(match.group(1)) if match else (0 if ok else None)
    return CommandResult(index, name, ok, stdout, stderr, message, exit_code, finished_at)


def _with_hash(url: str) -> str:
    """Ask the provider to check a published file's content: gftp names it by its SHA3-256."""
    name = url.rsplit("/", 1)[-1]
    if url.startswith("gftp://") and re.fullmatch(r"[0-9a-f]{64}", name):
        return f"hash:sha3:{name}:{url}"
    return url


def _container_url(remote_path: str) -> str:
    if not remote_path.startswith("/"):
        raise ValueError(f"remote paths are absolute paths inside the VM, got {remote_path!r}")
    return f"container:{remote_path}"


def _readable(local_path: str | os.PathLike[str]) -> Path:
    path = Path(local_path)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise StorageError(f"cannot send {path}: {exc.strerror or exc}") from exc
    if path.is_dir():
        raise StorageError(f"cannot send {path}: it is a directory")
    return path.resolve()


def _read_limited(path: Path, limit: int) -> bytes:
    size = path.stat().st_size
    if size > limit:
        raise StorageError(f"downloaded file is {size} bytes, over the limit of {limit}; "
                           "use download_file for large outputs")
    return path.read_bytes()


def json_bytes(value: Any) -> bytes:
    """Serialize ``value`` for ``send_json`` (UTF-8, no NaN: the other side may not be Python)."""
    return json.dumps(value, allow_nan=False).encode("utf-8")
