#!/usr/bin/env python3
"""Word frequencies over many text files, counted on providers, combined here.

The input is real text: the source of a few packages of Python's own standard library, cut
into chunk files. Each task ships one chunk to a provider (send_file), counts its words there
with a short Python program, and brings the counts back (download_json); the partial counts
are combined into the most frequent words. Runs on an embedded devnet by default; set
YAGNA_APPKEY to use a real yagna daemon (the image must provide python3).

    python examples/wordcount.py [--chunks N] [--workers N] [--top N]
"""

from __future__ import annotations

import argparse
import collections
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from golemsync import Golem, GolemError, Script, Task, WorkContext, network, vm

IMAGE_HASH = "1e06505997e8bd1b9e1a00bd10d255fc6a390905e4d6840a22a79902"  # python:3-slim
IMAGE_URL = f"https://registry.golem.network/v1/image/download?hash={IMAGE_HASH}"
PACKAGES = ("json", "email", "http", "logging", "unittest")

COUNT = """
import collections, json, re
text = open("/golem/input/chunk.txt", encoding="utf-8", errors="replace").read().lower()
counts = collections.Counter(re.findall(r"[a-z]{3,}", text))
json.dump(counts, open("/golem/output/counts.json", "w"))
"""


def make_chunks(directory: Path, count: int) -> list[Path]:
    """Cut the text of a few stdlib packages into ``count`` chunk files."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(f for pkg in PACKAGES for f in (stdlib / pkg).rglob("*.py"))
    chunks = [directory / f"chunk{i:03d}.txt" for i in range(count)]
    for index, source in enumerate(files):
        with open(chunks[index % count], "a", encoding="utf-8") as out:
            out.write(source.read_text(encoding="utf-8", errors="replace"))
    return [c for c in chunks if c.exists()]


def worker(ctx: WorkContext, tasks: Iterator[Task[Path]]) -> Iterator[Script]:
    for task in tasks:
        script = ctx.new_script(timeout=120)
        script.send_file(task.data, "/golem/input/chunk.txt")
        script.run("/usr/bin/python3", "-c", COUNT)
        counts = script.download_json("/golem/output/counts.json")
        yield script
        task.accept_result(collections.Counter(counts.result()))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--chunks", type=int, default=24)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    payload = vm.repo(image_hash=IMAGE_HASH, image_url=IMAGE_URL)
    total: collections.Counter[str] = collections.Counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            chunks = make_chunks(Path(tmp), args.chunks)
            size = sum(c.stat().st_size for c in chunks)
            print(f"counting words in {len(chunks)} chunks ({size / 1e6:.1f} MB)")
            with network() as connection, Golem(budget=5.0, **connection) as golem:
                for task in golem.execute_tasks(worker, [Task(c) for c in chunks], payload,
                                                max_workers=args.workers, timeout=600):
                    total.update(task.result)
        print(golem.summary())
    except KeyboardInterrupt:
        print("interrupted; every agreement was closed and paid", file=sys.stderr)
        return 130
    except GolemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for word, count in total.most_common(args.top):
        print(f"{count:>8}  {word}")
    print(f"cost: {format(golem.spent, 'f')} GLM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
