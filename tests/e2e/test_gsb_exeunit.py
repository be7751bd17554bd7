"""The devnet's exe-unit moves gftp URLs through services bound with the GSB API.

The requestor side here is a small program of the test's own (websocket-client and
flexbuffers, no golemsync client code), answering gftp's messages the way golem-js does.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import websocket
from devnet_http import Client
from flatbuffers import flexbuffers

from golemsync.devnet import Devnet

pytestmark = pytest.mark.e2e

GSB = "/gsb-api/v1"
# component, payload -> reply body (None: leave the request unanswered)
Handler = Callable[[str, dict[str, Any]], Optional[dict[str, Any]]]
BOOT = [{"deploy": {}}, {"start": {}}]


class Program:
    """A bound service answering on its own thread until closed."""

    def __init__(self, client: Client, net: Devnet, name: str, components: list[str],
                 handler: Handler) -> None:
        self.client = client
        reply = client.post(f"{GSB}/services", json={"listen": {
            "on": f"/public/gftp/{name}", "components": components}})
        assert reply.status_code == 201, reply.text
        self.sid = reply.json()["servicesId"]
        self.url = f"gftp://{net.node_id}/{name}"
        self.handler = handler
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.ws = websocket.create_connection(
            net.url.replace("http://", "ws://") + f"{GSB}/services/{self.sid}",
            header=[f"Authorization: Bearer {net.app_key}"], subprotocols=["gsb+flexbuffers"])
        self.thread = threading.Thread(target=self._serve, name=f"test-gsb-{name}")
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                opcode, frame = self.ws.recv_data()
            except (websocket.WebSocketException, OSError):
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return
            request = flexbuffers.Loads(frame)
            payload = _plain(request["payload"])
            self.requests.append((request["component"], payload))
            body = self.handler(request["component"], payload)
            if body is None:
                continue
            self.ws.send_binary(bytes(flexbuffers.Dumps({"id": request["id"], **body})))

    def close(self) -> None:
        self.client.delete(f"{GSB}/services/{self.sid}")
        self.thread.join(10)
        self.ws.close()


def _plain(value: Any) -> Any:
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def serving(data: bytes) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    def handle(component: str, payload: dict[str, Any]) -> dict[str, Any]:
        if component == "GetMetadata":
            return {"payload": {"fileSize": len(data)}}
        offset, size = payload["offset"], payload["size"]
        return {"payload": {"offset": offset, "content": data[offset:offset + size]}}
    return handle


class Sink:
    """Receives an upload like gftp's receiver: chunks at offsets, then a hash check."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.finished: Optional[str] = None

    def __call__(self, component: str, payload: dict[str, Any]) -> dict[str, Any]:
        if component == "UploadChunk":
            chunk = payload["chunk"]
            end = chunk["offset"] + len(chunk["content"])
            self.data.extend(b"\0" * max(0, end - len(self.data)))
            self.data[chunk["offset"]:end] = chunk["content"]
            return {"payload": None}
        self.finished = payload["hash"]
        if payload["hash"] != hashlib.sha3_256(bytes(self.data)).hexdigest():
            return {"error": "IntegrityError"}
        return {"payload": None}


@pytest.fixture
def activity(devnet: Devnet) -> Iterator[tuple[Client, str]]:
    with Client(devnet) as client:
        _, sub, demand, offers = client.hired()
        activity_id = client.activity(client.approved_agreement(sub, demand, offers[0]))
        run(client, activity_id, BOOT)
        yield client, activity_id


@pytest.fixture
def programs() -> Iterator[list[Program]]:
    made: list[Program] = []
    yield made
    for program in made:
        program.close()


def run(client: Client, activity_id: str, commands: list[dict[str, Any]]) -> list[Any]:
    reply = client.exec(activity_id, commands)
    assert reply.status_code == 200, reply.text
    return client.batch_results(activity_id, reply.json(), deadline=60)


def test_a_file_goes_there_and_back_in_chunks_with_hash_checks(
        devnet: Devnet, activity: tuple[Client, str], programs: list[Program]) -> None:
    client, activity_id = activity
    data = os.urandom(3 * (1 << 20) + 12345)  # many 40 KiB chunks, the last one short
    digest = hashlib.sha3_256(data).hexdigest()
    source = Program(client, devnet, "src-1", ["GetMetadata", "GetChunk"], serving(data))
    sink = Sink()
    target = Program(client, devnet, "dst-1", ["UploadChunk", "UploadFinished"], sink)
    programs += [source, target]
    results = run(client, activity_id, [
        {"transfer": {"from": f"hash:sha3:{digest}:{source.url}",
                      "to": "container:/golem/input/x"}},
        {"transfer": {"from": "container:/golem/input/x", "to": target.url}},
    ])
    assert [r["result"] for r in results] == ["Ok", "Ok"], results
    assert bytes(sink.data) == data and sink.finished == digest
    components = [c for c, _ in source.requests]
    assert components[0] == "GetMetadata" and set(components[1:]) == {"GetChunk"}
    offsets = [p["offset"] for c, p in source.requests if c == "GetChunk"]
    assert offsets == list(range(0, len(data), 40 * 1024))


