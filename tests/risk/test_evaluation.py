"""The measured evaluation (Wiefling et al., ACM TOPS 2022) on a simulated log of 2,000 users.

The engine replays the log online, in time order; a row's label is read only after it was scored, to emulate
its second factor (conftest), and here, to measure.
"""

from __future__ import annotations

import ipaddress
import math
from collections import defaultdict

import pytest

from tessera.risk.evaluate import BUCKETS, LEVELS, RBA_ATTACKS, Report, evaluate, history_lengths

from .conftest import Replayed


def novelty_baseline(replayed: Replayed) -> list[float]:
    """Has this user logged in from this ASN, IP, country and browser family before? One point per "no".
    It learns from every earlier successful login of the user themselves: no attack ever enters its history
    (it has no decisions to keep them out, so it is given the labels; the engine learns no attack either)."""
    seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    scores = [0.0] * len(replayed.rows)
    order = sorted(range(len(replayed.rows)), key=lambda i: replayed.rows[i].event.timestamp)
    for i in order:
        event = replayed.rows[i].event
        family = (event.browser or "").rsplit(" ", 1)[0]
        values = {"asn": str(event.asn), "ip": event.ip, "country": event.country or "", "browser": family}
        history = seen[event.user_id]
        scores[i] = float(sum(value not in history[name] for name, value in values.items()))
        if event.success and replayed.logins[i].attack == "legitimate":
            for name, value in values.items():
                history[name].add(value)
    return scores


def test_targeted_attackers_cost_little_once_history_builds(replayed_2000: Replayed) -> None:
    report = evaluate(replayed_2000.logins, [s.score for s in replayed_2000.scored])
    users = {login.user for login in replayed_2000.logins if login.attack == "legitimate"}
    assert len(users) >= 2000
    targeted = report.cell("targeted", 0.99)
    for cell in report.cells:  # enough attacks for a 99.9% threshold to mean something in every bucket
        assert min(cell.bucket_attacks.values()) >= 1000, (cell.attack, cell.bucket_attacks)
    assert targeted.users[40] >= 500
    assert targeted.rates[40] is not None and targeted.rates[40] <= 0.05, report.table()
    for attack in ("naive", "vpn"):
        cell = report.cell(attack, 0.99)
        assert cell.rates[40] is not None and cell.rates[40] <= 0.01, report.table()
    # Re-authentication falls as history grows (Wiefling et al.'s central observation); both medians may be
    # 0%, the users' mean rates say it.
    assert targeted.means[1] is not None and targeted.means[40] is not None
    assert targeted.means[40] < targeted.means[1]


def _comparison(replayed: Replayed) -> tuple[Report, Report]:
    return (
        evaluate(replayed.logins, [s.score for s in replayed.scored]),
        evaluate(replayed.logins, novelty_baseline(replayed)),
    )


def test_beats_the_novelty_baseline(replayed_2000: Replayed) -> None:
    """Never worse than the baseline in any cell; strictly better in every cell where the baseline leaves room
    (above 0%) once users have 4 logins. Cells where both are at 0% cannot be beaten."""
    ours, baseline = _comparison(replayed_2000)
    worse, not_better, better = [], [], 0
    for attack in RBA_ATTACKS:
        for level in LEVELS:
            mine, theirs = ours.cell(attack, level), baseline.cell(attack, level)
            for bucket in BUCKETS:
                a, b = mine.rates[bucket], theirs.rates[bucket]
                assert a is not None and b is not None
                if a > b:
                    worse.append((attack, level, bucket, a, b))
                elif a < b:
                    better += 1
                elif b > 0 and bucket >= 4:
                    not_better.append((attack, level, bucket, a, b))
    tables = "\n" + ours.table() + "\n" + baseline.table()
    assert not worse, "\n".join(map(str, worse)) + tables
    assert not not_better, "\n".join(map(str, not_better)) + tables
    assert better >= 81, tables  # of 112 cells (83 on this log)


def _never_reauthenticated(replayed: Replayed, scores: list[float], threshold: float, bucket: int) -> int:
    history = history_lengths(replayed.logins)
    reauthenticated: dict[str, bool] = {}
    for i, login in enumerate(replayed.logins):
        if login.attack == "legitimate" and login.success and _bucket_of(history[i]) == bucket:
            reauthenticated[login.user] = reauthenticated.get(login.user, False) or scores[i] >= threshold
    return sum(not r for r in reauthenticated.values())


