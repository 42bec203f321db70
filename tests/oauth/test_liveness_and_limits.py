"""Tokens of deleted or disabled parties, and the failure limits of the token, introspection and revocation
endpoints: hostile requests over HTTP, each with the specification's answer and no change of state."""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import httpx

from tessera.admin import MANAGEMENT_SCOPES, operations
from tessera.audit.log import AuditEvent, EventType
from tessera.core.clock import FrozenClock
from tessera.core.errors import InvalidRequest
from tessera.oauth.audit_buffer import AuditBuffer
from tessera.oauth.grants import TokenRequest
from tessera.oauth.tokens import TokenResponse
from tests.oauth.support import ISSUER, Env, environment
from tests.oauth.test_hostile import authorize_url, basic, get_code, introspect, redeem, setup

MANAGEMENT_API = f"{ISSUER}/api/v1"


async def client_credentials(
    http: httpx.AsyncClient, client_id: str, secret: str, resource: str, scope: str | None = None
) -> httpx.Response:
    data = {"grant_type": "client_credentials", "resource": resource}
    if scope:
        data["scope"] = scope
    return await http.post("/oauth/token", data=data, headers=basic(client_id, secret))


async def machine_client(env: Env, scope: str) -> tuple[Any, str]:
    client, secret = await env.register_client("Robot", grant_types=["client_credentials"], scope=scope)
    assert secret is not None
    return client, secret


async def token_issued_count(env: Env) -> int:
    await env.services.oauth.audit_buffer.flush()
    return len(await env.services.audit.query(type="token.issued"))


