"""The SDK must install and import without the server's dependencies."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

SDK = Path(__file__).resolve().parents[1]
SERVER_ONLY = {
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "uvicorn",
    "asyncpg",
    "aiosqlite",
    "argon2-cffi",
}


def test_sdk_declares_no_server_dependency() -> None:
    project = tomllib.loads((SDK / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("=")[0].split("[")[0].strip().lower() for dep in project["dependencies"]}
    assert names, "the SDK declares its dependencies"
    assert not names & SERVER_ONLY


def test_sdk_imports_without_server_packages() -> None:
    # Block the server's packages in a fresh interpreter: importing the SDK must not touch them.
    blocked = ", ".join(repr(name) for name in ("fastapi", "starlette", "sqlalchemy", "tessera"))
    code = (
        "import sys\n"
        f"for name in ({blocked},):\n"
        "    sys.modules[name] = None\n"
        "import tessera_sdk\n"
        "print(tessera_sdk.__version__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0.1.0"
