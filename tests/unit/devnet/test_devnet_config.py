"""DevnetConfig: seeded defaults, JSON round trip, and the linear price it implies."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from golemsync.devnet.config import USAGE_VECTOR, DevnetConfig, ProviderSpec
from golemsync.devnet.events import UniqueClock
from golemsync.devnet.invoicing import cost
from golemsync.devnet.providers import build_providers


def test_default_is_seeded_and_varied() -> None:
    config = DevnetConfig.default(6, seed=11)
    assert config == DevnetConfig.default(6, seed=11)
    assert config.seed == 11 and len(config.providers) == 6
    assert len({p.name for p in config.providers}) == 6
    assert DevnetConfig.default(0, seed=1).providers == []
    with pytest.raises(ValueError):
        DevnetConfig.default(-1)


def test_json_round_trip(tmp_path: Path) -> None:
    config = DevnetConfig(providers=[ProviderSpec("a", crash_rate=0.5)], seed=3,
                          http_error_rate=0.1, requestor_funds=Decimal("12.5"))
    path = tmp_path / "devnet.json"
    path.write_text(json.dumps(config.to_dict()))
    assert DevnetConfig.from_file(path) == config


def test_from_dict_accepts_a_provider_count() -> None:
    config = DevnetConfig.from_dict({"providers": 2, "seed": 4, "debit_note_interval": 0.5})
    assert len(config.providers) == 2 and config.debit_note_interval == 0.5


def test_offers_carry_the_pricing_contract() -> None:
    config = DevnetConfig.default(2, seed=5)
    provider = build_providers(config)[1]
    props = provider.properties
    assert props["golem.com.usage.vector"] == list(USAGE_VECTOR)
    assert props["golem.com.pricing.model.linear.coeffs"] == provider.spec.coeffs
    assert props[f"golem.com.payment.platform.{config.payment_platform}.address"] == \
        provider.node_id
    assert provider.node_id.startswith("0x") and len(provider.node_id) == 42


def test_cost_is_linear_plus_start_price() -> None:
    assert cost([0.1, 0.01, 0.5], [10.0, 100.0]) == Decimal("2.5")
    assert cost([0.0001, 0.00002, 0.0], []) == Decimal("0")


def test_unique_clock_is_strictly_increasing() -> None:
    clock = UniqueClock()
    moments = [clock.now() for _ in range(1000)]
    assert all(a < b for a, b in zip(moments, moments[1:]))
