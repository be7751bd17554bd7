"""BatchRunner against a fake activity: one exec, one commandIndex long-poll per command."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError
from typing import Any, Optional

import pytest
from fake_activity import BATCH_ID, FakeActivity, Poll

from golemsync.context import WorkContext
from golemsync.errors import (
    ActivityTerminated,
    AuthenticationError,
    CommandFailed,
    ServerError,
    StorageError,
)
from golemsync.events import CommandFinished, Event, ScriptSent
from golemsync.execution import BatchRunner, BootFailed, ScriptTimeout
from golemsync.rest.wire import RuntimeEvent
from golemsync.script import Script

WINDOW = 5.0  # poll_timeout of most tests: long, so nothing there depends on it running out


class Setup:
    def __init__(self, poll_timeout: float = WINDOW) -> None:
        self.activity = FakeActivity()
        self.events: list[Event] = []
        self.stop = threading.Event()
        self.runner = BatchRunner(self.activity, self.activity.activity_id, provider_id="0xp",
                                  provider_name="alice", poll_timeout=poll_timeout,
                                  stop=self.stop, emit=self.events.append)
        self.ctx = WorkContext("0xp", "alice", "ag", self.activity.activity_id,
                               _execute=lambda script: self.runner.execute(script, None),
                               _storage=_no_storage)

    def start(self, script: Script, deadline: Optional[float] = None) -> Execution:
        return Execution(self.runner, script, deadline)


def _no_storage() -> Any:
    raise AssertionError("storage not expected")


class Execution:
    """``runner.execute`` on its own thread, as the worker thread runs it."""

    def __init__(self, runner: BatchRunner, script: Script, deadline: Optional[float]) -> None:
        self.returned: Optional[BaseException] = None
        self.raised: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, args=(runner, script, deadline),
                                        name="test-execute")
        self._thread.start()

    def _run(self, runner: BatchRunner, script: Script, deadline: Optional[float]) -> None:
        try:
            self.returned = runner.execute(script, deadline)
        except BaseException as exc:  # noqa: B036 - handed to the test thread
            self.raised = exc

    def join(self, timeout: float = 10.0) -> Optional[BaseException]:
        """Wait for the end; re-raise what execute raised, else give what it returned."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "execute did not end"
        if self.raised is not None:
            raise self.raised
        return self.returned


def test_one_command_costs_one_exec_and_one_poll() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    out = script.run("/bin/echo", "hi")
    running = setup.start(script)
    setup.activity.wait_for(polls=1)
    finished = setup.activity.finish(stdout="hi\n")
    assert running.join() is None
    result = out.result(timeout=0)
    assert (result.index, result.stdout, result.exit_code, result.finished_at) == (
        0, "hi\n", 0, finished)
    assert setup.activity.batches == [[{"run": {
        "entry_point": "/bin/echo", "args": ["hi"],
        "capture": {"stdout": {"atEnd": {}}, "stderr": {"atEnd": {}}}}}]]
    assert setup.activity.polls == [Poll(WINDOW, 0)]
    assert setup.activity.state_checks == 0
    assert [type(e) for e in setup.events] == [ScriptSent, CommandFinished]


def test_each_future_settles_when_its_own_command_ends() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    first = script.run("/bin/sleep", "0")
    second = script.run("/bin/sleep", "2")
    running = setup.start(script)
    setup.activity.wait_for(polls=1)
    setup.activity.finish(stdout="")
    assert first.result(timeout=5).exit_code == 0
    setup.activity.wait_for(polls=2)
    assert not second.done()
    setup.activity.finish(stdout="slept")
    assert running.join() is None
    assert second.result(timeout=0).stdout == "slept"  # only item k carries output
    assert [p.command_index for p in setup.activity.polls] == [0, 1]


def test_settling_order_follows_the_batch() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    futures = [script.run("/bin/echo", str(i)) for i in range(4)]
    order: list[int] = []
    for i, future in enumerate(futures):
        future.add_done_callback(lambda _, i=i: order.append(i))  # type: ignore[misc]
    running = setup.start(script)
    setup.activity.wait_for(batches=1)
    for i in range(4):  # all finish before the runner asks: each poll answers at once
        setup.activity.finish(stdout=str(i))
    assert running.join() is None
    assert order == [0, 1, 2, 3]
    assert [f.result().stdout for f in futures] == ["0", "1", "2", "3"]
    assert len(setup.activity.polls) == 4


