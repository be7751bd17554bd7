"""The Golem image registry: from an image hash or tag to its download URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import requests

from ..errors import ConfigurationError, GolemError, ProtocolError

DEFAULT_REGISTRY = "https://registry.golem.network"


@dataclass(frozen=True)
class ResolvedImage:
    """A VM image: its SHA3-224 hash and where providers download it."""

    hash: str
    url: str


class ImageRegistry:
    """Looks images up with ``GET {base}/v1/image/info?hash=...`` (or ``?tag=...``)."""

    def __init__(self, base_url: str = DEFAULT_REGISTRY, *, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def resolve(self, *, image_hash: Optional[str] = None,
                image_tag: Optional[str] = None) -> ResolvedImage:
        """Ask the registry for an image by hash or tag (exactly one). One HTTP request."""
        if (image_hash is None) == (image_tag is None):
            raise ConfigurationError("give the registry exactly one of image_hash or image_tag")
        params = {"hash": image_hash} if image_hash is not None else {"tag": image_tag}
        what = f"image {image_hash or image_tag}"
        try:
            response = requests.get(f"{self.base_url}/v1/image/info", params=params,
                                    timeout=self.timeout)
        except requests.exceptions.RequestException as exc:
            raise GolemError(f"cannot reach the image registry at {self.base_url} to resolve "
                             f"{what}: {exc}; pass image_url= to skip the lookup") from exc
        if response.status_code == 404:
            raise GolemError(f"the registry at {self.base_url} does not know {what}: check the "
                             "hash or tag (tags look like 'golem/examples-blender:latest')")
        if response.status_code >= 400:
            raise GolemError(f"the image registry answered HTTP {response.status_code} for "
                             f"{what}: {response.text[:200]}")
        return self._parse(response, what)

    @staticmethod
    def _parse(response: requests.Response, what: str) -> ResolvedImage:
        try:
            data: Any = response.json()
            return ResolvedImage(str(data["sha3"]), str(data["http"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"unexpected registry reply for {what}: "
                                f"{response.text[:200]!r}") from exc
