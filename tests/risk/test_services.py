"""``services.risk``: the engine a deployment gets from settings (database store, optional Redis windows)."""

from __future__ import annotations

from pathlib import Path

from tessera.risk.engine import Outcome
from tessera.risk.events import Decision, LoginEvent
from tessera.risk.redis_windows import RedisWindows
from tessera.risk.signals.windows import MemoryWindows
from tessera.risk.sql import SqlRiskStore
from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.migrate import upgrade


async def test_services_risk_uses_the_database(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 't.db'}",
        data_dir=tmp_path,
        redis_url=None,
        risk_step_up_threshold=1.0,
    )
    services = Services(settings)
    try:
        await upgrade(services.db)
        engine = services.risk
        assert isinstance(engine.store, SqlRiskStore) and isinstance(engine.windows, MemoryWindows)
        assert engine.config.policy.step_up == 1.0
        event = LoginEvent(timestamp=1.77e9, user_id="u1", ip="84.1.1.1", country="DE", asn=3320)
        assessment = await engine.assess(event)
        await engine.record_outcome(event, assessment, Outcome.ALLOWED)
        stored = await SqlRiskStore(services.db).load_profile("u1")
        assert stored is not None and stored.logins == 1
        assert assessment.decision in set(Decision)
    finally:
        await services.aclose()


async def test_services_risk_uses_redis_when_configured(tmp_path: Path, redis_url: str) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 't.db'}", data_dir=tmp_path, redis_url=redis_url
    )
    services = Services(settings)
    try:
        assert isinstance(services.risk.windows, RedisWindows)
    finally:
        await services.aclose()
