"""The one app factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from tessera import __version__
from tessera.admin import operations as admin_operations
from tessera.admin import web as admin_web
from tessera.fga import http as fga_http
from tessera.identity import web as identity_web
from tessera.keys import web as keys_web
from tessera.oauth import web as oauth_web
from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.migrate import upgrade
from tessera.web import errors, health, hotpath, limits
from tessera.web.pages import mount_static

log = logging.getLogger("tessera")


SESSION_PRUNE_EVERY = 3600.0  # seconds between deletions of long-ended login sessions


async def _sweep_ended_sessions(services: Services) -> None:
    """Send back-channel logout tokens for sessions that ended outside /oidc/logout (the sign-out page, the
    management API, the CLI, another process). Every process sweeps; a session's participants are deleted
    once notified, so each client hears of a session's end once in the common case. Once an hour the loop
    also deletes sessions that ended or expired ``session_retention_days`` ago (their logout is long sent)."""
    interval = services.settings.backchannel_sweep_interval
    pruned_at = asyncio.get_running_loop().time()
    while True:
        await asyncio.sleep(interval)
        try:
            await services.oauth.logout.sweep()
        except Exception:  # a failed sweep must not end the loop; the next one retries
            log.exception("back-channel logout sweep failed")
        if asyncio.get_running_loop().time() - pruned_at >= SESSION_PRUNE_EVERY:
            pruned_at = asyncio.get_running_loop().time()
            try:
                removed = await services.sessions.prune(
                    older_than_days=services.settings.session_retention_days
                )
                if removed:
                    log.info("deleted %d login sessions that ended long ago", removed)
            except Exception:  # housekeeping; the next hour tries again
                log.exception("pruning login sessions failed")


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build the ASGI app. Pass ``services`` to share them with a test or a command."""
    if services is None:
        services = Services(settings or Settings())
    settings = services.settings

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await upgrade(services.db)
        try:
            await admin_operations.ensure_api(
                services,
                admin_operations.management_api_identifier(settings.issuer),
                scopes=admin_operations.MANAGEMENT_SCOPES,
                name="Tessera Management API",
            )
            await fga_http.register_api(services)  # the <issuer>/fga API and its scopes, for /oauth/token
        except (OSError, SQLAlchemyError) as exc:
            # Start anyway: /readyz answers 503 until the database is reachable, and the next start
            # registers the built-in APIs.
            log.warning("database not reachable at start-up: %s", exc.__class__.__name__)
        if settings.freeze_heap:
            # What start-up loaded (modules, the app, caches) lives as long as the process: collect once,
            # then keep it out of every later collection (Settings.freeze_heap says why).
            gc.collect()
            gc.freeze()
        log.info("tessera %s serving %s", __version__, settings.issuer)
        sweeper = (
            asyncio.create_task(_sweep_ended_sessions(services), name="backchannel-logout-sweep")
            if settings.backchannel_sweep_interval > 0
            else None
        )
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await services.aclose()

    app = hotpath.TesseraApp(
        title="Tessera",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        # Off unless asked for: FastAPI otherwise looks up the global OpenTelemetry providers on every request
        # (measured by bench/token_inprocess.py); Prometheus metrics are served at /metrics either way.
        telemetry=None
        if settings.http_telemetry
        else {"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.services = services
    errors.install(app)
    admin_web.install_error_handler(app)
    mount_static(app)
    app.include_router(health.router(services))
    # Capability routers are included here, each from its own package.
    app.include_router(identity_web.router(services))
    app.include_router(keys_web.router(services))
    oauth_router = oauth_web.router(services)
    app.include_router(oauth_router)
    app.include_router(admin_web.router(services))
    app.include_router(fga_http.router(services), prefix="/fga")
    # The token endpoint is answered ahead of FastAPI's stack (it keeps its own body limit); every other
    # request meets the body limit first.
    hotpath.install(app, [oauth_router], enabled=not settings.http_telemetry)
    limits.install(app, settings)
    return app
