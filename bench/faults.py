"""Nothing lost under faults, at full size: a table of what a faulty network did to a job.

500 checkable one-command tasks on 16 devnet providers where 10 % of commands fail, a fifth
of the providers crash now and then, 5 % of HTTP requests answer 503, and three providers
overcharge (3x, 9x, 50x). The worker does not catch ``CommandFailed``. The table says whether
every task came back exactly once with the right result, whether any overcharge was paid,
whether the spend stayed within the budget, whether every honest invoice was accepted for
exactly its amount and whether the allocation was released.

    python bench/faults.py [--tasks 500] [--providers 16] [--seed 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from golemsync import Golem, Script, Task, TaskStatus, WorkContext, vm
from golemsync.devnet import Devnet, DevnetConfig

PAYLOAD = vm.repo(image_hash="ab" * 28, image_url="http://registry.invalid/image.gvmi")
OVERCHARGES = (3.0, 9.0, 50.0)


def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
    for task in tasks:
        script = ctx.new_script(timeout=30)
        out = script.run("/bin/sh", "-c", f"echo $(( {task.data} * 3 ))")
        yield script
        task.accept_result(int(out.result().text))


def network(providers: int, seed: int) -> DevnetConfig:
    base = DevnetConfig.default(providers, seed)
    crashing = max(1, providers // 5)
    specs = []
    for i, spec in enumerate(base.providers):
        spec = dataclasses.replace(spec, fail_rate=0.1,
                                   crash_rate=0.02 if i < crashing else 0.0)
        if crashing <= i < crashing + len(OVERCHARGES):
            spec = dataclasses.replace(spec, overcharge=OVERCHARGES[i - crashing])
        specs.append(spec)
    return dataclasses.replace(base, providers=specs, http_error_rate=0.05,
                               debit_note_interval=1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--providers", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-retries", type=int, default=6)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    config = network(args.providers, args.seed)
    cheats = {s.name: s.overcharge for s in config.providers if s.overcharge != 1.0}
    net = Devnet(config)
    budget = Decimal(50)
    began = time.monotonic()
    try:
        with Golem(budget=budget, api_url=net.url, app_key=net.app_key) as golem:
            done = list(golem.execute_tasks(worker, range(args.tasks), PAYLOAD,
                                            max_workers=args.providers,
                                            max_retries=args.max_retries, progress=False))
        wall = time.monotonic() - began
        ledger = net.ledger()
    finally:
        net.stop()
    counts = Counter(t.data for t in done)
    overpaid = []
    honest_exact = True
    for agreement in ledger["agreements"]:
        factor = cheats.get(agreement["provider_name"])
        if factor is not None and agreement["invoice_amount"] is not None:
            honest = agreement["invoice_amount"] / Decimal(repr(factor))
            if agreement["accepted_total"] > honest:
                overpaid.append(agreement["provider_name"])
        elif agreement["invoice_id"] is not None:
            honest_exact &= (agreement["invoice_status"] == "ACCEPTED"
                             and agreement["accepted_total"] == agreement["invoice_amount"])
    rows = [
        ("tasks yielded / submitted", f"{len(done)} / {args.tasks}"),
        ("each exactly once", counts == Counter(range(args.tasks))),
        ("all DONE with the right result",
         all(t.status is TaskStatus.DONE and t.result == 3 * t.data for t in done)),
        ("attempts (retries absorbed)", sum(t.attempts for t in done)),
        ("providers released after failures",
         sum(line.released_after_failure for line in golem.summary().providers.values())),
        (f"overcharges {', '.join(f'{f:g}x' for f in OVERCHARGES)} paid beyond honest",
         overpaid or "none"),
        ("spend <= budget", f"{format(golem.spent, 'f')} <= {budget}: {golem.spent <= budget}"),
        ("honest invoices accepted exactly", honest_exact),
        ("task costs add up to the spend",
         sum((t.cost or Decimal(0) for t in done), Decimal(0)) == golem.spent),
        ("allocation released", all(a["released"] for a in ledger["allocations"])),
        ("wall time", f"{wall:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{args.tasks} tasks, {args.providers} providers: 10% failing commands, "
          f"{max(1, args.providers // 5)} crashing providers, 5% HTTP 503, overchargers "
          f"{sorted(cheats)}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    ok = (counts == Counter(range(args.tasks)) and not overpaid and honest_exact
          and golem.spent <= budget)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
