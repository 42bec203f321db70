"""``tessera clients initial-token``: the token it prints registers a client under TESSERA_REGISTRATION=token,
for as many uses as it was made for."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.cli.main import app
from tests.oauth.support import environment

APP = {"client_name": "Partner", "redirect_uris": ["https://partner.example/cb"]}


def test_initial_token_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'oauth.db'}"
    monkeypatch.setenv("TESSERA_MASTER_KEY", "k" * 43)
    monkeypatch.setenv("TESSERA_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(
        app, ["clients", "initial-token", "--uses", "2", "--note", "ops", "--json", "--database-url", url]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["uses"] == 2 and record["registration_endpoint"].endswith("/oidc/register")
    token = record["initial_access_token"]

    refused = CliRunner().invoke(app, ["clients", "initial-token", "--uses", "0", "--database-url", url])
    assert refused.exit_code != 0

    async def use() -> list[int]:
        async with environment(tmp_path, registration="token") as env, env.client() as http:
            headers = {"Authorization": f"Bearer {token}"}
            return [
                (await http.post("/oidc/register", json=APP, headers=headers)).status_code for _ in range(3)
            ]

    assert asyncio.run(use()) == [201, 201, 401]
