#!/usr/bin/env python3
"""1 GiB up and down through the real transfer path, with bounded memory (not a test).

A 1 GiB file is sent to a devnet provider (the session's storage — the GSB API by default,
the gftp stand-in with GOLEMSYNC_STORAGE=gftp — then the exe-unit's chunked copy into
/golem/input), hashed there, and downloaded back (/golem/output → a receive slot → renamed
into place). Prints the time, the throughput,
whether both hashes match, and this process's peak RSS: it must stay far below 1 GiB, since
the client and the in-process devnet stream in chunks.

    python bench/transfer_1gib.py [--mib N]
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from golemsync import Golem, Script, Task, WorkContext, vm
from golemsync.devnet import Devnet

PAYLOAD = vm.repo(image_hash="ab" * 28, image_url="http://registry.invalid/image.gvmi")


def make_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    block = bytes(range(256)) * 4096  # 1 MiB, not all zeros
    with open(path, "wb") as out:
        for i in range(mib):
            chunk = block[i % 251:] + block[: i % 251]
            out.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description="1 GiB transfer benchmark")
    parser.add_argument("--mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source, back = Path(tmp) / "big.bin", Path(tmp) / "back" / "big.bin"
        expected = make_file(source, args.mib)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
            for task in tasks:
                script = ctx.new_script(timeout=1200)
                script.send_file(source, "/golem/input/big.bin")
                remote = script.run("/bin/sh", "-c", "sha256sum /golem/input/big.bin | cut -c1-64")
                script.run("/bin/cp", "/golem/input/big.bin", "/golem/output/big.bin")
                script.download_file("/golem/output/big.bin", back)
                yield script
                task.accept_result(remote.result().text.strip())

        began = time.monotonic()
        with Devnet(providers=1, seed=1) as net, Golem(budget=5, api_url=net.url,
                                                       app_key=net.app_key) as golem:
            (task,) = golem.execute_tasks(worker, ["big"], PAYLOAD, max_workers=1)
        seconds = time.monotonic() - began
        downloaded = hashlib.sha256(back.read_bytes() if args.mib <= 64 else b"")
        if args.mib > 64:
            with open(back, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    downloaded.update(chunk)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"size                 {args.mib} MiB")
    print(f"round trip           {seconds:.1f} s ({2 * args.mib / seconds:.0f} MiB/s up+down)")
    print(f"hash on provider     {'ok' if task.result == expected else 'MISMATCH'}")
    print(f"hash after download  {'ok' if downloaded.hexdigest() == expected else 'MISMATCH'}")
    print(f"peak RSS             {peak_mib:.0f} MiB (before the job: {rss_before / 1024:.0f} MiB)")
    return 0 if task.result == expected == downloaded.hexdigest() else 1


if __name__ == "__main__":
    sys.exit(main())
