"""execute_tasks(journal=...) in process: resuming, keys, codecs, and an orphan settled."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from jobs import PAYLOAD, assert_all_settled, echo_worker, golem_for

from golemsync import ConfigurationError, Journal, Script, Task, TaskStatus, WorkContext
from golemsync.devnet import Devnet
from golemsync.market import Hire

pytestmark = pytest.mark.e2e


def test_a_rerun_yields_the_journaled_tasks_without_running_them(
        make_devnet: Callable[..., Devnet], tmp_path: Path) -> None:
    net = make_devnet(providers=2)
    path = tmp_path / "job.journal"
    with golem_for(net) as golem:
        first = list(golem.execute_tasks(echo_worker, range(6), PAYLOAD, max_workers=2,
                                         journal=path))
    assert sorted(t.result for t in first) == [str(i) for i in range(6)]
    assert not any(t.resumed for t in first)
    assert_all_settled(net, golem)
    agreements = len(net.ledger()["agreements"])

    journal = Journal(path)
    with golem_for(net) as golem:
        second = list(golem.execute_tasks(echo_worker, range(8), PAYLOAD, max_workers=2,
                                          journal=journal))
    assert journal.recovery is not None and journal.recovery.empty  # the first run was clean
    by_data = {t.data: t for t in second}
    assert sorted(by_data) == list(range(8))
    assert all(by_data[i].resumed and by_data[i].result == str(i) for i in range(6))
    assert all(by_data[i].status is TaskStatus.DONE for i in range(8))
    assert [t.data for t in second if not t.resumed] in ([6, 7], [7, 6])
    assert all(by_data[i].provider_name is None and by_data[i].attempts == 0 for i in range(6))
    assert journal.resumed == 6 and journal.recorded == 2
    assert len(net.ledger()["agreements"]) > agreements  # only two tasks needed providers

    with golem_for(net) as golem:  # everything journaled: nobody is hired
        third = list(golem.execute_tasks(echo_worker, range(8), PAYLOAD, journal=path))
    assert all(t.resumed for t in third) and len(third) == 8


def set_worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
    for task in tasks:
        script = ctx.new_script(timeout=30)
        out = script.run("/bin/echo", "a b a")
        yield script
        task.accept_result(set(out.result().text.split()))


def test_keys_and_codecs(make_devnet: Callable[..., Devnet], tmp_path: Path) -> None:
    net = make_devnet(providers=1)
    path = tmp_path / "sets.journal"
    with golem_for(net) as golem:
        with pytest.raises(ConfigurationError, match=r"task \{1, 2\} cannot be journaled.*key"):
            list(golem.execute_tasks(set_worker, [{1, 2}], PAYLOAD, journal=path))
        with pytest.raises(ConfigurationError, match="cannot be journaled.*codec"):
            list(golem.execute_tasks(set_worker, [Task({1, 2}, key="one-two")], PAYLOAD,
                                     journal=path))
    with golem_for(net) as golem:
        done = list(golem.execute_tasks(set_worker, [Task({1, 2}, key="one-two")], PAYLOAD,
                                        journal=Journal(path, codec=pickle)))
    assert done[0].result == {"a", "b"} and not done[0].resumed
    with golem_for(net) as golem:
        again = list(golem.execute_tasks(set_worker, [Task(object(), key="one-two")], PAYLOAD,
                                         journal=Journal(path, codec=pickle)))
    assert again[0].resumed and again[0].result == {"a", "b"}


def test_a_journal_is_used_by_one_process_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "busy.journal"
    first = Journal(path)
    first.open()
    try:
        with pytest.raises(ConfigurationError, match="in use"):
            Journal(path).open()
    finally:
        first.close()
    second = Journal(path)
    second.open()  # free again once closed
    second.close()


def test_an_orphan_agreement_is_terminated_and_paid(make_devnet: Callable[..., Devnet],
                                                    tmp_path: Path) -> None:
    """A run that died with an agreement approved and an activity running: the next run
    terminates it, pays its invoice from the dead run's allocation and releases that."""
    net = make_devnet(providers=2, debit_note_interval=0.3)
    path = tmp_path / "orphan.journal"
    with golem_for(net) as golem:  # a clean run first: its records need no recovery
        list(golem.execute_tasks(echo_worker, range(2), PAYLOAD, journal=path))
    client = golem_for(net)
    client.start()
    try:  # the "killed" run: agreement and activity made by hand, journaled, never closed
        dead = Journal(path)
        assert client._client is not None
        dead.attach(client._client, daemon_url=client.config.api_url, identity=client.identity,
                    allocation_id=client._allocation_id, invoice_timeout=5, poll_timeout=1)
        agreement_id, provider = _approved_agreement(client)
        dead.agreement_signed(Hire(agreement_id, provider, "p", None, 1, {}))
        dead.agreement_state(agreement_id, "approved")
        activity_id = client._client.activity.create_activity(agreement_id)
        dead.activity_started(agreement_id, activity_id)
        dead_allocation = client._allocation_id
        assert dead._db is not None and dead._lock_file is not None
        dead._db.close()  # the process "dies": its lock goes, its records stay as they are
        dead._lock_file.close()
        dead._db = dead._lock_file = None
    finally:
        client._allocation_id = None  # leave the allocation open, as a killed run does
        client.close()
    journal = Journal(path)
    with golem_for(net) as golem:
        done = list(golem.execute_tasks(echo_worker, range(3), PAYLOAD, journal=journal))
    assert sum(t.resumed for t in done) == 2
    report = journal.recovery
    assert report is not None
    assert report.agreements_terminated == [agreement_id]
    assert report.activities_destroyed == [activity_id]
    assert list(report.invoices_accepted) == [agreement_id] and report.paid > 0
    assert report.allocations_released == [dead_allocation]
    ledger = net.ledger()
    orphan = next(a for a in ledger["agreements"] if a["agreement_id"] == agreement_id)
    assert orphan["state"] == "Terminated" and orphan["invoice_status"] == "ACCEPTED"
    assert orphan["accepted_total"] == orphan["invoice_amount"] == report.paid
    assert all(a["released"] for a in ledger["allocations"])
    assert not [a for a in ledger["agreements"] if a["state"] == "Approved"]


