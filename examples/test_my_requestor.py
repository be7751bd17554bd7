"""How to test your own requestor code offline with golemsync's pytest fixtures.

Run with ``pytest examples/test_my_requestor.py``: the fixtures come from the golemsync
pytest plugin (installed with golemsync), no daemon or network is needed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Callable

import pytest

from golemsync import Golem, Script, Task, TaskStatus, WorkContext, vm
from golemsync.devnet import Devnet, DevnetConfig

PAYLOAD = vm.repo(image_hash="ab" * 28, image_url="http://registry.invalid/image.gvmi")


def shout(ctx: WorkContext, tasks: Iterator[Task[str]]) -> Iterator[Script]:
    """The requestor code under test: upper-cases words on providers."""
    for task in tasks:
        script = ctx.new_script(timeout=30)
        out = script.run("/bin/sh", "-c", f"echo {task.data} | tr a-z A-Z")
        yield script
        task.accept_result(out.result().text.strip())


def test_words_come_back_upper_cased(golemsync_golem: Golem) -> None:
    done = {t.data: t.result for t in golemsync_golem.execute_tasks(
        shout, ["golem", "network"], PAYLOAD, max_workers=2)}
    assert done == {"golem": "GOLEM", "network": "NETWORK"}


@pytest.mark.golemsync_devnet(providers=2, seed=7)
def test_devnet_marker_configures_the_network(golemsync_devnet: Devnet) -> None:
    assert len(golemsync_devnet.config.providers) == 2


def test_a_provider_whose_commands_fail_is_replaced(
    golemsync_make_devnet: Callable[..., Devnet],
) -> None:
    specs = DevnetConfig.default(3, seed=7).providers
    specs[0] = dataclasses.replace(specs[0], fail_rate=1.0)  # this one fails every command
    net = golemsync_make_devnet(providers=specs)
    with Golem(budget=5, api_url=net.url, app_key=net.app_key, poll_timeout=1.0) as golem:
        done = list(golem.execute_tasks(shout, ["a", "b", "c", "d"], PAYLOAD, max_workers=3))
    assert sorted(t.result for t in done) == ["A", "B", "C", "D"]
    assert all(t.status is TaskStatus.DONE and t.provider_name != specs[0].name for t in done)
