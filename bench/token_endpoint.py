"""Token-endpoint benchmark: client credentials, ES256 JWT access tokens, three servers, one load generator.

    uv run python bench/token_endpoint.py [--duration 10] [--rounds 2] [--connections 32]

The three servers, each one process on a free loopback port:

- ``tessera``: Tessera itself (``tessera serve``, or uvicorn on ``tessera.web.app:create_app`` when that
  command does not exist), on a SQLite file in a temporary folder (``--database-url`` points it at a
  PostgreSQL server instead, where the benchmark makes a scratch database and drops it afterwards), seeded
  with one API and one client through the ``tessera`` command line.
- ``oidc-provider``: npm ``oidc-provider`` (bench/oidc-provider/server.mjs) with one client and one resource
  server whose access tokens are ES256 JWTs.
- ``bare``: bench/bare_token_endpoint.py, one Starlette route: the least a Python endpoint can do.

Before measuring, each server must answer a real token request with an ES256 JWT access token (header
``alg: ES256``, ``typ: at+jwt``) whose signature verifies against the server's own JWKS, and must refuse a
wrong secret. Then wrk (1 thread, ``--connections``) POSTs the same client-credentials form with
client_secret_basic to each in turn, warm-up first, the order rotating every round. The table gives
requests/s (successful responses only), p50 and p99 latency (wrk's own histogram, read in the Lua ``done``
hook) and the server's CPU time per request, then the ratios.

Every process started here is stopped on the way out, on failure too. Traffic goes to 127.0.0.1 only, and
every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import jwt

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
OIDC_PROVIDER_DIR = BENCH_DIR / "oidc-provider"
HOST = "127.0.0.1"
RESOURCE = "https://api.bench.test"
SCOPE = "read"
SERVER_NAMES = ("tessera", "oidc-provider", "bare")
READY_TIMEOUT = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

# wrk's Lua hooks: the request is built once (the same bytes every time), and ``done`` prints the summary and
# the latency histogram's percentiles as one JSON line, exact in microseconds.
WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = {authorization}
wrk.headers["Accept"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {{"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"connect":%.0f,"read":%.0f,' ..
    '"write":%.0f,"status":%.0f,"timeout":%.0f,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,' ..
    '"max_us":%.0f,"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


class BenchError(Exception):
    """Something the benchmark cannot go on without; the message says what."""


# ---------------------------------------------------------------------------------------------------------
# Tools: wrk, node modules


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError("wrk is not installed: run `sudo apt-get install -y wrk` (Debian) and try again")
    print("wrk is missing: apt-get install -y wrk", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, timeout=600, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, timeout=600, check=False)
        subprocess.run(install, env=env, timeout=600, check=True)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get install wrk did not put wrk on PATH")
    return found


def ensure_oidc_provider() -> str:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        raise BenchError("node and npm are needed for oidc-provider: apt-get install -y nodejs npm")
    if not (OIDC_PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        print("installing oidc-provider: npm ci in bench/oidc-provider", flush=True)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=OIDC_PROVIDER_DIR,
            timeout=600,
            check=True,
        )
    return node


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------------------------------------------------
# Processes


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads), from /proc."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return float("nan")
        # Fields after the command name, which is in parentheses and may hold spaces: utime is field 14.
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


class Processes:
    """Every process the benchmark starts, stopped in reverse order on the way out."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[Process] = []

    def start(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path) -> Process:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            # Its own session, so that stopping it stops anything it forked too.
            popen = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        process = Process(name, popen, log_path)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            try:
                process.stop()
            except Exception as exc:  # keep stopping the others
                print(f"could not stop {process.name} (pid {process.pid}): {exc}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------
# Servers


@dataclass
class Server:
    name: str
    process: Process
    base_url: str
    issuer: str
    client_id: str
    client_secret: str
    description: str
    token_path: str = "/oauth/token"

    @property
    def token_url(self) -> str:
        return self.base_url + self.token_path

    def form(self) -> dict[str, str]:
        return {"grant_type": "client_credentials", "resource": RESOURCE, "scope": SCOPE}

    def basic_auth(self, secret: str | None = None) -> str:
        # RFC 6749 section 2.3.1: id and secret are form-urlencoded, then joined and base64-encoded.
        raw = f"{_form_escape(self.client_id)}:{_form_escape(secret or self.client_secret)}"
        return "Basic " + base64.b64encode(raw.encode()).decode()


def _form_escape(value: str) -> str:
    return urlencode({"": value})[1:]


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    # Python servers must not buffer their logs (we read them on failure) nor write bytecode next to sources.
    env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def start_bare(procs: Processes) -> Server:
    port = free_port()
    client_id, client_secret = "bench-client", secrets.token_urlsafe(32)
    argv = [
        sys.executable,
        str(BENCH_DIR / "bare_token_endpoint.py"),
        "--port",
        str(port),
        "--client-id",
        client_id,
        # With "=": a random secret may begin with "-", which would read as an option.
        f"--client-secret={client_secret}",
        "--resource",
        RESOURCE,
        "--scope",
        SCOPE,
    ]
    process = procs.start("bare", argv, env=python_env(), cwd=REPO_DIR)
    url = f"http://{HOST}:{port}"
    return Server(
        "bare",
        process,
        url,
        url,
        client_id,
        client_secret,
        "Starlette route on uvicorn (uvloop, httptools): form, SHA-256 secret check, PyJWT ES256",
    )


def start_oidc_provider(procs: Processes) -> Server:
    node = ensure_oidc_provider()
    port = free_port()
    client_id, client_secret = "bench-client", secrets.token_urlsafe(32)
    argv = [
        node,
        "server.mjs",
        "--port",
        str(port),
        "--client-id",
        client_id,
        # With "=": a random secret may begin with "-", which would read as an option.
        f"--client-secret={client_secret}",
        "--resource",
        RESOURCE,
        "--scope",
        SCOPE,
    ]
    env = dict(os.environ, NODE_ENV="production")
    process = procs.start("oidc-provider", argv, env=env, cwd=OIDC_PROVIDER_DIR)
    url = f"http://{HOST}:{port}"
    package = OIDC_PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json"
    version = json.loads(package.read_text())["version"]
    return Server(
        "oidc-provider",
        process,
        url,
        url,
        client_id,
        client_secret,
        f"oidc-provider {version} on node {_node_version(node)}, memory adapter, JWT access tokens (ES256)",
    )


def _node_version(node: str) -> str:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False)
    return out.stdout.strip()


