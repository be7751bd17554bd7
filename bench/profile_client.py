#!/usr/bin/env python3
"""Where golemsync's client CPU goes: cProfile over every client thread, N one-command tasks.

The devnet runs in its own process (so only the client is profiled). Every thread the client
starts gets its own ``cProfile.Profile`` timed by ``time.thread_time`` — CPU time of that
thread, so time spent blocked in a long-poll or on a lock counts for nothing — and the
profiles are merged. Prints the client CPU per task without and with the profiler, the top
functions by cumulative and by own time, and own time summed by package. ``--timer wall``
profiles with ``time.perf_counter`` instead (less overhead; blocking calls then show up).

    python bench/profile_client.py [--tasks 500] [--providers 16] [--top 25] [--out FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

from golemsync import Golem, Script, Task, WorkContext, vm
from golemsync.devnet import Devnet

PAYLOAD = vm.repo(image_hash="ab" * 28, image_url="http://registry.invalid/image.gvmi")


def worker(ctx: WorkContext, tasks: Iterator[Task[int]]) -> Iterator[Script]:
    for task in tasks:
        script = ctx.new_script()
        future = script.run("/bin/echo", str(task.data))
        yield script
        task.accept_result(future.result().text)


def job(devnet: Devnet, tasks: int, providers: int) -> float:
    """Run the job (entering to leaving ``with Golem``); the process CPU seconds it took."""
    began = time.process_time()
    with Golem(budget=100, api_url=devnet.url, app_key=devnet.app_key) as golem:
        done = sum(1 for _ in golem.execute_tasks(worker, range(tasks), PAYLOAD,
                                                  max_workers=providers))
    assert done == tasks, f"{done} of {tasks} tasks came back"
    return time.process_time() - began


class ThreadProfiles:
    """A profile for the calling thread and for every thread started later.

    ``timer`` is ``time.thread_time`` (CPU of the profiled thread: blocking costs nothing, but
    every profiler event is a system call, which inflates cheap, often-called functions) or
    ``time.perf_counter`` (cheap, but time blocked in a C call is charged to that call).
    """

    def __init__(self, timer: Callable[[], float]) -> None:
        self._timer = timer
        self._lock = threading.Lock()  # guards profiles
        self.profiles: list[cProfile.Profile] = []
        self._original: Callable[[threading.Thread], None] = threading.Thread.run

    def __enter__(self) -> ThreadProfiles:
        original = self._original
        register = self._new

        def run(thread: threading.Thread) -> None:
            profile = register()
            profile.enable()
            try:
                original(thread)
            finally:
                profile.disable()

        threading.Thread.run = run  # type: ignore[method-assign,assignment]
        self._main = self._new()
        self._main.enable()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._main.disable()
        threading.Thread.run = self._original  # type: ignore[method-assign,assignment]

    def _new(self) -> cProfile.Profile:
        profile = cProfile.Profile(self._timer)
        with self._lock:
            self.profiles.append(profile)
        return profile

    def stats(self) -> pstats.Stats:
        with self._lock:
            first, *rest = self.profiles
        merged = pstats.Stats(first)
        for profile in rest:
            merged.add(profile)
        return merged


def by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time summed by where the code lives (golemsync module, library, stdlib module)."""
    totals: dict[str, float] = {}
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        key = _package(filename, name)
        totals[key] = totals.get(key, 0.0) + row[2]
    return sorted(totals.items(), key=lambda item: -item[1])


