"""The app factory: health, readiness, metrics, body limits and the error shapes, over a real socket."""

from __future__ import annotations

from pathlib import Path

import httpx

from tessera.settings import Settings
from tessera.web.app import create_app
from tests.support.live import serve


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 't.db'}",
        "data_dir": tmp_path,
        "issuer": "http://127.0.0.1:8000",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_health_ready_metrics_and_body_limit(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, max_body_bytes=1024))
    with serve(app) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json() == {"status": "ok"}
        metrics = http.get("/metrics")
        assert metrics.status_code == 200 and "tessera_tokens_issued" in metrics.text
        too_big = http.post("/healthz", content=b"x" * 2048, headers={"content-type": "text/plain"})
        assert too_big.status_code == 413
        assert too_big.json()["error"] == "invalid_request"
        assert http.get("/static/tessera.css").status_code == 200
        assert http.get("/no-such-page").status_code == 404


def test_readyz_fails_when_database_is_unreachable(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        auto_migrate=False,
        master_key="A" * 43,
    )
    app = create_app(settings)
    with serve(app) as server, httpx.Client(base_url=server.url) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"


def test_the_token_endpoints_direct_lane_keeps_limits_and_error_shapes(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, max_body_bytes=1024, master_key="t" * 43))
    with serve(app) as server, httpx.Client(base_url=server.url) as http:
        too_big = http.post(
            "/oauth/token",
            content=b"a=" + b"x" * 4096,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert too_big.status_code == 413
        unknown_client = http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=("nobody", "x")
        )
        assert unknown_client.status_code == 401
        assert unknown_client.json()["error"] == "invalid_client"
        assert unknown_client.headers["cache-control"] == "no-store"
        unsupported = http.post("/oauth/token", data={"grant_type": "magic"})
        assert unsupported.status_code in (400, 401) and "error" in unsupported.json()
        assert http.get("/oauth/token").status_code == 405  # other methods take the ordinary route


def test_server_processes_freeze_the_start_up_heap(tmp_path: Path) -> None:
    import gc

    from tessera.cli.serve import export_settings

    # `tessera serve` and `tessera dev` hand freeze_heap=true to their workers with the other settings.
    settings = make_settings(tmp_path, freeze_heap=True)
    assert export_settings(settings, environ={})["TESSERA_FREEZE_HEAP"] == "true"
    gc.unfreeze()
    try:
        with serve(create_app(make_settings(tmp_path))):
            assert gc.get_freeze_count() == 0  # off by default (tests, embedding)
        with serve(create_app(settings)) as server, httpx.Client(base_url=server.url) as http:
            assert gc.get_freeze_count() > 10_000  # the loaded code, out of every later collection
            assert http.get("/healthz").json() == {"status": "ok"}
    finally:
        gc.unfreeze()
