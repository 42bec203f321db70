"""``tessera clients initial-token``: an initial access token for dynamic registration (RFC 7591 3)."""

from __future__ import annotations

import typer

from tessera.cli.common import DatabaseUrlOption, JsonOption, load_settings, print_record, run_with_services
from tessera.services import Services


def initial_token(
    uses: int = typer.Option(1, "--uses", min=1, help="How many registrations the token allows."),
    ttl: int = typer.Option(86400, "--ttl", min=60, help="Seconds until the token expires."),
    note: str = typer.Option(None, "--note", help="What the token is for (kept with it)."),
    database_url: str = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Make an initial access token for TESSERA_REGISTRATION=token (printed once; stored only as a hash).

    The registering client sends it as ``Authorization: Bearer <token>`` to ``POST /oidc/register``.
    """

    async def work(services: Services) -> dict[str, object]:
        made = await services.oauth.registrar.create_initial_token(uses=uses, ttl_seconds=ttl, note=note)
        return {
            "id": made.id,
            "initial_access_token": made.token,
            "uses": made.uses,
            "expires_at": made.expires_at.isoformat(),
            "registration_endpoint": f"{services.settings.issuer}/oidc/register",
        }

    print_record(run_with_services(load_settings(database_url=database_url), work), as_json=as_json)
