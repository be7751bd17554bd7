"""golemsync: a synchronous requestor library for the Golem Network.

Blocking calls, real threads and standard ``concurrent.futures.Future`` objects; no event loop.
"""

from __future__ import annotations

import logging

from .config import Config
from .errors import (
    ActivityTerminated,
    ApiError,
    AuthenticationError,
    BudgetExceeded,
    CommandFailed,
    ConfigurationError,
    DaemonUnreachable,
    GolemError,
    JobError,
    JobTimeout,
    NoOffersError,
    ProtocolError,
    StorageError,
    TaskFailed,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "ActivityTerminated",
    "ApiError",
    "AuthenticationError",
    "BudgetExceeded",
    "CommandFailed",
    "Config",
    "ConfigurationError",
    "DaemonUnreachable",
    "GolemError",
    "JobError",
    "JobTimeout",
    "NoOffersError",
    "ProtocolError",
    "StorageError",
    "TaskFailed",
    "__version__",
]
