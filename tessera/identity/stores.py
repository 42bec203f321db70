"""What the identity services need from storage: one narrow protocol for users, one for login sessions.

``UserService`` (passwords, policy, timing-safe sign-in) and ``SessionService`` (cookies, lifetimes) depend
on these only; ``identity/sql.py`` implements them over ``storage.Database``, and
``tests/identity/test_stores.py`` runs them on SQLite and PostgreSQL. Emails reach the store already
normalised (``users.normalize_email``), and times come from the service's clock, so a store decides nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from tessera.identity.sessions import LoginSession
    from tessera.identity.users import User


class UserStore(Protocol):
    async def insert(self, user: User, password_hash: str | None, at: datetime) -> None:
        """Store a new user; ``Conflict`` when the email is taken (also when a concurrent insert wins)."""
        ...

    async def get(self, user_id: str) -> User | None: ...

    async def find_by_email(self, email: str) -> User | None: ...

    async def credentials(self, email: str) -> tuple[User, str | None] | None:
        """The user with this email and their password hash (None: no password), for signing in."""
        ...

    async def page(self, *, limit: int, after: str | None) -> list[User]:
        """Users in id (creation) order, at most ``limit`` (1 to 1,000), after the id ``after``."""
        ...

    async def set_password_hash(
        self, user_id: str, password_hash: str | None, at: datetime, *, replacing: str | None = None
    ) -> bool:
        """Set the hash; with ``replacing``, only if the stored hash is still that one (a re-hash on sign-in
        must not undo a concurrent password change). False when no row matched."""
        ...

    async def set_disabled(self, user_id: str, disabled: bool, at: datetime) -> bool: ...

    async def set_email_verified(self, user_id: str, verified: bool, at: datetime) -> bool: ...


class SessionStore(Protocol):
    """Login sessions. *Live* means not ended, not expired at ``now``, and the user not disabled."""

    async def insert(self, session: LoginSession, cookie_hash: str) -> None: ...

    async def live_by_cookie_hash(self, cookie_hash: str, now: datetime) -> LoginSession | None: ...

    async def live(self, session_id: str, now: datetime) -> LoginSession | None: ...

    async def live_for_user(self, user_id: str, now: datetime) -> list[LoginSession]:
        """The user's live sessions, newest first."""
        ...

    async def end(
        self, session_id: str, reason: str, at: datetime, *, conn: AsyncConnection | None = None
    ) -> bool:
        """End a session that has not ended; False when it had (the first reason stays). With ``conn``, in
        the caller's transaction (so the audit event commits with it)."""
        ...

    async def end_all_for_user(
        self, user_id: str, reason: str, at: datetime, *, conn: AsyncConnection | None = None
    ) -> int: ...

    async def prune(self, before: datetime) -> int:
        """Delete sessions that ended or expired before ``before``; how many."""
        ...
