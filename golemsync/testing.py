"""pytest fixtures for testing your own requestor code offline, on a devnet.

Installed as a pytest plugin (entry point ``pytest11``), so with golemsync installed these
fixtures are simply there:

``golemsync_devnet``
    a fresh in-process devnet for one test (4 honest providers, fixed seed);
``golemsync_devnet_session``
    one devnet shared by the whole test session (faster; state carries over between tests);
``golemsync_golem``
    a connected :class:`~golemsync.Golem` on ``golemsync_devnet`` (budget 10 GLM, short
    polls), closed — agreements ended, invoices paid — after the test;
``golemsync_make_devnet``
    a factory: ``golemsync_make_devnet(providers=8, provider_faults={"fail_rate": 0.2},
    http_error_rate=0.05, seed=1)``; every devnet it makes is stopped after the test.

Fault options for ``golemsync_devnet`` (and so ``golemsync_golem``) come from a marker::

    @pytest.mark.golemsync_devnet(providers=2, provider_faults={"crash_rate": 1.0})
    def test_survives_crashes(golemsync_golem): ...

Any :class:`~golemsync.devnet.DevnetConfig` field can be given, plus ``providers`` (a count or
a list of :class:`~golemsync.devnet.ProviderSpec`) and ``provider_faults`` (ProviderSpec fields
applied to every provider).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from .engine import Golem

DEFAULT_SEED = 1234


def devnet_config(**options: Any) -> Any:
    """A :class:`DevnetConfig` from the keyword options described in the module docstring."""
    from .devnet import DevnetConfig

    providers = options.pop("providers", 4)
    faults = options.pop("provider_faults", None) or {}
    seed = options.pop("seed", DEFAULT_SEED)
    count = providers if isinstance(providers, int) else 0
    base = DevnetConfig.default(count, seed)
    specs = base.providers if isinstance(providers, int) else list(providers)
    specs = [dataclasses.replace(spec, **faults) for spec in specs]
    return dataclasses.replace(base, providers=specs, **options)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "golemsync_devnet(**options): configure the golemsync_devnet fixture "
        "(providers, provider_faults, any DevnetConfig field)")


@pytest.fixture
def golemsync_make_devnet() -> Iterator[Callable[..., Any]]:
    """Factory of devnets (see the module docstring); all are stopped after the test."""
    from .devnet import Devnet

    made: list[Any] = []

    def make(**options: Any) -> Any:
        net = Devnet(devnet_config(**options))
        made.append(net)
        return net

    yield make
    for net in made:
        net.stop()


@pytest.fixture
def golemsync_devnet(request: pytest.FixtureRequest,
                     golemsync_make_devnet: Callable[..., Any]) -> Any:
    """A devnet for this test, configured by an optional ``golemsync_devnet`` marker."""
    marker = request.node.get_closest_marker("golemsync_devnet")
    return golemsync_make_devnet(**(marker.kwargs if marker else {}))


@pytest.fixture(scope="session")
def golemsync_devnet_session() -> Iterator[Any]:
    """One devnet for the whole session (4 providers, fixed seed)."""
    from .devnet import Devnet

    with Devnet(devnet_config()) as net:
        yield net


@pytest.fixture
def golemsync_golem(golemsync_devnet: Any) -> Iterator[Golem]:
    """A :class:`Golem` connected to ``golemsync_devnet``; closed after the test."""
    with Golem(budget=10, api_url=golemsync_devnet.url, app_key=golemsync_devnet.app_key,
               poll_timeout=1.0, invoice_timeout=15) as golem:
        yield golem
