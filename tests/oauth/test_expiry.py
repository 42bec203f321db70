"""Lifetimes: an authorization code and a refresh token past their lifetime are refused with
``invalid_grant`` (and an expired code is not mistaken for a replay), and a rotated refresh token is no
longer active at introspection while its successor is."""

from __future__ import annotations

import time
from pathlib import Path

from tessera.core.clock import FrozenClock
from tests.oauth.support import environment
from tests.oauth.test_hostile import basic, get_code, introspect, redeem, setup


async def test_expired_codes_and_refresh_tokens_are_invalid_grants(tmp_path: Path) -> None:
    clock = FrozenClock(at=time.time())
    async with environment(tmp_path, clock=clock) as env:
        user, client, secret = await setup(env)
        settings = env.services.settings
        async with env.client() as http:
            code = await get_code(env, http, client.client_id, user.email)
            clock.advance(settings.authorization_code_ttl + 1)
            late = await redeem(http, client.client_id, secret, code)
            assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
            assert "expired" in late.json()["error_description"]
            assert await env.services.audit.query(type="authorization_code.reused") == []
            assert await env.services.audit.query(type="token.issued") == []

            fresh = await get_code(env, http, client.client_id, user.email)
            tokens = (await redeem(http, client.client_id, secret, fresh)).json()

            async def refresh(token: str) -> dict[str, str]:
                response = await http.post(
                    "/oauth/token",
                    data={"grant_type": "refresh_token", "refresh_token": token},
                    headers=basic(client.client_id, secret),
                )
                return dict(response.json())

            rotated = await refresh(tokens["refresh_token"])
            assert rotated.get("refresh_token"), rotated
            old_view = await introspect(http, client.client_id, secret, tokens["refresh_token"])
            assert old_view == {"active": False}
            new_view = await introspect(http, client.client_id, secret, rotated["refresh_token"])
            assert new_view["active"] is True and new_view["token_type"] == "refresh_token"

            clock.advance(settings.refresh_token_ttl + 1)
            expired = await refresh(rotated["refresh_token"])
            assert expired["error"] == "invalid_grant" and "expired" in expired["error_description"]
            assert await introspect(http, client.client_id, secret, rotated["refresh_token"]) == {
                "active": False
            }
            # Expiry is not reuse: nothing was reported as a stolen token.
            assert await env.services.audit.query(type="refresh_token.reused") == []
