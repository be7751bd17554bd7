"""golemsync-devnet-gftp speaks gftp's JSON-RPC and publishes through the devnet's store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from golemsync.devnet import Devnet, gftpstore

pytestmark = pytest.mark.e2e


def start(devnet: Devnet) -> subprocess.Popen[bytes]:
    env = {**os.environ, **devnet.env}
    return subprocess.Popen([sys.executable, "-m", "golemsync.devnet.gftp_standin", "server"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


def ask(process: subprocess.Popen[bytes], line: str) -> dict[str, object]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(line.encode() + b"\n")
    process.stdin.flush()
    reply = process.stdout.readline()
    assert reply.endswith(b"\r\n")  # gftp ends each reply with CRLF
    return json.loads(reply)  # type: ignore[no-any-return]


def call(process: subprocess.Popen[bytes], method: str, params: object,
         ident: object = 1) -> Any:
    return ask(process, json.dumps({"jsonrpc": "2.0", "id": ident, "method": method,
                                    "params": params}))


def test_publish_receive_close_and_shutdown(devnet: Devnet, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"golem" * 100)
    process = start(devnet)
    try:
        assert call(process, "version", {})["result"] == "0.17.6 (golemsync-devnet-gftp)"
        published = call(process, "publish", {"files": [str(data)]}, "a")
        assert published["id"] == "a"
        url = published["result"][0]["url"]  # type: ignore[index]
        assert url == f"gftp://{devnet.node_id}/{gftpstore.sha3_file(data)}"
        root = gftpstore.store_root(devnet.node_id)
        assert gftpstore.resolve_published(root, url) == data.resolve()
        out = tmp_path / "sub" / "out.bin"
        received = call(process, "receive", {"output_file": str(out)}, 2.5)["result"]
        assert out.exists() and gftpstore.resolve_receive(root, received["url"]) == out
        assert call(process, "close", {"urls": [url]})["result"] == ["ok"]
        assert call(process, "close", {"urls": [url]})["result"] == ["error"]
        assert call(process, "publish", {"files": [str(tmp_path / "nope")]})["error"][
            "code"] == -32000  # type: ignore[index]
        assert call(process, "publish", {"files": []})["error"]["code"] == -32600  # type: ignore[index]
        assert call(process, "frobnicate", {})["error"]["code"] == -32600  # type: ignore[index]
        assert ask(process, "{not json")["error"]["code"] == -32700  # type: ignore[index]
        assert ask(process, json.dumps({"jsonrpc": "1.0", "id": 9, "method": "version"}))[
            "error"]["code"] == -32600  # type: ignore[index]
        assert call(process, "shutdown", {})["result"] == "ok"
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def test_without_a_daemon_it_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "YAGNA_API_URL": "http://127.0.0.1:9", "YAGNA_APPKEY": "k"}
    result = subprocess.run([sys.executable, "-m", "golemsync.devnet.gftp_standin", "server"],
                            input="", capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode != 0 and "cannot reach the devnet" in result.stderr
