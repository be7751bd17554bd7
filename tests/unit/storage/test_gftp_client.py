"""GftpStorage against a fake gftp program written by the test (protocol, errors, crash)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

from golemsync import StorageError
from golemsync.storage import GftpStorage

FAKE = r'''
import json, os, sys, hashlib
mode = os.environ.get("FAKE_MODE", "normal")
log = open(os.environ["FAKE_LOG"], "a")
for line in sys.stdin:
    req = json.loads(line)
    log.write(json.dumps(req) + "\n"); log.flush()
    method, params, ident = req["method"], req.get("params"), req.get("id")
    if mode == "die" and method == "publish":
        sys.stderr.write("fake gftp: out of cheese\n"); sys.stderr.flush(); sys.exit(3)
    if mode == "garbage" and method == "publish":
        print("this is not json", flush=True); continue
    if mode == "error" and method == "publish":
        out = {"jsonrpc": "2.0", "id": ident, "error": {"code": -32000, "message": "No such file"}}
    elif method == "version":
        out = {"jsonrpc": "2.0", "id": ident, "result": "0.0.1 (fake)"}
    elif method == "publish":
        name = hashlib.sha3_256(open(params["files"][0], "rb").read()).hexdigest()
        out = {"jsonrpc": "2.0", "id": ident,
               "result": [{"file": params["files"][0], "url": "gftp://0xfake/" + name}]}
    elif method == "receive":
        open(params["output_file"], "wb").close()
        out = {"jsonrpc": "2.0", "id": ident,
               "result": {"file": params["output_file"], "url": "gftp://0xfake/slot"}}
    elif method == "close":
        out = {"jsonrpc": "2.0", "id": ident, "result": ["ok" for _ in params["urls"]]}
    elif method == "shutdown":
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": ident, "result": "ok"}) + "\r\n")
        sys.stdout.flush(); break
    sys.stdout.write(json.dumps(out) + "\r\n"); sys.stdout.flush()
'''


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Path]:
    script = tmp_path / "fake_gftp.py"
    script.write_text(FAKE)
    log = tmp_path / "requests.log"
    monkeypatch.setenv("FAKE_LOG", str(log))
    return [sys.executable, str(script)], log


def requests_of(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def storage(argv: list[str], mode: str = "normal") -> GftpStorage:
    import os

    return GftpStorage(argv, env={**os.environ, "FAKE_MODE": mode}, request_timeout=10)


def test_protocol_framing_and_ref_counted_close(fake: tuple[list[str], Path],
                                                tmp_path: Path) -> None:
    argv, log = fake
    data = tmp_path / "data.txt"
    data.write_text("content")
    gftp = storage(argv)
    first, second = gftp.publish_file(data), gftp.publish_file(data)
    assert first.url == second.url and first.url.startswith("gftp://0xfake/")
    first.release()
    assert [r["method"] for r in requests_of(log)] == ["version", "publish", "publish"]
    second.release()
    gftp.close()
    sent = requests_of(log)
    assert [r["method"] for r in sent] == ["version", "publish", "publish", "close", "shutdown"]
    assert all(r["jsonrpc"] == "2.0" and isinstance(r["params"], dict) for r in sent)
    assert sent[0]["params"] == {} and sent[3]["params"] == {"urls": [first.url]}
    assert gftp.version == "0.0.1 (fake)"


def test_receive_moves_the_file_into_place_only_on_success(fake: tuple[list[str], Path],
                                                           tmp_path: Path) -> None:
    argv, _ = fake
    gftp = storage(argv)
    target = tmp_path / "new" / "dir" / "out.txt"
    slot = gftp.receive_file(target)
    slot.path.write_text("done")
    assert slot.finish(True) == target and target.read_text() == "done"
    failed = gftp.receive_file(tmp_path / "never.txt")
    failed.finish(False)
    assert not (tmp_path / "never.txt").exists() and not failed.path.exists()
    gftp.close()


def test_publish_bytes_cleans_its_temporary_file(fake: tuple[list[str], Path]) -> None:
    argv, log = fake
    gftp = storage(argv)
    published = gftp.publish_bytes(b"abc")
    temp = Path(requests_of(log)[-1]["params"]["files"][0])  # type: ignore[index]
    assert temp.read_bytes() == b"abc"
    published.release()
    assert not temp.exists()
    gftp.close()


def test_unreadable_file_fails_before_anything_is_sent(fake: tuple[list[str], Path],
                                                       tmp_path: Path) -> None:
    argv, log = fake
    gftp = storage(argv)
    with pytest.raises(StorageError, match="not a readable file"):
        gftp.publish_file(tmp_path / "absent")
    assert not log.exists()  # the program was not even started
    gftp.close()


def test_error_reply(fake: tuple[list[str], Path], tmp_path: Path) -> None:
    argv, _ = fake
    (tmp_path / "f").write_text("x")
    gftp = storage(argv, "error")
    with pytest.raises(StorageError, match=r"No such file \(code -32000\)"):
        gftp.publish_file(tmp_path / "f")
    gftp.close()


def test_a_dying_program_reports_its_stderr(fake: tuple[list[str], Path], tmp_path: Path) -> None:
    argv, _ = fake
    (tmp_path / "f").write_text("x")
    gftp = storage(argv, "die")
    with pytest.raises(StorageError, match="out of cheese"):
        gftp.publish_file(tmp_path / "f")
    gftp.close()


def test_garbage_output_is_a_storage_error(fake: tuple[list[str], Path], tmp_path: Path) -> None:
    argv, _ = fake
    (tmp_path / "f").write_text("x")
    gftp = storage(argv, "garbage")
    with pytest.raises(StorageError, match="not JSON-RPC"):
        gftp.publish_file(tmp_path / "f")
    gftp.close()


def test_missing_program_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    gftp = GftpStorage("gftp-that-does-not-exist")
    with pytest.raises(StorageError, match="PATH"):
        gftp.publish_file(tmp_path / "f")
    gftp.close()


def test_many_threads_share_one_program(fake: tuple[list[str], Path], tmp_path: Path) -> None:
    argv, _ = fake
    gftp = storage(argv)
    urls: list[str] = []
    lock = threading.Lock()

    def publish(i: int) -> None:
        path = tmp_path / f"f{i}"
        path.write_text(str(i))
        for _ in range(5):
            published = gftp.publish_file(path)
            with lock:
                urls.append(published.url)
            published.release()

    threads = [threading.Thread(target=publish, args=(i,), name=f"t{i}") for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(urls) == 40 and len(set(urls)) == 8
    gftp.close()
