from __future__ import annotations

import pytest

from golemsync import Config, ConfigurationError
from golemsync.config import DEFAULT_API_URL


def test_defaults_from_empty_environment() -> None:
    config = Config.load(environ={"YAGNA_APPKEY": "k"})
    assert config.api_url == DEFAULT_API_URL
    assert config.market_url == DEFAULT_API_URL + "/market-api/v1"
    assert config.activity_url == DEFAULT_API_URL + "/activity-api/v1"
    assert config.payment_url == DEFAULT_API_URL + "/payment-api/v1"
    assert config.identity_url == DEFAULT_API_URL
    assert (config.subnet, config.payment_driver, config.payment_network) == (
        "public",
        "erc20",
        "holesky",
    )
    assert config.payment_platform == "erc20-holesky-tglm"


def test_arguments_win_over_environment() -> None:
    env = {
        "YAGNA_APPKEY": "env-key",
        "YAGNA_API_URL": "http://10.0.0.1:1/",
        "YAGNA_SUBNET": "devnet-beta",
        "YAGNA_MARKET_URL": "http://elsewhere:2/market-api/v1",
    }
    config = Config.load(app_key="arg-key", api_url="http://127.0.0.1:9", environ=env)
    assert config.app_key == "arg-key"
    assert config.api_url == "http://127.0.0.1:9"
    # an explicit base URL is not mixed with per-API overrides from the environment
    assert config.market_url == "http://127.0.0.1:9/market-api/v1"
    assert config.subnet == "devnet-beta"


def test_per_api_overrides_from_environment() -> None:
    env = {"YAGNA_APPKEY": "k", "YAGNA_PAYMENT_URL": "http://pay:1/payment-api/v1/"}
    config = Config.load(environ=env)
    assert config.payment_url == "http://pay:1/payment-api/v1"
    assert config.market_url == DEFAULT_API_URL + "/market-api/v1"


def test_mainnet_platform() -> None:
    config = Config.load(environ={"YAGNA_APPKEY": "k", "YAGNA_PAYMENT_NETWORK": "polygon"})
    assert config.payment_platform == "erc20-polygon-glm"


def test_missing_app_key_says_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="YAGNA_APPKEY"):
        Config.load(environ={})


def test_bad_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not an http"):
        Config.load(app_key="k", api_url="127.0.0.1:7465", environ={})


def test_app_key_never_in_repr() -> None:
    config = Config.load(environ={"YAGNA_APPKEY": "s3cr3t-key"})
    assert "s3cr3t-key" not in repr(config)
    assert "s3cr3t-key" not in str(config)
