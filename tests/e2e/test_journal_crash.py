"""kill -9 a journaled hashcrack at a few points; the rerun resumes and settles every orphan."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest
from test_interrupt import wait_until

from golemsync.devnet import Devnet
from golemsync.rest import YagnaClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hashcrack.py"
WORD = "zzzzz"  # the answer is in the last slice
SLICES = 40


def journal_tasks(path: Path) -> int:
    """Tasks committed to the journal so far (read while the example writes it)."""
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT count(*) FROM tasks").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        db.close()


def example(net: Devnet, journal: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YAGNA_")}
    env.update(net.env)
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE), WORD, "--slices", str(SLICES), "--workers", "2",
         "--journal", str(journal)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rerun(net: Devnet, journal: Path, timeout: float) -> tuple[str, str, int, int]:
    """Run the example again with the same journal to its end: (stdout, stderr, tasks
    resumed, tasks run), after checking it succeeded, found the word and said both counts."""
    second = example(net, journal)
    try:
        out, err = second.communicate(timeout=timeout)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    assert second.returncode == 0, out + err
    assert f"answer: {WORD}" in out
    match = re.search(r"journal: (\d+) tasks resumed, (\d+) ran", out)
    assert match, out
    return out, err, int(match.group(1)), int(match.group(2))


def approved(net: Devnet) -> bool:
    return any(a["state"] == "Approved" for a in net.ledger()["agreements"])


def kill_when(process: subprocess.Popen[str], condition: Callable[[], bool]) -> None:
    try:
        assert wait_until(condition, 90), "the kill point was never reached"
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL


def assert_settled(net: Devnet) -> None:
    """No agreement open, no activity alive, every allocation released, nothing paid twice."""
    ledger = net.ledger()
    agreements: list[dict[str, Any]] = ledger["agreements"]
    assert agreements
    assert not [a for a in agreements if a["state"] in ("Approved", "Pending")]
    for agreement in agreements:
        if agreement["state"] == "Proposal":
            # killed between the daemon creating it and the journal's commit: it was never
            # confirmed, so it can never be approved; it holds nothing and owes nothing
            assert not agreement["activities"] and agreement["invoice_id"] is None
            assert agreement["accepted_total"] == 0
    assert all(a["released"] for a in ledger["allocations"]), ledger["allocations"]
    booked = Decimal(0)
    for agreement in agreements:
        if agreement["state"] != "Terminated":
            continue
        assert agreement["invoice_status"] == "ACCEPTED", agreement
        # what was booked for the agreement is its invoice, once (notes are not added on top)
        assert agreement["accepted_total"] == agreement["invoice_amount"], agreement
        booked += agreement["accepted_total"]
    spent = sum((a["spent"] for a in ledger["allocations"]), Decimal(0))
    assert spent == booked  # no document was paid twice, from any allocation
    with _client(net) as client:
        for agreement in agreements:
            for activity_id in agreement["activities"]:
                assert client.activity.get_state(activity_id).current == "Terminated"


def _client(net: Devnet) -> YagnaClient:
    from golemsync.config import Config

    return YagnaClient(Config.load(app_key=net.app_key, api_url=net.url))


@pytest.mark.parametrize("kill_point", ["agreement-approved", "tasks-done", "all-done"])
def test_kill_then_rerun_resumes_and_settles(make_devnet: Callable[..., Devnet], tmp_path: Path,
                                             kill_point: str) -> None:
    net = make_devnet(providers=3, debit_note_interval=0.5)
    journal = tmp_path / "crack.journal"
    first = example(net, journal)
    if kill_point == "agreement-approved":
        kill_when(first, lambda: approved(net))
    elif kill_point == "tasks-done":
        kill_when(first, lambda: journal_tasks(journal) >= 8)
    else:  # every task committed: killed while ending its agreements and paying
        kill_when(first, lambda: journal_tasks(journal) == SLICES)
    done_before = journal_tasks(journal)
    left_open = approved(net)
    if kill_point != "all-done":
        assert left_open  # the killed run left its agreements open
    out, _, resumed, ran = rerun(net, journal, 240)
    assert resumed + ran == SLICES
    assert resumed == done_before
    if kill_point == "tasks-done":
        assert resumed >= 8
    if kill_point == "all-done":
        assert (resumed, ran) == (SLICES, 0)
    assert journal_tasks(journal) == SLICES
    if left_open:
        assert "recovered a killed run: " in out
    assert_settled(net)
