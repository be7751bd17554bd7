"""The devnet's GSB service registry: binding, buffering, replies, closing."""

from __future__ import annotations

import base64
from typing import Optional

import pytest

from golemsync.devnet.gsb import (
    BindError,
    GsbCallError,
    GsbService,
    GsbServices,
    address_of,
    services_id,
)
from golemsync.devnet.gsbwire import Reply, decode_request

NODE = "0xAbC0000000000000000000000000000000000001"


class Socket:
    """A listener that records what the service sends it."""

    def __init__(self, broken: bool = False) -> None:
        self.frames: list[tuple[str, str, dict[str, object]]] = []
        self.closed: Optional[tuple[int, str]] = None
        self.broken = broken

    def send_frame(self, frame: bytes) -> None:
        if self.broken:
            raise BrokenPipeError("gone")
        self.frames.append(decode_request(frame))

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def ids(self) -> list[str]:
        return [request_id for request_id, _, _ in self.frames]


@pytest.fixture
def services() -> GsbServices:
    return GsbServices(NODE)


@pytest.fixture
def service(services: GsbServices) -> GsbService:
    return services.bind("/public/gftp/file1", ["GetMetadata", "GetChunk"])


def test_the_services_id_is_the_prefix_in_unpadded_urlsafe_base64() -> None:
    sid = services_id("/public/gftp/a?b>")
    assert "=" not in sid and "+" not in sid and "/" not in sid
    assert base64.urlsafe_b64decode(sid + "=" * (-len(sid) % 4)) == b"/public/gftp/a?b>"
    assert address_of(sid) == "/public/gftp/a?b>"


def test_an_undecodable_services_id_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="encoded in base64"):
        address_of("a")
    with pytest.raises(ValueError, match="should be a string"):
        address_of(base64.urlsafe_b64encode(b"\xff\xfe").decode())


def test_bind_refuses_duplicates_and_empty_prefixes(services: GsbServices,
                                                    service: GsbService) -> None:
    assert services.find("/public/gftp/file1") is service
    with pytest.raises(BindError, match="Duplicated service address prefix") as dup:
        services.bind("/public/gftp/file1", ["GetChunk"])
    with pytest.raises(BindError, match="Empty prefix") as empty:
        services.bind("", ["GetChunk"])
    assert dup.value.status == empty.value.status == 400


def test_calls_wait_for_a_socket_then_go_out_in_order(service: GsbService) -> None:
    first = service.call("GetMetadata", {})
    second = service.call("GetChunk", {"offset": 0, "size": 4})
    socket = Socket()
    assert service.attach(socket)
    assert [c for _, c, _ in socket.frames] == ["GetMetadata", "GetChunk"]
    assert socket.frames[1][2] == {"offset": 0, "size": 4}
    ids = socket.ids()
    service.deliver(Reply(ids[1], payload={"offset": 0, "content": b"abcd"}))
    service.deliver(Reply(ids[0], payload={"fileSize": 4}))
    assert first.result(0) == {"fileSize": 4}
    assert second.result(0)["content"] == b"abcd"


def test_a_call_for_a_component_not_bound_is_refused(service: GsbService) -> None:
    with pytest.raises(GsbCallError, match="No supported msg type for addr: "
                                           "/public/gftp/file1/UploadChunk"):
        service.call("UploadChunk", {})


def test_an_error_reply_fails_the_call_with_its_variant(service: GsbService) -> None:
    socket = Socket()
    service.attach(socket)
    future = service.call("GetChunk", {"offset": 99, "size": 1})
    service.deliver(Reply(socket.ids()[0], error={"ReadError": "offset past the end"}))
    with pytest.raises(GsbCallError, match="ReadError: offset past the end"):
        future.result(0)


def test_a_reply_to_an_unknown_id_is_dropped(service: GsbService) -> None:
    service.attach(Socket())
    future = service.call("GetMetadata", {})
    service.deliver(Reply("not-a-request", payload=None))
    assert not future.done()


def test_a_closed_socket_fails_its_calls_and_later_calls_wait_again(
        service: GsbService) -> None:
    socket = Socket()
    service.attach(socket)
    sent = service.call("GetMetadata", {})
    service.detach(socket, "Normal")
    with pytest.raises(GsbCallError, match="connection closed"):
        sent.result(0)
    assert not service.listening
    later = service.call("GetMetadata", {})
    assert not later.done()
    again = Socket()
    service.attach(again)
    service.deliver(Reply(again.ids()[0], payload={"fileSize": 1}))
    assert later.result(0) == {"fileSize": 1}


def test_a_new_socket_replaces_the_old_one(service: GsbService) -> None:
    old, new = Socket(), Socket()
    service.attach(old)
    stranded = service.call("GetMetadata", {})
    service.attach(new)
    assert old.closed is not None and old.closed[0] == 1008
    with pytest.raises(GsbCallError, match="in favour of new WS connection"):
        stranded.result(0)
    fresh = service.call("GetMetadata", {})
    assert len(new.frames) == 1 and len(old.frames) == 1
    service.detach(old, "late close of the old socket")  # must not touch the new one
    assert service.listening and not fresh.done()


def test_unbinding_fails_waiting_calls_and_closes_the_socket(services: GsbServices,
                                                             service: GsbService) -> None:
    socket = Socket()
    buffered = service.call("GetMetadata", {})
    service.attach(socket)
    waiting = service.call("GetChunk", {"offset": 0, "size": 1})
    assert services.unbind("/public/gftp/file1")
    assert not services.unbind("/public/gftp/file1")
    assert services.find("/public/gftp/file1") is None
    for future in (buffered, waiting):
        with pytest.raises(GsbCallError, match="Unbinding service: /public/gftp/file1"):
            future.result(0)
    assert socket.closed == (1000, "Unbinding service: /public/gftp/file1")
    with pytest.raises(GsbCallError, match="closed"):
        service.call("GetMetadata", {})
    assert not service.attach(Socket())


def test_a_failed_send_fails_that_call(service: GsbService) -> None:
    service.attach(Socket(broken=True))
    with pytest.raises(GsbCallError, match="cannot send"):
        service.call("GetMetadata", {}).result(0)


def test_closing_the_registry_unbinds_everything(services: GsbServices,
                                                 service: GsbService) -> None:
    future = service.call("GetMetadata", {})
    services.close()
    with pytest.raises(GsbCallError, match="stopping"):
        future.result(0)
    with pytest.raises(BindError) as refused:
        services.bind("/public/gftp/other", ["GetChunk"])
    assert refused.value.status == 503


def test_gftp_urls_find_the_service_of_this_node_only(services: GsbServices,
                                                      service: GsbService) -> None:
    assert services.gftp_service(f"gftp://{NODE.lower()}/file1") is service
    assert services.gftp_service(f"gftp://{NODE}/file2") is None
    assert services.gftp_service("gftp://0x0000000000000000000000000000000000000002/file1") \
        is None
    assert services.gftp_service("http://example.invalid/file1") is None
