"""Helpers every command shares: settings from flags and environment, async running, output."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from tessera.core.errors import TesseraError
from tessera.services import Services
from tessera.settings import Settings

T = TypeVar("T")

DatabaseUrlOption = typer.Option(
    None,
    "--database-url",
    envvar="TESSERA_DATABASE_URL",
    help="sqlite+aiosqlite:///path.db or postgresql+asyncpg://...",
)
JsonOption = typer.Option(False, "--json", help="Print the record as JSON.")


def load_settings(**overrides: Any) -> Settings:
    """Settings from TESSERA_* variables, with the flags that were given on top."""
    given = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**given)


def run_with_services(
    settings: Settings, work: Callable[[Services], Awaitable[T]], *, migrate: bool = True
) -> T:
    """Build Services, apply migrations, run ``work``, close everything; errors become a clean exit 1."""

    async def runner() -> T:
        from tessera.storage.migrate import upgrade

        services = Services(settings)
        try:
            await services.db.probe()  # an unreachable database: one line, not a traceback
            if migrate:
                await upgrade(services.db)
            return await work(services)
        finally:
            await services.aclose()

    try:
        return asyncio.run(runner())
    except TesseraError as exc:
        typer.secho(f"error: {exc.description or exc.code}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


def settings_error_lines(exc: ValidationError) -> list[str]:
    """One line per invalid setting, naming its variable (flags carry the same names)."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"error: invalid setting {field} (TESSERA_{field.upper()}): {message}")
    return lines


def print_record(record: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(record, indent=2, default=str))
        return
    width = max((len(key) for key in record), default=0)
    for key, value in record.items():
        if isinstance(value, list):
            value = " ".join(str(item) for item in value)
        typer.echo(f"{key.ljust(width)}  {value}")


def read_stdin_line() -> str:
    return sys.stdin.readline().rstrip("\r\n")
