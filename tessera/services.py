"""The service container: everything a request, a command or a test needs, built from one Settings.

The app factory and each CLI command build one ``Services``; nothing lives at module level. Each capability
adds its services here as a cached property, so they are built on first use and share the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from tessera.audit.log import AuditLog
from tessera.core.clock import Clock
from tessera.core.ratelimit import RateLimiter
from tessera.core.sealing import Sealer
from tessera.identity import TEMPLATES as IDENTITY_TEMPLATES
from tessera.identity.sessions import SessionService
from tessera.identity.users import UserService
from tessera.keys.keyring import KeyRing
from tessera.oauth import TEMPLATES as OAUTH_TEMPLATES
from tessera.observability import Metrics
from tessera.settings import Settings
from tessera.storage.database import Database
from tessera.web.csrf import CSRF
from tessera.web.pages import Pages

if TYPE_CHECKING:
    from tessera.fga.engine.service import FGAService
    from tessera.fga.sql.store import SQLDatastore
    from tessera.oauth.server import OAuthServer
    from tessera.risk.engine import RiskEngine


@dataclass
class Services:
    settings: Settings
    clock: Clock = field(default_factory=Clock)

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.database_url)

    @cached_property
    def sealer(self) -> Sealer:
        """Encrypts secrets at rest. ``TESSERA_MASTER_KEY`` wins over the key file."""
        if self.settings.master_key is not None:
            return Sealer(self.settings.master_key.get_secret_value())
        path = self.settings.master_key_file or self.settings.data_dir / "master.key"
        # Only the embedded (SQLite) setup may create a key file on the fly; a deployment must bring its key.
        return Sealer.from_file(path, create=self.settings.is_sqlite)

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics()

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.db, self.clock)

    @cached_property
    def pages(self) -> Pages:
        return Pages(extra_dirs=[IDENTITY_TEMPLATES, OAUTH_TEMPLATES])

    @cached_property
    def csrf(self) -> CSRF:
        return CSRF(self.sealer.derive_key("tessera/csrf"), secure_cookies=self.settings.secure_cookies)

    # --- capability services (each capability owns its own lines below) ---

    @cached_property
    def users(self) -> UserService:
        return UserService(self.db, self.clock)

    @cached_property
    def sessions(self) -> SessionService:
        return SessionService(self.db, self.clock, ttl_seconds=self.settings.session_ttl)

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        """In Redis when ``TESSERA_REDIS_URL`` is set, else in the database; shared by every process."""
        return RateLimiter.for_settings(self.db, self.clock, self.settings.redis_url)

    @cached_property
    def keys(self) -> KeyRing:
        """Signing keys (ES256 by default), sealed at rest, cached per process for ``cache_ttl`` seconds."""
        return KeyRing(self.db, self.sealer, self.clock, self.settings)

    @cached_property
    def oauth(self) -> OAuthServer:
        """The authorization server: clients, APIs, grants, tokens (tessera/oauth)."""
        from tessera.oauth.server import OAuthServer

        return OAuthServer(self)

    @cached_property
    def fga(self) -> FGAService:
        """The relationship engine (tessera/fga) on the SQL datastore, shared by /fga and `tessera fga`."""
        from tessera.fga.engine.service import FGAService

        return FGAService(self.fga_datastore, clock=self.clock)

    @cached_property
    def fga_datastore(self) -> SQLDatastore:
        from tessera.fga.sql.store import SQLDatastore

        return SQLDatastore(self.db, self.clock)

    @cached_property
    def risk(self) -> RiskEngine:
        """Threat detection (tessera/risk): scores logins and sessions; profiles in the database."""
        from tessera.risk import engine_for

        return engine_for(self)

    async def aclose(self) -> None:
        if "risk" in self.__dict__:
            await self.risk.aclose()
        if "fga_datastore" in self.__dict__:
            await self.fga_datastore.aclose()
        if "oauth" in self.__dict__:
            await self.oauth.aclose()
        if "rate_limiter" in self.__dict__:
            await self.rate_limiter.aclose()
        if "db" in self.__dict__:
            await self.db.dispose()
