"""Providers that bill more than they may, on a real devnet: never paid beyond honest amounts.

The providers here charge mostly for time and a start price and little for CPU: the invoice
bound allows full CPU use since the last debit note (see :mod:`golemsync.payments`), so with
CPU priced high a small overcharge on a short activity could fit within that slack.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Callable

import pytest
from jobs import PAYLOAD, golem_for

from golemsync import BudgetExceeded, Script, Settings, Task, WorkContext
from golemsync.devnet import Devnet, ProviderSpec
from golemsync.payments import TIME_SLACK_SECONDS, TOLERANCE

pytestmark = pytest.mark.e2e

HONEST = ProviderSpec(name="honest-node", cpu_threads=2, price_cpu_sec=0.00001,
                      price_duration_sec=0.0002, price_start=0.001)


def sleepy_worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
    """Each task keeps its provider busy for a moment (so debit notes come in)."""
    for task in tasks:
        script = ctx.new_script(timeout=30)
        script.run("/bin/sleep", "0.3")
        out = script.run("/bin/echo", str(task.data))
        yield script
        task.accept_result(out.result().text.strip())


def run(make_devnet: Callable[..., Devnet], cheat: ProviderSpec, tasks: int = 12,
        **golem_args: Any) -> tuple[Any, dict[str, Any], list[Task[Any]]]:
    net = make_devnet(providers=[HONEST, cheat], debit_note_interval=0.4)
    with golem_for(net, **golem_args) as golem:
        done = list(golem.execute_tasks(sleepy_worker, range(tasks), PAYLOAD, max_workers=2))
    ledger = net.ledger()
    return golem, ledger, done


def entries(ledger: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [a for a in ledger["agreements"] if a["provider_name"] == name]


def check_common(golem: Any, ledger: dict[str, Any], done: list[Task[Any]]) -> None:
    assert sorted(int(t.result) for t in done) == list(range(len(done)))
    paid = sum((a["accepted_total"] for a in ledger["agreements"]), Decimal(0))
    assert paid == golem.spent <= golem.budget
    assert all(a["released"] for a in ledger["allocations"])
    assert sum((t.cost for t in done if t.cost is not None), Decimal(0)) == golem.spent
    for agreement in entries(ledger, HONEST.name):  # honest invoices: accepted exactly
        assert agreement["invoice_status"] == "ACCEPTED"
        assert agreement["accepted_total"] == agreement["invoice_amount"]


@pytest.mark.parametrize("factor", [3.0, 9.2, 50.0])
def test_overcharging_providers_are_never_paid_beyond_honest_amounts(
        make_devnet: Callable[..., Devnet], factor: float) -> None:
    cheat = dataclasses.replace(HONEST, name="cheat-node", overcharge=factor)
    golem, ledger, done = run(make_devnet, cheat)
    check_common(golem, ledger, done)
    (agreement,) = entries(ledger, "cheat-node")
    honest_amount = agreement["invoice_amount"] / Decimal(repr(factor))
    assert agreement["accepted_total"] <= honest_amount
    assert agreement["invoice_status"] == "REJECTED"
    assert all(status != "ACCEPTED" for _, _, status in agreement["debit_notes"])
    summary = golem.summary()
    assert summary.rejected >= agreement["invoice_amount"]
    assert summary.overcharged == ["cheat-node"]
    assert "rejected" in str(summary) and "overcharged" in str(summary)


def test_an_overcharged_invoice_after_honest_notes_is_rejected(
        make_devnet: Callable[..., Devnet]) -> None:
    cheat = dataclasses.replace(HONEST, name="cheat-node", overcharge=3.0,
                                overcharge_on="invoices")
    golem, ledger, done = run(make_devnet, cheat)
    check_common(golem, ledger, done)
    (agreement,) = entries(ledger, "cheat-node")
    assert agreement["invoice_status"] == "REJECTED"
    assert 0 < agreement["accepted_total"] <= agreement["invoice_amount"] / 3


def test_honest_invoice_after_overcharged_notes_is_paid_exactly(
        make_devnet: Callable[..., Devnet]) -> None:
    cheat = dataclasses.replace(HONEST, name="cheat-node", overcharge=3.0,
                                overcharge_on="debit_notes")
    golem, ledger, done = run(make_devnet, cheat)
    check_common(golem, ledger, done)
    (agreement,) = entries(ledger, "cheat-node")
    assert agreement["debit_notes"] and all(
        status != "ACCEPTED" for _, _, status in agreement["debit_notes"])
    assert agreement["invoice_status"] == "ACCEPTED"
    assert agreement["accepted_total"] == agreement["invoice_amount"]
    assert golem.summary().overcharged == ["cheat-node"]


def test_inflated_usage_is_not_paid(make_devnet: Callable[..., Devnet]) -> None:
    """Usage counters are believed up to the wall time we observed plus its slack: inflated
    counters are paid no more than honest ones plus that slack's price."""
    cheat = dataclasses.replace(HONEST, name="cheat-node", inflate_usage=3.0)
    golem, ledger, done = run(make_devnet, cheat, tasks=16)
    check_common(golem, ledger, done)
    (agreement,) = entries(ledger, "cheat-node")
    start = Decimal(repr(HONEST.price_start))
    honest_amount = start + (agreement["invoice_amount"] - start) / 3  # the price is linear
    slack = (Decimal(repr(HONEST.price_duration_sec)) + HONEST.cpu_threads *
             Decimal(repr(HONEST.price_cpu_sec))) * Decimal(repr(TIME_SLACK_SECONDS))
    assert agreement["invoice_status"] == "REJECTED"
    assert agreement["accepted_total"] <= (honest_amount + slack) * (1 + TOLERANCE)
    assert golem.summary().overcharged == ["cheat-node"]


