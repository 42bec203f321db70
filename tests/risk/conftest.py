"""One simulated 2,000-user log per test session, replayed once through the engine (the expensive part).

Every victim is attacked by each attacker type once in each stage of its history (``attacks_per_stage=1``),
so each history bucket of the evaluation rests on 1,000 to 2,000 attacks of each type. The replay learns as
production does with a second factor (``learn="labels"``): the user passes it, the attacker does not, and no
attack teaches its victim's profile (each is judged against the victim's own history)."""

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
        for i, (event, kind) in enumerate(simulate(2000, seed=7, attacks_per_stage=1))
    ]
    engine = RiskEngine(secret=SECRET)
    # Labels are read only after a row is scored, to emulate its second factor; never for its score.
    scored = asyncio.run(replay(rows, engine, learn="labels"))
    logins = [
        LabelledLogin(r.event.user_id, r.event.timestamp, r.event.success, r.labels["Attack Type"])
        for r in rows
    ]
    return Replayed(rows, logins, scored, engine)
