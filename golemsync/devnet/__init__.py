"""The golemsync devnet: a yagna-compatible Golem network on loopback.

``Devnet`` runs it (in-process or as a child process), ``DevnetConfig``/``ProviderSpec`` say
what it simulates. See golemsync/devnet/network.py.
"""

from __future__ import annotations

from golemsync.devnet.config import DevnetConfig, ProviderSpec
from golemsync.devnet.network import Devnet

__all__ = ["Devnet", "DevnetConfig", "ProviderSpec"]
