"""Shared pieces of the localnet tests: a payload, a Golem on the localnet, a worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from golemsync import Golem, Script, Task, WorkContext, vm
from golemsync.localnet import Localnet, missing

PAYLOAD = vm.repo(image_hash="ab" * 28, image_url="http://registry.invalid/image.gvmi")


def require_localnet() -> None:
    """Skip, saying what to install, when yagna or anvil is missing."""
    reason = missing()
    if reason is not None:
        pytest.skip(f"localnet unavailable: {reason}")


def golem_on(net: Localnet, **kwargs: Any) -> Golem:
    kwargs.setdefault("budget", 5)
    return Golem(api_url=net.api_url, app_key=net.app_key, poll_timeout=1.0,
                 invoice_timeout=30, **kwargs)


def assert_paid_in_full(golem: Golem) -> None:
    """Every document of the session fitted the price: nothing rejected, nothing unpaid (a
    failure names the job that left the localnet an unaccepted invoice)."""
    summary = golem.summary()
    assert summary.rejected == 0 and summary.unpaid == 0 and not summary.overcharged, \
        str(summary)


def echo_worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
    """Each task's result is its data, echoed by a provider."""
    for task in tasks:
        script = ctx.new_script(timeout=30)
        out = script.run("/bin/echo", str(task.data))
        yield script
        task.accept_result(out.result().text.strip())
