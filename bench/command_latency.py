#!/usr/bin/env python3
"""Per-command Future latency on the devnet: a ``sleep 0`` then a ``sleep 2`` in one script.

For every command, the latency is the time from the devnet's report that it finished (the
result's ``eventDate``, ``CommandResult.finished_at``) to its Future resolving in the client
(a done-callback). The contract: each Future resolves as soon as its own command is done, so
the ``sleep 0`` command's latency must not include the 2 s of the command after it, whatever
``poll_timeout`` is. Also prints HTTP requests per script. Figures, not a pass/fail test.

    python bench/command_latency.py [--scripts N] [--providers N] [--poll-timeouts 3,10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import Any

from golemsync import Golem, Script, Task, WorkContext, vm
from golemsync.devnet import Devnet, DevnetConfig, ProviderSpec

PAYLOAD = vm.repo(image_hash="ab" * 28, image_url="http://registry.invalid/image.gvmi")
COMMANDS = ("sleep 0", "sleep 2")


def measure(devnet: Devnet, scripts: int, providers: int,
            poll_timeout: float) -> dict[str, float]:
    """Run ``scripts`` two-command scripts; latency figures per command and requests/script."""
    lags: list[list[float]] = [[] for _ in COMMANDS]
    lock = threading.Lock()  # guards lags

    def record(position: int) -> Any:
        def on_done(future: Future[Any]) -> None:
            resolved = datetime.now(timezone.utc)
            finished = future.result().finished_at
            if finished is not None:
                with lock:
                    lags[position].append((resolved - finished).total_seconds())
        return on_done

    def worker(ctx: WorkContext, tasks: Iterator[Task[int]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=30)
            futures = [script.run("/bin/sh", "-c", command) for command in COMMANDS]
            for position, future in enumerate(futures):
                future.add_done_callback(record(position))
            yield script
            task.accept_result([f.result().exit_code for f in futures])

    with Golem(budget=100, api_url=devnet.url, app_key=devnet.app_key, invoice_timeout=30,
               poll_timeout=poll_timeout) as golem:
        assert golem.client is not None
        before = golem.client.request_count
        done = list(golem.execute_tasks(worker, range(scripts), PAYLOAD, max_workers=providers))
        requests = golem.client.request_count - before
    assert all(t.result == [0, 0] for t in done), "a script failed"
    row: dict[str, float] = {"poll_timeout_s": poll_timeout}
    for position, command in enumerate(COMMANDS):
        values = sorted(lags[position])
        row[f"{command!r} latency median ms"] = 1000 * statistics.median(values)
        row[f"{command!r} latency max ms"] = 1000 * values[-1]
    row["HTTP requests per task (whole job)"] = requests / scripts
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripts", type=int, default=16)
    parser.add_argument("--providers", type=int, default=4)
    parser.add_argument("--poll-timeouts", default="3,10",
                        help="comma-separated poll_timeout values to try (seconds)")
    args = parser.parse_args()
    specs = [ProviderSpec(name=f"lat-{i:02d}", cpu_threads=2) for i in range(args.providers)]
    config = DevnetConfig(providers=specs, seed=11, debit_note_interval=30.0)
    rows = []
    with Devnet(config, subprocess=True) as devnet:
        for value in args.poll_timeouts.split(","):
            began = time.monotonic()
            row = measure(devnet, args.scripts, args.providers, float(value))
            row["wall_s"] = time.monotonic() - began
            rows.append(row)
    width = max(len(key) for key in rows[0])
    for row in rows:
        for key, number in row.items():
            print(f"{key:<{width}}  {number:,.1f}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
