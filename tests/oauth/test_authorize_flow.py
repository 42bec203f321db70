"""The authorization endpoint's decisions: sign-in, prompt, max_age, consent memory, first-party clients."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet

from tessera.core.clock import FrozenClock
from tessera.oauth.pkce import s256
from tests.oauth.support import ISSUER, Browser, Env, callback_params, environment

REDIRECT = "https://app.example/callback"
API = "https://calendar.example/api"
VERIFIER = "q" * 60


def url(client_id: str, **extra: Any) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "state": "s",
        "scope": "openid",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        "nonce": "n-1",
    }
    params.update(extra)
    return "/authorize?" + urlencode(params)


async def id_token_of(env: Env, http: Any, client: Any, secret: str, code: str) -> dict[str, Any]:
    response = await http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": VERIFIER,
            "client_id": client.client_id,
            "client_secret": secret,
        },
    )
    assert response.status_code == 200, response.text
    jwks = KeySet.import_key_set((await http.get("/.well-known/jwks.json")).json())
    return dict(jwt.decode(response.json()["id_token"], jwks).claims)


async def test_sign_in_redirect_prompt_login_and_max_age(tmp_path: Path) -> None:
    clock = FrozenClock(at=time.time())
    async with environment(tmp_path, clock=clock) as env:
        user = await env.user()
        client, secret = await env.register_client("App", redirect_uris=[REDIRECT], first_party=True)
        assert secret
        async with env.client() as http:
            browser = Browser(http)
            first = await browser.get(url(client.client_id, login_hint=user.email))
            # Not signed in: to the login page, with a return_to that comes back to this request.
            login = urlsplit(first.headers["location"])
            query = parse_qs(login.query)
            assert login.path == "/login" and query["login_hint"] == [user.email]
            assert query["return_to"][0].startswith("/authorize?") and "force" not in query
            page = await browser.follow(first)
            done = await browser.login(page, user.email)
            claims = await id_token_of(env, http, client, secret, callback_params(done)["code"])
            first_auth_time = claims["auth_time"]
            assert claims["nonce"] == "n-1" and claims["amr"]

            # Signed in: a first-party client gets its code without a consent page.
            clock.advance(120)
            again = await browser.follow(await browser.get(url(client.client_id)))
            assert "code" in callback_params(again)

            # prompt=login: the user signs in again, and auth_time says so.
            forced = await browser.get(url(client.client_id, prompt="login"))
            query = parse_qs(urlsplit(forced.headers["location"]).query)
            assert query["force"] == ["1"] and "prompt" not in parse_qs(urlsplit(query["return_to"][0]).query)
            done = await browser.login(await browser.follow(forced), user.email)
            claims = await id_token_of(env, http, client, secret, callback_params(done)["code"])
            assert claims["auth_time"] >= first_auth_time + 120

            # max_age: older sign-ins need a fresh one; prompt=none then answers login_required.
            clock.advance(600)
            silent = await browser.get(url(client.client_id, max_age="300", prompt="none"))
            assert callback_params(silent)["error"] == "login_required"
            stale = await browser.get(url(client.client_id, max_age="300"))
            assert "force=1" in stale.headers["location"]
            fresh = await browser.get(url(client.client_id, max_age="3600"))
            assert "code" in callback_params(fresh)


async def test_consent_is_remembered_and_asked_again_for_new_scopes(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user = await env.user()
        await env.register_api(
            API, {"calendar:read": "Read your calendar", "calendar:write": "Change events"}
        )
        client, _ = await env.register_client("<script>alert(1)</script>", redirect_uris=[REDIRECT])
        async with env.client() as http:
            browser = Browser(http)
            page = await browser.login(
                await browser.follow(
                    await browser.get(url(client.client_id, scope="openid calendar:read", resource=API))
                ),
                user.email,
            )
            assert "<script>alert(1)</script>" not in page.text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
            assert "Read your calendar" in page.text and "Calendar API" in page.text
            callback_params(await browser.consent(page))

            same = await browser.get(url(client.client_id, scope="openid calendar:read", resource=API))
            assert "code" in callback_params(same)
            silent = await browser.get(
                url(client.client_id, scope="openid calendar:read", resource=API, prompt="none")
            )
            assert "code" in callback_params(silent)
            # A new scope: the consent page again, with only that scope marked new.
            more = await browser.get(
                url(client.client_id, scope="openid calendar:read calendar:write", resource=API)
            )
            assert more.status_code == 200 and "Change events" in more.text
            assert more.text.count('class="badge"') == 1
            asked = await browser.get(url(client.client_id, prompt="consent"))
            assert asked.status_code == 200 and 'name="decision"' in asked.text
        consents = await env.services.audit.query(type="consent.given")
        assert len(consents) == 1 and consents[0].details["resources"] == [API]


async def test_post_authorization_request_and_unknown_prompt(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.user()
        client, _ = await env.register_client("App", redirect_uris=[REDIRECT])
        async with env.client() as http:
            form = dict(parse_qs(urlsplit(url(client.client_id)).query))
            posted = await http.post("/authorize", data={k: v[0] for k, v in form.items()})
            assert posted.status_code == 303 and posted.headers["location"].startswith("/login?")
            bad = await http.get(url(client.client_id, prompt="none login"))
            assert callback_params(bad)["error"] == "invalid_request"
            duplicated = await http.get(url(client.client_id) + "&scope=profile")
            assert callback_params(duplicated)["error"] == "invalid_request"
            fragment = callback_params(await http.get(url(client.client_id, response_mode="fragment")))
            assert fragment["error"] == "invalid_request" and fragment["iss"] == ISSUER


async def test_form_post_response_mode(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user = await env.user()
        client, _ = await env.register_client("App", redirect_uris=[REDIRECT], first_party=True)
        async with env.client() as http:
            browser = Browser(http)
            page = await browser.authorize(url(client.client_id, response_mode="form_post"), user.email)
            assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
            assert f'action="{REDIRECT}"' in page.text and 'name="code"' in page.text
            assert (
                'name="iss" value="http://tessera.test"' in page.text
                and 'name="state" value="s"' in page.text
            )
            assert '<script src="/authorize/form_post.js">' in page.text
            script = await http.get("/authorize/form_post.js")
            assert script.status_code == 200 and "submit()" in script.text
            # Errors use the requested response mode too.
            failed = await http.get(
                url(client.client_id, response_mode="form_post", code_challenge_method="plain")
            )
            assert failed.status_code == 200 and 'name="error" value="invalid_request"' in failed.text


async def test_prompt_consent_asks_even_a_first_party_client(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user = await env.user()
        client, _ = await env.register_client("Own app", redirect_uris=[REDIRECT], first_party=True)
        async with env.client() as http:
            browser = Browser(http)
            signed_in = await browser.authorize(url(client.client_id), user.email)
            assert "code" in callback_params(signed_in)  # first party: no consent page
            asked = await browser.get(url(client.client_id, prompt="consent"))
            assert asked.status_code == 200 and 'name="decision" value="allow"' in asked.text
            silent = await browser.get(url(client.client_id, prompt="none"))
            assert "code" in callback_params(silent)
            denied = await browser.consent(asked, "deny")
            assert callback_params(denied)["error"] == "access_denied"


async def test_prompt_select_account_lets_the_user_sign_in_as_another_account(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        ada = await env.user()
        grace = await env.user("grace@example.com", "Grace Hopper")
        client, secret = await env.register_client("Own app", redirect_uris=[REDIRECT], first_party=True)
        assert secret
        async with env.client() as http:
            browser = Browser(http)
            first = await browser.authorize(url(client.client_id), ada.email)
            assert (await id_token_of(env, http, client, secret, callback_params(first)["code"]))[
                "sub"
            ] == ada.id
            choose = await browser.get(url(client.client_id, prompt="select_account"))
            query = parse_qs(urlsplit(choose.headers["location"]).query)
            assert urlsplit(choose.headers["location"]).path == "/login" and query["force"] == ["1"]
            assert "prompt" not in parse_qs(urlsplit(query["return_to"][0]).query)
            chosen = await browser.login(await browser.follow(choose), grace.email)
            claims = await id_token_of(env, http, client, secret, callback_params(chosen)["code"])
            assert claims["sub"] == grace.id
