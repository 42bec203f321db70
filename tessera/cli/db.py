"""``tessera db``: database migrations."""

from __future__ import annotations

import asyncio

import typer

from tessera.cli.common import DatabaseUrlOption, load_settings
from tessera.core.errors import TesseraError
from tessera.storage.database import Database
from tessera.storage.migrate import is_up_to_date, upgrade

app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command(database_url: str | None = DatabaseUrlOption) -> None:
    """Apply every pending migration (``tessera serve`` does this too, unless --no-migrate)."""
    settings = load_settings(database_url=database_url)

    async def run() -> bool:
        db = Database(settings.database_url)
        try:
            await db.probe()
            await upgrade(db)
            return await is_up_to_date(db)
        finally:
            await db.dispose()

    # Checked explicitly rather than asserted: `python -O` drops asserts, and a half-migrated database
    # must not be reported as up to date.
    try:
        up_to_date = asyncio.run(run())
    except TesseraError as exc:
        typer.secho(f"error: {exc.description or exc.code}", fg="red", err=True)
        raise typer.Exit(1) from exc
    if not up_to_date:
        typer.secho(f"error: migrations are still pending on {settings.database_url}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"database is up to date: {settings.database_url}")
