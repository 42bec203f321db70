"""Model language benchmark: DSL -> JSON (parse + validate) and JSON -> DSL, beside the real `fga` CLI.

Reads every DSL model of OpenFGA's transformer pairs (shared/reference/openfga/language-tests/transformer),
plus one synthetic model of ``--types`` types with eight relations each, and prints per-model timings.
The `fga` figure is a whole process per model (the CLI has no library mode), so it is an upper bound for Go
and mostly process start-up; the synthetic model shows how the parser and validator scale. Figures are CPU
time (of this process, or of the CLI's process), so a busy shared machine does not inflate them.

    uv run python bench/fga_language.py [--rounds 200] [--types 500]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tessera.fga.language import transform_dsl_to_json, transform_json_to_dsl

DATA = [
    Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "openfga" / "language-tests",
    Path("/work/shared/reference/openfga/language-tests"),
]


def synthetic(types: int) -> str:
    lines = ["model", "  schema 1.1", "", "type user"]
    for i in range(types):
        parent = f"t{i - 1}" if i else "user"
        lines += [
            "",
            f"type t{i}",
            "  relations",
            f"    define parent: [{parent}]",
            "    define owner: [user]",
            "    define editor: [user, user:*] or owner",
            "    define viewer: [user with ok] or editor" + (" or viewer from parent" if i else ""),
            "    define blocked: [user]",
            "    define can_view: viewer but not blocked",
            "    define can_edit: editor and can_view",
            "    define audit: (owner or editor) and (viewer but not blocked)",
        ]
    lines += ["", "condition ok(x: int) {", "  x < 100", "}", ""]
    return "\n".join(lines)


def timed(fn, rounds: int) -> float:  # type: ignore[no-untyped-def]
    """Median CPU seconds of this process per call (CPU time, because the machine may be shared)."""
    samples = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        samples.append(time.process_time() - start)
    return statistics.median(samples)


def child_cpu(fn, rounds: int) -> float:  # type: ignore[no-untyped-def]
    """Median CPU seconds (user + system) of the child processes ``fn`` runs."""
    samples = []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        fn()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        samples.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--types", type=int, default=500)
    args = parser.parse_args()
    data = next((d for d in DATA if d.is_dir()), None)
    if data is None:
        sys.exit("language-tests not found")
    models = {
        p.parent.name: p.read_text() for p in sorted((data / "transformer").glob("*/authorization-model.fga"))
    }
    total = sum(len(m) for m in models.values())
    # Two of the pairs (14, 15) are transformer-only examples that OpenFGA itself rejects as models, so the
    # pairs are timed without validation; the synthetic model below is timed with it.
    per_parse = timed(
        lambda: [transform_dsl_to_json(m, validate=False) for m in models.values()], args.rounds
    )
    jsons = [transform_dsl_to_json(m, validate=False) for m in models.values()]
    per_write = timed(lambda: [transform_json_to_dsl(j) for j in jsons], args.rounds)
    print(f"transformer pairs: {len(models)} models, {total} bytes of DSL")
    print(
        f"  DSL -> JSON:              {per_parse / len(models) * 1e6:8.1f} us/model (median of {args.rounds})"
    )
    print(f"  JSON -> DSL:              {per_write / len(models) * 1e6:8.1f} us/model")
    big = synthetic(args.types)
    big_rounds = max(3, args.rounds // 40)
    big_only = timed(lambda: transform_dsl_to_json(big, validate=False), big_rounds)
    big_parse = timed(lambda: transform_dsl_to_json(big), big_rounds)
    big_json = transform_dsl_to_json(big)
    big_write = timed(lambda: transform_json_to_dsl(big_json), big_rounds)
    print(f"synthetic model: {args.types} types x 8 relations, {len(big)} bytes")
    print(f"  DSL -> JSON:              {big_only * 1e3:8.1f} ms ({len(big) / big_only / 1e6:.2f} MB/s)")
    print(f"  DSL -> JSON + validation: {big_parse * 1e3:8.1f} ms")
    print(f"  JSON -> DSL:              {big_write * 1e3:8.1f} ms")
    fga = shutil.which("fga") or str(Path(sys.executable).parent / "fga")
    if Path(fga).exists():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.fga"
            path.write_text(big)
            cli = child_cpu(
                lambda: subprocess.run(
                    [fga, "model", "transform", "--file", str(path)], capture_output=True, check=True
                ),
                3,
            )
            path.write_text(models["90-github"])
            small = child_cpu(
                lambda: subprocess.run(
                    [fga, "model", "transform", "--file", str(path)], capture_output=True, check=True
                ),
                5,
            )
        print(f"fga CLI (whole process, CPU): 90-github {small * 1e3:.1f} ms, synthetic {cli * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
