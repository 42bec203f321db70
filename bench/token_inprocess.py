"""CPU time of one token request inside the ASGI app, without an HTTP server or a load generator.

    uv run python bench/token_inprocess.py [--requests 5000] [--rounds 3]

A companion to token_endpoint.py for whoever changes the hot path: on a shared machine wrk's requests/s move
with the neighbours' load, while the process CPU time one request costs inside the app moves much less. It
calls each app directly with the same client-credentials request (client_secret_basic, 32 requests in
flight at a time, as wrk's connections), alternating the apps over the rounds, and prints microseconds of
CPU per request (``time.process_time``, so the database thread counts too):

- ``tessera``: ``tessera.web.app:create_app`` on a SQLite file seeded through the ``tessera`` command line;
- ``tessera-stack``: the same app with its token lane off (``TesseraApp.hot_routes`` emptied), so requests go
  through FastAPI's middleware and routing to the same endpoint: what the lane (tessera/web/hotpath.py) saves;
- ``bare``: bench/bare_token_endpoint.py's Starlette app.

Every response is checked (200 and an access token) so that a failing app cannot look fast.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare_token_endpoint import build_app as build_bare_app
from token_endpoint import (
    RESOURCE,
    SCOPE,
    BenchError,
    TesseraDatabase,
    _cli_json,
    exclusive_machine,
    python_env,
    tessera_cli,
)

CONCURRENCY = 32
HOST_HEADER = b"127.0.0.1:8000"
ISSUER = "http://127.0.0.1:8000"

App = Callable[..., Any]


def basic(client_id: str, secret: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{client_id}:{secret}".encode())


def token_scope(body: bytes, authorization: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/oauth/token",
        "raw_path": b"/oauth/token",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", HOST_HEADER),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", authorization),
            (b"accept", b"application/json"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def one_request(app: App, body: bytes, authorization: bytes) -> None:
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            # Asked again after the whole body: the client is gone, as a server would report it.
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(token_scope(body, authorization), receive, send)
    status = sent[0].get("status") if sent else None
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    if status != 200 or b'"access_token"' not in payload:
        raise BenchError(f"token request answered {status}: {payload[:300]!r}")


async def measure(app: App, body: bytes, authorization: bytes, requests: int) -> float:
    """Microseconds of process CPU per request, CONCURRENCY requests in flight."""
    started = time.process_time()
    done = 0
    while done < requests:
        batch = min(CONCURRENCY, requests - done)
        await asyncio.gather(*(one_request(app, body, authorization) for _ in range(batch)))
        done += batch
    return (time.process_time() - started) / requests * 1e6


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    context = getattr(getattr(app, "router", None), "lifespan_context", None)
    if context is None:
        yield
        return
    async with context(app):
        yield


def seed_tessera(work_dir: Path) -> tuple[dict[str, str], str, str]:
    database = TesseraDatabase(f"sqlite+aiosqlite:///{work_dir / 'tessera.db'}", "SQLite")
    env = python_env()
    env.update(
        TESSERA_ISSUER=ISSUER,
        TESSERA_DATABASE_URL=database.url,
        TESSERA_DATA_DIR=str(work_dir / "data"),
        TESSERA_MASTER_KEY=base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode(),
        TESSERA_LOG_LEVEL="warning",
    )
    migrated = tessera_cli(["db", "upgrade"], env)
    if migrated.returncode != 0:
        raise BenchError(f"`tessera db upgrade` failed:\n{migrated.stdout}{migrated.stderr}")
    _cli_json(["apis", "create", RESOURCE, "--scope", SCOPE], env)
    client = _cli_json(
        ["clients", "create", "bench-client", "--grant-type", "client_credentials", "--scope", SCOPE], env
    )
    return env, str(client["client_id"]), str(client["client_secret"])


def tessera_apps(env: dict[str, str]) -> tuple[Any, Any]:
    os.environ.update({k: v for k, v in env.items() if k.startswith("TESSERA_")})
    from tessera.web.app import create_app

    plain = create_app()
    stacked = create_app()
    stacked.hot_routes.clear()  # every request through FastAPI's stack, as without the lane
    return plain, stacked


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="tessera-inprocess-") as tmp:
        env, client_id, client_secret = seed_tessera(Path(tmp))
        plain, stacked = tessera_apps(env)
        bare_secret = "bare-secret-" + "x" * 32
        bare = build_bare_app(
            issuer=ISSUER, client_id="bench-client", client_secret=bare_secret, resource=RESOURCE, scope=SCOPE
        )
        body = urlencode({"grant_type": "client_credentials", "resource": RESOURCE, "scope": SCOPE}).encode()
        apps: dict[str, tuple[Any, bytes]] = {
            "tessera": (plain, basic(client_id, client_secret)),
            "tessera-stack": (stacked, basic(client_id, client_secret)),
            "bare": (bare, basic("bench-client", bare_secret)),
        }
        apps = {name: app for name, app in apps.items() if name in args.apps}
        results: dict[str, list[float]] = {name: [] for name in apps}
        async with lifespan(plain), lifespan(stacked):
            for app, authorization in apps.values():
                await measure(app, body, authorization, min(1000, args.requests))  # warm-up
            for round_no in range(args.rounds):
                names = list(apps)
                shift = round_no % len(names)
                for name in names[shift:] + names[:shift]:
                    app, authorization = apps[name]
                    results[name].append(await measure(app, body, authorization, args.requests))
        print(f"{args.requests} requests x {args.rounds} rounds, {CONCURRENCY} in flight, CPU us per request")
        print(f"{'app':<14} {'median':>8} {'min':>8}  rounds")
        for name, values in results.items():
            rounds = " ".join(f"{v:.0f}" for v in values)
            print(f"{name:<14} {statistics.median(values):8.1f} {min(values):8.1f}  {rounds}")
        if "bare" in results:
            base = statistics.median(results["bare"])
            for name in ("tessera", "tessera-stack"):
                if name in results:
                    print(f"{name}/bare: {statistics.median(results[name]) / base:.2f}x CPU per request")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per app per round (5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    parser.add_argument(
        "--apps",
        default="tessera,tessera-stack,bare",
        help="comma-separated subset of tessera,tessera-stack,bare (to profile one, run under py-spy)",
    )
    args = parser.parse_args()
    args.apps = {name.strip() for name in args.apps.split(",") if name.strip()}
    if not args.apps or not args.apps <= {"tessera", "tessera-stack", "bare"}:
        parser.error("--apps takes names from tessera, tessera-stack, bare")
    if not 100 <= args.requests <= 1_000_000 or not 1 <= args.rounds <= 100:
        parser.error("--requests 100..1000000, --rounds 1..100")
    try:
        with exclusive_machine():
            return asyncio.run(run(args))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
