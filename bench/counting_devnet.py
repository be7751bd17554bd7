#!/usr/bin/env python3
"""``golemsync devnet --providers N --seed S`` with a request counter, for bench/compare.py.

The same network the CLI starts (``DevnetConfig.default(N, S)``, a fresh port, a random app
key), run in this process with one addition: every request the devnet answers is counted on
the devnet side, by API area, so every client is measured the same way and none of them pays
for an extra hop (a counting proxy would add a loopback round trip to each request).

Protocol on stdio: prints the two ``export`` lines of ``golemsync devnet``; then each line
``stats`` read from stdin is answered with one JSON line::

    {"requests": int, "by_area": {"activity": int, "market": int, ...},
     "settled": bool, "unsettled": [str, ...], "agreements": int,
     "outcomes": {"Terminated/Requestor/ACCEPTED": int, ...}}

``settled`` says the requestor left nothing open: every agreement is terminated (or never
approved), every invoice sent is accepted, every allocation is released. End of stdin, SIGINT
or SIGTERM stop the network.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import Counter
from typing import Any

from golemsync.devnet import Devnet, DevnetConfig
from golemsync.devnet.http import Request, Response
from golemsync.devnet.server import Application

_AREAS = (("/market-api/", "market"), ("/activity-api/", "activity"),
          ("/payment-api/", "payment"))


class RequestCounter:
    """Thread-safe counts of answered requests by API area."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _counts
        self._counts: Counter[str] = Counter()

    def add(self, path: str) -> None:
        area = next((name for prefix, name in _AREAS if path.startswith(prefix)), "other")
        with self._lock:
            self._counts[area] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def install(counter: RequestCounter) -> None:
    """Count every request the devnet's application answers (before construction)."""
    original = Application.handle

    def handle(self: Application, request: Request) -> Response:
        counter.add(request.path)
        return original(self, request)

    Application.handle = handle  # type: ignore[method-assign]


def settlement(ledger: dict[str, Any]) -> list[str]:
    """What the requestor left open, one line per problem (empty: all settled)."""
    problems = []
    for entry in ledger["agreements"]:
        name = entry["provider_name"]
        if entry["state"] in ("Proposal", "Pending", "Approved"):
            problems.append(f"agreement with {name} still {entry['state']}")
        if entry["invoice_id"] is not None and entry["invoice_status"] not in (
                "ACCEPTED", "SETTLED"):
            problems.append(f"invoice of {name} is {entry['invoice_status']}")
    for allocation in ledger["allocations"]:
        if not allocation["released"]:
            problems.append(f"allocation {allocation['id']} not released")
    return problems


def outcomes(ledger: dict[str, Any]) -> dict[str, int]:
    """How the agreements ended: ``state/terminator/invoice status`` -> count."""
    seen: Counter[str] = Counter()
    for entry in ledger["agreements"]:
        seen[f"{entry['state']}/{entry['terminator']}/{entry['invoice_status']}"] += 1
    return dict(seen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    counter = RequestCounter()
    install(counter)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def read_commands(devnet: Devnet) -> None:
        for line in sys.stdin:
            if line.strip() == "stats":
                ledger = devnet.ledger()
                by_area = counter.snapshot()
                problems = settlement(ledger)
                print(json.dumps({"requests": sum(by_area.values()), "by_area": by_area,
                                  "settled": not problems, "unsettled": problems,
                                  "agreements": len(ledger["agreements"]),
                                  "outcomes": outcomes(ledger)}), flush=True)
        stop.set()

    config = DevnetConfig.default(args.providers, args.seed)
    with Devnet(config) as devnet:
        print(f"export YAGNA_API_URL={devnet.url}", flush=True)
        print(f"export YAGNA_APPKEY={devnet.app_key}", flush=True)
        # A daemon thread: it blocks in stdin.readline, which nothing can interrupt; the
        # process exits once the devnet has stopped, so the thread dies with it.
        threading.Thread(target=read_commands, args=(devnet,), name="bench-devnet-stdin",
                         daemon=True).start()
        while not stop.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