def test_failure_mid_batch_fails_that_command_and_later_ones_never_ran() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    ok = script.run("/bin/true")
    bad = script.run("/bin/false")
    never = script.run("/bin/echo", "never")
    cleaned: list[bool] = []
    script.add("run", {"entry_point": "/bin/true"}, cleanup=cleaned.append)
    running = setup.start(script)
    setup.activity.wait_for(polls=1)
    setup.activity.finish()
    setup.activity.finish(ok=False, stderr="oops", message="ExeScript command exited with code 3")
    error = running.join()
    assert ok.result(timeout=0).success
    with pytest.raises(CommandFailed) as failed:
        bad.result(timeout=0)
    assert error is failed.value
    assert (failed.value.index, failed.value.stderr, failed.value.provider) == (1, "oops", "alice")
    with pytest.raises(CommandFailed, match="did not run: command 1 before it failed"):
        never.result(timeout=0)
    assert [p.command_index for p in setup.activity.polls] == [0, 1]
    assert cleaned == [False]
    finished = [e for e in setup.events if isinstance(e, CommandFinished)]
    assert [(e.index, e.success) for e in finished] == [(0, True), (1, False)]


def test_ctx_run_raises_the_first_error() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    script.run("/bin/false")
    done = threading.Event()

    def provider() -> None:
        setup.activity.wait_for(polls=1)
        setup.activity.finish(ok=False, message="ExeScript command exited with code 1")
        done.set()

    thread = threading.Thread(target=provider, name="test-provider")
    thread.start()
    try:
        with pytest.raises(CommandFailed, match="exited with code 1"):
            setup.ctx.run(script)
    finally:
        thread.join(10)
    assert done.is_set()


def test_long_command_costs_only_its_long_polls() -> None:
    setup = Setup(poll_timeout=0.2)
    script = setup.ctx.new_script()
    out = script.run("/bin/sleep", "1")
    running = setup.start(script)
    setup.activity.wait_for(polls=4)  # three windows ran out (408) and a fourth poll waits
    setup.activity.finish(stdout="done")
    assert running.join() is None
    assert out.result(timeout=0).stdout == "done"
    assert len(setup.activity.batches) == 1
    assert setup.activity.polls == [Poll(0.2, 0)] * 4
    assert setup.activity.state_checks == 0


def test_liveness_is_checked_after_a_long_quiet_spell() -> None:
    setup = Setup(poll_timeout=0.2)
    setup.runner.LIVENESS_INTERVAL = 0.5
    script = setup.ctx.new_script()
    out = script.run("/bin/sleep", "1")
    running = setup.start(script)
    setup.activity.wait_for(polls=7)
    setup.activity.finish()
    assert running.join() is None
    assert out.result(timeout=0).success
    assert 1 <= setup.activity.state_checks <= len(setup.activity.polls) // 2


def test_deadline_raises_script_timeout_and_fails_the_futures() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    first = script.run("/bin/sleep", "60")
    second = script.run("/bin/true")
    cleaned: list[bool] = []
    script.add("run", {"entry_point": "/bin/true"}, cleanup=cleaned.append)
    running = setup.start(script, deadline=time.monotonic() + 0.3)
    with pytest.raises(ScriptTimeout, match="did not finish in time on provider alice"):
        running.join()
    for future in (first, second):
        with pytest.raises(CommandFailed, match="did not run: ScriptTimeout"):
            future.result(timeout=0)
    assert all(p.timeout <= 0.3 for p in setup.activity.polls)
    assert cleaned == [False]


def test_crashed_exe_unit_raises_activity_terminated() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    done = script.run("/bin/true")
    lost = script.run("/bin/sleep", "60")
    running = setup.start(script)
    setup.activity.wait_for(polls=1)
    setup.activity.finish()
    setup.activity.wait_for(polls=2)
    setup.activity.crash()  # the poll for command 1 answers 408 at once
    with pytest.raises(ActivityTerminated, match="terminated the activity"):
        running.join()
    assert done.result(timeout=0).success
    with pytest.raises(CommandFailed, match="did not run: ActivityTerminated"):
        lost.result(timeout=0)
    assert setup.activity.state_checks == 1


