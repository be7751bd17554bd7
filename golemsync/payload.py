"""Payloads: what to run, as demand properties and constraints.

``vm.repo(...)`` describes a VM image and the resources it needs::

    payload = vm.repo(image_hash="9a3b5d67...", min_mem_gib=0.5, min_cpu_threads=1)

With both ``image_hash`` and ``image_url`` nothing is looked up (so the devnet needs no
internet); with only a hash or a tag, the image registry is asked for the rest once, when the
payload is built.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import ConfigurationError

_SHA3_224 = re.compile(r"^[0-9a-f]{56}$")


@dataclass(frozen=True)
class Requirement:
    """One constraint on an offer's property: ``key >= value``, or ``key = value`` (for a list
    property: the list contains ``value``). Kept in this form so the engine can tell, from the
    offers that exist, which requirement none of them meets."""

    key: str
    op: str  # ">=" or "="
    value: Any

    @property
    def constraint(self) -> str:
        return f"({self.key}{self.op}{self.value})"

    def met_by(self, properties: dict[str, Any]) -> bool:
        """Whether an offer with ``properties`` meets this requirement."""
        offered = properties.get(self.key)
        if self.op == ">=":
            return isinstance(offered, (int, float)) and offered >= self.value
        if isinstance(offered, list):
            return self.value in offered
        return offered is not None and str(offered) == str(self.value)


@dataclass(frozen=True)
class Payload:
    """Demand properties (flat keys) and constraint clauses the payload implies.

    ``requirements`` are the structured form of the constraints that come from it (all of
    ``constraints`` when the payload was built by :data:`vm`).
    """

    properties: dict[str, Any] = field(default_factory=dict)
    constraints: list[str] = field(default_factory=list)
    requirements: tuple[Requirement, ...] = ()


class _Vm:
    """The ``vm`` runtime: ``vm.repo(...)``."""

    def repo(
        self,
        *,
        image_hash: Optional[str] = None,
        image_tag: Optional[str] = None,
        image_url: Optional[str] = None,
        min_mem_gib: float = 0.5,
        min_storage_gib: float = 2.0,
        min_cpu_threads: int = 1,
        capabilities: Sequence[str] = (),
        registry_url: Optional[str] = None,
    ) -> Payload:
        """A VM image payload. Give ``image_hash`` (SHA3-224 hex) or ``image_tag``.

        Raises :class:`ConfigurationError` for missing or malformed arguments, and a
        :class:`GolemError` when a needed registry lookup fails.
        """
        _check_resources(min_mem_gib, min_storage_gib, min_cpu_threads)
        image_hash, image_url = _resolve(image_hash, image_tag, image_url, registry_url)
        properties = {
            "golem.srv.comp.task_package": f"hash:sha3:{image_hash}:{image_url}",
            "golem.srv.comp.vm.package_format": "gvmkit-squash",
        }
        requirements = (
            Requirement("golem.inf.mem.gib", ">=", float(min_mem_gib)),
            Requirement("golem.inf.storage.gib", ">=", float(min_storage_gib)),
            Requirement("golem.inf.cpu.threads", ">=", int(min_cpu_threads)),
            Requirement("golem.runtime.name", "=", "vm"),
            *(Requirement("golem.runtime.capabilities", "=", cap) for cap in capabilities),
        )
        return Payload(properties, [r.constraint for r in requirements], requirements)


def _check_resources(mem: float, storage: float, threads: int) -> None:
    if not mem > 0 or not storage > 0:
        raise ConfigurationError("min_mem_gib and min_storage_gib must be positive numbers")
    if not isinstance(threads, int) or threads < 1:
        raise ConfigurationError("min_cpu_threads must be a whole number, at least 1")


def _resolve(image_hash: Optional[str], image_tag: Optional[str], image_url: Optional[str],
             registry_url: Optional[str]) -> tuple[str, str]:
    if image_hash is None and image_tag is None:
        raise ConfigurationError("vm.repo needs image_hash= (SHA3-224 hex) or image_tag= "
                                 "(e.g. 'golem/examples-blender:latest')")
    if image_hash is not None:
        image_hash = image_hash.lower()
        if not _SHA3_224.match(image_hash):
            raise ConfigurationError(f"image_hash must be 56 hex digits (SHA3-224), got "
                                     f"{image_hash!r}")
        if image_url is not None:
            return image_hash, image_url
    from .rest.images import DEFAULT_REGISTRY, ImageRegistry  # only when a lookup is needed

    image = ImageRegistry(registry_url or DEFAULT_REGISTRY).resolve(
        image_hash=image_hash, image_tag=None if image_hash else image_tag)
    return image.hash, image_url or image.url


vm = _Vm()
