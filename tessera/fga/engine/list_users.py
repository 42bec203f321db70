"""ListUsers: the users of given types (or usersets ``group#member``) that have a relation with one object.

The forward walk from the object collects candidates: the users named by its tuples, the users of the
usersets and parents those tuples point to, recursively, each ``object#relation`` visited once (so cycles
end). Candidates reached through unions only are members. Every operand of an intersection and the base of
an exclusion are walked too, but what they yield is verified with Check (concurrently, over the batching
reader), so intersections, exclusions and undecided conditions get exactly Check's answer. A wildcard
candidate (``user:*``) stands for every user of that type.

Check alone is not OpenFGA's answer, though: OpenFGA's ListUsers is set algebra over what the walk *finds*,
and a wildcard found somewhere stands for the users only as an operand of an intersection (a user found in
one operand passes the operands that hold ``user:*``) or as a subtrahend (it removes every user). A user
that Check accepts only because ``user:*`` reaches the object is not listed: ``user:*`` is (OpenFGA
``listusers/list_users_rpc.go``, ``expandIntersection`` / ``expandExclusion``). So the users Check has to
verify are also kept only when :class:`_Found` (that algebra, over the same reads) finds them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tessera.fga.engine.check import DEFAULT_MAX_DEPTH, TRUE, LocalChecker, Resolution
from tessera.fga.engine.errors import ConditionError, ResolutionTooComplex
from tessera.fga.engine.reader import RequestReader
from tessera.fga.engine.tuples import User, parse_user
from tessera.fga.engine.typesystem import (
    Computed,
    Difference,
    Intersection,
    Rewrite,
    This,
    TupleToUserset,
    TypeSystem,
    Union,
)


@dataclass(frozen=True, slots=True)
class UserFilter:
    type: str
    relation: str | None = None


class _Collector:
    def __init__(
        self, ts: TypeSystem, reader: RequestReader, filters: Sequence[UserFilter], context: Mapping[str, Any]
    ) -> None:
        self.ts = ts
        self.reader = reader
        self.filters = {(f.type, f.relation) for f in filters}
        self.context = context
        self.visited: set[tuple[str, str, str, bool]] = set()
        # user -> True when some path to it crossed only unions (then it is certainly a member), False when
        # every path crossed an intersection, an exclusion or an undecided condition (Check decides).
        self.candidates: dict[str, bool] = {}
        self._res = Resolution(ts, reader, User("", ""), context)

    def _add(self, user: str, exact: bool) -> None:
        self.candidates[user] = self.candidates.get(user, False) or exact

    def _keep(self, key: Any) -> tuple[bool, bool]:
        """(keep the tuple, its condition is decided true)."""
        try:
            return self._res.condition_holds(key), True
        except ConditionError:
            return True, False  # undecided here; Check decides (and reports the error)

    async def expand(self, otype: str, oid: str, relation: str, depth: int, exact: bool = True) -> None:
        # Check would need this many levels below: near the limit, let Check decide (and fail as OpenFGA).
        exact = exact and depth < DEFAULT_MAX_DEPTH - 1
        if (otype, relation) in self.filters:
            self._add(f"{otype}:{oid}#{relation}", exact)
        key = (otype, oid, relation, exact)
        if key in self.visited or (otype, oid, relation, True) in self.visited:
            return
        if depth >= DEFAULT_MAX_DEPTH:
            raise ResolutionTooComplex(depth)
        self.visited.add(key)
        rel = self.ts.get_relation(otype, relation)
        if rel is None:
            return
        await self._walk(otype, oid, relation, rel.rewrite, depth, exact)

    async def _walk(self, otype: str, oid: str, relation: str, rw: Rewrite, depth: int, exact: bool) -> None:
        if isinstance(rw, This):
            for k in await self.reader.all(otype, oid, relation):
                keep, decided = self._keep(k)
                if not keep:
                    continue
                u = parse_user(k.user)
                if u is None:
                    continue
                if u.relation is None:
                    if (u.type, None) in self.filters:
                        self._add(k.user, exact and decided)
                else:
                    await self.expand(u.type, u.id, u.relation, depth + 1, exact and decided)
        elif isinstance(rw, Computed):
            await self.expand(otype, oid, rw.relation, depth + 1, exact)
        elif isinstance(rw, TupleToUserset):
            for k in await self.reader.all(otype, oid, rw.tupleset):
                pt, _, pid = k.user.partition(":")
                if "#" in pid or self.ts.get_relation(pt, rw.computed) is None:
                    continue
                keep, decided = self._keep(k)
                if keep:
                    await self.expand(pt, pid, rw.computed, depth + 1, exact and decided)
        elif isinstance(rw, Union):
            for c in rw.children:
                await self._walk(otype, oid, relation, c, depth, exact)
        elif isinstance(rw, Intersection):
            for c in rw.children:
                await self._walk(otype, oid, relation, c, depth, False)
        else:
            assert isinstance(rw, Difference)
            await self._walk(otype, oid, relation, rw.base, depth, False)


# Status of a found user in OpenFGA's ListUsers algebra: an exclusion reports the users it removes as "no
# relationship", so that an exclusion above it that subtracts them can report them as members again.
_HAS, _NO = True, False


class _Found:
    """The users OpenFGA's ListUsers set algebra finds for ``object#relation`` (statuses included).

    Union: what any operand finds. Intersection: a user found by some operand, and by every operand that
    did not find the wildcard of its type (``user:*`` found by all operands is found). Exclusion: with the
    wildcard in the base, the base's users not subtracted (none when the wildcard is subtracted); otherwise
    the base's users, those found in the subtrahend turned to "no relationship" (and those the subtrahend
    itself excludes turned back to members); a subtrahend that runs into a cycle makes the exclusion empty.
    Cycles are detected per path, as OpenFGA does; results that did not meet a cycle are shared. Conditions
    that cannot be decided keep their tuple here: Check decides them (and reports their errors).
    """

    def __init__(self, col: _Collector) -> None:
        self.col = col
        self.memo: dict[tuple[str, str, str], tuple[dict[str, bool], bool]] = {}

    @staticmethod
    def _put(out: dict[str, bool], user: str, status: bool) -> None:
        out[user] = out.get(user, False) or status

    @staticmethod
    def _wildcard(user: str) -> str:
        return user.partition(":")[0] + ":*"

    async def expand(
        self, otype: str, oid: str, relation: str, path: frozenset[tuple[str, str, str]], depth: int
    ) -> tuple[dict[str, bool], bool, bool]:
        """(found users, the walk entered a cycle here, some cycle was met below: do not share)."""
        out: dict[str, bool] = {}
        if (otype, relation) in self.col.filters:
            out[f"{otype}:{oid}#{relation}"] = _HAS
        key = (otype, oid, relation)
        if key in path:
            return out, True, True
        if depth >= DEFAULT_MAX_DEPTH:
            return out, False, True  # the collector reports the limit
        hit = self.memo.get(key)
        if hit is None:
            rel = self.col.ts.get_relation(otype, relation)
            if rel is None:
                found: dict[str, bool] = {}
                cycle = tainted = False
            else:
                found, cycle, tainted = await self._walk(
                    otype, oid, relation, rel.rewrite, path | {key}, depth + 1
                )
            if not tainted:
                self.memo[key] = (found, cycle)
        else:
            found, cycle = hit
            tainted = False
        for u, st in found.items():
            self._put(out, u, st)
        return out, cycle, tainted

    async def _walk(
        self,
        otype: str,
        oid: str,
        relation: str,
        rw: Rewrite,
        path: frozenset[tuple[str, str, str]],
        depth: int,
    ) -> tuple[dict[str, bool], bool, bool]:
        out: dict[str, bool] = {}
        cycle = tainted = False
        if isinstance(rw, This | TupleToUserset):
            read_relation = rw.tupleset if isinstance(rw, TupleToUserset) else relation
            for k in await self.col.reader.all(otype, oid, read_relation):
                if not self.col._keep(k)[0]:
                    continue
                if isinstance(rw, TupleToUserset):
                    pt, _, pid = k.user.partition(":")
                    if "#" in pid or self.col.ts.get_relation(pt, rw.computed) is None:
                        continue
                    sub, _c, t = await self.expand(pt, pid, rw.computed, path, depth)
                    tainted |= t  # OpenFGA does not report a cycle met through a tuple-to-userset
                else:
                    pu = parse_user(k.user)
                    if pu is None:
                        continue
                    if pu.relation is None:
                        if any(t == pu.type for t, _ in self.col.filters):
                            out[k.user] = _HAS
                        continue
                    sub, c, t = await self.expand(pu.type, pu.id, pu.relation, path, depth)
                    cycle |= c
                    tainted |= t
                for user, st in sub.items():
                    self._put(out, user, st)
            return out, cycle, tainted
        if isinstance(rw, Computed):
            return await self.expand(otype, oid, rw.relation, path, depth)
        if isinstance(rw, Union | Intersection):
            parts = [await self._walk(otype, oid, relation, c, path, depth) for c in rw.children]
            tainted = any(t for _, _, t in parts)
            members = [{u for u, st in p.items() if st} for p, _, _ in parts]
            if isinstance(rw, Union):
                return dict.fromkeys(set().union(*members), _HAS), False, tainted
            for u in set().union(*members):
                if all(u in m or self._wildcard(u) in m for m in members):
                    out[u] = _HAS
            return out, False, tainted
        assert isinstance(rw, Difference)
        base, _, t1 = await self._walk(otype, oid, relation, rw.base, path, depth)
        sub, sub_cycle, t2 = await self._walk(otype, oid, relation, rw.subtract, path, depth)
        tainted = t1 or t2
        if sub_cycle:
            return {}, False, tainted
        for u, st in base.items():
            wildcard = self._wildcard(u)
            if wildcard in base:
                if u not in sub and wildcard not in sub:
                    out[u] = _HAS
                if wildcard in sub and u not in sub:
                    out[u] = _NO
                for s, sst in sub.items():
                    if not s.endswith(":*"):
                        out[s] = not sst
            elif wildcard in sub or u in sub:
                out[u] = not sub.get(u, _HAS)
            else:
                out[u] = st
        return out, False, tainted


async def list_users(
    ts: TypeSystem,
    reader: RequestReader,
    object_type: str,
    object_id: str,
    relation: str,
    filters: Sequence[UserFilter],
    context: Mapping[str, Any],
) -> list[str]:
    col = _Collector(ts, reader, filters, context)
    await col.expand(object_type, object_id, relation, 0)
    checker = LocalChecker()
    out = [u for u, exact in col.candidates.items() if exact]
    unsure = [u for u, exact in col.candidates.items() if not exact and parse_user(u) is not None]
    if not unsure:
        return out  # nothing came through an intersection or an exclusion: the walk's users are the answer
    # Through intersections and exclusions, OpenFGA lists what its set algebra finds (which may be a user
    # the walk only met as excluded by a subtrahend that is itself an exclusion), each verified with Check.
    found, _, _ = await _Found(col).expand(object_type, object_id, relation, frozenset(), 0)
    exact = set(out)
    unsure = [u for u, st in found.items() if st and u not in exact and _wanted(col, u)]
    if not unsure:
        return out
    was = reader.batching
    reader.batching = True
    try:
        verdicts = await asyncio.gather(
            *(
                checker.resolve_tri(
                    Resolution(ts, reader, parse_user(u), context),  # type: ignore[arg-type]
                    object_type,
                    object_id,
                    relation,
                    0,
                    frozenset(),
                )
                for u in unsure
            )
        )
    finally:
        reader.batching = was
    out.extend(u for u, v in zip(unsure, verdicts, strict=True) if v == TRUE)
    return out


def _wanted(col: _Collector, user: str) -> bool:
    u = parse_user(user)
    return u is not None and (u.type, u.relation) in col.filters
