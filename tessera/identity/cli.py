"""``tessera users``: create and inspect user accounts."""

from __future__ import annotations

import json
from typing import Any

import typer

from tessera.admin.operations import end_user_sessions
from tessera.cli.common import (
    DatabaseUrlOption,
    JsonOption,
    load_settings,
    print_record,
    read_stdin_line,
    run_with_services,
)
from tessera.core.errors import NotFound
from tessera.identity.sessions import LoginSession
from tessera.identity.users import User
from tessera.services import Services

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)


def user_record(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "email_verified": user.email_verified,
        "name": user.name,
        "created_at": user.created_at.isoformat(),
        "disabled": user.disabled,
    }


@app.command("create")
def create_command(
    email: str = typer.Argument(..., help="The user's email address (it is their sign-in name)."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of standard input."
    ),
    name: str | None = typer.Option(None, "--name", help="Display name."),
    email_verified: bool = typer.Option(False, "--email-verified", help="Mark the email as verified."),
    database_url: str | None = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a user. Without --password-stdin the user has no password (and cannot sign in with one)."""
    # Passwords never come from argv: other users of the machine can read a process's arguments.
    password = read_stdin_line() if password_stdin else None
    settings = load_settings(database_url=database_url)

    async def work(services: Services) -> User:
        return await services.users.create(email, password, name=name, email_verified=email_verified)

    user = run_with_services(settings, work)
    print_record(user_record(user), as_json=as_json)


@app.command("show")
def show_command(
    email_or_id: str = typer.Argument(..., help="An email address or a user id."),
    database_url: str | None = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one user."""
    settings = load_settings(database_url=database_url)

    async def work(services: Services) -> User:
        user = await services.users.get(email_or_id)
        if user is None:
            user = await services.users.find_by_email(email_or_id)
        if user is None:
            raise NotFound(f"no user {email_or_id}")
        return user

    print_record(user_record(run_with_services(settings, work)), as_json=as_json)


@app.command("list")
def list_command(
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="At most this many users."),
    database_url: str | None = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """List users in creation order."""
    settings = load_settings(database_url=database_url)

    async def work(services: Services) -> list[User]:
        return await services.users.page(limit=limit)

    found = run_with_services(settings, work)
    if as_json:
        typer.echo(json.dumps([user_record(user) for user in found], indent=2))
        return
    for user in found:
        typer.echo(f"{user.id}  {user.email}{'  (disabled)' if user.disabled else ''}")


@app.command("set-password")
def set_password_command(
    email: str = typer.Argument(..., help="The user's email address."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Set a user's password from the first line of standard input, and end their sessions."""
    password = read_stdin_line()
    settings = load_settings(database_url=database_url)

    async def work(services: Services) -> int:
        user = await services.users.find_by_email(email)
        if user is None:
            raise NotFound(f"no user {email}")
        await services.users.set_password(user.id, password)
        # A password change must lock out whoever might hold the old one (OWASP: re-authenticate sessions).
        return await end_user_sessions(services, user.id, "password_changed", source="cli")

    ended = run_with_services(settings, work)
    typer.echo(f"password set; {ended} session(s) ended")


def _set_disabled(email: str, database_url: str | None, *, disabled: bool) -> int:
    settings = load_settings(database_url=database_url)

    async def work(services: Services) -> int:
        user = await services.users.find_by_email(email)
        if user is None:
            raise NotFound(f"no user {email}")
        await services.users.set_disabled(user.id, disabled)
        if not disabled:
            return 0
        return await end_user_sessions(services, user.id, "user_disabled", source="cli")

    return run_with_services(settings, work)


@app.command("disable")
def disable_command(
    email: str = typer.Argument(..., help="The user's email address."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Disable a user: they cannot sign in, and their sessions end."""
    ended = _set_disabled(email, database_url, disabled=True)
    typer.echo(f"user disabled; {ended} session(s) ended")


@app.command("enable")
def enable_command(
    email: str = typer.Argument(..., help="The user's email address."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Enable a disabled user again."""
    _set_disabled(email, database_url, disabled=False)
    typer.echo("user enabled")


@app.command("sessions")
def sessions_command(
    email: str = typer.Argument(..., help="The user's email address."),
    end: bool = typer.Option(False, "--end", help="End every one of them (sign the user out everywhere)."),
    database_url: str | None = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """List a user's live login sessions, or end them all with --end."""
    settings = load_settings(database_url=database_url)

    async def work(services: Services) -> tuple[list[LoginSession], int]:
        user = await services.users.find_by_email(email)
        if user is None:
            raise NotFound(f"no user {email}")
        live = await services.sessions.list_for_user(user.id)
        ended = await end_user_sessions(services, user.id, "ended_by_admin", source="cli") if end else 0
        return live, ended

    live, ended = run_with_services(settings, work)
    if end:
        typer.echo(f"{ended} session(s) ended")
        return
    records = [
        {
            "id": s.id,
            "auth_time": s.auth_time.isoformat(),
            "expires_at": s.expires_at.isoformat(),
            "amr": s.amr,
            "ip": s.ip,
            "user_agent": s.user_agent,
        }
        for s in live
    ]
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    for record in records:
        typer.echo(f"{record['id']}  since {record['auth_time']}  from {record['ip'] or '-'}")
