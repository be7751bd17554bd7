"""The progress bar: resumed tasks shown as done from the start, the job's own spend, its own
events only, and a bar on a terminal that reports 0 columns."""

from __future__ import annotations

import io
import os
import re
import select
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Callable

import pytest
from jobs import PAYLOAD, echo_worker, golem_for

from golemsync import progress
from golemsync.devnet import Devnet
from golemsync.events import (
    AgreementCreated,
    DebitNoteAccepted,
    InvoiceAccepted,
    TaskAccepted,
)

pytestmark = pytest.mark.skipif(not progress.tqdm_available(), reason="needs tqdm")


def _renders(err: str) -> list[str]:
    """The successive states tqdm drew (it redraws the line after a carriage return)."""
    return [r.strip() for r in re.split(r"[\r\n]", err) if "task" in r]


def test_resumed_tasks_are_done_from_the_start(make_devnet: Callable[..., Devnet],
                                               tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    net = make_devnet(providers=1)
    path = tmp_path / "job.journal"
    with golem_for(net) as golem:
        list(golem.execute_tasks(echo_worker, range(3), PAYLOAD, max_workers=1, journal=path,
                                 progress=False))
    capsys.readouterr()
    with golem_for(net) as golem:
        tasks = list(golem.execute_tasks(echo_worker, range(5), PAYLOAD, max_workers=1,
                                         journal=path, progress=True))
    assert sorted(t.resumed for t in tasks) == [False, False, True, True, True]
    renders = _renders(capsys.readouterr().err)
    counts = [int(m.group(1)) for m in (re.search(r"(\d+)/5", r) for r in renders) if m]
    # Drawn at 0, then the three resumed tasks, before any task of this run; then up to 5.
    assert counts[:4] == [0, 1, 2, 3] and counts[-1] == 5
    assert "resumed 3" in renders[3] and "resumed 3" in renders[-1]
    assert "failed 0" in renders[-1]


@dataclass
class _Cost:
    agreement_id: str
    spent: Decimal


def test_the_bar_counts_its_own_job_and_its_own_spend() -> None:
    out = io.StringIO()
    costs = [_Cost("a-mine", Decimal("0.000000897135")), _Cost("a-other", Decimal("5"))]
    bar = progress.ProgressBar(4, lambda: costs, job_id="job-1", stream=out)
    bar(AgreementCreated(job_id="job-1", agreement_id="a-mine"))
    bar(AgreementCreated(job_id="job-2", agreement_id="a-other"))
    bar(TaskAccepted(job_id="job-1"))
    bar(TaskAccepted(job_id="job-2"))  # another job's task: not ours
    bar(DebitNoteAccepted(agreement_id="a-other", amount=Decimal(5)))
    bar(InvoiceAccepted(agreement_id="a-mine", amount=Decimal("0.000000897135")))
    bar.close()
    assert bar.done == 1 and bar.working == 1
    assert bar.spent == Decimal("0.000000897135")
    last = _renders(out.getvalue())[-1]
    assert "1/4" in last and "spent 0.000000897 GLM" in last and "E-" not in last


def test_a_terminal_with_zero_columns_still_gets_a_bar() -> None:
    master, slave = os.openpty()  # a new pseudo-terminal reports 0 x 0
    try:
        with os.fdopen(slave, "w", closefd=False) as terminal:
            assert os.get_terminal_size(terminal.fileno()).columns == 0
            bar = progress.ProgressBar(2, lambda: [], stream=terminal)
            bar(TaskAccepted())
            bar.close()
            terminal.flush()
        drawn = b""
        while select.select([master], [], [], 5.0)[0]:
            chunk = os.read(master, 65536)
            drawn += chunk
            if b"2/2" in drawn or not chunk:
                break
    finally:
        os.close(master)
        os.close(slave)
    assert b"1/2" in drawn