def test_destroyed_activity_raises_activity_terminated() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    lost = script.run("/bin/sleep", "60")
    running = setup.start(script)
    setup.activity.wait_for(polls=1)
    setup.activity.destroy()  # the waiting poll answers 500 "endpoint address not found"
    with pytest.raises(ActivityTerminated, match="terminated the activity"):
        running.join()
    with pytest.raises(CommandFailed, match="did not run"):
        lost.result(timeout=0)


def test_a_failed_poll_of_a_live_activity_is_repeated() -> None:
    setup = Setup()
    setup.activity.poll_errors = [ServerError("GSB error: timeout", status=500)]
    script = setup.ctx.new_script()
    out = script.run("/bin/echo", "x")
    running = setup.start(script)
    setup.activity.wait_for(polls=2)
    setup.activity.finish(stdout="x")
    assert running.join() is None
    assert out.result(timeout=0).stdout == "x"
    assert setup.activity.state_checks == 1


def test_repeated_failed_polls_give_up() -> None:
    setup = Setup()
    setup.activity.poll_errors = [ServerError(f"GSB error {i}", status=500) for i in range(3)]
    script = setup.ctx.new_script()
    out = script.run("/bin/echo", "x")
    with pytest.raises(ActivityTerminated, match="results unavailable.*GSB error 2"):
        setup.start(script).join()
    with pytest.raises(CommandFailed, match="did not run"):
        out.result(timeout=0)
    assert setup.activity.state_checks == 3


def test_a_refused_app_key_is_raised_as_is() -> None:
    setup = Setup()
    setup.activity.poll_errors = [AuthenticationError("refused", status=401)]
    script = setup.ctx.new_script()
    script.run("/bin/true")
    with pytest.raises(AuthenticationError):
        setup.start(script).join()
    assert setup.activity.state_checks == 0


def test_stopping_job_ends_the_batch() -> None:
    setup = Setup(poll_timeout=0.2)
    script = setup.ctx.new_script()
    out = script.run("/bin/sleep", "60")
    running = setup.start(script)
    setup.activity.wait_for(polls=1)
    setup.stop.set()
    with pytest.raises(ActivityTerminated, match="stopping"):
        running.join()
    with pytest.raises(CommandFailed):
        out.result(timeout=0)


def test_cancelled_future_is_left_out_and_stays_cancelled() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    first = script.run("/bin/echo", "a")
    dropped = script.run("/bin/echo", "b")
    last = script.run("/bin/echo", "c")
    assert dropped.cancel()
    running = setup.start(script)
    setup.activity.wait_for(batches=1)
    setup.activity.finish(stdout="a")
    setup.activity.finish(stdout="c")
    assert running.join() is None
    assert [c["run"]["args"] for c in setup.activity.batches[0]] == [["a"], ["c"]]
    assert first.result(timeout=0).stdout == "a"
    assert last.result(timeout=0).index == 1  # its position in the batch sent
    assert dropped.cancelled()
    with pytest.raises(CancelledError):
        dropped.result(timeout=0)


def test_all_cancelled_sends_nothing() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    assert script.run("/bin/true").cancel()
    assert setup.start(script).join() is None
    assert setup.activity.batches == [] and setup.activity.polls == []


def test_a_started_future_cannot_be_cancelled() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    out = script.run("/bin/true")
    running = setup.start(script)
    setup.activity.wait_for(polls=1)
    assert not out.cancel()
    setup.activity.finish()
    assert running.join() is None
    assert out.result(timeout=0).success


def test_prepare_failure_sends_nothing_and_fails_every_future() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    cleaned: list[bool] = []
    first = script.add("run", {"entry_point": "/bin/true"}, cleanup=cleaned.append)

    def refuse(command: Any) -> None:
        raise StorageError("gftp is not available")

    second = script.add("transfer", {"from": None, "to": "container:/golem/input/x"},
                        prepare=refuse)
    third = script.run("/bin/true")
    with pytest.raises(StorageError):
        setup.start(script).join()
    for future in (first, second, third):
        with pytest.raises(CommandFailed, match="did not run: StorageError"):
            future.result(timeout=0)
    assert setup.activity.batches == []
    assert cleaned == [False]


