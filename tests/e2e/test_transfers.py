"""send_* and download_* end to end: client storage, the devnet exe-unit.

Every test runs twice: with the GSB API (the devnet's default) and with the gftp stand-in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from jobs import PAYLOAD, golem_for

from golemsync import CommandFailed, Script, StorageError, Task, WorkContext
from golemsync.devnet import Devnet

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True, params=["gsb", "gftp"])
def storage_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("GOLEMSYNC_GFTP", raising=False)
    monkeypatch.setenv("GOLEMSYNC_STORAGE", request.param)
    return str(request.param)


def test_every_send_and_download_form(devnet: Devnet, tmp_path: Path) -> None:
    source = tmp_path / "words.txt"
    source.write_text("to be or not to be\n")

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=60)
            script.send_file(source, "/golem/input/words.txt")
            script.send_bytes(b"\x00\x01binary", "/golem/input/blob.bin")
            script.send_json({"task": task.data}, "/golem/input/task.json")
            script.run("/bin/sh", "-c", "wc -w < /golem/input/words.txt > /golem/output/n; "
                       "cp /golem/input/task.json /golem/input/blob.bin /golem/output/")
            as_file = script.download_file("/golem/output/n", tmp_path / "out" / f"{task.data}")
            as_bytes = script.download_bytes("/golem/output/blob.bin")
            as_json = script.download_json("/golem/output/task.json")
            yield script
            task.accept_result((as_file.result().read_text(), as_bytes.result(),
                                as_json.result()))

    with golem_for(devnet) as golem:
        done = {t.data: t.result for t in golem.execute_tasks(worker, ["a", "b"], PAYLOAD,
                                                               max_workers=2)}
    assert done == {name: ("6\n", b"\x00\x01binary", {"task": name}) for name in ("a", "b")}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b"]  # no leftovers


def test_a_missing_local_file_fails_before_sending(devnet: Devnet, tmp_path: Path) -> None:
    ctx = WorkContext("p", "p", "a", "x", _execute=lambda s: None, _storage=lambda: None)
    with pytest.raises(StorageError, match="cannot send"):
        ctx.new_script().send_file(tmp_path / "absent.txt", "/golem/input/x")


def test_missing_remote_file_fails_its_future_and_leaves_nothing(devnet: Devnet,
                                                                 tmp_path: Path) -> None:
    outcome: dict[str, Any] = {}

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=30)
            outcome["future"] = script.download_file("/golem/output/nothing", tmp_path / "got")
            try:
                yield script
            except CommandFailed as exc:
                outcome["error"] = exc
                task.reject_result("no output", retry=False)

    with golem_for(devnet) as golem:
        (task,) = golem.execute_tasks(worker, ["x"], PAYLOAD, max_workers=1)
    assert "path not found" in str(outcome["error"]) or "Transfer error" in str(outcome["error"])
    with pytest.raises(CommandFailed):
        outcome["future"].result()
    assert list(tmp_path.iterdir()) == []


def test_a_path_outside_the_volumes_is_refused(devnet: Devnet) -> None:
    errors: list[str] = []

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=30)
            script.send_bytes(b"x", "/etc/golem-was-here")
            try:
                yield script
            except CommandFailed as exc:
                errors.append(str(exc))
                task.reject_result("refused", retry=False)

    with golem_for(devnet) as golem:
        list(golem.execute_tasks(worker, ["x"], PAYLOAD, max_workers=1))
    assert errors and "path not found in container: /etc/golem-was-here" in errors[0]


def test_concurrent_transfers_from_many_workers(make_devnet: Callable[..., Devnet],
                                                tmp_path: Path) -> None:
    net = make_devnet(providers=4)
    inputs = {}
    for i in range(12):
        path = tmp_path / f"in{i}.bin"
        path.write_bytes(bytes([i]) * (50_000 + i))
        inputs[i] = path

    def worker(ctx: WorkContext, tasks: Iterator[Task[int]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=60)
            script.send_file(inputs[task.data], "/golem/input/data.bin")
            script.run("/bin/sh", "-c", "sha256sum /golem/input/data.bin | cut -c1-64 "
                       "> /golem/output/sum")
            digest = script.download_bytes("/golem/output/sum")
            yield script
            task.accept_result(digest.result().decode().strip())

    with golem_for(net) as golem:
        done = {t.data: t.result for t in golem.execute_tasks(worker, range(12), PAYLOAD,
                                                               max_workers=4)}
    assert done == {i: hashlib.sha256(p.read_bytes()).hexdigest() for i, p in inputs.items()}


def test_progress_callbacks_report_up_to_the_whole_file(devnet: Devnet, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"g" * (8 << 20))
    seen: dict[str, list[tuple[int, Any]]] = {"up": [], "down": []}

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=60)
            script.send_file(big, "/golem/input/big.bin",
                             progress=lambda moved, total: seen["up"].append((moved, total)))
            script.download_file("/golem/input/big.bin", tmp_path / "back.bin",
                                 progress=lambda moved, total: seen["down"].append((moved, total)))
            yield script
            task.accept_result(None)

    with golem_for(devnet) as golem:
        list(golem.execute_tasks(worker, ["x"], PAYLOAD, max_workers=1))
    size = 8 << 20
    for direction in ("up", "down"):
        reports = seen[direction]
        assert reports, direction
        moved = [m for m, _ in reports]
        assert moved == sorted(moved) and moved[-1] == size
        assert reports[-1][1] == size
    assert (tmp_path / "back.bin").stat().st_size == size
