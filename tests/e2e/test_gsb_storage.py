"""GsbStorage against a devnet: the client's side of gftp over the GSB API.

The provider's side is played by the devnet's own registry (the calls its exe-unit makes),
so every message crosses the real REST API and WebSocket.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from golemsync import StorageError
from golemsync.config import Config
from golemsync.devnet import Devnet
from golemsync.devnet.gsb import GsbCallError, GsbService
from golemsync.rest.yagna import YagnaClient
from golemsync.storage import GsbStorage

pytestmark = pytest.mark.e2e

URL = re.compile(r"hash:sha3:(?P<hash>[0-9a-f]{64}):gftp://(?P<node>0x[0-9a-f]{40})/"
                 r"(?P<name>[0-9a-f-]{36})")


@pytest.fixture
def client(devnet: Devnet) -> Iterator[YagnaClient]:
    with YagnaClient(Config(app_key=devnet.app_key, api_url=devnet.url)) as c:
        yield c


@pytest.fixture
def storage(client: YagnaClient) -> Iterator[GsbStorage]:
    store = GsbStorage(client)
    yield store
    store.close()


def bound(net: Devnet, url: str) -> GsbService:
    assert net._node is not None
    service = net._node.gsb.gftp_service(url.rsplit(":", 1)[-1] if "hash:" in url else url)
    assert service is not None, url
    return service


def plain_url(url: str) -> str:
    return url.split(":", 3)[-1] if url.startswith("hash:") else url


def wait(call: Future[Any]) -> Any:
    return call.result(10)


def test_a_published_file_is_served_in_chunks_under_its_hash(devnet: Devnet, tmp_path: Path,
                                                              storage: GsbStorage) -> None:
    data = os.urandom(300_000)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    published = storage.publish_file(source)
    match = URL.fullmatch(published.url)
    assert match, published.url
    assert match["hash"] == hashlib.sha3_256(data).hexdigest()
    assert match["node"] == devnet.node_id.lower()
    service = bound(devnet, plain_url(published.url))
    assert service.address == f"/public/gftp/{match['name']}"
    assert wait(service.call("GetMetadata", {})) == {"fileSize": len(data)}
    chunks = [service.call("GetChunk", {"offset": off, "size": 65536})
              for off in range(0, len(data), 65536)]
    got = b"".join(wait(c)["content"] for c in chunks)
    assert got == data
    tail = wait(service.call("GetChunk", {"offset": len(data), "size": 10}))
    assert tail == {"offset": len(data), "content": b""}
    published.release()
    published.release()  # idempotent
    assert devnet._node is not None and devnet._node.gsb.find(service.address) is None


def test_bad_chunk_requests_are_answered_with_read_errors(devnet: Devnet,
                                                          storage: GsbStorage) -> None:
    published = storage.publish_bytes(b"0123456789")
    service = bound(devnet, plain_url(published.url))
    with pytest.raises(GsbCallError, match="ReadError: offset 11 is past the end"):
        wait(service.call("GetChunk", {"offset": 11, "size": 1}))
    with pytest.raises(GsbCallError, match="ReadError: chunks are limited"):
        wait(service.call("GetChunk", {"offset": 0, "size": 1 << 40}))
    assert wait(service.call("GetChunk", {"offset": 8, "size": 100}))["content"] == b"89"
    published.release()


def test_the_same_content_twice_is_two_services(devnet: Devnet, storage: GsbStorage) -> None:
    first, second = storage.publish_bytes(b"same"), storage.publish_bytes(b"same")
    assert URL.fullmatch(first.url)["hash"] == URL.fullmatch(second.url)["hash"]  # type: ignore
    assert first.url != second.url
    first.release()
    assert wait(bound(devnet, plain_url(second.url)).call("GetMetadata", {})) == {"fileSize": 4}
    second.release()


def upload(service: GsbService, data: bytes, chunk: int = 40960) -> None:
    calls = [service.call("UploadChunk", {"chunk": {"offset": off,
                                                    "content": data[off:off + chunk]}})
             for off in range(0, len(data), chunk)][::-1]  # answered in any order
    for call in calls:
        assert wait(call) is None


def test_a_receive_slot_writes_chunks_and_checks_the_hash(devnet: Devnet, tmp_path: Path,
                                                          storage: GsbStorage) -> None:
    data = os.urandom(200_000)
    target = tmp_path / "deep" / "out.bin"
    receiving = storage.receive_file(target)
    assert receiving.url.startswith(f"gftp://{devnet.node_id.lower()}/")
    service = bound(devnet, receiving.url)
    upload(service, data)
    assert wait(service.call("UploadFinished",
                             {"hash": hashlib.sha3_256(data).hexdigest()})) is None
    assert receiving.finish(True) == target and target.read_bytes() == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]
    assert devnet._node is not None and devnet._node.gsb.find(service.address) is None


def test_a_wrong_hash_is_an_integrity_error_and_nothing_is_kept(
        devnet: Devnet, tmp_path: Path, storage: GsbStorage) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"older content")
    receiving = storage.receive_file(target)
    service = bound(devnet, receiving.url)
    upload(service, b"payload")
    with pytest.raises(GsbCallError, match="IntegrityError"):
        wait(service.call("UploadFinished", {"hash": "0" * 64}))
    with pytest.raises(StorageError, match="hash mismatch"):
        receiving.finish(True)  # the provider claims success; the content says otherwise
    assert target.read_bytes() == b"older content"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_failed_download_leaves_nothing(devnet: Devnet, tmp_path: Path,
                                          storage: GsbStorage) -> None:
    receiving = storage.receive_file(tmp_path / "never.bin")
    upload(bound(devnet, receiving.url), b"half")
    receiving.finish(False)
    assert list(tmp_path.iterdir()) == []


def test_an_upload_without_its_end_is_not_taken_for_complete(
        devnet: Devnet, tmp_path: Path, storage: GsbStorage) -> None:
    receiving = storage.receive_file(tmp_path / "partial.bin")
    upload(bound(devnet, receiving.url), b"half")
    with pytest.raises(StorageError, match="never finished"):
        receiving.finish(True)
    assert list(tmp_path.iterdir()) == []


def test_close_unbinds_everything_and_refuses_more(devnet: Devnet, tmp_path: Path,
                                                   client: YagnaClient) -> None:
    storage = GsbStorage(client)
    published = storage.publish_bytes(b"x")
    receiving = storage.receive_file(tmp_path / "r.bin")
    services = [bound(devnet, plain_url(published.url)), bound(devnet, receiving.url)]
    storage.close()
    storage.close()
    assert devnet._node is not None
    assert [devnet._node.gsb.find(s.address) for s in services] == [None, None]
    with pytest.raises(StorageError, match="closed"):
        storage.publish_bytes(b"y")
    published.release()  # after close: no error
    receiving.finish(False)


def test_unreadable_files_are_refused_before_anything_is_bound(
        devnet: Devnet, tmp_path: Path, storage: GsbStorage) -> None:
    with pytest.raises(StorageError, match="cannot publish .*: not a readable file"):
        storage.publish_file(tmp_path / "absent")
    with pytest.raises(StorageError, match="not a readable file"):
        storage.publish_file(tmp_path)  # a directory
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(StorageError, match="not a readable file"):
        storage.publish_file(tmp_path / "fifo")  # must not block waiting for a writer
    unreadable = tmp_path / "secret"
    unreadable.write_bytes(b"x")
    unreadable.chmod(0)
    if not os.access(unreadable, os.R_OK):  # root reads anything
        with pytest.raises(StorageError, match="cannot publish .*Permission denied"):
            storage.publish_file(unreadable)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageError, match="cannot receive into"):
        storage.receive_file(tmp_path / "file" / "below-a-file")
    assert devnet._node is not None and devnet._node.gsb._services == {}


def test_a_daemon_without_the_gsb_api_is_a_clear_storage_error(devnet: Devnet,
                                                               client: YagnaClient) -> None:
    broken = YagnaClient(Config(app_key=devnet.app_key, api_url=devnet.url + "/nowhere"))
    store = GsbStorage(broken)
    try:
        store._node_id = devnet.node_id  # /me would fail first under the bogus prefix
        with pytest.raises(StorageError, match="no GSB API"):
            store.publish_bytes(b"x")
    finally:
        store.close()
        broken.close()
