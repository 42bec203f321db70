"""The measure of Wiefling et al. (ACM TOPS 2022): fix the share of an attacker type's logins that must be
blocked (97%, 99%, 99.5%, 99.9%), take the threshold that blocks it, and report how often legitimate users
must re-authenticate at that threshold, as a function of how long their login history is.

Our reading, precisely: for attacker type A and level p, the threshold t is the highest score such that at
least p of A's logins score t or more. A legitimate successful login re-authenticates when it scores t or
more. Its history length is the number of earlier legitimate successful logins of the same user in the log.
For each history bucket (1-3, 4-7, 8-11, 12-19, 20-39, 40-79, 80+ logins) each user's re-authentication rate
is the share of their logins in that bucket that re-authenticate; the table reports the median over users
with logins in the bucket. Scores come from any scorer (``tessera risk score`` or another), so the measure
can compare models on the same log.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

LEVELS = (0.97, 0.99, 0.995, 0.999)
BUCKETS = (1, 4, 8, 12, 20, 40, 80)
RBA_ATTACKS = ("naive", "vpn", "targeted", "very_targeted")
LEGITIMATE = {"legitimate", "none", "benign", ""}


@dataclass(slots=True)
class LabelledLogin:
    user: str
    timestamp: float
    success: bool
    attack: str  # "" or "legitimate" for legitimate logins


@dataclass(slots=True)
class Cell:
    attack: str
    level: float
    threshold: float
    attacks: int
    rates: dict[int, float | None]  # bucket -> median re-authentication rate
    users: dict[int, int]  # bucket -> users counted
    thresholds: dict[int, float | None] = field(default_factory=dict)  # bucket -> threshold used
    means: dict[int, float | None] = field(default_factory=dict)  # bucket -> mean of the users' rates
    # bucket -> attacks on users with that much history: with fewer than 1 / (1 - level) of them, the
    # per-history threshold is simply the lowest-scoring attack of the bucket (every attack is blocked).
    bucket_attacks: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class Report:
    cells: list[Cell] = field(default_factory=list)
    legitimate_logins: int = 0

    def cell(self, attack: str, level: float) -> Cell:
        return next(c for c in self.cells if c.attack == attack and c.level == level)

    def to_json(self) -> dict[str, object]:
        return {
            "measure": "median re-authentication rate of legitimate users by login history length "
            "(Wiefling et al., ACM TOPS 2022)",
            "buckets": [_bucket_label(b) for b in BUCKETS],
            "legitimate_logins": self.legitimate_logins,
            "cells": [
                {
                    "attack": c.attack,
                    "blocked": c.level,
                    "threshold": c.threshold,
                    "attacks": c.attacks,
                    "median_reauth_rate": {_bucket_label(b): r for b, r in c.rates.items()},
                    "mean_reauth_rate": {_bucket_label(b): r for b, r in c.means.items()},
                    "thresholds": {_bucket_label(b): t for b, t in c.thresholds.items()},
                    "users": {_bucket_label(b): n for b, n in c.users.items()},
                    "attacks_per_bucket": {_bucket_label(b): n for b, n in c.bucket_attacks.items()},
                }
                for c in self.cells
            ],
        }

    def table(self) -> str:
        head = "| attacker | blocked | " + " | ".join(f"{_bucket_label(b)} logins" for b in BUCKETS) + " |"
        lines = [head, "|" + " --- |" * (2 + len(BUCKETS))]
        for c in self.cells:
            rates = " | ".join("-" if c.rates[b] is None else f"{c.rates[b]:.1%}" for b in BUCKETS)
            lines.append(f"| {c.attack} | {c.level:.1%} | {rates} |")
        return "\n".join(lines)


def _bucket_label(bucket: int) -> str:
    i = BUCKETS.index(bucket)
    return f"{bucket}+" if i == len(BUCKETS) - 1 else f"{bucket}-{BUCKETS[i + 1] - 1}"


def _bucket(history: int) -> int | None:
    found = None
    for b in BUCKETS:
        if history >= b:
            found = b
    return found


def threshold_for(scores: Sequence[float], level: float) -> float:
    ordered = sorted(scores, reverse=True)
    k = max(1, math.ceil(level * len(ordered) - 1e-9))
    return ordered[k - 1]


def history_lengths(logins: Sequence[LabelledLogin]) -> list[int]:
    order = sorted(range(len(logins)), key=lambda i: logins[i].timestamp)
    seen: dict[str, int] = defaultdict(int)
    out = [0] * len(logins)
    for i in order:
        login = logins[i]
        out[i] = seen[login.user]
        if login.success and login.attack.strip().lower() in LEGITIMATE:
            seen[login.user] += 1
    return out


def evaluate(
    logins: Sequence[LabelledLogin],
    scores: Sequence[float],
    *,
    attacks: Sequence[str] | None = None,
    per_history: bool = True,
) -> Report:
    if len(logins) != len(scores):
        raise ValueError(f"{len(logins)} logins but {len(scores)} scores")
    history = history_lengths(logins)
    kinds = [login.attack.strip().lower() for login in logins]
    present = sorted({k for k in kinds if k not in LEGITIMATE})
    chosen = [a for a in (attacks or RBA_ATTACKS) if a in present]
    legit = [i for i, k in enumerate(kinds) if k in LEGITIMATE and logins[i].success]
    report = Report(legitimate_logins=len(legit))
    by_bucket: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for i in legit:
        b = _bucket(history[i])
        if b is not None:
            by_bucket[b][logins[i].user].append(scores[i])
    for attack in chosen:
        attack_rows = [i for i, k in enumerate(kinds) if k == attack]
        attack_scores = [scores[i] for i in attack_rows]
        attacks_by_bucket: dict[int | None, list[float]] = defaultdict(list)
        for i in attack_rows:
            attacks_by_bucket[_bucket(history[i])].append(scores[i])
        for level in LEVELS:
            overall = threshold_for(attack_scores, level)
            rates: dict[int, float | None] = {}
            users: dict[int, int] = {}
            thresholds: dict[int, float | None] = {}
            means: dict[int, float | None] = {}
            for b in BUCKETS:
                t: float | None = overall
                if per_history:
                    t = threshold_for(attacks_by_bucket[b], level) if attacks_by_bucket[b] else None
                thresholds[b] = t
                per_user = (
                    [sum(s >= t for s in ss) / len(ss) for ss in by_bucket[b].values()]
                    if t is not None
                    else []
                )
                rates[b] = statistics.median(per_user) if per_user else None
                means[b] = statistics.fmean(per_user) if per_user else None
                users[b] = len(per_user)
            counts = {b: len(attacks_by_bucket[b]) for b in BUCKETS}
            report.cells.append(
                Cell(attack, level, overall, len(attack_scores), rates, users, thresholds, means, counts)
            )
    return report


def plot(report: Report, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("the plot needs matplotlib: install tessera-auth[risk]") from exc
    attacks = sorted(
        {c.attack for c in report.cells}, key=lambda a: RBA_ATTACKS.index(a) if a in RBA_ATTACKS else 99
    )
    figure, axes = plt.subplots(
        1, max(1, len(attacks)), figsize=(4 * max(1, len(attacks)), 3.6), sharey=True, squeeze=False
    )
    for axis, attack in zip(axes[0], attacks, strict=False):
        for cell in (c for c in report.cells if c.attack == attack):
            xs = [b for b in BUCKETS if cell.rates[b] is not None]
            axis.plot(
                xs, [100 * (cell.rates[b] or 0.0) for b in xs], marker="o", label=f"{cell.level:.1%} blocked"
            )
        axis.set_xscale("log")
        axis.set_xticks(list(BUCKETS), [str(b) for b in BUCKETS])
        axis.set_title(attack.replace("_", " "))
        axis.set_xlabel("logins in history")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("median re-authentication rate (%)")
    axes[0][-1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
