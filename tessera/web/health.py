"""/healthz (process alive), /readyz (database reachable, migrations applied), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text

from tessera.services import Services
from tessera.storage.migrate import is_up_to_date


def router(services: Services) -> APIRouter:
    routes = APIRouter(tags=["health"])

    @routes.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @routes.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        try:
            async with services.db.read() as conn:
                await conn.execute(text("SELECT 1"))
            migrated = await is_up_to_date(services.db)
        except Exception as exc:  # any failure to reach the database means "not ready"
            return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
        if not migrated:
            return JSONResponse({"status": "unavailable", "reason": "migrations pending"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @routes.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        registry: CollectorRegistry = services.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return routes
