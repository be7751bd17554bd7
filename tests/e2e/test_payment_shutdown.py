"""Leaving ``with Golem`` does not wait out the payment threads' poll windows."""

from __future__ import annotations

import time
from typing import Callable

import pytest
from jobs import PAYLOAD, echo_worker

from golemsync import Golem
from golemsync.devnet import Devnet, ProviderSpec

pytestmark = pytest.mark.e2e


def test_close_after_a_job_returns_at_once(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=2)
    golem = Golem(api_url=net.url, app_key=net.app_key, budget=5, poll_timeout=3.0,
                  invoice_timeout=15)
    with golem:
        done = list(golem.execute_tasks(echo_worker, range(6), PAYLOAD, max_workers=2))
        leaving = time.monotonic()
    took = time.monotonic() - leaving
    assert len(done) == 6
    assert all(a["invoice_status"] == "ACCEPTED" for a in net.ledger()["agreements"])
    assert took < 1.5, f"closing took {took:.2f} s (the poll window is 3 s)"  # was 3 s + joins


def test_a_missing_invoice_costs_only_the_invoice_timeout(
        make_devnet: Callable[..., Devnet]) -> None:
    """The invoice thread polls with a short window while owed: after ``invoice_timeout`` the
    payment side stops within that window, not the session's 3 s poll."""
    net = make_devnet(providers=[ProviderSpec(name="silent-node", no_invoice=True)])
    golem = Golem(api_url=net.url, app_key=net.app_key, budget=5, poll_timeout=3.0,
                  invoice_timeout=1)
    with golem:
        list(golem.execute_tasks(echo_worker, range(2), PAYLOAD, max_workers=1))
        leaving = time.monotonic()
    took = time.monotonic() - leaving
    assert 1.0 <= took < 2.2, f"closing took {took:.2f} s"
    assert golem.spent <= 5
