"""``tessera fga test`` runs on the in-memory store: its start-up must not import the server (the web app,
every capability's services, Alembic), which used to cost a second per run (bench/fga.py, whole process)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from typer.testing import CliRunner
from tessera.cli.main import app
result = CliRunner().invoke(app, {args!r})
print(result.exit_code)
print(sorted(m for m in ("tessera.services", "tessera.web.app", "alembic", "fastapi") if m in sys.modules))
"""


def _probe(args: list[str]) -> tuple[int, str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    return int(out[-2]), out[-1]


def test_fga_test_does_not_import_the_server(tmp_path):
    path = tmp_path / "store.fga.yaml"
    path.write_text(
        "model: |\n  model\n    schema 1.1\n  type user\n  type doc\n"
        "    relations\n      define viewer: [user]\n"
        "tuples:\n  - {user: 'user:anne', relation: viewer, object: 'doc:1'}\n"
        "tests:\n  - name: t\n    check:\n"
        "      - {user: 'user:anne', object: 'doc:1', assertions: {viewer: true}}\n"
    )
    code, loaded = _probe(["fga", "test", str(path)])
    assert code == 0
    assert loaded == "[]"


def test_root_help_still_lists_every_group():
    # --help loads every group (it shows their help), so the server modules come in there.
    code, loaded = _probe(["--help"])
    assert code == 0
    assert "tessera.services" in loaded


def test_version_prints_without_a_command():
    out = subprocess.run(
        [sys.executable, "-m", "tessera.cli.main", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    from tessera import __version__

    assert out.stdout.strip() == __version__
