#!/usr/bin/env python3
"""The devnet's cost of one command, next to a bare ``subprocess.run`` of the same program.

For every sandbox mode this machine offers (``bwrap`` when bubblewrap can create namespaces,
``plain``, ``bare``), one exe-unit is deployed and started, then N batches of one ``run``
command (``/bin/true`` by default) go through it one after the other, each to its end, as
the devnet's HTTP layer drives them. Reported per command: wall time (exec to the last
result), and the devnet process's own CPU (user + system of this process, which is where
the devnet's spawn work happens; the command itself runs in the sandbox's agent). The bare
line is ``subprocess.run([program])`` N times from this process.

    python bench/spawn.py [--commands 300] [--program /bin/true]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from golemsync.devnet import sandbox
from golemsync.devnet.config import USAGE_VECTOR
from golemsync.devnet.exeunit import ExeUnit

BOOT = [{"deploy": {}}, {"start": {}}]


def cpu_now() -> float:
    usage = os.times()
    return usage.user + usage.system


def measure(step: Callable[[], None], count: int) -> tuple[float, float, float]:
    """(median wall ms, mean wall ms, mean CPU ms of this process) per call of ``step``."""
    walls = []
    began_cpu = cpu_now()
    for _ in range(count):
        began = time.perf_counter()
        step()
        walls.append((time.perf_counter() - began) * 1000)
    cpu = (cpu_now() - began_cpu) * 1000 / count
    return statistics.median(walls), statistics.fmean(walls), cpu


def unit_step(mode: str, program: str, root: Path) -> tuple[ExeUnit, Callable[[], None]]:
    provider = SimpleNamespace(fail_rate=0.0, crash_rate=0.0, slow_factor=1.0)
    unit = ExeUnit(f"bench-{mode}", workdir=root / mode, provider=provider,
                   rng=random.Random(1), gftp_root=root / "gftp", usage_vector=USAGE_VECTOR,
                   on_crash=lambda reason: None, sandbox_mode=mode)
    boot = unit.results(unit.exec(BOOT), 60, None)
    if [r["result"] for r in boot] != ["Ok", "Ok"]:
        raise SystemExit(f"{mode}: deploy/start failed: {boot}")
    command: list[dict[str, Any]] = [{"run": {"entry_point": program, "args": []}}]

    def step() -> None:
        (result,) = unit.results(unit.exec(command), 60, None)
        if result["result"] != "Ok":
            raise SystemExit(f"{mode}: {program} failed: {result}")

    return unit, step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--program", default="/bin/true")
    args = parser.parse_args()
    modes = [m for m in ("bwrap", "plain", "bare") if m != "bwrap" or sandbox.bwrap_usable()]
    rows = []
    bare = measure(lambda: subprocess.run([args.program], check=True), args.commands)
    rows.append(("subprocess.run", *bare))
    with tempfile.TemporaryDirectory(prefix="golemsync-bench-spawn-") as tmp:
        for mode in modes:
            unit, step = unit_step(mode, args.program, Path(tmp))
            try:
                step()  # warm: the agent's first spawn
                rows.append((f"devnet {mode}", *measure(step, args.commands)))
            finally:
                unit.destroy()
    load = os.getloadavg()[0]
    print(f"{args.commands} commands of {args.program}, one per batch; load {load:.2f}")
    print(f"{'':<18} {'median ms':>10} {'mean ms':>9} {'CPU ms':>8} {'median / bare':>14}")
    for name, median, mean, cpu in rows:
        print(f"{name:<18} {median:>10.2f} {mean:>9.2f} {cpu:>8.2f} {median / bare[0]:>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
