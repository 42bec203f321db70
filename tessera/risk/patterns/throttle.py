"""Suspicious-IP throttling and brute force, with the numbers Auth0 uses by default: a token bucket of 100
failed attempts per IP per day (an empty bucket denies, as Auth0 answers 429), and 10 failures for one
identifier from one IP."""

from __future__ import annotations

from tessera.risk.config import RiskConfig
from tessera.risk.events import Decision
from tessera.risk.patterns import Term
from tessera.risk.signals.windows import WindowStore

HOUR = 3600.0
DAY = 86400.0


async def throttle_terms(w: WindowStore, c: RiskConfig, *, at: float, ip: str, identifier: str) -> list[Term]:
    """Read the counters (before this attempt is recorded)."""
    terms: list[Term] = []
    ip_key = f"ip:{ip}"
    refill = c.ip_failure_refill_per_day / DAY
    tokens = await w.tokens("fail:" + ip_key, at, c.ip_failure_capacity, refill)
    if tokens < 1.0:
        terms.append(
            Term(
                "ip_throttled",
                3.0,
                f"IP {ip} is throttled: more than {c.ip_failure_capacity:.0f} failed logins in a day",
                "too many failed sign-ins from this internet address",
                force=Decision.DENY,
            )
        )
    pair = f"fail:idip:{identifier}|{ip}"
    if await w.count(pair, at, 12 * HOUR) >= c.identifier_ip_failures:
        terms.append(
            Term(
                "brute_force",
                3.0,
                f"{c.identifier_ip_failures} or more failed logins for this account from {ip}",
                "too many wrong passwords from this address",
                force=Decision.DENY,
            )
        )
    failures = await w.count(f"fail:id:{identifier}", at, HOUR)
    if failures >= c.identifier_failures_per_hour:
        terms.append(
            Term(
                "account_under_attack",
                1.5,
                f"{failures:.0f} failed logins for this account in the last hour",
                "many recent wrong passwords for your account",
                force=Decision.STEP_UP,
            )
        )
    return terms


async def record_failure(
    w: WindowStore, c: RiskConfig, *, at: float, ip: str, identifier: str, asn: str
) -> None:
    """A failed attempt takes a token from the IP's bucket and counts for identifier, pair and ASN."""
    await w.take(f"fail:ip:{ip}", at, c.ip_failure_capacity, c.ip_failure_refill_per_day / DAY)
    await w.hit(f"fail:idip:{identifier}|{ip}", at, 12 * HOUR)
    await w.hit(f"fail:id:{identifier}", at, HOUR)
    await w.hit(f"fail:asn:{asn}", at, HOUR)
