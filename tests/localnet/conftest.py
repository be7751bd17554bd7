"""The localnet tier: real yagna nodes, anvil and the project's provider programs.

Every test here is marked ``localnet`` and skips with the reason when ``yagna`` (``pip install
'golemsync[localnet]'``) or ``anvil`` (npm ``@foundry-rs/anvil-linux-amd64``, on PATH or in
``GOLEMSYNC_ANVIL``) is missing. One localnet with two providers is shared by the session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from localnet_helpers import require_localnet

from golemsync.localnet import Localnet


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tier's tests, and run them after every other test: the session's localnet
    lives until the end of the run, and its provider programs' HTTP calls must not meet the
    unit tests' patched ``requests`` (``responses``)."""
    ours = [item for item in items
            if "tests/localnet/" in str(item.path).replace("\\", "/")]
    for item in ours:
        item.add_marker(pytest.mark.localnet)
        item.add_marker(pytest.mark.slow)
    chosen = set(map(id, ours))
    items[:] = [item for item in items if id(item) not in chosen] + ours


@pytest.fixture(scope="session")
def localnet() -> Iterator[Localnet]:
    """Two provider nodes, a requestor node, a hub and a chain, for the whole session."""
    require_localnet()
    with Localnet(2, seed=7) as net:
        yield net
