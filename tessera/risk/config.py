"""Every threshold of the engine in one object. Defaults follow the systems in anchors.md where they name a
number (Auth0: 10 failures per identifier and IP, 100 failed attempts per IP per day)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tessera.risk.events import NetworkType


@dataclass(slots=True)
class Policy:
    """Score thresholds (log10 of the likelihood ratio plus pattern terms) that turn a score into a
    decision."""

    step_up: float = 0.5  # the evaluation's thresholds for 99% of targeted attacks: -0.2 to 1.7 by history
    deny: float = 5.0  # novelty alone (a trip abroad) should ask for a second factor, not lock the user out
    end_session: float = 2.5  # session checks only: above it, end the session
    # Optional (minimum history length, step-up threshold) pairs: the evaluation shows that the threshold
    # blocking a given share of attacks depends on how much history the user has, so a deployment may take
    # them from `tessera risk eval --json` ("thresholds" per bucket).
    step_up_by_history: tuple[tuple[int, float], ...] = ()

    def step_up_for(self, history: int) -> float:
        threshold = self.step_up
        for minimum, value in sorted(self.step_up_by_history):
            if history >= minimum:
                threshold = value
        return threshold


@dataclass(slots=True)
class RiskConfig:
    policy: Policy = field(default_factory=Policy)
    # Suspicious IP throttling: a token bucket of failed attempts per IP (Auth0: 100 per day).
    ip_failure_capacity: float = 100.0
    ip_failure_refill_per_day: float = 100.0
    # Brute force: failures per identifier from one IP (Auth0: 10) and per identifier from anywhere.
    identifier_ip_failures: int = 10
    identifier_failures_per_hour: int = 20
    # Stuffing and spraying: distinct identifiers in an hour from one IP, one device, one password.
    identifiers_per_ip_hour: int = 5
    identifiers_per_device_hour: int = 5
    accounts_per_password_hour: int = 5
    # An ASN is under a stuffing campaign when it produced this many failures in an hour at this failure
    # ratio.
    asn_failures_per_hour: int = 50
    asn_failure_ratio: float = 0.6
    # More attempts than this per minute for one identifier from one IP is not a person typing.
    attempts_per_minute: float = 10.0
    max_history: float = 200.0  # counts decay past this many logins per user
    profile_cache_size: int = 100_000
    # Seconds between writes of the global counts to the store (None: only when flush() is called). With a
    # store, the engine starts the periodic flush itself on its first login (RiskEngine.start_flushing).
    flush_every: float | None = None
    extra_network_types: dict[int, NetworkType] = field(default_factory=dict)
