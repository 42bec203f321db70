"""The model's population priors, the simulator's staged attacks, and what the labelled replay learns."""

from __future__ import annotations

import asyncio
from collections import Counter

from tessera.risk.dataset import Row
from tessera.risk.engine import Outcome, RiskEngine
from tessera.risk.evaluate import LabelledLogin, history_lengths
from tessera.risk.events import LoginEvent
from tessera.risk.replay import replay
from tessera.risk.simulate import STAGES, simulate

from .conftest import SECRET

T0 = 1_767_225_600.0
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"  # noqa: E501


def _login(user: str, at: float, ip: str) -> LoginEvent:
    return LoginEvent(
        timestamp=at,
        user_id=user,
        ip=ip,
        user_agent=CHROME,
        country="DE",
        asn=3320,
        city="Berlin",
        rtt_ms=30.0,
    )


async def _accept(engine: RiskEngine, event: LoginEvent) -> None:
    await engine.record_outcome(event, await engine.assess(event), Outcome.ALLOWED)


async def test_a_new_address_weighs_by_how_often_users_of_that_block_change_address() -> None:
    """Users of one /16 (a carrier-grade NAT) get a new address at every login, users of another (home lines)
    never. A user with one login in each kind of block then shows a new address there: only the population's
    habit in that block differs, and the stable block's new address must weigh more."""
    engine = RiskEngine(secret=SECRET)
    at = T0
    for u in range(40):
        for k in range(6):
            at += 60
            await _accept(engine, _login(f"nat{u}", at, f"80.1.{u}.{k + 1}"))
            await _accept(engine, _login(f"home{u}", at, f"84.1.{u}.1"))
    assert engine.world.novelty("ip", "DE\x1f3320\x1f80.1.0.0/16") > 0.7
    assert engine.world.novelty("ip", "DE\x1f3320\x1f84.1.0.0/16") < 0.1
    await _accept(engine, _login("a", at + 60, "80.1.200.1"))
    await _accept(engine, _login("b", at + 60, "84.1.200.1"))
    churning = await engine.assess(_login("a", at + 3600, "80.1.201.7"))
    stable = await engine.assess(_login("b", at + 3600, "84.1.201.7"))
    assert stable.score - churning.score > 0.5, (stable.score, churning.score)
    # Without evidence about a block the level's population rate stands.
    assert engine.world.novelty("ip", "DE\x1f3320\x1f99.9.0.0/16") == engine.world.novelty("ip")


def test_staged_attacks_reach_every_history_stage() -> None:
    logins = list(simulate(60, seed=3, attacks_per_stage=1))
    labelled = [LabelledLogin(e.user_id, e.timestamp, e.success, k or "legitimate") for e, k in logins]
    history = history_lengths(labelled)
    per_user_stage: Counter[tuple[str, str, int]] = Counter()
    reached: dict[str, int] = Counter()
    for i, (event, kind) in enumerate(logins):
        if kind in {"naive", "vpn", "targeted", "very_targeted"}:
            stage = max(s for s in STAGES if s <= max(history[i], 1))
            per_user_stage[(event.user_id, kind, stage)] += 1
        elif not kind and event.success:
            reached[event.user_id] += 1
    for user, count in reached.items():
        for kind in ("naive", "vpn", "targeted", "very_targeted"):
            for stage in (s for s in STAGES if s <= count):
                assert per_user_stage[(user, kind, stage)] == 1, (user, kind, stage, count)
    once = [kind for _, kind in simulate(60, seed=3, attacks_per_stage=0) if kind in {"targeted"}]
    assert 0 < len(once) <= 60


def test_the_labelled_replay_never_teaches_an_attack() -> None:
    """With ``learn="labels"`` an attacker fails the second factor, and even an attack the engine allowed does
    not enter its victim's profile; the default replay learns what it allowed or stepped up."""
    home = [_login("v", T0 + day * 86400, "84.1.1.1") for day in range(30)]
    attack = _login("v", T0 + 30 * 86400, "84.1.1.1")  # from behind the victim's own router: allowed
    rows = [Row(str(i), i + 2, e, {"Attack Type": "legitimate"}) for i, e in enumerate(home)]
    rows.append(Row("30", 32, attack, {"Attack Type": "very_targeted"}))
    for learn, learned in (("labels", 30), ("assume-passed", 31)):
        engine = RiskEngine(secret=SECRET)
        scored = asyncio.run(replay(rows, engine, learn=learn))
        assert scored[-1].decision.value == "allow"
        assert asyncio.run(engine._profile("v")).logins == learned
