"""The ``sh`` examples in tessera/oauth/REGISTRATION_AND_LOGOUT.md run, in order, against a live server."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tessera.storage.migrate import upgrade_sync
from tessera.web.app import create_app
from tests.oauth.support import make_settings
from tests.support.live import free_port, serve

DOC = Path(__file__).resolve().parents[3] / "tessera" / "oauth" / "REGISTRATION_AND_LOGOUT.md"


def test_registration_lifecycle_examples(tmp_path: Path) -> None:
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2 and "ISSUER=http://127.0.0.1:8000" in blocks[0]
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path, issuer=issuer)
    upgrade_sync(settings.database_url)
    script = "\n".join(blocks).replace("ISSUER=http://127.0.0.1:8000", f"ISSUER={issuer}")
    with serve(create_app(settings), port=port):
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, (result.stdout, result.stderr)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    registered, read, updated = (json.loads(line) for line in lines[:3])
    assert registered["client_name"] == "Notes" and registered["client_secret"]
    assert registered["registration_client_uri"] == f"{issuer}/oidc/register/{registered['client_id']}"
    assert read["client_id"] == registered["client_id"] and "client_secret" not in read
    assert updated["client_name"] == "Notes 2" and updated["redirect_uris"] == ["https://notes.example/cb2"]
    assert lines[3:] == ["204", "401"]
