"""Files to a provider's volume and back by the real route (see conftest.py).

golemsync binds ``/public/gftp/<name>`` on the requestor node through its GSB API; the
provider program's exe-unit calls it over the Golem net: its node's service bus
(``golemsync.localnet.bus``), the hub's central net, the requestor node's net module.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from localnet_helpers import PAYLOAD, golem_on

from golemsync import CommandFailed, Script, Task, WorkContext
from golemsync.devnet.gsb import GsbCallError
from golemsync.localnet import Localnet
from golemsync.localnet.bus import BusClient, RemoteGftp
from golemsync.storage import GsbStorage

pytestmark = pytest.mark.timeout(240)


def test_a_file_goes_there_and_back_with_its_hash_checked(
        localnet: Localnet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOLEMSYNC_STORAGE", raising=False)
    monkeypatch.delenv("GOLEMSYNC_GFTP", raising=False)
    data = os.urandom(3 * (1 << 20) + 4321)  # many 40 KiB chunks, the last one short
    source = tmp_path / "big.bin"
    source.write_bytes(data)

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=120)
            script.send_file(source, "/golem/input/big.bin")
            digest = script.run("/bin/sh", "-c", "sha256sum /golem/input/big.bin | cut -c1-64")
            script.run("/bin/sh", "-c", "head -c 100000 /golem/input/big.bin > /golem/output/h")
            back = script.download_file("/golem/input/big.bin", tmp_path / "back" / "big.bin")
            head = script.download_bytes("/golem/output/h")
            yield script
            task.accept_result((digest.result().stdout.strip(), back.result(), head.result()))

    with golem_on(localnet) as golem:
        assert isinstance(golem.storage(), GsbStorage)
        (task,) = list(golem.execute_tasks(worker, ["x"], PAYLOAD, max_workers=1))
    remote_digest, back, head = task.result
    assert remote_digest == hashlib.sha256(data).hexdigest()  # it reached the volume intact
    assert back.read_bytes() == data  # and came back through the requestor's receive slot
    assert head == data[:100_000]  # a file made there came back too
    assert not list((tmp_path / "back").glob(".*part*"))  # no partial file left


def test_a_missing_remote_file_fails_the_command_and_leaves_nothing(
        localnet: Localnet, tmp_path: Path) -> None:
    outcome: dict[str, Any] = {}

    def worker(ctx: WorkContext, tasks: Iterator[Task[Any]]) -> Iterator[Script]:
        for task in tasks:
            script = ctx.new_script(timeout=60)
            outcome["future"] = script.download_file("/golem/output/nothing", tmp_path / "got")
            try:
                yield script
            except CommandFailed as exc:
                outcome["error"] = exc
                task.reject_result("no output", retry=False)

    with golem_on(localnet) as golem:
        list(golem.execute_tasks(worker, ["x"], PAYLOAD, max_workers=1))
    assert "Transfer error" in str(outcome["error"])
    with pytest.raises(CommandFailed):
        outcome["future"].result()
    assert list(tmp_path.iterdir()) == []


def test_the_bus_client_reaches_a_published_file_and_is_refused_an_unknown_one(
        localnet: Localnet, tmp_path: Path) -> None:
    """The wire itself: Hello, CallRequest/CallReply, {"Ok"}/{"Err"} results, refusals."""
    data = os.urandom(100_000)
    source = tmp_path / "f.bin"
    source.write_bytes(data)
    with golem_on(localnet) as golem:
        storage = golem.storage()
        published = storage.publish_file(source)
        try:
            url = published.url.split(":", 3)[3]  # drop the hash:sha3:<hex>: prefix
            with BusClient(localnet.provider_nodes[0].gsb_url) as bus:
                assert bus.server_hello is not None and bus.server_hello[0]
                gftp = RemoteGftp(bus)
                service = gftp.gftp_service(url)
                assert service is not None
                assert service.call("GetMetadata", {}).result(30) == {"fileSize": len(data)}
                calls: list[Future[Any]] = [
                    service.call("GetChunk", {"offset": o, "size": 40960})
                    for o in range(0, len(data), 40960)]
                got = b"".join(c.result(30)["content"] for c in calls)
                assert got == data
                with pytest.raises(GsbCallError, match="ReadError"):
                    service.call("GetChunk", {"offset": len(data) + 1, "size": 10}).result(30)
                unknown = gftp.gftp_service(url.rsplit("/", 1)[0] + "/no-such-name")
                assert unknown is not None
                with pytest.raises(GsbCallError):
                    unknown.call("GetMetadata", {}).result(30)
        finally:
            published.release()
