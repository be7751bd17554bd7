"""Shared pieces of the engine's end-to-end tests: a payload, a Golem on a devnet, a worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from golemsync import Golem, Script, Task, WorkContext, vm
from golemsync.devnet import Devnet

PAYLOAD = vm.repo(image_hash="ab" * 28, image_url="http://registry.invalid/image.gvmi")


def golem_for(net: Devnet, **kwargs: Any) -> Golem:
    """A Golem on ``net`` with short polls (stops are noticed quickly in tests)."""
    kwargs.setdefault("budget", 5)
    return Golem(api_url=net.url, app_key=net.app_key, poll_timeout=1.0, invoice_timeout=15,
                 **kwargs)


def echo_worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
    """Each task's result is its data, echoed by a provider."""
    for task in tasks:
        script = ctx.new_script(timeout=30)
        out = script.run("/bin/echo", str(task.data))
        yield script
        task.accept_result(out.result().text.strip())


def assert_all_settled(net: Devnet, golem: Golem, *, honest_only: bool = False) -> None:
    """Every agreement ended, every invoice owed accepted (with ``honest_only``: every honest
    provider's invoice, for its exact amount), the budget kept and released."""
    ledger = net.ledger()
    cheats = {s.name for s in net.config.providers if s.overcharge != 1.0} if honest_only else set()
    for agreement in ledger["agreements"]:
        if agreement["state"] in ("Cancelled", "Rejected"):
            continue
        assert agreement["state"] == "Terminated", agreement
        if agreement["invoice_id"] is not None and agreement["provider_name"] not in cheats:
            assert agreement["invoice_status"] == "ACCEPTED", agreement
            assert agreement["accepted_total"] == agreement["invoice_amount"], agreement
    (allocation,) = ledger["allocations"]
    assert allocation["released"]
    assert allocation["spent"] <= golem.budget
    assert allocation["spent"] == golem.spent
