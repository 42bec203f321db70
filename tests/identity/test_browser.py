"""The login page in a real browser (Debian chromium driven by playwright) against a live server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.migrate import upgrade
from tessera.web.app import create_app
from tests.support.live import serve

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(os.environ.get("TESSERA_SCREENSHOT_DIR", "/tmp"))

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (apt-get install -y chromium)"
)


def make_services(tmp_path: Path) -> Services:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'browser.db'}",
        data_dir=tmp_path,
        issuer="http://127.0.0.1",
        login_max_failures=2,
    )
    return Services(settings)


def seed(tmp_path: Path) -> None:
    async def run() -> None:
        services = make_services(tmp_path)
        try:
            await upgrade(services.db)
            await services.users.create("browser@example.com", "browser passphrase", name="Browser User")
        finally:
            await services.aclose()

    asyncio.run(run())


def test_sign_in_with_a_real_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    seed(tmp_path)
    with serve(create_app(make_services(tmp_path).settings)) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 720})
            page.goto(f"{server.url}/login?return_to=%2Flogin%3Fwelcome%3D1")
            assert page.title() == "Sign in · Tessera"
            assert page.get_attribute("input[name=email]", "autocomplete") == "username"
            assert page.get_attribute("input[name=password]", "autocomplete") == "current-password"

            # A wrong password first: the page says so, without saying whether the email exists.
            page.fill("input[name=email]", "browser@example.com")
            page.fill("input[name=password]", "not it at all")
            page.click("button[type=submit]")
            assert page.locator("[role=alert]").inner_text() == "The email or password is incorrect."
            assert page.input_value("input[name=email]") == "browser@example.com"
            page.screenshot(path=str(SCREENSHOTS / "tessera-login-error.png"), full_page=True)

            page.fill("input[name=password]", "browser passphrase")
            page.click("button[type=submit]")
            page.wait_for_url("**/login?welcome=1")
            assert "You are signed in" in page.content()
            assert "Browser User" in page.content()
            cookies = {c["name"]: c for c in page.context.cookies()}
            session = cookies["tessera_session"]
            assert session["httpOnly"] is True and session["sameSite"] == "Lax" and session["path"] == "/"
            assert len(session["value"]) >= 43
            # Script on the page cannot read the session cookie.
            assert "tessera_session" not in page.evaluate("document.cookie")
            page.screenshot(path=str(SCREENSHOTS / "tessera-signed-in.png"), full_page=True)

            page.goto(f"{server.url}/login")
            page.screenshot(path=str(SCREENSHOTS / "tessera-login.png"), full_page=True)
            page.click("button[type=submit]")  # the signed-in page's "Sign out"
            assert "You are signed out" in page.content()
            assert "tessera_session" not in {c["name"] for c in page.context.cookies()}
            page.goto(f"{server.url}/login")
            page.screenshot(path=str(SCREENSHOTS / "tessera-login.png"), full_page=True)

            # Brute force: after two failures for this email from this IP, even the right password waits.
            for password in ("guess one", "guess two", "browser passphrase"):
                page.fill("input[name=email]", "browser@example.com")
                page.fill("input[name=password]", password)
                with page.expect_navigation():
                    page.click("button[type=submit]")
            assert page.title() == "Too many attempts · Tessera"
            assert "tessera_session" not in {c["name"] for c in page.context.cookies()}
            page.screenshot(path=str(SCREENSHOTS / "tessera-login-blocked.png"), full_page=True)
        finally:
            browser.close()
