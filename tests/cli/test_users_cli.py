"""``tessera users``: create (with --password-stdin and --json), show, list, set-password."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from tessera.cli.main import app
from tessera.services import Services
from tessera.settings import Settings


def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


def verify(url: str, tmp_path: Path, email: str, password: str) -> bool:
    async def check() -> bool:
        services = Services(Settings(database_url=url, data_dir=tmp_path))
        try:
            return await services.users.verify_password(email, password) is not None
        finally:
            await services.aclose()

    return asyncio.run(check())


def test_users_create_prints_the_record(tmp_path: Path) -> None:
    url = db_url(tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "users",
            "create",
            "Grace@Example.com",
            "--password-stdin",
            "--name",
            "Grace",
            "--json",
            "--database-url",
            url,
        ],
        input="a long passphrase\n",
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["email"] == "grace@example.com" and record["name"] == "Grace"
    assert len(record["id"]) == 26 and record["disabled"] is False
    assert "a long passphrase" not in result.output
    assert verify(url, tmp_path, "grace@example.com", "a long passphrase")

    plain = runner.invoke(app, ["users", "create", "linus@example.com", "--database-url", url])
    assert plain.exit_code == 0 and "linus@example.com" in plain.output and "id" in plain.output

    shown = runner.invoke(app, ["users", "show", "GRACE@example.com", "--json", "--database-url", url])
    assert json.loads(shown.output)["id"] == record["id"]
    listed = runner.invoke(app, ["users", "list", "--json", "--database-url", url])
    assert [u["email"] for u in json.loads(listed.output)] == ["grace@example.com", "linus@example.com"]


def test_users_create_refuses_duplicates_and_weak_passwords(tmp_path: Path) -> None:
    url = db_url(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["users", "create", "ken@example.com", "--database-url", url]).exit_code == 0
    duplicate = runner.invoke(app, ["users", "create", "KEN@example.com", "--database-url", url])
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    weak = runner.invoke(
        app,
        ["users", "create", "weak@example.com", "--password-stdin", "--database-url", url],
        input="short\n",
    )
    assert weak.exit_code == 1 and "at least 8" in weak.output
    bad = runner.invoke(app, ["users", "create", "not-an-email", "--database-url", url])
    assert bad.exit_code == 1
    missing = runner.invoke(app, ["users", "show", "nobody@example.com", "--database-url", url])
    assert missing.exit_code == 1


def test_set_password(tmp_path: Path) -> None:
    url = db_url(tmp_path)
    runner = CliRunner()
    runner.invoke(app, ["users", "create", "barbara@example.com", "--database-url", url])
    result = runner.invoke(
        app, ["users", "set-password", "barbara@example.com", "--database-url", url], input="new passphrase\n"
    )
    assert result.exit_code == 0 and "0 session(s) ended" in result.output
    assert verify(url, tmp_path, "barbara@example.com", "new passphrase")


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for command in (["users"], ["users", "create"], ["users", "list"], ["serve"], ["dev"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_disable_and_enable(tmp_path: Path) -> None:
    url = db_url(tmp_path)
    runner = CliRunner()
    runner.invoke(
        app,
        ["users", "create", "mary@example.com", "--password-stdin", "--database-url", url],
        input="mary passphrase\n",
    )
    disabled = runner.invoke(app, ["users", "disable", "mary@example.com", "--database-url", url])
    assert disabled.exit_code == 0 and "disabled" in disabled.output
    assert not verify(url, tmp_path, "mary@example.com", "mary passphrase")
    shown = runner.invoke(app, ["users", "show", "mary@example.com", "--json", "--database-url", url])
    assert json.loads(shown.output)["disabled"] is True
    assert runner.invoke(app, ["users", "enable", "mary@example.com", "--database-url", url]).exit_code == 0
    assert verify(url, tmp_path, "mary@example.com", "mary passphrase")
    missing = runner.invoke(app, ["users", "disable", "nobody@example.com", "--database-url", url])
    assert missing.exit_code == 1 and "no user" in missing.output


def test_sessions_list_and_end(tmp_path: Path) -> None:
    url = db_url(tmp_path)
    runner = CliRunner()
    runner.invoke(app, ["users", "create", "nora@example.com", "--database-url", url])

    async def start_sessions() -> None:
        services = Services(Settings(database_url=url, data_dir=tmp_path))
        try:
            user = await services.users.find_by_email("nora@example.com")
            assert user is not None
            for ip in ("203.0.113.1", "203.0.113.2"):
                await services.sessions.create(user.id, ["pwd"], ip, "test agent")
        finally:
            await services.aclose()

    asyncio.run(start_sessions())
    listed = runner.invoke(app, ["users", "sessions", "nora@example.com", "--json", "--database-url", url])
    assert listed.exit_code == 0
    assert sorted(s["ip"] for s in json.loads(listed.output)) == ["203.0.113.1", "203.0.113.2"]
    ended = runner.invoke(app, ["users", "sessions", "nora@example.com", "--end", "--database-url", url])
    assert ended.exit_code == 0 and "2 session(s) ended" in ended.output
    again = runner.invoke(app, ["users", "sessions", "nora@example.com", "--json", "--database-url", url])
    assert json.loads(again.output) == []

    async def audited() -> list[dict[str, object]]:
        services = Services(Settings(database_url=url, data_dir=tmp_path))
        try:
            user = await services.users.find_by_email("nora@example.com")
            assert user is not None
            return [e.details for e in await services.audit.query(user_id=user.id, type="session.ended")]
        finally:
            await services.aclose()

    # The audit log (what threat detection reads) says who ended how many sessions, and why.
    assert asyncio.run(audited()) == [{"reason": "ended_by_admin", "sessions": 2, "source": "cli"}]