def test_where_the_median_ties_the_engine_still_wins_per_user(replayed_2000: Replayed) -> None:
    """The issue asks for a strict win in every cell of the table where the baseline re-authenticates anyone.
    That holds from 4 logins on (above) and at 1-3 logins in all but the three strictest cells at 1-3 logins
    (README, "How good it is"): there each user's rate moves in thirds, so the median falls below the
    baseline's 33.3% only if more than half of the users are never asked, while the baseline asks nearly
    everybody once. Those ties must stay there, and in each of them the engine must still be the better one
    user by user: more users never asked and a lower mean rate."""
    ours, baseline = _comparison(replayed_2000)
    ours_scores = [s.score for s in replayed_2000.scored]
    baseline_scores = novelty_baseline(replayed_2000)
    ties = []
    for attack in RBA_ATTACKS:
        for level in LEVELS:
            mine, theirs = ours.cell(attack, level), baseline.cell(attack, level)
            for bucket in BUCKETS:
                a, b = mine.rates[bucket] or 0.0, theirs.rates[bucket] or 0.0
                if b <= 0 or a < b:
                    continue
                ties.append((attack, level, bucket))
                assert bucket < 4, (attack, level, bucket)
                assert (mine.means[bucket] or 0.0) < (theirs.means[bucket] or 0.0), (attack, level, bucket)
                t_mine, t_theirs = mine.thresholds[bucket], theirs.thresholds[bucket]
                assert t_mine is not None and t_theirs is not None
                never_mine = _never_reauthenticated(replayed_2000, ours_scores, t_mine, bucket)
                never_theirs = _never_reauthenticated(replayed_2000, baseline_scores, t_theirs, bucket)
                assert never_mine > never_theirs, (attack, level, bucket, never_mine, never_theirs)
                assert never_mine * 2 <= mine.users[bucket]  # why the median cannot move yet
    assert len(ties) <= 3, ties  # 3 on this log, all at 1-3 logins (9 before relays and adoptions, 19 before)


FEATURES = ("country", "asn", "block", "ip", "browser", "version", "os", "device")


def _novelties(replayed: Replayed) -> list[frozenset[str]]:
    """Which of a login's features its user had never shown (in their own successful logins)."""
    seen: dict[str, dict[str, set[object]]] = defaultdict(lambda: defaultdict(set))
    out: list[frozenset[str]] = [frozenset()] * len(replayed.rows)
    for i in sorted(range(len(replayed.rows)), key=lambda i: replayed.rows[i].event.timestamp):
        e = replayed.rows[i].event
        values = dict(
            zip(
                FEATURES,
                (
                    e.country,
                    e.asn,
                    ipaddress.ip_network(f"{e.ip}/16", strict=False),
                    e.ip,
                    (e.browser or "").rsplit(" ", 1)[0],
                    e.browser,
                    e.os,
                    e.device_type,
                ),
                strict=True,
            )
        )
        known = seen[e.user_id]
        out[i] = frozenset(name for name, value in values.items() if value not in known[name])
        if e.success and replayed.logins[i].attack == "legitimate":
            for name, value in values.items():
                known[name].add(value)
    return out


