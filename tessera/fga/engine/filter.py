"""Permission-aware filtering for RAG: which of these candidate objects may the user see?

A vector search returns the top-k documents; the naive answer is k independent Checks, each re-reading the
same folders and groups. :func:`filter_ids` answers for all candidates at once, from the cheaper side:

* the user's side first: a backwards walk from the user (ListObjects' reverse expansion) within a budget of
  facts; when it ends within the budget, the answer is an intersection with the candidates;
* otherwise the candidates' side (:func:`check_many`): all candidates resolved together for the one user,
  sharing one memo of sub-results (``folder:a#viewer`` is resolved once, whichever documents sit in that
  folder) and one batching reader: the concurrent resolutions ask for the same kind of read at the same
  step (the ``parent`` tuples of every candidate, then the ``viewer`` tuples of every parent folder), and the
  reader sends each such wave to storage as one ``read_by_objects`` call with all the ids. So filtering k
  candidates costs about one storage round trip per rewrite step, not k.

The answer for each candidate is exactly Check's, including errors: a candidate whose check fails (depth, a
condition missing its parameter) is an error for the whole request, as Check would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tessera.fga.engine.check import CYCLE, TRUE, LocalChecker, Resolution
from tessera.fga.engine.errors import FGAError
from tessera.fga.engine.typesystem import Rewrite

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


async def filter_ids(
    res: Resolution,
    object_type: str,
    relation: str,
    object_ids: Sequence[str],
    *,
    reverse_budget: int = 1_000,
) -> set[str]:
    """The ids among ``object_ids`` that ``res.user`` has ``relation`` with.

    Two strategies, chosen per request: first the user's side, walking backwards from the user (ListObjects'
    reverse expansion) within a budget of ``reverse_budget`` facts; when the user reaches fewer objects than
    that, the answer is an intersection with the candidates and costs a few reverse reads whatever the number
    of candidates. A user who reaches more (an administrator) falls back to the candidates' side: forward
    checks of all candidates at once (:func:`check_many`). Candidates the walk leaves undecided (cycles,
    conditions) or found deeper than the depth limit get the forward check too, so the answer is Check's.
    """
    ids = list(dict.fromkeys(object_ids))
    if not ids:
        return set()
    from tessera.fga.engine.list_objects import closure

    cl = await closure(res, object_type, relation, reverse_budget) if reverse_budget else None
    if cl is None:
        verdicts = await check_many(res, object_type, relation, ids)
        return {i for i, ok in zip(ids, verdicts, strict=True) if ok}
    allowed: set[str] = set()
    unsure: list[str] = []
    for i in ids:
        if i in cl.sure and cl.depth.get(i, 0) < res.max_depth:
            allowed.add(i)
        elif i in cl.maybe or i in cl.sure:
            unsure.append(i)
    if unsure:
        verdicts = await check_many(res, object_type, relation, unsure)
        allowed.update(i for i, ok in zip(unsure, verdicts, strict=True) if ok)
    return allowed


async def guard_many(
    res: Resolution,
    object_type: str,
    relation: str,
    object_ids: Sequence[str],
    guards: tuple[tuple[bool, Rewrite], ...],
) -> list[int | None]:
    """For ListObjects: decide, for each object, the operands an intersection or exclusion adds on top of the
    derivation that found it. 1: they hold, None: they do not, 0: undecided here (a cycle or an error; the
    object then gets a full Check)."""
    checker = LocalChecker()
    reader = res.reader
    was = reader.batching
    reader.batching = True

    async def one(oid: str) -> int | None:
        path = frozenset({(object_type, oid, relation)})
        verdict: int | None = 1
        for negated, rw in guards:
            try:
                r = await checker.eval_rewrite(res, object_type, oid, relation, rw, path, negated)
            except FGAError:
                verdict = 0
                continue
            if r == CYCLE:
                verdict = 0
            elif (r == TRUE) == negated:
                return None
        return verdict

    try:
        return list(await asyncio.gather(*(one(o) for o in object_ids)))
    finally:
        reader.batching = was
