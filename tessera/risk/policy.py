"""Thresholds to decisions."""

from __future__ import annotations

from tessera.risk.config import Policy
from tessera.risk.events import Decision

_ORDER = [Decision.ALLOW, Decision.STEP_UP, Decision.DENY, Decision.END_SESSION]


def stricter(a: Decision, b: Decision) -> Decision:
    return a if _ORDER.index(a) >= _ORDER.index(b) else b


def decide(
    score: float, policy: Policy, forced: list[Decision], *, session: bool = False, history: int = 0
) -> Decision:
    """Login: allow below the step-up threshold (``policy.step_up_for(history)``), step up below
    ``deny``, deny above. Session: allow, step up, or end the session above ``end_session``. A hard rule
    (``forced``) can only make the decision stricter."""
    step_up = policy.step_up_for(history)
    if session:
        decision = (
            Decision.END_SESSION
            if score >= policy.end_session
            else Decision.STEP_UP
            if score >= step_up
            else Decision.ALLOW
        )
    else:
        decision = (
            Decision.DENY
            if score >= policy.deny
            else Decision.STEP_UP
            if score >= step_up
            else Decision.ALLOW
        )
    for rule in forced:
        if session and rule == Decision.DENY:
            rule = Decision.END_SESSION
        decision = stricter(decision, rule)
    return decision
