"""Events, the summary and the progress bar, on a real devnet."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Callable

import pytest
from jobs import PAYLOAD, echo_worker, golem_for

from golemsync import events, progress
from golemsync.devnet import Devnet

pytestmark = pytest.mark.e2e



def test_event_order_for_a_simple_job(devnet: Devnet) -> None:
    seen: list[events.Event] = []
    with golem_for(devnet, on_event=seen.append) as golem:
        list(golem.execute_tasks(echo_worker, ["x"], PAYLOAD, max_workers=1))
    kinds = [type(e).__name__ for e in seen]
    # the activity's deploy and start go ahead of the first script in its exec
    order = ["JobStarted", "OfferReceived", "AgreementCreated", "ScriptSent", "ActivityStarted",
             "CommandFinished", "TaskAccepted", "AgreementTerminated", "InvoiceAccepted"]
    position = -1
    for kind in order:  # each in turn, after the previous one
        assert kind in kinds[position + 1:], (kind, kinds)
        position = kinds.index(kind, position + 1)
    # the job ends after its last task; the invoice may be paid before or after that
    assert kinds.index("JobFinished") > kinds.index("TaskAccepted")
    accepted = next(e for e in seen if isinstance(e, events.TaskAccepted))
    assert accepted.data == "x" and accepted.attempts == 1 and accepted.provider_name


def test_a_raising_callback_never_breaks_the_job(devnet: Devnet) -> None:
    calls: list[str] = []

    def explode(event: events.Event) -> None:
        calls.append(type(event).__name__)
        raise RuntimeError("callback bug")

    with golem_for(devnet, on_event=explode) as golem:
        done = list(golem.execute_tasks(echo_worker, range(4), PAYLOAD, max_workers=2))
    assert sorted(int(t.result) for t in done) == [0, 1, 2, 3]
    assert "TaskAccepted" in calls


def test_summary_figures_equal_the_devnet_ledger(make_devnet: Callable[..., Devnet]) -> None:
    net = make_devnet(providers=3)
    with golem_for(net) as golem:
        done = list(golem.execute_tasks(echo_worker, range(9), PAYLOAD, max_workers=3))
    summary = golem.summary()
    ledger = net.ledger()
    assert summary.tasks_done == len(done) == 9
    paid = sum((a["accepted_total"] for a in ledger["agreements"]), Decimal(0))
    assert summary.total_cost == paid == golem.spent
    per_provider: dict[str, Decimal] = {}
    for agreement in ledger["agreements"]:
        name = agreement["provider_name"]
        per_provider[name] = per_provider.get(name, Decimal(0)) + agreement["accepted_total"]
    for line in summary.providers.values():
        assert any(line.cost == cost and name in line.name for name, cost in per_provider.items())
    text = str(summary)
    assert "total" in text and "9" in text


def test_progress_is_off_when_not_a_terminal() -> None:
    assert progress.wanted(None, io.StringIO()) is False
    assert progress.wanted(False, io.StringIO()) is False

    class FakeTerminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress.wanted(None, FakeTerminal()) is progress.tqdm_available()


def test_progress_bar_when_asked(devnet: Devnet, capsys: pytest.CaptureFixture[str]) -> None:
    with golem_for(devnet) as golem:
        list(golem.execute_tasks(echo_worker, range(3), PAYLOAD, max_workers=1, progress=True))
    err = capsys.readouterr().err
    assert "3/3" in err and "task" in err
