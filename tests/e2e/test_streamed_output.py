"""``script.run(..., on_stdout=, on_stderr=)``: lines delivered while the command runs.

Ordering, never timing: the command that proves "before the end" waits on a file that the test
creates only once its callback received line 1, so the command cannot have ended by then.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

import pytest
from jobs import PAYLOAD, golem_for

from golemsync import Script, Task, WorkContext
from golemsync.command import CommandResult
from golemsync.devnet import Devnet
from golemsync.rest.activity_api import ActivityApi

WAIT = 30.0  # seconds any wait in these tests may take at most (never reached when it works)


def _gated(workdir: Path) -> Callable[[], None]:
    """Open the gate of every activity under a devnet ``workdir`` (its /golem/work/go file)."""
    def open_gate() -> None:
        volumes = list(workdir.glob("**/volumes/work"))
        assert volumes, f"no activity volume under {workdir}"
        for volume in volumes:
            (volume / "go").touch()
    return open_gate


def test_first_line_arrives_while_the_command_still_runs(make_devnet: Callable[..., Devnet],
                                                         tmp_path: Path) -> None:
    net = make_devnet(workdir=str(tmp_path / "devnet"))
    open_gate = _gated(tmp_path / "devnet")
    lines: list[str] = []
    seen: dict[str, Any] = {}
    holder: dict[str, Future[CommandResult]] = {}
    # Line 1, then wait for the gate (created by the callback below), then lines 2 and 3.
    command = ("for i in 1 2 3; do echo $i; if [ $i = 1 ]; then "
               "while [ ! -e /golem/work/go ]; do sleep 0.02; done; fi; done")

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "1":
            seen["done_at_line_1"] = holder["run"].done()
            seen["thread"] = threading.current_thread().name
            open_gate()

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=WAIT)
            holder["run"] = script.run("/bin/sh", "-c", command, on_stdout=on_line)
            yield script
            seen["lines_after_yield"] = list(lines)
            task.accept_result(holder["run"].result().stdout)

    with golem_for(net) as golem:
        (task,) = golem.execute_tasks(worker, [0], PAYLOAD, max_workers=1)
    assert seen["done_at_line_1"] is False  # the command was still waiting for the gate
    assert seen["thread"].startswith("golemsync-output-")
    assert lines == ["1", "2", "3"]
    assert seen["lines_after_yield"] == ["1", "2", "3"]  # all delivered when yield returns
    assert task.result == "1\n2\n3\n"  # the result keeps the whole output, as without streaming


def test_stderr_partial_and_empty_lines(devnet: Devnet) -> None:
    out: list[str] = []
    err: list[str] = []
    results: list[CommandResult] = []

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=WAIT)
            run = script.run("/bin/sh", "-c",
                             r"printf 'a\nb\r\n\nno end'; printf 'e1\ne2\n' >&2; "
                             r"printf '\303\251t\303\251\n'",
                             on_stdout=out.append, on_stderr=err.append)
            yield script
            results.append(run.result())
            task.accept_result()

    with golem_for(devnet) as golem:
        (_,) = golem.execute_tasks(worker, [0], PAYLOAD, max_workers=1)
    # "no end" is followed by more stdout, so it joins the next line; the last line is flushed.
    assert out == ["a", "b", "", "no endété"]
    assert err == ["e1", "e2"]
    (result,) = results
    assert result.stdout == "a\nb\r\n\nno endété\n" and result.stderr == "e1\ne2\n"


def test_last_line_without_newline_is_flushed_when_the_command_ends(devnet: Devnet) -> None:
    out: list[str] = []

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=WAIT)
            script.run("/bin/sh", "-c", "printf 'first\\nlast'", on_stdout=out.append)
            second = script.run("/bin/echo", "next command")
            yield script
            task.accept_result(second.result().text)

    with golem_for(devnet) as golem:
        (task,) = golem.execute_tasks(worker, [0], PAYLOAD, max_workers=1)
    assert out == ["first", "last"]
    assert task.result == "next command\n"


def test_a_slow_callback_does_not_delay_the_future(devnet: Devnet) -> None:
    entered = threading.Event()
    release = threading.Event()
    lines: list[str] = []
    futures: queue.Queue[Future[CommandResult]] = queue.Queue()
    after_yield: list[list[str]] = []

    def slow(line: str) -> None:
        entered.set()
        release.wait(WAIT)
        lines.append(line)

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=WAIT)
            run = script.run("/bin/sh", "-c", "echo x; echo y", on_stdout=slow)
            futures.put(run)
            yield script
            after_yield.append(list(lines))
            task.accept_result(run.result().text)

    failure: list[BaseException] = []
    result: list[Any] = []

    def job() -> None:
        try:
            with golem_for(devnet) as golem:
                result.extend(golem.execute_tasks(worker, [0], PAYLOAD, max_workers=1))
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        finally:
            release.set()

    thread = threading.Thread(target=job)
    thread.start()
    try:
        run = futures.get(timeout=WAIT)
        assert entered.wait(WAIT)
        # The callback is blocked inside line "x": the command's Future resolves all the same.
        assert run.result(timeout=WAIT).text == "x\ny\n"
        assert not release.is_set() and lines == []
    finally:
        release.set()
        thread.join(WAIT * 2)
    assert not thread.is_alive() and not failure, failure
    assert lines == ["x", "y"]
    assert after_yield == [["x", "y"]]  # the worker went on only once every line was taken
    assert [t.result for t in result] == ["x\ny\n"]


def test_a_raising_callback_is_logged_once_and_does_not_fail_the_task(
        devnet: Devnet, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def broken(line: str) -> None:
        calls.append(line)
        raise RuntimeError(f"cannot handle {line}")

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=WAIT)
            run = script.run("/bin/sh", "-c", "echo a; echo b; echo c", on_stdout=broken)
            yield script
            task.accept_result(run.result().text)

    with caplog.at_level(logging.WARNING, logger="golemsync.streaming"):
        with golem_for(devnet) as golem:
            (task,) = golem.execute_tasks(worker, [0], PAYLOAD, max_workers=1)
    assert task.result == "a\nb\nc\n"
    assert calls == ["a", "b", "c"]  # it kept receiving lines after raising
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "on_stdout of command 0 raised" in tracebacks[0].message
    assert any("raised 3 times in all" in r.message for r in caplog.records)


def test_the_event_stream_is_opened_only_for_scripts_with_callbacks(
        devnet: Devnet, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    original = ActivityApi.stream_exec_results

    def counting(self: ActivityApi, activity_id: str, batch_id: str, **kw: Any) -> Any:
        opened.append(batch_id)
        return original(self, activity_id, batch_id, **kw)

    monkeypatch.setattr(ActivityApi, "stream_exec_results", counting)
    got: list[str] = []

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            plain = ctx.new_script(timeout=WAIT)
            first = plain.run("/bin/echo", "plain")
            yield plain
            streamed = ctx.new_script(timeout=WAIT)
            second = streamed.run("/bin/echo", "streamed", on_stdout=got.append)
            yield streamed
            task.accept_result((first.result().text, second.result().text))

    with golem_for(devnet) as golem:
        (task,) = golem.execute_tasks(worker, [0], PAYLOAD, max_workers=1)
    assert task.result == ("plain\n", "streamed\n")
    assert got == ["streamed"]
    assert len(opened) == 1  # only the script with a callback; not deploy/start, not "plain"


def test_a_callback_needs_a_streaming_capture() -> None:
    class Owner:
        provider_name = "p"
        storage: Any = None

    script = Script(Owner())
    with pytest.raises(ValueError, match="on_stdout needs stdout captured as a stream"):
        script.run("/bin/echo", stdout={"atEnd": {}}, on_stdout=print)
    with pytest.raises(TypeError, match="on_stderr must be callable"):
        script.run("/bin/echo", on_stderr="print")  # type: ignore[arg-type]
    script.run("/bin/echo", "x", stdout={"stream": {"limit": 100}}, on_stdout=print)
    script.run("/bin/echo", "y", on_stderr=print)
    first, second = (c.args["capture"] for c in script.commands)
    assert first == {"stdout": {"stream": {"limit": 100}}, "stderr": {"atEnd": {}}}
    assert second == {"stdout": {"atEnd": {}}, "stderr": {"stream": {}}}


def test_a_script_timeout_ends_the_stream_and_its_threads(devnet: Devnet) -> None:
    first_attempt: list[str] = []
    later: list[str] = []

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            if task.attempts <= 1:  # the first attempt outlives its script's timeout
                script = ctx.new_script(timeout=1.0)
                run = script.run("/bin/sh", "-c", "echo started; exec sleep 60",
                                 on_stdout=first_attempt.append)
            else:
                script = ctx.new_script(timeout=WAIT)
                run = script.run("/bin/echo", "again", on_stdout=later.append)
            yield script
            task.accept_result(run.result().text)

    with golem_for(devnet) as golem:
        (task,) = golem.execute_tasks(worker, [0], PAYLOAD, max_workers=1)
    assert task.result == "again\n" and task.attempts >= 2
    assert first_attempt == ["started"]  # the line seen before the timeout was delivered
    assert later == ["again"]
    left = [t.name for t in threading.enumerate()
            if t.name.startswith(("golemsync-events-", "golemsync-output-"))]
    assert left == []
