"""Global patterns through the engine's public interface: stuffing, spraying, throttling, bots, travel."""

from __future__ import annotations

import pytest

from tessera.risk.config import RiskConfig
from tessera.risk.engine import Outcome, RiskEngine
from tessera.risk.events import Decision, LoginEvent

from .conftest import SECRET

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"  # noqa: E501
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)


def login(user: str, at: float, ip: str, **kw: object) -> LoginEvent:
    defaults: dict[str, object] = {
        "user_agent": CHROME,
        "country": "DE",
        "asn": 3320,
        "city": "Berlin",
        "rtt_ms": 30.0,
    }
    defaults.update(kw)
    return LoginEvent(timestamp=at, user_id=user, ip=ip, **defaults)  # type: ignore[arg-type]


async def accept(engine: RiskEngine, event: LoginEvent) -> None:
    assessment = await engine.assess(event)
    await engine.record_outcome(event, assessment, Outcome.ALLOWED)


@pytest.fixture
def engine() -> RiskEngine:
    return RiskEngine(secret=SECRET)


async def test_stuffing_campaign_is_throttled_while_legitimate_users_pass(engine: RiskEngine) -> None:
    # Legitimate users in Germany and France with a few weeks of history each.
    homes = {}
    for n in range(60):
        user = f"u{n}"
        country, asn, city = ("DE", 3320, "Berlin") if n % 2 else ("FR", 3215, "Paris")
        homes[user] = (f"84.{n}.10.{n + 1}", country, asn, city)
        for day in range(12):
            await accept(
                engine,
                login(user, T0 + day * 86400 + n * 60, homes[user][0], country=country, asn=asn, city=city),
            )
    # A campaign from the same countries: 600 accounts (real and not), one or two tries each, rotating over
    # 120 addresses in three hosting ASNs, a few hours long.
    start = T0 + 20 * 86400
    decisions = []
    for i in range(900):
        asn = (14061, 24940, 16276)[i % 3]
        ip = f"{160 + i % 3}.{(i // 3) % 40}.7.{1 + i % 7}"
        country = "DE" if i % 2 else "FR"
        event = login(
            f"victim{i % 600}",
            start + i * 12,
            ip,
            country=country,
            asn=asn,
            success=i % 97 == 0,
            user_agent=CHROME,
            identifier=f"victim{i % 600}@example.com",
            user_exists=i % 3 != 0,
        )
        assessment = await engine.assess(event)
        decisions.append(assessment)
    later = decisions[300:]
    denied = sum(a.decision == Decision.DENY for a in later) / len(later)
    assert denied >= 0.95
    assert any(r.code == "network_under_stuffing" for r in later[-1].reasons)
    # Meanwhile the real users log in from home, in the same countries, and pass.
    passed = []
    for n, (user, (ip, country, asn, city)) in enumerate(homes.items()):
        assessment = await engine.assess(
            login(user, start + 3600 + n, ip, country=country, asn=asn, city=city)
        )
        passed.append(assessment.decision == Decision.ALLOW)
    assert all(passed)


async def test_many_accounts_from_one_ip_are_flagged_in_words(engine: RiskEngine) -> None:
    last = None
    for i in range(25):
        last = await engine.assess(login(f"acct{i}", T0 + i, "203.0.113.9", success=False))
    assert last is not None
    reason = next(r for r in last.reasons if r.code == "many_accounts_from_ip")
    assert "25 accounts tried from 203.0.113.9" in reason.message
    assert last.decision == Decision.DENY


async def test_password_spraying_is_recognised_by_keyed_hash(engine: RiskEngine) -> None:
    fingerprint = engine.password_fingerprint("Winter2026!")
    assert "Winter2026" not in fingerprint and len(fingerprint) == 32
    assert fingerprint != RiskEngine(secret=b"another-secret-0123456789").password_fingerprint("Winter2026!")
    last = None
    for i in range(12):
        # Each attempt from its own address: only the password links them.
        last = await engine.assess(
            login(
                f"sprayed{i}",
                T0 + i * 30,
                f"198.51.100.{i + 1}",
                success=False,
                password_fingerprint=fingerprint,
            )
        )
    assert last is not None and any(r.code == "password_spraying" for r in last.reasons)
    assert last.decision in {Decision.STEP_UP, Decision.DENY}
    other = await engine.assess(
        login(
            "someone", T0 + 400, "198.51.100.200", password_fingerprint=engine.password_fingerprint("other")
        )
    )
    assert not any(r.code == "password_spraying" for r in other.reasons)


