"""Permission-aware filtering for RAG: which of these candidate objects may the user see?

A vector search returns the top-k documents; the naive answer is k independent Checks, each re-reading the
same folders and groups. Here all candidates are resolved together for one user, sharing two things:

* one memo of sub-results (``folder:a#viewer`` is resolved once, whichever documents sit in that folder), and
* one batching reader: the concurrent resolutions ask for the same kind of read at the same step (the
  ``parent`` tuples of every candidate, then the ``viewer`` tuples of every parent folder), and the reader sends
  each such wave to storage as one ``read_by_objects`` call with all the ids.

So filtering k candidates costs about one storage round trip per rewrite step, not k. The answer for each
candidate is exactly Check's (the same resolver runs), including errors: a candidate whose check fails (depth,
a condition missing its parameter) is an error for the whole request, as Check would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tessera.fga.engine.check import TRUE, LocalChecker, Resolution

DEFAULT_CONCURRENCY = 512


async def check_many(
    res: Resolution,
    object_type: str,
    relation: str,
    object_ids: Sequence[str],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[bool]:
    """Check ``res.user`` against ``object_type:<id>#relation`` for every id; verdicts in input order."""
    checker = LocalChecker()
    reader = res.reader
    was = reader.batching
    reader.batching = True
    try:
        # Warm the first step for everyone with one read (the direct and tupleset relations of the
        # candidates); the concurrent resolutions below then batch every later step among themselves.
        out: list[bool] = []
        for start in range(0, len(object_ids), concurrency):
            chunk = object_ids[start : start + concurrency]
            verdicts = await asyncio.gather(
                *(checker.resolve_tri(res, object_type, oid, relation, 0, frozenset()) for oid in chunk)
            )
            out.extend(v == TRUE for v in verdicts)
        return out
    finally:
        reader.batching = was
