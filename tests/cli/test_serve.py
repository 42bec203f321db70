"""``tessera serve`` and ``tessera dev`` as real subprocesses: https with the local CA, several workers."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tessera.cli.main import app
from tessera.cli.serve import DEMO_EMAIL, _default_issuer, export_settings, seed_demo
from tessera.cli.tls import ensure_dev_tls
from tessera.core.sealing import generate_master_key
from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.migrate import upgrade
from tests.conftest import free_port

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TESSERA_")}
    env.update(extra)
    return env


@contextmanager
def running(
    args: list[str], cwd: Path, env: dict[str, str]
) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """Start ``python -m tessera.cli.main ARGS``; yield its output file and process; stop it."""
    log = cwd / f"server-{len(list(cwd.glob('server-*.log')))}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tessera.cli.main", *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield log, process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_healthy(url: str, log: Path, *, verify: ssl.SSLContext | bool = True, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", verify=verify, timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"server did not answer ({last}); output:\n{log.read_text()}")


def worker_processes(pid: int) -> list[int]:
    """Children of ``pid`` that are multiprocessing workers (not its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
                found.append(int(entry.name))
    return found


def sign_in(http: httpx.Client, email: str, password: str) -> httpx.Response:
    page = http.get("/login")
    token = CSRF.search(page.text)
    assert token, page.text
    return http.post("/login", data={"csrf_token": token.group(1), "email": email, "password": password})


def test_dev_tls_serves_https_that_trusts_only_the_local_ca(tmp_path: Path) -> None:
    port = free_port()
    with running(["dev", "--port", str(port), "--tls"], tmp_path, clean_env()) as (log, _):
        ca_file = tmp_path / ".tessera" / "tls" / "ca.pem"
        deadline = time.monotonic() + 60
        while not ca_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        only_our_ca = ssl.create_default_context(cafile=str(ca_file))
        url = f"https://127.0.0.1:{port}"
        wait_healthy(url, log, verify=only_our_ca)
        assert httpx.get(f"https://localhost:{port}/healthz", verify=only_our_ca).json() == {"status": "ok"}
        # The system's trust store does not know the local CA: the certificate really is ours.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", verify=ssl.create_default_context())

        output = log.read_text()
        assert str(ca_file.resolve()) in output and "SSL_CERT_FILE" in output
        assert f"{url}/login" in output and f"{url}/.well-known/openid-configuration" in output
        assert f"{url}/.well-known/jwks.json" in output
        # Every URL the summary prints answers.
        printed_urls = set()
        for line in output.splitlines():
            key = line.strip().split("  ")[0]
            # Example commands hold endpoints to POST to, and API base URLs are not pages: skip those.
            if "curl " not in line and key not in {"api", "try"}:
                printed_urls.update(re.findall(r"https://127\.0\.0\.1:\d+/\S*", line))
        for printed in sorted(printed_urls):
            assert httpx.get(printed, verify=only_our_ca).status_code == 200, printed
        password = re.search(r"password\s+(\S+)", output)
        assert password and DEMO_EMAIL in output

        # The printed demo agent credentials get a token for the demo API, as the printed curl does.
        agent_secret = re.search(r"client_secret\s+(\S+)", output)
        assert agent_secret
        token = httpx.post(
            f"{url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "resource": "urn:tessera:demo-api",
                "scope": "demo:read",
            },
            auth=("demo-agent", agent_secret.group(1)),
            verify=only_our_ca,
        )
        assert token.status_code == 200, token.text
        assert token.json()["scope"] == "demo:read"

        with httpx.Client(base_url=url, verify=only_our_ca) as http:
            signed_in = sign_in(http, DEMO_EMAIL, password.group(1))
        assert signed_in.status_code == 303
        cookie = next(v for v in signed_in.headers.get_list("set-cookie") if v.startswith("tessera_session="))
        assert "secure" in cookie.lower() and "httponly" in cookie.lower()
        first_ca = ca_file.read_bytes()

    # The next start reuses the CA (nothing new to trust) and prints the same demo password.
    with running(["dev", "--port", str(port), "--tls"], tmp_path, clean_env()) as (log, _):
        wait_healthy(f"https://127.0.0.1:{port}", log, verify=only_our_ca)
        assert ca_file.read_bytes() == first_ca
        assert password.group(1) in log.read_text()


def test_dev_serves_https_with_a_given_certificate(tmp_path: Path) -> None:
    # A certificate the developer already has (here: one from another local CA) instead of --tls's own.
    given = ensure_dev_tls(tmp_path / "mine")
    trust = ssl.create_default_context(cafile=str(given.ca_file))
    port = free_port()
    args = ["dev", "--port", str(port), "--tls-cert", str(given.cert_file), "--tls-key", str(given.key_file)]
    with running(args, tmp_path, clean_env()) as (log, _):
        url = f"https://127.0.0.1:{port}"
        wait_healthy(url, log, verify=trust)
        discovery = httpx.get(f"{url}/.well-known/openid-configuration", verify=trust).json()
        assert discovery["issuer"] == url and discovery["token_endpoint"] == f"{url}/oauth/token"
        output = log.read_text()
        assert str(given.cert_file.resolve()) in output and f"{url}/login" in output
    assert not (tmp_path / ".tessera" / "tls").exists()  # no local CA was made

    runner = CliRunner()
    half = runner.invoke(app, ["dev", "--tls-cert", str(given.cert_file)])
    assert half.exit_code != 0 and "--tls-key" in half.output
    both = runner.invoke(
        app, ["dev", "--tls", "--tls-cert", str(given.cert_file), "--tls-key", str(given.key_file)]
    )
    assert both.exit_code != 0 and "not both" in both.output


