from __future__ import annotations

from typing import Any

import pytest

from golemsync.context import WorkContext
from golemsync.errors import CommandFailed
from golemsync.script import result_from_wire


def make_ctx() -> WorkContext:
    def no_storage() -> Any:
        raise AssertionError("storage not expected")

    return WorkContext("0xprov", "alice", "ag", "act", _execute=lambda s: None,
                       _storage=no_storage)


def test_run_builds_exescript_with_capture() -> None:
    script = make_ctx().new_script()
    script.run("/bin/sh", "-c", "echo hi")
    assert script._begin() == [
        {"run": {"entry_point": "/bin/sh", "args": ["-c", "echo hi"],
                 "capture": {"stdout": {"atEnd": {}}, "stderr": {"atEnd": {}}}}}
    ]


def test_run_env_goes_through_usr_bin_env() -> None:
    script = make_ctx().new_script()
    script.run("/bin/date", "-u", env={"TZ": "UTC"})
    (command,) = script._begin()
    assert command["run"]["entry_point"] == "/usr/bin/env"
    assert command["run"]["args"] == ["TZ=UTC", "/bin/date", "-u"]


def test_run_needs_absolute_path() -> None:
    with pytest.raises(ValueError, match="absolute path"):
        make_ctx().new_script().run("date")


def test_futures_resolve_in_order_and_later_commands_say_they_never_ran() -> None:
    script = make_ctx().new_script()
    first = script.run("/bin/true")
    second = script.run("/bin/false")
    third = script.run("/bin/echo", "never")
    script._begin()
    script._resolve(0, result_from_wire("run", 0, True, "", None, None))
    assert first.result().exit_code == 0
    script._resolve(1, result_from_wire("run", 1, False, None, "oops",
                                        "ExeScript command exited with code 3"))
    script._abandon(2, "command 1 before it failed")
    with pytest.raises(CommandFailed) as failed:
        second.result()
    assert failed.value.index == 1 and failed.value.provider == "alice"
    with pytest.raises(CommandFailed, match="did not run"):
        third.result()
    assert script._first_error() is failed.value


def test_cancelled_command_is_never_sent() -> None:
    script = make_ctx().new_script()
    keep = script.run("/bin/echo", "a")
    dropped = script.run("/bin/echo", "b")
    assert dropped.cancel()
    batch = script._begin()
    assert len(batch) == 1 and batch[0]["run"]["args"] == ["a"]
    assert keep.running()


def test_script_runs_once_and_is_frozen_after_sending() -> None:
    script = make_ctx().new_script()
    script.run("/bin/true")
    script._begin()
    with pytest.raises(RuntimeError):
        script.run("/bin/true")
    with pytest.raises(RuntimeError):
        script._begin()


def test_exit_code_parsed_from_message() -> None:
    result = result_from_wire("run", 0, False, None, None, "ExeScript command exited with code 42")
    assert result.exit_code == 42 and not result.success
    assert result_from_wire("deploy", 0, True, None, None, None).exit_code is None


def test_finish_hook_failure_fails_the_future() -> None:
    script = make_ctx().new_script()

    def explode(result: Any) -> Any:
        raise ValueError("bad json")

    future = script.add("run", {"entry_point": "/bin/true"}, finish=explode)
    script._begin()
    script._resolve(0, result_from_wire("run", 0, True, "x", None, None))
    with pytest.raises(ValueError, match="bad json"):
        future.result()
