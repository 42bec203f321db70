"""Long-ended login sessions are deleted by the running server (hourly), recent ones kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from tessera.core.clock import FrozenClock
from tessera.identity.sessions import login_sessions
from tessera.web import app as web_app
from tests.oauth.support import environment


async def test_the_server_deletes_sessions_that_ended_long_ago(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_app, "SESSION_PRUNE_EVERY", 0.0)  # every sweep, instead of hourly
    clock = FrozenClock()
    async with environment(
        tmp_path, clock=clock, backchannel_sweep_interval=0.05, session_retention_days=30
    ) as env:
        user = await env.user()
        sessions = env.services.sessions
        old, _ = await sessions.create(user.id, ["pwd"], "127.0.0.1", "test")
        assert await sessions.end(old.id, "logout")
        clock.advance(31 * 86400)  # the old one ended 31 days ago
        recent, _ = await sessions.create(user.id, ["pwd"], "127.0.0.1", "test")
        ended_recently, _ = await sessions.create(user.id, ["pwd"], "127.0.0.1", "test")
        assert await sessions.end(ended_recently.id, "logout")

        async def stored() -> set[str]:
            async with env.services.db.read() as conn:
                return set((await conn.execute(select(login_sessions.c.id))).scalars())

        assert await stored() == {old.id, recent.id, ended_recently.id}
        async with env.app.router.lifespan_context(env.app):
            for _ in range(100):
                if old.id not in await stored():
                    break
                await asyncio.sleep(0.05)
        # Only the long-ended row is gone; a live session and one that ended today stay.
        assert await stored() == {recent.id, ended_recently.id}
