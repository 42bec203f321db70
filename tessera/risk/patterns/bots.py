"""Bots: automation user agents, headless browsers, client hints that contradict the user agent, inhuman
rates."""

from __future__ import annotations

from tessera.risk.events import Decision
from tessera.risk.patterns import Term
from tessera.risk.signals.useragent import UserAgentInfo, client_hint_problems


def bot_terms(
    info: UserAgentInfo, raw_ua: str, hints: dict[str, str], per_minute: float, limit: float
) -> list[Term]:
    terms: list[Term] = []
    if not raw_ua.strip():
        terms.append(
            Term("no_user_agent", 2.0, "no user agent: browsers always send one", "unrecognised software")
        )
    elif info.automation:
        terms.append(
            Term(
                "automation_user_agent",
                3.0,
                f"automation user agent ({raw_ua[:40]})",
                "a script or automated tool, not a browser",
                force=Decision.STEP_UP,
            )
        )
    if info.headless:
        terms.append(
            Term("headless_browser", 2.5, "headless browser", "an automated browser", force=Decision.STEP_UP)
        )
    problems = client_hint_problems(info, hints)
    if problems:
        terms.append(
            Term(
                "inconsistent_client_hints",
                1.5,
                "inconsistent headers: " + "; ".join(problems),
                "a browser that disguises itself",
            )
        )
    if per_minute > limit:
        terms.append(
            Term(
                "inhuman_rate",
                2.0,
                f"{per_minute:.0f} attempts in a minute from this address for this account",
                "too many attempts too fast",
            )
        )
    return terms
