#!/usr/bin/env python3
"""golemsync benchmarks on the devnet (`make bench`). Figures, not pass/fail tests.

Measures, with the devnet in a separate process so client CPU is the client's alone:
  * wall time and tasks/s for many one-command tasks on many providers;
  * client CPU milliseconds per task;
  * HTTP requests per task (counted by the client's transport);
  * latency from a command finishing on the devnet to its Future resolving;
  * time from entering Golem to the first result;
  * memory per queued task with 100,000 tasks waiting;
  * a devnet-only throughput figure (requests/s the devnet serves), to show the client, not
    the devnet, is what the engine figures measure.

    python bench/run.py [--tasks N] [--providers N] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import requests

from golemsync import Golem, Script, Task, WorkContext, vm
from golemsync.devnet import Devnet, DevnetConfig, ProviderSpec
from golemsync.tasks import TaskQueue

PAYLOAD = vm.repo(image_hash="ab" * 28, image_url="http://registry.invalid/image.gvmi")


def _devnet_config(providers: int) -> DevnetConfig:
    specs = [ProviderSpec(name=f"bench-{i:02d}", cpu_threads=2) for i in range(providers)]
    return DevnetConfig(providers=specs, seed=7, debit_note_interval=30.0)


def bench_engine(tasks: int, providers: int) -> dict[str, float]:
    """Run ``tasks`` one-command tasks on ``providers`` providers; return the figures."""
    latencies: list[float] = []
    lock = threading.Lock()

    def on_done(future: Any) -> None:
        result = future.result()
        if result.finished_at is not None:
            lag = (datetime.now(timezone.utc) - result.finished_at).total_seconds()
            with lock:
                latencies.append(lag)

    def worker(ctx: WorkContext, queue: Iterator[Task[int]]) -> Iterator[Script]:
        for task in queue:
            script = ctx.new_script()
            future = script.run("/bin/echo", str(task.data))
            future.add_done_callback(on_done)
            yield script
            task.accept_result(future.result().text)

    with Devnet(_devnet_config(providers), subprocess=True) as devnet:
        began = time.monotonic()
        cpu_began = time.process_time()
        first = None
        done = 0
        with Golem(budget=100, api_url=devnet.url, app_key=devnet.app_key,
                   invoice_timeout=30) as golem:
            requests_before = golem.request_count
            job_began = time.monotonic()
            for _ in golem.execute_tasks(worker, range(tasks), PAYLOAD, max_workers=providers):
                done += 1
                if first is None:
                    first = time.monotonic() - began
            job_wall = time.monotonic() - job_began
            job_requests = golem.request_count - requests_before
        cpu = time.process_time() - cpu_began
    assert done == tasks, f"only {done} of {tasks} tasks came back"
    return {
        "tasks": tasks,
        "providers": providers,
        "wall_s": job_wall,
        "tasks_per_s": tasks / job_wall,
        "client_cpu_ms_per_task": 1000 * cpu / tasks,
        "http_requests_per_task": job_requests / tasks,
        "first_result_s": first or 0.0,
        "future_latency_ms_median": 1000 * statistics.median(latencies),
        "future_latency_ms_p95": 1000 * sorted(latencies)[int(0.95 * (len(latencies) - 1))],
    }


def bench_queue_memory(count: int = 100_000) -> dict[str, float]:
    """Bytes per queued task beyond its data (the data is one shared int)."""
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    queue = TaskQueue([0] * count, max_retries=3, task_timeout=None, on_final=lambda t: None,
                      read_ahead=count)
    queue.feed(threading.Event())
    used = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
    tracemalloc.stop()
    queue.close()
    return {"queued_tasks": count, "bytes_per_task": used / count}


def bench_devnet_only(seconds: float = 3.0, threads: int = 8) -> dict[str, float]:
    """Requests/s the devnet answers for a cheap authenticated GET, from several threads."""
    with Devnet(_devnet_config(2), subprocess=True) as devnet:
        deadline = time.monotonic() + seconds

        def hammer() -> int:
            session = requests.Session()
            headers = {"Authorization": f"Bearer {devnet.app_key}"}
            count = 0
            while time.monotonic() < deadline:
                session.get(f"{devnet.url}/me", headers=headers, timeout=5).raise_for_status()
                count += 1
            session.close()
            return count

        with ThreadPoolExecutor(threads, thread_name_prefix="bench-devnet") as pool:
            total = sum(pool.map(lambda _: hammer(), range(threads)))
    return {"devnet_requests_per_s": total / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description="golemsync benchmarks on the devnet")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--providers", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="200 tasks on 4 providers")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.providers = 200, 4
    rows: dict[str, float] = {}
    rows.update(bench_engine(args.tasks, args.providers))
    rows.update(bench_queue_memory())
    rows.update(bench_devnet_only())
    width = max(len(k) for k in rows)
    print(f"{'figure':<{width}}  value")
    for key, value in rows.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"
        print(f"{key:<{width}}  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
