"""Jobs through golemsync's Golem on real yagna nodes (see conftest.py)."""

from __future__ import annotations

import pytest
from localnet_helpers import PAYLOAD, echo_worker, golem_on

from golemsync.localnet import Localnet

pytestmark = pytest.mark.timeout(180)


def test_hello_runs_on_a_real_daemon(localnet: Localnet) -> None:
    names = {p.name for p in localnet.providers}
    with golem_on(localnet) as golem:
        (task,) = list(golem.execute_tasks(echo_worker, ["hello"], PAYLOAD, max_workers=1))
    assert task.result == "hello"
    assert task.provider_name in names
    assert golem.spent > 0  # the provider program's invoice was accepted


def test_ten_tasks_on_two_providers(localnet: Localnet) -> None:
    names = {p.name for p in localnet.providers}
    with golem_on(localnet) as golem:
        done = list(golem.execute_tasks(echo_worker, range(10), PAYLOAD, max_workers=2))
    assert sorted(t.data for t in done) == list(range(10))
    assert all(t.result == str(t.data) for t in done)
    assert {t.provider_name for t in done} == names
    assert golem.spent > 0
