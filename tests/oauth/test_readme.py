"""The curl examples in tessera/oauth/README.md work against a server seeded as `tessera dev` seeds it."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

from tessera.cli.serve import seed_demo
from tessera.services import Services
from tessera.storage.migrate import upgrade
from tessera.web.app import create_app
from tests.conftest import free_port
from tests.oauth.support import make_settings
from tests.support.live import serve

README = Path(__file__).resolve().parents[2] / "tessera" / "oauth" / "README.md"


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_curl_examples(tmp_path: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path, issuer=issuer, data_dir=tmp_path / ".tessera")

    async def seed() -> None:
        services = Services(settings)
        try:
            await upgrade(services.db)
            await seed_demo(services)
        finally:
            await services.aclose()

    asyncio.run(seed())
    blocks = sh_blocks()
    setup = blocks[0].replace("ISSUER=http://127.0.0.1:8000", f"ISSUER={issuer}")
    assert f"ISSUER={issuer}" in setup
    wanted = [b for b in blocks if "oauth/token" in b and "CODE=..." not in b and "REFRESH" not in b]
    assert len(wanted) == 3  # client credentials (form), the same as JSON, introspect/revoke
    with serve(create_app(settings), port=port):
        outputs = []
        for block in wanted:
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", setup + block],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, (result.stdout, result.stderr)
            outputs.append(result.stdout)
        discovery = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", setup + blocks[1]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert f'"issuer": "{issuer}"' in discovery.stdout and '"keys": [' in discovery.stdout.replace(
            '":[', '": ['
        )
    form, as_json, lifecycle = outputs
    assert json.loads(form)["scope"] == "demo:read" and json.loads(form)["token_type"] == "Bearer"
    assert json.loads(as_json)["scope"] == "demo:read demo:write"
    # curl prints the bodies without a newline: introspection, then 200 from revocation, then introspection.
    decoder = json.JSONDecoder()
    before, end = decoder.raw_decode(lifecycle)
    status, _, rest = lifecycle[end:].partition("\n")
    after, _ = decoder.raw_decode(rest)
    assert before["active"] is True and before["client_id"] == "demo-agent"
    assert status == "200"
    assert after == {"active": False}
