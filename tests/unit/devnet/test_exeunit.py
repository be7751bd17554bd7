"""The devnet exe-unit with real subprocesses: state machine, results, capture, sandbox, faults."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from units import BOOT, finish, run, sh

from golemsync.devnet import gftpstore
from golemsync.devnet.capture import MAX_KEPT
from golemsync.devnet.errors import BatchNotFound, ResultsTimeout


def test_state_machine_and_the_daemons_messages(make_unit: Any) -> None:
    unit = make_unit()
    (early,) = finish(unit, [sh("true")])
    assert early["result"] == "Error"
    assert early["message"] == ("State error: Activity is initialized - deploy() command is "
                                "expected now")
    assert [r["result"] for r in finish(unit, BOOT)] == ["Ok", "Ok"]
    assert unit.state() == ("Ready", None)
    (again,) = finish(unit, [{"deploy": {}}])
    assert again["message"] == "State error: Cannot send command after a successful start()"
    assert finish(unit, [{"terminate": {}}])[0]["result"] == "Ok"
    assert unit.state() == ("Initialized", None)


def test_first_failure_ends_the_batch(make_unit: Any) -> None:
    unit = make_unit()
    results = finish(unit, [*BOOT, sh("exit 4"), sh("echo never")])
    assert [r["index"] for r in results] == [0, 1, 2]
    failed = results[-1]
    assert failed["result"] == "Error" and failed["isBatchFinished"]
    assert failed["message"] == "ExeScript command exited with code 4"


def test_a_poll_past_a_failed_command_waits_out_its_timeout(make_unit: Any) -> None:
    """The daemon's quirk (PROTOCOL §4.6), the devnet's default: only a poll for the failed
    command itself answers at once; one for a later command (or for the whole batch) waits its
    whole window, then gives what there is (or 408 with a commandIndex)."""
    unit = make_unit(quick=False)
    finish(unit, BOOT)
    batch = unit.exec([sh("echo one"), sh("exit 4"), sh("echo never")])
    failed = unit.results(batch, 300, 1)  # the pytest timeout fails this if it waited
    assert [r["result"] for r in failed] == ["Ok", "Error"]
    began = time.monotonic()
    items = unit.results(batch, 0.5, None)
    assert time.monotonic() - began >= 0.5
    assert [r["result"] for r in items] == ["Ok", "Error"] and items[-1]["isBatchFinished"]
    began = time.monotonic()
    with pytest.raises(ResultsTimeout):
        unit.results(batch, 0.5, 2)
    assert time.monotonic() - began >= 0.5


def test_quick_failed_poll_answers_at_once(make_unit: Any) -> None:
    unit = make_unit(quick=True)
    finish(unit, BOOT)
    batch = unit.exec([sh("echo one"), sh("exit 4"), sh("echo never")])
    items = unit.results(batch, 300, None)  # the pytest timeout fails this if it waited
    assert [r["result"] for r in items] == ["Ok", "Error"]
    with pytest.raises(ResultsTimeout):
        unit.results(batch, 300, 2)


def test_results_long_poll_rules(make_unit: Any) -> None:
    unit = make_unit()
    finish(unit, BOOT)
    batch = unit.exec([sh("echo one"), sh("sleep 30"), sh("echo three")])
    first = unit.results(batch, 10, 0)
    assert len(first) == 1 and first[0]["stdout"] == "one\n" and first[0]["isBatchFinished"]
    with pytest.raises(ResultsTimeout):
        unit.results(batch, 0.2, 2)
    partial = unit.results(batch, 0.2, None)  # no commandIndex: a timeout is not an error
    assert [r["index"] for r in partial] == [0]
    with pytest.raises(BatchNotFound):
        unit.results("nope", 0, None)


def test_with_command_index_only_that_item_carries_output(make_unit: Any) -> None:
    unit = make_unit()
    finish(unit, BOOT)
    batch = unit.exec([sh("echo a"), sh("echo b"), sh("echo c")])
    unit.results(batch, 10, None)
    items = unit.results(batch, 1, 1)
    assert [i["stdout"] for i in items] == [None, "b\n"]
    assert items[-1]["isBatchFinished"]


@pytest.mark.parametrize("mode, expected", [
    ({"atEnd": {}}, "0123456789"),
    ({"atEnd": {"head": 3}}, "012"),
    ({"atEnd": {"tail": 3}}, "789"),
    ({"atEnd": {"headTail": 5}}, "012" + "89"),
    ({"stream": {"limit": 4}}, "0123"),
    ({"atEnd": {"format": "bin", "head": 2}}, [48, 49]),
])
def test_capture_modes(make_unit: Any, mode: dict[str, Any], expected: Any) -> None:
    unit = make_unit()
    finish(unit, BOOT)
    (result,) = finish(unit, [sh("printf 0123456789", capture={"stdout": mode})])
    assert result["stdout"] == expected and result["stderr"] is None


def test_no_capture_means_null_output(make_unit: Any) -> None:
    unit = make_unit()
    finish(unit, BOOT)
    (result,) = finish(unit, [sh("echo hidden; echo also >&2", capture={})])
    assert result["result"] == "Ok" and result["stdout"] is None and result["stderr"] is None


def test_output_is_bounded(make_unit: Any) -> None:
    unit = make_unit()
    finish(unit, BOOT)
    (result,) = finish(unit, [sh("head -c 40000000 /dev/zero | tr '\\0' x")])
    assert result["result"] == "Ok"
    assert len(result["stdout"]) <= MAX_KEPT


def test_volumes_persist_and_deploy_env_is_seen(make_unit: Any, sandbox_mode: str) -> None:
    unit = make_unit(mode=sandbox_mode)
    finish(unit, [{"deploy": {"env": {"GREETING": "hi"}}}, {"start": {}}])
    finish(unit, [sh("echo $GREETING > /golem/output/x; pwd > /golem/work/where")])
    (result,) = finish(unit, [sh("cat /golem/output/x /golem/work/where")])
    # Only bwrap can show the volumes at their VM paths; the plain modes run in the work
    # volume's host directory (see golemsync/devnet/sandbox.py).
    where = "/golem/work" if sandbox_mode == "bwrap" else str(unit.sandbox.volumes["/golem/work"])
    assert result["stdout"] == f"hi\n{where}\n"


def test_runtime_events_in_order(make_unit: Any) -> None:
    unit = make_unit()
    finish(unit, BOOT)
    batch = unit.exec([sh("echo streamed", capture={"stdout": {"stream": {}}}), sh("true")])
    subscription = unit.subscribe(batch)
    kinds = []
    while len([k for k in kinds if k[1] == "finished"]) < 2:
        event = subscription.get(10)
        assert event is not None and event["batch_id"] == batch
        kinds.append((event["index"], next(iter(event["kind"]))))
    subscription.close()
    assert kinds == [(0, "started"), (0, "stdout"), (0, "finished"), (1, "started"),
                     (1, "finished")]


def test_destroy_kills_running_commands(make_unit: Any, sandbox_mode: str) -> None:
    unit = make_unit(mode=sandbox_mode)
    finish(unit, BOOT)
    batch = unit.exec([sh("sleep 1000")])
    assert unit.results(batch, 0.3, None) == []
    assert unit.running_commands()
    unit.destroy()
    assert unit.state() == ("Terminated", None)
    assert unit.results(batch, 5, None) == []  # the batch never finishes


def test_transfers_between_volumes_and_the_gftp_store(make_unit: Any, tmp_path: Path) -> None:
    unit = make_unit()
    finish(unit, BOOT)
    root = gftpstore.store_root("0xrequestor")
    source = tmp_path / "in.bin"
    source.write_bytes(b"payload" * 1000)
    url = gftpstore.publish(root, "0xrequestor", source)
    slot = gftpstore.receive(root, "0xrequestor", tmp_path / "back.bin")
    unit = make_unit()
    unit._gftp_root = root
    finish(unit, BOOT)
    digest = gftpstore.sha3_file(source)
    results = finish(unit, [
        {"transfer": {"from": f"hash:sha3:{digest}:{url}", "to": "container:/golem/input/x"}},
        {"transfer": {"from": "/golem/input/x", "to": slot}},
    ])
    assert [r["result"] for r in results] == ["Ok", "Ok"]
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
    (outside,) = finish(unit, [{"transfer": {"from": url, "to": "container:/etc/passwd"}}])
    assert outside["message"] == "Transfer error: path not found in container: /etc/passwd"


def test_every_mode_runs_the_same_commands(make_unit: Any, sandbox_mode: str) -> None:
    unit = make_unit(mode=sandbox_mode)
    finish(unit, BOOT)
    (result,) = finish(unit, [sh("echo ok > /golem/output/f; cat /golem/output/f")])
    assert result["stdout"] == "ok\n"
    assert (unit.sandbox.volumes["/golem/output"] / "f").read_text() == "ok\n"


def test_faults_are_reproducible_by_seed(make_unit: Any) -> None:
    def pattern(seed: int) -> list[str]:
        unit = make_unit(seed=seed, fail_rate=0.5)
        finish(unit, BOOT)
        return [finish(unit, [sh("true")])[0]["result"] for _ in range(12)]

    first = pattern(9)
    assert first == pattern(9)
    assert "Error" in first and "Ok" in first


def test_crash_terminates_and_tells_the_devnet(make_unit: Any) -> None:
    unit = make_unit(crash_rate=1.0)
    batch = unit.exec([*BOOT, sh("true")])
    unit.results(batch, 5, None)
    assert unit.state() == ("Terminated", None)
    assert make_unit.crashes


def test_usage_grows(make_unit: Any) -> None:
    unit = make_unit()
    finish(unit, BOOT)
    before = unit.usage()
    finish(unit, [run("/usr/bin/python3", "-c", "sum(range(3_000_000))")])
    after = unit.usage()
    assert after[0] > before[0] and after[1] > before[1]
