"""The management API over a real loopback socket, authenticated with Tessera's own tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tessera.admin import MANAGEMENT_SCOPES, operations
from tessera.services import Services
from tessera.settings import Settings
from tessera.web.app import create_app
from tests.support.live import LiveServer, free_port

ALL_SCOPES = " ".join(MANAGEMENT_SCOPES)


@dataclass
class Deployment:
    url: str
    services: Services  # the test's own, on the same database file
    admin_id: str
    admin_secret: str

    async def token(self, scope: str = ALL_SCOPES, resource: str | None = None) -> str:
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{self.url}/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "resource": resource or f"{self.url}/api/v1",
                    "scope": scope,
                },
                auth=(self.admin_id, self.admin_secret),
            )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    port = free_port()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'admin.db'}",
        data_dir=tmp_path,
        issuer=f"http://127.0.0.1:{port}",
        master_key="m" * 43,
    )
    server = LiveServer(create_app(settings), port).start()  # migrates and registers the management API
    services = Services(settings)
    try:
        made = await operations.create_client(
            services,
            source="test",
            client_name="ops robot",
            grant_types=["client_credentials"],
            scope=f"{ALL_SCOPES} fga:read",
        )
        assert made.client_secret
        yield Deployment(server.url, services, made.client.client_id, made.client_secret)
    finally:
        await services.aclose()
        server.stop()


async def test_requires_a_valid_token_for_this_api_with_the_right_scope(deployment: Deployment) -> None:
    async with httpx.AsyncClient(base_url=deployment.url) as http:
        missing = await http.get("/api/v1/users")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.json()["code"] == "unauthorized"

        garbage = await http.get("/api/v1/users", headers={"Authorization": "Bearer not.a.jwt"})
        assert garbage.status_code == 401 and garbage.json()["code"] == "invalid_token"

        token = await deployment.token()
        header, payload, signature = token.split(".")
        tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
        bad_sig = await http.get("/api/v1/users", headers={"Authorization": f"Bearer {tampered}"})
        assert bad_sig.status_code == 401

        fga_token = await deployment.token(scope="fga:read", resource=f"{deployment.url}/fga")
        wrong_aud = await http.get("/api/v1/users", headers={"Authorization": f"Bearer {fga_token}"})
        assert wrong_aud.status_code == 401 and "not for" in wrong_aud.json()["message"]

        read_only = await deployment.token(scope="users:read")
        denied = await http.post(
            "/api/v1/users", json={"email": "x@example.com"}, headers={"Authorization": f"Bearer {read_only}"}
        )
        assert denied.status_code == 403
        assert denied.json()["code"] == "insufficient_scope"
        assert 'scope="users:write"' in denied.headers["www-authenticate"]
        assert await deployment.services.users.find_by_email("x@example.com") is None


async def test_users_sessions_clients_keys_and_audit(deployment: Deployment) -> None:
    token = await deployment.token()
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=deployment.url, headers=auth) as http:
        created = await http.post(
            "/api/v1/users",
            json={"email": "Grace@Example.com", "password": "a long passphrase 1", "name": "Grace"},
        )
        assert created.status_code == 201, created.text
        user = created.json()
        assert user["email"] == "grace@example.com" and user["disabled"] is False

        duplicate = await http.post("/api/v1/users", json={"email": "grace@example.com"})
        assert duplicate.status_code == 409 and duplicate.json()["code"] == "conflict"

        unknown_field = await http.post("/api/v1/users", json={"email": "y@example.com", "admin": True})
        assert unknown_field.status_code == 400 and unknown_field.json()["code"] == "validation_error"
        not_json = await http.post(
            "/api/v1/users", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 400

        for n in range(3):
            assert (await http.post("/api/v1/users", json={"email": f"u{n}@example.com"})).status_code == 201
        first = (await http.get("/api/v1/users", params={"limit": 2})).json()
        assert len(first["users"]) == 2 and first["next"]
        second = (await http.get("/api/v1/users", params={"limit": 2, "after": first["next"]})).json()
        seen = {u["id"] for u in first["users"]} | {u["id"] for u in second["users"]}
        assert len(seen) == 4 and not second["next"]

        assert (await http.get(f"/api/v1/users/{user['id']}")).json()["name"] == "Grace"
        assert (await http.get("/api/v1/users/nobody")).status_code == 404

        # Sessions: one real session, then disabling the user ends it.
        session, _cookie = await deployment.services.sessions.create(
            user["id"], ["pwd"], "198.51.100.7", "test"
        )
        listed = (await http.get(f"/api/v1/users/{user['id']}/sessions")).json()
        assert [s["id"] for s in listed] == [session.id]
        patched = await http.patch(f"/api/v1/users/{user['id']}", json={"disabled": True})
        assert patched.status_code == 200 and patched.json()["disabled"] is True
        assert (await http.get(f"/api/v1/users/{user['id']}/sessions")).json() == []
        assert (await http.delete(f"/api/v1/sessions/{session.id}")).status_code == 404

        # Clients: the secret is shown once and works at the token endpoint; deletion stops it.
        client = await http.post(
            "/api/v1/clients",
            json={
                "client_name": "<b>Report bot</b>",
                "grant_types": ["client_credentials"],
                "scope": "users:read",
            },
        )
        assert client.status_code == 201, client.text
        body = client.json()
        assert body["client_secret"] and body["client_name"] == "<b>Report bot</b>"
        fetched = (await http.get(f"/api/v1/clients/{body['client_id']}")).json()
        assert "client_secret" not in fetched
        bad_client = await http.post("/api/v1/clients", json={"client_name": "x", "grant_types": ["magic"]})
        assert bad_client.status_code == 400 and bad_client.json()["code"] == "validation_error"
        assert (await http.delete(f"/api/v1/clients/{body['client_id']}")).status_code == 204
        assert (await http.get(f"/api/v1/clients/{body['client_id']}")).status_code == 404
        gone = await httpx.AsyncClient().post(
            f"{deployment.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(body["client_id"], body["client_secret"]),
        )
        assert gone.status_code == 401 and gone.json()["error"] == "invalid_client"

        # Keys: rotation makes a new active key; the old one stays published.
        before = (await http.get("/api/v1/keys")).json()
        rotated = await http.post("/api/v1/keys/rotate")
        assert rotated.status_code == 201
        after = (await http.get("/api/v1/keys")).json()
        assert rotated.json()["kid"] in {k["kid"] for k in after if k["status"] == "active"}
        assert {k["kid"] for k in before} <= {k["kid"] for k in after}
        jwks = (await http.get("/.well-known/jwks.json")).json()
        assert rotated.json()["kid"] in {k["kid"] for k in jwks["keys"]}

        events = (await http.get("/api/v1/audit", params={"type": "key.rotated"})).json()
        assert events and events[0]["details"]["kid"] == rotated.json()["kid"]

        spec = (await http.get("/openapi.json")).json()
        assert "/api/v1/users" in spec["paths"] and "/api/v1/keys/rotate" in spec["paths"]


async def test_sessions_are_ended_one_or_all_and_passwords_and_client_pages_work(
    deployment: Deployment,
) -> None:
    services = deployment.services
    user = await services.users.create("ada@example.com", "first passphrase 1", name="Ada")
    one, _ = await services.sessions.create(user.id, ["pwd"], "198.51.100.1", "laptop")
    two, _ = await services.sessions.create(user.id, ["pwd"], "198.51.100.2", "phone")
    three, _ = await services.sessions.create(user.id, ["pwd"], "198.51.100.3", "tablet")
    reader = {"Authorization": f"Bearer {await deployment.token(scope='sessions:read users:read')}"}
    writer = {"Authorization": f"Bearer {await deployment.token()}"}
    async with httpx.AsyncClient(base_url=deployment.url) as http:
        listed = (await http.get(f"/api/v1/users/{user.id}/sessions", headers=reader)).json()
        assert {s["id"] for s in listed} == {one.id, two.id, three.id}
        assert {s["ip"] for s in listed} == {"198.51.100.1", "198.51.100.2", "198.51.100.3"}

        # Ending needs sessions:write; the refused call ends nothing.
        refused = await http.delete(f"/api/v1/sessions/{one.id}", headers=reader)
        assert refused.status_code == 403 and await services.sessions.get(one.id) is not None

        assert (await http.delete(f"/api/v1/sessions/{one.id}", headers=writer)).status_code == 204
        assert await services.sessions.get(one.id) is None
        assert await services.sessions.get(two.id) is not None
        assert (await http.delete(f"/api/v1/sessions/{one.id}", headers=writer)).status_code == 404
        assert (await http.delete(f"/api/v1/users/{user.id}/sessions", headers=writer)).status_code == 204
        assert await services.sessions.list_for_user(user.id) == []
        assert (await http.delete("/api/v1/users/nobody/sessions", headers=writer)).status_code == 404
        # Each ending is in the audit log, which threat detection reads: one session, then the other two.
        ended = await services.audit.query(user_id=user.id, type="session.ended")
        assert len(ended) == 2
        assert {(e.session_id, e.details.get("sessions")) for e in ended} == {(one.id, None), (None, 2)}
        assert {e.details["reason"] for e in ended} == {"ended_by_admin"}
        assert {e.details["source"] for e in ended} == {"api"}

        changed = await http.patch(
            f"/api/v1/users/{user.id}", json={"password": "second passphrase 2"}, headers=writer
        )
        assert changed.status_code == 200, changed.text
        assert await services.users.verify_password("ada@example.com", "second passphrase 2") is not None
        assert await services.users.verify_password("ada@example.com", "first passphrase 1") is None

        for n in range(3):
            made = await http.post(
                "/api/v1/clients",
                json={"client_name": f"bot {n}", "grant_types": ["client_credentials"]},
                headers=writer,
            )
            assert made.status_code == 201, made.text
        seen: list[str] = []
        after: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 2, **({"after": after} if after else {})}
            page = (await http.get("/api/v1/clients", params=params, headers=writer)).json()
            assert len(page["clients"]) <= 2
            assert all("client_secret" not in c for c in page["clients"])
            seen += [c["client_id"] for c in page["clients"]]
            after = page["next"]
            if not after:
                break
        # The three new clients and the test's own admin client, each once.
        assert len(seen) == len(set(seen)) == 4 and deployment.admin_id in seen

        docs = await http.get("/docs")
        assert docs.status_code == 200 and "/openapi.json" in docs.text
