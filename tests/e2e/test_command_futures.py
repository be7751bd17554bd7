"""Each command's Future resolves when its own command ends on the devnet."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from jobs import PAYLOAD

from golemsync import Golem, Script, Task, WorkContext
from golemsync.devnet import Devnet
from golemsync.events import Event, ScriptSent


def test_first_future_resolves_while_a_later_command_still_runs(devnet: Devnet) -> None:
    resolved: dict[str, tuple[datetime, datetime]] = {}  # name -> (resolved, finished_at)
    lock = threading.Lock()  # guards resolved

    def note(name: str) -> Callable[[Future[Any]], None]:
        def done(future: Future[Any]) -> None:
            now = datetime.now(timezone.utc)
            with lock:
                resolved[name] = (now, future.result().finished_at)
        return done

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=30)
            quick = script.run("/bin/sh", "-c", "echo quick")
            slow = script.run("/bin/sh", "-c", "sleep 1.5; echo slow")
            quick.add_done_callback(note("quick"))
            slow.add_done_callback(note("slow"))
            yield script
            task.accept_result((quick.result().text, slow.result().text))

    sent: list[ScriptSent] = []

    def on_event(event: Event) -> None:
        if isinstance(event, ScriptSent):
            sent.append(event)

    # A poll window much longer than the slow command: it must not matter.
    with Golem(api_url=devnet.url, app_key=devnet.app_key, budget=5, poll_timeout=3.0,
               invoice_timeout=15, on_event=on_event) as golem:
        (task,) = golem.execute_tasks(worker, [0], PAYLOAD, max_workers=1)
    assert task.result == ("quick\n", "slow\n")
    quick_resolved, quick_finished = resolved["quick"]
    slow_resolved, slow_finished = resolved["slow"]
    assert quick_resolved - quick_finished < timedelta(seconds=0.5)
    assert slow_finished - quick_resolved > timedelta(seconds=1.0)
    assert slow_resolved - slow_finished < timedelta(seconds=0.5)
    assert [e.commands for e in sent] == [2]  # one exec: deploy and start ride ahead of them
