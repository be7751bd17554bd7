"""The GSB API's WebSocket messages, as the daemon frames them (gsb-api-messages.yaml).

Every message is one binary WebSocket frame holding a flexbuffers map. The daemon sends
requests ``{"id", "component", "payload"}`` (``payload`` is always a map, empty for messages
without fields, such as ``GetMetadata``); the bound program answers ``{"id", "payload"}`` or
``{"id", "error"}``, where ``error`` is the message's error enum as serde writes it (for gftp
e.g. ``{"ReadError": "..."}``, or a bare variant name). Blobs (``GftpChunk.content``) come
back as ``bytes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flatbuffers import flexbuffers

SUBPROTOCOL = "gsb+flexbuffers"


class FrameError(ValueError):
    """A frame is not a valid GSB API message; the text says what is wrong."""


@dataclass(frozen=True)
class Reply:
    """One answer from a bound program: ``payload`` on success, else ``error``."""

    request_id: str
    payload: Any = None
    error: Any = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def encode_request(request_id: str, component: str, payload: Mapping[str, Any]) -> bytes:
    """The frame that carries one call to a bound service."""
    return bytes(flexbuffers.Dumps({"id": request_id, "component": component,
                                    "payload": dict(payload)}))


def encode_reply(reply: Reply) -> bytes:
    """The frame a bound program sends back (used by tests and tools playing that program)."""
    body: dict[str, Any] = {"id": reply.request_id}
    if reply.failed:
        body["error"] = reply.error
    else:
        body["payload"] = reply.payload
    return bytes(flexbuffers.Dumps(body))


def decode_request(frame: bytes) -> tuple[str, str, dict[str, Any]]:
    """``(id, component, payload)`` of a request frame; :class:`FrameError` when malformed."""
    message = _root_map(frame)
    request_id, component = message.get("id"), message.get("component")
    if not isinstance(request_id, str) or not isinstance(component, str):
        raise FrameError("a request needs a string 'id' and 'component'")
    payload = message.get("payload")
    return request_id, component, payload if isinstance(payload, dict) else {}


def decode_reply(frame: bytes) -> Reply:
    """The reply in ``frame``, read by the daemon's rules; :class:`FrameError` when malformed.

    The root must be a non-empty map with a string ``id``. A non-empty ``error`` wins over
    ``payload``; ``payload`` may be empty or null (``UploadChunk`` answers with nothing).
    """
    message = _root_map(frame)
    request_id = message.get("id")
    if not isinstance(request_id, str):
        raise FrameError("Missing response id")
    error = message.get("error")
    if error is not None and not _empty(error):
        return Reply(request_id, error=error)
    if "payload" in message:
        return Reply(request_id, payload=message["payload"])
    raise FrameError(f"Missing 'payload' and 'error' fields. Id: {request_id}.")


def describe_error(error: Any) -> str:
    """A message for an error enum: ``{"ReadError": "x"}`` → ``ReadError: x``."""
    if isinstance(error, dict) and len(error) == 1:
        ((variant, detail),) = error.items()
        return str(variant) if detail in (None, "") else f"{variant}: {detail}"
    return str(error)


def _root_map(frame: bytes) -> dict[str, Any]:
    try:
        message = _plain(flexbuffers.Loads(frame))
    except Exception as exc:  # the decoder raises assorted errors on garbage
        raise FrameError(f"Missing root. Err: {exc}") from exc
    if not isinstance(message, dict) or not message:
        raise FrameError("Missing root map")
    return message


def _empty(value: Any) -> bool:
    return isinstance(value, (dict, list, str, bytes)) and len(value) == 0


def _plain(value: Any) -> Any:
    """Decoded flexbuffers values as plain Python: blobs become ``bytes``."""
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value