async def test_suspicious_ip_throttling_follows_auth0_defaults(engine: RiskEngine) -> None:
    ip = "192.0.2.77"
    for i in range(100):
        assessment = await engine.assess(login(f"x{i % 4}", T0 + i * 5, ip, success=False))
        assert not any(r.code == "ip_throttled" for r in assessment.reasons)
    throttled = await engine.assess(login("x0", T0 + 100 * 5, ip, success=False))
    assert throttled.decision == Decision.DENY
    assert any(r.code == "ip_throttled" for r in throttled.reasons)
    # The bucket refills at 100 a day: a day later the address may try again.
    recovered = await engine.assess(login("x0", T0 + 100 * 5 + 86400, ip))
    assert not any(r.code == "ip_throttled" for r in recovered.reasons)


async def test_brute_force_on_one_account_from_one_ip(engine: RiskEngine) -> None:
    for i in range(10):
        await engine.assess(login("target", T0 + i * 120, "192.0.2.5", success=False))
    blocked = await engine.assess(login("target", T0 + 1300, "192.0.2.5"))
    assert blocked.decision == Decision.DENY and any(r.code == "brute_force" for r in blocked.reasons)
    elsewhere = await engine.assess(login("target", T0 + 1300, "192.0.2.6"))
    assert not any(r.code == "brute_force" for r in elsewhere.reasons)


async def test_impossible_travel_is_flagged_with_distance_and_time(engine: RiskEngine) -> None:
    for day in range(10):
        await accept(engine, login("traveller", T0 + day * 86400, "84.1.1.1"))
    t = T0 + 10 * 86400
    await accept(engine, login("traveller", t, "84.1.1.1"))
    far = await engine.assess(
        login(
            "traveller", t + 20 * 60, "73.2.2.2", country="US", asn=7922, city="New York City", rtt_ms=120.0
        )
    )
    reason = next(r for r in far.reasons if r.code == "impossible_travel")
    assert "km from the last login (Berlin) 20 minutes ago" in reason.message
    assert "6,3" in reason.message  # Berlin to New York is about 6,380 km
    assert far.decision in {Decision.STEP_UP, Decision.DENY}
    assert "20 minutes ago" in far.explain()
    # The same trip a day later is possible: no travel reason.
    later = await engine.assess(
        login("traveller", t + 86400, "73.2.2.2", country="US", asn=7922, city="New York City")
    )
    assert not any(r.code == "impossible_travel" for r in later.reasons)


@pytest.mark.parametrize(
    ("agent", "code"),
    [
        ("python-requests/2.32.3", "automation_user_agent"),
        ("curl/8.5.0", "automation_user_agent"),
        (CHROME.replace("Chrome/", "HeadlessChrome/"), "headless_browser"),
        ("", "no_user_agent"),
    ],
)
async def test_automation_user_agents_are_flagged(engine: RiskEngine, agent: str, code: str) -> None:
    assessment = await engine.assess(login("bot-target", T0, "192.0.2.10", user_agent=agent))
    reason = next(r for r in assessment.reasons if r.code == code)
    assert reason.weight > 0 and reason.message
    assert assessment.decision in {Decision.STEP_UP, Decision.DENY}


async def test_client_hints_that_contradict_the_user_agent(engine: RiskEngine) -> None:
    honest = await engine.assess(
        login(
            "h",
            T0,
            "192.0.2.11",
            client_hints={
                "Sec-CH-UA": '"Chromium";v="131", "Google Chrome";v="131"',
                "Sec-CH-UA-Platform": '"Windows"',
                "Sec-CH-UA-Mobile": "?0",
            },
        )
    )
    assert not any(r.code == "inconsistent_client_hints" for r in honest.reasons)
    liar = await engine.assess(
        login(
            "h",
            T0 + 5,
            "192.0.2.11",
            client_hints={
                "Sec-CH-UA": '"Chromium";v="99"',
                "Sec-CH-UA-Platform": '"Linux"',
                "Sec-CH-UA-Mobile": "?1",
            },
        )
    )
    reason = next(r for r in liar.reasons if r.code == "inconsistent_client_hints")
    assert (
        "version 99" in reason.message and "platform Linux" in reason.message and "mobile" in reason.message
    )


async def test_inhuman_rate(engine: RiskEngine) -> None:
    last = None
    for i in range(15):
        last = await engine.assess(login("fast", T0 + i * 2, "192.0.2.12", success=False))
    assert last is not None and any(r.code == "inhuman_rate" for r in last.reasons)


async def test_breached_password_asks_for_a_second_factor(engine: RiskEngine) -> None:
    for day in range(10):
        await accept(engine, login("b", T0 + day * 86400, "84.1.1.2"))
    assessment = await engine.assess(login("b", T0 + 11 * 86400, "84.1.1.2", breached_password=True))
    assert assessment.decision == Decision.STEP_UP
    assert any(r.code == "breached_password" for r in assessment.reasons)


