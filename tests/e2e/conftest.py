"""End-to-end fixtures: a real devnet on a free loopback port, stopped after each test.

``devnet``: 4 honest providers, seed ``DEVNET_SEED``. ``make_devnet(**kwargs)``: the same with
changes — any ``DevnetConfig`` field (``http_error_rate=0.3``, ``providers=[ProviderSpec...]``
or a count, ``debit_note_interval=0.2``...), ``provider_faults={"crash_rate": 1.0}`` applied to
every provider, or ``Devnet`` keywords (``app_key``, ``subprocess``, ``exeunit_factory``).
The configuration is built exactly as the public pytest plugin builds it
(:func:`golemsync.testing.devnet_config`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

from golemsync.devnet import Devnet, DevnetConfig
from golemsync.testing import devnet_config

DEVNET_SEED = 20240601
_DEVNET_KEYWORDS = ("app_key", "port", "subprocess", "exeunit_factory")


def build_config(**changes: Any) -> DevnetConfig:
    """``DevnetConfig.default(4, DEVNET_SEED)`` with ``changes`` applied (see module doc)."""
    changes.setdefault("seed", DEVNET_SEED)
    config: DevnetConfig = devnet_config(**changes)
    return config


@pytest.fixture
def make_devnet() -> Iterator[Callable[..., Devnet]]:
    """A factory of devnets; every one made is stopped at teardown."""
    made: list[Devnet] = []

    def make(**kwargs: Any) -> Devnet:
        options = {k: kwargs.pop(k) for k in _DEVNET_KEYWORDS if k in kwargs}
        net = Devnet(build_config(**kwargs), **options)
        made.append(net)
        return net

    yield make
    for net in made:
        net.stop()


@pytest.fixture
def devnet(make_devnet: Callable[..., Devnet]) -> Devnet:
    """An in-process devnet: 4 providers, fixed seed."""
    return make_devnet()