def test_invoice_with_phantom_activities_is_rejected(make_devnet: Callable[..., Devnet]) -> None:
    cheat = dataclasses.replace(HONEST, name="cheat-node", phantom_activities=2)
    golem, ledger, done = run(make_devnet, cheat)
    check_common(golem, ledger, done)
    (agreement,) = entries(ledger, "cheat-node")
    assert agreement["invoice_status"] == "REJECTED"
    assert agreement["accepted_total"] <= agreement["invoice_amount"] / 3


def test_debit_notes_after_termination_are_not_paid(make_devnet: Callable[..., Devnet]) -> None:
    cheat = dataclasses.replace(HONEST, name="cheat-node", notes_after_termination=3)
    golem, ledger, done = run(make_devnet, cheat)
    check_common(golem, ledger, done)
    (agreement,) = entries(ledger, "cheat-node")
    assert agreement["invoice_status"] == "ACCEPTED"
    assert agreement["accepted_total"] == agreement["invoice_amount"]


def test_providers_stop_before_the_budget_runs_out(make_devnet: Callable[..., Devnet]) -> None:
    """With a budget for a few seconds of both providers, each is released in time: every
    invoice is accepted (nobody worked unpaid), the spend stays within the budget."""
    net = make_devnet(providers=[HONEST, dataclasses.replace(HONEST, name="second-node")],
                      debit_note_interval=0.4)
    budget = Decimal("0.005")
    # The tasks are short: the budget is checked for that expected duration.
    with golem_for(net, budget=budget, settings=Settings(expected_task_seconds=2)) as golem:
        with pytest.raises(BudgetExceeded):
            list(golem.execute_tasks(sleepy_worker, range(200), PAYLOAD, max_workers=2,
                                     offer_timeout=2))
    ledger = net.ledger()
    assert ledger["agreements"]
    for agreement in ledger["agreements"]:
        assert agreement["invoice_status"] == "ACCEPTED", agreement
        assert agreement["accepted_total"] == agreement["invoice_amount"]
    assert golem.spent <= budget and golem.summary().unpaid == 0
    assert all(a["released"] for a in ledger["allocations"])


def test_a_small_bill_tripled_is_caught_by_the_usage_read_at_the_end(
        make_devnet: Callable[..., Devnet]) -> None:
    """CPU priced high on many threads: the slack a debit note's sampling needs would cover a
    tripled small invoice; the usage read just before the activity is destroyed does not."""
    dear_cpu = ProviderSpec(name="cheat-node", cpu_threads=8, price_cpu_sec=0.0005,
                            price_duration_sec=0.00001, price_start=0.0, overcharge=3.0)
    net = make_devnet(providers=[dear_cpu], debit_note_interval=5.0)
    with golem_for(net) as golem:
        done = list(golem.execute_tasks(sleepy_worker, range(2), PAYLOAD, max_workers=1))
    assert sorted(int(t.result) for t in done) == [0, 1]
    (agreement,) = net.ledger()["agreements"]
    assert agreement["invoice_status"] == "REJECTED"
    assert agreement["accepted_total"] <= agreement["invoice_amount"] / 3
