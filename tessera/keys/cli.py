"""``tessera keys``: rotate and list signing keys."""

from __future__ import annotations

import typer

from tessera.cli.common import DatabaseUrlOption, JsonOption, load_settings, print_record, run_with_services
from tessera.services import Services

app = typer.Typer(help="Signing keys (the JWKS).", no_args_is_help=True)


@app.command("rotate")
def rotate(
    alg: str = typer.Option(None, "--alg", help="ES256 (default from TESSERA_SIGNING_ALG) or EdDSA."),
    database_url: str = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Make a new signing key active. Old keys stay in the JWKS until the tokens they signed expire."""

    async def work(services: Services) -> dict[str, object]:
        from tessera.admin import operations

        key = await operations.rotate_key(services, alg=alg, source="cli")
        return {"kid": key.kid, "alg": key.alg, "created_at": key.created_at.isoformat()}

    print_record(run_with_services(load_settings(database_url=database_url), work), as_json=as_json)


@app.command("list")
def list_keys(database_url: str = DatabaseUrlOption, as_json: bool = JsonOption) -> None:
    """The published keys, newest first."""
    import json

    async def work(services: Services) -> list[dict[str, object]]:
        return [
            {
                "kid": k.kid,
                "alg": k.alg,
                "created_at": k.created_at.isoformat(),
                "retired_at": k.retired_at.isoformat() if k.retired_at else None,
                "status": "active" if k.retired_at is None else "retired",
            }
            for k in await services.keys.published()
        ]

    keys = run_with_services(load_settings(database_url=database_url), work)
    if as_json:
        typer.echo(json.dumps(keys, indent=2))
        return
    for key in keys:
        typer.echo(f"{key['kid']}  {key['alg']}  {key['status']}  {key['created_at']}")
