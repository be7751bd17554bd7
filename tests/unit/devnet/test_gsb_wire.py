"""The GSB API's flexbuffers frames: what the devnet sends and how it reads replies."""

from __future__ import annotations

import pytest
from flatbuffers import flexbuffers

from golemsync.devnet.gsbwire import (
    FrameError,
    Reply,
    decode_reply,
    decode_request,
    describe_error,
    encode_reply,
    encode_request,
)


def test_a_request_is_a_flexbuffers_map_of_id_component_and_payload() -> None:
    frame = encode_request("r1", "GetChunk", {"offset": 40960, "size": 40960})
    assert flexbuffers.Loads(frame) == {"id": "r1", "component": "GetChunk",
                                        "payload": {"offset": 40960, "size": 40960}}
    assert decode_request(frame) == ("r1", "GetChunk", {"offset": 40960, "size": 40960})


def test_a_message_without_fields_carries_an_empty_map() -> None:
    assert decode_request(encode_request("r2", "GetMetadata", {}))[2] == {}


def test_a_chunk_reply_gives_its_content_as_bytes() -> None:
    frame = flexbuffers.Dumps({"id": "r1", "payload": {"offset": 0, "content": b"\x00\xffdata"}})
    reply = decode_reply(bytes(frame))
    assert reply == Reply("r1", payload={"offset": 0, "content": b"\x00\xffdata"})
    assert type(reply.payload["content"]) is bytes and not reply.failed


def test_a_null_payload_is_a_valid_reply() -> None:
    # golem-js answers UploadChunk with {"id", "payload": null}
    assert decode_reply(bytes(flexbuffers.Dumps({"id": "r3", "payload": None}))) == Reply("r3")


def test_an_error_wins_over_a_payload_and_reads_as_its_variant() -> None:
    frame = bytes(flexbuffers.Dumps({"id": "r4", "payload": None,
                                     "error": {"ReadError": "Failed to read file"}}))
    reply = decode_reply(frame)
    assert reply.failed and reply.request_id == "r4"
    assert describe_error(reply.error) == "ReadError: Failed to read file"
    assert describe_error("IntegrityError") == "IntegrityError"


def test_an_empty_error_falls_back_to_the_payload() -> None:
    frame = bytes(flexbuffers.Dumps({"id": "r5", "error": {}, "payload": {"fileSize": 3}}))
    assert decode_reply(frame) == Reply("r5", payload={"fileSize": 3})


def test_encode_reply_round_trips() -> None:
    for reply in (Reply("a", payload={"fileSize": 7}), Reply("b", error={"WriteError": "x"})):
        assert decode_reply(encode_reply(reply)) == reply


@pytest.mark.parametrize(("frame", "message"), [
    (b"", "Missing root"),
    (b"\x00\x01\x02garbage", "Missing root"),
    (bytes(flexbuffers.Dumps([1, 2])), "Missing root map"),
    (bytes(flexbuffers.Dumps({})), "Missing root map"),
    (bytes(flexbuffers.Dumps({"payload": None})), "Missing response id"),
    (bytes(flexbuffers.Dumps({"id": 5, "payload": None})), "Missing response id"),
    (bytes(flexbuffers.Dumps({"id": "r6"})), "Missing 'payload' and 'error' fields"),
])
def test_malformed_replies_are_refused_with_the_reason(frame: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        decode_reply(frame)


def test_a_request_without_component_is_refused() -> None:
    with pytest.raises(FrameError):
        decode_request(bytes(flexbuffers.Dumps({"id": "x", "payload": {}})))
