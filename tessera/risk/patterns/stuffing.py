"""Credential stuffing and password spraying: many identifiers from one IP, one device or one network; one
password (by its keyed fingerprint, never the password) tried against many accounts."""

from __future__ import annotations

import math

from tessera.risk.config import RiskConfig
from tessera.risk.events import Decision
from tessera.risk.patterns import Term
from tessera.risk.signals.windows import WindowStore

HOUR = 3600.0


async def stuffing_terms(
    w: WindowStore,
    c: RiskConfig,
    *,
    at: float,
    ip: str,
    identifier: str,
    asn: str,
    asn_name: str,
    device_id: str | None,
    password_fingerprint: str | None,
    known_ip: bool,
) -> list[Term]:
    """Record this attempt's identifier in the distinct-count windows and read them."""
    terms: list[Term] = []
    ip_key = f"ip:{ip}"
    ids_ip = await w.add_member(ip_key, identifier, at, HOUR)
    if ids_ip > c.identifiers_per_ip_hour:
        weight = min(3.5, 1.0 + math.log10(ids_ip / c.identifiers_per_ip_hour) * 2)
        terms.append(
            Term(
                "many_accounts_from_ip",
                weight,
                f"{ids_ip} accounts tried from {ip} in the last hour (credential stuffing)",
                "an address that tries many accounts",
                force=Decision.DENY if ids_ip > 4 * c.identifiers_per_ip_hour else None,
            )
        )
    if device_id:
        ids_dev = await w.add_member("dev:" + device_id[:256], identifier, at, HOUR)
        if ids_dev > c.identifiers_per_device_hour:
            terms.append(
                Term(
                    "many_accounts_from_device",
                    min(3.0, 1.0 + math.log10(ids_dev / c.identifiers_per_device_hour) * 2),
                    f"{ids_dev} accounts tried from this device in the last hour",
                    "a device that tries many accounts",
                )
            )
    if password_fingerprint:
        ids_pw = await w.add_member("pw:" + password_fingerprint[:64], identifier, at, HOUR)
        if ids_pw > c.accounts_per_password_hour:
            terms.append(
                Term(
                    "password_spraying",
                    min(3.5, 1.0 + math.log10(ids_pw / c.accounts_per_password_hour) * 2),
                    f"the same password was tried against {ids_pw} accounts in the last hour "
                    "(password spraying)",
                    "a password being tried on many accounts",
                    force=Decision.DENY if ids_pw > 4 * c.accounts_per_password_hour else Decision.STEP_UP,
                )
            )
    asn_key = f"asn:{asn}"
    asn_failures = await w.count("fail:" + asn_key, at, HOUR)
    asn_attempts = await w.count("att:" + asn_key, at, HOUR)
    under_attack = asn_failures >= c.asn_failures_per_hour and asn_failures >= c.asn_failure_ratio * max(
        asn_attempts, 1.0
    )
    # Only logins the user's history does not know are throttled: the user at their own address passes.
    if under_attack and not known_ip:
        terms.append(
            Term(
                "network_under_stuffing",
                2.5,
                f"{asn_failures:.0f} failed logins from network {asn_name or asn} "
                f"in the last hour ({asn_failures / max(asn_attempts, 1.0):.0%} failing): "
                "credential stuffing, throttled",
                "a network that is attacking many accounts",
                force=Decision.DENY,
            )
        )
    return terms