def _approved_agreement(golem: Any) -> tuple[str, str]:
    """Negotiate one agreement by hand, the way a requestor does."""
    from datetime import timedelta

    from golemsync.market import build_demand
    from golemsync.timestamps import now

    client = golem._client
    demand = build_demand(PAYLOAD, subnet=golem.config.subnet,
                          decoration_properties=dict(golem._decorations.properties),
                          decoration_constraints=list(golem._decorations.constraints),
                          lifetime=timedelta(minutes=10))
    properties = dict(demand.properties)
    properties["golem.com.payment.chosen-platform"] = golem.config.payment_platform
    subscription = client.market.subscribe_demand(demand.properties, demand.constraints)
    try:
        offer = None
        while offer is None:
            for event in client.market.collect_offers(subscription, timeout=2):
                proposal = getattr(event, "proposal", None)
                if proposal is not None and proposal.state == "Initial":
                    offer = proposal
                    break
        ours = client.market.counter_proposal(subscription, offer.proposal_id, properties,
                                              demand.constraints)
        draft = None
        while draft is None:
            for event in client.market.collect_offers(subscription, timeout=2):
                proposal = getattr(event, "proposal", None)
                if proposal is not None and proposal.prev_proposal_id == ours:
                    draft = proposal
        agreement_id = client.market.create_agreement(draft.proposal_id,
                                                      now() + timedelta(minutes=10))
        client.market.confirm_agreement(agreement_id)
        assert client.market.wait_for_approval(agreement_id, timeout=10)
    finally:
        client.market.unsubscribe_demand(subscription)
    return agreement_id, offer.issuer_id


def remote_echo(ctx: WorkContext, text: str) -> str:
    script = ctx.new_script(timeout=30)
    out = script.run("/bin/echo", text)
    ctx.run(script)
    return str(out.result().text.strip())


def test_an_executor_journals_its_agreements_not_its_calls(make_devnet: Callable[..., Devnet],
                                                           tmp_path: Path) -> None:
    import sqlite3

    net = make_devnet(providers=2)
    path = tmp_path / "pool.journal"
    with golem_for(net) as golem:
        pool = golem.executor(PAYLOAD, max_workers=2, journal=path)
        assert [f.result(timeout=60) for f in [pool.submit(remote_echo, w) for w in "ab"]] \
            == ["a", "b"]
        pool.shutdown()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
        states = {row[0] for row in db.execute("SELECT state FROM agreements")}
        runs = db.execute("SELECT state, allocation_state FROM runs").fetchall()
    finally:
        db.close()
    ours = [a["agreement_id"] for a in net.ledger()["agreements"] if a["state"] == "Terminated"]
    assert ours and states == {"settled"}
    assert runs == [("closed", "released")]
