"""OpenFGA's HTTP API under ``/fga``: ``router(services)`` for the app factory, and the API's registration.

Layout: ``auth.py`` (bearer tokens for the ``<issuer>/fga`` API, the loopback-only opt-out), ``parse.py``
(request validation as OpenFGA's gateway does it), ``routes.py`` (one route per API call, errors in OpenFGA's
shape). User documentation: ``README.md`` next to this file.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter

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
        verifier=lambda: services.oauth,
        now=services.clock.now,
    )
    return _routes(services.fga, auth, base_url=api_identifier(settings.issuer))


async def register_api(services: Services) -> bool:
    """Register ``<issuer>/fga`` with its three scopes unless it exists; True when it was created.

    Called when the server starts, so clients can ask ``/oauth/token`` for ``audience=<issuer>/fga`` at once.
    """
    from tessera.admin.operations import ensure_api

    return await ensure_api(
        services,
        api_identifier(services.settings.issuer),
        scopes=dict(SCOPES),
        name="Tessera FGA (OpenFGA API)",
    )


DEMO_MODEL = """\
model
  schema 1.1

type user

type group
  relations
    define member: [user, group#member]

type folder
  relations
    define owner: [user]
    define parent: [folder]
    define viewer: [user, user:*, group#member] or owner or viewer from parent

type document
  relations
    define parent: [folder]
    define owner: [user]
    define editor: [user, group#member] or owner
    define viewer: [user, group#member] or editor or viewer from parent
"""

DEMO_TUPLES = (
    ("group:engineering", "member", "user:demo"),
    ("folder:handbook", "viewer", "group:engineering#member"),
    ("document:onboarding", "parent", "folder:handbook"),
    ("document:roadmap", "owner", "user:demo"),
)


async def seed_demo_store(services: Services) -> dict[str, str]:
    """An FGA store named ``demo`` with a sample model and tuples (for ``tessera dev``); idempotent.

    Returns what a newcomer needs: the store and model ids and a command to try.
    """
    from tessera.fga.engine.tuples import TupleKey
    from tessera.fga.language import transform_dsl_to_json

    fga = services.fga
    stores, _ = await fga.list_stores(1, "", "demo")
    if stores:
        store_id = stores[0].id
        models, _ = await fga.read_authorization_models(store_id, 1)
        model_id = (
            models[0].id
            if models
            else await fga.write_authorization_model(store_id, transform_dsl_to_json(DEMO_MODEL))
        )
    else:
        store_id = (await fga.create_store("demo")).id
        model_id = await fga.write_authorization_model(store_id, transform_dsl_to_json(DEMO_MODEL))
        await fga.write(
            store_id, [TupleKey(o, r, u) for o, r, u in DEMO_TUPLES], authorization_model_id=model_id
        )
    issuer = services.settings.issuer
    return {
        "api": f"{issuer}/fga",
        "store_id": store_id,
        "model_id": model_id,
        "try": f"tessera fga check user:demo viewer document:onboarding --store-id {store_id}",
    }
