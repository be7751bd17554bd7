"""golem.executor(): a real concurrent.futures.Executor on devnet providers."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import CancelledError, as_completed, wait
from typing import Any, Callable

import pytest
from jobs import PAYLOAD, golem_for

from golemsync import WorkContext
from golemsync.devnet import Devnet, DevnetConfig

pytestmark = pytest.mark.e2e



def double(ctx: WorkContext, n: int) -> int:
    script = ctx.new_script(timeout=30)
    out = script.run("/bin/echo", str(2 * n))
    ctx.run(script)
    return int(out.result().text.split()[-1])


def test_map_keeps_order_and_as_completed_works(devnet: Devnet) -> None:
    with golem_for(devnet) as golem, golem.executor(PAYLOAD, max_workers=3) as pool:
        assert list(pool.map(double, range(10))) == [2 * n for n in range(10)]
        futures = [pool.submit(double, n) for n in range(5)]
        assert sorted(f.result() for f in as_completed(futures, timeout=60)) == [0, 2, 4, 6, 8]


def test_exception_from_the_function_is_set_on_its_future(devnet: Devnet) -> None:
    calls: list[int] = []

    def broken(ctx: WorkContext, n: int) -> int:
        calls.append(n)
        raise ValueError(f"bad input {n}")

    with golem_for(devnet) as golem, golem.executor(PAYLOAD, max_workers=1) as pool:
        future = pool.submit(broken, 7)
        with pytest.raises(ValueError, match="bad input 7"):
            future.result(timeout=60)
        assert pool.submit(double, 1).result(timeout=60) == 2
    assert calls == [7]  # the function's own errors are not retried


def _blocking(gate: threading.Event, started: threading.Event) -> Callable[..., int]:
    def block(ctx: WorkContext) -> int:
        started.set()
        assert gate.wait(30)
        return 1

    return block


def test_cancelled_before_start_never_runs(devnet: Devnet) -> None:
    gate, started, ran = threading.Event(), threading.Event(), []
    with golem_for(devnet) as golem, golem.executor(PAYLOAD, max_workers=1) as pool:
        first = pool.submit(_blocking(gate, started))
        assert started.wait(30)
        second = pool.submit(lambda ctx: ran.append("second"))
        assert second.cancel()
        gate.set()
        assert first.result(timeout=30) == 1
        with pytest.raises(CancelledError):
            second.result()
    assert ran == []


def test_shutdown_cancel_futures_and_no_submit_after(devnet: Devnet) -> None:
    gate, started = threading.Event(), threading.Event()
    with golem_for(devnet) as golem:
        pool = golem.executor(PAYLOAD, max_workers=1)
        first = pool.submit(_blocking(gate, started))
        assert started.wait(30)
        rest = [pool.submit(double, n) for n in range(3)]
        pool.shutdown(wait=False, cancel_futures=True)
        assert all(f.cancelled() for f in rest)
        with pytest.raises(RuntimeError, match="shutdown"):
            pool.submit(double, 1)
        gate.set()
        pool.shutdown(wait=True)
        assert first.result(timeout=1) == 1
        done, not_done = wait([first, *rest], timeout=1)
        assert not not_done


def test_provider_failure_is_retried_elsewhere(make_devnet: Callable[..., Devnet]) -> None:
    specs = DevnetConfig.default(2, 77).providers
    # its commands always fail (boot has none); it is the cheapest, so hired first
    specs[0] = dataclasses.replace(specs[0], fail_rate=1.0, price_cpu_sec=0.0,
                                   price_duration_sec=0.0, price_start=0.0)
    net = make_devnet(providers=specs)
    failing = specs[0].name
    seen: list[str] = []

    def where(ctx: WorkContext) -> Any:
        seen.append(ctx.provider_name)
        return double(ctx, 21)

    with golem_for(net) as golem, golem.executor(PAYLOAD, max_workers=1) as pool:
        assert pool.submit(where).result(timeout=60) == 42
    hired = [a["provider_name"] for a in net.ledger()["agreements"]
             if a["state"] == "Terminated"]
    assert hired[0].startswith(failing) and len(hired) == 2  # tried, failed, replaced
    assert seen[0].startswith(failing) and not seen[-1].startswith(failing)
