"""golemsync: a synchronous requestor library for the Golem Network.

Blocking calls, real threads and standard ``concurrent.futures.Future`` objects; no event loop.
See the README for a quick start and ``docs/guide.md`` for the task model.

The public names below are loaded on first use (PEP 562), so importing a part of the package
that needs none of them — the devnet, which is a separate "machine" sharing only the wire
protocol — loads no client module and none of the client's dependencies.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config
    from .connection import network
    from .context import WorkContext
    from .engine import Golem
    from .errors import (
        ActivityTerminated,
        ApiError,
        AuthenticationError,
        BadRequest,
        BudgetExceeded,
        CommandFailed,
        ConfigurationError,
        Conflict,
        DaemonUnreachable,
        Forbidden,
        GolemError,
        Gone,
        JobError,
        JobTimeout,
        NoOffersError,
        NotFound,
        NotImplementedByDaemon,
        PollTimeout,
        ProtocolError,
        ProvidersExhausted,
        ProviderUnreliable,
        RepeatedFailure,
        RequestTimeout,
        ServerError,
        ServiceEnded,
        ServiceFailed,
        StorageError,
        TaskFailed,
        TransportError,
        WorkerFailed,
    )
    from .estimate import Estimate
    from .journal import Journal
    from .market import LeastExpensive, LinearPricing, Offer, Strategy
    from .payload import Payload, Requirement, vm
    from .script import CommandResult, Script
    from .services import Cluster, Service, ServiceInstance, ServiceState
    from .settings import Settings
    from .summary import Summary
    from .tasks import Task, TaskStatus
    from .vpn import Network, NetworkError, TunnelError

_PUBLIC: dict[str, str] = {
    "ActivityTerminated": ".errors",
    "ApiError": ".errors",
    "AuthenticationError": ".errors",
    "BadRequest": ".errors",
    "BudgetExceeded": ".errors",
    "CommandFailed": ".errors",
    "CommandResult": ".script",
    "Cluster": ".services",
    "Config": ".config",
    "ConfigurationError": ".errors",
    "Conflict": ".errors",
    "DaemonUnreachable": ".errors",
    "Estimate": ".estimate",
    "Forbidden": ".errors",
    "Golem": ".engine",
    "GolemError": ".errors",
    "Gone": ".errors",
    "JobError": ".errors",
    "JobTimeout": ".errors",
    "Journal": ".journal",
    "LeastExpensive": ".market",
    "LinearPricing": ".market",
    "Network": ".vpn",
    "NetworkError": ".vpn",
    "NoOffersError": ".errors",
    "NotFound": ".errors",
    "NotImplementedByDaemon": ".errors",
    "Offer": ".market",
    "Payload": ".payload",
    "PollTimeout": ".errors",
    "ProtocolError": ".errors",
    "ProviderUnreliable": ".errors",
    "ProvidersExhausted": ".errors",
    "RepeatedFailure": ".errors",
    "RequestTimeout": ".errors",
    "Requirement": ".payload",
    "Script": ".script",
    "ServerError": ".errors",
    "Service": ".services",
    "ServiceEnded": ".errors",
    "ServiceFailed": ".errors",
    "ServiceInstance": ".services",
    "ServiceState": ".services",
    "Settings": ".settings",
    "StorageError": ".errors",
    "Strategy": ".market",
    "Summary": ".summary",
    "Task": ".tasks",
    "TaskFailed": ".errors",
    "TaskStatus": ".tasks",
    "TransportError": ".errors",
    "TunnelError": ".vpn",
    "WorkContext": ".context",
    "WorkerFailed": ".errors",
    "network": ".connection",
    "vm": ".payload",
}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'golemsync' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "ActivityTerminated",
    "ApiError",
    "AuthenticationError",
    "BadRequest",
    "BudgetExceeded",
    "Cluster",
    "CommandFailed",
    "CommandResult",
    "Config",
    "ConfigurationError",
    "Conflict",
    "DaemonUnreachable",
    "Estimate",
    "Forbidden",
    "Golem",
    "GolemError",
    "Gone",
    "JobError",
    "JobTimeout",
    "Journal",
    "LeastExpensive",
    "LinearPricing",
    "Network",
    "NetworkError",
    "NoOffersError",
    "NotFound",
    "NotImplementedByDaemon",
    "Offer",
    "Payload",
    "PollTimeout",
    "ProtocolError",
    "ProviderUnreliable",
    "ProvidersExhausted",
    "RepeatedFailure",
    "RequestTimeout",
    "Requirement",
    "Script",
    "ServerError",
    "Service",
    "ServiceEnded",
    "ServiceFailed",
    "ServiceInstance",
    "ServiceState",
    "Settings",
    "StorageError",
    "Strategy",
    "Summary",
    "Task",
    "TaskFailed",
    "TaskStatus",
    "TransportError",
    "TunnelError",
    "WorkContext",
    "WorkerFailed",
    "__version__",
    "network",
    "vm",
]