@dataclass
class TesseraDatabase:
    url: str
    description: str
    drop: list[str] = field(default_factory=list)  # PostgreSQL scratch databases to drop at the end
    admin_dsn: str = ""


def tessera_database(args: argparse.Namespace, work_dir: Path) -> TesseraDatabase:
    if not args.database_url:
        return TesseraDatabase(f"sqlite+aiosqlite:///{work_dir / 'tessera.db'}", "SQLite (temporary file)")
    given = urlsplit(args.database_url)
    if not given.scheme.startswith("postgresql"):
        raise BenchError("--database-url takes a postgresql+asyncpg:// URL (SQLite is the default)")
    # A scratch database on that server, so the benchmark's client and API land nowhere anyone uses.
    name = f"tessera_bench_{secrets.token_hex(4)}"
    admin_dsn = urlunsplit(given._replace(scheme="postgresql"))
    asyncio.run(_pg_execute(admin_dsn, f'CREATE DATABASE "{name}"'))
    url = urlunsplit(given._replace(scheme="postgresql+asyncpg", path=f"/{name}"))
    return TesseraDatabase(url, f"PostgreSQL ({given.hostname}, scratch database)", [name], admin_dsn)


def drop_tessera_database(database: TesseraDatabase) -> None:
    for name in database.drop:
        try:
            asyncio.run(_pg_execute(database.admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:
            print(f"could not drop scratch database {name}: {exc}", file=sys.stderr)


async def _pg_execute(dsn: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(statement, timeout=30)
    finally:
        await connection.close()


def tessera_cli(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tessera.cli.main", *argv],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _cli_json(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    result = tessera_cli([*argv, "--json"], env)
    if result.returncode != 0:
        raise BenchError(f"`tessera {' '.join(argv)}` failed:\n{result.stdout}{result.stderr}")
    record: dict[str, Any] = json.loads(result.stdout)
    return record


def start_tessera(
    procs: Processes, database: TesseraDatabase, work_dir: Path, factory: str | None = None
) -> Server:
    port = free_port()
    url = f"http://{HOST}:{port}"
    env = python_env()
    env.update(
        TESSERA_ISSUER=url,
        TESSERA_DATABASE_URL=database.url,
        TESSERA_DATA_DIR=str(work_dir / "data"),
        TESSERA_MASTER_KEY=base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode(),
        TESSERA_HOST=HOST,
        TESSERA_PORT=str(port),
        TESSERA_WORKERS="1",
        TESSERA_LOG_LEVEL="warning",
    )
    # Seed through the public command line, as an operator would (interfaces.md).
    migrated = tessera_cli(["db", "upgrade"], env)
    if migrated.returncode != 0:
        raise BenchError(f"`tessera db upgrade` failed:\n{migrated.stdout}{migrated.stderr}")
    _cli_json(["apis", "create", RESOURCE, "--scope", SCOPE], env)
    client = _cli_json(
        ["clients", "create", "bench-client", "--grant-type", "client_credentials", "--scope", SCOPE], env
    )
    try:
        client_id, client_secret = str(client["client_id"]), str(client["client_secret"])
    except KeyError as exc:
        raise BenchError(f"`tessera clients create --json` printed no {exc}: {client}") from exc

    has_serve = tessera_cli(["serve", "--help"], env).returncode == 0
    if factory is not None:
        # An experiment: another app factory (a file path or a module), same settings, same server options.
        target, _, function = factory.rpartition(":")
        if not target or not function:
            raise BenchError("--tessera-factory takes FILE.py:FUNCTION or MODULE:FUNCTION")
        app_dir = str(REPO_DIR)
        if target.endswith(".py"):
            app_dir, target = str(Path(target).resolve().parent), Path(target).stem
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"{target}:{function}",
            "--app-dir",
            app_dir,
            "--host",
            HOST,
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), env.get("PYTHONPATH")]))
        how = f"uvicorn --factory {factory} (experiment)"
    elif has_serve:
        argv = [sys.executable, "-m", "tessera.cli.main", "serve", "--host", HOST, "--port", str(port)]
        how = "tessera serve"
    else:
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "tessera.web.app:create_app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        how = "uvicorn --factory tessera.web.app:create_app"
    process = procs.start("tessera", argv, env=env, cwd=REPO_DIR)
    return Server(
        "tessera", process, url, url, client_id, client_secret, f"{how}, one process, {database.description}"
    )


