"""``Devnet``: start a yagna-compatible network on loopback, in-process or as a child process."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import selectors
import subprocess as sp
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Optional

from golemsync.devnet.activities import ExeUnitFactory
from golemsync.devnet.config import DevnetConfig
from golemsync.devnet.node import DevnetNode
from golemsync.devnet.providers import node_id
from golemsync.devnet.sandbox import remove_tree

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 15.0
STARTUP_TIMEOUT = 60.0


class Devnet:
    """A running devnet. Use as a context manager; :meth:`stop` is idempotent.

    ``config`` defaults to ``DevnetConfig.default(providers or 4, seed)``; ``providers`` and
    ``seed`` only apply when ``config`` is None. ``port=0`` picks a free port. The app key is
    random unless given. With ``subprocess=True`` the network runs in
    ``python -m golemsync devnet`` (started here, terminated and waited for on stop); then
    :meth:`ledger` is not available. The child gets the app key through an inherited pipe
    (``--app-key-fd``), never on its command line or in its environment, and its work folder
    is made and removed here, even if the child is killed. Construction blocks until the
    server accepts requests.
    """

    def __init__(self, config: Optional[DevnetConfig] = None, *, providers: Optional[int] = None,
                 seed: Optional[int] = None, app_key: Optional[str] = None, port: int = 0,
                 subprocess: bool = False,
                 exeunit_factory: Optional[ExeUnitFactory] = None) -> None:
        if config is None:
            config = DevnetConfig.default(4 if providers is None else providers, seed)
        self.config = config
        self.app_key = app_key or secrets.token_hex(16)
        self._node: Optional[DevnetNode] = None
        self._process: Optional[sp.Popen[str]] = None
        self._workdir: Optional[str] = None  # a child devnet's work folder, made here
        self._lock = threading.Lock()  # guards stop()
        self._stopped = False
        if subprocess:
            self.url, self.node_id = self._spawn(port)
        else:
            self._node = DevnetNode(config, self.app_key, port, exeunit_factory)
            self._node.start()
            self.url = f"http://127.0.0.1:{self._node.port}"
            self.node_id = self._node.node_id

    @property
    def env(self) -> dict[str, str]:
        """The environment a client needs: ``YAGNA_API_URL`` and ``YAGNA_APPKEY``."""
        return {"YAGNA_API_URL": self.url, "YAGNA_APPKEY": self.app_key}

    def ledger(self) -> dict[str, Any]:
        """A snapshot of what was agreed, billed and paid (in-process devnets only).

        Shape::

            {"agreements": [{"agreement_id": str, "provider_id": str, "provider_name": str,
                             "state": str,              # Proposal/Pending/Approved/Terminated...
                             "terminator": str | None,  # "Requestor"/"Provider" once terminated
                             "activities": [activity_id, ...],
                             "invoice_id": str | None,
                             "invoice_amount": Decimal | None,
                             "invoice_status": str | None,   # RECEIVED/ACCEPTED/REJECTED...
                             "debit_notes": [(note_id, Decimal total_amount_due, status), ...],
                             "accepted_total": Decimal}, ...],  # booked against allocations
             "allocations": [{"id": str, "total": Decimal, "spent": Decimal,
                              "remaining": Decimal, "released": bool}, ...]}
        """
        if self._node is None:
            raise RuntimeError("ledger() is only available for an in-process Devnet")
        return self._node.ledger()

    def stop(self) -> None:
        """Stop the network and wait for it (every thread joined / the child process reaped)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._node is not None:
            self._node.stop()
        if self._process is not None:
            self._stop_process(self._process)
            self._remove_workdir()

    def __enter__(self) -> Devnet:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.stop()

    # -- child process ---------------------------------------------------------------------

    def _spawn(self, port: int) -> tuple[str, str]:
        # The app key goes through an inherited pipe, never argv or the environment (both
        # readable in /proc); the work folder is made here so it is removed even when the
        # child dies without cleaning up.
        config = self.config
        if config.workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="golemsync-devnet-")
            config = dataclasses.replace(config, workdir=self._workdir)
        handle, path = tempfile.mkstemp(prefix="golemsync-devnet-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(config.to_dict(), out)
        key_read, key_write = os.pipe()
        try:
            os.write(key_write, self.app_key.encode())
        finally:
            os.close(key_write)
        command = [sys.executable, "-m", "golemsync", "devnet", "--config", path,
                   "--port", str(port), "--app-key-fd", str(key_read)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            self._process = sp.Popen(command, stdout=sp.PIPE, text=True, env=env,
                                     pass_fds=(key_read,))
            os.close(key_read)
            key_read = -1
            assert self._process.stdout is not None
            url = _read_exports(self._process.stdout)
        except BaseException:
            if key_read >= 0:
                os.close(key_read)
            if self._process is not None:
                self._stop_process(self._process)
            self._remove_workdir()
            raise
        finally:
            os.unlink(path)
        return url, node_id(self.config.seed, "requestor")

    def _remove_workdir(self) -> None:
        if self._workdir is not None:
            remove_tree(Path(self._workdir))
            self._workdir = None

    @staticmethod
    def _stop_process(process: sp.Popen[str]) -> None:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except sp.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _read_exports(stream: IO[str]) -> str:
    """Read the child's ``export YAGNA_API_URL=...`` line, waiting at most STARTUP_TIMEOUT."""
    seen: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(max(0.0, deadline - time.monotonic())):
                continue
            line = stream.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("export YAGNA_API_URL="):
                return line.split("=", 1)[1].strip()
    raise RuntimeError("devnet child process did not print its URL: " + "".join(seen[-5:]))
