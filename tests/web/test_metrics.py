"""/metrics counts what happened: tokens issued by grant type, OAuth errors by code, logins by outcome
(Prometheus text, parsed with prometheus_client's own parser)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.oauth.support import Browser, environment, form_fields
from tests.oauth.test_hostile import API, basic


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_tokens_errors_and_logins(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user = await env.user()
        await env.register_api(API, {"calendar:read": ""})
        machine, secret = await env.register_client("Machine", grant_types=["client_credentials"])
        assert secret
        async with env.client() as http:
            for _ in range(2):
                ok = await http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials", "resource": API},
                    headers=basic(machine.client_id, secret),
                )
                assert ok.status_code == 200
            wrong = await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials", "resource": API},
                headers=basic(machine.client_id, secret + "x"),
            )
            assert wrong.status_code == 401

            browser = Browser(http)
            page = await http.get("/login")
            failed = await http.post(
                "/login", data={**form_fields(page.text), "email": user.email, "password": "wrong one"}
            )
            assert failed.status_code == 400
            signed_in = await browser.login(await http.get("/login"), user.email)
            assert signed_in.status_code == 200

            metrics = await http.get("/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        found = samples(metrics.text)
        assert found[("tessera_tokens_issued_total", (("grant_type", "client_credentials"),))] == 2
        assert found[("tessera_oauth_errors_total", (("error", "invalid_client"),))] == 1
        assert found[("tessera_logins_total", (("outcome", "succeeded"),))] == 1
        assert found[("tessera_logins_total", (("outcome", "failed"),))] == 1