def wait_ready(server: Server, deadline_s: float = READY_TIMEOUT) -> None:
    """Until the server answers a real token request with 200 (it may be migrating or compiling)."""
    deadline = time.monotonic() + deadline_s
    last = "no answer"
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if not server.process.alive():
                raise BenchError(f"{server.name} exited during start-up:\n{server.process.log_tail()}")
            try:
                response = client.post(
                    server.token_url, data=server.form(), headers={"Authorization": server.basic_auth()}
                )
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code != 503:
                    break  # it is up, and it refuses: no point in waiting
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.2)
    raise BenchError(
        f"{server.name} did not issue a token at {server.token_url}: {last}\n{server.process.log_tail()}"
    )


def verify(server: Server) -> str:
    """Prove the server does the real work: an ES256 RFC 9068 JWT that verifies; a wrong secret refused."""
    with httpx.Client(timeout=10) as client:
        response = client.post(
            server.token_url, data=server.form(), headers={"Authorization": server.basic_auth()}
        )
        if response.status_code != 200:
            raise BenchError(f"{server.name}: token request answered {response.status_code}: {response.text}")
        body = response.json()
        if str(body.get("token_type", "")).lower() != "bearer":
            raise BenchError(f"{server.name}: token_type is {body.get('token_type')!r}, not Bearer")
        token = body.get("access_token")
        if not isinstance(token, str) or token.count(".") != 2:
            raise BenchError(f"{server.name}: access_token is not a JWS compact serialization: {token!r}")
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "ES256":
            raise BenchError(f"{server.name}: access token alg is {header.get('alg')!r}, not ES256")
        # RFC 9068 section 2.1: typ "at+jwt" (the "application/" prefix may be left out).
        if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise BenchError(f"{server.name}: access token typ is {header.get('typ')!r}, not at+jwt")
        jwks = _fetch_jwks(client, server)
        candidates = [k for k in jwks.get("keys", []) if header.get("kid") in (None, k.get("kid"))]
        if not candidates:
            raise BenchError(f"{server.name}: no key with kid {header.get('kid')!r} in its JWKS")
        key = jwt.PyJWK(candidates[0], algorithm="ES256").key
        claims = jwt.decode(
            token, key, algorithms=["ES256"], audience=RESOURCE, issuer=server.issuer, leeway=5
        )
        if claims.get("client_id") != server.client_id:
            raise BenchError(f"{server.name}: client_id claim {claims.get('client_id')!r} is not the client")
        refused = client.post(
            server.token_url,
            data=server.form(),
            headers={"Authorization": server.basic_auth(secret=server.client_secret + "x")},
        )
        if refused.status_code != 401 or refused.json().get("error") != "invalid_client":
            raise BenchError(
                f"{server.name}: a wrong secret got {refused.status_code} {refused.text[:200]}, "
                "not 401 invalid_client"
            )
    return f"alg={header['alg']} typ={header['typ']} aud={claims['aud']} scope={claims.get('scope')!r}"


