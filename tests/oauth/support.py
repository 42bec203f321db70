"""Helpers for the authorization server tests: a real app over ASGI, a browser that fills real forms."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

from tessera.core.clock import Clock
from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.migrate import upgrade
from tessera.web.app import create_app

ISSUER = "http://tessera.test"
PASSWORD = "correct horse battery staple"


def make_settings(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url or f"sqlite+aiosqlite:///{tmp_path / 'oauth.db'}",
        "data_dir": tmp_path,
        "issuer": ISSUER,
        "master_key": "k" * 43,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Env:
    services: Services
    app: Any

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=ISSUER, **kwargs)

    async def user(self, email: str = "ada@example.com", name: str | None = "Ada Lovelace") -> Any:
        return await self.services.users.create(email, PASSWORD, name=name, email_verified=True)

    async def register_client(self, name: str = "Demo app", **kwargs: Any) -> tuple[Any, str | None]:
        store = self.services.oauth.client_store
        made = self.services.oauth.build_client(client_name=name, **kwargs)
        async with self.services.db.transaction() as conn:
            await store.insert(made.client, conn=conn)
        return made.client, made.client_secret

    async def register_api(self, identifier: str, scopes: dict[str, str]) -> Any:
        store = self.services.oauth.api_store
        api = self.services.oauth.build_api(identifier, scopes=scopes, name="Calendar API")
        async with self.services.db.transaction() as conn:
            await store.insert(api, conn=conn)
        self.services.oauth.apis.forget()
        return api


@asynccontextmanager
async def environment(tmp_path: Path, clock: Clock | None = None, **overrides: Any) -> AsyncIterator[Env]:
    services = Services(make_settings(tmp_path, **overrides), clock=clock or Clock())
    await upgrade(services.db)
    app = create_app(services=services)
    try:
        yield Env(services, app)
    finally:
        await services.aclose()


def form_fields(page: str) -> dict[str, str]:
    """The hidden and text inputs of the first form on a page (what a browser would submit)."""
    fields: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[html.unescape(name.group(1))] = html.unescape(value.group(1)) if value else ""
    return fields


def form_pairs(page: str) -> list[tuple[str, str]]:
    pairs = []
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            pairs.append((html.unescape(name.group(1)), html.unescape(value.group(1)) if value else ""))
    return pairs


class Browser:
    """A user agent that follows redirects on this server and stops at the client's redirect URI."""

    def __init__(self, http: httpx.AsyncClient, base: str = ISSUER):
        self.http = http
        self.base = base

    async def get(self, url: str) -> httpx.Response:
        return await self.http.get(url, follow_redirects=False)

    async def follow(self, response: httpx.Response, limit: int = 10) -> httpx.Response:
        while response.status_code in (302, 303) and limit:
            location = response.headers["location"]
            if not location.startswith("/") and not location.startswith(self.base):
                return response  # left the server: the client's redirect URI
            response = await self.http.get(urljoin(self.base, location), follow_redirects=False)
            limit -= 1
        return response

    async def login(self, page: httpx.Response, email: str, password: str = PASSWORD) -> httpx.Response:
        assert 'autocomplete="current-password"' in page.text, page.text[:500]
        fields = form_fields(page.text)
        fields.update(email=email, password=password)
        response = await self.http.post("/login", data=fields, follow_redirects=False)
        return await self.follow(response)

    async def consent(self, page: httpx.Response, decision: str = "allow") -> httpx.Response:
        assert 'name="decision"' in page.text, page.text[:800]
        pairs = [p for p in form_pairs(page.text) if p[0] != "decision"]
        pairs.append(("decision", decision))
        response = await self.http.post(
            "/authorize/decision",
            content=urlencode(pairs),
            headers={"content-type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        return await self.follow(response)

    async def authorize(self, url: str, email: str, *, consent: str | None = "allow") -> httpx.Response:
        """Visit an authorization URL, sign in if asked, consent if asked; returns the final redirect."""
        response = await self.follow(await self.get(url))
        if response.status_code == 200 and 'autocomplete="current-password"' in response.text:
            response = await self.login(response, email)
        if response.status_code == 200 and 'name="decision"' in response.text and consent is not None:
            response = await self.consent(response, consent)
        return response


def callback_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return {k: v[0] for k, v in query.items()}
