"""`golemsync status`, `offers`, `estimate` and `devnet`, run as a user would, on a devnet and
without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from golemsync.devnet import Devnet

pytestmark = pytest.mark.e2e


def golemsync(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("YAGNA_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "golemsync", *args], env=full,
                          capture_output=True, text=True, timeout=60)


def test_status_on_the_devnet(devnet: Devnet) -> None:
    result = golemsync("status", "--json", env=devnet.env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["identity"] == devnet.node_id
    assert report["platform"] == "erc20-holesky-tglm"
    assert "devnet" in report["network"]


def test_status_diagnoses_a_daemon_that_is_down() -> None:
    result = golemsync("status", env={"YAGNA_API_URL": "http://127.0.0.1:9", "YAGNA_APPKEY": "k"})
    assert result.returncode == 1
    assert "no yagna daemon answers" in result.stdout and "golemsync devnet" in result.stdout


def test_status_diagnoses_a_wrong_key(devnet: Devnet) -> None:
    result = golemsync("status", env={**devnet.env, "YAGNA_APPKEY": "wrong-key"})
    assert result.returncode == 1
    assert "YAGNA_APPKEY" in result.stdout and "wrong-key" not in result.stdout


def test_status_without_a_key_says_what_to_set() -> None:
    result = golemsync("status", env={})
    assert result.returncode == 1 and "YAGNA_APPKEY" in result.stdout


def test_offers_lists_every_provider_with_prices(devnet: Devnet) -> None:
    result = golemsync("offers", "--timeout", "1", "--json", env=devnet.env)
    assert result.returncode == 0, result.stderr
    offers = json.loads(result.stdout)
    assert len(offers) == len(devnet.config.providers)
    assert len({o["provider_id"] for o in offers}) == len(offers)
    assert all(o["price_per_hour"] is not None for o in offers)
    table = golemsync("offers", "--timeout", "1", env=devnet.env)
    assert table.returncode == 0 and "GLM/h" in table.stdout


def test_offers_respects_requirements(devnet: Devnet) -> None:
    result = golemsync("offers", "--timeout", "1", "--min-mem-gib", "100000", env=devnet.env)
    assert result.returncode == 1 and "no offers matched" in result.stdout


def test_offers_json_reports_errors_as_json() -> None:
    result = golemsync("offers", "--timeout", "1", "--json",
                       env={"YAGNA_API_URL": "http://127.0.0.1:9", "YAGNA_APPKEY": "k"})
    assert result.returncode == 1
    assert "no yagna daemon answers" in json.loads(result.stdout)["error"]


def test_devnet_refuses_zero_providers() -> None:
    result = golemsync("devnet", "--providers", "0", env={})
    assert result.returncode == 2 and "--providers must be at least 1" in result.stderr


def test_estimate_plans_the_job_from_the_offers(devnet: Devnet) -> None:
    args = ("estimate", "--tasks", "10", "--seconds-per-task", "30", "--max-workers", "3",
            "--timeout", "1")
    result = golemsync(*args, "--budget", "5", "--json", env=devnet.env)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [p["tasks"] for p in report["providers"]] == [4, 3, 3]
    cost = {k: Decimal(v) for k, v in report["cost_glm"].items()}
    assert 0 < cost["low"] < cost["likely"] < cost["high"]
    assert "E" not in report["cost_glm"]["likely"]
    assert report["wall_seconds"] == {"low": 100.0, "likely": 120.0, "high": 180.0}
    assert report["budget_covers_likely"] is True
    poor = golemsync(*args, "--budget", "0.0000001", env=devnet.env)
    assert poor.returncode == 1 and "does NOT cover" in poor.stdout
    nothing = golemsync(*args, "--min-mem-gib", "100000", "--json", env=devnet.env)
    assert nothing.returncode == 1 and "no usable offer" in json.loads(nothing.stdout)["error"]


def test_offers_against_a_daemon_that_is_down() -> None:
    result = golemsync("offers", "--timeout", "1",
                       env={"YAGNA_API_URL": "http://127.0.0.1:9", "YAGNA_APPKEY": "k"})
    assert result.returncode == 1 and "no yagna daemon answers" in result.stderr
