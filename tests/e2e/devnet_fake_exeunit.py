"""A tiny stand-in for golemsync.devnet.exeunit.ExeUnit, used only until the real one exists.

Commands finish instantly: ``deploy``/``start`` move the state, ``run`` echoes its args into
stdout when captured (and fails when an arg is ``"fail"``), ``terminate`` goes back to
Initialized. A provider with ``crash_rate`` > 0 may crash on exec (seeded RNG).
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from random import Random
from typing import Any, Callable, Optional

from golemsync import timestamps
from golemsync.devnet.config import ProviderSpec
from golemsync.devnet.errors import BatchNotFound, ExeScriptError, ResultsTimeout

COMMANDS = ("deploy", "start", "run", "transfer", "terminate", "sign")


class _Subscription:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        for event in events:
            self._queue.put(event)

    def get(self, timeout: float) -> Optional[dict[str, Any]]:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        pass


class FakeExeUnit:
    def __init__(self, activity_id: str, *, workdir: Path, provider: ProviderSpec, rng: Random,
                 gftp_root: Path, usage_vector: Sequence[str],
                 on_crash: Callable[[str], None]) -> None:
        self.activity_id = activity_id
        self.provider = provider
        self.rng = rng
        self.on_crash = on_crash
        self.started = time.monotonic()
        self.current = "Initialized"
        self.batches: dict[str, list[dict[str, Any]]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.frozen: Optional[list[float]] = None
        self.lock = threading.Lock()

    def state(self) -> tuple[str, Optional[str]]:
        return self.current, None

    def exec(self, commands: Any) -> str:
        if not isinstance(commands, list):
            raise ExeScriptError('Bad request: Error("invalid type: expected a sequence", '
                                 'line: 1, column: 1)')
        for command in commands:
            name = next(iter(command), "") if isinstance(command, dict) else ""
            if name not in COMMANDS:
                raise ExeScriptError(f'Bad request: Error("unknown variant `{name}`, expected '
                                     f'one of {COMMANDS}", line: 1, column: 9)')
        batch_id = secrets.token_hex(16)
        if self.provider.crash_rate and self.rng.random() < self.provider.crash_rate:
            self.batches[batch_id] = []
            self.crash("fake exe-unit crashed")
            return batch_id
        self.batches[batch_id], self.events[batch_id] = self._run(batch_id, commands)
        return batch_id

    def _run(self, batch_id: str, commands: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
        results, events = [], []
        for index, command in enumerate(commands):
            name, args = next(iter(command.items()))
            ok, stdout = self._one(name, args or {})
            results.append({"index": index, "eventDate": timestamps.to_wire(timestamps.now()),
                            "result": "Ok" if ok else "Error", "stdout": stdout,
                            "stderr": None, "message": None if ok else "ExeScript command "
                            "exited with code 1", "isBatchFinished": False})
            stamp = timestamps.to_wire(timestamps.now())[:-1]
            events.append({"batch_id": batch_id, "index": index, "timestamp": stamp,
                           "kind": {"started": {"command": command}}})
            events.append({"batch_id": batch_id, "index": index, "timestamp": stamp,
                           "kind": {"finished": {"return_code": 0 if ok else 1,
                                                 "message": None}}})
            if not ok:
                break
        results[-1]["isBatchFinished"] = True
        return results, events

    def _one(self, name: str, args: dict[str, Any]) -> tuple[bool, Optional[str]]:
        if name == "deploy":
            self.current = "Deployed"
        elif name == "start":
            self.current = "Ready"
        elif name == "terminate":
            self.current = "Initialized"
        elif name == "run":
            if self.provider.fail_rate and self.rng.random() < self.provider.fail_rate:
                return False, None
            words = [str(a) for a in args.get("args", [])]
            captured = "stdout" in (args.get("capture") or {})
            return "fail" not in words, (" ".join(words) + "\n") if captured else None
        return True, None

    def results(self, batch_id: str, timeout: float,
                command_index: Optional[int]) -> list[dict[str, Any]]:
        if batch_id not in self.batches:
            raise BatchNotFound(batch_id)
        items = self.batches[batch_id]
        if command_index is not None:
            if command_index >= len(items):
                raise ResultsTimeout()
            return items[: command_index + 1]
        return items

    def subscribe(self, batch_id: str) -> _Subscription:
        if batch_id not in self.batches:
            raise BatchNotFound(batch_id)
        return _Subscription(self.events.get(batch_id, []))

    def usage(self) -> list[float]:
        if self.frozen is not None:
            return list(self.frozen)
        elapsed = time.monotonic() - self.started
        return [round(elapsed / 2, 6), round(elapsed, 6)]

    def running_commands(self) -> list[dict[str, Any]]:
        return []

    def destroy(self) -> None:
        with self.lock:
            if self.frozen is None:
                self.frozen = self.usage()
            self.current = "Terminated"

    def crash(self, reason: str) -> None:
        self.destroy()
        self.on_crash(reason)
