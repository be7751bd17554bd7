"""network(): a daemon URL without an app key is a mistake, not a reason to use a devnet."""

from __future__ import annotations

import pytest

from golemsync import ConfigurationError, network


def test_api_url_without_app_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YAGNA_API_URL", "http://127.0.0.1:7465")
    monkeypatch.delenv("YAGNA_APPKEY", raising=False)
    with pytest.raises(ConfigurationError, match="set YAGNA_APPKEY .* or unset YAGNA_API_URL"):
        with network():
            pass


def test_with_an_app_key_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YAGNA_API_URL", "http://127.0.0.1:7465")
    monkeypatch.setenv("YAGNA_APPKEY", "key")
    with network() as connection:
        assert connection == {}
