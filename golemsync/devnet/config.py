"""What a devnet simulates: its providers, their prices and faults, and the network's knobs.

Everything random in the devnet derives from ``DevnetConfig.seed`` so a run with faults can be
repeated exactly. A config round-trips through JSON (``to_dict``/``from_dict``/``from_file``),
which is how ``Devnet(subprocess=True)`` hands it to the child process.
"""

from __future__ import annotations

import dataclasses
import json
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional, Union

USAGE_VECTOR = ("golem.usage.cpu_sec", "golem.usage.duration_sec")
DEFAULT_DEBIT_NOTE_INTERVAL = 2.0
OVERCHARGE_ON = ("both", "debit_notes", "invoices")
_NAMES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
          "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa")


@dataclass(frozen=True)
class ProviderSpec:
    """One simulated provider: what it offers, what it charges, how it misbehaves.

    Prices are GLM per second of each usage counter (``price_cpu_sec``, ``price_duration_sec``)
    plus a fixed ``price_start`` per activity; they become the offer's linear pricing coeffs.
    ``slow_factor`` stretches command run time, ``fail_rate``/``crash_rate`` are per-command
    probabilities the exe-unit draws from its seeded RNG. ``refuse_agreement`` makes the
    provider reject every agreement; ``no_invoice`` makes it never send an invoice;
    ``approval_delay`` is how long it takes to approve (or reject) a confirmed agreement.

    Billing faults (honest defaults): ``overcharge`` multiplies the amounts it bills, on
    ``overcharge_on`` = ``"both"``, ``"debit_notes"`` or ``"invoices"``; ``inflate_usage``
    multiplies the usage counters it reports (and bills for them: the amounts stay consistent
    with the inflated counters); ``phantom_activities`` adds that many activity ids it never ran
    to its invoices, each billed like its costliest real activity; ``notes_after_termination``
    makes it keep sending that many debit notes per activity after the agreement ended (every
    debit-note interval, the duration counter still running).
    """

    name: str
    cpu_threads: int = 4
    mem_gib: float = 8.0
    storage_gib: float = 40.0
    price_cpu_sec: float = 0.0001
    price_duration_sec: float = 0.00002
    price_start: float = 0.0
    slow_factor: float = 1.0
    fail_rate: float = 0.0
    crash_rate: float = 0.0
    refuse_agreement: bool = False
    no_invoice: bool = False
    approval_delay: float = 0.0
    overcharge: float = 1.0
    overcharge_on: str = "both"
    inflate_usage: float = 1.0
    phantom_activities: int = 0
    notes_after_termination: int = 0
    runtime_name: str = "vm"
    runtime_version: str = "0.4.0"
    subnet: Optional[str] = None

    def __post_init__(self) -> None:
        if self.overcharge_on not in OVERCHARGE_ON:
            raise ValueError(f"overcharge_on must be one of {OVERCHARGE_ON}, "
                             f"got {self.overcharge_on!r}")
        if self.overcharge <= 0 or self.inflate_usage <= 0:
            raise ValueError("overcharge and inflate_usage must be more than 0")
        if self.phantom_activities < 0 or self.notes_after_termination < 0:
            raise ValueError("phantom_activities and notes_after_termination must be >= 0")

    def bills(self, document: str) -> float:
        """The factor applied to the amount of a ``"debit_notes"`` or ``"invoices"`` document."""
        return self.overcharge if self.overcharge_on in ("both", document) else 1.0

    @property
    def coeffs(self) -> list[float]:
        """Linear pricing coeffs in usage-vector order, then the start price."""
        return [self.price_cpu_sec, self.price_duration_sec, self.price_start]


@dataclass(frozen=True)
class DevnetConfig:
    """The whole simulated network. ``seed`` drives ids, fault draws and provider jitter.

    ``debit_note_interval`` (seconds) is how often each running activity gets a debit note,
    unless the requestor's demand asks for a longer ``golem.com.scheme.payu.debit-note.
    interval-sec?`` (see :mod:`golemsync.devnet.invoicing` for the accepted bounds);
    ``http_error_rate`` is the share of authenticated requests answered 503 before being
    handled, ``http_latency`` the mean delay added to each of them; ``subscription_ttl`` is the
    demand lifetime (the daemon's hour); ``requestor_funds`` the requestor's account balance.

    ``quick_failed_batch_poll``: a results poll (``GET .../exec/{batch}``) for a command after
    one that failed waits out its ``timeout``, as the daemon's exe-unit does (PROTOCOL §4.6;
    yapapi-style polls without ``commandIndex`` meet this); True answers it at once instead.
    golemsync's own client polls the failed command itself and is never held up.
    """

    providers: list[ProviderSpec]
    seed: int
    debit_note_interval: float = DEFAULT_DEBIT_NOTE_INTERVAL
    subnet: str = "public"
    payment_platform: str = "erc20-holesky-tglm"
    http_error_rate: float = 0.0
    http_latency: float = 0.0
    subscription_ttl: float = 3600.0
    sse_ping_interval: float = 15.0
    requestor_funds: Decimal = Decimal("1000")
    invoice_due_seconds: float = 86400.0
    quick_failed_batch_poll: bool = False
    workdir: Optional[str] = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def default(cls, providers: int = 4, seed: Optional[int] = None) -> DevnetConfig:
        """``providers`` honest providers that differ in price and speed (seeded jitter)."""
        if providers < 0:
            raise ValueError("providers must be >= 0")
        actual_seed = secrets.randbits(32) if seed is None else seed
        rng = random.Random(f"golemsync-devnet:{actual_seed}:providers")
        specs = [_default_provider(i, rng) for i in range(providers)]
        return cls(providers=specs, seed=actual_seed)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DevnetConfig:
        """Build from a JSON-like mapping; ``providers`` may be a count or a list of specs."""
        values = dict(data)
        seed = values.pop("seed", None)
        raw = values.pop("providers", 4)
        base = cls.default(raw if isinstance(raw, int) else 0, seed)
        specs = base.providers if isinstance(raw, int) else [ProviderSpec(**p) for p in raw]
        if "requestor_funds" in values:
            values["requestor_funds"] = Decimal(str(values["requestor_funds"]))
        return dataclasses.replace(base, providers=specs, **values)

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> DevnetConfig:
        """Load a JSON file shaped like :meth:`to_dict`'s output (missing keys take defaults)."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (money as a string)."""
        data = dataclasses.asdict(self)
        data["requestor_funds"] = str(self.requestor_funds)
        data["extra"] = dict(self.extra)
        return data


def _default_provider(index: int, rng: random.Random) -> ProviderSpec:
    jitter = 1.0 + rng.random() * 0.2
    suffix = "" if index < len(_NAMES) else f"-{index // len(_NAMES)}"
    return ProviderSpec(
        name=f"{_NAMES[index % len(_NAMES)]}{suffix}-node",
        cpu_threads=2 ** (1 + index % 3),
        mem_gib=float(4 * (1 + index % 4)),
        storage_gib=float(20 + 10 * (index % 3)),
        price_cpu_sec=round(0.0001 * (1 + 0.25 * index) * jitter, 8),
        price_duration_sec=round(0.00002 * (1 + 0.5 * (index % 4)) * jitter, 8),
        price_start=round(0.0005 * (index % 3), 8),
        slow_factor=round(1.0 + 0.25 * (index % 4), 2),
    )
