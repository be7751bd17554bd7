"""The Golem image registry: from an image hash or tag to its download URL.

The lookup goes through the same :mod:`transport seam <golemsync.rest.transport>` as the
daemon's API: by default a :class:`~golemsync.rest.transport.RequestsTransport` that, unlike
the daemon's, honours the environment's proxy settings (the registry is on the internet);
pass ``transport=`` to use another one (a :class:`~golemsync.rest.mock.MockTransport` in
tests). The reply is read with a size limit (``max_reply_bytes``, 1 MiB by default).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlencode

from ..errors import ConfigurationError, GolemError, ProtocolError, TransportError
from .transport import Request, RequestsTransport, Transport

DEFAULT_REGISTRY = "https://registry.golem.network"
#: The size limit of a registry reply (a small JSON object).
MAX_REGISTRY_REPLY = 1024 * 1024


@dataclass(frozen=True)
class ResolvedImage:
    """A VM image: its SHA3-224 hash and where providers download it."""

    hash: str
    url: str


class ImageRegistry:
    """Looks images up with ``GET {base}/v1/image/info?hash=...`` (or ``?tag=...``).

    A registry built without ``transport`` owns its own and closes it after each lookup.
    """

    def __init__(self, base_url: str = DEFAULT_REGISTRY, *, timeout: float = 15.0,
                 transport: Optional[Transport] = None,
                 max_reply_bytes: int = MAX_REGISTRY_REPLY) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.transport = transport
        self.max_reply_bytes = max_reply_bytes

    def resolve(self, *, image_hash: Optional[str] = None,
                image_tag: Optional[str] = None) -> ResolvedImage:
        """Ask the registry for an image by hash or tag (exactly one). One HTTP request."""
        if (image_hash is None) == (image_tag is None):
            raise ConfigurationError("give the registry exactly one of image_hash or image_tag")
        params = {"hash": image_hash} if image_hash is not None else {"tag": image_tag}
        what = f"image {image_hash or image_tag}"
        request = Request("GET", f"{self.base_url}/v1/image/info?{urlencode(params)}",
                          {"Accept": "application/json"}, None, self.timeout, self.timeout)
        transport = self.transport if self.transport is not None else \
            RequestsTransport(pool_size=1, trust_env=True)
        try:
            return self._lookup(transport, request, what)
        finally:
            if self.transport is None:
                transport.close()

    def _lookup(self, transport: Transport, request: Request, what: str) -> ResolvedImage:
        try:
            response = transport.send(request)
            try:
                if response.status == 404:
                    raise GolemError(f"the registry at {self.base_url} does not know {what}: "
                                     "check the hash or tag (tags look like "
                                     "'golem/examples-blender:latest')")
                if response.status >= 400:
                    text = response.read_prefix(200).decode("utf-8", "replace")
                    raise GolemError(f"the image registry answered HTTP {response.status} for "
                                     f"{what}: {text}")
                content = response.read(self.max_reply_bytes, f"the registry's reply for {what}")
            finally:
                response.close()
        except TransportError as exc:
            raise GolemError(f"cannot reach the image registry at {self.base_url} to resolve "
                             f"{what}: {exc}; pass image_url= to skip the lookup") from exc
        return self._parse(content, what)

    @staticmethod
    def _parse(content: bytes, what: str) -> ResolvedImage:
        try:
            data: Any = json.loads(content)
            return ResolvedImage(str(data["sha3"]), str(data["http"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"unexpected registry reply for {what}: "
                                f"{content[:200]!r}") from exc
