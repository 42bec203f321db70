"""The engine's vocabulary: a login event in, an assessment out.

These are plain dataclasses so the login flow, token refresh and live-session checks (the next issue) can
build
them without importing anything heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Decision(StrEnum):
    """What the caller should do, mildest first."""

    ALLOW = "allow"
    STEP_UP = "step_up"  # ask for a second factor
    DENY = "deny"
    END_SESSION = "end_session"  # only for session checks: revoke the session and its tokens


class NetworkType(StrEnum):
    RESIDENTIAL = "residential"
    MOBILE = "mobile"
    BUSINESS = "business"
    HOSTING = "hosting"
    VPN = "vpn"
    TOR = "tor"
    PRIVATE = "private"  # RFC 1918, loopback, link-local, unique-local: no geography
    UNKNOWN = "unknown"


@dataclass(slots=True)
class LoginEvent:
    """One login attempt, as the login handler sees it once the password was checked.

    ``user_id`` is the account the identifier resolved to; ``identifier`` is what was typed (it may name no
    account: ``user_exists`` False). Optional fields that the caller already knows (``country``, ``asn``,
    ``browser``...; the RBA dataset carries them) are used as given instead of being looked up.
    ``password_fingerprint`` is the engine's keyed hash of the password tried (see
    ``RiskEngine.password_fingerprint``), never the password.
    """

    timestamp: float
    user_id: str
    ip: str
    user_agent: str = ""
    success: bool = True
    rtt_ms: float | None = None
    identifier: str | None = None
    user_exists: bool | None = None
    client_hints: dict[str, str] = field(default_factory=dict)
    password_fingerprint: str | None = None
    breached_password: bool = False
    device_id: str | None = None
    event_id: str | None = None
    # Given by the caller (or a dataset row) instead of looked up:
    country: str | None = None
    region: str | None = None
    city: str | None = None
    asn: int | None = None
    asn_name: str | None = None
    network_type: NetworkType | None = None
    browser: str | None = None  # "Chrome 120.0.0"
    os: str | None = None  # "Windows 10"
    device_type: str | None = None  # desktop, mobile, tablet, bot, unknown


@dataclass(slots=True)
class SessionEvent:
    """A request made inside an existing session (token refresh, a live session check)."""

    timestamp: float
    user_id: str
    session_id: str
    ip: str
    user_agent: str = ""
    login: LoginEvent | None = None  # the login that started the session, when the caller kept it
    dpop_bound: bool = (
        False  # a sender-constrained token (RFC 9449): replay from elsewhere is already stopped
    )
    country: str | None = None
    asn: int | None = None


@dataclass(slots=True, frozen=True)
class Reason:
    """One feature that drove the score, in words for admins and users."""

    code: str  # stable, machine-readable: new_network, new_country, impossible_travel, ...
    weight: float  # its contribution to the score (log10 units)
    message: str  # for admins: names the network, the distance, the counters
    user_message: str  # for the account holder: no internal counters


@dataclass(slots=True)
class Assessment:
    score: float  # higher is riskier; log10 of the likelihood ratio plus global-pattern terms
    decision: Decision
    reasons: list[Reason]
    history_length: int  # logins in the user's profile when the event was scored
    signals: dict[str, object] = field(default_factory=dict)  # what was looked up, for admins (JSON-ready)
    features: object | None = field(default=None, repr=False, compare=False)  # the engine's resolved features

    def explain(self, *, for_user: bool = False, limit: int = 3) -> str:
        """``"first login from this network provider; 2,300 km from the last login 20 minutes ago"``."""
        top = sorted((r for r in self.reasons if r.weight > 0), key=lambda r: -r.weight)[:limit]
        return "; ".join(r.user_message if for_user else r.message for r in top)
