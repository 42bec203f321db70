"""The login and logout pages, including hostile input: forged forms, open redirects, markup, floods."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tessera.audit import EventType
from tessera.core.clock import FrozenClock
from tessera.identity.sessions import login_sessions
from tessera.identity.web import SESSION_COOKIE, current_session, login_url, safe_return_to
from tessera.services import Services
from tests.identity.conftest import client_for, csrf_token

PASSWORD = "correct horse battery"


async def make_user(services: Services, email: str = "ada@example.com") -> str:
    return (await services.users.create(email, PASSWORD, name="Ada")).id


async def session_count(services: Services) -> int:
    async with services.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(login_sessions))).scalar_one())


async def sign_in(
    http: httpx.AsyncClient, email: str, password: str, return_to: str = "", **extra: str
) -> httpx.Response:
    page = await http.get("/login", params={"return_to": return_to} if return_to else None)
    form = {"csrf_token": csrf_token(page.text), "email": email, "password": password, "return_to": return_to}
    form.update(extra)
    return await http.post("/login", data=form)


def set_cookie_header(response: httpx.Response, name: str) -> str:
    for value in response.headers.get_list("set-cookie"):
        if value.startswith(name + "="):
            return value
    raise AssertionError(f"no {name} cookie set")


async def test_login_form_is_accessible_and_protected(http: httpx.AsyncClient) -> None:
    page = await http.get("/login")
    assert page.status_code == 200
    html = page.text
    assert 'name="email"' in html and 'autocomplete="username"' in html
    assert 'name="password"' in html and 'autocomplete="current-password"' in html
    assert 'type="password"' in html and 'method="post" action="/login"' in html
    assert csrf_token(html)
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    csrf_cookie = set_cookie_header(page, "tessera_csrf").lower()
    assert "httponly" in csrf_cookie and "samesite=lax" in csrf_cookie
    assert "<script" not in html  # works without JavaScript


async def test_sign_in_sets_a_session_and_redirects(http: httpx.AsyncClient, services: Services) -> None:
    user_id = await make_user(services)
    response = await sign_in(http, "ADA@example.com", PASSWORD, return_to="/authorize?client_id=a&state=x")
    assert response.status_code == 303
    assert response.headers["location"] == "/authorize?client_id=a&state=x"
    cookie = set_cookie_header(response, SESSION_COOKIE)
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "path=/" in lowered
    assert "secure" not in lowered  # the issuer is http here; see test_cookie_is_secure_on_https
    value = http.cookies[SESSION_COOKIE]
    assert len(value) >= 43

    session = await services.sessions.get_by_cookie(value)
    assert session is not None and session.user_id == user_id and session.amr == ["pwd"]
    assert session.ip == "198.51.100.20"

    events = await services.audit.query(type=EventType.LOGIN_SUCCEEDED)
    assert len(events) == 1 and events[0].user_id == user_id and events[0].session_id == session.id

    # Signed in: the login page sends the browser straight on, or shows who is signed in.
    again = await http.get("/login", params={"return_to": "/next"})
    assert again.status_code == 303 and again.headers["location"] == "/next"
    shown = await http.get("/login")
    assert shown.status_code == 200 and "ada@example.com" in shown.text and "Sign out" in shown.text


async def test_cookie_is_secure_on_https(services: Services) -> None:
    services.settings.issuer = "https://id.example.com"
    services.__dict__.pop("csrf", None)
    await make_user(services)
    async with client_for(services, base_url="https://id.example.com") as http:
        response = await sign_in(http, "ada@example.com", PASSWORD)
    assert "secure" in set_cookie_header(response, SESSION_COOKIE).lower()


async def test_wrong_password_and_unknown_email_look_the_same(
    http: httpx.AsyncClient, services: Services
) -> None:
    user_id = await make_user(services)
    wrong = await sign_in(http, "ada@example.com", "not the password")
    unknown = await sign_in(http, "nobody@example.com", "not the password")
    for response in (wrong, unknown):
        assert response.status_code == 400
        assert "The email or password is incorrect." in response.text
        assert SESSION_COOKIE not in http.cookies
    assert 'value="ada@example.com"' in wrong.text  # the email is kept, the password is not
    assert "not the password" not in wrong.text
    assert await session_count(services) == 0
    failures = await services.audit.query(type=EventType.LOGIN_FAILED)
    assert {e.user_id for e in failures} == {user_id, None}
    assert all(e.ip == "198.51.100.20" for e in failures)


async def test_missing_fields(http: httpx.AsyncClient, services: Services) -> None:
    response = await sign_in(http, "", "")
    assert response.status_code == 400 and "Enter your email and password." in response.text
    assert await session_count(services) == 0


@pytest.mark.parametrize("token", [None, "", "forged", "0" * 64])
async def test_csrf_missing_or_wrong_is_refused(
    http: httpx.AsyncClient, services: Services, token: str | None
) -> None:
    await make_user(services)
    await http.get("/login")
    form = {"email": "ada@example.com", "password": PASSWORD}
    if token is not None:
        form["csrf_token"] = token
    response = await http.post("/login", data=form)
    assert response.status_code == 403
    assert "expired" in response.text
    assert SESSION_COOKIE not in http.cookies and await session_count(services) == 0


async def test_csrf_token_without_its_cookie_or_for_another_form_is_refused(
    http: httpx.AsyncClient, services: Services
) -> None:
    await make_user(services)
    token = csrf_token((await http.get("/login")).text)
    # A cross-site form has the token (say, leaked) but not the victim's CSRF cookie.
    async with client_for(services) as stranger:
        response = await stranger.post(
            "/login", data={"csrf_token": token, "email": "ada@example.com", "password": PASSWORD}
        )
    assert response.status_code == 403
    # A token minted for the logout form does not open the login form.
    logout_token = services.csrf.issue(
        _request_with(http.cookies["tessera_csrf"]), httpx_response(), "logout"
    )
    response = await http.post(
        "/login", data={"csrf_token": logout_token, "email": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 403 and await session_count(services) == 0


def _request_with(csrf_cookie: str):  # type: ignore[no-untyped-def]
    from starlette.requests import Request

    headers = [(b"cookie", f"tessera_csrf={csrf_cookie}".encode())]
    return Request({"type": "http", "headers": headers, "method": "GET", "path": "/"})


def httpx_response():  # type: ignore[no-untyped-def]
    from starlette.responses import Response

    return Response()


async def test_markup_in_login_hint_and_return_to_is_escaped(http: httpx.AsyncClient) -> None:
    hostile = '"><script>alert(1)</script>'
    page = await http.get("/login", params={"login_hint": hostile, "return_to": "/cb?x=" + hostile})
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert page.text.count("&lt;script&gt;") == 2


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "///evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        " /evil",
        "javascript:alert(1)",
        "http:/evil.example",
        "evil.example",
        "/" + "a" * 5000,
    ],
)
async def test_open_redirects_are_refused(http: httpx.AsyncClient, services: Services, target: str) -> None:
    await make_user(services)
    response = await sign_in(http, "ada@example.com", PASSWORD, return_to=target)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    signed_in = await http.get("/login", params={"return_to": target})
    assert signed_in.status_code == 200  # no redirect anywhere
    assert safe_return_to(target) is None


def test_safe_return_to_and_login_url() -> None:
    assert safe_return_to("/authorize?client_id=x&redirect_uri=https%3A%2F%2Fa.example") is not None
    assert safe_return_to("/") == "/"
    assert safe_return_to(None) is None and safe_return_to(42) is None
    assert login_url("/authorize?a=1&b=2") == "/login?return_to=%2Fauthorize%3Fa%3D1%26b%3D2"
    assert (
        login_url("/x", force=True, login_hint="a@b.c") == "/login?return_to=%2Fx&force=1&login_hint=a%40b.c"
    )


async def test_oversized_fields_are_refused(http: httpx.AsyncClient, services: Services) -> None:
    await make_user(services)
    long_email = await sign_in(http, "a" * 10_000 + "@example.com", PASSWORD)
    assert long_email.status_code == 400 and "too long" in long_email.text
    long_password = await sign_in(http, "ada@example.com", "p" * 2000)
    assert long_password.status_code == 400
    huge = await sign_in(http, "ada@example.com", "p" * 100_000)
    assert huge.status_code == 413
    assert await session_count(services) == 0


async def test_failures_per_email_and_ip_are_limited(
    http: httpx.AsyncClient, services: Services, clock: FrozenClock
) -> None:
    await make_user(services)
    for _ in range(3):
        assert (await sign_in(http, "ada@example.com", "wrong password")).status_code == 400
    blocked = await sign_in(http, "ada@example.com", PASSWORD)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "Too many sign-in attempts" in blocked.text
    assert SESSION_COOKIE not in http.cookies
    limited = await services.audit.query(type=EventType.RATE_LIMITED)
    assert limited and limited[0].details["limit"] == "identifier_ip"
    assert limited[0].details["identifier"] == "ada@example.com" and limited[0].ip == "198.51.100.20"

    # The same account from another IP is not blocked (the limit is per identifier and IP).
    async with client_for(services, ip="192.0.2.99") as elsewhere:
        assert (await sign_in(elsewhere, "ada@example.com", PASSWORD)).status_code == 303

    clock.advance(1800)
    assert (await sign_in(http, "ada@example.com", PASSWORD)).status_code == 303


async def test_success_resets_the_failure_count(http: httpx.AsyncClient, services: Services) -> None:
    await make_user(services)
    for _ in range(2):
        await sign_in(http, "ada@example.com", "wrong password")
    assert (await sign_in(http, "ada@example.com", PASSWORD)).status_code == 303
    http.cookies.delete(SESSION_COOKIE)
    for _ in range(2):
        assert (await sign_in(http, "ada@example.com", "wrong password")).status_code == 400
    assert (await sign_in(http, "ada@example.com", PASSWORD)).status_code == 303


async def test_attempts_per_ip_are_limited(http: httpx.AsyncClient, services: Services) -> None:
    for i in range(8):
        assert (await sign_in(http, f"user{i}@example.com", "wrong password")).status_code == 400
    blocked = await sign_in(http, "user99@example.com", "wrong password")
    assert blocked.status_code == 429 and "retry-after" in blocked.headers
    limited = await services.audit.query(type=EventType.RATE_LIMITED)
    assert limited[0].details["limit"] == "ip"


async def test_force_replaces_the_session_with_a_fresh_auth_time(
    http: httpx.AsyncClient, services: Services, clock: FrozenClock
) -> None:
    await make_user(services)
    await sign_in(http, "ada@example.com", PASSWORD)
    first_cookie = http.cookies[SESSION_COOKIE]
    first = await services.sessions.get_by_cookie(first_cookie)
    assert first is not None
    clock.advance(600)

    page = await http.get(login_url("/authorize?x=1", force=True))
    assert page.status_code == 200 and 'name="force" value="1"' in page.text
    response = await http.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.text),
            "email": "ada@example.com",
            "password": PASSWORD,
            "return_to": "/authorize?x=1",
            "force": "1",
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/authorize?x=1"
    second = await services.sessions.get_by_cookie(http.cookies[SESSION_COOKIE])
    assert second is not None and second.id != first.id
    assert (second.auth_time - first.auth_time).total_seconds() == 600
    assert await services.sessions.get_by_cookie(first_cookie) is None


async def test_logout_needs_a_post_with_csrf(http: httpx.AsyncClient, services: Services) -> None:
    user_id = await make_user(services)
    await sign_in(http, "ada@example.com", PASSWORD)
    cookie = http.cookies[SESSION_COOKIE]

    confirm = await http.get("/logout")
    assert confirm.status_code == 200 and "Sign out?" in confirm.text
    assert await services.sessions.get_by_cookie(cookie) is not None  # a GET signs no one out

    forged = await http.post("/logout", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert await services.sessions.get_by_cookie(cookie) is not None

    done = await http.post(
        "/logout", data={"csrf_token": csrf_token(confirm.text), "return_to": "https://evil.example/"}
    )
    assert done.status_code == 200 and "You are signed out" in done.text
    assert 'tessera_session=""' in set_cookie_header(done, SESSION_COOKIE)
    assert await services.sessions.get_by_cookie(cookie) is None
    events = await services.audit.query(type=EventType.LOGOUT)
    assert len(events) == 1 and events[0].user_id == user_id

    # Signed out: /logout says so, and the old cookie value is dead even if replayed.
    http.cookies.set(SESSION_COOKIE, cookie)
    assert "You are signed out" in (await http.get("/logout")).text


async def test_logout_redirects_to_a_local_return_to(http: httpx.AsyncClient, services: Services) -> None:
    await make_user(services)
    await sign_in(http, "ada@example.com", PASSWORD)
    confirm = await http.get("/logout", params={"return_to": "/login?return_to=%2Fapp"})
    response = await http.post(
        "/logout", data={"csrf_token": csrf_token(confirm.text), "return_to": "/login?return_to=%2Fapp"}
    )
    assert response.status_code == 303 and response.headers["location"] == "/login?return_to=%2Fapp"


async def test_current_session_reads_the_cookie(http: httpx.AsyncClient, services: Services) -> None:
    from starlette.requests import Request

    await make_user(services)
    await sign_in(http, "ada@example.com", PASSWORD)

    def request(cookie: str) -> Request:
        return Request(
            {"type": "http", "headers": [(b"cookie", cookie.encode())], "method": "GET", "path": "/"}
        )

    found = await current_session(request(f"{SESSION_COOKIE}={http.cookies[SESSION_COOKIE]}"), services)
    assert found is not None and found.amr == ["pwd"]
    assert await current_session(request(f"{SESSION_COOKIE}=forged"), services) is None
    assert await current_session(request("other=1"), services) is None

    await services.users.set_disabled(found.user_id, True)
    assert (
        await current_session(request(f"{SESSION_COOKIE}={http.cookies[SESSION_COOKIE]}"), services) is None
    )


@pytest.mark.redis
async def test_login_limits_live_in_redis_when_configured(
    tmp_path: Path, clock: FrozenClock, redis_url: str
) -> None:
    from uuid import uuid4

    from tessera.core.ratelimit import RedisBackend
    from tessera.settings import Settings
    from tessera.storage.migrate import upgrade

    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}",
        data_dir=tmp_path,
        issuer="http://testserver",
        redis_url=redis_url,
        login_max_failures=2,
    )
    services = Services(settings, clock=clock)
    await upgrade(services.db)
    try:
        assert isinstance(services.rate_limiter._backend, RedisBackend)
        email = f"redis-{uuid4().hex[:8]}@example.com"
        await make_user(services, email)
        async with client_for(services, ip=f"10.{uuid4().int % 250}.0.1") as http:
            for _ in range(2):
                assert (await sign_in(http, email, "wrong password")).status_code == 400
            assert (await sign_in(http, email, PASSWORD)).status_code == 429
        async with database_rows(services) as count:
            assert count == 0  # nothing went to the database's counters table
    finally:
        await services.aclose()


@asynccontextmanager
async def database_rows(services: Services) -> AsyncIterator[int]:
    from tessera.core.ratelimit import rate_limit_counters

    async with services.db.read() as conn:
        yield int((await conn.execute(select(func.count()).select_from(rate_limit_counters))).scalar_one())


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="/\\:@.?#%&=;\t\n\r xevil0", max_size=24))
def test_no_accepted_return_to_leaves_the_server(value: str) -> None:
    accepted = safe_return_to(value)
    if accepted is None:
        return
    # Browsers drop tabs and newlines before parsing (WHATWG URL); none may remain, and the target stays here.
    assert not any(ch in accepted for ch in "\t\n\r \\")
    joined = urlsplit(urljoin("https://issuer.example/base/", accepted))
    assert joined.scheme == "https" and joined.netloc == "issuer.example"
