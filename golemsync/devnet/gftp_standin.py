"""``golemsync-devnet-gftp``: the devnet's stand-in for the ``gftp`` program.

The real ``gftp`` serves files over the Golem network through the daemon's service bus, which
the devnet does not have. This program speaks the same JSON-RPC on standard input and output
(PROTOCOL §6.1: ``version``, ``publish``, ``receive``, ``close``, ``shutdown``; errors -32700,
-32600 and -32000) and publishes through the devnet's gftp store
(:mod:`golemsync.devnet.gftpstore`), where the devnet's exe-units find the files. Like the
real one it learns its node id from its daemon: ``GET $YAGNA_API_URL/me``.

Usage: ``golemsync-devnet-gftp server`` (JSON-RPC), ``golemsync-devnet-gftp version``,
``golemsync-devnet-gftp publish FILE...``. Requests are handled one at a time.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional, TextIO

from golemsync.devnet import gftpstore

VERSION = "0.17.6 (golemsync-devnet-gftp)"
PARSE_ERROR, INVALID_REQUEST, OPERATION_FAILED = -32700, -32600, -32000


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def node_id() -> str:
    """Ask the daemon (``YAGNA_API_URL``, ``YAGNA_APPKEY``) who we are."""
    base = os.environ.get("YAGNA_API_URL", "http://127.0.0.1:7465").rstrip("/")
    request = urllib.request.Request(f"{base}/me", headers={
        "Authorization": f"Bearer {os.environ.get('YAGNA_APPKEY', '')}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return str(json.load(reply)["identity"])
    except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
        raise SystemExit(f"golemsync-devnet-gftp: cannot reach the devnet at {base} ({exc}); "
                         "set YAGNA_API_URL and YAGNA_APPKEY") from exc


class Server:
    """Executes JSON-RPC methods against the gftp store of one identity."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.root = gftpstore.store_root(identity)
        self.running = True

    def handle(self, method: str, params: dict[str, Any]) -> Any:
        handler = getattr(self, f"rpc_{method}", None)
        if handler is None:
            raise RpcError(INVALID_REQUEST, f"unknown method: {method}")
        try:
            return handler(params)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RpcError(OPERATION_FAILED, f"{method} failed: {exc}") from exc

    def rpc_version(self, params: dict[str, Any]) -> str:
        return VERSION

    def rpc_publish(self, params: dict[str, Any]) -> list[dict[str, str]]:
        files = params["files"]
        if not isinstance(files, list) or not files:
            raise RpcError(INVALID_REQUEST, "publish needs a non-empty list of files")
        return [{"file": str(f), "url": gftpstore.publish(self.root, self.identity, Path(f))}
                for f in files]

    def rpc_receive(self, params: dict[str, Any]) -> dict[str, str]:
        output = str(params["output_file"])
        return {"file": output,
                "url": gftpstore.receive(self.root, self.identity, Path(output))}

    def rpc_close(self, params: dict[str, Any]) -> list[str]:
        return ["ok" if gftpstore.close(self.root, str(url)) else "error"
                for url in params["urls"]]

    def rpc_shutdown(self, params: dict[str, Any]) -> str:
        self.running = False
        return "ok"


def respond(server: Server, line: str) -> dict[str, Any]:
    """Answer one request line with a full JSON-RPC 2.0 envelope."""
    try:
        request = json.loads(line)
    except ValueError as exc:
        return _error(None, PARSE_ERROR, f"parse error: {exc}")
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" \
            or not isinstance(request.get("method"), str):
        ident = request.get("id") if isinstance(request, dict) else None
        return _error(ident, INVALID_REQUEST, "invalid request")
    params = request.get("params") or {}
    if not isinstance(params, dict):
        return _error(request.get("id"), INVALID_REQUEST, "params must be an object")
    try:
        result = server.handle(request["method"], params)
    except RpcError as exc:
        return _error(request.get("id"), exc.code, str(exc))
    return {"jsonrpc": "2.0", "id": request.get("id"), "result": result}


def _error(ident: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}


def serve(server: Server, stdin: TextIO, stdout: TextIO) -> None:
    for line in stdin:
        if not line.strip():
            continue
        stdout.write(json.dumps(respond(server, line)) + "\r\n")
        stdout.flush()
        if not server.running:
            return


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["version"]:
        print(json.dumps({"result": VERSION}))
        return 0
    server = Server(node_id())
    if args[:1] == ["server"]:
        serve(server, sys.stdin, sys.stdout)
        return 0
    if args[:1] == ["publish"] and len(args) > 1:
        print(json.dumps({"result": server.rpc_publish({"files": args[1:]})}))
        return 0
    print("usage: golemsync-devnet-gftp server | version | publish FILE...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
