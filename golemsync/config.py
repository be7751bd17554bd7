"""Connection settings: explicit arguments win over the environment, which wins over defaults.

Environment variables (the same names the yagna daemon's own tools use):

=========================  ======================================  ===========================
variable                   meaning                                 default
=========================  ======================================  ===========================
``YAGNA_APPKEY``           application key (required)              —
``YAGNA_API_URL``          base URL of the daemon's REST API       ``http://127.0.0.1:7465``
``YAGNA_MARKET_URL``       full market API URL, prefix included    base + ``/market-api/v1``
``YAGNA_ACTIVITY_URL``     full activity API URL                   base + ``/activity-api/v1``
``YAGNA_PAYMENT_URL``      full payment API URL                    base + ``/payment-api/v1``
``YAGNA_IDENTITY_URL``     identity base (``/me`` is appended)     base
``YAGNA_SUBNET``           subnet tag of the demand                ``public``
``YAGNA_PAYMENT_DRIVER``   payment driver                          ``erc20``
``YAGNA_PAYMENT_NETWORK``  payment network                         ``holesky``
=========================  ======================================  ===========================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Optional
from urllib.parse import urlparse

from .errors import ConfigurationError

DEFAULT_API_URL = "http://127.0.0.1:7465"
MARKET_PREFIX = "/market-api/v1"
ACTIVITY_PREFIX = "/activity-api/v1"
PAYMENT_PREFIX = "/payment-api/v1"

# Mainnet networks pay in GLM, every other network in the test token tGLM.
_MAINNETS = frozenset({"mainnet", "polygon"})


@dataclass(frozen=True)
class Config:
    """Where the daemon is and how to talk to it.

    Build one with :meth:`Config.load`; the constructor takes the resolved values as they are.
    The app key is kept out of ``repr``, and so out of logs and tracebacks.
    """

    app_key: str = field(repr=False)
    api_url: str = DEFAULT_API_URL
    market_url: str = ""
    activity_url: str = ""
    payment_url: str = ""
    identity_url: str = ""
    subnet: str = "public"
    payment_driver: str = "erc20"
    payment_network: str = "holesky"

    def __post_init__(self) -> None:
        base = self.api_url.rstrip("/")
        object.__setattr__(self, "api_url", base)
        for name, prefix in (
            ("market_url", MARKET_PREFIX),
            ("activity_url", ACTIVITY_PREFIX),
            ("payment_url", PAYMENT_PREFIX),
            ("identity_url", ""),
        ):
            value = getattr(self, name).rstrip("/") or base + prefix
            object.__setattr__(self, name, value)
        for name in ("api_url", "market_url", "activity_url", "payment_url", "identity_url"):
            _check_url(name, getattr(self, name))
        if not self.app_key:
            raise ConfigurationError(
                "no application key: set YAGNA_APPKEY (see `yagna app-key list`) or pass "
                "app_key=...; to try golemsync without a daemon, run it on the devnet "
                "(`golemsync devnet`)"
            )

    @property
    def payment_token(self) -> str:
        """The token of the configured network, lower case as in platform names."""
        return "glm" if self.payment_network in _MAINNETS else "tglm"

    @property
    def payment_platform(self) -> str:
        """The platform string ``driver-network-token``, e.g. ``erc20-holesky-tglm``."""
        return f"{self.payment_driver}-{self.payment_network}-{self.payment_token}"

    @classmethod
    def load(
        cls,
        *,
        app_key: Optional[str] = None,
        api_url: Optional[str] = None,
        subnet: Optional[str] = None,
        payment_driver: Optional[str] = None,
        payment_network: Optional[str] = None,
        environ: Optional[Mapping[str, str]] = None,
    ) -> Config:
        """Resolve settings: each argument over its environment variable over the default.

        Raises :class:`ConfigurationError` when no app key is found or a URL is malformed.
        """
        env = os.environ if environ is None else environ

        def pick(arg: Optional[str], var: str, default: str) -> str:
            if arg is not None:
                return arg
            return env.get(var) or default

        explicit_base = api_url is not None
        return cls(
            app_key=pick(app_key, "YAGNA_APPKEY", ""),
            api_url=pick(api_url, "YAGNA_API_URL", DEFAULT_API_URL),
            # An explicit api_url means "this daemon": per-API overrides from the
            # environment would silently point part of the client elsewhere.
            market_url="" if explicit_base else env.get("YAGNA_MARKET_URL", ""),
            activity_url="" if explicit_base else env.get("YAGNA_ACTIVITY_URL", ""),
            payment_url="" if explicit_base else env.get("YAGNA_PAYMENT_URL", ""),
            identity_url="" if explicit_base else env.get("YAGNA_IDENTITY_URL", ""),
            subnet=pick(subnet, "YAGNA_SUBNET", "public"),
            payment_driver=pick(payment_driver, "YAGNA_PAYMENT_DRIVER", "erc20"),
            payment_network=pick(payment_network, "YAGNA_PAYMENT_NETWORK", "holesky"),
        )

    def with_changes(self, **changes: str) -> Config:
        """A copy with some fields replaced (derived URLs are recomputed from a new api_url)."""
        if "api_url" in changes:
            for name in ("market_url", "activity_url", "payment_url", "identity_url"):
                changes.setdefault(name, "")
        return replace(self, **changes)


def _check_url(name: str, url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigurationError(
            f"{name} {url!r} is not an http(s) URL; expected something like {DEFAULT_API_URL}"
        )
