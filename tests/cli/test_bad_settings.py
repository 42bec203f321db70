"""A wrong setting or an unreachable database is the user's input: every command says so in one line and exits
non-zero, through the real ``tessera`` entry point (``main()``, where the handler lives), never with a
traceback, and never prints a database password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tessera.settings import Settings

from ..conftest import free_port, require_postgres


def tessera(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tessera.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def said_in_one_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u:p@h:5433/db", "postgresql+asyncpg://u:p@h:5433/db"),
        ("POSTGRESQL://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_urls_without_the_async_driver_get_it(given: str, expected: str) -> None:
    assert Settings(database_url=given).database_url == expected


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/db", "postgresql+psycopg2://u@h/db", "/var/lib/tessera.db", ""]
)
def test_other_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="database"):
        Settings(database_url=url)


def test_an_unsupported_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = tessera("db", "upgrade", "--database-url", "mysql://root@localhost/db", cwd=tmp_path)
    assert result.returncode == 2
    said_in_one_line(result, "TESSERA_DATABASE_URL", "unsupported database 'mysql'", "postgresql+asyncpg://")


def test_an_out_of_range_setting_from_the_environment_names_its_variable(tmp_path: Path) -> None:
    result = tessera(
        "users",
        "list",
        "--database-url",
        f"sqlite+aiosqlite:///{tmp_path}/t.db",
        env={"TESSERA_ACCESS_TOKEN_TTL": "5"},
        cwd=tmp_path,
    )
    assert result.returncode == 2
    said_in_one_line(result, "TESSERA_ACCESS_TOKEN_TTL", "greater than or equal to 30")


@pytest.mark.parametrize("command", [("db", "upgrade"), ("users", "list"), ("serve", "--port", "1")])
def test_a_refused_connection_is_one_line_without_the_password(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    # Nothing listens on a port just freed: the connection is refused, as with a stopped server.
    url = f"postgresql://tessera:hunter2@127.0.0.1:{free_port()}/tessera"
    result = tessera(*command, "--database-url", url, cwd=tmp_path)
    assert result.returncode == 1
    line = said_in_one_line(result, "cannot open the database", "tessera:***@127.0.0.1")
    assert "hunter2" not in result.stderr + result.stdout, line


def test_a_missing_postgresql_database_is_named(tmp_path: Path) -> None:
    require_postgres()
    result = tessera(
        "db", "upgrade", "--database-url", "postgresql://127.0.0.1:5432/tessera_no_such_db", cwd=tmp_path
    )
    assert result.returncode == 1
    said_in_one_line(result, "cannot open the database", 'database "tessera_no_such_db" does not exist')


def test_a_database_file_whose_folder_cannot_exist_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = tessera("db", "upgrade", "--database-url", f"sqlite:///{blocker}/tessera.db", cwd=tmp_path)
    assert result.returncode == 1
    said_in_one_line(result, "cannot create the folder of the database file", str(blocker))


def test_a_plain_sqlite_url_works_end_to_end(tmp_path: Path) -> None:
    result = tessera("db", "upgrade", "--database-url", f"sqlite:///{tmp_path}/plain.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "database is up to date: sqlite+aiosqlite:///" in result.stdout
    assert (tmp_path / "plain.db").stat().st_size > 0
