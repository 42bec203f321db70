"""Rate limiter and password hashing throughput (bounded; one process).

    uv run python bench/identity_ratelimit.py [--seconds 3] [--concurrency 16]

Prints hits per second for the rate limiter on SQLite, PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379)
when reachable, and Argon2id verifications per second at the parameters Tessera uses. The token endpoint pays
one rate-limiter hit per request when it uses one, so these figures bound what that costs.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
import uuid

import asyncpg

from tessera.core.clock import Clock
from tessera.core.ratelimit import DatabaseBackend, RateLimiter, RedisBackend
from tessera.identity.users import owasp_password_hasher
from tessera.storage.database import Database
from tessera.storage.migrate import upgrade

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


async def run_limiter(limiter: RateLimiter, seconds: float, concurrency: int) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            # Many keys (one per client) as a token endpoint would have, each hit an atomic upsert.
            await limiter.hit(f"token:client-{n}-{done % 50}", limit=1_000_000, window_seconds=60)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return done / (time.perf_counter() - start)


async def bench_database(url: str, seconds: float, concurrency: int) -> float:
    db = Database(url)
    try:
        await upgrade(db)
        return await run_limiter(RateLimiter(DatabaseBackend(db), Clock()), seconds, concurrency)
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    seconds = min(args.seconds, 30.0)

    with tempfile.TemporaryDirectory() as tmp:
        rate = await bench_database(f"sqlite+aiosqlite:///{tmp}/bench.db", seconds, args.concurrency)
        print(f"rate limiter, SQLite:      {rate:8.0f} hits/s")

    if reachable(5432):
        name = f"tessera_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
            rate = await bench_database(url, seconds, args.concurrency)
            print(f"rate limiter, PostgreSQL:  {rate:8.0f} hits/s")
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    else:
        print("rate limiter, PostgreSQL:  skipped (not reachable)")

    if reachable(6379):
        limiter = RateLimiter(
            RedisBackend("redis://127.0.0.1:6379/15", prefix=f"bench:{uuid.uuid4().hex}:"), Clock()
        )
        try:
            rate = await run_limiter(limiter, seconds, args.concurrency)
        finally:
            await limiter.aclose()
        print(f"rate limiter, Redis:       {rate:8.0f} hits/s")
    else:
        print("rate limiter, Redis:       skipped (not reachable)")

    hasher = owasp_password_hasher()
    stored = hasher.hash("benchmark passphrase")
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        hasher.verify(stored, "benchmark passphrase")
        count += 1
    elapsed = time.perf_counter() - start
    each = 1000 * elapsed / count
    print(f"Argon2id verify (m=19MiB, t=2, p=1): {count / elapsed:6.1f}/s per core, {each:.1f} ms each")


if __name__ == "__main__":
    asyncio.run(main())
