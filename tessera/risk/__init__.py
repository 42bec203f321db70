"""Threat detection: every login scored against the user's history and global patterns.

Use::

    assessment = await services.risk.assess(LoginEvent(timestamp=..., user_id=..., ip=..., user_agent=...))
    if assessment.decision is Decision.STEP_UP: ...      # assessment.explain() says why
    await services.risk.record_outcome(event, assessment, Outcome.STEP_UP_PASSED)

See README.md in this folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tessera.risk.events import Assessment, Decision, LoginEvent, NetworkType, Reason, SessionEvent

if TYPE_CHECKING:
    from tessera.risk.engine import RiskEngine
    from tessera.services import Services

__all__ = ["Assessment", "Decision", "LoginEvent", "NetworkType", "Reason", "SessionEvent", "engine_for"]


def engine_for(services: Services) -> RiskEngine:
    """The engine a deployment uses: profiles and global counts in the database, sliding windows in Redis when
    ``TESSERA_REDIS_URL`` is set (shared by all workers) and in-process otherwise, MaxMind files when
    given."""
    from tessera.risk.config import Policy, RiskConfig
    from tessera.risk.engine import RiskEngine
    from tessera.risk.signals.geo import GeoResolver
    from tessera.risk.signals.windows import MemoryWindows, WindowStore
    from tessera.risk.sql import SqlRiskStore

    settings = services.settings
    config = RiskConfig(
        policy=Policy(
            step_up=settings.risk_step_up_threshold,
            deny=settings.risk_deny_threshold,
            end_session=settings.risk_end_session_threshold,
        ),
        # The global counts reach the database every risk_flush_interval seconds, from the first login on.
        flush_every=settings.risk_flush_interval,
    )
    windows: WindowStore
    if settings.redis_url:
        from tessera.risk.redis_windows import RedisWindows

        windows = RedisWindows.from_url(settings.redis_url)
    else:
        windows = MemoryWindows()
    return RiskEngine(
        config,
        secret=services.sealer.derive_key("tessera-risk-password-fingerprint"),
        store=SqlRiskStore(services.db),
        windows=windows,
        geo=GeoResolver(mmdb_paths=tuple(settings.risk_mmdb)),
        clock=services.clock,
    )
