"""The payment proof: accepted invoices end up as tokens on the providers' chain accounts."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from decimal import Decimal

import pytest
import requests
from localnet_helpers import PAYLOAD, echo_worker, golem_on

from golemsync.localnet import Localnet

pytestmark = pytest.mark.timeout(300)

SETTLE_TIMEOUT = 200.0


def _invoices(net: Localnet) -> list[dict[str, object]]:
    reply = requests.get(f"{net.api_url}/payment-api/v1/invoices",
                         headers={"Authorization": f"Bearer {net.app_key}"}, timeout=30)
    reply.raise_for_status()
    return list(reply.json())


def test_accepted_invoices_are_paid_on_the_chain(localnet: Localnet) -> None:
    with golem_on(localnet) as golem:
        done = list(golem.execute_tasks(echo_worker, range(4), PAYLOAD, max_workers=2))
    assert all(t.result == str(t.data) for t in done)
    assert golem.spent > 0
    payees = {p.node_id.lower() for p in localnet.providers}
    # Every invoice of the session so far: each was accepted when its job ended.
    pause = threading.Event()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        invoices = [i for i in _invoices(localnet) if str(i["payeeAddr"]).lower() in payees]
        assert invoices
        undecided = [(i["status"], i["agreementId"], i["amount"], i["timestamp"])
                     for i in invoices if i["status"] not in ("ACCEPTED", "SETTLED")]
        assert not undecided, f"invoices not accepted (status, agreement, amount, when): " \
            f"{undecided}"
        owed: dict[str, Decimal] = defaultdict(Decimal)
        for invoice in invoices:
            owed[str(invoice["payeeAddr"]).lower()] += Decimal(str(invoice["amount"]))
        paid = {payee: localnet.chain.token_balance(payee) for payee in owed}
        if all(i["status"] == "SETTLED" for i in invoices) and paid == owed:
            break
        assert time.monotonic() < deadline, f"not settled: owed {dict(owed)}, paid {paid}"
        localnet.hurry_payments()
        pause.wait(3.0)  # the driver sends and confirms on its own schedule: poll the chain
    assert sum(owed.values()) >= golem.spent


def test_the_nodes_listings_keep_documents_after_their_own_timestamp(
        localnet: Localnet) -> None:
    """golemsync fetches announced invoices and debit notes in one listing from just before
    the earliest (``afterTimestamp``); the real node filters by the documents' timestamps."""
    from golemsync.config import Config
    from golemsync.rest import YagnaClient

    with golem_on(localnet) as golem:
        list(golem.execute_tasks(echo_worker, range(4), PAYLOAD, max_workers=2))
    client = YagnaClient(Config.load(app_key=localnet.app_key, api_url=localnet.api_url))
    checked = []
    try:
        listings = {"invoices": client.payment.list_invoices,
                    "debit notes": client.payment.list_debit_notes}
        for name, listing in listings.items():
            documents = listing()
            stamps = sorted({d.timestamp for d in documents if d.timestamp is not None})
            if len(stamps) < 2:
                continue  # (a job this short may have no debit note)
            later = listing(after=stamps[0])
            assert later and all(d.timestamp is not None and d.timestamp > stamps[0]
                                 for d in later), name
            assert len(later) == sum(1 for d in documents if d.timestamp != stamps[0]), name
            assert len(listing(after=stamps[0], max_items=1)) == 1, name
            checked.append(name)
    finally:
        client.close()
    assert "invoices" in checked  # two agreements: two invoices at least
