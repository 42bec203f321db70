"""Users and their passwords.

Passwords are hashed with Argon2id (RFC 9106) at OWASP's recommended parameters (Password Storage Cheat
Sheet: 19 MiB of memory, 2 iterations, 1 degree of parallelism). A stored hash made with other parameters is
re-hashed on the next successful sign-in, so raising the parameters upgrades every active account.

``verify_password`` does the same Argon2 work whether or not the email exists (it checks against a dummy
hash), so the response time does not tell an attacker which emails have accounts.
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Boolean, Column, PrimaryKeyConstraint, String, Table, UniqueConstraint

from tessera.core.clock import Clock
from tessera.core.errors import NotFound, ValidationFailed
from tessera.core.ids import new_id, new_secret
from tessera.storage.database import Database

if TYPE_CHECKING:
    from tessera.identity.stores import UserStore
from tessera.storage.schema import UTCDateTime, metadata

# RFC 5321 section 4.5.3.1: a path is at most 256 octets, so an address is at most 254 characters.
MAX_EMAIL_LENGTH = 254
# NIST SP 800-63B section 5.1.1.2: at least 8 characters; accept long passphrases but bound the work.
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MAX_NAME_LENGTH = 256

users = Table(
    "users",
    metadata,
    Column("id", String(26), nullable=False),
    Column("email", String(320), nullable=False),
    Column("email_verified", Boolean, nullable=False),
    Column("name", String(256)),
    Column("password_hash", String(512)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("disabled", Boolean, nullable=False),
    PrimaryKeyConstraint("id", name="pk_users"),
    UniqueConstraint("email", name="uq_users_email"),
)


@dataclass(frozen=True)
class User:
    id: str
    email: str
    email_verified: bool
    name: str | None
    created_at: datetime
    disabled: bool


def owasp_password_hasher() -> PasswordHasher:
    """Argon2id with OWASP's first recommended configuration (m=19 MiB, t=2, p=1)."""
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16)


def normalize_email(email: str) -> str:
    """One spelling per address: NFKC, trimmed, lower case (addresses are compared case-insensitively).

    Raises ``ValidationFailed`` for anything that is not shaped like ``local@domain``.
    """
    if not isinstance(email, str):
        raise ValidationFailed("email must be a string")
    value = unicodedata.normalize("NFKC", email).strip().lower()
    if not value or len(value) > MAX_EMAIL_LENGTH:
        raise ValidationFailed(f"email must be 1 to {MAX_EMAIL_LENGTH} characters")
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or "@" in domain or domain.startswith(".") or domain.endswith("."):
        raise ValidationFailed("email must look like name@example.com")
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in value):
        raise ValidationFailed("email must not contain spaces or control characters")
    return value


def check_password_policy(password: str) -> None:
    if not isinstance(password, str):
        raise ValidationFailed("password must be a string")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must be at most {MAX_PASSWORD_LENGTH} characters")


class UserService:
    """``services.users``: accounts and passwords over a ``stores.UserStore``."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        hasher: PasswordHasher | None = None,
        *,
        store: UserStore | None = None,
    ):
        if store is None:
            from tessera.identity.sql import SqlUserStore  # sql.py imports this module's table and User

            store = SqlUserStore(db)
        self._store = store
        self._clock = clock
        self._hasher = hasher or owasp_password_hasher()
        self._dummy_hash: str | None = None

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    async def _hash(self, password: str) -> str:
        # Argon2 takes tens of milliseconds of CPU; a thread keeps the event loop answering meanwhile
        # (argon2-cffi releases the GIL while hashing).
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, stored_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(stored_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._hash(new_secret(16))
        return self._dummy_hash

    async def create(
        self,
        email: str,
        password: str | None = None,
        name: str | None = None,
        *,
        email_verified: bool = False,
    ) -> User:
        """A new user; ``Conflict`` when the (normalised) email is taken."""
        normalized = normalize_email(email)
        if name is not None:
            name = name.strip() or None
            if name is not None and len(name) > MAX_NAME_LENGTH:
                raise ValidationFailed(f"name must be at most {MAX_NAME_LENGTH} characters")
        password_hash = None
        if password is not None:
            check_password_policy(password)
            password_hash = await self._hash(password)
        now = self._now()
        user = User(
            id=new_id(),
            email=normalized,
            email_verified=email_verified,
            name=name,
            created_at=now,
            disabled=False,
        )
        await self._store.insert(user, password_hash, now)
        return user

    async def get(self, user_id: str) -> User | None:
        return await self._store.get(user_id)

    async def find_by_email(self, email: str) -> User | None:
        try:
            normalized = normalize_email(email)
        except ValidationFailed:
            return None
        return await self._store.find_by_email(normalized)

    async def page(self, *, limit: int = 100, after: str | None = None) -> list[User]:
        """Users in creation order (ids are ULIDs); ``after`` is the last id of the previous page."""
        return await self._store.page(limit=max(1, min(limit, 1000)), after=after)

    async def verify_password(self, email: str, password: str) -> User | None:
        """The user when ``password`` is theirs and the account is enabled, else None.

        The same Argon2 verification runs for unknown emails, users without a password and disabled users,
        so neither the answer nor its timing says which emails have accounts.
        """
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
            await self._verify(await self._dummy(), "")
            return None
        found = None
        try:
            normalized = normalize_email(email)
        except ValidationFailed:
            normalized = None
        if normalized is not None:
            found = await self._store.credentials(normalized)
        user, stored_hash = found if found is not None else (None, None)
        if user is None or stored_hash is None:
            await self._verify(await self._dummy(), password)
            return None
        if not await self._verify(stored_hash, password):
            return None
        if user.disabled:
            return None
        if self._hasher.check_needs_rehash(stored_hash):
            # Only replace the hash we verified: a concurrent password change wins.
            await self._store.set_password_hash(
                user.id, await self._hash(password), self._now(), replacing=stored_hash
            )
        return user

    async def set_password(self, user_id: str, password: str | None) -> None:
        """Set (or, with None, remove) a user's password."""
        new_hash = None
        if password is not None:
            check_password_policy(password)
            new_hash = await self._hash(password)
        if not await self._store.set_password_hash(user_id, new_hash, self._now()):
            raise NotFound(f"no user {user_id}")

    async def set_disabled(self, user_id: str, disabled: bool) -> None:
        if not await self._store.set_disabled(user_id, disabled, self._now()):
            raise NotFound(f"no user {user_id}")

    async def set_email_verified(self, user_id: str, verified: bool = True) -> None:
        if not await self._store.set_email_verified(user_id, verified, self._now()):
            raise NotFound(f"no user {user_id}")
