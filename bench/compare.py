#!/usr/bin/env python3
"""golemsync, yapapi 0.13.1 and a bare requests-and-threads client, side by side.

Every run gets a fresh devnet (bench/counting_devnet.py: ``golemsync devnet --providers P
--seed S`` plus a devnet-side request counter) and runs one client as a subprocess doing N
one-command tasks (``/bin/echo i``) with P workers. The clients take turns (the order rotates
from one repetition to the next), so a slow spell of the shared machine does not land on one
client only. Measured per run:

  * wall time: from spawning the client process to its exit (imports, negotiation, the work,
    settling the payments: everything);
  * first / last result: from the spawn to the client reporting its first / last result;
  * HTTP requests per task: every request the devnet answered during the run (market,
    activity and payment APIs: debit notes every 2 s per activity included), divided by N;
  * client CPU per task: the child's ``ru_utime + ru_stime`` (``os.wait4``) divided by N;
  * command finished -> result seen: from the devnet's ``eventDate`` of the result to the
    client seeing it (golemsync: the Future's done-callback; bare: the long-poll reply;
    yapapi: not measured);
  * SIGINT -> exit (separate runs): SIGINT is sent once a quarter of the tasks are done; the
    time from the signal to the process exiting, and whether the devnet then shows
    everything settled (agreements terminated, invoices accepted, allocation released).

Medians over the repetitions are printed, with ratios golemsync / bare and golemsync / yapapi
(below 1: golemsync is better, for every figure here), and the load average before and after.
Raw figures go to bench/results/compare-*.json. Figures, not pass/fail tests.

    python bench/compare.py [--quick] [--yapapi-python PATH] [--only golemsync,bare]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess as sp
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Optional

HERE = Path(__file__).resolve().parent
CLIENTS = ("golemsync", "bare", "yapapi")
FULL = [  # (tasks, providers, repetitions)
    (200, 4, 3), (200, 16, 3), (1000, 4, 2), (1000, 16, 2), (2000, 64, 1)]
FULL_SIGINT = [(200, 4), (200, 16), (2000, 64)]  # (tasks, providers), one run per client
QUICK = [(50, 4, 1)]
QUICK_SIGINT = [(50, 4)]
DEVNET_START_TIMEOUT = 120.0
STATS_TIMEOUT = 30.0


@dataclass
class Run:
    client: str
    tasks: int
    providers: int
    seed: int
    sigint: bool
    returncode: Optional[int] = None
    wall_s: Optional[float] = None
    first_s: Optional[float] = None
    last_s: Optional[float] = None
    done: int = 0
    cpu_s: Optional[float] = None
    requests: Optional[int] = None
    requests_by_area: dict[str, int] = field(default_factory=dict)
    client_requests: Optional[int] = None
    latency_ms_median: Optional[float] = None
    latency_ms_p95: Optional[float] = None
    sigint_exit_s: Optional[float] = None
    settled: Optional[bool] = None
    unsettled: list[str] = field(default_factory=list)
    agreements: Optional[int] = None
    outcomes: dict[str, int] = field(default_factory=dict)
    load_before: float = 0.0
    error: Optional[str] = None

    @property
    def per_task(self) -> int:
        return max(1, self.tasks if not self.sigint else self.done)


class DevnetProcess:
    """bench/counting_devnet.py as a child process: its URL, app key and stats on request."""

    def __init__(self, providers: int, seed: int) -> None:
        command = [sys.executable, str(HERE / "counting_devnet.py"),
                   "--providers", str(providers), "--seed", str(seed)]
        self.process = sp.Popen(command, stdin=sp.PIPE, stdout=sp.PIPE, text=True)
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="bench-devnet-reader")
        self._reader.start()
        self.env: dict[str, str] = {}
        for _ in range(2):
            line = self._readline(DEVNET_START_TIMEOUT)
            key, _, value = line.removeprefix("export ").strip().partition("=")
            self.env[key] = value
        if set(self.env) != {"YAGNA_API_URL", "YAGNA_APPKEY"}:
            self.stop()
            raise RuntimeError(f"devnet printed {self.env!r}")

    def stats(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        reply: dict[str, Any] = json.loads(self._readline(STATS_TIMEOUT))
        return reply

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")  # end of output

    def _readline(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no answer from the devnet within {timeout:.0f} s") from None
        if not line:
            raise RuntimeError("the devnet exited")
        return line

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # end of stdin: the devnet stops
        try:
            self.process.wait(60)
        except sp.TimeoutExpired:
            self.process.terminate()
            self.process.wait()
        self._reader.join()
        if self.process.stdout is not None:
            self.process.stdout.close()


def client_command(client: str, args: argparse.Namespace) -> list[str]:
    scripts = {"golemsync": (sys.executable, "client_golemsync.py"),
               "bare": (sys.executable, "bare_client.py"),
               "yapapi": (args.yapapi_python, "client_yapapi.py")}
    python, script = scripts[client]
    return [python, str(HERE / script)]


def run_once(run: Run, args: argparse.Namespace, gftp_dir: str, log: IO[str]) -> Run:
    """One client on one fresh devnet; fills in ``run``."""
    run.load_before = os.getloadavg()[0]
    devnet = DevnetProcess(run.providers, run.seed)
    try:
        env = dict(os.environ, **devnet.env)
        # yapapi starts a gftp server at once; the devnet's stand-in plays that part.
        env["PATH"] = gftp_dir + os.pathsep + env.get("PATH", "")
        command = client_command(run.client, args) + [
            "--tasks", str(run.tasks), "--workers", str(run.providers)]
        if run.sigint:
            command += ["--notify-at", str(max(1, run.tasks // 4))]
        log.write(f"\n=== {run.client} N={run.tasks} P={run.providers} seed={run.seed}"
                  f"{' SIGINT' if run.sigint else ''}\n")
        log.flush()
        _drive(run, command, env, log, args.run_timeout)
        stats = devnet.stats()
        run.requests = stats["requests"]
        run.requests_by_area = stats["by_area"]
        run.settled = stats["settled"]
        run.unsettled = stats["unsettled"]
        run.agreements = stats["agreements"]
        run.outcomes = stats["outcomes"]
    except Exception as exc:  # one broken run must not lose the others
        run.error = f"{type(exc).__name__}: {exc}"
    finally:
        devnet.stop()
    return run


def _drive(run: Run, command: list[str], env: dict[str, str], log: IO[str],
           timeout: float) -> None:
    spawned = time.monotonic()
    child = sp.Popen(command, stdout=sp.PIPE, stderr=log, text=True, env=env)
    assert child.stdout is not None
    events: dict[str, dict[str, Any]] = {}
    sigint_at: list[float] = []
    exited = threading.Event()  # set, under ``lock``, once the child has exited
    lock = threading.Lock()  # no signal may reach a pid that has been reaped (and reused)

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                log.write(f"[stdout] {line}")
                continue
            events.setdefault(event["event"], event)
            if event["event"] == "notify" and run.sigint:
                with lock:
                    if not exited.is_set():
                        sigint_at.append(time.monotonic())
                        os.kill(child.pid, signal.SIGINT)

    def watchdog() -> None:
        if not exited.wait(timeout):
            with lock:
                if not exited.is_set():
                    log.write(f"[bench] {run.client} still running after {timeout:.0f} s: "
                              "killed\n")
                    os.kill(child.pid, signal.SIGKILL)

    reader = threading.Thread(target=read, name="bench-reader")
    guard = threading.Thread(target=watchdog, name="bench-watchdog")
    reader.start()
    guard.start()
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
        ended = time.monotonic()
    finally:
        with lock:
            exited.set()
    try:
        _, status, usage = os.wait4(child.pid, 0)  # reap it, with its resource usage
        child.returncode = os.waitstatus_to_exitcode(status)
    finally:
        guard.join()
        reader.join()
        child.stdout.close()
    run.returncode = child.returncode
    run.wall_s = ended - spawned
    run.cpu_s = usage.ru_utime + usage.ru_stime
    if "first" in events:
        run.first_s = events["first"]["t"] - spawned
    if "last" in events:
        run.last_s = events["last"]["t"] - spawned
    summary = events.get("summary", {})
    run.done = int(summary.get("done", 0))
    run.client_requests = summary.get("client_requests")
    run.latency_ms_median = summary.get("latency_ms_median")
    run.latency_ms_p95 = summary.get("latency_ms_p95")
    if sigint_at:
        run.sigint_exit_s = ended - sigint_at[0]
    if run.returncode not in (0, 130):
        raise RuntimeError(f"{run.client} exited with {run.returncode}")
    if not run.sigint and run.done != run.tasks:
        raise RuntimeError(f"{run.client} returned {run.done} of {run.tasks} results")


# -- the table -----------------------------------------------------------------------------

FIGURES: list[tuple[str, str, str]] = [  # (label, how, format)
    ("wall time, spawn -> exit (s)", "wall_s", "{:.2f}"),
    ("providers hired (agreements)", "agreements", "{:.0f}"),
    ("first result (s)", "first_s", "{:.2f}"),
    ("last result (s)", "last_s", "{:.2f}"),
    ("HTTP requests / task (devnet)", "requests_per_task", "{:.2f}"),
    ("  of which activity API", "activity_per_task", "{:.2f}"),
    ("client CPU / task (ms)", "cpu_ms_per_task", "{:.2f}"),
    ("finished -> seen, median (ms)", "latency_ms_median", "{:.1f}"),
    ("finished -> seen, p95 (ms)", "latency_ms_p95", "{:.1f}"),
]
SIGINT_FIGURES: list[tuple[str, str, str]] = [
    ("SIGINT -> exit (s)", "sigint_exit_s", "{:.2f}"),
    ("providers hired (agreements)", "agreements", "{:.0f}"),
    ("settled at exit", "settled", "{}"),
]


def figure(run: Run, how: str) -> Any:
    if run.error is not None:
        return None
    if how == "requests_per_task":
        return None if run.requests is None else run.requests / run.per_task
    if how == "activity_per_task":
        return run.requests_by_area.get("activity", 0) / run.per_task
    if how == "cpu_ms_per_task":
        return None if run.cpu_s is None else 1000 * run.cpu_s / run.per_task
    return getattr(run, how)


def median(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    if isinstance(present[0], bool):
        return all(present)
    return statistics.median(present)


def table(runs: list[Run], tasks: int, providers: int, sigint: bool) -> str:
    chosen = [r for r in runs if (r.tasks, r.providers, r.sigint) == (tasks, providers, sigint)]
    clients = [c for c in CLIENTS if any(r.client == c for r in chosen)]
    reps = max((sum(r.client == c for r in chosen) for c in clients), default=0)
    loads = [r.load_before for r in chosen]
    title = (f"N={tasks} tasks, {providers} providers, "
             f"{'SIGINT after N/4 results, ' if sigint else ''}{reps} run(s) each, "
             f"load {min(loads):.2f}..{max(loads):.2f}")
    columns = clients + [f"gs/{c}" for c in clients if c != "golemsync"]
    rows = [[title] + columns]
    for label, how, fmt in (SIGINT_FIGURES if sigint else FIGURES):
        values = {c: median([figure(r, how) for r in chosen if r.client == c])
                  for c in clients}
        row = [label] + [("n/a" if values[c] is None else fmt.format(values[c]))
                         for c in clients]
        mine = values.get("golemsync") if how != "agreements" else None
        for other in clients:
            if other == "golemsync":
                continue
            theirs = values[other]
            usable = (isinstance(mine, (int, float)) and isinstance(theirs, (int, float))
                      and not isinstance(mine, bool) and theirs)
            row.append(f"{mine / theirs:.2f}" if usable else "")
        rows.append(row)
    failures = [f"  ! {r.client}: {r.error}" for r in chosen if r.error]
    failures += [f"  ! {r.client}: not settled: {'; '.join(r.unsettled)}"
                 for r in chosen if r.settled is False]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines + failures)


def _triple(text: str) -> tuple[int, int, int]:
    tasks, providers, runs = (int(part) for part in text.split("x"))
    return tasks, providers, runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=50 on 4 providers, 1 run each")
    parser.add_argument("--yapapi-python", default=str(HERE / ".venv-compare" / "bin" / "python"),
                        help="a Python with yapapi 0.13.1 installed")
    parser.add_argument("--only", default=",".join(CLIENTS), help="clients to run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--run-timeout", type=float, default=600.0,
                        help="kill a client still running after this many seconds")
    parser.add_argument("--matrix", default=None,
                        help="instead of the full matrix: TASKSxPROVIDERSxRUNS,... e.g. 500x8x2")
    parser.add_argument("--sigint", default=None,
                        help="instead of the full SIGINT runs: TASKSxPROVIDERS,... ('' for none)")
    args = parser.parse_args()
    clients = [c for c in CLIENTS if c in args.only.split(",")]
    matrix = QUICK if args.quick else FULL
    sigint_matrix = QUICK_SIGINT if args.quick else FULL_SIGINT
    if args.matrix is not None:
        matrix = [_triple(item) for item in args.matrix.split(",") if item]
    if args.sigint is not None:
        sigint_matrix = [_triple(item + "x1")[:2] for item in args.sigint.split(",") if item]
    plan: list[Run] = []
    for tasks, providers, reps in matrix:
        for rep in range(reps):
            order = clients[rep % len(clients):] + clients[:rep % len(clients)]
            plan += [Run(c, tasks, providers, args.seed + rep, False) for c in order]
    for tasks, providers in sigint_matrix:
        plan += [Run(c, tasks, providers, args.seed, True) for c in clients]
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = results_dir / f"compare-{stamp}.log"
    load_before = os.getloadavg()
    began = time.monotonic()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)} "
          f"({os.cpu_count()} CPUs); {len(plan)} runs; client logs in {log_path}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-gftp-") as gftp_dir, \
            open(log_path, "w", encoding="utf-8") as log:
        os.symlink(Path(sys.executable).parent / "golemsync-devnet-gftp",
                   Path(gftp_dir) / "gftp")
        for number, run in enumerate(plan, 1):
            run_once(run, args, gftp_dir, log)
            shown = "error" if run.error else f"{run.wall_s:.1f} s"
            print(f"[{number}/{len(plan)}] {run.client:<9} N={run.tasks:<5} P={run.providers:<3}"
                  f"{' SIGINT' if run.sigint else '       '} {shown}", flush=True)
    load_after = os.getloadavg()
    print()
    for tasks, providers, _ in matrix:
        print(table(plan, tasks, providers, False), end="\n\n")
    for tasks, providers in sigint_matrix:
        print(table(plan, tasks, providers, True), end="\n\n")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}, after: "
          f"{' '.join(f'{x:.2f}' for x in load_after)} ({os.cpu_count()} CPUs); "
          f"total {time.monotonic() - began:.0f} s")
    out = results_dir / f"compare-{stamp}.json"
    out.write_text(json.dumps({"load_before": load_before, "load_after": load_after,
                               "runs": [asdict(r) for r in plan]}, indent=1))
    print(f"raw figures: {out}")
    return 1 if any(r.error for r in plan) else 0


if __name__ == "__main__":
    sys.exit(main())
