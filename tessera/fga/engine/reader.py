"""The per-request view of the tuples: stored tuples plus contextual tuples, minus the tuples the current
model rejects, cached for the request, and (when many resolutions run at once) batched.

Batching works like a DataLoader: reads of the same shape (same object type, relation and user filter) that
are asked for during one turn of the event loop are sent to storage as one ``read_by_objects`` call with all
their object ids. The RAG filter and ListObjects run many checks concurrently, so each step of the rewrite
costs one storage round trip for all candidates instead of one per candidate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tessera.fga.engine.store import ObjectRow, TupleReader, read_object_tuples
from tessera.fga.engine.tuples import TupleKey
from tessera.fga.engine.typesystem import TypeSystem

# Read kinds: direct users, userset users, all users.
_DIRECT, _USERSETS, _ALL = "d", "u", "a"

# A tuple of a layer read, its object and relation known from where it is kept: (user, condition name,
# condition context).
LayerRow = tuple[str, str | None, Mapping[str, Any] | None]


def _rows_from_keys(read: Callable[..., Awaitable[list[TupleKey] | None]]) -> Any:
    """A datastore's ``read_objects_tuples`` as ``read_objects_rows``."""

    async def rows(*args: Any, **kwargs: Any) -> list[ObjectRow] | None:
        keys = await read(*args, **kwargs)
        if keys is None:
            return None
        return [
            (k.object.partition(":")[2], k.relation, k.user, k.condition_name, k.condition_context)
            for k in keys
        ]

    return rows


@dataclass
class _Pending:
    ids: dict[str, None] = field(default_factory=dict)
    future: asyncio.Future[None] | None = None


