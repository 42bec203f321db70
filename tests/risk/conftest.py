"""One simulated 2,000-user log per test session, replayed once through the engine (the expensive part)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from tessera.risk.dataset import Row
from tessera.risk.engine import RiskEngine
from tessera.risk.evaluate import LabelledLogin
from tessera.risk.replay import Scored, replay
from tessera.risk.simulate import simulate

SECRET = b"tests-risk-secret-0123456789abcdef"


@dataclass
class Replayed:
    rows: list[Row]
    logins: list[LabelledLogin]
    scored: list[Scored]
    engine: RiskEngine


@pytest.fixture(scope="session")
def replayed_2000() -> Replayed:
    rows = [
        Row(str(i), i + 2, event, {"Attack Type": kind or "legitimate"})
        for i, (event, kind) in enumerate(simulate(2000, seed=7))
    ]
    engine = RiskEngine(secret=SECRET)
    # The default replay: no labels are read while scoring or learning.
    scored = asyncio.run(replay(rows, engine))
    logins = [
        LabelledLogin(r.event.user_id, r.event.timestamp, r.event.success, r.labels["Attack Type"])
        for r in rows
    ]
    return Replayed(rows, logins, scored, engine)
