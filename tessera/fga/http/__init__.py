"""OpenFGA's HTTP API under ``/fga``: ``router(services)`` for the app factory, and the API's registration.

Layout: ``auth.py`` (bearer tokens for the ``<issuer>/fga`` API, the loopback-only opt-out), ``parse.py``
(request validation as OpenFGA's gateway does it), ``routes.py`` (one route per API call, errors in OpenFGA's
shape). User documentation: ``README.md`` next to this file.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter
from sqlalchemy.exc import OperationalError, ProgrammingError

from tessera.core.errors import Conflict
from tessera.fga.http.auth import SCOPES, FGAAuthenticator, check_opt_out
from tessera.fga.http.routes import router as _routes

if TYPE_CHECKING:
    from tessera.services import Services

log = logging.getLogger("tessera.fga")


def api_identifier(issuer: str) -> str:
    """The ``/fga`` API's identifier: the audience of the access tokens it accepts."""
    return f"{issuer.rstrip('/')}/fga"


def router(services: Services) -> APIRouter:
    """The ``/fga`` routes. Refuses to build when ``TESSERA_FGA_AUTH=off`` on a non-loopback host."""
    settings = services.settings
    check_opt_out(auth_enabled=settings.fga_auth, host=settings.host)
    if not settings.fga_auth:
        log.warning(
            "TESSERA_FGA_AUTH=off: /fga answers anyone who can reach %s (loopback only)", settings.host
        )
    auth = FGAAuthenticator(
        enabled=settings.fga_auth,
        issuer=settings.issuer,
        # Resolved on first use, so building the router does not build the key ring.
        verifier=lambda: services.oauth.tokens,
        now=services.clock.now,
    )
    return _routes(services.fga, auth)


async def register_api(services: Services) -> bool:
    """Register ``<issuer>/fga`` with its three scopes unless it exists; True when it was created.

    Called when the server starts, so clients can ask ``/oauth/token`` for ``audience=<issuer>/fga`` at once.
    Several workers may race here: the loser's insert is a Conflict, which is fine.
    """
    from tessera.oauth.resources import ApiStore

    store = ApiStore(services.db, services.clock)
    identifier = api_identifier(services.settings.issuer)
    try:
        if await store.get(identifier) is not None:
            return False
        api = store.build(identifier, scopes=dict(SCOPES), name="Tessera FGA (OpenFGA API)")
        async with services.db.transaction() as conn:
            await store.insert(api, conn=conn)
    except Conflict:
        return False
    except (OperationalError, ProgrammingError) as exc:
        # The database is not migrated yet (auto_migrate off): /readyz says so; the next start registers it.
        log.warning("could not register the %s API yet: %s", identifier, exc.__class__.__name__)
        return False
    return True