def test_a_wrong_hash_fails_the_command(devnet: Devnet, activity: tuple[Client, str],
                                        programs: list[Program]) -> None:
    client, activity_id = activity
    source = Program(client, devnet, "src-2", ["GetMetadata", "GetChunk"], serving(b"abc"))
    programs.append(source)
    (result,) = run(client, activity_id, [
        {"transfer": {"from": f"hash:sha3:{'0' * 64}:{source.url}", "to": "/golem/input/y"}}])
    assert result["result"] == "Error" and "hash mismatch" in result["message"]


def test_an_error_reply_fails_the_command_with_its_message(
        devnet: Devnet, activity: tuple[Client, str], programs: list[Program]) -> None:
    client, activity_id = activity

    def failing(component: str, payload: dict[str, Any]) -> dict[str, Any]:
        if component == "GetMetadata":
            return {"payload": {"fileSize": 10}}
        return {"error": {"ReadError": "Can't read from file. disk gone"}}

    source = Program(client, devnet, "src-3", ["GetMetadata", "GetChunk"], failing)
    programs.append(source)
    (result,) = run(client, activity_id, [
        {"transfer": {"from": source.url, "to": "/golem/input/z"}}])
    assert result["result"] == "Error"
    assert "GetChunk failed: ReadError: Can't read from file. disk gone" in result["message"]


def test_a_short_chunk_fails_the_command(devnet: Devnet, activity: tuple[Client, str],
                                         programs: list[Program]) -> None:
    client, activity_id = activity
    data = b"x" * 100_000

    def short(component: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = serving(data)(component, payload)
        if component == "GetChunk":
            body["payload"]["content"] = body["payload"]["content"][:10]
        return body

    source = Program(client, devnet, "src-4", ["GetMetadata", "GetChunk"], short)
    programs.append(source)
    (result,) = run(client, activity_id, [
        {"transfer": {"from": source.url, "to": "/golem/input/w"}}])
    assert result["result"] == "Error" and "expected 40960 bytes, got 10" in result["message"]


def stalling(stalled: threading.Event) -> Handler:
    """Serves the metadata and the first chunk of a 1 MiB file, then stops answering."""
    def handle(component: str, payload: dict[str, Any]) -> Optional[dict[str, Any]]:
        if component == "GetMetadata":
            return {"payload": {"fileSize": 1 << 20}}
        if payload["offset"] == 0:
            return {"payload": {"offset": 0, "content": b"\0" * payload["size"]}}
        stalled.set()
        return None
    return handle


def test_a_service_unbound_mid_transfer_fails_the_command_at_once(
        devnet: Devnet, activity: tuple[Client, str]) -> None:
    client, activity_id = activity
    stalled = threading.Event()
    source = Program(client, devnet, "src-5", ["GetMetadata", "GetChunk"], stalling(stalled))
    reply = client.exec(activity_id, [{"transfer": {"from": source.url, "to": "/golem/input/v"}}])
    assert stalled.wait(20)
    source.close()  # DELETE while the exe-unit waits for chunks
    (result,) = client.batch_results(activity_id, reply.json(), deadline=20)
    assert result["result"] == "Error" and "Unbinding service" in result["message"]


def test_a_program_that_goes_away_mid_transfer_fails_the_command_at_once(
        devnet: Devnet, activity: tuple[Client, str], programs: list[Program]) -> None:
    client, activity_id = activity
    stalled = threading.Event()
    source = Program(client, devnet, "src-7", ["GetMetadata", "GetChunk"], stalling(stalled))
    programs.append(source)
    reply = client.exec(activity_id, [{"transfer": {"from": source.url, "to": "/golem/input/s"}}])
    assert stalled.wait(20)
    source.ws.close()  # the socket closes; the service stays bound
    (result,) = client.batch_results(activity_id, reply.json(), deadline=20)
    assert result["result"] == "Error" and "connection closed" in result["message"]


def test_an_unbound_name_falls_back_to_the_gftp_store(devnet: Devnet,
                                                       activity: tuple[Client, str]) -> None:
    client, activity_id = activity
    (result,) = run(client, activity_id, [
        {"transfer": {"from": f"gftp://{devnet.node_id}/nothing-here", "to": "/golem/input/u"}}])
    assert result["result"] == "Error" and "is not published" in result["message"]


def test_a_receive_slot_cannot_be_read(devnet: Devnet, activity: tuple[Client, str],
                                       programs: list[Program], tmp_path: Path) -> None:
    client, activity_id = activity
    target = Program(client, devnet, "dst-6", ["UploadChunk", "UploadFinished"], Sink())
    programs.append(target)
    (result,) = run(client, activity_id, [
        {"transfer": {"from": target.url, "to": "/golem/input/t"}}])
    assert result["result"] == "Error" and "No supported msg type" in result["message"]
