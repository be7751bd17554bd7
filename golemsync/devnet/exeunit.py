"""The devnet's exe-unit: runs the ExeScript batches of one activity, for real.

It follows the daemon's exe-unit (PROTOCOL §4): the state machine Initialized → Deployed →
Ready (``deploy``, ``start``; ``terminate`` goes back to Initialized), the preconditions and
their exact messages, the first failing command ending its batch, cumulative results from
index 0, the results long-poll with and without ``commandIndex`` (including the daemon's
quirks), and runtime events for SSE subscribers. Commands run in a
:class:`~golemsync.devnet.sandbox.Sandbox` (its docstring says what a command can reach in each
mode); transfers move files between the volumes, the devnet's gftp store and http(s) URLs, in
chunks. A command killed for exceeding the sandbox's process limit fails with ``ExeScript
command killed: more than 256 processes``; output cut at the capture limit is reported in the
result's ``message`` (see :mod:`golemsync.devnet.capture`).

The activity is a VM: its commands share one sandbox, and what one starts in the background
keeps running until ``terminate`` or the activity's end. ``deploy``'s ``net`` entries
(``[{"id", "nodeIp", ...}]``, as a requestor's VPN gives them) put the activity in those
networks: :meth:`ExeUnit.vpn_address` answers the devnet's Net API, and :meth:`ExeUnit.connect`
opens the TCP connection its tunnel carries (see :mod:`golemsync.devnet.netapi`).

Each batch runs on its own thread, started by ``exec``. Runtime events are kept per batch from
its creation, so a subscriber that connects right after ``exec`` sees every event (the daemon
only broadcasts to subscribers already listening; keeping them is the forgiving superset).

Faults come from the provider's spec, drawn from the activity's seeded RNG: ``fail_rate``
fails a ``run`` without running it, ``crash_rate`` crashes the activity at a random command of
a batch (Unresponsive, then Terminated, and the devnet is told), ``slow_factor`` stretches
every command's time by waiting (interruptibly) after it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any, Callable, Optional

from golemsync import timestamps
from golemsync.devnet.capture import Capture, encode, pump, truncation_note
from golemsync.devnet.errors import BatchNotFound, ResultsTimeout
from golemsync.devnet.gsb import GsbServices
from golemsync.devnet.sandbox import MAX_PROCESSES, Sandbox
from golemsync.devnet.transfer import TransferError, transfer

logger = logging.getLogger(__name__)

_TOO_MANY = -(1 << 20)  # _execute's code for a command killed for too many processes
STATEFUL = ("deploy", "start", "run", "transfer")
_REQUIRED = {"deploy": "Initialized", "start": "Deployed", "run": "Ready", "transfer": "Ready"}
_STATE_ERRORS = {
    "Initialized": "State error: Activity is initialized - deploy() command is expected now",
    "Deployed": "State error: Activity is deployed - start() command is expected now",
    "Ready": "State error: Cannot send command after a successful start()",
}


def _seconds(value: Any) -> Optional[float]:
    """``"300ms"``/``"1s"``/``"2m"`` (the daemon's humantime strings) in seconds."""
    if not isinstance(value, str):
        return None
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if value.endswith(suffix):
            try:
                return float(value[: -len(suffix)]) * factor
            except ValueError:
                return None
    return None


def _networks(value: Any) -> dict[str, str]:
    """The ``net`` entries of a ``deploy`` (``[{"id", "nodeIp", "ip", "mask", ...}]``) as
    {network id: this node's address}; ValueError names what is wrong."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise ValueError("net must be a list of networks")
    found: dict[str, str] = {}
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ValueError(f"invalid net entry {entry!r}: no network id")
        try:
            address = ipaddress.IPv4Address(str(entry.get("nodeIp")))
        except ValueError:
            raise ValueError(f"invalid net entry for network {entry['id']}: missing field "
                             "`nodeIp` or not an IPv4 address") from None
        found[entry["id"]] = str(address)
    return found


class _Crashed(Exception):
    """The activity crashed (fault injection) or was destroyed under a running batch."""


@dataclass
class Outcome:
    ok: bool
    stdout: Any = None
    stderr: Any = None
    message: Optional[str] = None
    return_code: int = 0


@dataclass
class Batch:
    batch_id: str
    commands: list[dict[str, Any]]
    crash_at: Optional[int]
    results: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    failed: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)
    thread: Optional[threading.Thread] = None


class Subscription:
    """Runtime events of one batch, from its beginning; ``get`` waits for the next."""

    def __init__(self, batch: Batch) -> None:
        self._batch = batch
        self._cursor = 0
        self._closed = False

    def get(self, timeout: float) -> Optional[dict[str, Any]]:
        with self._batch.cond:
            if self._cursor >= len(self._batch.events) and not self._closed:
                self._batch.cond.wait(timeout)
            if self._closed or self._cursor >= len(self._batch.events):
                return None
            event = self._batch.events[self._cursor]
            self._cursor += 1
            return event

    def close(self) -> None:
        with self._batch.cond:
            self._closed = True
            self._batch.cond.notify_all()


class ExeUnit:
    """One activity's exe-unit (see the module docstring)."""

    def __init__(self, activity_id: str, *, workdir: Path, provider: Any, rng: Random,
                 gftp_root: Path, usage_vector: Sequence[str],
                 on_crash: Callable[[str], None], sandbox_mode: Optional[str] = None,
                 gsb: Optional[GsbServices] = None, quick_failed_poll: bool = False) -> None:
        self.activity_id = activity_id
        self.provider = provider
        self._rng = rng
        self._gftp_root = gftp_root
        self._gsb = gsb  # the requestor's GSB services, for gftp URLs bound there
        self._usage_vector = list(usage_vector)
        self._on_crash = on_crash
        self._quick_failed_poll = quick_failed_poll  # see results()
        self.sandbox = Sandbox(workdir / "sandbox", mode=sandbox_mode)
        self._lock = threading.Lock()  # guards the state, batches, processes, usage counters
        self._state: tuple[str, Optional[str]] = ("Initialized", None)
        self._busy = False
        self._env: dict[str, str] = {}
        self._networks: dict[str, str] = {}  # VPN id -> this activity's address (deploy)
        self._batches: dict[str, Batch] = {}
        self._running: list[dict[str, Any]] = []
        self._abort = threading.Event()  # set by destroy/crash: stop everything
        self._created = time.monotonic()
        self._ended: Optional[float] = None
        self._cpu_seconds = 0.0

    # -- seam ------------------------------------------------------------------------------
    def state(self) -> tuple[str, Optional[str]]:
        with self._lock:
            return self._state

    def exec(self, commands: Any) -> str:
        """Start a batch (already validated by the daemon side); returns its id at once."""
        batch = Batch(secrets.token_hex(16), list(commands), self._draw_crash(len(commands)))
        thread = threading.Thread(target=self._run_batch, args=(batch,),
                                  name=f"golemsync-devnet-batch-{batch.batch_id[:8]}")
        batch.thread = thread
        with self._lock:
            self._batches[batch.batch_id] = batch
        thread.start()
        return batch.batch_id

    def results(self, batch_id: str, timeout: float,
                command_index: Optional[int]) -> list[dict[str, Any]]:
        """Finished results from index 0 (PROTOCOL §4.6, quirks included).

        As the daemon's exe-unit, a poll for an index past a command that failed waits out
        its whole ``timeout`` (then answers the results so far, or 408 with
        ``command_index``); ``quick_failed_poll`` answers such a poll at once instead. A
        batch that stopped for another reason (a crash, a destroy) answers at once.
        """
        batch = self._batch(batch_id)
        if not batch.commands:
            return []
        target = len(batch.commands) - 1 if command_index is None else command_index
        deadline = time.monotonic() + max(0.0, timeout)
        with batch.cond:
            while len(batch.results) <= target:
                stopped = batch.done and (self._quick_failed_poll or not batch.failed)
                remaining = deadline - time.monotonic()
                if stopped or remaining <= 0 or self._abort.is_set():
                    break
                batch.cond.wait(remaining)
            reached = len(batch.results) > target
            if not reached and command_index is not None:
                raise ResultsTimeout()
            items = [dict(r) for r in batch.results[: target + 1]]
        if command_index is not None and items:
            for item in items[:-1]:
                item["stdout"] = item["stderr"] = None
            items[-1]["isBatchFinished"] = True
        return items

    def subscribe(self, batch_id: str) -> Subscription:
        return Subscription(self._batch(batch_id))

    def usage(self) -> list[float]:
        with self._lock:
            end = self._ended if self._ended is not None else time.monotonic()
            values = {"golem.usage.duration_sec": end - self._created,
                      "golem.usage.cpu_sec": self._cpu_seconds}
        return [round(values.get(name, 0.0), 6) for name in self._usage_vector]

    def running_commands(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self._running]

    def vpn_address(self, network_id: str) -> Optional[str]:
        """This activity's address in VPN ``network_id`` (from its ``deploy``), or None."""
        with self._lock:
            if self._state[0] not in ("Deployed", "Ready"):
                return None
            return self._networks.get(network_id)

    def connect(self, port: int, timeout: float) -> socket.socket:
        """A TCP connection to ``port`` inside the activity (its sandbox's network)."""
        return self.sandbox.connect(port, timeout)

    def destroy(self, ended_at: Optional[float] = None) -> None:
        """Kill everything, mark Terminated, join the batch threads. Idempotent.
        ``ended_at`` (a ``time.monotonic()`` instant, not later than now) is when the usage
        clock stopped, if earlier than this call: when the destroy was asked for."""
        if ended_at is not None:
            with self._lock:
                if self._ended is None:
                    self._ended = max(self._created, min(ended_at, time.monotonic()))
        self._shutdown(("Terminated", None))
        self.sandbox.close()
        for batch in self._all_batches():
            if batch.thread is not None and batch.thread is not threading.current_thread():
                batch.thread.join(10)
        self.sandbox.remove()

    def crash(self, reason: str) -> None:
        """Fault: the exe-unit dies; the devnet hears of it through ``on_crash``."""
        with self._lock:
            if self._state[0] == "Terminated":
                return
            self._state = ("Unresponsive", None)
        self._shutdown(("Terminated", None))
        self._on_crash(reason)

    # -- batches --------------------------------------------------------------------------------
    def _batch(self, batch_id: str) -> Batch:
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None:
            raise BatchNotFound(batch_id)
        return batch

    def _all_batches(self) -> list[Batch]:
        with self._lock:
            return list(self._batches.values())

    def _draw_crash(self, count: int) -> Optional[int]:
        rate = float(getattr(self.provider, "crash_rate", 0.0) or 0.0)
        if count and rate > 0 and self._rng.random() < rate:
            return self._rng.randrange(count)
        return None

    def _run_batch(self, batch: Batch) -> None:
        try:
            for index, command in enumerate(batch.commands):
                if batch.crash_at == index:
                    self.crash(f"provider crashed during command {index}")
                    raise _Crashed()
                outcome = self._run_command(batch, index, command)
                self._record(batch, index, outcome)
                if not outcome.ok:
                    break
        except _Crashed:
            pass  # the batch never finishes: its later results never come
        except Exception:
            logger.exception("devnet exe-unit: batch %s failed internally", batch.batch_id)
        finally:
            with batch.cond:
                batch.done = True
                batch.cond.notify_all()

    def _run_command(self, batch: Batch, index: int, command: dict[str, Any]) -> Outcome:
        name, args = next(iter(command.items()))
        args = args if isinstance(args, dict) else {}
        self._event(batch, index, {"started": {"command": command}})
        begun = time.monotonic()
        outcome = self._dispatch(batch, index, name, args)
        self._stretch(time.monotonic() - begun)
        if self._abort.is_set():
            raise _Crashed()
        code = outcome.return_code if not outcome.ok else 0
        self._event(batch, index, {"finished": {"return_code": code if code else
                                                (0 if outcome.ok else 1),
                                                "message": outcome.message}})
        return outcome

    def _dispatch(self, batch: Batch, index: int, name: str, args: dict[str, Any]) -> Outcome:
        if name == "sign":
            return Outcome(False, message="signing not supported: binary built without the "
                                          "'sgx' feature")
        if name == "terminate":
            return self._terminate(batch)
        refusal = self._claim(name)
        if refusal is not None:
            return Outcome(False, message=refusal, return_code=1)
        try:
            return self._stateful(batch, index, name, args)
        finally:
            self._release(name, ok=True)

    def _claim(self, name: str) -> Optional[str]:
        with self._lock:
            current, pending = self._state
            if self._busy:
                return f"State error: Busy: StatePair({current}, Some({pending or current}))"
            if current != _REQUIRED[name]:
                return _STATE_ERRORS.get(current, f"State error: Activity is {current}")
            self._busy = True
            target = {"deploy": "Deployed", "start": "Ready"}.get(name, current)
            self._state = (current, target)
            return None

    def _release(self, name: str, ok: bool) -> None:
        with self._lock:
            self._busy = False
            current, pending = self._state
            if current in ("Terminated", "Unresponsive"):
                return
            self._state = (pending if (ok and pending) else current, None)

    def _stateful(self, batch: Batch, index: int, name: str, args: dict[str, Any]) -> Outcome:
        if name == "deploy":
            return self._deploy(args)
        if name == "start":
            return Outcome(True)
        if name == "run":
            return self._run(batch, index, args)
        return self._transfer(batch, index, args)

    def _deploy(self, args: dict[str, Any]) -> Outcome:
        try:
            networks = _networks(args.get("net"))
        except ValueError as exc:
            return Outcome(False, message=f"Deploy error: {exc}", return_code=1)
        env = args.get("env")
        if isinstance(env, dict):
            self._env = {str(k): str(v) for k, v in env.items()}
        with self._lock:
            self._networks = networks
        vols = [{"name": f"vol-{secrets.token_hex(4)}", "path": vm}
                for vm in self.sandbox.volumes]
        return Outcome(True, stdout=json.dumps({"valid": {"Ok": ""}, "vols": vols,
                                                "startMode": "blocking"}))

    def _terminate(self, batch: Batch) -> Outcome:
        self._kill_all()
        with self._lock:
            if self._state[0] not in ("Terminated", "Unresponsive"):
                self._state = ("Initialized", None)
            self._busy = False
        return Outcome(True)

    # -- run --------------------------------------------------------------------------------------
    def _run(self, batch: Batch, index: int, args: dict[str, Any]) -> Outcome:
        entry = str(args.get("entry_point", ""))
        argv = [entry, *[str(a) for a in args.get("args") or []]]
        fail_rate = float(getattr(self.provider, "fail_rate", 0.0) or 0.0)
        if fail_rate > 0 and self._rng.random() < fail_rate:
            return Outcome(False, message="ExeScript command exited with code 1", return_code=1)
        given = args.get("capture")
        capture: dict[str, Any] = given if isinstance(given, dict) else {}
        outs = {name: Capture(capture.get(name), self._chunk_sink(batch, index, name))
                for name in ("stdout", "stderr")}
        code = self._execute(argv, outs)
        if code is None:
            return Outcome(False, message=f"Failed to spawn {entry}: No such file or directory",
                           return_code=127)
        stdout, stderr = outs["stdout"].wire(), outs["stderr"].wire()
        notes = [truncation_note(name) for name, c in outs.items() if c.truncated]
        if code == _TOO_MANY:
            return Outcome(False, stdout, stderr, "; ".join([
                f"ExeScript command killed: more than {MAX_PROCESSES} processes", *notes]), 1)
        if code != 0:
            return Outcome(False, stdout, stderr, "; ".join([
                f"ExeScript command exited with code {code}", *notes]), code)
        return Outcome(True, stdout, stderr, "; ".join(notes) or None)

    def _execute(self, argv: list[str], outs: dict[str, Capture]) -> Optional[int]:
        """Run ``argv``: its exit code, None if it could not start, ``_TOO_MANY`` if killed
        for exceeding the process limit. The command is over when its own process exits:
        what it left in the background keeps running (and may keep its output pipes open)."""
        try:
            command = self.sandbox.spawn(argv, self._env)
        except OSError:
            return None
        with self._lock:
            self._running.append({"command": "Run", "params": list(argv)})
            aborted = self._abort.is_set()
        if aborted:  # destroyed while it was starting
            self.sandbox.kill_all()
        # This thread reads both output pipes until the command exits (then takes what they
        # hold: its background processes may keep them open), counting a root devnet's
        # processes between reads; no reader thread per command.
        notice = self.sandbox.exit_notice(command)
        interval = self.sandbox.watch_interval()
        try:
            pump([(outs["stdout"], command.stdout), (outs["stderr"], command.stderr)],
                 notice[0], None if interval is None else
                 (interval, lambda: self.sandbox.check_processes(command)))
            code, cpu, exceeded = self.sandbox.wait(command)
        finally:
            self.sandbox.close_notice(command, notice)
            with self._lock:
                self._running = [r for r in self._running if r["params"] != list(argv)]
        with self._lock:
            self._cpu_seconds += cpu
        return _TOO_MANY if exceeded else code

    def _chunk_sink(self, batch: Batch, index: int, stream: str) -> Callable[[bytes], None]:
        def sink(chunk: bytes) -> None:
            self._event(batch, index, {stream: encode(chunk, False) or ""})
        return sink

    # -- transfer ----------------------------------------------------------------------------
    def _transfer(self, batch: Batch, index: int, args: dict[str, Any]) -> Outcome:
        options = args.get("progress")
        report = self._progress_reporter(batch, index, options) \
            if isinstance(options, dict) else None
        try:
            moved = transfer(str(args.get("from", "")), str(args.get("to", "")),
                             sandbox=self.sandbox, gftp_root=self._gftp_root,
                             abort=self._abort, format_=args.get("format"), on_progress=report,
                             gsb=self._gsb)
        except TransferError as exc:
            return Outcome(False, message=f"Transfer error: {exc}", return_code=1)
        if report is not None:
            report(moved, moved, True)
        return Outcome(True)

    def _progress_reporter(self, batch: Batch, index: int,
                           options: dict[str, Any]) -> Callable[..., None]:
        """Progress events at most every ``updateInterval`` or ``updateStep`` bytes."""
        interval = _seconds(options.get("updateInterval")) or 1.0
        step = options.get("updateStep") if isinstance(options.get("updateStep"), int) else None
        last = {"at": 0.0, "moved": 0}

        def report(moved: int, total: Optional[int], final: bool = False) -> None:
            now = time.monotonic()
            due = now - last["at"] >= interval or (step is not None
                                                  and moved - last["moved"] >= step)
            if final or due:
                last["at"], last["moved"] = now, moved
                self._event(batch, index, {"progress": {"step": [0, 1], "message": None,
                                                        "progress": [moved, total],
                                                        "unit": "Bytes"}})
        return report

    # -- helpers -----------------------------------------------------------------------------
    def _record(self, batch: Batch, index: int, outcome: Outcome) -> None:
        last = index == len(batch.commands) - 1
        item = {"index": index, "eventDate": timestamps.to_wire(timestamps.now()),
                "result": "Ok" if outcome.ok else "Error", "stdout": outcome.stdout,
                "stderr": outcome.stderr, "message": outcome.message,
                "isBatchFinished": last or not outcome.ok}
        with batch.cond:
            batch.results.append(item)
            batch.failed = not outcome.ok
            batch.cond.notify_all()

    def _event(self, batch: Batch, index: int, kind: dict[str, Any]) -> None:
        stamp = timestamps.now().strftime("%Y-%m-%dT%H:%M:%S.%f")
        with batch.cond:
            batch.events.append({"batch_id": batch.batch_id, "index": index,
                                 "timestamp": stamp, "kind": kind})
            batch.cond.notify_all()

    def _stretch(self, elapsed: float) -> None:
        factor = float(getattr(self.provider, "slow_factor", 1.0) or 1.0)
        if factor > 1.0:
            self._abort.wait(elapsed * (factor - 1.0) + 0.01 * (factor - 1.0))

    def _shutdown(self, final: tuple[str, Optional[str]]) -> None:
        with self._lock:
            self._state = final
            if self._ended is None:
                self._ended = time.monotonic()
        self._abort.set()
        self._kill_all()
        for batch in self._all_batches():
            with batch.cond:
                batch.cond.notify_all()

    def _kill_all(self) -> None:
        self.sandbox.kill_all()
