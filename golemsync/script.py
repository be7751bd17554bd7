"""Scripts: a batch of ExeScript commands, each with its own ``concurrent.futures.Future``.

A worker builds a :class:`Script` with ``ctx.new_script()``, adds commands (each call returns
the command's Future) and yields it; the engine sends the batch in one ``exec`` and resolves
each Future as soon as its command is done on the provider. A failed command's Future holds a
:class:`~golemsync.errors.CommandFailed`; commands after it never ran, and their Futures say so
with the same exception type. A Future cancelled before the batch is sent leaves its command
out of the batch (the rest runs) and stays cancelled.

A script is only a builder: each command and its Future live in a
:class:`~golemsync.command.Command`, which the engine drives (see :mod:`golemsync.execution`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from .command import Command, CommandResult, LineCallback, Output, Progress, result_from_wire
from .errors import StorageError

if TYPE_CHECKING:
    from .storage.base import Published, Receiving, StorageProvider

__all__ = ["Command", "CommandResult", "LineCallback", "Output", "Progress", "Script",
           "ScriptOwner", "json_bytes", "result_from_wire"]


class ScriptOwner(Protocol):
    """What a script needs of the provider context that makes it (a ``WorkContext``)."""

    @property
    def provider_name(self) -> str: ...

    @property
    def storage(self) -> StorageProvider: ...


_PROGRESS_ARGS = {"updateInterval": "300ms", "updateStep": None}


class Script:
    """A batch of commands for one provider, built by a worker and executed by the engine.

    Build it, then ``yield`` it from the worker (or pass it to ``ctx.run``). A script runs once;
    adding commands after it was sent raises ``RuntimeError``. ``timeout`` (seconds) bounds the
    whole batch on the provider; when it passes, the provider is abandoned and its tasks retried.
    """

    def __init__(self, ctx: ScriptOwner, *, timeout: Optional[float] = None) -> None:
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
        command = Command(name, args, provider=self.ctx.provider_name, **hooks)
        self.commands.append(command)
        return command.future

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
        on_stdout: Optional[LineCallback] = None,
        on_stderr: Optional[LineCallback] = None,
    ) -> Future[CommandResult]:
        """Run ``command`` (an absolute path inside the VM) with ``args``.

        The Future gives a :class:`CommandResult` (``.stdout``, ``.stderr``, ``.text``,
        ``.exit_code``); a non-zero exit fails it with :class:`~golemsync.errors.CommandFailed`.
        Output is captured whole by default (``{"atEnd": {}}``); pass another capture mode as
        ``stdout=``/``stderr=`` (e.g. ``{"atEnd": {"tail": 4096}}``). ``env`` sets variables for
        this command only (through ``/usr/bin/env``, which VM images provide).

        ``on_stdout(line)`` / ``on_stderr(line)`` receive the output line by line *while the
        command runs* (the capture becomes ``{"stream": {}}``, which also keeps everything for
        the result). They run on a thread of their own, never delay the Future, and an
        exception they raise is logged, not fatal; see :mod:`golemsync.streaming` for lines,
        buffering and ordering.
        """
        if not command.startswith("/"):
            raise ValueError(f"run() needs an absolute path inside the VM, got {command!r}")
        argv = [str(a) for a in args]
        if env:
            argv = [f"{k}={v}" for k, v in env.items()] + [command, *argv]
            command = "/usr/bin/env"
        capture = {
            "stdout": _capture("stdout", stdout, on_stdout),
            "stderr": _capture("stderr", stderr, on_stderr),
        }
        on_output = {name: callback for name, callback in
                     (("stdout", on_stdout), ("stderr", on_stderr)) if callback is not None}
        for name, callback in on_output.items():
            if not callable(callback):
                raise TypeError(f"on_{name} must be callable, got {type(callback).__name__}")
        return self.add("run", {"entry_point": command, "args": argv, "capture": capture},
                        on_output=on_output)

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

    def _upload(self, publish: Callable[[StorageProvider], Published], remote_path: str,
                progress: Optional[Progress] = None) -> Future[CommandResult]:
        destination = _container_url(remote_path)
        held: list[Published] = []

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
        held: list[Receiving] = []

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

    # -- handing over to the engine ---------------------------------------------------------
    def seal(self) -> list[Command]:
        """Freeze the script and give its commands, in order, to execute them.

        Called once by the engine as it sends the script; a second call raises
        ``RuntimeError`` (a script runs once), as does adding commands afterwards.
        """
        if self._sent:
            raise RuntimeError("a script can be executed only once")
        self._sent = True
        return list(self.commands)


def _capture(name: str, mode: Optional[Mapping[str, Any]],
             callback: Optional[LineCallback]) -> dict[str, Any]:
    """The capture mode of one output stream (a callback needs a streaming one)."""
    if mode is None:
        return {"stream": {}} if callback is not None else {"atEnd": {}}
    if callback is not None and "stream" not in mode:
        raise ValueError(f"on_{name} needs {name} captured as a stream, e.g. "
                         f"{name}={{'stream': {{}}}} (or leave {name}= out); got {dict(mode)!r}")
    return dict(mode)


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
