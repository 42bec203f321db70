"""Replay a login log through the engine in time order, learning online as production would.

Each row is scored with what the engine knew before it, then the windows, the global frequencies and (when the
login was accepted) the user's profile learn from it. The log holds no second-factor results, so ``learn``
says what a step-up stands for:

- ``assume-passed`` (default): a successful login that was allowed or stepped up teaches the profile (the
  challenge is assumed passed); denied logins teach nothing. Attackers who got a step-up therefore poison
  their victim's profile: the pessimistic choice for the measured security.
- ``allowed-only``: only logins allowed without a challenge teach.
- ``labels``: the second factor is emulated from the labels (the legitimate user passes, an attacker fails:
  ``Outcome.STEP_UP_FAILED``, which teaches the attacker side of the model), and no attack teaches its
  victim's profile, not even one the engine allowed: each attack is judged against
  the victim's own history, as an independent attempt. A log with many attempts per victim (``tessera risk
  simulate --attacks-per-stage``) measures each history length on enough attacks that way, without the
  earlier attempts on the same victim compounding into its profile as they would not in production, where a
  victim is rarely attacked more than once or twice. Every attempt still counts in the global windows and
  frequencies. Labels are read only after the row was scored, never for its score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tessera.risk.dataset import Row
from tessera.risk.engine import Outcome, RiskEngine
from tessera.risk.events import Decision

LEARN_MODES = ("assume-passed", "allowed-only", "labels")


@dataclass(slots=True)
class Scored:
    index: str
    score: float
    decision: Decision
    history_length: int
    codes: tuple[str, ...]


async def replay(rows: Sequence[Row], engine: RiskEngine, *, learn: str = "assume-passed") -> list[Scored]:
    if learn not in LEARN_MODES:
        raise ValueError(f"learn must be one of {', '.join(LEARN_MODES)}")
    # Stable sort: rows out of order are replayed in time order; ties keep the file's order.
    order = sorted(range(len(rows)), key=lambda i: rows[i].event.timestamp)
    out: list[Scored | None] = [None] * len(rows)
    for i in order:
        row = rows[i]
        assessment = await engine.assess(row.event)
        out[i] = Scored(
            row.index,
            assessment.score,
            assessment.decision,
            assessment.history_length,
            tuple(r.code for r in assessment.reasons if r.weight > 0),
        )
        if not row.event.success or assessment.decision == Decision.DENY:
            continue
        if learn == "labels" and not _legitimate(row):
            # The attacker holds the password but not the second factor: a step-up it met fails, which is
            # what production learns of an attack (the network's reputation). An attack allowed outright
            # goes unnoticed, one denied leaves no second-factor result.
            if assessment.decision == Decision.STEP_UP:
                await engine.record_outcome(row.event, assessment, Outcome.STEP_UP_FAILED)
            continue
        if assessment.decision == Decision.ALLOW:
            await engine.record_outcome(row.event, assessment, Outcome.ALLOWED)
        elif learn in {"assume-passed", "labels"}:
            await engine.record_outcome(row.event, assessment, Outcome.STEP_UP_PASSED)
    return [s for s in out if s is not None]


def _legitimate(row: Row) -> bool:
    kind = row.labels.get("Attack Type", "").strip().lower()
    if kind:
        return kind in {"legitimate", "none", "benign"}
    return row.labels.get("Is Account Takeover", "").strip().lower() not in {"true", "1"}
