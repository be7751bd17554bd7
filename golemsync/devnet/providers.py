"""The simulated providers: node identities and the offers they publish on the market."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from golemsync import timestamps
from golemsync.devnet.config import USAGE_VECTOR, DevnetConfig, ProviderSpec
from golemsync.devnet.faults import derived_rng

TRANSFER_PROTOCOLS = ["gftp", "http", "https"]


def node_id(seed: int, *labels: object) -> str:
    """A seeded node id: ``0x`` + 40 lowercase hex."""
    return f"0x{derived_rng(seed, 'node', *labels).getrandbits(160):040x}"


@dataclass
class SimulatedProvider:
    """One provider node of the devnet and its single offer."""

    index: int
    spec: ProviderSpec
    node_id: str
    offer_id: str
    properties: dict[str, Any]
    constraints: str
    timestamp: str

    @property
    def coeffs(self) -> list[float]:
        return self.spec.coeffs


def build_providers(config: DevnetConfig) -> list[SimulatedProvider]:
    """Every provider of ``config`` with its node id and offer."""
    providers = []
    for index, spec in enumerate(config.providers):
        ident = node_id(config.seed, "provider", index)
        offer_rng = derived_rng(config.seed, "offer", index)
        offer_id = f"{offer_rng.getrandbits(128):032x}-{offer_rng.getrandbits(256):064x}"
        subnet = spec.subnet or config.subnet
        providers.append(SimulatedProvider(
            index=index, spec=spec, node_id=ident, offer_id=offer_id,
            properties=offer_properties(spec, ident, config),
            constraints=("(&(golem.srv.comp.expiration>0)\n"
                         f"\t(golem.node.debug.subnet={subnet}))"),
            timestamp=timestamps.to_wire(timestamps.now()),
        ))
    return providers


def offer_properties(spec: ProviderSpec, ident: str, config: DevnetConfig) -> dict[str, Any]:
    """The flat offer properties of PROTOCOL §3.5 for one provider."""
    platform = config.payment_platform
    return {
        "golem.node.id.name": spec.name,
        "golem.node.debug.subnet": spec.subnet or config.subnet,
        "golem.runtime.name": spec.runtime_name,
        "golem.runtime.version": spec.runtime_version,
        "golem.runtime.capabilities": ["inet", "vpn"],  # vpn: golemsync.devnet.netapi
        "golem.inf.mem.gib": float(spec.mem_gib),
        "golem.inf.storage.gib": float(spec.storage_gib),
        "golem.inf.cpu.threads": int(spec.cpu_threads),
        "golem.inf.cpu.cores": max(1, int(spec.cpu_threads) // 2),
        "golem.inf.cpu.architecture": "x86_64",
        "golem.com.scheme": "payu",
        "golem.com.pricing.model": "linear",
        "golem.com.usage.vector": list(USAGE_VECTOR),
        "golem.com.pricing.model.linear.coeffs": [float(c) for c in spec.coeffs],
        f"golem.com.payment.platform.{platform}.address": ident,
        "golem.com.payment.protocol.version": "3",
        "golem.com.payment.debit-notes.accept-timeout?": 240,
        "golem.com.scheme.payu.debit-note.interval-sec?": config.debit_note_interval,
        "golem.activity.caps.transfer.protocol": list(TRANSFER_PROTOCOLS),
        "golem.srv.caps.multi-activity": True,
    }