def test_no_scorer_of_novelties_alone_beats_the_baseline_on_targeted_attacks(replayed_2000: Replayed) -> None:
    """What winning the short-history cells takes. Take a scorer that looks only at which of a login's
    features (country, ASN, /16 block, IP, browser, its version, OS, device type) the user has not shown
    before, and never scores a login lower for having more of them new (the baseline is one). An attack whose
    only novelty is its address then scores at most what any login from a new address scores. When more than
    1 - p of a bucket's attacks are such attacks, the threshold blocking p of them is at most that score, so
    every login from a new address is asked; when more than half of the users have one in the bucket, the
    median user is asked at least once: 1/3 at 1-3 logins and 1/4 at 4-7 and 8-11, the baseline's own
    figures, which no such scorer can beat. The engine beats them from 4 logins on with what such scorers
    ignore (how often this user's values change; how often everybody's address changes in that block, so a
    phone's new carrier-grade NAT address costs nothing and a new address among home lines costs much; which
    networks second factors failed from; the round-trip time and the latency confirmed relays added; which
    networks and devices users take up); at 1-3 logins that leaves half the users alone in all but the
    three strictest cells."""
    novelties = _novelties(replayed_2000)
    history = history_lengths(replayed_2000.logins)
    _, baseline = _comparison(replayed_2000)
    for bucket, floor in ((1, 1 / 3), (4, 1 / 4), (8, 1 / 4)):
        asked: dict[str, bool] = {}
        for i, login in enumerate(replayed_2000.logins):
            if login.attack == "legitimate" and login.success and _bucket_of(history[i]) == bucket:
                asked[login.user] = asked.get(login.user, False) or "ip" in novelties[i]
        assert sum(asked.values()) * 2 > len(asked), bucket
        for attack in ("targeted", "very_targeted"):
            rows = [
                i
                for i, login in enumerate(replayed_2000.logins)
                if login.attack == attack and _bucket_of(history[i]) == bucket
            ]
            only_the_address = sum(novelties[i] <= {"ip"} for i in rows)
            for level in (0.99, 0.995, 0.999):
                assert only_the_address > (1 - level) * len(rows), (attack, bucket, only_the_address)
                assert baseline.cell(attack, level).rates[bucket] == floor, (attack, level, bucket)


def test_per_history_thresholds_say_how_many_attacks_they_rest_on(replayed_2000: Replayed) -> None:
    """Blocking a share p of the n attacks in a bucket blocks ceil(p * n): all n when n < 1 / (1 - p), and
    the threshold is then the lowest-scoring attack of the bucket. The report says n for each bucket."""
    scores = [s.score for s in replayed_2000.scored]
    report = evaluate(replayed_2000.logins, scores)
    history = history_lengths(replayed_2000.logins)
    for cell in report.cells:
        rows = [i for i, login in enumerate(replayed_2000.logins) if login.attack == cell.attack]
        assert sum(cell.bucket_attacks.values()) == sum(history[i] >= 1 for i in rows)
        for bucket, n in cell.bucket_attacks.items():
            if n and math.ceil(cell.level * n - 1e-9) == n:
                in_bucket = [scores[i] for i in rows if _bucket_of(history[i]) == bucket]
                assert cell.thresholds[bucket] == min(in_bucket)
    as_json = report.to_json()["cells"]
    assert isinstance(as_json, list) and "attacks_per_bucket" in as_json[0]


def _bucket_of(history: int) -> int | None:
    found = None
    for b in BUCKETS:
        if history >= b:
            found = b
    return found


def test_global_threshold_variant_is_reported(replayed_2000: Replayed) -> None:
    report = evaluate(replayed_2000.logins, [s.score for s in replayed_2000.scored], per_history=False)
    cell = report.cell("targeted", 0.99)
    # One threshold for every bucket, and it blocks at least 99% of all targeted attacks.
    assert len({cell.thresholds[b] for b in BUCKETS}) == 1
    attack_scores = [
        s.score
        for s, login in zip(replayed_2000.scored, replayed_2000.logins, strict=True)
        if login.attack == "targeted"
    ]
    blocked = sum(score >= cell.threshold for score in attack_scores) / len(attack_scores)
    assert blocked >= 0.99


@pytest.mark.xfail(
    strict=True,
    reason="issue 4's literal criterion (a strict win in every cell where the baseline re-authenticates "
    "anyone) is met from 4 logins of history on and in 5 of the 8 cells at 1-3 where the baseline asks "
    "anyone, not in 3 (targeted 99.9%, very targeted 99.5% and 99.9%: test above and README). Strict: once "
    "those cells are won this passes, and the mark must go.",
)
def test_beats_the_baseline_in_every_cell_where_it_reauthenticates(replayed_2000: Replayed) -> None:
    ours, baseline = _comparison(replayed_2000)
    ties = [
        (attack, level, bucket)
        for attack in RBA_ATTACKS
        for level in LEVELS
        for bucket in BUCKETS
        if (theirs := baseline.cell(attack, level).rates[bucket] or 0.0) > 0
        and (ours.cell(attack, level).rates[bucket] or 0.0) >= theirs
    ]
    assert not ties, ties
