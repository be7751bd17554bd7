"""vm.repo and the image registry lookup (HTTP faked with responses)."""

from __future__ import annotations

import pytest
import responses

from golemsync import ConfigurationError, GolemError, ProtocolError, vm
from golemsync.rest.images import ImageRegistry

REGISTRY = "https://registry.test"
HASH = "9a3b5d67b0b27746283cb5f287c13eab1beaa12d92a9f536b747c7ae"
URL = "http://registry.test/download/image.gvmi"


@responses.activate
def test_resolve_by_hash_and_by_tag() -> None:
    responses.get(f"{REGISTRY}/v1/image/info", json={"sha3": HASH, "http": URL, "size": 1})
    registry = ImageRegistry(REGISTRY)
    image = registry.resolve(image_hash=HASH)
    assert (image.hash, image.url) == (HASH, URL)
    assert responses.calls[0].request.params == {"hash": HASH}
    registry.resolve(image_tag="golem/examples-blender:latest")
    assert responses.calls[1].request.params == {"tag": "golem/examples-blender:latest"}


@responses.activate
def test_unknown_image_and_bad_replies() -> None:
    responses.get(f"{REGISTRY}/v1/image/info", status=404, body="not found")
    with pytest.raises(GolemError, match="does not know"):
        ImageRegistry(REGISTRY).resolve(image_tag="nobody/nothing:1")
    responses.replace(responses.GET, f"{REGISTRY}/v1/image/info", json={"unexpected": 1})
    with pytest.raises(ProtocolError, match="unexpected registry reply"):
        ImageRegistry(REGISTRY).resolve(image_hash=HASH)


def test_unreachable_registry_says_how_to_skip_the_lookup() -> None:
    with pytest.raises(GolemError, match="image_url"):
        ImageRegistry("http://127.0.0.1:9").resolve(image_hash=HASH)


@responses.activate
def test_vm_repo_builds_the_demand_and_looks_up_only_when_needed() -> None:
    payload = vm.repo(image_hash=HASH, image_url=URL, min_mem_gib=1, min_storage_gib=4,
                      min_cpu_threads=2, capabilities=["vpn"])
    assert len(responses.calls) == 0
    assert payload.properties == {
        "golem.srv.comp.task_package": f"hash:sha3:{HASH}:{URL}",
        "golem.srv.comp.vm.package_format": "gvmkit-squash"}
    assert payload.constraints == ["(golem.inf.mem.gib>=1.0)", "(golem.inf.storage.gib>=4.0)",
                                   "(golem.inf.cpu.threads>=2)", "(golem.runtime.name=vm)",
                                   "(golem.runtime.capabilities=vpn)"]
    responses.get(f"{REGISTRY}/v1/image/info", json={"sha3": HASH, "http": URL})
    looked_up = vm.repo(image_tag="golem/x:1", registry_url=REGISTRY)
    assert looked_up.properties["golem.srv.comp.task_package"] == f"hash:sha3:{HASH}:{URL}"


@pytest.mark.parametrize("kwargs, message", [
    ({}, "image_hash"),
    ({"image_hash": "xyz"}, "56 hex"),
    ({"image_hash": HASH, "image_url": URL, "min_mem_gib": 0}, "positive"),
    ({"image_hash": HASH, "image_url": URL, "min_cpu_threads": 0}, "at least 1"),
])
def test_vm_repo_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        vm.repo(**kwargs)  # type: ignore[arg-type]
