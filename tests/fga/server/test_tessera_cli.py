"""``tessera fga``: stores, models, tuples and queries on the server's database, and the test runner's exit
codes and summary line; malformed models are refused with the parser's error and change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tessera.cli.main import app
from tests.fga.server.conftest import MODEL_DSL


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "TESSERA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 't.db'}",
        "TESSERA_DATA_DIR": str(tmp_path),
    }


def run(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["fga", *args], env=env)
    assert result.exit_code == code, (args, result.output)
    return result.output


def test_store_model_tuples_and_queries(env: dict[str, str], tmp_path: Path) -> None:
    store_id = json.loads(run(env, "store", "create", "demo", "--json"))["id"]
    assert len(store_id) == 26
    assert store_id in run(env, "store", "list")
    env = {**env, "TESSERA_FGA_STORE_ID": store_id}

    model = tmp_path / "model.fga"
    model.write_text(MODEL_DSL)
    model_id = json.loads(run(env, "model", "write", str(model), "--json"))["authorization_model_id"]
    shown = run(env, "model", "get")
    assert f"# model id: {model_id}" in shown and "define member: [user, group#member]" in shown
    assert json.loads(run(env, "model", "get", "--format", "json"))["id"] == model_id

    run(env, "tuple", "write", "user:anne", "member", "group:eng")
    tuples = tmp_path / "tuples.yaml"
    tuples.write_text(
        yaml.safe_dump(
            [
                {"user": "group:eng#member", "relation": "editor", "object": "document:spec"},
                {"user": "user:bob", "relation": "blocked", "object": "document:spec"},
            ]
        )
    )
    assert json.loads(run(env, "tuple", "write", "--file", str(tuples), "--json")) == {"written": 2}
    rows = json.loads(run(env, "tuple", "read", "--object", "document:spec", "--json"))
    assert sorted(r["key"]["user"] for r in rows) == ["group:eng#member", "user:bob"]

    assert run(env, "check", "user:anne", "viewer", "document:spec").strip() == "allowed: true"
    assert run(env, "check", "user:carl", "viewer", "document:spec").strip() == "allowed: false"
    assert (
        run(
            env,
            "check",
            "user:carl",
            "viewer",
            "document:spec",
            "--contextual-tuple",
            "user:carl member group:eng",
        ).strip()
        == "allowed: true"
    )
    assert run(env, "list-objects", "user:anne", "editor", "document").split() == ["document:spec"]

    run(env, "tuple", "delete", "user:anne", "member", "group:eng")
    assert run(env, "check", "user:anne", "viewer", "document:spec").strip() == "allowed: false"


def test_bad_models_and_tuples_are_refused(env: dict[str, str], tmp_path: Path) -> None:
    store_id = json.loads(run(env, "store", "create", "demo", "--json"))["id"]
    env = {**env, "TESSERA_FGA_STORE_ID": store_id}
    for text in (
        "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [usr]\n",  # unknown type
        "model\n  schema 1.1\ntype doc\n  relations\n    define viewer: [user\n",  # syntax
        "this is not a model",
    ):
        bad = tmp_path / "bad.fga"
        bad.write_text(text)
        output = run(env, "model", "write", str(bad), code=1)
        assert "error" in output.lower()
    bad_json = tmp_path / "bad.json"
    bad_json.write_text(
        json.dumps({"schema_version": "1.1", "type_definitions": [{"type": "user"}, {"type": "user"}]})
    )
    run(env, "model", "write", str(bad_json), code=1)
    # Nothing was written: there is no model yet, so a tuple write fails for lack of one.
    assert "no authorization model" in run(env, "model", "get", code=1)
    model = tmp_path / "model.fga"
    model.write_text(MODEL_DSL)
    run(env, "model", "write", str(model))
    output = run(env, "tuple", "write", "user:anne", "pilot", "document:x", code=1)
    assert "pilot" in output


def test_runner_exit_codes_and_summary(env: dict[str, str], tmp_path: Path) -> None:
    passing = tmp_path / "ok.fga.yaml"
    passing.write_text(
        yaml.safe_dump(
            {
                "name": "ok",
                "model": MODEL_DSL,
                "tuples": [{"user": "user:anne", "relation": "owner", "object": "document:d"}],
                "tests": [
                    {
                        "name": "owner",
                        "check": [
                            {"user": "user:anne", "object": "document:d", "assertions": {"viewer": True}}
                        ],
                        "list_users": [
                            {
                                "object": "document:d",
                                "user_filter": [{"type": "user"}],
                                "assertions": {"editor": {"users": ["user:anne"]}},
                            }
                        ],
                    }
                ],
            }
        )
    )
    out = run(env, "test", str(passing))
    assert out.strip().splitlines()[-1] == "2 passed, 0 failed"
    failing = tmp_path / "bad.fga.yaml"
    failing.write_text(passing.read_text().replace("viewer: true", "viewer: false"))
    out = run(env, "test", str(passing), str(failing), code=1)
    assert out.strip().splitlines()[-1] == "3 passed, 1 failed"
    assert "expected=false, got=true" in out
    missing = run(env, "test", str(tmp_path / "absent.fga.yaml"), code=2)
    assert missing.strip().splitlines()[-1] == "0 passed, 0 failed"


async def test_demo_store_is_seeded_once(tmp_path: Path) -> None:
    from tessera.fga.engine.service import CheckRequest
    from tessera.fga.engine.tuples import TupleKey
    from tessera.fga.http import seed_demo_store
    from tessera.services import Services
    from tessera.settings import Settings
    from tessera.storage.migrate import upgrade

    services = Services(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", data_dir=tmp_path))
    try:
        await upgrade(services.db)
        first = await seed_demo_store(services)
        again = await seed_demo_store(services)
        assert first == again and len(first["store_id"]) == 26
        check = CheckRequest(first["store_id"], TupleKey("document:onboarding", "viewer", "user:demo"))
        assert (await services.fga.check(check)).allowed
        stores, _ = await services.fga.list_stores(10, "")
        assert [s.name for s in stores] == ["demo"]
    finally:
        await services.aclose()