async def test_a_disabled_users_access_token_is_inactive_everywhere(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user, client, secret = await setup(env)
        async with env.client() as http:
            code = await get_code(env, http, client.client_id, user.email, scope="openid offline_access")
            tokens = (await redeem(http, client.client_id, secret, code)).json()
            access = tokens["access_token"]
            assert (await introspect(http, client.client_id, secret, access))["active"] is True

            await env.services.users.set_disabled(user.id, True)
            # RFC 7662 2.2: a token its user can no longer use is not active, and nothing more is said.
            assert await introspect(http, client.client_id, secret, access) == {"active": False}
            assert await introspect(http, client.client_id, secret, tokens["refresh_token"]) == {
                "active": False
            }
            info = await http.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
            assert info.status_code == 401 and 'error="invalid_token"' in info.headers["www-authenticate"]
            refresh = await http.post(
                "/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                headers=basic(client.client_id, secret),
            )
            assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"

            # Nothing was revoked on the way: enabling the user again makes the same token active again.
            await env.services.users.set_disabled(user.id, False)
            assert (await introspect(http, client.client_id, secret, access))["active"] is True
            assert (await introspect(http, client.client_id, secret, tokens["refresh_token"]))["active"]


async def test_tokens_of_a_deleted_or_disabled_client_are_inactive(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        api = "https://orders.example/"
        await env.register_api(api, {"orders:read": "Read orders"})
        await operations.ensure_api(env.services, MANAGEMENT_API, scopes=MANAGEMENT_SCOPES)
        env.services.oauth.apis.forget()
        resource_server, rs_secret = await machine_client(env, "orders:read")
        admin, admin_secret = await machine_client(env, " ".join(MANAGEMENT_SCOPES))
        doomed, doomed_secret = await machine_client(env, "orders:read")
        async with env.client() as http:
            issued = await client_credentials(http, doomed.client_id, doomed_secret, api)
            doomed_token = issued.json()["access_token"]
            assert (await introspect(http, resource_server.client_id, rs_secret, doomed_token))["active"]

            # Disabled (another process, straight in the database): inactive at once, whatever the cache says.
            async with env.services.db.transaction() as conn:
                await env.services.oauth.client_store.update(replace(doomed, disabled=True), conn=conn)
            assert await introspect(http, resource_server.client_id, rs_secret, doomed_token) == {
                "active": False
            }
            # Once this process's cache has the change (within cache_ttl; forget() stands in for the wait),
            # the disabled client gets no new token either.
            env.services.oauth.clients.forget(doomed.client_id)
            refused_token = await client_credentials(http, doomed.client_id, doomed_secret, api)
            assert refused_token.status_code == 401 and refused_token.json()["error"] == "invalid_client"

            # Deleted through the management API: its token is inactive, and the management API itself
            # refuses a token whose client is gone.
            admin_token = (
                await client_credentials(http, admin.client_id, admin_secret, MANAGEMENT_API)
            ).json()["access_token"]
            bearer = {"Authorization": f"Bearer {admin_token}"}
            deleted = await http.delete(f"/api/v1/clients/{doomed.client_id}", headers=bearer)
            assert deleted.status_code == 204, deleted.text
            assert await introspect(http, resource_server.client_id, rs_secret, doomed_token) == {
                "active": False
            }

            await operations.delete_client(env.services, admin.client_id)
            refused = await http.get("/api/v1/clients", headers=bearer)
            assert refused.status_code == 401 and refused.json()["code"] == "invalid_token"
            # The resource server's own client is untouched: its tokens still work.
            own = (await client_credentials(http, resource_server.client_id, rs_secret, api)).json()
            assert (await introspect(http, resource_server.client_id, rs_secret, own["access_token"]))[
                "active"
            ]


async def test_a_deleted_registered_clients_tokens_are_inactive(tmp_path: Path) -> None:
    # RFC 7592 2.3: the client deletes itself; the access tokens it holds stop being active.
    async with environment(tmp_path) as env:
        api = "https://orders.example/"
        await env.register_api(api, {"orders:read": "Read orders"})
        resource_server, rs_secret = await machine_client(env, "orders:read")
        async with env.client() as http:
            before = len(await env.services.oauth.client_store.list())
            # RFC 7591 2.1: response_types defaults to ["code"], which needs the code grant; the error says
            # what to send instead, and nothing is stored.
            strict = await http.post(
                "/oidc/register",
                json={"client_name": "Bot", "grant_types": ["client_credentials"], "scope": "orders:read"},
            )
            assert strict.status_code == 400 and strict.json()["error"] == "invalid_client_metadata"
            assert '"response_types": []' in strict.json()["error_description"]
            assert len(await env.services.oauth.client_store.list()) == before
            registered = await http.post(
                "/oidc/register",
                json={
                    "client_name": "Self-service bot",
                    "grant_types": ["client_credentials"],
                    "response_types": [],
                    "scope": "orders:read",
                },
            )
            assert registered.status_code == 201, registered.text
            body = registered.json()
            token = (await client_credentials(http, body["client_id"], body["client_secret"], api)).json()[
                "access_token"
            ]
            assert (await introspect(http, resource_server.client_id, rs_secret, token))["active"]
            gone = await http.delete(
                body["registration_client_uri"].removeprefix(ISSUER),
                headers={"Authorization": f"Bearer {body['registration_access_token']}"},
            )
            assert gone.status_code == 204, gone.text
            assert await introspect(http, resource_server.client_id, rs_secret, token) == {"active": False}


async def test_failed_client_authentication_is_limited_and_blocks_the_address(tmp_path: Path) -> None:
    clock = FrozenClock(1_800_000_000.0)
    async with environment(
        tmp_path, clock=clock, oauth_failure_rate_limit=3, oauth_failure_rate_window=60
    ) as env:
        api = "https://orders.example/"
        await env.register_api(api, {"orders:read": "Read orders"})
        client, secret = await machine_client(env, "orders:read")
        async with env.client() as http:
            # Successes are not counted: many more than the limit all succeed.
            for _ in range(6):
                assert (await client_credentials(http, client.client_id, secret, api)).status_code == 200
            issued_before = await token_issued_count(env)

            for _ in range(3):
                wrong = await client_credentials(http, client.client_id, "not-the-secret", api)
                assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
            limited = await client_credentials(http, client.client_id, "not-the-secret", api)
            assert limited.status_code == 429, limited.text
            assert limited.json()["error"] == "too_many_requests"
            assert int(limited.headers["retry-after"]) >= 1
            assert limited.headers["cache-control"] == "no-store"
            # While blocked, even the right secret gets 429 (no guess can succeed), and no token is issued.
            blocked = await client_credentials(http, client.client_id, secret, api)
            assert blocked.status_code == 429
            # Introspection and revocation share the block: the address is refused there too.
            probe = await http.post(
                "/oauth/introspect", data={"token": "x"}, headers=basic(client.client_id, secret)
            )
            assert probe.status_code == 429
            assert await token_issued_count(env) == issued_before
            limited_events = await env.services.audit.query(type="rate_limited")
            assert limited_events and limited_events[0].details["endpoint"] == f"{ISSUER}/oauth/token"

            clock.advance(int(limited.headers["retry-after"]) + 120)
            assert (await client_credentials(http, client.client_id, secret, api)).status_code == 200


async def test_introspection_with_bad_credentials_is_limited(tmp_path: Path) -> None:
    clock = FrozenClock(1_800_000_000.0)
    async with (
        environment(tmp_path, clock=clock, oauth_failure_rate_limit=2, oauth_failure_rate_window=60) as env,
        env.client() as http,
    ):
        answers = [
            (
                await http.post("/oauth/introspect", data={"token": "t"}, headers=basic("nobody", "guess"))
            ).status_code
            for _ in range(4)
        ]
        assert answers == [401, 401, 429, 429]


async def test_revocations_that_revoke_nothing_are_limited_and_real_ones_still_work(tmp_path: Path) -> None:
    clock = FrozenClock(1_800_000_000.0)
    async with environment(
        tmp_path, clock=clock, oauth_failure_rate_limit=3, oauth_failure_rate_window=60
    ) as env:
        user, client, secret = await setup(env)
        public, _ = await env.register_client(
            "Native", redirect_uris=["http://127.0.0.1/cb"], is_public=True, token_endpoint_auth_method="none"
        )
        async with env.client() as http:
            code = await get_code(env, http, client.client_id, user.email)
            tokens = (await redeem(http, client.client_id, secret, code)).json()
            # A public client needs only its client_id here: a stranger guessing tokens answers 200 (RFC 7009
            # 2.2) until the limit, then 429.
            answers = [
                (
                    await http.post(
                        "/oauth/revoke", data={"client_id": public.client_id, "token": f"guess-{i}"}
                    )
                ).status_code
                for i in range(5)
            ]
            assert answers == [200, 200, 200, 429, 429]
            # The block is for that public client at that address: a confidential client there goes on
            # (nothing was revoked), and the public client is let in again after the window.
            assert (await introspect(http, client.client_id, secret, tokens["access_token"]))[
                "active"
            ] is True
            clock.advance(200)
            again = await http.post("/oauth/revoke", data={"client_id": public.client_id, "token": "guess-9"})
            assert again.status_code == 200
            revoked = await http.post(
                "/oauth/revoke",
                data={"token": tokens["refresh_token"]},
                headers=basic(client.client_id, secret),
            )
            assert revoked.status_code == 200
            assert await introspect(http, client.client_id, secret, tokens["access_token"]) == {
                "active": False
            }


async def test_guessed_codes_at_the_token_endpoint_are_limited(tmp_path: Path) -> None:
    clock = FrozenClock(1_800_000_000.0)
    async with environment(
        tmp_path, clock=clock, oauth_failure_rate_limit=3, oauth_failure_rate_window=60
    ) as env:
        public, _ = await env.register_client(
            "Native", redirect_uris=["http://127.0.0.1/cb"], is_public=True, token_endpoint_auth_method="none"
        )
        robot, robot_secret = await env.register_client(
            "Robot", redirect_uris=["https://app.example/callback"]
        )
        assert robot_secret is not None
        async with env.client() as http:
            answers = []
            for i in range(5):
                response = await http.post(
                    "/oauth/token",
                    data={
                        "grant_type": "authorization_code",
                        "client_id": public.client_id,
                        "code": f"guess-{i}",
                        "redirect_uri": "http://127.0.0.1/cb",
                        "code_verifier": "v" * 50,
                    },
                )
                answers.append((response.status_code, response.json()["error"]))
            assert answers == [(400, "invalid_grant")] * 3 + [(429, "too_many_requests")] * 2
            # A confidential client proved its secret: its mistakes are its own and are not counted.
            for i in range(5):
                wrong = await http.post(
                    "/oauth/token",
                    data={"grant_type": "refresh_token", "refresh_token": f"guess-{i}"},
                    headers=basic(robot.client_id, robot_secret),
                )
                assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


async def test_openapi_has_unique_operation_ids_and_discovery_promises_no_acr(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, env.client() as http:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # FastAPI warns "Duplicate Operation ID" when two routes share one
            document = (await http.get("/openapi.json")).json()
        ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
        assert len(ids) == len(set(ids))
        assert {"get", "post"} <= set(document["paths"]["/userinfo"])
        assert (await http.get("/docs")).status_code == 200
        meta = (await http.get("/.well-known/openid-configuration")).json()
        assert "acr" not in meta["claims_supported"] and "amr" in meta["claims_supported"]


async def test_a_flush_waits_for_the_one_in_flight(tmp_path: Path) -> None:
    # A flush that finds the buffer empty because another flush (the background one) took the events must
    # still return only once they are in the database.
    async with environment(tmp_path) as env:
        buffer = AuditBuffer(env.services.db, env.services.clock, interval=60, batch=1000)
        for n in range(5):
            buffer.add(AuditEvent(EventType.TOKEN_ISSUED, client_id=f"c{n}"))
        in_flight = asyncio.get_running_loop().create_task(buffer.flush())
        await asyncio.sleep(0)  # let it take the events and start writing them
        await buffer.flush()
        assert in_flight.done()
        assert len(await env.services.audit.query(type="token.issued")) == 5
        await buffer.aclose()


async def test_probing_authorize_with_unknown_clients_is_limited(tmp_path: Path) -> None:
    clock = FrozenClock(1_800_000_000.0)
    async with (
        environment(tmp_path, clock=clock, oauth_failure_rate_limit=3, oauth_failure_rate_window=60) as env,
        env.client() as http,
    ):
        _user, client, _secret = await setup(env)
        good = authorize_url(client.client_id)
        # Good requests are not counted: they go on to the sign-in page however many there are.
        for _ in range(6):
            assert (await http.get(good)).status_code == 303
        probes = [(await http.get(authorize_url(f"nobody-{i}"))).status_code for i in range(5)]
        assert probes == [400, 400, 400, 429, 429]
        blocked = await http.get(good)
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        assert "location" not in blocked.headers and "Too many requests" in blocked.text
        clock.advance(200)
        assert (await http.get(good)).status_code == 303


class EchoGrant:
    """A grant added from outside the package, the way token exchange or CIBA would be."""

    grant_type: ClassVar[str] = "urn:example:params:oauth:grant-type:echo"
    client_auth_methods: ClassVar[frozenset[str] | None] = frozenset({"client_secret_basic"})

    def __init__(self, server: Any) -> None:
        self._server = server

    async def handle(self, request: TokenRequest) -> TokenResponse:
        words = request.params.require("words")
        if len(words) > 20:
            raise InvalidRequest("words: at most 20 characters")
        issued = await self._server.tokens.access_token(
            client_id=request.client.client_id,
            subject=request.client.client_id,
            audience=["https://orders.example/"],
            scope="orders:read",
        )
        return TokenResponse(access_token=issued.token, expires_in=60, extra={"echo": words})


async def test_a_grant_registered_from_outside_is_served_and_advertised(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, env.client() as http:
        await env.register_api("https://orders.example/", {"orders:read": "Read orders"})
        env.services.oauth.grants.register(EchoGrant(env.services.oauth))
        allowed, secret = await env.register_client("Echo", grant_types=[EchoGrant.grant_type])
        other, other_secret = await machine_client(env, "orders:read")
        assert secret is not None
        meta = (await http.get("/.well-known/openid-configuration")).json()
        assert EchoGrant.grant_type in meta["grant_types_supported"]

        form = {"grant_type": EchoGrant.grant_type, "words": "hello"}
        ok = await http.post("/oauth/token", data=form, headers=basic(allowed.client_id, secret))
        assert ok.status_code == 200, ok.text
        assert ok.json()["echo"] == "hello"
        assert (await introspect(http, other.client_id, other_secret, ok.json()["access_token"]))["active"]
        # A client not registered for the grant: unauthorized_client (RFC 6749 5.2); so is a method the
        # grant does not take; the handler's own checks give their own errors.
        refused = await http.post("/oauth/token", data=form, headers=basic(other.client_id, other_secret))
        assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
        posted = await http.post(
            "/oauth/token", data={**form, "client_id": allowed.client_id, "client_secret": secret}
        )
        assert posted.status_code == 400 and posted.json()["error"] == "unauthorized_client"
        long = await http.post(
            "/oauth/token", data={**form, "words": "x" * 21}, headers=basic(allowed.client_id, secret)
        )
        assert long.status_code == 400 and long.json()["error"] == "invalid_request"
