"""Driving the ``gftp`` program over JSON-RPC on its standard input and output.

``gftp server`` reads one JSON-RPC 2.0 request per line and answers one line per request
(PROTOCOL §6.1). :class:`GftpStorage` starts it on first use, asks its version once, sends one
request at a time (under a lock, so any number of worker threads can share it), keeps a
reference count per published URL (the same content published twice is one URL, closed when
the last user releases it), and on :meth:`close` asks it to shut down, then waits a bounded
time and kills it if needed. A reader thread takes its replies and another keeps the tail of
its standard error for error messages, so a hung or dead helper never blocks for ever.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import StorageError
from .base import Published, Receiving, StorageProvider

logger = logging.getLogger(__name__)

_EOF = object()


class GftpStorage(StorageProvider):
    """A :class:`StorageProvider` on a ``gftp server`` child process.

    ``program`` is a command name or an argv list (``server`` is appended). ``env`` is the
    child's environment (the real gftp finds its daemon through ``GSB_URL``; the devnet's
    stand-in through ``YAGNA_API_URL``/``YAGNA_APPKEY``). Each request waits at most
    ``request_timeout`` seconds.
    """

    def __init__(self, program: Union[str, Sequence[str]] = "gftp", *,
                 env: Optional[Mapping[str, str]] = None, request_timeout: float = 60.0,
                 shutdown_timeout: float = 5.0) -> None:
        self._argv = [program] if isinstance(program, str) else list(program)
        self._env = dict(env) if env is not None else None
        self._request_timeout = request_timeout
        self._shutdown_timeout = shutdown_timeout
        self._lock = threading.Lock()  # one request at a time; guards process and counters
        self._process: Optional[subprocess.Popen[str]] = None
        self._replies: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._threads: list[threading.Thread] = []
        self._next_id = 0
        self._refs: dict[str, int] = {}  # published URL -> users (guarded by _lock)
        self._closed = False
        self._tempdir = Path(tempfile.mkdtemp(prefix="golemsync-transfer-"))
        self.version: Optional[str] = None

    # -- StorageProvider ---------------------------------------------------------------------
    def publish_file(self, path: Path) -> Published:
        source = Path(path).resolve()
        if not os.access(source, os.R_OK) or not source.is_file():
            raise StorageError(f"cannot publish {path}: not a readable file")
        reply = self._call("publish", {"files": [str(source)]})
        try:
            url = str(reply[0]["url"])
        except (TypeError, KeyError, IndexError) as exc:
            raise StorageError(f"gftp publish: unexpected reply {reply!r}") from exc
        with self._lock:
            self._refs[url] = self._refs.get(url, 0) + 1
        return Published(url, lambda: self._unref(url))

    def publish_bytes(self, data: bytes) -> Published:
        temp = self._tempdir / f"send-{secrets.token_hex(8)}"
        temp.write_bytes(data)
        published = self.publish_file(temp)

        def release() -> None:
            published.release()
            temp.unlink(missing_ok=True)

        return Published(published.url, release)

    def receive_file(self, path: Optional[Path]) -> Receiving:
        final = Path(path) if path is not None else self._tempdir / f"recv-{secrets.token_hex(8)}"
        final.parent.mkdir(parents=True, exist_ok=True)  # missing directories are created
        partial = final.with_name(f".{final.name}.part-{secrets.token_hex(4)}")
        reply = self._call("receive", {"output_file": str(partial)})
        try:
            url = str(reply["url"])
        except (TypeError, KeyError) as exc:
            raise StorageError(f"gftp receive: unexpected reply {reply!r}") from exc

        def finish(ok: bool) -> Path:
            self._close_urls([url])
            if ok:
                os.replace(partial, final)
            else:
                partial.unlink(missing_ok=True)
            return final

        return Receiving(url, partial, finish)

    def close(self) -> None:
        """Shut the helper down (bounded wait, then kill) and delete temporary files."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            process = self._process
        if process is not None:
            self._stop(process)
        for thread in self._threads:
            thread.join(self._shutdown_timeout)
        shutil.rmtree(self._tempdir, ignore_errors=True)

    # -- the child process -------------------------------------------------------------------
    def _ensure_started(self) -> subprocess.Popen[str]:
        # called with _lock held
        if self._closed:
            raise StorageError("this storage is closed")
        if self._process is not None:
            if self._process.poll() is not None:
                raise StorageError(f"gftp exited with code {self._process.returncode}"
                                   f"{self._stderr_tail()}")
            return self._process
        argv = [*self._argv, "server"]
        try:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, encoding="utf-8", env=self._env, bufsize=1)
        except OSError as exc:
            raise StorageError(
                f"cannot start {argv[0]!r} ({exc.strerror or exc}): install gftp (it ships "
                "with yagna) and put it on PATH, or set GOLEMSYNC_GFTP; on the devnet "
                "golemsync uses its stand-in golemsync-devnet-gftp") from exc
        self._spawn_readers(self._process)
        self.version = str(self._request("version", {}))
        logger.info("gftp started: %s", self.version)
        return self._process

    def _spawn_readers(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None and process.stderr is not None
        out, err = process.stdout, process.stderr

        def replies() -> None:
            for line in out:
                if line.strip():
                    self._replies.put(line)
            self._replies.put(_EOF)

        def errors() -> None:
            for line in err:
                self._stderr.append(line.rstrip())

        for name, body in (("golemsync-gftp-out", replies), ("golemsync-gftp-err", errors)):
            thread = threading.Thread(target=body, name=name)
            thread.start()
            self._threads.append(thread)

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        with self._lock:
            self._ensure_started()
            return self._request(method, params)

    def _request(self, method: str, params: dict[str, Any]) -> Any:
        # called with _lock held: exactly one request in flight
        process = self._process
        assert process is not None and process.stdin is not None
        self._next_id += 1
        request = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        except OSError as exc:
            raise StorageError(
                f"gftp is not accepting requests ({exc}){self._stderr_tail()}") from exc
        return self._await(self._next_id, method)

    def _await(self, request_id: int, method: str) -> Any:
        while True:
            try:
                line = self._replies.get(timeout=self._request_timeout)
            except queue.Empty:
                raise StorageError(f"gftp did not answer {method} within "
                                   f"{self._request_timeout} s{self._stderr_tail()}") from None
            if line is _EOF:
                raise StorageError(f"gftp exited during {method}{self._stderr_tail()}")
            reply = _parse(line)
            if reply.get("id") != request_id:
                continue  # a late reply to an abandoned request
            if "error" in reply:
                error = reply["error"] or {}
                raise StorageError(f"gftp {method} failed: {error.get('message')} "
                                   f"(code {error.get('code')})")
            return reply.get("result")

    def _unref(self, url: str) -> None:
        with self._lock:
            count = self._refs.get(url, 0) - 1
            if count > 0:
                self._refs[url] = count
                return
            self._refs.pop(url, None)
        self._close_urls([url])

    def _close_urls(self, urls: list[str]) -> None:
        try:
            self._call("close", {"urls": urls})
        except StorageError as exc:
            logger.debug("gftp close %s: %s", urls, exc)

    def _stop(self, process: subprocess.Popen[str]) -> None:
        try:
            if process.poll() is None and process.stdin is not None:
                with self._lock:
                    self._request("shutdown", {})
        except StorageError as exc:
            logger.debug("gftp shutdown: %s", exc)
        finally:
            if process.stdin is not None:
                try:
                    process.stdin.close()
                except OSError:
                    pass
            try:
                process.wait(self._shutdown_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _stderr_tail(self) -> str:
        tail = "\n".join(self._stderr)
        return f"; its last output:\n{tail}" if tail else ""


def _parse(line: str) -> dict[str, Any]:
    try:
        reply = json.loads(line)
    except ValueError as exc:
        raise StorageError(f"gftp wrote something that is not JSON-RPC: {line[:200]!r}") from exc
    if not isinstance(reply, dict):
        raise StorageError(f"gftp wrote something that is not JSON-RPC: {line[:200]!r}")
    return reply
