"""Jobs whose files move through the GSB API (the devnet's default storage)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from jobs import PAYLOAD, golem_for

from golemsync import CommandFailed, Script, Task, WorkContext
from golemsync.devnet import Devnet
from golemsync.devnet.gsb import GsbService
from golemsync.storage import GsbStorage, Published, Receiving
from golemsync.storage import factory as storage_factory

pytestmark = pytest.mark.e2e


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every component the devnet's exe-units call on bound services."""
    seen: list[str] = []
    original = GsbService.call

    def spy(self: GsbService, component: str, payload: Any) -> Any:
        seen.append(component)
        return original(self, component, payload)

    monkeypatch.setattr(GsbService, "call", spy)
    monkeypatch.delenv("GOLEMSYNC_STORAGE", raising=False)
    monkeypatch.delenv("GOLEMSYNC_GFTP", raising=False)
    return seen


def test_a_few_mib_go_there_and_back_with_their_hashes_checked(
        devnet: Devnet, tmp_path: Path, calls: list[str]) -> None:
    data = os.urandom(5 * (1 << 20) + 777)
    source = tmp_path / "big.bin"
    source.write_bytes(data)

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=60)
            script.send_file(source, "/golem/input/big.bin")
            digest = script.run("/bin/sh", "-c", "sha256sum /golem/input/big.bin | cut -c1-64")
            back = script.download_file("/golem/input/big.bin", tmp_path / "back" / "big.bin")
            yield script
            task.accept_result((digest.result().stdout, back.result()))

    with golem_for(devnet) as golem:
        assert isinstance(golem.storage(), GsbStorage)
        (task,) = golem.execute_tasks(worker, ["x"], PAYLOAD, max_workers=1)
    remote_digest, back = task.result
    assert remote_digest.strip() == hashlib.sha256(data).hexdigest()
    assert back.read_bytes() == data
    assert calls[0] == "GetMetadata" and calls.count("GetChunk") == -(-len(data) // 40960)
    assert calls.count("UploadChunk") == -(-len(data) // 40960)
    assert calls[-1] == "UploadFinished"
    assert devnet._node is not None and devnet._node.gsb._services == {}  # all unbound


class Forgetful(GsbStorage):
    """Unbinds its services at once, as if the daemon had lost them."""

    def publish_file(self, path: Path) -> Published:
        published = super().publish_file(path)
        published.release()
        return Published(published.url, lambda: None)

    def receive_file(self, path: Optional[Path]) -> Receiving:
        receiving = super().receive_file(path)
        for service in list(self._services.values()):
            self._stop(service)
        return receiving


def test_a_service_that_is_gone_fails_its_command_cleanly(
        devnet: Devnet, tmp_path: Path, calls: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_factory, "GsbStorage", Forgetful)
    source = tmp_path / "in.txt"
    source.write_text("hello")
    errors: list[str] = []

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=30)
            if task.data == "send":
                script.send_file(source, "/golem/input/in.txt")
            else:
                script.run("/bin/sh", "-c", "echo out > /golem/output/o")
                script.download_file("/golem/output/o", tmp_path / "out" / "o")
            try:
                yield script
            except CommandFailed as exc:
                errors.append(str(exc))
                task.reject_result("transfer failed", retry=False)
            else:
                task.accept_result("ok")

    with golem_for(devnet) as golem:
        done = {t.data: t for t in golem.execute_tasks(worker, ["send", "receive"], PAYLOAD,
                                                       max_workers=2)}
    assert all(t.error is not None for t in done.values())
    assert len(errors) == 2
    assert any("Transfer error" in e and "is not published" in e for e in errors), errors
    assert any("Transfer error" in e and "is not a receive slot" in e for e in errors), errors
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_transfers_survive_injected_http_errors(make_devnet: Any, tmp_path: Path,
                                                calls: list[str]) -> None:
    net = make_devnet(providers=2, http_error_rate=0.2)
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(100_000))

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=60)
            script.send_file(source, "/golem/input/in.bin")
            back = script.download_bytes("/golem/input/in.bin")
            yield script
            task.accept_result(back.result() == source.read_bytes())

    with golem_for(net) as golem:
        done = list(golem.execute_tasks(worker, range(6), PAYLOAD, max_workers=2))
    assert [t.result for t in done] == [True] * 6
    assert "UploadFinished" in calls
