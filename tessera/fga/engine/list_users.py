"""ListUsers: the users of given types (or usersets ``group#member``) that have a relation with one object.

The forward walk from the object collects candidates: the users named by its tuples, the users of the
usersets and parents those tuples point to, recursively, each ``object#relation`` visited once (so cycles
end). Candidates reached through unions only are members. Every operand of an intersection and the base of
an exclusion are walked too, but what they yield is verified with Check (concurrently, over the batching
reader), so intersections, exclusions and undecided conditions get exactly Check's answer. A wildcard
candidate (``user:*``) stands for every user of that type.
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
