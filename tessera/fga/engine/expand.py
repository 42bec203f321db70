"""Expand: one level of the userset tree of ``object#relation`` (OpenFGA's Expand API shape).

Leaves are the users named directly by tuples, a computed userset (``document:1#editor``) or a
tuple-to-userset with the usersets it points to (``folder:a#viewer``); the caller expands those further.
"""

from __future__ import annotations

from typing import Any

from tessera.fga.engine.reader import RequestReader
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


async def expand(
    ts: TypeSystem, reader: RequestReader, otype: str, oid: str, relation: str
) -> dict[str, Any]:
    rel = ts.types[otype][relation]
    root = await _node(ts, reader, otype, oid, relation, rel.rewrite)
    return {"tree": {"root": root}}


async def _node(
    ts: TypeSystem, reader: RequestReader, otype: str, oid: str, relation: str, rw: Rewrite
) -> dict[str, Any]:
    name = f"{otype}:{oid}#{relation}"
    if isinstance(rw, This):
        users = [k.user for k in await reader.all(otype, oid, relation)]
        return {"name": name, "leaf": {"users": {"users": users}}}
    if isinstance(rw, Computed):
        return {"name": name, "leaf": {"computed": {"userset": f"{otype}:{oid}#{rw.relation}"}}}
    if isinstance(rw, TupleToUserset):
        computed = []
        for k in await reader.all(otype, oid, rw.tupleset):
            pt, _, pid = k.user.partition(":")
            if "#" in pid or ts.get_relation(pt, rw.computed) is None:
                continue
            computed.append({"userset": f"{k.user}#{rw.computed}"})
        return {
            "name": name,
            "leaf": {"tupleToUserset": {"tupleset": f"{otype}:{oid}#{rw.tupleset}", "computed": computed}},
        }
    if isinstance(rw, Union | Intersection):
        nodes = [await _node(ts, reader, otype, oid, relation, c) for c in rw.children]
        return {"name": name, ("union" if isinstance(rw, Union) else "intersection"): {"nodes": nodes}}
    assert isinstance(rw, Difference)
    return {
        "name": name,
        "difference": {
            "base": await _node(ts, reader, otype, oid, relation, rw.base),
            "subtract": await _node(ts, reader, otype, oid, relation, rw.subtract),
        },
    }
