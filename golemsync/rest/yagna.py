"""YagnaClient: the REST API areas behind one transport."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Optional

from ..config import Config
from .activity_api import ActivityApi
from .identity_api import IdentityApi
from .market_api import MarketApi
from .payment_api import PaymentApi
from .session import RetryPolicy, Transport


class YagnaClient:
    """Typed, blocking access to a yagna daemon (or the devnet); safe to share across threads.

    ``stop_event`` interrupts retry back-off (set it when shutting down). Use as a context
    manager or call :meth:`close`.
    """

    def __init__(self, config: Config, *, stop_event: Optional[threading.Event] = None,
                 retry: Optional[RetryPolicy] = None, pool_size: int = 16) -> None:
        self.config = config
        self.transport = Transport(config, stop_event=stop_event, retry=retry,
                                   pool_size=pool_size)
        self.identity = IdentityApi(self.transport)
        self.market = MarketApi(self.transport)
        self.activity = ActivityApi(self.transport)
        self.payment = PaymentApi(self.transport)

    def __repr__(self) -> str:
        return f"YagnaClient(api_url={self.config.api_url!r})"

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far (for benchmarks and diagnostics)."""
        return self.transport.request_count

    def close(self) -> None:
        """Close every connection. Idempotent."""
        self.transport.close()

    def __enter__(self) -> YagnaClient:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()