def test_exec_failure_fails_every_future_and_cleans_up() -> None:
    setup = Setup()
    setup.activity.exec_error = ServerError("boom", status=500)
    script = setup.ctx.new_script()
    cleaned: list[bool] = []
    out = script.add("run", {"entry_point": "/bin/true"}, cleanup=cleaned.append)
    with pytest.raises(ServerError):
        setup.start(script).join()
    with pytest.raises(CommandFailed, match="did not run: ServerError"):
        out.result(timeout=0)
    assert cleaned == [False]


def test_finish_hook_failure_fails_its_future_and_the_batch_goes_on() -> None:
    setup = Setup()
    script = setup.ctx.new_script()

    def explode(result: Any) -> Any:
        raise ValueError("bad json")

    parsed = script.add("run", {"entry_point": "/bin/cat"}, finish=explode)
    after = script.run("/bin/true")
    running = setup.start(script)
    setup.activity.wait_for(batches=1)
    setup.activity.finish(stdout="{")
    setup.activity.finish()
    error = running.join()
    assert isinstance(error, ValueError)
    with pytest.raises(ValueError, match="bad json"):
        parsed.result(timeout=0)
    assert after.result(timeout=0).success


def test_progress_reaches_the_callback() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    seen: list[tuple[int, Optional[int]]] = []
    got_progress = threading.Event()

    def progress(moved: int, total: Optional[int]) -> None:
        seen.append((moved, total))
        got_progress.set()

    out = script.add("transfer", {"from": "container:/a", "to": "container:/b"},
                     on_progress=progress)
    running = setup.start(script)
    setup.activity.wait_for(polls=1)
    with setup.activity.cond:
        setup.activity.events.append(RuntimeEvent(BATCH_ID, 0, None, "progress",
                                                  {"progress": [5, 10]}))
        setup.activity.cond.notify_all()
    assert got_progress.wait(5)
    with setup.activity.cond:
        setup.activity.events.append(RuntimeEvent(BATCH_ID, 0, None, "finished",
                                                  {"return_code": 0}))
        setup.activity.cond.notify_all()
    setup.activity.finish()
    assert running.join() is None
    assert out.result(timeout=0).success
    assert seen == [(5, 10)]


def test_a_script_runs_once() -> None:
    setup = Setup()
    script = setup.ctx.new_script()
    assert script.run("/bin/true").cancel()
    setup.start(script).join()
    with pytest.raises(RuntimeError, match="only once"):
        setup.start(script).join()


def _booted_echo() -> tuple[Setup, list[int], Any, Execution]:
    """A runner with deploy and start pending, executing a one-command script (sent)."""
    setup, booted = Setup(), []
    boot = setup.ctx.new_script()
    boot.deploy()
    boot.start()
    setup.runner.boot_with(boot.seal(), lambda: booted.append(1))
    script = setup.ctx.new_script()
    out = script.run("/bin/echo", "hi")
    running = setup.start(script)
    setup.activity.wait_for(batches=1)
    return setup, booted, out, running


def test_boot_commands_ride_ahead_of_the_first_script_in_one_exec_and_one_poll() -> None:
    setup, booted, out, running = _booted_echo()
    for _ in range(3):
        setup.activity.finish(stdout="hi\n")
    assert running.join() is None
    assert out.result(timeout=0).index == 0 and out.result().stdout == "hi\n"
    assert [next(iter(c)) for c in setup.activity.batches[0]] == ["deploy", "start", "run"]
    assert setup.activity.polls == [Poll(WINDOW, 2)]  # straight to the script's command
    assert booted == [1]
    sent = [e for e in setup.events if isinstance(e, ScriptSent)]
    assert [e.commands for e in sent] == [1]
    second = setup.ctx.new_script()
    again = second.run("/bin/echo", "again")
    running = setup.start(second)
    setup.activity.wait_for(batches=2)
    setup.activity.finish(stdout="again\n")
    assert running.join() is None and again.result(timeout=0).index == 0
    assert [next(iter(c)) for c in setup.activity.batches[1]] == ["run"]
    assert booted == [1]


def test_a_failed_deploy_raises_boot_failed_and_the_script_never_ran() -> None:
    setup, booted, out, running = _booted_echo()
    setup.activity.finish(ok=False, message="image not found")
    with pytest.raises(BootFailed, match="deploy failed on alice"):
        running.join()
    with pytest.raises(CommandFailed, match="deploy failed"):
        out.result(timeout=0)
    assert booted == []
    assert [p.command_index for p in setup.activity.polls][-1] == 0  # polled one by one