@pytest.mark.postgres
def test_serve_with_two_workers_over_tls_shares_one_database(tmp_path: Path, postgres_url: str) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app,
        ["users", "create", "worker@example.com", "--password-stdin", "--database-url", postgres_url],
        input="two workers, one db\n",
    )
    assert created.exit_code == 0, created.output
    tls = ensure_dev_tls(tmp_path / "tls")
    trust = ssl.create_default_context(cafile=str(tls.ca_file))
    port = free_port()
    # Only the master key comes from the environment; the rest are flags the workers must receive.
    env = clean_env(TESSERA_MASTER_KEY=generate_master_key())
    args = [
        "serve",
        "--workers", "2",
        "--port", str(port),
        "--database-url", postgres_url,
        "--tls-cert", str(tls.cert_file),
        "--tls-key", str(tls.key_file),
        "--log-level", "warning",
    ]  # fmt: skip
    with running(args, tmp_path, env) as (log, process):
        url = f"https://127.0.0.1:{port}"
        wait_healthy(url, log, verify=trust)
        with httpx.Client(base_url=url, verify=trust) as http:
            assert http.get("/readyz").json() == {"status": "ok"}
            response = sign_in(http, "worker@example.com", "two workers, one db")
            assert response.status_code == 303, log.read_text()
            # Every request, whichever worker takes it, finds the session in the shared database.
            for _ in range(20):
                page = http.get("/login", headers={"connection": "close"})
                assert "You are signed in" in page.text
        assert len(worker_processes(process.pid)) == 2
    # The workers used the flag's database, not a default one in the working directory.
    assert not (tmp_path / ".tessera" / "tessera.db").exists()


def test_serve_refuses_half_a_tls_configuration(tmp_path: Path) -> None:
    tls = ensure_dev_tls(tmp_path / "tls")
    result = CliRunner().invoke(app, ["serve", "--tls-cert", str(tls.cert_file)])
    assert result.exit_code != 0 and "--tls-key" in result.output


def test_settings_reach_workers_through_the_environment(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://u@db/x",
        port=9000,
        workers=3,
        issuer="https://id.example",
        data_dir=tmp_path,
    )
    environ: dict[str, str] = {}
    export_settings(settings, environ=environ)
    assert environ["TESSERA_DATABASE_URL"] == "postgresql+asyncpg://u@db/x"
    assert environ["TESSERA_AUTO_MIGRATE"] == "true"
    assert "TESSERA_REDIS_URL" not in environ and "TESSERA_MASTER_KEY" not in environ
    old = dict(os.environ)
    try:
        os.environ.update(environ)
        again = Settings()
    finally:
        os.environ.clear()
        os.environ.update(old)
    for name in ("database_url", "port", "workers", "issuer", "data_dir", "auto_migrate"):
        assert getattr(again, name) == getattr(settings, name)
    assert _default_issuer("0.0.0.0", 8443, tls=True) == "https://127.0.0.1:8443"
    assert _default_issuer("::1", 80, tls=False) == "http://[::1]:80"


async def test_seed_demo_is_idempotent_and_repairs_a_lost_password(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", data_dir=tmp_path)
    services = Services(settings)
    try:
        await upgrade(services.db)
        first = await seed_demo(services)
        second = await seed_demo(services)
        assert first == second
        user = first["Demo user"]
        assert user["email"] == DEMO_EMAIL and len(user["password"]) >= 16
        assert oct((tmp_path / "demo-secrets.json").stat().st_mode & 0o777) == "0o600"
        (tmp_path / "demo-secrets.json").unlink()
        third = await seed_demo(services)
        assert third["Demo user"]["user_id"] == user["user_id"]
        assert third["Demo user"]["password"] != user["password"]
        assert await services.users.verify_password(DEMO_EMAIL, third["Demo user"]["password"]) is not None
        assert await services.users.verify_password(DEMO_EMAIL, user["password"]) is None

        agent = third["Demo agent (confidential client)"]
        stored = await services.oauth.client_store.get(agent["client_id"])
        assert stored is not None and stored.secret_matches(agent["client_secret"], datetime.now(UTC))
        assert not stored.secret_matches("wrong", datetime.now(UTC))
        app = await services.oauth.client_store.get(third["Demo app (public client, PKCE)"]["client_id"])
        assert app is not None and app.is_public and app.client_secret_hash is None
        assert await services.oauth.api_store.get(third["Demo API"]["identifier"]) is not None
        demo_store = third["Demo FGA store (OpenFGA API)"]
        assert demo_store == first["Demo FGA store (OpenFGA API)"]  # the same store every start
        assert (await services.fga.get_store(demo_store["store_id"])).name == "demo"
    finally:
        await services.aclose()


def test_serve_reads_the_environment_and_can_skip_migrations(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        TESSERA_PORT=str(port),
        TESSERA_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'env.db'}",
        TESSERA_DATA_DIR=str(tmp_path / "data"),
        TESSERA_MIGRATE="false",
    )
    with running(["serve"], tmp_path, env) as (log, _):
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, log)
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503 and ready.json()["reason"] == "migrations pending"
    assert (tmp_path / "data" / "master.key").exists()  # the embedded setup made its key once, up front
    assert "http://127.0.0.1:" + str(port) in log.read_text()
