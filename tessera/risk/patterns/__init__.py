"""Global patterns: credential stuffing and password spraying, suspicious-IP throttling, bots, impossible
travel and breached passwords. Each returns ``Term``s: a score contribution with its reason."""

from __future__ import annotations

from dataclasses import dataclass

from tessera.risk.events import Decision


@dataclass(slots=True, frozen=True)
class Term:
    code: str
    log10: float
    message: str
    user_message: str
    force: Decision | None = None  # a hard rule (throttled IP): the decision is at least this
