#!/usr/bin/env python3
"""Hello, Golem: run `date` on one provider and print what it says.

Runs on an embedded devnet by default; set YAGNA_APPKEY (and YAGNA_API_URL) to use a real
yagna daemon instead.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from golemsync import Golem, GolemError, Script, Task, WorkContext, network, vm

# A small public Golem image with a shell; the devnet runs commands on its own sandbox.
IMAGE_HASH = "d646d7b93083d817846c2ae5c62c72ca0507782385a2e29291a3d376"
IMAGE_URL = f"https://registry.golem.network/v1/image/download?hash={IMAGE_HASH}"


def worker(ctx: WorkContext, tasks: Iterator[Task[None]]) -> Iterator[Script]:
    for task in tasks:
        script = ctx.new_script(timeout=60)
        date = script.run("/bin/sh", "-c", "date")
        yield script
        task.accept_result(date.result().text.strip())


def main() -> int:
    payload = vm.repo(image_hash=IMAGE_HASH, image_url=IMAGE_URL)
    try:
        with network() as connection, Golem(budget=1.0, **connection) as golem:
            for task in golem.execute_tasks(worker, [Task(None)], payload, max_workers=1):
                print(f"provider {task.provider_name} says: {task.result}")
        print(f"cost: {format(golem.spent, 'f')} GLM")
    except KeyboardInterrupt:
        print("interrupted; every agreement was closed and paid", file=sys.stderr)
        return 130
    except GolemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
