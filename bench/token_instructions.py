"""Instructions per token request, counted by valgrind (callgrind): a figure the machine's load cannot move.

    uv run python bench/token_instructions.py [--requests 1000] [--apps tessera,bare]

On a shared machine requests/s and even CPU time per request move with the neighbours' load (caches,
frequency, the scheduler); the number of instructions a request executes does not. For each app this runs
the in-process driver of token_inprocess.py (the same client-credentials request, 32 in flight, every
response checked) twice under ``valgrind --tool=callgrind``: once with 200 requests and once with 200 +
``--requests``. The difference, divided by ``--requests``, is what one request costs, without start-up,
imports and seeding. The database thread (aiosqlite) is counted too.

What it cannot show: time spent in the kernel (system calls), cache misses, and the HTTP server in front of
the app; bench/token_endpoint.py measures those, over real sockets. valgrind runs the interpreter about 50
times slower, so a run takes several minutes (progress is printed); it needs Debian's valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

BASE_REQUESTS = 200
COLLECTED = re.compile(r"Collected : (\d+)")


def child(app_name: str, requests: int, seed_file: Path) -> None:
    """Inside valgrind: build the app, warm it up, run ``requests`` token requests."""
    import token_inprocess as driver

    body = urlencode(
        {"grant_type": "client_credentials", "resource": driver.RESOURCE, "scope": driver.SCOPE}
    ).encode()
    if app_name == "bare":
        from bare_token_endpoint import build_app

        secret = "bare-secret-" + "x" * 32
        app = build_app(
            issuer=driver.ISSUER,
            client_id="bench-client",
            client_secret=secret,
            resource=driver.RESOURCE,
            scope=driver.SCOPE,
        )
        authorization = driver.basic("bench-client", secret)
    else:
        env, client_id, secret = json.loads(seed_file.read_text())
        app, _stacked = driver.tessera_apps(env)
        authorization = driver.basic(client_id, secret)

    async def run() -> None:
        async with driver.lifespan(app):
            await driver.measure(app, body, authorization, 50)  # caches filled, keys loaded
            await driver.measure(app, body, authorization, requests)
            await asyncio.sleep(0.5)  # the audit buffer's last batch is written, and counted

    asyncio.run(run())


def count(app_name: str, requests: int, seed_file: Path) -> int:
    started = time.monotonic()
    completed = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            app_name,
            str(requests),
            str(seed_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    found = COLLECTED.search(completed.stderr)
    if completed.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run of {app_name} failed:\n{completed.stderr[-2000:]}")
    print(
        f"  {app_name:8s} {requests:5d} requests: {int(found.group(1)):,} instructions "
        f"({time.monotonic() - started:.0f} s)",
        flush=True,
    )
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests counted per app (1000)")
    parser.add_argument("--apps", default="tessera,bare", help="comma-separated: tessera, bare")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), Path(args.child[2]))
        return 0
    apps = [name.strip() for name in args.apps.split(",") if name.strip()]
    if not apps or not set(apps) <= {"tessera", "bare"} or not 100 <= args.requests <= 100_000:
        parser.error("--apps takes tessera and/or bare; --requests 100..100000")
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install -y valgrind)")
    import token_inprocess as driver

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tessera-instructions-") as tmp:
        seed_file = Path(tmp) / "seed.json"
        if "tessera" in apps:
            env, client_id, secret = driver.seed_tessera(Path(tmp))
            seed_file.write_text(json.dumps([env, client_id, secret]))
            os.environ.update({k: v for k, v in env.items() if k.startswith("TESSERA_")})
        print(f"callgrind: {BASE_REQUESTS} and {BASE_REQUESTS + args.requests} requests per app", flush=True)
        for name in apps:
            low = count(name, BASE_REQUESTS, seed_file)
            high = count(name, BASE_REQUESTS + args.requests, seed_file)
            results[name] = (high - low) / args.requests
    print(f"\n{'app':<10} {'instructions/request':>22}")
    for name, value in results.items():
        print(f"{name:<10} {value:22,.0f}")
    if "tessera" in results and "bare" in results:
        print(f"tessera/bare: {results['tessera'] / results['bare']:.2f}x instructions per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
