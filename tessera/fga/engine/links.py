"""The RAG filter's link index: per store, in memory, the tuples a filter would otherwise read per candidate.

Filtering candidates from their side (engine/filter.py, :class:`~tessera.fga.engine.filter.SetEvaluator`)
reads, layer by layer, each object's tupleset links (``document:d#repo``, ``repo:r#owner``: the relations a
model names on the left of ``from``) and the grants that name one of the user's sets (``repo:r#reader@
team:t#member``). On a store of a million tuples those are random probes of a big file, about 3 us each, a
few hundred per filter. This index keeps exactly those two kinds of tuples in memory, for every relation any
model of the store can use them on:

* links: every tuple of a tupleset relation (whatever its user);
* sets: every tuple whose user is a set of users, a userset (``team:t#member``) or a wildcard (``user:*``),
  on a relation whose type restrictions admit either.

Tuples naming one user (``user:jon``) are not kept: they are most of a store, and the filter reads a user's
own from the reverse index in one statement per type.

The index is raw storage, not a model's view: rows are admitted by the request's model when they are read
(as every read of the engine does), so a new model reuses it and only adds the slices it needs.

Kept current from the changelog (``fga_changes``, numbered per store): a build scans each slice, then applies
every change after the changelog head it read before the scan; every later use applies the changes after
the last one applied (:meth:`LinkIndexes.current`), so a HIGHER_CONSISTENCY request sees every committed
write, from any process. Applying a change is idempotent (a write sets the tuple, a delete removes it), which
is what makes a scan that overlaps the changes it is followed by correct. On PostgreSQL sequence numbers are
taken before commit, so a transaction can commit after one with a larger number: numbers skipped over are
asked for again on every catch-up for ``GAP_HORIZON`` seconds (see sql/store.py's known limit).

A store with more than ``max_tuples`` such tuples gets no index (the filter reads storage as before), and is
not tried again for ``retry_after`` seconds. A deleted store drops its index.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tessera.fga.engine.typesystem import Difference, Intersection, Rewrite, TupleToUserset, TypeSystem, Union

# One changelog entry as the index reads it: (sequence number, object type, object id, relation, user,
# deleted, condition name or None, condition context or None).
ChangeRow = tuple[int, str, str, str, str, bool, str | None, Mapping[str, Any] | None]
# A kept tuple: its user string when that is an object (``repo:r1``, not a userset or a wildcard) and it has
# no condition, else (user, condition name, condition context).
Stored = str | tuple[str, str | None, Mapping[str, Any] | None]
# An object's tuples on a links relation: one kept tuple, or a list of them.
Entry = Stored | list[Stored]
# A userset's grant on an object: the relation (no condition) or (relation, condition name, context); an
# object's grants to one userset: one of those or a list of them.
Grant = str | tuple[str, str | None, Mapping[str, Any] | None]
Grants = dict[str, Grant | list[Grant]]
LayerRow = tuple[str, str | None, Mapping[str, Any] | None]

# Changes read per catch-up statement, and statements before a rebuild is the cheaper way.
CHANGES_PAGE = 1_000
CHANGES_PAGES = 20
# Seconds a skipped sequence number is asked for again (a PostgreSQL transaction that took its number and
# has not committed yet); far longer than a Write transaction lasts.
GAP_HORIZON = 60.0
# Skipped numbers tracked per catch-up at most.
MAX_GAPS = 1_000


class LinkSource(Protocol):
    """The datastore reads the index needs (both optional in engine/store.py's protocol; SQL and memory
    datastores have them)."""

    async def scan_relation_rows(
        self, store_id: str, object_type: str, relation: str, *, sets_only: bool, limit: int
    ) -> Any: ...

    async def read_changes_after(
        self, store_id: str, seq: int, limit: int, also: Sequence[int] = ()
    ) -> tuple[bool, int, list[ChangeRow]]: ...


def slices(ts: TypeSystem) -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    """(link slices, set slices) a model needs: every tupleset relation of every type, and every relation
    that admits usersets or wildcards and is not a tupleset (whose links slice holds them already)."""
    memo = ts.cache.setdefault("link_slices", {})
    hit: tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]] | None = memo.get("slices")
    if hit is not None:
        return hit
    links: set[tuple[str, str]] = set()
    sets: set[tuple[str, str]] = set()
    for otype, relations in ts.types.items():
        for name, rel in relations.items():
            stack: list[Rewrite] = [rel.rewrite]
            while stack:
                rw = stack.pop()
                if isinstance(rw, TupleToUserset):
                    links.add((otype, rw.tupleset))
                elif isinstance(rw, (Union, Intersection)):
                    stack.extend(rw.children)
                elif isinstance(rw, Difference):
                    stack += [rw.base, rw.subtract]
            if rel.userset_refs or any(r.wildcard for r in rel.directly_related):
                sets.add((otype, name))
    out = (frozenset(links), frozenset(sets - links))
    memo["slices"] = out
    return out


def as_rows(entry: Entry) -> list[LayerRow]:
    """An entry's tuples as the filter's layer rows."""
    if isinstance(entry, str):
        return [(entry, None, None)]
    if isinstance(entry, tuple):
        return [entry]
    return [(s, None, None) if isinstance(s, str) else s for s in entry]


def is_set(user: str) -> bool:
    """Whether a user string stands for a set of users: a userset (``team:t1#member``) or a wildcard
    (``user:*``). Their grants are what the set slices keep."""
    return "#" in user or user.endswith(":*")


def set_kind(user: str) -> str:
    """``team:t1#member`` -> ``team#member``; a wildcard is its own kind."""
    hash_at = user.find("#")
    return user if hash_at < 0 else user[: user.index(":")] + user[hash_at:]


def _user(stored: Stored) -> str:
    return stored if isinstance(stored, str) else stored[0]


class LinkIndex:
    """One store's links and set grants (see the module docstring), as of changelog entry ``seq``: links
    ``{(type, relation): {object id: entry}}`` (read forwards, from the candidates), set grants ``{type:
    {userset: {object id: grants}}}`` for the relations in ``set_relations`` (read from the user's sets, a
    handful per request, each intersected with a layer's candidates in one set operation, whatever the
    relation)."""

    def __init__(self, store_id: str) -> None:
        self.store_id = store_id
        self.seq = 0
        self.links: dict[tuple[str, str], dict[str, Entry]] = {}
        self.sets: dict[str, dict[str, Grants]] = {}
        self.set_relations: set[tuple[str, str]] = set()
        # The same grants the other way round, per type and object: a flat list alternating userset and
        # one grant (``[team:t1#member, reader, team:t2#member, (admin, cond, ctx)]``; no tuple per pair).
        # A user in many sets (every team nests into t0) looks up the candidates here, one each, instead
        # of intersecting each set's grants with them.
        self.set_objects: dict[str, dict[str, list[Any]]] = {}
        self.set_pairs: dict[str, int] = {}  # per type: the grants in ``set_objects``
        # Per type: userset kind (``team#member``, or ``user:*``) -> the sets of that kind with grants in
        # ``sets``.
        self.kind_users: dict[str, dict[str, set[str]]] = {}
        # Per links slice: the types of the objects its plain tuples name (ever; only ever added to).
        self.link_types: dict[tuple[str, str], set[str]] = {}
        self.size = 0  # tuples kept
        # Sequence numbers skipped over (not committed yet, or rolled back) -> when to stop asking.
        self.gaps: dict[int, float] = {}
        self.checked = 0.0  # when it was last caught up (monotonic seconds)
        self.build_seconds = 0.0
        # Loads and changes applied so far, with ``token`` (one per index): what a cache of something derived
        # from the store may be keyed by (Check's nesting indexes). Not ``seq``: on PostgreSQL a skipped
        # number applied later changes the index and leaves ``seq``; and not the datastore's revision, which
        # counts something else (writes on the memory datastore, tuples in the changelog).
        self.applied = 0
        self.token = object()

    def covers(self, ts: TypeSystem) -> bool:
        links, sets = slices(ts)
        return links <= self.links.keys() and sets <= self.set_relations

    def load_sets(self, otype: str, relation: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Add a scan's rows (object id, relation, user, condition name, context) of a new set relation."""
        intern = sys.intern
        by_user = self.sets.setdefault(otype, {})
        by_object = self.set_objects.setdefault(otype, {})
        rel = intern(relation)
        kinds = self.kind_users.setdefault(otype, {})
        for oid, _, user, cname, cctx in rows:
            user = intern(user)  # one string per set, shared by both layouts
            grants = by_user.get(user)
            if grants is None:
                grants = by_user[user] = {}
                kinds.setdefault(set_kind(user), set()).add(user)
            grant: Grant = rel if not cname else (rel, cname, cctx)
            oid = intern(oid)
            cur = grants.get(oid)
            if cur is None:
                grants[oid] = grant
            elif isinstance(cur, list):
                cur.append(grant)
            else:
                grants[oid] = [cur, grant]
            flat = by_object.get(oid)
            if flat is None:
                by_object[oid] = [user, grant]
            else:
                flat += (user, grant)
        self.set_relations.add((otype, relation))
        self.applied += 1
        self.set_pairs[otype] = self.set_pairs.get(otype, 0) + len(rows)
        self.size += len(rows)

    def _stored(self, key: tuple[str, str], user: str, cname: str | None, cctx: Any) -> Stored:
        """A links tuple as kept; the types of the plain ones (an object, no condition) are noted, so that a
        layer admits them by type without looking at each."""
        user = sys.intern(user)
        if cname or "#" in user or user.endswith(":*"):
            return (user, cname or None, cctx)
        types = self.link_types.get(key)
        if types is None:
            types = self.link_types[key] = set()
        types.add(user[: user.index(":")])
        return user

    def load(self, key: tuple[str, str], rows: Sequence[tuple[Any, ...]]) -> None:
        """Add a scan's rows (object id, relation, user, condition name, context) to a new links slice."""
        intern = sys.intern
        slice_ = self.links.setdefault(key, {})
        for oid, _, user, cname, cctx in rows:
            stored = self._stored(key, user, cname, cctx)
            oid = intern(oid)
            cur = slice_.get(oid)
            if cur is None:
                slice_[oid] = stored
            elif isinstance(cur, list):
                cur.append(stored)
            else:
                slice_[oid] = [cur, stored]
        self.size += len(rows)
        self.applied += 1

    def apply(self, change: ChangeRow) -> None:
        """One changelog entry, idempotently: a write sets the tuple (replacing its condition), a delete
        removes it."""
        _, otype, oid, relation, user, deleted, cname, cctx = change
        self.applied += 1
        sl = self.links.get((otype, relation))
        if sl is None:
            if not is_set(user) or (otype, relation) not in self.set_relations:
                return
            by_user = self.sets.setdefault(otype, {})
            grants = by_user.get(user)
            had = [] if grants is None or oid not in grants else grants[oid]
            kept = had if isinstance(had, list) else [had]
            rest = [g for g in kept if (g if isinstance(g, str) else g[0]) != relation]
            self.size -= len(kept) - len(rest)
            if not deleted:
                rel = sys.intern(relation)
                rest.append(rel if not cname else (rel, cname, cctx))
                self.size += 1
            user = sys.intern(user)
            oid = sys.intern(oid)
            if rest:
                if grants is None:
                    grants = by_user[user] = {}
                    self.kind_users.setdefault(otype, {}).setdefault(set_kind(user), set()).add(user)
                grants[oid] = rest[0] if len(rest) == 1 else rest
            elif grants is not None:
                grants.pop(oid, None)
                if not grants:
                    del by_user[user]
                    self.kind_users.get(otype, {}).get(set_kind(user), set()).discard(user)
            # The object's side: its pairs for this set replaced by the set's grants now.
            by_object = self.set_objects.setdefault(otype, {})
            old_flat = by_object.get(oid, [])
            flat = [x for k in range(0, len(old_flat), 2) if old_flat[k] != user for x in old_flat[k : k + 2]]
            for g in rest:
                flat += (user, g)
            self.set_pairs[otype] = self.set_pairs.get(otype, 0) + (len(flat) - len(old_flat)) // 2
            if flat:
                by_object[oid] = flat
            else:
                by_object.pop(oid, None)
            return
        cur = sl.get(oid)
        kept = [] if cur is None else [cur] if not isinstance(cur, list) else cur
        rest = [s for s in kept if _user(s) != user]
        self.size -= len(kept) - len(rest)
        if not deleted:
            rest.append(self._stored((otype, relation), user, cname, cctx))
            self.size += 1
        if not rest:
            sl.pop(oid, None)
        else:
            sl[sys.intern(oid)] = rest[0] if len(rest) == 1 else rest


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    index: LinkIndex | None = None
    refused_until: float = 0.0  # too big: no index before this (monotonic seconds)


class LinkIndexes:
    """The link indexes of one service, per store (see the module docstring)."""

    def __init__(self, max_tuples: int, *, retry_after: float = 600.0) -> None:
        self.max_tuples = max_tuples
        self.retry_after = retry_after
        self._slots: dict[str, _Slot] = {}

    def drop(self, store_id: str) -> None:
        self._slots.pop(store_id, None)

    def peek(self, store_id: str) -> LinkIndex | None:
        slot = self._slots.get(store_id)
        return None if slot is None else slot.index

    async def current(
        self, ds: Any, store_id: str, ts: TypeSystem, *, max_age: float = 0.0
    ) -> LinkIndex | None:
        """The store's index, covering ``ts``'s slices and caught up with the changelog (when it was last
        caught up more than ``max_age`` seconds ago; 0: now), or None (no index for this datastore or store:
        read storage)."""
        if not self.max_tuples or getattr(ds, "read_changes_after", None) is None:
            return None
        if getattr(ds, "scan_relation_rows", None) is None:
            return None
        slot = self._slots.get(store_id)
        if slot is None:
            slot = self._slots[store_id] = _Slot()
        now = time.monotonic()
        if slot.refused_until > now:
            return None
        idx = slot.index
        if idx is not None and max_age and now - idx.checked < max_age and idx.covers(ts):
            return idx
        async with slot.lock:
            idx = slot.index
            if idx is not None and idx.checked > now and idx.covers(ts):
                # Another request caught it up while this one waited, in a catch-up that began after this
                # request did: it has every write committed before this request.
                return idx
            if idx is not None and not await self._catch_up(ds, idx):
                idx = slot.index = None
            if idx is None or not idx.covers(ts):
                idx = await self._build(ds, store_id, ts, idx)
                if idx is None:
                    slot.index = None
                    slot.refused_until = time.monotonic() + self.retry_after
                    return None
                slot.index = idx
            if self._slots.get(store_id) is not slot:  # the store was deleted meanwhile
                return None
            return idx

    async def _build(self, ds: Any, store_id: str, ts: TypeSystem, old: LinkIndex | None) -> LinkIndex | None:
        """A new index with ``ts``'s slices (the slices ``old`` has are kept, already caught up), or None:
        too many tuples, or the store is gone."""
        started = time.perf_counter()
        if old is None:
            alive, head, _ = await ds.read_changes_after(store_id, sys.maxsize, 0)
            if not alive:
                return None
            idx = LinkIndex(store_id)
            idx.seq = head
        else:
            idx = old
        links, sets = slices(ts)
        for key in sorted(links - idx.links.keys()):
            rows = await ds.scan_relation_rows(
                store_id, *key, sets_only=False, limit=max(self.max_tuples - idx.size, 0)
            )
            if rows is None:
                return None
            idx.load(key, rows)
        for key in sorted(sets - idx.set_relations):
            rows = await ds.scan_relation_rows(
                store_id, *key, sets_only=True, limit=max(self.max_tuples - idx.size, 0)
            )
            if rows is None:
                return None
            idx.load_sets(*key, rows)
        # Changes committed during the scans: some are in them already, and applying them again is harmless.
        if not await self._catch_up(ds, idx):
            return None
        idx.build_seconds += time.perf_counter() - started
        return idx

    async def _catch_up(self, ds: Any, idx: LinkIndex) -> bool:
        """Apply the changes after ``idx.seq`` (and any skipped numbers that have committed since); False
        when the index must go: the store is deleted, it grew past ``max_tuples``, or it is so far behind
        that a rebuild is cheaper."""
        now = time.monotonic()
        idx.gaps = {s: until for s, until in idx.gaps.items() if until > now}
        for _ in range(CHANGES_PAGES):
            alive, head, rows = await ds.read_changes_after(
                idx.store_id, idx.seq, CHANGES_PAGE, list(idx.gaps)
            )
            if not alive or head < idx.seq:
                return False
            for row in rows:
                seq = row[0]
                if seq > idx.seq:
                    for skipped in range(max(idx.seq + 1, seq - MAX_GAPS), seq):
                        idx.gaps[skipped] = now + GAP_HORIZON
                    idx.seq = seq
                else:
                    idx.gaps.pop(seq, None)
                idx.apply(row)
            if idx.size > self.max_tuples:
                return False
            if len(rows) < CHANGES_PAGE:
                idx.checked = now
                return True
        return False
