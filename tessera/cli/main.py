"""``tessera``: the root command. Sub-command groups live beside the capability they drive."""

from __future__ import annotations

import typer

from tessera import __version__
from tessera.cli import db, serve
from tessera.fga.cli import app as fga_app
from tessera.identity import cli as identity_cli
from tessera.keys import cli as keys_cli
from tessera.oauth import cli as oauth_cli
from tessera.risk.cli import app as risk_app

app = typer.Typer(
    name="tessera",
    help="Tessera: identity and authorization for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(oauth_cli.clients_app, name="clients")
app.add_typer(oauth_cli.apis_app, name="apis")
app.add_typer(keys_cli.app, name="keys")
app.add_typer(risk_app, name="risk")
app.add_typer(fga_app, name="fga")
app.add_typer(identity_cli.app, name="users")
serve.register(app)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
