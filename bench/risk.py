"""Threat detection engine: events scored per second, p50/p99 per event in-process, bytes per user profile.

    uv run python bench/risk.py [--users 300] [--seed 1]

A simulated log (tessera.risk.simulate) is replayed through ``RiskEngine.assess`` + ``record_outcome`` (the
work a password login adds) with the in-process windows and profile store; the first half warms the profiles,
the second half is timed event by event. Memory: the JSON size of each stored profile (what the database
holds) and the Python heap per live profile (tracemalloc over loading all profiles). Goal: p99 under 1 ms.
Wall time includes the scheduler's preemption on a busy machine; CPU time (the thread's own) does not, so both
are printed with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import tracemalloc

from tessera.risk.engine import Outcome, RiskEngine
from tessera.risk.events import Decision
from tessera.risk.model.likelihood import Profile
from tessera.risk.simulate import simulate


async def run(users: int, seed: int) -> None:
    # One attack per attacker type per victim at a random moment: the mix of logins production sees (the
    # evaluation's staged attacks would make a quarter of the events attacks).
    events = [event for event, _ in simulate(users, seed, attacks_per_stage=0)]
    engine = RiskEngine(secret=b"bench-secret-0123456789abcdef")
    half = len(events) // 2

    async def one(event):  # type: ignore[no-untyped-def]
        assessment = await engine.assess(event)
        if event.success and assessment.decision != Decision.DENY:
            await engine.record_outcome(event, assessment, Outcome.ALLOWED)

    for event in events[:half]:
        await one(event)
    timings, cpu = [], []
    start, start_cpu = time.perf_counter(), time.thread_time()
    for event in events[half:]:
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        await one(event)
        timings.append(time.perf_counter_ns() - t0)
        cpu.append(time.thread_time_ns() - c0)
    elapsed, elapsed_cpu = time.perf_counter() - start, time.thread_time() - start_cpu
    timings.sort()
    cpu.sort()

    def pct(values: list[int], q: float) -> float:
        return values[min(len(values) - 1, int(len(values) * q))] / 1e6

    print(f"machine load:        {os.getloadavg()[0]:.1f} (1-minute average, {os.cpu_count()} cores)")
    print(f"events timed:        {len(timings)} (after {half} warm-up events, {users} users)")
    rate, cpu_rate = len(timings) / elapsed, len(timings) / elapsed_cpu
    print(f"events per second:   {rate:,.0f} wall clock, {cpu_rate:,.0f} per CPU-second")
    print(
        f"wall time per event: p50 {pct(timings, 0.5):.3f} ms   p99 {pct(timings, 0.99):.3f} ms   "
        f"max {timings[-1] / 1e6:.3f} ms"
    )
    print(
        f"CPU time per event:  p50 {pct(cpu, 0.5):.3f} ms   p99 {pct(cpu, 0.99):.3f} ms   "
        f"max {cpu[-1] / 1e6:.3f} ms"
    )

    profiles = list(engine._profiles.values())
    documents = [json.dumps(p.to_json(), separators=(",", ":")) for p in profiles]
    sizes = [len(d.encode()) for d in documents]
    histories = [p.logins for p in profiles]
    print(
        f"stored profile:      mean {statistics.fmean(sizes):,.0f} B   max {max(sizes):,} B   "
        f"(history mean {statistics.fmean(histories):.0f}, max {max(histories)} logins)"
    )
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    loaded = [Profile.from_json(p.user_id, json.loads(d)) for p, d in zip(profiles, documents, strict=True)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"live profile (heap): mean {(after - before) / len(loaded):,.0f} B")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(run(args.users, args.seed))


if __name__ == "__main__":
    main()
