from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import golemsync
from golemsync.command import Command, result_from_wire
from golemsync.context import WorkContext
from golemsync.errors import CommandFailed
from golemsync.script import Script


def make_ctx() -> WorkContext:
    def no_storage() -> Any:
        raise AssertionError("storage not expected")

    return WorkContext("0xprov", "alice", "ag", "act", _execute=lambda s: None,
                       _storage=no_storage)


def begin(script: Script) -> list[Command]:
    """What the engine does as it sends a script: seal it, start the commands not cancelled."""
    return [command for command in script.seal() if command.start()]


def wire(script: Script) -> list[dict[str, Any]]:
    return [command.wire() for command in begin(script)]


def test_run_builds_exescript_with_capture() -> None:
    script = make_ctx().new_script()
    script.run("/bin/sh", "-c", "echo hi")
    assert wire(script) == [
        {"run": {"entry_point": "/bin/sh", "args": ["-c", "echo hi"],
                 "capture": {"stdout": {"atEnd": {}}, "stderr": {"atEnd": {}}}}}
    ]


def test_run_env_goes_through_usr_bin_env() -> None:
    script = make_ctx().new_script()
    script.run("/bin/date", "-u", env={"TZ": "UTC"})
    (command,) = wire(script)
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
    commands = begin(script)
    commands[0].settle(result_from_wire("run", 0, True, "", None, None))
    assert first.result().exit_code == 0
    commands[1].settle(result_from_wire("run", 1, False, None, "oops",
                                        "ExeScript command exited with code 3"))
    for command in commands[2:]:
        command.abandon("command 1 before it failed")
    with pytest.raises(CommandFailed) as failed:
        second.result()
    assert failed.value.index == 1 and failed.value.provider == "alice"
    with pytest.raises(CommandFailed, match="did not run"):
        third.result()
    assert next(c.error for c in commands if c.error is not None) is failed.value


def test_cancelled_command_is_never_sent() -> None:
    script = make_ctx().new_script()
    keep = script.run("/bin/echo", "a")
    dropped = script.run("/bin/echo", "b")
    assert dropped.cancel()
    batch = wire(script)
    assert len(batch) == 1 and batch[0]["run"]["args"] == ["a"]
    assert keep.running()


def test_script_runs_once_and_is_frozen_after_sending() -> None:
    script = make_ctx().new_script()
    script.run("/bin/true")
    begin(script)
    with pytest.raises(RuntimeError):
        script.run("/bin/true")
    with pytest.raises(RuntimeError):
        script.seal()


def test_exit_code_parsed_from_message() -> None:
    result = result_from_wire("run", 0, False, None, None, "ExeScript command exited with code 42")
    assert result.exit_code == 42 and not result.success
    assert result_from_wire("deploy", 0, True, None, None, None).exit_code is None


def test_finish_hook_failure_fails_the_future() -> None:
    script = make_ctx().new_script()

    def explode(result: Any) -> Any:
        raise ValueError("bad json")

    future = script.add("run", {"entry_point": "/bin/true"}, finish=explode)
    (command,) = begin(script)
    command.settle(result_from_wire("run", 0, True, "x", None, None))
    with pytest.raises(ValueError, match="bad json"):
        future.result()


def test_command_settles_once_and_abandon_is_idempotent() -> None:
    script = make_ctx().new_script()
    future = script.run("/bin/true")
    (command,) = begin(script)
    assert future.running() and command.error is None
    command.settle(result_from_wire("run", 0, True, "", None, None))
    with pytest.raises(RuntimeError):
        command.settle(result_from_wire("run", 0, True, "", None, None))
    command.abandon("late")
    assert future.result().success and command.error is None


def test_abandoning_an_unstarted_command_fails_it_unless_cancelled() -> None:
    script = make_ctx().new_script()
    waiting = script.run("/bin/true")
    cancelled = script.run("/bin/true")
    assert cancelled.cancel()
    for command in script.seal():
        command.abandon("StorageError: no gftp")
    with pytest.raises(CommandFailed, match="did not run: StorageError: no gftp"):
        waiting.result(timeout=0)
    assert cancelled.cancelled()


def test_cleanup_runs_once() -> None:
    script = make_ctx().new_script()
    calls: list[bool] = []
    script.add("run", {"entry_point": "/bin/true"}, cleanup=calls.append)
    (command,) = begin(script)
    command.release(True)
    command.release(False)
    assert calls == [True]


def test_scripts_and_commands_do_not_import_the_context() -> None:
    """No import cycle: a script needs only a provider name and a storage getter."""
    package = Path(golemsync.__file__).parent
    for name in ("script.py", "command.py"):
        tree = ast.parse((package / name).read_text())
        imported = {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module}
        assert not {"context", "execution", "worker"} & imported, name
