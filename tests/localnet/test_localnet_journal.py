"""kill -9 a journaled hashcrack on the real daemon; the rerun resumes and settles the orphans.

The devnet version (tests/e2e/test_journal_crash.py) reads the devnet's ledger; here every
check asks the requestor node's REST API about the agreements and activities the journal
recorded: none left Approved, every activity Terminated, no allocation open, one accepted
invoice per agreement and nothing accepted beyond it.
"""

from __future__ import annotations

import sqlite3
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from golemsync.localnet import Localnet

# The devnet crash test's helpers (the example's command line, the journal reader, the kill).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from test_journal_crash import SLICES, example, journal_tasks, kill_when, rerun

pytestmark = pytest.mark.timeout(420)


def journal_rows(path: Path, table: str) -> list[dict[str, Any]]:
    """The rows of one journal table (read while the example writes it)."""
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(f"SELECT * FROM {table}")]
    except sqlite3.OperationalError:  # the schema is not there yet
        return []
    finally:
        db.close()


def approved_in_journal(path: Path) -> bool:
    return any(row["state"] == "approved" for row in journal_rows(path, "agreements"))


class Daemon:
    """The requestor node's REST API, as the checks need it."""

    def __init__(self, net: Localnet) -> None:
        self.base = net.api_url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {net.app_key}"

    def get(self, path: str, **params: Any) -> Any:
        reply = self.http.get(self.base + path, params=params, timeout=30)
        assert reply.status_code == 200, f"GET {path}: {reply.status_code} {reply.text[:300]}"
        return reply.json()


def assert_settled(net: Localnet, journal: Path, allocations_before: set[str]) -> None:
    daemon = Daemon(net)
    agreements = journal_rows(journal, "agreements")
    assert agreements
    invoices: dict[str, list[dict[str, Any]]] = {}
    for invoice in daemon.get("/payment-api/v1/invoices"):
        invoices.setdefault(str(invoice["agreementId"]), []).append(invoice)
    for row in agreements:
        agreement_id = row["agreement_id"]
        state = daemon.get(f"/market-api/v1/agreements/{agreement_id}")["state"]
        assert state != "Approved", f"agreement {agreement_id} left Approved"
        if state != "Terminated":
            continue  # never approved (killed before the daemon confirmed it): owes nothing
        (invoice,) = invoices.get(agreement_id, [])  # one invoice per agreement
        assert invoice["status"] in ("ACCEPTED", "SETTLED"), invoice
        pay = daemon.get(f"/payment-api/v1/payAgreements/{agreement_id}")
        # accepted once: the agreement's accepted total is its invoice, not invoice + notes
        assert Decimal(pay["totalAmountAccepted"]) == Decimal(invoice["amount"]), pay
    for row in journal_rows(journal, "activities"):
        state = daemon.get(f"/activity-api/v1/activity/{row['activity_id']}/state")
        assert state["state"][0] == "Terminated", (row, state)
    open_now = {a["allocationId"] for a in daemon.get("/payment-api/v1/allocations")}
    assert open_now <= allocations_before, f"allocations left open: {open_now}"


@pytest.mark.parametrize("kill_point", ["agreement-approved", "tasks-done"])
def test_kill_then_rerun_resumes_and_settles_on_the_real_daemon(
        localnet: Localnet, tmp_path: Path, kill_point: str) -> None:
    before = {a["allocationId"] for a in Daemon(localnet).get("/payment-api/v1/allocations")}
    journal = tmp_path / "crack.journal"
    first = example(localnet, journal)  # type: ignore[arg-type]  # it reads only .env
    if kill_point == "agreement-approved":
        kill_when(first, lambda: approved_in_journal(journal))
    else:
        kill_when(first, lambda: journal_tasks(journal) >= 8)
    done_before = journal_tasks(journal)
    assert approved_in_journal(journal)  # the killed run left an agreement open
    out, err, resumed, ran = rerun(localnet, journal, 300)  # type: ignore[arg-type]
    assert (resumed, resumed + ran) == (done_before, SLICES)
    assert "recovered a killed run: " in out
    assert journal_tasks(journal) == SLICES
    try:
        assert_settled(localnet, journal, before)
    except AssertionError as failure:  # say what the rerun's recovery logged
        raise AssertionError(f"{failure}\n--- the rerun printed ---\n{out}{err}") from None
