"""Prometheus metrics, in a registry of their own per Services (no global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


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
        self.request_seconds = Histogram(
            "tessera_request_seconds", "Request handling time", ["route"], registry=self.registry
        )