async def test_new_network_is_explained_for_admin_and_user(engine: RiskEngine) -> None:
    for day in range(30):
        await accept(engine, login("e", T0 + day * 86400, "84.1.1.3"))
    assessment = await engine.assess(
        login(
            "e",
            T0 + 31 * 86400,
            "91.20.1.1",
            asn=6805,
            asn_name="Telefonica Germany",
            user_agent=IPHONE,
            rtt_ms=90.0,
        )
    )
    codes = {r.code for r in assessment.reasons}
    assert {"new_network", "new_device"} <= codes
    assert "first login from this network provider (Telefonica Germany)" in assessment.explain()
    assert "a network you have not used before" in assessment.explain(for_user=True)
    assert "6805" not in assessment.explain(for_user=True)


async def test_feedback_this_was_not_me_then_this_was_me(engine: RiskEngine) -> None:
    for day in range(20):
        await accept(engine, login("f", T0 + day * 86400, "84.1.1.4"))
    intruder = login("f", T0 + 21 * 86400, "84.1.1.99")
    first = await engine.assess(intruder)
    await engine.record_outcome(intruder, first, Outcome.ALLOWED)  # it slipped through
    await engine.feedback(intruder, was_me=False)
    again = await engine.assess(login("f", T0 + 22 * 86400, "84.1.1.99"))
    assert again.decision == Decision.DENY and any(r.code == "reported_by_user" for r in again.reasons)
    # "This was me" on a trip abroad: the next login from there is no longer a first.
    trip = login("f", T0 + 23 * 86400, "81.2.69.142", country="GB", asn=2856, city="London")
    before = await engine.assess(trip)
    await engine.feedback(trip, was_me=True)
    after = await engine.assess(
        login("f", T0 + 23 * 86400 + 3600, "81.2.69.142", country="GB", asn=2856, city="London")
    )
    assert after.score < before.score
    assert not any(r.code == "new_country" for r in after.reasons)


async def test_profiles_stay_bounded() -> None:
    engine = RiskEngine(RiskConfig(max_history=50), secret=SECRET)
    for i in range(400):
        await accept(
            engine,
            login("mobile", T0 + i * 3600, f"100.{64 + i % 60}.{i % 250}.{i % 200 + 1}", asn=21928 + i % 30),
        )
    profile = await engine._profile("mobile")
    assert profile.logins == 400
    assert len(profile.net.counts) <= sum(profile.net.caps)
    assert profile.net.total <= 50


async def test_session_check_ends_a_hijacked_session(engine: RiskEngine) -> None:
    from tessera.risk.events import SessionEvent

    for day in range(20):
        await accept(engine, login("s", T0 + day * 86400, "84.1.1.5"))
    start = login("s", T0 + 20 * 86400, "84.1.1.5")
    await accept(engine, start)
    same = await engine.assess_session(
        SessionEvent(
            timestamp=start.timestamp + 600,
            user_id="s",
            session_id="sid",
            ip="84.1.1.5",
            user_agent=CHROME,
            login=start,
            country="DE",
            asn=3320,
        )
    )
    assert same.decision == Decision.ALLOW
    stolen = await engine.assess_session(
        SessionEvent(
            timestamp=start.timestamp + 900,
            user_id="s",
            session_id="sid",
            ip="45.77.1.1",
            user_agent="python-requests/2.32.3",
            login=start,
            country="SG",
            asn=20473,
        )
    )
    assert stolen.decision == Decision.END_SESSION
    assert {"session_device_changed", "session_network_changed"} <= {r.code for r in stolen.reasons}


def test_policy_thresholds_by_history() -> None:
    from tessera.risk.config import Policy
    from tessera.risk.policy import decide

    policy = Policy(step_up=1.5, deny=5.0, step_up_by_history=((12, 0.5), (40, -0.2)))
    assert decide(1.0, policy, [], history=3) == Decision.ALLOW
    assert decide(1.0, policy, [], history=12) == Decision.STEP_UP
    assert decide(0.0, policy, [], history=39) == Decision.ALLOW
    assert decide(0.0, policy, [], history=40) == Decision.STEP_UP
    assert decide(6.0, policy, [], history=40) == Decision.DENY
    assert decide(-3.0, policy, [Decision.DENY], history=40) == Decision.DENY  # hard rules win
    assert decide(3.0, policy, [], session=True) == Decision.END_SESSION
    assert decide(-3.0, policy, [Decision.DENY], session=True) == Decision.END_SESSION
