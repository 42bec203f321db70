"""``tessera clients`` and ``tessera apis``."""

from __future__ import annotations

import json

import typer

from tessera.cli.common import DatabaseUrlOption, JsonOption, load_settings, print_record, run_with_services
from tessera.services import Services

clients_app = typer.Typer(help="OAuth clients (applications and agents).", no_args_is_help=True)
apis_app = typer.Typer(
    help="APIs (resource servers) that access tokens are issued for.", no_args_is_help=True
)


@clients_app.command("create")
def create_client(
    name: str = typer.Argument(..., help="The name users see on the consent page."),
    redirect_uri: list[str] = typer.Option([], "--redirect-uri", help="Repeat for several."),
    grant_type: list[str] = typer.Option(
        [], "--grant-type", help="authorization_code, refresh_token, client_credentials (repeatable)."
    ),
    public: bool = typer.Option(
        False, "--public", help="A public client (native or browser app, no secret)."
    ),
    scope: str = typer.Option(None, "--scope", help="Space-separated scopes the client may ask for."),
    auth_method: str = typer.Option(
        None, "--auth-method", help="client_secret_basic (default), client_secret_post, private_key_jwt."
    ),
    jwks_file: typer.FileText = typer.Option(None, "--jwks-file", help="A JWK Set file for private_key_jwt."),
    jwks_uri: str = typer.Option(None, "--jwks-uri", help="Where the client publishes its JWK Set."),
    first_party: bool = typer.Option(False, "--first-party", help="Trusted: users are not asked to consent."),
    database_url: str = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Register a client; prints client_id and, for confidential clients, the client_secret (shown once)."""
    jwks = json.load(jwks_file) if jwks_file is not None else None

    async def work(services: Services) -> dict[str, object]:
        from tessera.admin import operations

        made = await operations.create_client(
            services,
            source="cli",
            client_name=name,
            redirect_uris=redirect_uri,
            grant_types=grant_type or None,
            is_public=public,
            scope=scope,
            token_endpoint_auth_method=auth_method,
            jwks=jwks,
            jwks_uri=jwks_uri,
            first_party=first_party,
        )
        record: dict[str, object] = {"client_id": made.client.client_id}
        if made.client_secret:
            record["client_secret"] = made.client_secret
        record.update(
            client_name=made.client.client_name,
            token_endpoint_auth_method=made.client.token_endpoint_auth_method,
            grant_types=list(made.client.grant_types),
            redirect_uris=list(made.client.redirect_uris),
        )
        if made.client.scope:
            record["scope"] = made.client.scope
        return record

    print_record(run_with_services(load_settings(database_url=database_url), work), as_json=as_json)


@clients_app.command("list")
def list_clients(database_url: str = DatabaseUrlOption, as_json: bool = JsonOption) -> None:
    """Registered clients."""

    async def work(services: Services) -> list[dict[str, object]]:
        return [
            {
                "client_id": c.client_id,
                "client_name": c.client_name,
                "token_endpoint_auth_method": c.token_endpoint_auth_method,
                "grant_types": list(c.grant_types),
            }
            for c in await services.oauth.client_store.list(limit=1000)
        ]

    rows = run_with_services(load_settings(database_url=database_url), work)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['client_id']}  {row['client_name']}  {row['token_endpoint_auth_method']}")


@apis_app.command("create")
def create_api(
    identifier: str = typer.Argument(..., help="The API's identifier: the aud of its tokens (a URI)."),
    scope: list[str] = typer.Option(
        [], "--scope", help="A scope the API defines (repeatable); 'name=description' adds consent text."
    ),
    name: str = typer.Option(None, "--name", help="Shown on consent pages (default: the identifier)."),
    database_url: str = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Register an API. Tokens for it are asked for with resource=IDENTIFIER (or audience=IDENTIFIER)."""
    scopes: dict[str, str] = {}
    for item in scope:
        if "=" in item:  # --scope "orders:write=Change your orders"
            scope_name, _, description = item.partition("=")
            scopes[scope_name.strip()] = description.strip()
        else:  # --scope orders:read, or several at once: --scope "orders:read orders:write"
            scopes.update(dict.fromkeys(item.split(), ""))

    async def work(services: Services) -> dict[str, object]:
        from tessera.admin import operations

        api = await operations.create_api(services, identifier, scopes=scopes, name=name)
        return api.as_record()

    print_record(run_with_services(load_settings(database_url=database_url), work), as_json=as_json)


@apis_app.command("list")
def list_apis(database_url: str = DatabaseUrlOption, as_json: bool = JsonOption) -> None:
    """Registered APIs."""

    async def work(services: Services) -> list[dict[str, object]]:
        return [api.as_record() for api in await services.oauth.api_store.all()]

    rows = run_with_services(load_settings(database_url=database_url), work)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['identifier']}  {' '.join(row['scopes'])}")  # type: ignore[arg-type]


# Dynamic registration's initial access tokens (tessera/oauth/registration_cli.py).
from tessera.oauth.registration_cli import initial_token  # noqa: E402

clients_app.command("initial-token")(initial_token)
