"""Time, behind a seam so tests can move it without patching."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


class Clock:
    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()


@dataclass
class FrozenClock(Clock):
    """A clock that only moves when told to (tests, simulations, replays)."""

    at: float = field(default_factory=time.time)

    def now(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds
