#!/usr/bin/env python3
"""Crack a SHA-256 hash by brute force, split over many providers.

The keyspace (every lowercase word of LENGTH letters) is cut into slices; each task searches
one slice on a provider with a short Python program and reports the word it found, if any.
The answer is combined from the tasks' results. Runs on an embedded devnet by default; set
YAGNA_APPKEY to use a real yagna daemon (the image must provide python3).

    python examples/hashcrack.py [WORD] [--slices N] [--workers N] [--journal FILE]

With --journal FILE, finished slices are recorded in FILE: run the same command again after a
crash (even kill -9) and it resumes, running only the slices not yet done, after settling what
the killed run left open (agreements, activities, invoices, its allocation).
"""

from __future__ import annotations

import argparse
import hashlib
import string
import sys
import time
from collections.abc import Iterator
from typing import Optional

from golemsync import Golem, GolemError, Journal, Script, Task, WorkContext, network, vm

IMAGE_HASH = "1e06505997e8bd1b9e1a00bd10d255fc6a390905e4d6840a22a79902"  # python:3-slim
IMAGE_URL = f"https://registry.golem.network/v1/image/download?hash={IMAGE_HASH}"
ALPHABET = string.ascii_lowercase

# Runs inside the VM: search words with index in [start, end) of the keyspace.
SEARCH = """
import hashlib, sys
start, end, length, target = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
letters = "abcdefghijklmnopqrstuvwxyz"
for n in range(start, end):
    word, k = [], n
    for _ in range(length):
        k, r = divmod(k, 26)
        word.append(letters[r])
    candidate = "".join(reversed(word))
    if hashlib.sha256(candidate.encode()).hexdigest() == target:
        print(candidate)
        break
"""


def slices(length: int, count: int) -> Iterator[tuple[int, int]]:
    total = len(ALPHABET) ** length
    step = -(-total // count)
    for start in range(0, total, step):
        yield start, min(total, start + step)


def make_worker(length: int, target: str):  # type: ignore[no-untyped-def]
    def worker(ctx: WorkContext, tasks: Iterator[Task[tuple[int, int]]]) -> Iterator[Script]:
        for task in tasks:
            start, end = task.data
            script = ctx.new_script(timeout=120)
            found = script.run("/usr/bin/python3", "-c", SEARCH, str(start), str(end),
                               str(length), target)
            yield script
            task.accept_result(found.result().text.strip() or None)

    return worker


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("word", nargs="?", default="golem", help="the word whose hash to crack")
    parser.add_argument("--slices", type=int, default=52, help="number of tasks")
    parser.add_argument("--workers", type=int, default=4, help="providers to hire at most")
    parser.add_argument("--journal", default=None, metavar="FILE",
                        help="record finished slices in FILE; rerun to resume after a crash")
    args = parser.parse_args(argv)
    word = args.word.lower()
    if not word or any(c not in ALPHABET for c in word):
        parser.error("the word must be lowercase letters a-z")
    target = hashlib.sha256(word.encode()).hexdigest()
    print(f"cracking sha256 {target[:16]}... ({len(word)} letters, {args.slices} tasks)")
    payload = vm.repo(image_hash=IMAGE_HASH, image_url=IMAGE_URL)
    began = time.monotonic()
    answer = None
    try:
        with network() as connection, Golem(budget=5.0, **connection) as golem:
            tasks = [Task(s) for s in slices(len(word), args.slices)]
            journal = Journal(args.journal) if args.journal else None
            done = resumed = 0
            for task in golem.execute_tasks(make_worker(len(word), target), tasks, payload,
                                            max_workers=args.workers, timeout=600,
                                            journal=journal):
                if done == 0 and journal is not None and journal.recovery is not None \
                        and not journal.recovery.empty:
                    report = journal.recovery
                    print(f"recovered a killed run: {len(report.agreements_terminated)} "
                          f"agreements terminated, {len(report.activities_destroyed)} "
                          f"activities destroyed, {format(report.paid, 'f')} GLM paid, "
                          f"{len(report.allocations_released)} allocations released",
                          flush=True)
                    if report.invoices_rejected or report.unpaid:
                        print(f"  {len(report.invoices_rejected)} orphan invoices rejected as "
                              f"over the agreed price, {len(report.unpaid)} never arrived",
                              flush=True)
                done += 1
                resumed += task.resumed
                if task.result:
                    answer = task.result
                    print(f"  found by {task.provider_name or 'an earlier run'}: {answer}",
                          flush=True)
            providers = {t.provider_name for t in tasks if not t.resumed}
        print(f"{done} tasks on {len(providers)} providers in {time.monotonic() - began:.1f} s")
        if args.journal:
            print(f"journal: {resumed} tasks resumed, {done - resumed} ran")
        print(golem.summary())
        print(f"answer: {answer}")
        print(f"cost: {format(golem.spent, 'f')} GLM")
    except KeyboardInterrupt:
        print("interrupted; every agreement was closed and paid", file=sys.stderr)
        return 130
    except GolemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0 if answer == word else 2


if __name__ == "__main__":
    sys.exit(main())
