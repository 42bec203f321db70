"""ListUsers: the users of given types (or usersets ``group#member``) that have a relation with one object.

The forward walk from the object collects candidates: the users named by its tuples, the users of the
usersets and parents those tuples point to, recursively, each ``object#relation`` visited once (so cycles
end). Every operand of an intersection and the base of an exclusion are walked; the candidates are then
verified with Check (concurrently, over the batching reader), so intersections, exclusions and conditions get
exactly Check's answer. A wildcard candidate (``user:*``) stands for every user of that type and is verified
as such.
"""

from __future__ import annotations

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
        self.visited: set[tuple[str, str, str]] = set()
        self.candidates: dict[str, None] = {}
        self._res = Resolution(ts, reader, User("", ""), context)

    def _keep(self, key: Any) -> bool:
        try:
            return self._res.condition_holds(key)
        except ConditionError:
            return True  # undecided here; Check decides (and reports the error)

    async def expand(self, otype: str, oid: str, relation: str, depth: int) -> None:
        if (otype, relation) in self.filters:
            self.candidates[f"{otype}:{oid}#{relation}"] = None
        key = (otype, oid, relation)
        if key in self.visited:
            return
        if depth >= DEFAULT_MAX_DEPTH:
            raise ResolutionTooComplex(depth)
        self.visited.add(key)
        rel = self.ts.get_relation(otype, relation)
        if rel is None:
            return
        await self._walk(otype, oid, relation, rel.rewrite, depth)

    async def _walk(self, otype: str, oid: str, relation: str, rw: Rewrite, depth: int) -> None:
        if isinstance(rw, This):
            for k in await self.reader.all(otype, oid, relation):
                if not self._keep(k):
                    continue
                u = parse_user(k.user)
                if u is None:
                    continue
                if u.relation is None:
                    if (u.type, None) in self.filters:
                        self.candidates[k.user] = None
                else:
                    await self.expand(u.type, u.id, u.relation, depth + 1)
        elif isinstance(rw, Computed):
            await self.expand(otype, oid, rw.relation, depth + 1)
        elif isinstance(rw, TupleToUserset):
            for k in await self.reader.all(otype, oid, rw.tupleset):
                pt, _, pid = k.user.partition(":")
                if "#" in pid or not self._keep(k) or self.ts.get_relation(pt, rw.computed) is None:
                    continue
                await self.expand(pt, pid, rw.computed, depth + 1)
        elif isinstance(rw, Union | Intersection):
            for c in rw.children:
                await self._walk(otype, oid, relation, c, depth)
        else:
            assert isinstance(rw, Difference)
            await self._walk(otype, oid, relation, rw.base, depth)


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
    out: list[str] = []
    was = reader.batching
    reader.batching = True
    try:
        import asyncio

        users = [u for u in col.candidates if parse_user(u) is not None]
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
                for u in users
            )
        )
    finally:
        reader.batching = was
    for u, v in zip(users, verdicts, strict=True):
        if v == TRUE:
            out.append(u)
    return out
