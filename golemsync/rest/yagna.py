"""YagnaClient: the REST API areas behind one :class:`~golemsync.rest.session.ApiSession`.

The client is built from a :class:`~golemsync.config.Config` (where the daemon is), a
:class:`~golemsync.rest.session.ClientOptions` (how to talk to it: one value a settings
object can hold and pass through) and keyword options; a keyword given wins over the same
field of ``options``, so ``YagnaClient(config, options=opts, read_timeout=60)`` works:

* ``transport``: what carries the HTTP exchanges (see :mod:`golemsync.rest.transport`);
  by default a :class:`~golemsync.rest.transport.Urllib3Transport` with ``pool_size``
  (16) pooled connections per host. Tests pass a :class:`~golemsync.rest.mock.MockTransport`. The
  client closes the transport when it is closed, also one it was given.
* ``proxies``: a scheme-to-proxy mapping (``{"http": "http://proxy:3128"}``) for the
  default transport. Without it no proxy is used: the default transport does not read
  ``HTTP_PROXY``/``.netrc`` from the environment, which keeps a local daemon's traffic
  local.
* ``retry``: the :class:`~golemsync.rest.session.RetryPolicy` of transient failures;
  ``stop_event`` interrupts its back-off (set it when shutting down).
* ``connect_timeout`` (5 s) / ``read_timeout`` (30 s): seconds to connect and to wait for a
  reply (long-polls wait their own ``timeout`` plus a margin instead of ``read_timeout``).
* ``max_reply_bytes`` (16 MiB) / ``max_exec_reply_bytes`` (200 MiB): size limits of a JSON
  reply and of an ExeScript results reply; a larger reply raises
  :class:`~golemsync.errors.ProtocolError` without being read into memory.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any, Optional

from ..config import Config
from .activity_api import ActivityApi
from .identity_api import IdentityApi
from .market_api import MarketApi
from .payment_api import PaymentApi
from .session import ApiSession, ClientOptions, RetryPolicy
from .transport import Transport


class YagnaClient:
    """Typed, blocking access to a yagna daemon (or the devnet); safe to share across threads.

    Use as a context manager or call :meth:`close`. See the module docstring for the options.
    """

    def __init__(self, config: Config, *, options: Optional[ClientOptions] = None,
                 transport: Optional[Transport] = None,
                 stop_event: Optional[threading.Event] = None,
                 retry: Optional[RetryPolicy] = None, pool_size: Optional[int] = None,
                 connect_timeout: Optional[float] = None, read_timeout: Optional[float] = None,
                 max_reply_bytes: Optional[int] = None,
                 max_exec_reply_bytes: Optional[int] = None,
                 proxies: Optional[Mapping[str, str]] = None) -> None:
        given: dict[str, Any] = {
            "retry": retry, "pool_size": pool_size, "connect_timeout": connect_timeout,
            "read_timeout": read_timeout, "max_reply_bytes": max_reply_bytes,
            "max_exec_reply_bytes": max_exec_reply_bytes, "proxies": proxies}
        base = options if options is not None else ClientOptions()
        self.config = config
        self.options = replace(base, **{k: v for k, v in given.items() if v is not None})
        self.session = ApiSession(config, self.options, transport=transport,
                                  stop_event=stop_event)
        self.identity = IdentityApi(self.session)
        self.market = MarketApi(self.session)
        self.activity = ActivityApi(self.session)
        self.payment = PaymentApi(self.session)

    def __repr__(self) -> str:
        return f"YagnaClient(api_url={self.config.api_url!r})"

    @property
    def transport(self) -> Transport:
        """The transport the client's requests go through."""
        return self.session.transport

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far (for benchmarks and diagnostics)."""
        return self.session.request_count

    def close(self) -> None:
        """Close every connection. Idempotent."""
        self.session.close()

    def __enter__(self) -> YagnaClient:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()
