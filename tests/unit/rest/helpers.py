"""Shared pieces of the REST layer's unit tests (HTTP faked with `responses`)."""

from __future__ import annotations

import json
from typing import Any

import responses

from golemsync.config import Config
from golemsync.rest import RequestsTransport, RetryPolicy, YagnaClient

BASE = "http://yagna.test:7465"
MARKET = BASE + "/market-api/v1"
ACTIVITY = BASE + "/activity-api/v1"
PAYMENT = BASE + "/payment-api/v1"
APP_KEY = "s3cret-app-key"
FAST = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.002, deadline=5.0)
TS = "2025-05-01T12:00:03.123456789Z"


def make_client(retry: RetryPolicy = FAST) -> YagnaClient:
    # `responses` fakes HTTP inside requests, so these tests carry it over RequestsTransport
    return YagnaClient(Config.load(app_key=APP_KEY, api_url=BASE, environ={}), retry=retry,
                       transport=RequestsTransport())


def sent(index: int = -1) -> Any:
    """The JSON body of a recorded request (None when it had none)."""
    body = responses.calls[index].request.body
    if body is None:
        return None
    return json.loads(body)


def query(index: int = -1) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(responses.calls[index].request.url).query))
