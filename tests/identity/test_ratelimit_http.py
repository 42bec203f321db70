"""``RateLimited`` on an API route: 429, Retry-After, and the RFC 6749 error shape the token endpoint uses."""

from __future__ import annotations

import httpx

from tessera.core.clock import FrozenClock
from tessera.core.errors import TooManyRequests
from tessera.core.ratelimit import RateDecision, RateLimited, decide
from tessera.services import Services
from tessera.web.app import create_app


async def test_enforce_answers_429_with_retry_after(services: Services, clock: FrozenClock) -> None:
    app = create_app(services=services)

    @app.post("/limited")
    async def limited() -> dict[str, int]:
        decision = await services.rate_limiter.enforce("test:client-a", limit=2, window_seconds=60)
        return {"remaining": decision.remaining}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.post("/limited")).json() == {"remaining": 1}
        assert (await http.post("/limited")).json() == {"remaining": 0}
        refused = await http.post("/limited")
        assert refused.status_code == 429
        assert refused.json()["error"] == "too_many_requests"
        assert 1 <= int(refused.headers["retry-after"]) <= 120
        assert refused.headers["cache-control"] == "no-store"
        clock.advance(120)
        assert (await http.post("/limited")).status_code == 200


def test_rate_limited_is_a_too_many_requests_error() -> None:
    error = RateLimited(RateDecision(False, 0, 7))
    assert isinstance(error, TooManyRequests) and error.status_code == 429
    assert error.headers == {"RateLimit-Remaining": "0", "Retry-After": "7"}


def test_retry_after_is_when_the_estimate_falls_back_under_the_limit() -> None:
    # 10 hits in the current 60 s window (which began at t=0), limit 5: the window ends at 60, and the
    # next one must be 50% through before 10 * (1 - f) <= 5, at t=90. Asked at t=20: wait 70 s.
    assert decide(10, 0, now=20, window=0, window_seconds=60, limit=5) == RateDecision(False, 0, 70)
    # 2 hits now and 10 in the previous window, limit 5: 10 * (1 - f) + 2 <= 5 when f >= 0.7, at t=42.
    assert decide(2, 10, now=30, window=0, window_seconds=60, limit=5) == RateDecision(False, 0, 12)
    assert decide(2, 10, now=45, window=0, window_seconds=60, limit=5) == RateDecision(True, 0, 0)
