"""A real Golem network in miniature: real yagna nodes, a real chain, the project's providers.

Needs ``pip install 'golemsync[localnet]'`` (the ``yagna`` daemon) and Foundry's ``anvil``
(npm ``@foundry-rs/anvil-linux-amd64``); see :mod:`golemsync.localnet.tools`.
"""

from golemsync.localnet.network import Localnet, LocalnetError
from golemsync.localnet.tools import LocalnetUnavailable, find_anvil, find_yagna, missing

__all__ = ["Localnet", "LocalnetError", "LocalnetUnavailable", "find_anvil", "find_yagna",
           "missing"]
