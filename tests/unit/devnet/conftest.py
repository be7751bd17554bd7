"""Exe-unit fixtures: ``make_unit(mode=..., quick=True, **provider_spec)`` and ``sandbox_mode``.

``quick`` (the default here) is the devnet's ``quick_failed_batch_poll``: ``finish`` then
returns as soon as a command fails; ``quick=False`` is the daemon's behaviour (a poll past a
failed command waits out its timeout), tested on its own.

``sandbox_mode`` runs a test once per way the devnet can run commands: ``bwrap`` (skipped
when bubblewrap cannot create namespaces here), ``plain`` (the fallback with unshare's pid,
mount and network namespaces; skipped when unshare cannot create them) and ``bare`` (the
last resort: a plain subprocess in its own session).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Optional

import pytest

from golemsync.devnet import sandbox
from golemsync.devnet.exeunit import ExeUnit

VECTOR = ["golem.usage.cpu_sec", "golem.usage.duration_sec"]


@pytest.fixture(params=["bwrap", "plain", "bare"])
def sandbox_mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    if mode == "bwrap" and not sandbox.bwrap_usable():
        pytest.skip("bubblewrap is missing or cannot create namespaces on this machine")
    if mode == "plain" and sandbox.unshare_prefix() is None:
        pytest.skip("unshare cannot create namespaces here: plain mode degrades to bare")
    return mode


@pytest.fixture
def make_unit(tmp_path: Path) -> Iterator[Callable[..., ExeUnit]]:
    units: list[ExeUnit] = []
    crashes: list[str] = []

    def make(mode: Optional[str] = None, seed: int = 1, quick: bool = True,
             **spec: Any) -> ExeUnit:
        provider = SimpleNamespace(**{"fail_rate": 0.0, "crash_rate": 0.0, "slow_factor": 1.0,
                                      **spec})
        unit = ExeUnit(f"act{len(units)}", workdir=tmp_path / f"a{len(units)}",
                       provider=provider, rng=random.Random(seed), gftp_root=tmp_path / "gftp",
                       usage_vector=VECTOR, on_crash=crashes.append, sandbox_mode=mode,
                       quick_failed_poll=quick)
        units.append(unit)
        return unit

    make.crashes = crashes  # type: ignore[attr-defined]
    yield make
    for unit in units:
        unit.destroy()
