from __future__ import annotations

import pytest

from golemsync.devnet import DevnetConfig, ProviderSpec


def test_overcharge_applies_to_the_documents_named() -> None:
    both = ProviderSpec(name="a", overcharge=3.0)
    notes = ProviderSpec(name="b", overcharge=9.2, overcharge_on="debit_notes")
    invoices = ProviderSpec(name="c", overcharge=50.0, overcharge_on="invoices")
    assert (both.bills("debit_notes"), both.bills("invoices")) == (3.0, 3.0)
    assert (notes.bills("debit_notes"), notes.bills("invoices")) == (9.2, 1.0)
    assert (invoices.bills("debit_notes"), invoices.bills("invoices")) == (1.0, 50.0)
    assert ProviderSpec(name="honest").bills("invoices") == 1.0


@pytest.mark.parametrize("fields", [{"overcharge_on": "everything"}, {"overcharge": 0},
                                    {"inflate_usage": -1.0}, {"phantom_activities": -1},
                                    {"notes_after_termination": -2}])
def test_nonsense_billing_faults_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ProviderSpec(name="x", **fields)  # type: ignore[arg-type]


def test_billing_faults_round_trip_through_json() -> None:
    spec = ProviderSpec(name="cheat", overcharge=3.0, overcharge_on="invoices",
                        inflate_usage=2.0, phantom_activities=1, notes_after_termination=4)
    config = DevnetConfig(providers=[spec], seed=1)
    assert DevnetConfig.from_dict(config.to_dict()).providers == [spec]
