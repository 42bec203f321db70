"""Registration and logout state on both backends (SQLite and PostgreSQL): a single-use initial access token
raced by concurrent registrations is spent once, RFC 7592 changes persist, and logout participants are kept
per session and cleared after the notices."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from tests.oauth.support import environment

APP = {"client_name": "Racer", "redirect_uris": ["https://race.example/cb"]}


async def test_single_use_token_raced(tmp_path: Path, database_url: str) -> None:
    async with environment(tmp_path, database_url=database_url, registration="token") as env:
        made = await env.services.oauth.registrar.create_initial_token(uses=1)
        headers = {"Authorization": f"Bearer {made.token}"}

        async def attempt() -> int:
            async with env.client() as http:
                return (await http.post("/oidc/register", json=APP, headers=headers)).status_code

        statuses = await asyncio.gather(*(attempt() for _ in range(6)))
        assert sorted(statuses) == [201, 401, 401, 401, 401, 401]
        assert len(await env.services.oauth.client_store.list()) == 1


async def test_management_and_participants_persist(tmp_path: Path, database_url: str) -> None:
    async with environment(tmp_path, database_url=database_url) as env, env.client() as http:
        made = (await http.post("/oidc/register", json=APP)).json()
        bearer = {"Authorization": f"Bearer {made['registration_access_token']}"}
        uri = f"/oidc/register/{made['client_id']}"
        update = {**APP, "client_id": made["client_id"], "client_name": "Renamed"}
        assert (await http.put(uri, json=update, headers=bearer)).status_code == 200
        stored = await env.services.oauth.client_store.get(made["client_id"])
        assert stored is not None and stored.client_name == "Renamed"

        logout = env.services.oauth.logout
        now = datetime.now(UTC)
        async with env.services.db.transaction() as conn:
            await logout.remember("sess-1", "user-1", made["client_id"], now, conn=conn)
            await logout.remember("sess-1", "user-1", made["client_id"], now, conn=conn)  # once only
            await logout.remember("sess-1", "user-1", "other-client", now, conn=conn)
            await logout.remember("sess-2", "user-1", made["client_id"], now, conn=conn)
        assert await logout.participants("sess-1") == sorted([made["client_id"], "other-client"])
        deliveries = await logout.notify("sess-1", "user-1")
        assert deliveries == []  # neither registered a backchannel_logout_uri
        assert await logout.participants("sess-1") == []
        assert await logout.participants("sess-2") == [made["client_id"]]

        assert (await http.delete(uri, headers=bearer)).status_code == 204
        assert await env.services.oauth.client_store.get(made["client_id"]) is None
        response = await http.get(uri, headers=bearer)
        assert response.status_code == 401
