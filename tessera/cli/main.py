"""``tessera``: the root command. Sub-command groups live beside the capability they drive.

The groups are imported when they are used, not when ``tessera`` starts: the server's groups pull in the web
app, every capability's services and Alembic (about a second of start-up), which ``tessera fga test`` or
``tessera risk ...`` never need. ``tessera --help`` still lists every group (that imports them all).
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from tessera import __version__

# name -> (module, attribute): a typer.Typer (a group) or a function (a command), in --help order.
_LAZY: dict[str, tuple[str, str]] = {
    "serve": ("tessera.cli.serve", "serve_command"),
    "dev": ("tessera.cli.serve", "dev_command"),
    "db": ("tessera.cli.db", "app"),
    "clients": ("tessera.oauth.cli", "clients_app"),
    "apis": ("tessera.oauth.cli", "apis_app"),
    "keys": ("tessera.keys.cli", "app"),
    "risk": ("tessera.risk.cli", "app"),
    "fga": ("tessera.fga.cli", "app"),
    "users": ("tessera.identity.cli", "app"),
}


class _LazyGroup(TyperGroup):
    """Loads a sub-command's module the first time the command is looked up."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*_LAZY, *(n for n in super().list_commands(ctx) if n not in _LAZY)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in _LAZY and cmd_name not in self.commands:
            module, attr = _LAZY[cmd_name]
            target: Any = getattr(importlib.import_module(module), attr)
            # Built as the eager ``app.add_typer(...)`` / ``app.command(...)`` registration would build it.
            holder = typer.Typer()
            if isinstance(target, typer.Typer):
                holder.add_typer(target, name=cmd_name)
            else:
                holder.command(cmd_name)(target)
                holder.callback()(lambda: None)  # a group, so the command keeps its name
            built = typer.main.get_command(holder)
            assert isinstance(built, TyperGroup)
            self.add_command(built.commands[cmd_name], cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    name="tessera",
    help="Tessera: identity and authorization for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_LazyGroup,
)


def _print_version(value: bool) -> None:
    # A parse-time callback: the group's own callback only runs once a sub-command is given.
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    pass


def main() -> None:
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as exc:
        # Settings are read when a command starts (flags over TESSERA_* variables): a bad value is the
        # user's input, so it is said in words, not as pydantic's traceback. Other models' errors are bugs.
        if exc.title != "Settings":
            raise
        from tessera.cli.common import settings_error_lines

        for line in settings_error_lines(exc):
            typer.secho(line, fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
