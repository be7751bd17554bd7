#!/usr/bin/env python3
"""The yapapi 0.13.1 side of bench/compare.py: N one-command tasks, milestones on stdout.

Runs in bench/.venv-compare (``make bench-compare`` installs yapapi there). yapapi reads
``YAGNA_API_URL``/``YAGNA_APPKEY`` from the environment and uses its defaults otherwise
(subnet ``public``, ``erc20``/``holesky``: what the devnet offers). The payload is yapapi's VM
package built directly from the image reference, because ``vm.repo(image_url=...)`` first
sends a HEAD request to the image URL, which a machine without a network cannot answer;
the demand it produces is the one ``vm.repo`` would.

    python bench/client_yapapi.py --tasks N --workers P [--notify-at K]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta

from client_events import Milestones, emit, latency_summary
from yapapi import Golem, Task, WorkContext
from yapapi.payload.vm import _VmConstraints, _VmPackage

IMAGE = f"hash:sha3:{'ab' * 28}:http://registry.invalid/image.gvmi"


async def run(tasks: int, workers: int, milestones: Milestones) -> int:
    payload = _VmPackage(image_url=IMAGE, constraints=_VmConstraints(0.5, 2.0, 1, []))
    accepted = 0

    async def worker(ctx: WorkContext, queue):  # type: ignore[no-untyped-def]
        async for task in queue:
            script = ctx.new_script()
            future = script.run("/bin/echo", str(task.data))
            yield script
            task.accept_result(result=(await future).stdout)

    async with Golem(budget=100.0) as golem:
        async for task in golem.execute_tasks(worker, [Task(data=i) for i in range(tasks)],
                                              payload=payload, max_workers=workers,
                                              timeout=timedelta(minutes=30)):
            accepted += task.result is not None
            milestones.result()
    return accepted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--notify-at", type=int, default=None)
    args = parser.parse_args()
    milestones = Milestones(args.tasks, args.notify_at)
    interrupted = False
    accepted = 0
    try:
        # asyncio.run turns the first SIGINT into a cancellation of this coroutine, so
        # yapapi's ``async with Golem`` shuts down (agreements, invoices, allocation) first.
        accepted = asyncio.run(run(args.tasks, args.workers, milestones))
    except KeyboardInterrupt:
        interrupted = True
    emit("summary", done=milestones.done, accepted=accepted, interrupted=interrupted,
         client_requests=None, **latency_summary([]))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
