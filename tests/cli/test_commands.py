"""The command line as interfaces.md names it: every command answers --help, the named commands take the
named flags, and ``tessera db upgrade`` migrates an empty database on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import typer
from typer._click import Context
from typer.testing import CliRunner

from tessera.cli.main import app
from tessera.storage.database import Database
from tessera.storage.migrate import is_up_to_date

# interfaces.md "Command line": the commands and the flags users' scripts rely on.
NAMED = {
    ("dev",): {"--port", "--tls", "--tls-cert", "--tls-key"},
    ("serve",): {
        "--host",
        "--port",
        "--workers",
        "--database-url",
        "--issuer",
        "--tls-cert",
        "--tls-key",
    },
    ("db", "upgrade"): set(),
    ("users", "create"): {"--password-stdin", "--name", "--json"},
    ("clients", "create"): {"--redirect-uri", "--grant-type", "--public", "--scope", "--json"},
    ("apis", "create"): {"--scope", "--json"},
    ("keys", "rotate"): set(),
    ("fga", "test"): set(),
}


def commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group under ``tessera``, with its path."""

    def walk(
        command: Any, path: tuple[str, ...], parent: Context | None
    ) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield path, command
        if hasattr(command, "list_commands"):
            context = Context(command, info_name=path[-1] if path else "tessera", parent=parent)
            for name in command.list_commands(context):
                yield from walk(command.get_command(context, name), (*path, name), context)

    yield from walk(typer.main.get_command(app), (), None)


def test_every_command_answers_help() -> None:
    runner = CliRunner()
    found = dict(commands())
    assert len(found) > 30  # the walk reached the lazily loaded groups
    for path in found:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output, path


def test_the_named_commands_take_the_named_flags() -> None:
    found = dict(commands())
    for path, flags in NAMED.items():
        assert path in found, f"tessera {' '.join(path)} is missing"
        options = {opt for param in found[path].params for opt in param.opts}
        assert flags <= options, (path, flags - options)
    # Every serve flag also reads TESSERA_<NAME>, NAME being the flag's own name.
    for param in found[("serve",)].params:
        names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
        flag = next(opt for opt in param.opts if opt.startswith("--"))
        assert f"TESSERA_{flag[2:].replace('-', '_').upper()}" in names, (param.opts, names)


def test_db_upgrade_migrates_an_empty_database_and_again(database_url: str) -> None:
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(app, ["db", "upgrade", "--database-url", database_url])
        assert result.exit_code == 0, result.output
        assert "up to date" in result.output

    async def migrated() -> bool:
        db = Database(database_url)
        try:
            return await is_up_to_date(db)
        finally:
            await db.dispose()

    # A command runs its own event loop, so this test is synchronous and checks from a loop of its own.
    assert asyncio.run(migrated())
