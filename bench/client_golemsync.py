#!/usr/bin/env python3
"""The golemsync side of bench/compare.py: N one-command tasks, milestones on stdout.

Reads ``YAGNA_API_URL``/``YAGNA_APPKEY`` from the environment like any golemsync script. Also
measures, per command, the latency from the devnet's report that it finished (the result's
``eventDate``) to its Future resolving (a done-callback), and counts the HTTP requests the
client itself sent (``golem.request_count``) as a cross-check of the devnet's count.

    python bench/client_golemsync.py --tasks N --workers P [--notify-at K]
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import Any

from client_events import Milestones, emit, latency_summary

from golemsync import Golem, Script, Task, TaskStatus, WorkContext, vm

PAYLOAD = vm.repo(image_hash="ab" * 28, image_url="http://registry.invalid/image.gvmi")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--notify-at", type=int, default=None)
    args = parser.parse_args()
    milestones = Milestones(args.tasks, args.notify_at)
    lags: list[float] = []
    lock = threading.Lock()  # guards lags

    def on_done(future: Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        finished = future.result().finished_at
        if finished is not None:
            lag = (datetime.now(timezone.utc) - finished).total_seconds()
            with lock:
                lags.append(lag)

    def worker(ctx: WorkContext, tasks: Iterator[Task[int]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script()
            future = script.run("/bin/echo", str(task.data))
            future.add_done_callback(on_done)
            yield script
            task.accept_result(future.result().text)

    accepted = 0
    requests = 0
    interrupted = False
    try:
        with Golem(budget=100) as golem:
            try:
                for task in golem.execute_tasks(worker, range(args.tasks), PAYLOAD,
                                                max_workers=args.workers):
                    accepted += task.status is TaskStatus.DONE
                    milestones.result()
            finally:
                requests = golem.request_count
    except KeyboardInterrupt:
        interrupted = True  # leaving ``with Golem`` has settled everything already
    with lock:
        figures = latency_summary(lags)
    emit("summary", done=milestones.done, accepted=accepted, interrupted=interrupted,
         client_requests=requests, **figures)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