class RequestReader:
    def __init__(
        self,
        datastore: TupleReader,
        store_id: str,
        typesystem: TypeSystem,
        contextual: Sequence[TupleKey] = (),
        *,
        batching: bool = False,
        object_prefetch: int = 0,
        big_types: set[str] | None = None,
        small_types: set[str] | None = None,
        big_relations: dict[str, set[str]] | None = None,
        densities: dict[str, float] | None = None,
        own_misses: dict[str, list[int]] | None = None,
    ) -> None:
        self.ds = datastore
        self.store_id = store_id
        self.ts = typesystem
        self.batching = batching
        # > 0: the first read of an object fetches all its tuples (when it has at most this many), and every
        # later read of that object, on any relation, is answered from them: one round trip per object.
        self.object_prefetch = object_prefetch
        self._objects: dict[str, dict[str, list[TupleKey]] | None] = {}
        # Types whose objects were found to have too many tuples to prefetch (shared across requests by the
        # service): reads of them go per relation straight away.
        self.big_types = big_types if big_types is not None else set()
        # Types whose objects were found small enough to read many at once (objects_many).
        self.small_types = small_types if small_types is not None else set()
        # Per type whose objects were found too big to prefetch whole: the relations that hold too many
        # tuples (an organisation's members); the object's other relations are still prefetched, in one read
        # (shared across requests by the service, like big_types).
        self.big_relations = big_relations if big_relations is not None else {}
        # Per small type: tuples per object in its first (unfiltered) layer read, shared like small_types:
        # what filtering a layer's tuples in the database costs, against reading a user's own tuples.
        self.densities = densities if densities is not None else {}
        # Per type: [requests in a row that found a user's own tuples on it too many to read from the user's
        # side, requests that did not try since] (engine/filter.py), shared like small_types; it only
        # chooses the side a layer is read from, never an answer.
        self.own_misses = own_misses if own_misses is not None else {}
        self.reads = 0  # storage round trips, for tests and benchmarks
        self._cache: dict[tuple[Any, ...], dict[str, list[TupleKey]]] = {}
        self._pending: dict[tuple[Any, ...], _Pending] = {}
        self._ctx_by_object: dict[tuple[str, str], list[TupleKey]] = {}
        self._ctx_by_user: dict[tuple[str, str, str], list[TupleKey]] = {}
        seen: set[TupleKey] = set()
        for k in contextual:
            if k in seen:
                continue  # duplicate contextual tuples count once
            seen.add(k)
            self._ctx_by_object.setdefault((k.object, k.relation), []).append(k)
            self._ctx_by_user.setdefault((k.object.partition(":")[0], k.relation, k.user), []).append(k)
        # Admission depends only on the model and the tuple's shape: shared by every request on the model.
        self._allowed: dict[tuple[str, str, str, str | None], bool] = typesystem.cache.setdefault(
            "allowed", {}
        )

    # --- model filter -------------------------------------------------------------------------------

    def allowed(self, object_type: str, key: TupleKey) -> bool:
        """Tuples the current model's type restrictions reject are ignored (OpenFGA semantics)."""
        ck = (object_type, key.relation, user_kind(key.user), key.condition_name)
        hit = self._allowed.get(ck)
        if hit is None:
            hit = self._allowed[ck] = self.ts.allows_key(key)
        return hit

    # --- reads used by Check --------------------------------------------------------------------------

    async def direct(self, otype: str, oid: str, relation: str, users: tuple[str, ...]) -> list[TupleKey]:
        return await self._read((_DIRECT, otype, relation, users), oid)

    async def usersets(
        self, otype: str, oid: str, relation: str, refs: tuple[tuple[str, str], ...]
    ) -> list[TupleKey]:
        return await self._read((_USERSETS, otype, relation, refs), oid)

    async def named_and_usersets(
        self,
        otype: str,
        oid: str,
        relation: str,
        names: tuple[str, ...],
        refs: tuple[tuple[str, str], ...],
        limit: int,
    ) -> list[TupleKey] | None:
        """In one read, the object's admitted tuples on ``relation`` naming one of ``names`` or a userset of
        one of the kinds ``refs`` (contextual ones merged); None when the datastore cannot (no
        ``read_relation_rows``) or the relation holds more than ``limit`` such usersets."""
        native = getattr(self.ds, "read_relation_rows", None)  # optional in the protocol
        if native is None:
            return None
        self.reads += 1
        rows = await native(self.store_id, otype, oid, relation, names, refs, limit)
        if rows is None:
            return None
        found = [k for k in rows if self.allowed(otype, k)]
        ctx = self._ctx_by_object.get((f"{otype}:{oid}", relation)) if self._ctx_by_object else None
        if ctx:
            wanted = {f"{t}#{r}" for t, r in refs}
            extra = [k for k in ctx if k.user in names or ("#" in k.user and user_kind(k.user) in wanted)]
            if extra:
                # A contextual tuple replaces a stored one with the same identity.
                ids = set(extra)
                found = [k for k in found if k not in ids] + extra
        return found

    async def all(self, otype: str, oid: str, relation: str) -> list[TupleKey]:
        return await self._read((_ALL, otype, relation, None), oid)

    # --- reads of many objects at once (set-at-a-time evaluation) -----------------------------------------

    async def direct_many(
        self, otype: str, oids: Sequence[str], relation: str, users: tuple[str, ...]
    ) -> dict[str, list[TupleKey]]:
        return await self._read_many((_DIRECT, otype, relation, users), oids)

    async def usersets_many(
        self, otype: str, oids: Sequence[str], relation: str, refs: tuple[tuple[str, str], ...]
    ) -> dict[str, list[TupleKey]]:
        return await self._read_many((_USERSETS, otype, relation, refs), oids)

    async def all_many(self, otype: str, oids: Sequence[str], relation: str) -> dict[str, list[TupleKey]]:
        return await self._read_many((_ALL, otype, relation, None), oids)

    async def objects_many(
        self,
        otype: str,
        oids: Sequence[str],
        relations: Sequence[str],
        users: Sequence[str],
        usersets: Sequence[tuple[str, str]],
    ) -> dict[str, dict[str, list[LayerRow]]] | None:
        """In one storage read, the tuples of these objects (any relation) that are on one of ``relations``
        or whose user is one of ``users`` or a userset of one of ``usersets``: ``{relation: {id: rows}}``
        (only the ids that have rows on the relation), each row ``(user, condition name, condition
        context)``, only rows the model admits.
        None when the datastore cannot (no ``read_objects_tuples``), when contextual tuples touch the type
        (their merge is per relation), or when the type's objects hold more than ``object_prefetch`` tuples
        each on average: scanning them would cost more than reading relation by relation. That is found out
        once per type (an unfiltered read with that bound, whose rows serve this call too: they are a
        superset) and remembered in ``small_types`` or ``big_types``."""
        native = getattr(self.ds, "read_objects_rows", None)  # both optional in the protocol (store.py)
        if native is None:
            by_keys = getattr(self.ds, "read_objects_tuples", None)
            if by_keys is not None:
                native = _rows_from_keys(by_keys)
        if native is None or not self.object_prefetch or otype not in self.ts.types:
            return None
        if otype in self.big_types or any(o.partition(":")[0] == otype for o, _ in self._ctx_by_object):
            return None
        self.reads += 1
        limit = self.object_prefetch * len(oids)
        rows: list[ObjectRow] | None
        if otype in self.small_types:
            rows = await native(
                self.store_id, otype, oids, limit, relations=relations, users=users, usersets=usersets
            )
        else:
            rows = await native(self.store_id, otype, oids, limit)
            (self.big_types if rows is None else self.small_types).add(otype)
            if rows is not None:
                self.densities[otype] = len(rows) / len(oids)
        if rows is None:
            return None
        out: dict[str, dict[str, list[LayerRow]]] = {}
        wanted = set(oids)
        admitted = self._allowed
        for oid, relation, user, cname, cctx in rows:
            if oid not in wanted:
                continue
            # user_kind, inlined: this loop runs for every row of a layer.
            hash_at = user.find("#")
            if hash_at >= 0:
                kind = user[: user.index(":")] + user[hash_at:]
            else:
                kind = user if user.endswith(":*") else user[: user.index(":")]
            ck = (otype, relation, kind, cname)
            ok = admitted.get(ck)
            if ok is None:
                ok = admitted[ck] = self.ts.allows_key(TupleKey(f"{otype}:{oid}", relation, user, cname))
            if not ok:
                continue
            by_id = out.get(relation)
            if by_id is None:
                by_id = out[relation] = {}
            found = by_id.get(oid)
            if found is None:
                by_id[oid] = [(user, cname, cctx)]
            else:
                found.append((user, cname, cctx))
        return out

    def reads_users(self, otype: str) -> bool:
        """Whether :meth:`users_many` can read ``otype``: the datastore has ``read_users_rows`` and no
        contextual tuple touches the type."""
        if getattr(self.ds, "read_users_rows", None) is None or otype not in self.ts.types:
            return False
        return not any(o.partition(":")[0] == otype for o, _ in self._ctx_by_object)

    async def users_many(
        self, otype: str, relations: Sequence[str], users: Sequence[str], limit: int
    ) -> dict[str, dict[str, list[LayerRow]]] | None:
        """In one storage read (reverse index probes), the tuples of any object of ``otype`` on one of
        ``relations`` whose user is one of ``users``: ``{relation: {id: rows}}``, only rows the model admits.
        None when the datastore cannot (no ``read_users_rows``), when contextual tuples touch the type (they
        are merged per relation), or when there are more than ``limit``."""
        native = getattr(self.ds, "read_users_rows", None)  # optional in the protocol (store.py)
        if native is None or not self.reads_users(otype):
            return None
        self.reads += 1
        rows: list[ObjectRow] | None = await native(self.store_id, otype, relations, users, limit)
        if rows is None:
            return None
        out: dict[str, dict[str, list[LayerRow]]] = {}
        for oid, relation, user, cname, cctx in rows:
            if not self.allowed(otype, TupleKey(f"{otype}:{oid}", relation, user, cname)):
                continue
            out.setdefault(relation, {}).setdefault(oid, []).append((user, cname, cctx))
        return out

    async def _read_many(self, ck: tuple[Any, ...], oids: Sequence[str]) -> dict[str, list[TupleKey]]:
        """One storage read for every id not cached yet."""
        cache = self._cache.setdefault(ck, {})
        missing = [o for o in dict.fromkeys(oids) if o not in cache]
        if missing and ck[0] != _ALL:
            full = self._cache.get((_ALL, ck[1], ck[2], None), {})
            for o in [o for o in missing if o in full]:
                cache[o] = _narrow(full[o], ck)
            missing = [o for o in missing if o not in cache]
        if missing:
            await self._fetch(ck, missing)
        return {o: cache[o] for o in oids}

    async def _read(self, ck: tuple[Any, ...], oid: str) -> list[TupleKey]:
        cache = self._cache.setdefault(ck, {})
        hit = cache.get(oid)
        if hit is not None:
            return hit
        # An "all users" read already made for this object answers the narrower reads too.
        if ck[0] != _ALL:
            full = self._cache.get((_ALL, ck[1], ck[2], None), {}).get(oid)
            if full is not None:
                rows = _narrow(full, ck)
                cache[oid] = rows
                return rows
        if not self.batching:
            if self.object_prefetch and self._prefetches(ck[1], ck[2]):
                by_rel = await self._object(ck[1], oid)
                if by_rel is not None and self._prefetches(ck[1], ck[2]):
                    rows = _narrow(by_rel.get(ck[2], ()), ck)
                    cache[oid] = rows
                    return rows
            await self._fetch(ck, [oid])
            return cache[oid]
        pending = self._pending.get(ck)
        if pending is None:
            pending = self._pending[ck] = _Pending()
            loop = asyncio.get_running_loop()
            pending.future = loop.create_future()
            loop.call_soon(self._flush_soon, ck)
        pending.ids[oid] = None
        assert pending.future is not None
        await asyncio.shield(pending.future)
        return cache[oid]

    async def prefetched(self, otype: str, oid: str, relation: str) -> list[TupleKey] | None:
        """The object's admitted tuples on ``relation`` (contextual ones merged) when Check reads it whole
        (see :meth:`_object`): one read for every relation of it; None when it is read relation by
        relation instead."""
        if self.batching or not self.object_prefetch or not self._prefetches(otype, relation):
            return None
        by_rel = await self._object(otype, oid)
        if by_rel is None or not self._prefetches(otype, relation):
            return None
        return by_rel.get(relation, [])

    async def object_rows(self, otype: str, oid: str) -> dict[str, list[TupleKey]] | None:
        """The object's admitted tuples by relation (contextual ones merged) when Check reads it whole (see
        :meth:`_object`), in one read; only its relations :meth:`prefetches` covers count. None when it is
        read relation by relation."""
        if self.batching or not self.object_prefetch:
            return None
        return await self._object(otype, oid)

    def prefetches(self, otype: str, relation: str) -> bool:
        """Whether :meth:`object_rows` holds ``relation`` of ``otype``'s objects (not one too big to read)."""
        return self._prefetches(otype, relation)

    def has_contextual(self, otype: str, relation: str) -> bool:
        """Whether contextual tuples touch ``otype:*#relation`` (store-wide indexes then do not apply)."""
        return any(o.partition(":")[0] == otype and r == relation for o, r in self._ctx_by_object)

    def cheap(self, otype: str, oid: str, relation: str) -> bool:
        """Whether reads of this object's relation are answered without storage (prefetched, or about to
        be)."""
        if self.batching or not self.object_prefetch:
            return False
        obj = f"{otype}:{oid}"
        if obj in self._objects and self._objects[obj] is None:
            return False
        return self._prefetches(otype, relation)

    def _prefetches(self, otype: str, relation: str) -> bool:
        """Whether Check's read of an object of ``otype`` (:meth:`_object`) covers ``relation``."""
        big = self.big_relations.get(otype)
        if big is None:
            return True  # not known to be big: the whole object is read (and learnt about if too big)
        return relation not in big

    async def _object(self, otype: str, oid: str) -> dict[str, list[TupleKey]] | None:
        """The object's tuples by relation (only those of its small relations when the type has big ones),
        in one read; None when not even that is possible."""
        obj = f"{otype}:{oid}"
        if obj in self._objects:
            return self._objects[obj]
        big = self.big_relations.get(otype)
        relations = self.ts.types.get(otype, {})
        if big is None:
            self.reads += 1
            rows = await read_object_tuples(self.ds, self.store_id, obj, self.object_prefetch)
        else:
            small = [r for r in relations if r not in big]
            if not small:
                self._objects[obj] = None
                return None
            self.reads += 1
            rows = await read_object_tuples(self.ds, self.store_id, obj, self.object_prefetch, small)
        if rows is None and relations:
            rows = await self._learn(otype, obj)
        by_rel: dict[str, list[TupleKey]] | None = None
        if rows is None:
            self.big_types.add(otype)
        else:
            big = self.big_relations.get(otype, set())
            by_rel = {}
            admitted = self._allowed
            for k in rows:
                relation = k.relation
                if relation in big:
                    continue
                # allowed(), inlined: Check runs this for every tuple of every object it reads.
                user = k.user
                hash_at = user.find("#")
                if hash_at >= 0:
                    kind = user[: user.index(":")] + user[hash_at:]
                else:
                    kind = user if user.endswith(":*") else user[: user.index(":")]
                ck = (otype, relation, kind, k.condition_name)
                ok = admitted.get(ck)
                if ok is None:
                    ok = admitted[ck] = self.ts.allows_key(k)
                if ok:
                    found = by_rel.get(relation)
                    if found is None:
                        by_rel[relation] = [k]
                    else:
                        found.append(k)
            for (cobj, rel), ctx_rows in self._ctx_by_object.items():
                if cobj == obj and rel not in big:
                    ids = set(ctx_rows)
                    by_rel[rel] = [k for k in by_rel.get(rel, []) if k not in ids] + list(ctx_rows)
        self._objects[obj] = by_rel
        return by_rel

    async def _learn(self, otype: str, obj: str) -> list[TupleKey] | None:
        """``obj`` holds more tuples than a prefetch takes: find out, relation by relation (each read bounded
        by the prefetch size), which relations hold too many, remember them for the type, and return the
        tuples of the others (None when every relation is big). Once per type and big relation found."""
        self.big_types.add(otype)
        big = self.big_relations.setdefault(otype, set())
        limit = self.object_prefetch
        found: dict[str, list[TupleKey]] = {}
        for relation in self.ts.types[otype]:
            if relation in big:
                continue
            self.reads += 1
            rows = await read_object_tuples(self.ds, self.store_id, obj, limit, [relation])
            if rows is None:
                big.add(relation)
            else:
                found[relation] = rows
        # Each relation fits but together they may not: the largest ones go relation by relation.
        total = sum(len(rows) for rows in found.values())
        for relation in sorted(found, key=lambda r: len(found[r]), reverse=True):
            if total <= limit:
                break
            total -= len(found.pop(relation))
            big.add(relation)
        if not found:
            return None
        return [k for rows in found.values() for k in rows]

    def _flush_soon(self, ck: tuple[Any, ...]) -> None:
        pending = self._pending.pop(ck)
        task = asyncio.get_running_loop().create_task(self._flush(ck, pending))
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    async def _flush(self, ck: tuple[Any, ...], pending: _Pending) -> None:
        assert pending.future is not None
        try:
            await self._fetch(ck, list(pending.ids))
        except BaseException as exc:
            pending.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            pending.future.set_result(None)

    async def _fetch(self, ck: tuple[Any, ...], oids: list[str]) -> None:
        kind, otype, relation, extra = ck
        self.reads += 1
        if kind == _DIRECT:
            rows = await self.ds.read_by_objects(self.store_id, otype, relation, oids, users=list(extra))
        elif kind == _USERSETS:
            rows = await self.ds.read_by_objects(self.store_id, otype, relation, oids, usersets=list(extra))
        else:
            rows = await self.ds.read_by_objects(self.store_id, otype, relation, oids)
        cache = self._cache.setdefault(ck, {})
        grouped: dict[str, list[TupleKey]] = {o: [] for o in oids}
        for k in rows:
            oid = k.object.partition(":")[2]
            if oid in grouped and self.allowed(otype, k):
                grouped[oid].append(k)
        for oid, found in grouped.items():
            cache[oid] = self._with_contextual(ck, otype, oid, found)

    def _with_contextual(
        self, ck: tuple[Any, ...], otype: str, oid: str, found: list[TupleKey]
    ) -> list[TupleKey]:
        ctx = self._ctx_by_object.get((f"{otype}:{oid}", ck[2])) if self._ctx_by_object else None
        if ctx:
            ctx_rows = _narrow(ctx, ck)
            if ctx_rows:
                # A contextual tuple replaces a stored one with the same identity.
                ids = set(ctx_rows)
                found = [k for k in found if k not in ids] + ctx_rows
        return found

    # --- reverse reads used by ListObjects ---------------------------------------------------------------

    async def by_users(self, otype: str, relation: str, users: Sequence[str]) -> list[TupleKey]:
        self.reads += 1
        rows = await self.ds.read_by_users(self.store_id, otype, relation, list(users))
        out = [k for k in rows if self.allowed(otype, k)]
        if not self._ctx_by_user:
            return out
        seen = set(out)
        for u in users:
            for k in self._ctx_by_user.get((otype, relation, u), ()):
                if k in seen:
                    out = [x for x in out if x != k]
                out.append(k)
                seen.add(k)
        return out


def user_kind(user: str) -> str:
    """``group#member`` for usersets, ``user:*`` for wildcards, ``user`` for objects."""
    t, _, rest = user.partition(":")
    if rest == "*":
        return user
    i = rest.find("#")
    return t if i < 0 else t + rest[i:]


def _narrow(rows: Sequence[TupleKey], ck: tuple[Any, ...]) -> list[TupleKey]:
    kind, _, _, extra = ck
    if kind == _DIRECT:
        return [k for k in rows if k.user in extra]
    if kind == _USERSETS:
        wanted = {f"{t}#{r}" for t, r in extra}
        return [k for k in rows if "#" in k.user and user_kind(k.user) in wanted]
    return list(rows)