def _fetch_jwks(client: httpx.Client, server: Server) -> dict[str, Any]:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        response = client.get(server.base_url + path)
        if response.status_code == 200:
            jwks_uri = response.json().get("jwks_uri")
            if jwks_uri:
                if urlsplit(jwks_uri).hostname != HOST:
                    raise BenchError(f"{server.name}: jwks_uri {jwks_uri} is not on loopback")
                keys: dict[str, Any] = client.get(jwks_uri).raise_for_status().json()
                return keys
    raise BenchError(f"{server.name}: no metadata document with a jwks_uri")


# ---------------------------------------------------------------------------------------------------------
# Load


@dataclass
class Run:
    server: str
    round: int
    requests: int
    ok: int
    errors: dict[str, int]
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else float("nan")


def write_wrk_script(server: Server, work_dir: Path) -> Path:
    path = work_dir / f"wrk-{server.name}.lua"
    body = urlencode(server.form())
    path.write_text(WRK_SCRIPT.format(body=_lua_string(body), authorization=_lua_string(server.basic_auth())))
    return path


def _lua_string(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9+/=%._~:&\- ]*", value):
        raise BenchError(f"unexpected characters for the Lua script: {value!r}")
    return f'"{value}"'


def run_wrk(
    wrk: str, server: Server, script: Path, *, seconds: int, connections: int, threads: int, round_no: int
) -> Run:
    if not server.process.alive():
        raise BenchError(f"{server.name} is no longer running:\n{server.process.log_tail()}")
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        server.token_url,
    ]
    cpu_before = server.process.cpu_seconds()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    cpu_after = server.process.cpu_seconds()
    if result.returncode != 0:
        raise BenchError(f"wrk failed against {server.name}:\n{result.stdout}{result.stderr}")
    match = re.search(r"^WRK_RESULT (\{.*\})$", result.stdout, re.MULTILINE)
    if not match:
        raise BenchError(f"wrk printed no WRK_RESULT line:\n{result.stdout}{result.stderr}")
    data = json.loads(match.group(1))
    errors = {k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout") if data[k]}
    requests = int(data["requests"])
    return Run(
        server=server.name,
        round=round_no,
        requests=requests,
        ok=requests - int(data["status"]),
        errors=errors,
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        cpu_s=cpu_after - cpu_before,
    )


@dataclass
class Summary:
    server: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    errors: int
    rounds: int


def summarize(runs: list[Run]) -> Summary:
    # Throughput over all rounds; latency percentiles as the median of the rounds' (wrk histograms of
    # separate runs cannot be merged).
    return Summary(
        server=runs[0].server,
        rps=sum(r.ok for r in runs) / sum(r.seconds for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        cpu_us=sum(r.cpu_s for r in runs) / sum(r.requests for r in runs) * 1e6,
        errors=sum(sum(r.errors.values()) for r in runs),
        rounds=len(runs),
    )


# ---------------------------------------------------------------------------------------------------------
# Profiling (an extra, unmeasured run: sampling slows the process down)


PROFILE_RATE = 250  # samples a second


def profile_server(
    wrk: str, server: Server, script: Path, out_dir: Path, *, seconds: int, connections: int
) -> tuple[Path, Run]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise BenchError("py-spy is missing: flock /tmp/tessera-uv.lock uv add --dev py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"{server.name}.collapsed.txt"
    recorder = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(server.process.pid),
            "--duration",
            str(seconds),
            "--rate",
            str(PROFILE_RATE),
            # Only samples of a thread holding the GIL: idle threads (the SQLite worker waiting on its
            # queue) would otherwise fill the profile with time that costs nothing.
            "--gil",
            "--format",
            "raw",
            "--output",
            str(raw),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(0.5)
        run = run_wrk(wrk, server, script, seconds=seconds, connections=connections, threads=1, round_no=0)
        output, _ = recorder.communicate(timeout=seconds + 60)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait(timeout=10)
    if recorder.returncode != 0 or not raw.exists():
        raise BenchError(f"py-spy record failed:\n{output}")
    return raw, run


# Where a sample's innermost frame lives says which layer spent the time; the first match wins.
LAYERS = (
    ("JWT signing (joserfc, PyJWT, cryptography)", ("joserfc/", "jwt/", "cryptography/")),
    ("database (SQLAlchemy, aiosqlite, asyncpg)", ("sqlalchemy/", "aiosqlite/", "asyncpg/", "sqlite3/")),
    ("form and JSON (python-multipart, json, urllib.parse)", ("multipart/", "json/", "urllib/")),
    ("validation (pydantic)", ("pydantic/", "pydantic_core/")),
    ("metrics and logging", ("prometheus_client/", "logging/")),
    ("tessera", ("tessera/",)),
    ("FastAPI and Starlette (routing, middleware, requests)", ("fastapi/", "starlette/", "anyio/")),
    ("HTTP server (uvicorn, httptools)", ("uvicorn/", "httptools/")),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop/", "contextvars", "selectors")),
)


# The token request's steps, by the function that does each (a step whose function is not found is left out).
HOT_PATH_STEPS = (
    ("the whole app", "FastAPI.__call__"),
    ("route matching in included routers", "_IncludedRouter.matches"),
    ("the endpoint", "router.<locals>.token"),
    ("form parsing", "router.<locals>.params_of"),
    ("client authentication", "OAuthServer.authenticate_client"),
    ("the grant", "ClientCredentialsGrant.handle"),
    ("JWT signing", "KeyRing.sign"),
    ("response body", "_json"),
    ("sending the response", "Response.__call__"),
    ("audit events written in batches", "AuditBuffer.flush"),
)


def _layer(frame: str) -> str:
    for name, markers in LAYERS:
        if any(marker in frame for marker in markers):
            return name
    return "other (Python runtime, stdlib)"


def print_profile(server_name: str, raw: Path, run: Run, top: int = 20) -> None:
    """Where a Python server's CPU goes: by layer, then by function, from py-spy's collapsed stacks.

    A sample stands for 1/PROFILE_RATE s of a thread holding the GIL; spread over the requests of the
    profiled run, that gives microseconds of Python time per request (sampling slows the server down, so
    the sum is above the measured CPU time; the shares are what to read).
    """
    self_counts: dict[str, int] = {}
    total_counts: dict[str, int] = {}
    layers: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf = _frame(frames[-1])
        self_counts[leaf] = self_counts.get(leaf, 0) + count
        layer = _layer(frames[-1])
        layers[layer] = layers.get(layer, 0) + count
        for function in {_frame(f) for f in frames}:
            total_counts[function] = total_counts.get(function, 0) + count
    if not total or not run.requests:
        print(f"profile of {server_name}: no samples")
        return
    per_request = 1e6 / PROFILE_RATE / run.requests  # microseconds a sample stands for, per request

    def cells(count: int) -> str:
        return f"{100 * count / total:6.1f} {count * per_request:7.1f}"

    print(
        f"\nprofile of {server_name} under load: {total} samples holding the GIL over {run.requests} "
        f"requests ({run.rps:.0f} req/s while sampled; {raw})"
    )
    print(f"  {'self %':>6} {'us/req':>7}  layer (by the innermost frame of each sample)")
    for layer, count in sorted(layers.items(), key=lambda item: -item[1]):
        print(f"  {cells(count)}  {layer}")
    print(f"\n  {'self %':>6} {'us/req':>7}  function (file), the {top} with the most self time")
    for function in sorted(self_counts, key=lambda n: (-self_counts[n], n))[:top]:
        print(f"  {cells(self_counts[function])}  {function}")
    steps = [
        (label, n) for label, prefix in HOT_PATH_STEPS for n in total_counts if n.startswith(prefix + " (")
    ]
    if steps:
        print(
            f"\n  {'incl %':>6} {'us/req':>7}  steps of the token request (inclusive; nested steps overlap)"
        )
        for label, function in steps:
            print(f"  {cells(total_counts[function])}  {label}: {function}")
    ours = [n for n in total_counts if "(tessera/" in n and "(tessera/cli/" not in n]
    if ours:
        print(f"\n  {'incl %':>6} {'us/req':>7}  tessera functions, inclusive")
        for function in sorted(ours, key=lambda n: (-total_counts[n], n))[:top]:
            print(f"  {cells(total_counts[function])}  {function}")
    framework = [n for n in total_counts if "(fastapi/" in n or "(starlette/" in n]
    print(f"\n  {'incl %':>6} {'us/req':>7}  FastAPI and Starlette functions, inclusive, the 12 largest")
    for function in sorted(framework, key=lambda n: (-total_counts[n], n))[:12]:
        print(f"  {cells(total_counts[function])}  {function}")


def _frame(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; drop the line so a function is one row.
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.replace(str(REPO_DIR) + "/", "")
    return f"{name} ({path})"


# ---------------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each runs every server once (2)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load per server (3)")
    parser.add_argument(
        "--servers",
        default=",".join(SERVER_NAMES),
        help="comma-separated subset of tessera,oidc-provider,bare (all three by default)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="postgresql+asyncpg://user@host/db: run Tessera on that PostgreSQL server, in a scratch "
        "database made and dropped by the benchmark (default: SQLite in a temporary folder)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="after measuring, sample each Python server with py-spy during one more (unmeasured) run and "
        "print where its time goes; the raw stacks go to DIR",
    )
    parser.add_argument(
        "--tessera-factory",
        default=None,
        metavar="FILE.py:FUNCTION",
        help="experiments: serve Tessera from this app factory with uvicorn instead of `tessera serve`",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write results as JSON")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SERVER_NAMES))
    if unknown or not names:
        parser.error(f"--servers takes names from {', '.join(SERVER_NAMES)}")
    args.servers = [n for n in SERVER_NAMES if n in names]
    for name in ("duration", "rounds", "connections", "threads"):
        if not 1 <= getattr(args, name) <= 3600:
            parser.error(f"--{name} must be between 1 and 3600")
    if not 0 <= args.warmup <= 600:
        parser.error("--warmup must be between 0 and 600")
    if args.profile is not None and not {"tessera", "bare"} & set(args.servers):
        parser.error("--profile samples the Python servers: tessera or bare must be among --servers")
    return args


LOCK_PATH = Path(tempfile.gettempdir()) / "tessera-bench.lock"
LOCK_WAIT = 900.0  # seconds


@contextlib.contextmanager
def exclusive_machine(wait_s: float = LOCK_WAIT) -> Iterator[None]:
    """One benchmark run at a time on this machine: two at once would each measure the other's load."""
    import fcntl

    with LOCK_PATH.open("a+") as handle:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BenchError(f"another benchmark held {LOCK_PATH} for {wait_s:.0f} s") from None
                if not told:
                    print(f"waiting for another benchmark run to finish ({LOCK_PATH})", flush=True)
                    told = True
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _signals_as_exit() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the cleanup in ``finally`` runs."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = ensure_wrk()
    if "oidc-provider" in args.servers:
        ensure_oidc_provider()
    try:
        with _signals_as_exit(), exclusive_machine():
            return run(args, wrk)
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'Ctrl-C'})", file=sys.stderr)
        return 130


def run(args: argparse.Namespace, wrk: str) -> int:
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as tmp:
        work_dir = Path(tmp)
        procs = Processes(work_dir)
        database: TesseraDatabase | None = None
        try:
            servers: list[Server] = []
            for name in args.servers:
                if name == "tessera":
                    database = tessera_database(args, work_dir)
                    servers.append(start_tessera(procs, database, work_dir, args.tessera_factory))
                elif name == "oidc-provider":
                    servers.append(start_oidc_provider(procs))
                else:
                    servers.append(start_bare(procs))
            return measure(args, wrk, servers, work_dir)
        except BenchError as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt as exc:
            print(f"\ninterrupted ({exc or 'Ctrl-C'}): stopping every server", file=sys.stderr)
            return 130
        finally:
            procs.stop_all()
            if database is not None:
                drop_tessera_database(database)


def measure(args: argparse.Namespace, wrk: str, servers: list[Server], work_dir: Path) -> int:
    for server in servers:
        wait_ready(server)
        print(f"{server.name:<14} {server.description}")
        print(f"{'':<14} pid {server.process.pid}, {server.token_url}, verified: {verify(server)}")
    scripts = {s.name: write_wrk_script(s, work_dir) for s in servers}
    load = os.getloadavg()
    print(
        f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"tessera at {_git_revision()}; load average {load[0]:.2f} at start"
    )
    print(
        f"wrk {args.threads} thread, {args.connections} connections, {args.duration} s x {args.rounds} "
        f"rounds, warm-up {args.warmup} s; client_secret_basic"
    )
    for server in servers:
        if args.warmup:
            run_wrk(
                wrk,
                server,
                scripts[server.name],
                seconds=args.warmup,
                connections=args.connections,
                threads=args.threads,
                round_no=0,
            )
    runs: dict[str, list[Run]] = {s.name: [] for s in servers}
    for round_no in range(1, args.rounds + 1):
        # Rotate the order, so no server always runs first (or right after the same neighbour).
        shift = (round_no - 1) % len(servers)
        for server in servers[shift:] + servers[:shift]:
            run = run_wrk(
                wrk,
                server,
                scripts[server.name],
                seconds=args.duration,
                connections=args.connections,
                threads=args.threads,
                round_no=round_no,
            )
            runs[server.name].append(run)
            errors = ", ".join(f"{k} {v}" for k, v in run.errors.items()) or "none"
            print(
                f"  round {round_no} {run.server:<14} {run.rps:9.1f} req/s  p50 {run.p50_ms:6.2f} ms  "
                f"p99 {run.p99_ms:6.2f} ms  cpu {run.cpu_us_per_request:6.0f} us/req  errors {errors}"
            )
    summaries = {name: summarize(rs) for name, rs in runs.items()}
    print_table(summaries)
    failed = [s.server for s in summaries.values() if s.errors > 0.001 * s.rps * args.duration * s.rounds]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "cores": os.cpu_count(),
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "servers": {s.name: s.description for s in servers},
                    "runs": [r.__dict__ for rs in runs.values() for r in rs],
                    "summary": {k: v.__dict__ for k, v in summaries.items()},
                },
                indent=2,
            )
        )
    if args.profile is not None:
        # Python servers only (py-spy); each in one more run, unmeasured, because sampling slows it down.
        for server in servers:
            if server.name == "oidc-provider":
                continue
            raw, profiled = profile_server(
                wrk,
                server,
                scripts[server.name],
                args.profile,
                seconds=args.duration,
                connections=args.connections,
            )
            print_profile(server.name, raw, profiled)
    if failed:
        print(f"\nmore than 0.1% of requests failed on: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _git_revision() -> str:
    """The commit the servers ran from, marked when the work tree had changes (they ran too)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "tessera"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return f"{head or 'unknown commit'}{' + uncommitted changes' if dirty else ''}"


def print_table(summaries: dict[str, Summary]) -> None:
    print(f"\n{'server':<14} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'cpu us/req':>11} {'errors':>7}")
    for s in summaries.values():
        print(f"{s.server:<14} {s.rps:11.1f} {s.p50_ms:8.2f} {s.p99_ms:8.2f} {s.cpu_us:11.0f} {s.errors:7d}")
    tessera = summaries.get("tessera")
    if tessera is None:
        others = list(summaries.values())
        if len(others) == 2:
            a, b = others
            print(f"\n{b.server}/{a.server}: {b.rps / a.rps:.2f}x requests/s, p99 {b.p99_ms / a.p99_ms:.2f}x")
        return
    print()
    for other in ("oidc-provider", "bare"):
        peer = summaries.get(other)
        if peer is not None:
            print(
                f"tessera/{other}: {tessera.rps / peer.rps:.2f}x requests/s, "
                f"p99 {tessera.p99_ms / peer.p99_ms:.2f}x"
            )
    op = summaries.get("oidc-provider")
    if op is not None:
        met = tessera.rps >= 1.3 * op.rps and tessera.p99_ms < op.p99_ms
        print(f"goal (>= 1.30x oidc-provider requests/s and a lower p99): {'met' if met else 'not met'}")


if __name__ == "__main__":
    sys.exit(main())