GROUPS = (  # (group, prefixes of by_package's keys), first match wins
    ("golemsync", ("golemsync.",)),
    ("HTTP: requests, urllib3, http.client, email headers, urllib.parse, cookies, sockets",
     ("requests", "urllib3", "idna", "charset_normalizer", "certifi", "stdlib http/",
      "stdlib email/", "stdlib urllib/", "stdlib socket", "stdlib ssl",
      "builtin method 'recv_into'", "builtin method 'sendall'", "builtin method 'settimeout'",
      "builtin method 'poll'", "builtin method 'makefile'")),
    ("JSON and wire models: json, dataclasses_json, marshmallow, typing_inspect, dataclasses",
     ("stdlib json/", "dataclasses_json", "marshmallow", "typing_inspect", "mypy_extensions",
      "stdlib dataclasses", "builtin method 'decode'", "builtin method 'encode'")),
    ("tenacity (retries)", ("tenacity",)),
    ("threads, locks, queues", ("stdlib threading", "stdlib queue", "builtin method 'acquire'",
                                "builtin method 'release'", "builtin method '_acquire_restore'",
                                "builtin method 'get'", "builtin method 'put'")),
)


def by_group(packages: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """``by_package``'s rows summed into a few groups; the rest is ``other``."""
    totals = {name: 0.0 for name, _ in GROUPS}
    totals["other (typing, isinstance, str methods, ...; often called by the above)"] = 0.0
    for key, seconds in packages:
        group = next((name for name, prefixes in GROUPS if key.startswith(prefixes)), None)
        totals[group or list(totals)[-1]] += seconds
    return sorted(totals.items(), key=lambda item: -item[1])


def _package(filename: str, name: str) -> str:
    path = filename.replace("\\", "/")
    if path == "~":
        return f"builtin {name.split(' of ')[0].strip('<>')}"[:60]
    if path.startswith(_STDLIB):
        return "stdlib " + path[len(_STDLIB):].removesuffix(".py")
    for marker in ("/golemsync/", "/site-packages/"):
        if marker in path:
            rest = path.split(marker, 1)[1]
            head = rest.split("/")[0].removesuffix(".py")
            if marker == "/golemsync/":
                sub = rest.removesuffix(".py").replace("/", ".")
                return f"golemsync.{sub}"
            return head
    return "stdlib " + path.rsplit("/", 1)[-1].removesuffix(".py")


_STDLIB = sysconfig.get_paths()["stdlib"].replace("\\", "/") + "/"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--providers", type=int, default=16)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default=None, help="also dump the merged profile here")
    parser.add_argument("--timer", choices=("cpu", "wall"), default="cpu",
                        help="cpu: time.thread_time (default); wall: time.perf_counter")
    args = parser.parse_args()
    with Devnet(providers=args.providers, seed=3, subprocess=True) as devnet:
        plain = job(devnet, args.tasks, args.providers)  # also warms imports and caches
    with Devnet(providers=args.providers, seed=3, subprocess=True) as devnet:
        timer = time.thread_time if args.timer == "cpu" else time.perf_counter
        with ThreadProfiles(timer) as profiles:
            profiled = job(devnet, args.tasks, args.providers)
    stats = profiles.stats()
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"{args.tasks} tasks on {args.providers} providers; {len(profiles.profiles)} "
          f"threads profiled, timer {timer.__name__}")
    print(f"client CPU per task: {1000 * plain / args.tasks:.2f} ms without the profiler, "
          f"{1000 * profiled / args.tasks:.2f} ms with it "
          f"({1000 * total / args.tasks:.2f} ms seen by it)\n")
    packages = by_package(stats)
    print("own time by group (share of what the profiler saw):")
    for group, seconds in by_group(packages):
        print(f"  {100 * seconds / total:5.1f}%  {1000 * seconds / args.tasks:7.3f} ms/task  "
              f"{group}")
    print("\nown time by package / module:")
    for package, seconds in packages[:args.top]:
        print(f"  {100 * seconds / total:5.1f}%  {1000 * seconds / args.tasks:6.3f} ms/task  "
              f"{package}")
    if args.out:
        stats.dump_stats(args.out)
    stats.strip_dirs()
    for order in ("cumulative", "tottime"):
        print(f"\n=== top {args.top} by {order} (seconds of thread CPU over the whole job)")
        stats.sort_stats(order).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
