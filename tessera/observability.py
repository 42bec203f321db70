"""Prometheus metrics, in a registry of their own per Services (no global registry).

Counters of what matters to an operator (tokens, OAuth errors, logins). Per-request latency is left to the
reverse proxy or to OpenTelemetry (``TESSERA_HTTP_TELEMETRY``), so the token endpoint's hot path does not pay
for a timer and a histogram on every request."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tokens_issued = Counter(
            "tessera_tokens_issued", "Tokens issued, by grant type", ["grant_type"], registry=self.registry
        )
        self.oauth_errors = Counter(
            "tessera_oauth_errors", "OAuth error responses, by error code", ["error"], registry=self.registry
        )
        self.logins = Counter(
            "tessera_logins", "Login attempts, by outcome", ["outcome"], registry=self.registry
        )
