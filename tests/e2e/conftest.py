"""End-to-end fixtures: a real devnet on a free loopback port, stopped after each test.

``devnet``: 4 honest providers, seed ``DEVNET_SEED``. ``make_devnet(**kwargs)``: the same with
changes — any ``DevnetConfig`` field (``http_error_rate=0.3``, ``providers=[ProviderSpec...]``
or a count, ``debit_note_interval=0.2``...), ``provider_faults={"crash_rate": 1.0}`` applied to
every provider, or ``Devnet`` keywords (``app_key``, ``subprocess``, ``exeunit_factory``).
Until golemsync/devnet/exeunit.py exists, activities run on a small fake exe-unit.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest

from golemsync.devnet import Devnet, DevnetConfig

DEVNET_SEED = 20240601
_DEVNET_KEYWORDS = ("app_key", "port", "subprocess", "exeunit_factory")


def real_exeunit_available() -> bool:
    return importlib.util.find_spec("golemsync.devnet.exeunit") is not None


def _default_factory() -> Optional[Callable[..., Any]]:
    if real_exeunit_available():
        return None
    from devnet_fake_exeunit import FakeExeUnit

    return FakeExeUnit


def build_config(**changes: Any) -> DevnetConfig:
    """``DevnetConfig.default(4, DEVNET_SEED)`` with ``changes`` applied (see module doc)."""
    providers = changes.pop("providers", 4)
    faults = changes.pop("provider_faults", None) or {}
    seed = changes.pop("seed", DEVNET_SEED)
    base = DevnetConfig.default(providers if isinstance(providers, int) else 0, seed)
    specs = base.providers if isinstance(providers, int) else list(providers)
    specs = [dataclasses.replace(spec, **faults) for spec in specs]
    return dataclasses.replace(base, providers=specs, **changes)


@pytest.fixture
def make_devnet() -> Iterator[Callable[..., Devnet]]:
    """A factory of devnets; every one made is stopped at teardown."""
    made: list[Devnet] = []

    def make(**kwargs: Any) -> Devnet:
        options = {k: kwargs.pop(k) for k in _DEVNET_KEYWORDS if k in kwargs}
        options.setdefault("exeunit_factory", _default_factory())
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
