from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from golemsync import money, timestamps


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2020-12-21T15:51:21.126645Z", datetime(2020, 12, 21, 15, 51, 21, 126645, timezone.utc)),
        (
            "2020-12-21T15:51:21.126645123Z",
            datetime(2020, 12, 21, 15, 51, 21, 126645, timezone.utc),
        ),
        ("2020-12-21T15:51:21.5Z", datetime(2020, 12, 21, 15, 51, 21, 500000, timezone.utc)),
        ("2020-12-21T15:51:21Z", datetime(2020, 12, 21, 15, 51, 21, tzinfo=timezone.utc)),
        ("2015-10-13T15:43:00", datetime(2015, 10, 13, 15, 43, tzinfo=timezone.utc)),
        ("2020-12-21T17:51:21+02:00", datetime(2020, 12, 21, 15, 51, 21, tzinfo=timezone.utc)),
    ],
)
def test_parse_timestamps(text: str, expected: datetime) -> None:
    parsed = timestamps.parse(text)
    assert parsed == expected
    assert parsed.tzinfo is not None


def test_format_round_trips_and_uses_z() -> None:
    moment = datetime(2025, 5, 1, 14, 0, 0, 42, tzinfo=timezone(timedelta(hours=2)))
    text = timestamps.to_wire(moment)
    assert text == "2025-05-01T12:00:00.000042Z"
    assert timestamps.parse(text) == moment


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        timestamps.parse("yesterday")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0.012345", Decimal("0.012345")),
        (1, Decimal(1)),
        (0.1, Decimal("0.1")),
        ("1E-3", Decimal("0.001")),
    ],
)
def test_amounts(value: object, expected: Decimal) -> None:
    assert money.to_decimal(value) == expected


@pytest.mark.parametrize("value", ["abc", "NaN", True, None])
def test_bad_amounts(value: object) -> None:
    with pytest.raises(ValueError):
        money.to_decimal(value)


def test_amount_to_wire_has_no_exponent() -> None:
    assert money.to_wire(Decimal("1E-7")) == "0.0000001"
    assert money.to_wire(Decimal("10.500")) == "10.5"
    assert money.to_wire(3) == "3"
