"""Tokens and codes are bound to the client they were issued to (RFC 6749 4.1.3, 6 and 10.4; RFC 7009 2.1;
RFC 7662 4): another authenticated client presenting them is refused or told nothing, and the rightful
client's code and tokens are untouched by the attempt."""

from __future__ import annotations

from pathlib import Path

from tests.oauth.support import environment
from tests.oauth.test_hostile import REDIRECT, VERIFIER, basic, get_code, introspect, redeem, setup


async def test_another_client_cannot_redeem_refresh_revoke_or_read_what_it_was_not_issued(
    tmp_path: Path,
) -> None:
    async with environment(tmp_path) as env:
        user, owner, owner_secret = await setup(env)
        thief, thief_secret = await env.register_client(
            "Thief", redirect_uris=[REDIRECT], grant_types=["authorization_code", "refresh_token"]
        )
        assert thief_secret is not None
        async with env.client() as http:
            code = await get_code(env, http, owner.client_id, user.email)

            stolen = await redeem(http, thief.client_id, thief_secret, code)
            assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
            # A redirect_uri other than the authorization request's is refused too (RFC 6749 4.1.3).
            elsewhere = await redeem(
                http, owner.client_id, owner_secret, code, redirect_uri=REDIRECT + "/other"
            )
            assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_grant"
            # Neither attempt used the code up or counted as a replay: its own client still redeems it.
            mine = await redeem(http, owner.client_id, owner_secret, code)
            assert mine.status_code == 200, mine.text
            tokens = mine.json()
            assert await env.services.audit.query(type="authorization_code.reused") == []

            refreshed_by_thief = await http.post(
                "/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                headers=basic(thief.client_id, thief_secret),
            )
            assert refreshed_by_thief.status_code == 400
            assert refreshed_by_thief.json()["error"] == "invalid_grant"

            # RFC 7009 2.2: another client's revocation answers 200 and revokes nothing.
            for token, hint in (
                (tokens["refresh_token"], "refresh_token"),
                (tokens["access_token"], "access_token"),
            ):
                revoked = await http.post(
                    "/oauth/revoke",
                    data={"token": token, "token_type_hint": hint},
                    headers=basic(thief.client_id, thief_secret),
                )
                assert revoked.status_code == 200
            assert await env.services.audit.query(type="token.revoked") == []

            # A refresh token is introspected only for its own client (RFC 7662 4: no token scanning).
            assert await introspect(http, thief.client_id, thief_secret, tokens["refresh_token"]) == {
                "active": False
            }
            own_view = await introspect(http, owner.client_id, owner_secret, tokens["refresh_token"])
            assert own_view["active"] is True and own_view["client_id"] == owner.client_id
            assert (await introspect(http, owner.client_id, owner_secret, tokens["access_token"]))[
                "active"
            ] is True

            # The refresh token was not rotated by the thief's attempt: it still works, once.
            rotated = await http.post(
                "/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                headers=basic(owner.client_id, owner_secret),
            )
            assert rotated.status_code == 200, rotated.text
            assert await env.services.audit.query(type="refresh_token.reused") == []


async def test_a_public_client_revokes_its_tokens_but_cannot_introspect(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user, _, _ = await setup(env)
        public, _ = await env.register_client(
            "CLI",
            redirect_uris=[REDIRECT],
            is_public=True,
            grant_types=["authorization_code", "refresh_token"],
        )
        async with env.client() as http:
            code = await get_code(env, http, public.client_id, user.email)
            exchanged = await http.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "code_verifier": VERIFIER,
                    "client_id": public.client_id,
                },
            )
            assert exchanged.status_code == 200, exchanged.text
            tokens = exchanged.json()
            # RFC 7662 2.1: introspection needs an authenticated caller; a bare client_id is not one.
            for token in (tokens["access_token"], tokens["refresh_token"]):
                probed = await http.post(
                    "/oauth/introspect", data={"token": token, "client_id": public.client_id}
                )
                assert probed.status_code == 401 and probed.json()["error"] == "invalid_client"
            # RFC 7009 5: a public client may revoke its own tokens with its client_id alone.
            revoked = await http.post(
                "/oauth/revoke",
                data={
                    "token": tokens["refresh_token"],
                    "token_type_hint": "refresh_token",
                    "client_id": public.client_id,
                },
            )
            assert revoked.status_code == 200
            refreshed = await http.post(
                "/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": tokens["refresh_token"],
                    "client_id": public.client_id,
                },
            )
            assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
        assert len(await env.services.audit.query(type="token.revoked")) == 1
