"""The one typed settings object.

Every field reads the environment variable ``TESSERA_<FIELD>`` (``TESSERA_DATABASE_URL``, ``TESSERA_ISSUER``,
...); command-line flags override it. Nothing else in Tessera reads the environment.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RegistrationPolicy(StrEnum):
    """Who may use dynamic client registration (RFC 7591)."""

    OPEN = "open"  # anyone, as MCP clients expect
    TOKEN = "token"  # an initial access token is required (RFC 7591 section 3)
    OFF = "off"


# URL scheme -> the SQLAlchemy asyncio dialect+driver Tessera uses for it.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
_DATABASE_URL_FORMS = "sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TESSERA_", extra="ignore")

    issuer: str = Field("http://127.0.0.1:8000", description="The issuer URL, as clients reach it.")
    database_url: str = Field(
        "sqlite+aiosqlite:///.tessera/tessera.db",
        description="sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db",
    )
    redis_url: str | None = Field(None, description="redis://host:6379/0 for shared fast state")
    data_dir: Path = Field(Path(".tessera"), description="Where the embedded database and key file live.")
    master_key: SecretStr | None = Field(
        None, description="Base64url 32-byte key that encrypts private keys and secrets at rest."
    )
    master_key_file: Path | None = Field(None, description="A file holding the master key.")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    tls_cert: Path | None = None
    tls_key: Path | None = None
    auto_migrate: bool = Field(True, description="Apply migrations at start-up.")

    registration: RegistrationPolicy = RegistrationPolicy.OPEN
    fga_auth: bool = Field(True, description="Require access tokens on /fga (off only on loopback).")

    signing_alg: str = Field("ES256", description="ES256 (default) or EdDSA for new signing keys.")
    access_token_ttl: int = Field(3600, ge=30, le=86400, description="Seconds.")
    id_token_ttl: int = Field(3600, ge=30, le=86400)
    authorization_code_ttl: int = Field(60, ge=10, le=600)
    refresh_token_ttl: int = Field(30 * 86400, ge=60)
    session_ttl: int = Field(14 * 86400, ge=60)
    session_retention_days: int = Field(
        30, ge=1, description="Login sessions that ended or expired this many days ago are deleted (hourly)."
    )
    cookie_secure: bool | None = Field(None, description="Default: true when the issuer is https.")

    # identity: brute-force protection on the login form (Auth0 blocks after 10 failures per identifier + IP).
    login_max_failures: int = Field(10, ge=1, description="Failed sign-ins per email and IP before a block.")
    login_failure_window: int = Field(900, ge=1, description="Seconds the per-email-and-IP count covers.")
    login_max_attempts_per_ip: int = Field(100, ge=1, description="Sign-in attempts per IP per window.")
    login_ip_window: int = Field(300, ge=1, description="Seconds the per-IP attempt count covers.")

    # oauth / keys: in-process caches of clients, APIs and signing keys; changes made by another process are
    # seen within this many seconds.
    cache_ttl: float = Field(5.0, ge=0, le=300, description="Seconds clients, APIs and keys stay cached.")
    jwks_uri_cache_ttl: int = Field(300, ge=0, description="Seconds a client's fetched jwks_uri is reused.")
    client_id_metadata_document_supported: bool = Field(
        True,
        description="Accept https URLs as client_id (Client ID Metadata Documents, which MCP clients "
        "prefer); documents are fetched with SSRF protection (public addresses only, 5 s, 5 KB, "
        "no redirects).",
    )
    # oauth extras: dynamic registration, Client ID Metadata Documents, logout (tessera/oauth/registration.py,
    # metadata_documents.py, logout.py).
    registration_rate_limit: int = Field(20, ge=1, description="Dynamic registrations per IP per window.")
    registration_rate_window: int = Field(3600, ge=1, description="Seconds the registration count covers.")
    # oauth: failures from one IP at the token, introspection and revocation endpoints (failed client
    # authentication, invalid grants, revocations that revoke nothing) before its requests get 429 a while.
    oauth_failure_rate_limit: int = Field(
        30, ge=1, description="Failed token/introspection/revocation requests per IP per window."
    )
    oauth_failure_rate_window: int = Field(60, ge=1, description="Seconds the OAuth failure count covers.")
    metadata_document_timeout: float = Field(5.0, gt=0, le=30, description="Seconds to fetch a document.")
    metadata_document_max_bytes: int = Field(5 * 1024, ge=512, le=65536, description="Largest document.")
    backchannel_logout_timeout: float = Field(
        2.0, gt=0, le=30, description="Seconds a back-channel logout POST may take."
    )
    backchannel_sweep_interval: float = Field(
        5.0,
        ge=0,
        description="Seconds between sweeps that send back-channel logout for sessions ended "
        "elsewhere (sign-out page, admin API, CLI); 0 turns the sweep off.",
    )

    # risk: the threat detection engine (tessera/risk). Scores are log10 likelihood ratios plus pattern terms.
    risk_mmdb: list[Path] = Field(
        default_factory=list,
        description="MaxMind .mmdb files (City, Country or ASN) looked up before built-in data.",
    )
    risk_step_up_threshold: float = Field(
        0.5, description="Risk score from which a login asks for a second factor."
    )
    risk_deny_threshold: float = Field(5.0, description="Risk score from which a login is denied.")
    risk_end_session_threshold: float = Field(
        2.5, description="Risk score from which a live session is ended."
    )

    max_body_bytes: int = Field(64 * 1024, description="Larger request bodies are refused with 413.")
    # bench: FastAPI's own OpenTelemetry checks cost every request about 10 us even when no SDK is set up.
    # bench: a full garbage collection walks every object of the loaded code (about 150,000, 40-90 ms here);
    # one such pause in a benchmark round was the token endpoint's p99.
    freeze_heap: bool = Field(
        False,
        description="After start-up, move the objects that exist into the garbage collector's permanent "
        "generation (gc.freeze), so collections skip them. tessera serve and tessera dev turn it on.",
    )
    http_telemetry: bool = Field(
        False, description="FastAPI's OpenTelemetry spans and metrics for each HTTP request (needs an SDK)."
    )
    risk_flush_interval: float = Field(
        30.0, gt=0, description="Seconds between writes of the risk engine's global counts to the database."
    )
    log_level: str = "info"

    @field_validator("issuer")
    @classmethod
    def _issuer_has_no_trailing_slash(cls, value: str) -> str:
        # OIDC Discovery 1.0 section 4.3: the issuer must match exactly; one spelling avoids a mismatch.
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url_has_an_async_driver(cls, value: str) -> str:
        # Tessera runs on SQLAlchemy's asyncio drivers only. The URLs people copy from elsewhere name the
        # database without a driver (sqlite:///x.db, postgresql://..., postgres://... as Heroku-style
        # DATABASE_URLs do): those get the async driver; anything else is refused here, in one clear line,
        # rather than as a driver import error deep in start-up.
        scheme, sep, rest = value.partition("://")
        if not sep:
            raise ValueError(f"not a database URL: {value!r} (expected {_DATABASE_URL_FORMS})")
        driver = _ASYNC_DRIVERS.get(scheme.lower())
        if driver is None:
            raise ValueError(f"unsupported database {scheme!r}: use {_DATABASE_URL_FORMS}")
        return f"{driver}://{rest}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.issuer.startswith("https://")
