"""RP-Initiated Logout and Back-Channel Logout: a real receiver on loopback gets the logout token, checked
against the JWKS; forged hints, unregistered redirect URIs and untrusted requests are refused."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from joserfc.jws import extract_compact

from tessera.core.clock import FrozenClock
from tessera.oauth.logout import BACKCHANNEL_EVENT
from tests.oauth.extras.support import Route, document_server
from tests.oauth.support import ISSUER, Browser, callback_params, environment, form_fields

REDIRECT = "https://rp.example/callback"
AFTER_LOGOUT = "https://rp.example/signed-out"
VERIFIER = "w" * 64
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()


async def sign_in_to(env: Any, http: httpx.AsyncClient, client: Any, secret: str | None) -> dict[str, Any]:
    """Code flow through the real forms; returns the token response (with an ID token)."""
    query = urlencode(
        {
            "client_id": client.client_id,
            "response_type": "code",
            "redirect_uri": client.redirect_uris[0],
            "scope": "openid",
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
            "nonce": "n-1",
        }
    )
    callback = await Browser(http).authorize(f"/authorize?{query}", "ada@example.com")
    code = callback_params(callback)["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uris[0],
        "code_verifier": VERIFIER,
        "client_id": client.client_id,
    }
    auth = (client.client_id, secret) if secret else None
    token = await http.post("/oauth/token", data=data, auth=auth)  # type: ignore[arg-type]
    assert token.status_code == 200, token.text
    return dict(token.json())


def _unverified(token: str) -> dict[str, Any]:
    return dict(json.loads(extract_compact(token.encode()).payload))


async def session_is_live(env: Any, session_id: str) -> bool:
    return await env.services.sessions.get(session_id) is not None


async def test_logout_with_hint_redirects_and_notifies_the_client(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, document_server() as receiver:
        receiver.routes["/backchannel"] = Route(status=200, body=b"")
        await env.user()
        client, secret = await env.register_client(
            "Relying party",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code"],
            metadata={
                "post_logout_redirect_uris": [AFTER_LOGOUT],
                "backchannel_logout_uri": f"http://127.0.0.1:{receiver.port}/backchannel",
            },
        )
        async with env.client() as http:
            meta = (await http.get("/.well-known/openid-configuration")).json()
            assert meta["end_session_endpoint"] == f"{ISSUER}/oidc/logout"
            assert meta["backchannel_logout_supported"] is True
            assert meta["backchannel_logout_session_supported"] is True
            jwks = KeySet.import_key_set((await http.get("/.well-known/jwks.json")).json())

            tokens = await sign_in_to(env, http, client, secret)
            id_claims = _unverified(tokens["id_token"])
            sid = id_claims["sid"]
            assert await session_is_live(env, sid)

            response = await http.get(
                "/oidc/logout",
                params={
                    "id_token_hint": tokens["id_token"],
                    "post_logout_redirect_uri": AFTER_LOGOUT,
                    "state": "st-9",
                },
            )
            assert response.status_code == 303, response.text
            location = urlsplit(response.headers["location"])
            assert f"{location.scheme}://{location.netloc}{location.path}" == AFTER_LOGOUT
            assert parse_qs(location.query) == {"state": ["st-9"]}
            assert "tessera_session=" in response.headers.get("set-cookie", "")
            assert not await session_is_live(env, sid)

        # The receiver got exactly one POST with a logout token that verifies against the JWKS.
        received = await receiver.wait_for(1)
        assert len(received) == 1 and received[0].method == "POST"
        assert received[0].headers["content-type"].startswith("application/x-www-form-urlencoded")
        logout_token = received[0].form()["logout_token"]
        header = extract_compact(logout_token.encode()).headers()
        assert header["typ"] == "logout+jwt"
        verified = jwt.decode(logout_token, jwks, algorithms=[header["alg"]])
        claims = verified.claims
        assert claims["iss"] == ISSUER and claims["aud"] == client.client_id
        assert claims["sub"] == id_claims["sub"] and claims["sid"] == sid
        assert claims["events"] == {BACKCHANNEL_EVENT: {}}
        assert "nonce" not in claims and isinstance(claims["jti"], str)
        assert claims["iat"] <= claims["exp"] <= claims["iat"] + 300


async def test_unregistered_post_logout_redirect_uri_is_not_followed(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.user()
        client, secret = await env.register_client(
            "RP", redirect_uris=[REDIRECT], metadata={"post_logout_redirect_uris": [AFTER_LOGOUT]}
        )
        async with env.client() as http:
            tokens = await sign_in_to(env, http, client, secret)
            sid = _unverified(tokens["id_token"])["sid"]
            for uri in (
                "https://evil.example/",
                AFTER_LOGOUT + "/extra",
                AFTER_LOGOUT + "?x=1",
                AFTER_LOGOUT.upper(),
                REDIRECT,  # a login redirect URI is not a logout one
            ):
                response = await http.get(
                    "/oidc/logout",
                    params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": uri},
                )
                assert response.status_code == 400 and "location" not in response.headers
                assert "evil.example" not in response.headers.get("refresh", "")
            # Without a client to check it against, a redirect URI is refused too.
            bare = await http.get("/oidc/logout", params={"post_logout_redirect_uri": AFTER_LOGOUT})
            assert bare.status_code == 400 and "location" not in bare.headers
            assert await session_is_live(env, sid)


async def test_forged_or_wrong_hints_are_refused(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.user()
        client, secret = await env.register_client(
            "RP", redirect_uris=[REDIRECT], metadata={"post_logout_redirect_uris": [AFTER_LOGOUT]}
        )
        other, _ = await env.register_client("Other", redirect_uris=["https://other.example/cb"])
        async with env.client() as http:
            tokens = await sign_in_to(env, http, client, secret)
            real = tokens["id_token"]
            id_claims = _unverified(real)
            real_header = extract_compact(real.encode()).headers()
            attacker = ECKey.generate_key("P-256")
            forged = jwt.encode(
                {"alg": "ES256", "kid": real_header["kid"], "typ": "JWT"}, id_claims, attacker
            )
            head, payload, sig = real.split(".")
            tampered_claims = dict(id_claims, sub="someone-else")
            tampered_payload = (
                base64.urlsafe_b64encode(json.dumps(tampered_claims).encode()).rstrip(b"=").decode()
            )
            none_alg = (
                base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
                + "."
                + payload
                + "."
            )
            for hint in (
                forged,
                f"{head}.{tampered_payload}.{sig}",
                none_alg,
                tokens["access_token"],  # an access token is not an ID token
                "not-a-jwt",
                "x" * 9000,
            ):
                response = await http.get(
                    "/oidc/logout", params={"id_token_hint": hint, "post_logout_redirect_uri": AFTER_LOGOUT}
                )
                assert response.status_code == 400, hint[:40]
                assert "location" not in response.headers
            # A real hint for one client with another client's id.
            mismatch = await http.get(
                "/oidc/logout", params={"id_token_hint": real, "client_id": other.client_id}
            )
            assert mismatch.status_code == 400 and "another application" in mismatch.text
            assert await session_is_live(env, id_claims["sid"])


async def test_untrusted_logout_needs_confirmation_with_csrf(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.user()
        client, secret = await env.register_client(
            "RP <b>bold</b>", redirect_uris=[REDIRECT], metadata={"post_logout_redirect_uris": [AFTER_LOGOUT]}
        )
        async with env.client() as http:
            tokens = await sign_in_to(env, http, client, secret)
            sid = _unverified(tokens["id_token"])["sid"]
            # No hint: a page asks the user; nothing is ended by the GET.
            page = await http.get(
                "/oidc/logout",
                params={
                    "client_id": client.client_id,
                    "post_logout_redirect_uri": AFTER_LOGOUT,
                    "state": "s",
                },
            )
            assert page.status_code == 200 and 'name="decision" value="allow"' in page.text
            assert "RP &lt;b&gt;bold&lt;/b&gt;" in page.text and "<b>bold</b>" not in page.text
            assert await session_is_live(env, sid)
            fields = form_fields(page.text)
            assert fields["post_logout_redirect_uri"] == AFTER_LOGOUT

            # A cross-site POST without the CSRF token changes nothing.
            forged = {k: v for k, v in fields.items() if k != "csrf_token"}
            refused = await http.post("/oidc/logout", data={**forged, "decision": "allow"})
            assert refused.status_code == 403 and await session_is_live(env, sid)
            wrong = await http.post(
                "/oidc/logout", data={**fields, "csrf_token": "0" * 64, "decision": "allow"}
            )
            assert wrong.status_code == 403 and await session_is_live(env, sid)

            # "Stay signed in" keeps the session and does not redirect.
            stay = await http.post("/oidc/logout", data={**fields, "decision": "deny"})
            assert stay.status_code == 200 and "still signed in" in stay.text
            assert await session_is_live(env, sid)

            done = await http.post("/oidc/logout", data={**fields, "decision": "allow"})
            assert done.status_code == 303 and done.headers["location"] == AFTER_LOGOUT + "?state=s"
            assert not await session_is_live(env, sid)


async def test_hint_for_an_older_session_asks_for_confirmation(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.user()
        client, secret = await env.register_client("RP", redirect_uris=[REDIRECT])
        async with env.client() as first, env.client() as second:
            old = await sign_in_to(env, first, client, secret)
            await sign_in_to(env, second, client, secret)
            # The second browser presents the first session's hint: it proves nothing about this session.
            page = await second.get("/oidc/logout", params={"id_token_hint": old["id_token"]})
            assert page.status_code == 200 and 'name="decision"' in page.text
            assert await session_is_live(env, _unverified(old["id_token"])["sid"])


async def test_self_registered_clients_cannot_aim_back_channel_at_internal_addresses(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, document_server() as receiver:
        receiver.routes["/bc"] = Route(status=200, body=b"")
        await env.user()
        async with env.client() as http:
            registered = await http.post(
                "/oidc/register",
                json={
                    "client_name": "Self-registered",
                    "redirect_uris": [REDIRECT],
                    "token_endpoint_auth_method": "client_secret_post",
                    "backchannel_logout_uri": f"https://127.0.0.1:{receiver.port}/bc",
                },
            )
            assert registered.status_code == 201, registered.text
            body = registered.json()
            query = urlencode(
                {
                    "client_id": body["client_id"],
                    "response_type": "code",
                    "redirect_uri": REDIRECT,
                    "scope": "openid",
                    "code_challenge": CHALLENGE,
                    "code_challenge_method": "S256",
                }
            )
            callback = await Browser(http).authorize(f"/authorize?{query}", "ada@example.com")
            code = callback_params(callback)["code"]
            token = await http.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "code_verifier": VERIFIER,
                    "client_id": body["client_id"],
                    "client_secret": body["client_secret"],
                },
            )
            tokens = token.json()
            sid = _unverified(tokens["id_token"])["sid"]
            session = await env.services.sessions.get(sid)
            assert session is not None
            assert await env.services.oauth.logout.participants(sid) == [body["client_id"]]
            # The delivery is attempted through the SSRF guard and refused: loopback is not public.
            deliveries = await env.services.oauth.logout.notify(sid, session.user_id)
            assert [(d.client_id, d.status) for d in deliveries] == [(body["client_id"], None)]
            assert deliveries[0].error is not None and "not public" in deliveries[0].error
            assert await env.services.oauth.logout.participants(sid) == []
            response = await http.get("/oidc/logout", params={"id_token_hint": tokens["id_token"]})
            assert response.status_code == 200 and "signed out" in response.text
            assert not await session_is_live(env, sid)
        assert receiver.received == []


async def test_a_slow_receiver_is_cut_off(tmp_path: Path) -> None:
    async with environment(tmp_path, backchannel_logout_timeout=0.5) as env, document_server() as receiver:
        receiver.routes["/slow"] = Route(status=200, body=b"", delay=5.0)
        receiver.routes["/fast"] = Route(status=200, body=b"")
        await env.user()
        slow, slow_secret = await env.register_client(
            "Slow RP",
            redirect_uris=[REDIRECT],
            metadata={"backchannel_logout_uri": f"http://127.0.0.1:{receiver.port}/slow"},
        )
        fast, fast_secret = await env.register_client(
            "Fast RP",
            redirect_uris=["https://fast.example/cb"],
            metadata={"backchannel_logout_uri": f"http://127.0.0.1:{receiver.port}/fast"},
        )
        async with env.client() as http:
            tokens = await sign_in_to(env, http, slow, slow_secret)
            await sign_in_to(env, http, fast, fast_secret)
            sid = _unverified(tokens["id_token"])["sid"]
            session = await env.services.sessions.get(sid)
            assert session is not None
            deliveries = {
                d.client_id: d for d in await env.services.oauth.logout.notify(sid, session.user_id)
            }
        assert deliveries[fast.client_id].status == 200
        assert deliveries[slow.client_id].status is None and deliveries[slow.client_id].error
        assert sorted(r.path for r in receiver.received) == ["/fast", "/slow"]


async def test_form_post_logout_and_logout_when_already_signed_out(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.user()
        client, secret = await env.register_client(
            "RP", redirect_uris=[REDIRECT], metadata={"post_logout_redirect_uris": [AFTER_LOGOUT]}
        )
        async with env.client() as http:
            tokens = await sign_in_to(env, http, client, secret)
            sid = _unverified(tokens["id_token"])["sid"]
            # Section 2: the same parameters may come as a form POST (no CSRF token: the hint is the proof).
            posted = await http.post(
                "/oidc/logout",
                data={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": AFTER_LOGOUT},
            )
            assert posted.status_code == 303 and posted.headers["location"] == AFTER_LOGOUT
            assert not await session_is_live(env, sid)
        async with env.client() as fresh:
            # Nobody signed in: nothing to end, and the client still gets its user back.
            again = await fresh.get(
                "/oidc/logout",
                params={
                    "id_token_hint": tokens["id_token"],
                    "post_logout_redirect_uri": AFTER_LOGOUT,
                    "state": "z",
                },
            )
            assert again.status_code == 303 and again.headers["location"] == AFTER_LOGOUT + "?state=z"
            plain = await fresh.get("/oidc/logout")
            assert plain.status_code == 200 and "signed out" in plain.text


async def test_sessions_ended_elsewhere_are_swept(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, document_server() as receiver:
        receiver.routes["/bc"] = Route(status=200, body=b"")
        await env.user()
        client, secret = await env.register_client(
            "RP",
            redirect_uris=[REDIRECT],
            metadata={"backchannel_logout_uri": f"http://127.0.0.1:{receiver.port}/bc"},
        )
        async with env.client() as http:
            live = await sign_in_to(env, http, client, secret)
        async with env.client() as other:
            ended = await sign_in_to(env, other, client, secret)
        ended_sid = _unverified(ended["id_token"])["sid"]
        # The identity sign-out page, an admin or the risk engine end a session without /oidc/logout.
        assert await env.services.sessions.end(ended_sid, "ended_by_admin")
        logout = env.services.oauth.logout
        assert await logout.sweep() == 1
        assert await logout.sweep() == 0  # notified once
        received = await receiver.wait_for(1)
        token = received[0].form()["logout_token"]
        assert _unverified(token)["sid"] == ended_sid
        assert await logout.participants(_unverified(live["id_token"])["sid"]) == [client.client_id]


async def test_the_running_server_sweeps_sessions_ended_elsewhere(tmp_path: Path) -> None:
    async with (
        environment(tmp_path, backchannel_sweep_interval=0.05) as env,
        document_server() as receiver,
    ):
        receiver.routes["/bc"] = Route(status=200, body=b"")
        await env.user()
        client, secret = await env.register_client(
            "RP",
            redirect_uris=[REDIRECT],
            metadata={"backchannel_logout_uri": f"http://127.0.0.1:{receiver.port}/bc"},
        )
        async with env.app.router.lifespan_context(env.app):  # the server's start-up and shutdown
            async with env.client() as http:
                signed_in = await sign_in_to(env, http, client, secret)
            sid = _unverified(signed_in["id_token"])["sid"]
            assert receiver.received == []
            # Ended by an admin, not through /oidc/logout: the server's own sweep tells the client.
            assert await env.services.sessions.end(sid, "ended_by_admin")
            received = await receiver.wait_for(1)
            assert _unverified(received[0].form()["logout_token"])["sid"] == sid


async def test_a_logout_token_never_outlives_the_publication_of_its_key(tmp_path: Path) -> None:
    clock = FrozenClock(at=1_800_000_000.0)
    # Token lifetimes shorter than the logout token's usual two minutes.
    async with environment(tmp_path, clock=clock, access_token_ttl=60, id_token_ttl=60) as env:
        client, _ = await env.register_client("RP", redirect_uris=[REDIRECT])
        logout_token = await env.services.oauth.logout.logout_token(client, user_id="u-1", session_id="s-1")
        claims = _unverified(logout_token)
        assert claims["exp"] - claims["iat"] == 60
        signer = extract_compact(logout_token.encode()).headers()["kid"]
        await env.services.keys.rotate()
        clock.advance(59)
        assert signer in {k["kid"] for k in (await env.services.keys.jwks())["keys"]}
        clock.advance(2)
        # The retired key has left the JWKS only once the logout token it signed has expired.
        assert claims["exp"] < clock.now()
        assert signer not in {k["kid"] for k in (await env.services.keys.jwks())["keys"]}
