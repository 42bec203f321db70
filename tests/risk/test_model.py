"""The model's population priors, the simulator's staged attacks, and what the labelled replay learns."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tessera.risk.dataset import Row
from tessera.risk.engine import Outcome, RiskEngine
from tessera.risk.evaluate import LabelledLogin, history_lengths
from tessera.risk.events import LoginEvent
from tessera.risk.model.likelihood import Profile, history_stage, likelihood_terms, short_state
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


async def test_a_new_block_of_stable_home_lines_weighs_more_than_a_new_carrier_grade_nat_block() -> None:
    """A user who never used either block shows up in each: the back-off has no personal evidence there, so
    only the blocks' churn differs. In the NAT block everybody's address changes at every login (a new one
    is what a legitimate phone brings); in the block of home lines nobody's does (a new one is a renumbering
    or somebody else)."""
    engine = RiskEngine(secret=SECRET)
    at = T0
    for u in range(40):
        for k in range(6):
            at += 60
            await _accept(engine, _login(f"nat{u}", at, f"80.1.{u}.{k + 1}"))
            await _accept(engine, _login(f"home{u}", at, f"84.1.{u}.1"))
    nat = _login("x", 0, "80.1.250.9")
    home = _login("x", 0, "84.1.250.9")
    assert engine.world.churn(engine.resolve(nat).features) > 0.8
    assert engine.world.churn(engine.resolve(home).features) < 0.1
    for day in range(5):
        await _accept(engine, _login("a", at + 60 + day * 86400, "90.1.1.1"))
        await _accept(engine, _login("b", at + 60 + day * 86400, "90.1.2.1"))
    later = at + 10 * 86400
    churning = await engine.assess(_login("a", later, "80.1.250.9"))
    stable = await engine.assess(_login("b", later, "84.1.250.9"))
    assert stable.score - churning.score > 0.8, (stable.score, churning.score)
    assert "new_ip" in {r.code for r in stable.reasons}


async def test_failed_second_factors_teach_the_attacker_side() -> None:
    """A failed second factor after the right password is a confirmed attack: the network it came from gains
    an attacker reputation (Freeman et al.'s p(x | attacker) from labelled attacks), which a login from it
    then carries, with its reason. Without confirmed attacks the term is zero; the counts reach the store."""
    from tessera.risk.store import MemoryStore

    store = MemoryStore()
    engine = RiskEngine(secret=SECRET, store=store)
    at = T0

    def on(user: str, asn: int, ip: str) -> LoginEvent:
        return LoginEvent(timestamp=at, user_id=user, ip=ip, user_agent=CHROME, country="DE", asn=asn)

    for u in range(150):
        at += 60
        await _accept(engine, on(f"u{u}", 3320, f"84.1.{u}.1"))
        if u < 30:
            await _accept(engine, on(f"w{u}", 3209, f"88.1.{u}.1"))
    probe = await engine.assess(on("p", 3209, "88.1.250.1"))
    assert not any(r.code == "network_with_confirmed_attacks" for r in probe.reasons)
    for u in range(30):
        at += 60
        attack = on(f"w{u}", 3209, f"88.1.{u}.{200 + u}")
        await engine.record_outcome(attack, await engine.assess(attack), Outcome.STEP_UP_FAILED)
    assert engine.world.attacks.total == 30
    clean = await engine.assess(on("q", 3320, "84.1.251.1"))
    attacked = await engine.assess(on("q", 3209, "88.1.251.1"))
    codes = {r.code for r in attacked.reasons}
    assert "network_with_confirmed_attacks" in codes, attacked.reasons
    assert attacked.score - clean.score > 0.5
    # A confirmed attack never teaches the victim's profile.
    assert (await engine._profile("w0")).logins == 1
    await engine.flush()
    assert (await store.global_counts("attack"))[""] == 30.0
    restarted = RiskEngine(secret=SECRET, store=store)
    await restarted.load()
    assert restarted.world.attacks.total == 30 and restarted.world.logins.total > 200


def test_the_labelled_replay_teaches_failed_second_factors_only() -> None:
    """``learn="labels"``: an attack that met a step-up fails it (a confirmed attack for the attacker side);
    ``assume-passed`` confirms none."""
    home = [_login("v", T0 + day * 86400, "84.1.1.1") for day in range(30)]
    stranger = LoginEvent(
        timestamp=T0 + 30 * 86400, user_id="v", ip="45.77.1.1", user_agent=CHROME, country="SG", asn=20473
    )
    rows = [Row(str(i), i + 2, e, {"Attack Type": "legitimate"}) for i, e in enumerate(home)]
    rows.append(Row("30", 32, stranger, {"Attack Type": "naive"}))
    for learn, confirmed in (("labels", 1.0), ("assume-passed", 0.0)):
        engine = RiskEngine(secret=SECRET)
        scored = asyncio.run(replay(rows, engine, learn=learn))
        assert scored[-1].decision.value == "step_up"
        assert engine.world.attacks.total == confirmed


async def test_on_a_network_new_to_the_user_the_round_trip_time_is_the_blocks_legitimate_users() -> None:
    """The user's own RTT comes from their phone's carrier (60 ms); their first login from a home line takes
    what the line's other users take (20 ms), a login relayed through a proxy on that line takes longer. On
    a network the user never used, their RTT elsewhere says nothing; the block's users' does."""
    engine = RiskEngine(secret=SECRET)
    at = T0

    def on(user: str, asn: int, ip: str, rtt: float) -> LoginEvent:
        return LoginEvent(
            timestamp=at, user_id=user, ip=ip, user_agent=CHROME, country="DE", asn=asn, rtt_ms=rtt
        )

    for u in range(60):
        for k in range(3):
            at += 60
            await _accept(engine, on(f"home{u}", 3209, f"88.1.{u}.1", 18.0 + k * 2))
    for k in range(4):
        at += 3600
        await _accept(engine, on("p", 6805, f"77.1.9.{k + 1}", 60.0 + k))
    at += 3600
    direct = await engine.assess(on("p", 3209, "88.1.250.1", 20.0))
    relayed = await engine.assess(on("p", 3209, "88.1.250.1", 80.0))
    assert relayed.score - direct.score > 0.5, (relayed.score, direct.score)
    assert "new_rtt" not in {r.code for r in direct.reasons}
    assert any(r.code.endswith("_rtt") for r in relayed.reasons), relayed.reasons


async def test_short_histories_are_judged_by_how_often_short_histories_bring_a_new_network() -> None:
    """Users whose second login comes from their phone's carrier and who then stay on their two networks:
    a new network is common at the first logins and rare later, and the prior follows the stage."""
    engine = RiskEngine(secret=SECRET)
    at = T0

    def on(user: str, asn: int, ip: str) -> LoginEvent:
        return LoginEvent(timestamp=at, user_id=user, ip=ip, user_agent=CHROME, country="DE", asn=asn)

    for u in range(30):
        for k in range(24):
            at += 60
            await _accept(engine, on(f"u{u}", 6805 if k == 1 or (k % 3 == 0 and k) else 3320, f"84.1.{u}.1"))
    assert engine.world.history_factor("network", history_stage(1)) > 3.0
    assert engine.world.history_factor("network", history_stage(20)) < 1.0


def _rtt_term(engine: RiskEngine, profile: Profile, event: LoginEvent) -> float:
    terms = likelihood_terms(profile, engine.world, engine.resolve(event).features)
    return next(t.log10 for t in terms if t.level == "rtt")


async def test_confirmed_attacks_teach_how_much_latency_a_relay_adds() -> None:
    """The attacker side of the RTT is learnt from confirmed attacks: how many milliseconds a login relayed
    through a block took beyond the block's own users. After failed second factors from home lines whose
    users take 20 ms, at 70-90 ms, a login from such a line at the line's own 20 ms is less likely an
    attacker's than an attacker drawn from everybody, and one at 80 ms more likely; without confirmed attacks
    the global distribution stands. The counts reach the store and a restarted engine reads them."""
    from tessera.risk.store import MemoryStore

    store = MemoryStore()
    engine = RiskEngine(secret=SECRET, store=store)
    at = T0

    def on(user: str, asn: int, ip: str, rtt: float) -> LoginEvent:
        return LoginEvent(
            timestamp=at, user_id=user, ip=ip, user_agent=CHROME, country="DE", asn=asn, rtt_ms=rtt
        )

    for u in range(60):
        for k in range(3):
            at += 60
            await _accept(engine, on(f"home{u}", 3209, f"88.1.{u}.1", 18.0 + k * 2))
            await _accept(engine, on(f"mobile{u}", 6805, f"77.1.{u}.{k + 1}", 55.0 + k * 5))
    for k in range(4):
        at += 3600
        await _accept(engine, on("p", 6805, f"77.1.9.{k + 1}", 60.0 + k))
    profile = await engine._profile("p")
    direct, relayed = on("p", 3209, "88.1.250.1", 20.0), on("p", 3209, "88.1.250.1", 80.0)
    before = _rtt_term(engine, profile, direct), _rtt_term(engine, profile, relayed)
    assert engine.world.relay.total == 0
    for u in range(30):
        at += 60
        attack = on(f"home{u}", 3209, f"88.1.{u}.{100 + u}", 70.0 + (u % 3) * 10)
        await engine.record_outcome(attack, await engine.assess(attack), Outcome.STEP_UP_FAILED)
    assert engine.world.relay.total == 30
    after = _rtt_term(engine, profile, direct), _rtt_term(engine, profile, relayed)
    assert after[0] < before[0] - 0.1, (before, after)
    assert after[1] > before[1], (before, after)
    await engine.flush()
    restarted = RiskEngine(secret=SECRET, store=store)
    await restarted.load()
    assert restarted.world.relay.total == 30
    assert restarted.world.block_rtt_ms(engine.resolve(direct).features) == pytest.approx(
        engine.world.block_rtt_ms(engine.resolve(direct).features)
    )
    assert _rtt_term(restarted, profile, direct) == pytest.approx(after[0])


async def test_a_short_history_is_judged_by_users_with_the_same_history() -> None:
    """Every user's second login comes from a second network (the phone's carrier) and none brings a third
    at the third login: with one or two logins, what users with exactly that history did is the prior, so a
    new network costs little at the second login and much at the third, where Good-Turing's "seen once" on
    two logins would say the reverse."""
    engine = RiskEngine(secret=SECRET)
    at = T0

    def on(user: str, asn: int, ip: str) -> LoginEvent:
        return LoginEvent(timestamp=at, user_id=user, ip=ip, user_agent=CHROME, country="DE", asn=asn)

    for u in range(40):
        for k in range(6):
            at += 60
            await _accept(engine, on(f"u{u}", 6805 if k % 2 else 3320, f"84.1.{u}.{1 + k % 2}"))
    assert engine.world.history_factor("network", short_state(1, 1)) > 2.0
    assert engine.world.history_factor("network", short_state(2, 2)) < 0.5
    await _accept(engine, on("a", 3320, "84.1.200.1"))
    await _accept(engine, on("b", 3320, "84.1.201.1"))
    await _accept(engine, on("b", 6805, "84.1.201.2"))
    second = await engine.assess(on("a", 3209, "88.1.1.1"))
    third = await engine.assess(on("b", 3209, "88.1.1.2"))
    assert third.score - second.score > 0.5, (second.score, third.score)


async def test_a_new_device_on_a_new_network_is_learnt_apart() -> None:
    """Users' phones appear with their carrier: a new device type on a network new to the user is what
    users do, a new device type on a known network is not. The browser family's novelty is counted apart
    for logins from a network new to the user (the families' independence corrected)."""
    engine = RiskEngine(secret=SECRET)
    at = T0
    phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"  # noqa: E501

    def on(user: str, asn: int, ip: str, agent: str) -> LoginEvent:
        return LoginEvent(timestamp=at, user_id=user, ip=ip, user_agent=agent, country="DE", asn=asn)

    for u in range(40):
        for k in range(8):
            at += 60
            mobile = k in {2, 5}
            await _accept(
                engine,
                on(f"u{u}", 6805 if mobile else 3320, f"84.1.{u}.{k + 1}", phone if mobile else CHROME),
            )
    for user in ("a", "b"):
        for k in range(2):
            at += 60
            await _accept(engine, on(user, 3320, f"84.1.{200 + k}.1", CHROME))
    with_carrier = await engine.assess(on("a", 6805, "77.1.1.1", phone))
    at_home = await engine.assess(on("b", 3320, "84.1.200.1", phone))
    device = {r.code for r in at_home.reasons}
    assert "new_device" in device, at_home.reasons
    assert "new_device" not in {r.code for r in with_carrier.reasons}, with_carrier.reasons


async def test_a_new_network_is_judged_by_the_networks_users_take_up() -> None:
    """Two networks with as many logins: users take up one as their second network (their phones' carrier),
    the other is only ever somebody's first (its users' home lines, and attackers count there too). A user's
    first login from the network users take up is the likelier of the two for them (Kneser and Ney's
    continuation counts), though everybody logs in from both as often."""
    engine = RiskEngine(secret=SECRET)
    at = T0

    def on(user: str, asn: int, ip: str) -> LoginEvent:
        return LoginEvent(timestamp=at, user_id=user, ip=ip, user_agent=CHROME, country="DE", asn=asn)

    for u in range(40):
        for k in range(4):
            at += 60
            await _accept(engine, on(f"u{u}", 6805 if k else 3320, f"84.1.{u}.{1 + min(k, 1)}"))
            await _accept(engine, on(f"h{u}", 3209, f"88.1.{u}.1"))
    assert engine.world.adopted.counts.get("network\x1fDE\x1f6805", 0.0) == 40
    assert engine.world.adopted.counts.get("network\x1fDE\x1f3209", 0.0) == 0
    for _ in range(3):
        at += 60
        await _accept(engine, on("x", 3320, "84.1.200.1"))
    profile = await engine._profile("x")
    terms = {}
    for asn, ip in ((6805, "77.1.1.1"), (3209, "88.1.201.1")):
        found = likelihood_terms(profile, engine.world, engine.resolve(on("x", asn, ip)).features)
        terms[asn] = next(t.log10 for t in found if t.level == "network")
    assert terms[3209] - terms[6805] > 0.5, terms
