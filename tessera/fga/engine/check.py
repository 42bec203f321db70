"""Check: is ``user`` related to ``object`` by ``relation``?

A chain of resolvers behind one interface (:class:`CheckResolver`): :class:`CachedChecker` answers repeated
questions from a short-lived cache (skipped for ``HIGHER_CONSISTENCY``), and :class:`LocalChecker` walks the
rewrite rules. The algorithm is described in prose in ``tessera/fga/README.md``; in short:

* Each sub-problem is ``(object, relation)`` for the request's one user. Results are memoised for the request,
  so a group reached along several paths is resolved once.
* Results are three-valued: true, false and *cycle* (the sub-problem is already on the current path). Cycle
  behaves like "unknown" in Kleene logic: ``true or cycle`` is true, ``false and cycle`` is false,
  ``x but not cycle`` is not true; at the top it answers false, as OpenFGA does. A loop of a simply recursive
  relation on itself (``member: [user, group#member]``) is a fixpoint instead and answers false, also as
  OpenFGA does. True and false answers do not depend on the path, so only they are memoised (per polarity:
  inside an exclusion's subtract, false and cycle differ).
* Userset tuples are answered from the user's side: the user's memberships of each userset kind are computed
  once per request by walking backwards from the user (``Resolution.closure``), instead of walking every
  group tree downwards; what that walk cannot settle is resolved forwards.
* Every dispatch (computed userset, userset tuple, tuple-to-userset) goes one level deeper; at depth 25 the
  request fails with ``authorization_model_resolution_too_complex`` (2002), OpenFGA's default limit.
* Branches that cannot reach the user's type (from :meth:`TypeSystem.may_contain`) are not explored.
* An error in one branch (depth, a condition missing a parameter) only fails the request if no other branch
  decides it: ``true or error`` is true, ``false and error`` is false.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tessera.fga.engine.errors import FGAError, ResolutionTooComplex
from tessera.fga.engine.plan import compiled, run
from tessera.fga.engine.reader import RequestReader, user_kind
from tessera.fga.engine.tuples import TupleKey, User
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

# The closures being computed in the current chain of calls (tasks inherit it), to tell a closure asked for
# from inside its own computation (answer: go forward) from one asked for concurrently (answer: wait for it).
_COMPUTING: contextvars.ContextVar[frozenset[tuple[int, tuple[str, str]]]] = contextvars.ContextVar(
    "fga_closures_computing", default=frozenset()
)

FALSE, TRUE, CYCLE = 0, 1, 2
DEFAULT_MAX_DEPTH = 25
# A user in more sets than this of one userset kind is resolved forwards instead.
DEFAULT_CLOSURE_MAX_FACTS = 500
# Sets of the user probed with an object's direct tuples at most (see LocalChecker._known_sets).
_MAX_KNOWN_SETS = 64
# Sets of one shallow kind a single Check resolves forwards before it works out the user's closure of the
# kind instead (see LocalChecker._forward_first).
_MAX_FORWARD_SETS = 2


class NestingIndex:
    """Which sets of one nesting kind (groups in groups) contain which, for a whole store at one revision:
    ``parents`` is ``{child id: [parent ids]}``. :meth:`ancestors` is remembered per set, so the many
    requests served from one index (every Check of a user in the same teams) share the walks up the tree."""

    # Ancestor maps remembered at most, in entries (a deep chain costs its length squared).
    MAX_REMEMBERED = 200_000

    def __init__(self, parents: dict[str, list[str]]) -> None:
        self.parents = parents
        self._up: dict[str, dict[str, int]] = {}
        self._remembered = 0

    def ancestors(self, sid: str) -> dict[str, int]:
        """Every set that contains ``sid``, itself included, with the fewest steps up to it."""
        hit = self._up.get(sid)
        if hit is not None:
            return hit
        found = {sid: 0}
        frontier = [sid]
        steps = 0
        parents = self.parents
        while frontier:
            steps += 1
            nxt = []
            for child in frontier:
                for parent in parents.get(child, ()):
                    if parent not in found:
                        found[parent] = steps
                        nxt.append(parent)
            frontier = nxt
        if self._remembered + len(found) <= self.MAX_REMEMBERED:
            self._remembered += len(found)
            self._up[sid] = found
        return found


@dataclass
class Resolution:
    """State shared by every sub-problem of one request (or one batch of requests for the same user)."""

    ts: TypeSystem
    reader: RequestReader
    user: User
    context: Mapping[str, Any] = field(default_factory=dict)
    max_depth: int = DEFAULT_MAX_DEPTH
    memo: dict[tuple[Any, ...], int] = field(default_factory=dict)
    dispatches: int = 0
    loops: int = 0  # loops of simply recursive relations met so far (see LocalChecker.resolve_tri)
    # Userset closures (see LocalChecker._this): (type, relation) -> the user's memberships, or None.
    closures: dict[tuple[str, str], Any] = field(default_factory=dict)
    closure_max_facts: int = DEFAULT_CLOSURE_MAX_FACTS
    # Set for requests whose top-level answer may be cached (see CachedChecker).
    cache_key: tuple[Any, ...] | None = None
    # (type, relation) of a nesting kind -> {child id: [parent ids]} for the whole store, or None when it
    # cannot be had (see TypeSystem.nesting_kind); supplied by the service, which keeps it per revision.
    nesting: Callable[[str, str], Awaitable[NestingIndex | None]] | None = None
    # Closures shared across requests (same store revision, model, user and context; no contextual tuples):
    # (cache, scope), set by the service for cacheable requests.
    shared_closures: tuple[TTLCache, tuple[Any, ...]] | None = None
    _closure_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    # (type, relation) of a shallow kind -> its sets resolved forwards (see LocalChecker._forward_first).
    forwarded: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    # The store's link index (engine/links.py) for this request, caught up as its consistency asks, or None
    # (none for this store, or contextual tuples, which the index does not merge); supplied by the service
    # and asked for only by a compiled plan (plan.py), so a cached answer never pays for the catch-up.
    links: Callable[[], Awaitable[Any]] | None = None

    async def closure(self, otype: str, relation: str) -> Any:
        """The sets ``otype:o#relation`` the user is in, computed once per request by walking backwards
        from the user (ListObjects' reverse expansion); None when that is not possible or too big."""
        key = (otype, relation)
        if key in self.closures:
            return self.closures[key]
        if self.shared_closures is not None:
            cache, scope = self.shared_closures
            found, value = cache.lookup((*scope, key))
            if found:
                self.closures[key] = value
                return value
        computing = _COMPUTING.get()
        if (id(self), key) in computing or not self.closure_max_facts:
            return None  # asked from inside its own computation (a guard in the walk): go forward
        # Concurrent resolutions (the RAG filter) wait for the one computation instead of repeating it.
        lock = self._closure_locks.setdefault(key, asyncio.Lock())
        if computing and lock.locked():
            # Inside another closure's computation: never wait on a second one (two computations could
            # wait on each other); resolve forwards instead.
            return None
        async with lock:
            if key in self.closures:
                return self.closures[key]
            from tessera.fga.engine.list_objects import closure

            token = _COMPUTING.set(computing | {(id(self), key)})
            try:
                result = await closure(self, otype, relation, self.closure_max_facts)
            finally:
                _COMPUTING.reset(token)
            self.closures[key] = result
            if self.shared_closures is not None:
                cache, scope = self.shared_closures
                cache.store((*scope, key), result)
            return result

    def condition_holds(self, key: TupleKey) -> bool:
        if not key.condition_name:
            return True
        cond = self.ts.conditions.get(key.condition_name)
        if cond is None:
            return False  # the model no longer defines it: the tuple is not admitted
        return cond.evaluate(key.condition_context, self.context)


def _direct_shape(
    ts: TypeSystem, otype: str, relation: str, user: User
) -> tuple[str | None, bool, tuple[tuple[str, str], ...], frozenset[str]]:
    """What Check's step on the direct tuples of ``otype#relation`` looks for, for users of this kind: the
    wildcard's name (or None), whether the user's own name, and the userset kinds that may hold the user
    (as pairs, and as ``type#relation`` strings).
    Kept per model (``ts.cache``), keyed by the user's type, relation and whether it is a wildcard."""
    by_wildcard: str | None = None
    by_user = False
    for ref in ts.types[otype][relation].directly_related:
        if ref.type != user.type:
            continue
        if user.relation is None:
            if ref.wildcard:
                by_wildcard = f"{user.type}:*"
            elif ref.relation is None and not user.wildcard:
                by_user = True
        elif ref.relation == user.relation:
            by_user = True
    refs = tuple(r for r in ts.types[otype][relation].userset_refs if ts.may_contain(r[0], r[1], user))
    shape = (by_wildcard, by_user, refs, frozenset(f"{t}#{r}" for t, r in refs))
    key = (otype, relation, user.type, user.relation, user.wildcard)
    ts.cache.setdefault("direct_shapes", {})[key] = shape
    return shape


class CheckResolver(Protocol):
    async def resolve(self, res: Resolution, otype: str, oid: str, relation: str) -> bool: ...


class LocalChecker:
    """Walks the rewrite rules of the model against the tuples (the last link of the chain)."""

    def __init__(self, *, plans: bool = True) -> None:
        # Whether a single Check first tries the relation's compiled plan (plan.py), which hands back to the
        # rules walk whatever it cannot answer exactly.
        self.plans = plans

    async def resolve(self, res: Resolution, otype: str, oid: str, relation: str) -> bool:
        if self.plans and not res.reader.batching:
            plan = compiled(res.ts, otype, relation, res.user)
            if plan is not None:
                verdict = await run(plan, res, oid, self._forward_first)
                if verdict is not None:
                    return verdict
        return await self.resolve_tri(res, otype, oid, relation, 0, frozenset()) == TRUE

    async def resolve_tri(
        self,
        res: Resolution,
        otype: str,
        oid: str,
        relation: str,
        depth: int,
        path: frozenset[Any],
        neg: bool = False,
    ) -> int:
        """``neg``: the answer is used negated (inside an exclusion's subtract), where "false" and "cycle"
        differ; the user-side shortcut, which cannot tell them apart, then only answers "true"."""
        key: tuple[Any, ...] = (otype, oid, relation, neg)
        hit = res.memo.get(key)
        if hit is not None:
            return hit
        if key[:3] in path:
            # Round a relation's own loop (group in group): adds nothing, as in OpenFGA's fixpoint for
            # simply recursive relations. Any other loop is a cycle (see TypeSystem._cycles).
            if res.ts.simply_recursive(otype, relation):
                # That "false" only holds while this object is being resolved: whatever is concluded from
                # it must not be remembered (see the memo below).
                res.loops += 1
                return FALSE
            return CYCLE
        user = res.user
        # A userset is trivially a member of itself: Check(group:x#member, member, group:x) is true.
        if user.relation is not None and user.relation == relation and user.id == oid and user.type == otype:
            return TRUE
        if depth >= res.max_depth:
            raise ResolutionTooComplex(depth)
        rel = res.ts.get_relation(otype, relation)
        if rel is None or not res.ts.may_contain(otype, relation, user):
            res.memo[key] = FALSE
            return FALSE
        res.dispatches += 1
        loops = res.loops
        result = await self._eval(res, otype, oid, relation, rel.rewrite, depth, path | {key[:3]}, neg)
        # True and false are path-independent, except when a loop was met below (its "false" was an
        # assumption about an object still being resolved). Concurrent resolutions share the counter, so
        # this may skip more than needed, never less.
        if result != CYCLE and res.loops == loops:
            res.memo[key] = result
        return result

    async def eval_rewrite(
        self,
        res: Resolution,
        otype: str,
        oid: str,
        relation: str,
        rw: Rewrite,
        path: frozenset[Any],
        negated: bool = False,
    ) -> int:
        """Evaluate one operand of ``otype:oid#relation``'s rewrite (ListObjects' intersection and exclusion
        guards); ``path`` should hold the object's own sub-problem so cycles through it are seen."""
        return await self._eval(res, otype, oid, relation, rw, 1, path, negated)

    async def _eval(
        self,
        res: Resolution,
        otype: str,
        oid: str,
        relation: str,
        rw: Rewrite,
        depth: int,
        path: frozenset[Any],
        neg: bool = False,
    ) -> int:
        if isinstance(rw, This):
            return await self._this(res, otype, oid, relation, depth, path, neg)
        if isinstance(rw, Computed):
            return await self.resolve_tri(res, otype, oid, rw.relation, depth + 1, path, neg)
        if isinstance(rw, TupleToUserset):
            return await self._ttu(res, otype, oid, rw, depth, path, neg)
        if isinstance(rw, Union):
            return await self._combine(res, otype, oid, relation, rw.children, depth, path, neg, TRUE)
        if isinstance(rw, Intersection):
            return await self._combine(res, otype, oid, relation, rw.children, depth, path, neg, FALSE)
        assert isinstance(rw, Difference)
        return await self._but_not(res, otype, oid, relation, rw, depth, path, neg)

    async def _this(
        self,
        res: Resolution,
        otype: str,
        oid: str,
        relation: str,
        depth: int,
        path: frozenset[Any],
        neg: bool = False,
    ) -> int:
        ts, user = res.ts, res.user
        error: FGAError | None = None
        # 1. Tuples naming the user or the type's wildcard: a point read.
        shapes = ts.cache.setdefault("direct_shapes", {})
        shape = shapes.get((otype, relation, user.type, user.relation, user.wildcard))
        if shape is None:
            shape = _direct_shape(ts, otype, relation, user)
        by_wildcard, by_user, refs, kinds = shape
        names: list[str] = []
        if by_wildcard:
            names.append(by_wildcard)
        if by_user:
            names.append(str(user))
        budget = res.max_depth - depth - 2
        usersets: list[TupleKey] = []
        # A prefetched object: its tuples on the relation are at hand, one pass sorts them.
        rows = await res.reader.prefetched(otype, oid, relation) if names or refs else None
        if rows is not None:
            sets: list[str] | None = []  # the usersets come from the same rows
            for k in rows:
                if k.user in names:
                    try:
                        if res.condition_holds(k):
                            return TRUE
                    except FGAError as exc:
                        error = exc
                elif kinds and "#" in k.user and user_kind(k.user) in kinds:
                    usersets.append(k)
        else:
            # For an object read relation by relation, the userset tuples step 2 can act on, when the
            # user's sets of every kind here are already known, are those naming one of them: they come in
            # the same read as the direct ones (index probes), instead of a second read of every userset
            # of the kinds.
            sets = self._known_sets(res, otype, oid, relation, refs, neg)
        if rows is None and (names or sets):
            asked = tuple(dict.fromkeys(names))
            for k in await res.reader.direct(otype, oid, relation, asked + tuple(sets or ())):
                if sets and k.user not in asked:
                    usersets.append(k)
                    continue
                try:
                    if res.condition_holds(k):
                        return TRUE
                except FGAError as exc:
                    error = exc
        # 2. Userset tuples (group:x#member) on the object, when some may contain the user. Whether the user
        #    is in one of them is answered from the user's side: the user's memberships of that kind are
        #    computed once per request backwards from the user (a few reverse reads, shared by every check of
        #    the request) instead of walking each group tree downwards. Undecided memberships (cycles,
        #    conditions), memberships deeper than the depth limit allows and users in too many sets are
        #    resolved forwards, one userset at a time.
        saw_cycle = False
        if refs:
            if sets is None:
                usersets = await res.reader.usersets(otype, oid, relation, refs)
            for k in usersets:
                st, _, rest = k.user.partition(":")
                sid, _, srel = rest.partition("#")
                cl = None if self._forward_first(res, st, sid, srel) else await res.closure(st, srel)
                if cl is not None and sid not in cl.maybe and cl.depth.get(sid, 0) <= budget:
                    if sid not in cl.sure:
                        if neg and ts.reaches_other_cycles(st, srel):
                            # Under a negation "not a member" and "only through a cycle" differ
                            # (OpenFGA: ``x but not <cycle>`` is not true); the forward walk tells them
                            # apart. Loops of one relation on itself are fixpoints and need no care.
                            r = await self._forward(res, k, st, sid, srel, depth, path, neg)
                            if r == TRUE:
                                return TRUE
                            saw_cycle = saw_cycle or r == CYCLE
                        continue  # the user is not in that set
                    try:
                        if res.condition_holds(k):
                            return TRUE
                    except FGAError as exc:
                        error = exc
                    continue
                try:
                    if not res.condition_holds(k):
                        continue
                    r = await self.resolve_tri(res, st, sid, srel, depth + 1, path, neg)
                except FGAError as exc:
                    error = exc
                    continue
                if r == TRUE:
                    return TRUE
                saw_cycle = saw_cycle or r == CYCLE
        if error is not None:
            raise error
        return CYCLE if saw_cycle else FALSE

    @staticmethod
    def _known_sets(
        res: Resolution, otype: str, oid: str, relation: str, refs: tuple[tuple[str, str], ...], neg: bool
    ) -> list[str] | None:
        """The user strings of the user's sets of the kinds ``refs`` (sure or undecided), when reading them
        with the direct tuples is exact and worth it: the object is not prefetched, every kind's closure has
        been computed and is small, and no kind needs its non-members (under a negation, a kind that
        reaches other cycles is walked forwards for every set); else None."""
        if not refs or res.reader.cheap(otype, oid, relation):
            return None
        out: list[str] = []
        for st, srel in refs:
            cl = res.closures.get((st, srel))
            if cl is None or (neg and res.ts.reaches_other_cycles(st, srel)):
                return None
            out += [f"{st}:{sid}#{srel}" for sid in (*cl.sure, *cl.maybe)]
            if len(out) > _MAX_KNOWN_SETS:
                return None
        return out

    @staticmethod
    def _forward_first(res: Resolution, st: str, sid: str, srel: str) -> bool:
        """Whether to resolve ``st:sid#srel`` forwards instead of from the user's closure of the kind: in a
        single uncached Check (nothing else would reuse the closure), for a shallow kind
        (``organization#member``, see :meth:`TypeSystem.shallow`: a read or two on that one object, where the
        closure costs a reverse read per relation and wave), for the first few sets of the kind only; a kind
        met more often than that gets its closure, which then answers every set."""
        if res.reader.batching or res.shared_closures is not None or (st, srel) in res.closures:
            return False
        if res.ts.nesting_kind(st, srel) or not res.ts.shallow(st, srel):
            return False
        sets = res.forwarded.setdefault((st, srel), set())
        if sid not in sets:
            if len(sets) >= _MAX_FORWARD_SETS:
                return False
            sets.add(sid)
        return True

    async def _forward(
        self,
        res: Resolution,
        k: TupleKey,
        st: str,
        sid: str,
        srel: str,
        depth: int,
        path: frozenset[Any],
        neg: bool,
    ) -> int:
        try:
            if not res.condition_holds(k):
                return FALSE
            return await self.resolve_tri(res, st, sid, srel, depth + 1, path, neg)
        except FGAError:
            return FALSE  # the closure found no membership; an error here cannot make one

    async def _ttu(
        self,
        res: Resolution,
        otype: str,
        oid: str,
        rw: TupleToUserset,
        depth: int,
        path: frozenset[Any],
        neg: bool = False,
    ) -> int:
        ts = res.ts
        error: FGAError | None = None
        saw_cycle = False
        for k in await res.reader.all(otype, oid, rw.tupleset):
            pt, _, pid = k.user.partition(":")
            if "#" in pid or pid == "*":
                continue  # tuplesets hold plain objects only
            if ts.get_relation(pt, rw.computed) is None:
                continue  # the parent's type does not define the relation: that branch is empty
            try:
                if not res.condition_holds(k):
                    continue
                r = await self.resolve_tri(res, pt, pid, rw.computed, depth + 1, path, neg)
            except FGAError as exc:
                error = exc
                continue
            if r == TRUE:
                return TRUE
            saw_cycle = saw_cycle or r == CYCLE
        if error is not None:
            raise error
        return CYCLE if saw_cycle else FALSE

    async def _combine(
        self,
        res: Resolution,
        otype: str,
        oid: str,
        relation: str,
        children: tuple[Rewrite, ...],
        depth: int,
        path: frozenset[Any],
        neg: bool,
        decisive: int,
    ) -> int:
        """Union (``decisive=TRUE``) or intersection (``decisive=FALSE``): the first child that answers
        ``decisive`` settles it; otherwise the opposite, unless some child met a cycle. An error in one child
        is raised only if no other child settles the answer (OpenFGA does the same)."""
        error: FGAError | None = None
        saw_cycle = False
        for c in children:
            try:
                r = await self._eval(res, otype, oid, relation, c, depth, path, neg)
            except FGAError as exc:
                error = exc
                continue
            if r == decisive:
                return decisive
            saw_cycle = saw_cycle or r == CYCLE
        if error is not None:
            raise error
        if saw_cycle:
            return CYCLE
        return FALSE if decisive == TRUE else TRUE

    async def _but_not(
        self,
        res: Resolution,
        otype: str,
        oid: str,
        relation: str,
        rw: Difference,
        depth: int,
        path: frozenset[Any],
        neg: bool = False,
    ) -> int:
        base = await self._eval(res, otype, oid, relation, rw.base, depth, path, neg)
        if base == FALSE:
            return FALSE
        sub = await self._eval(res, otype, oid, relation, rw.subtract, depth, path, not neg)
        if sub == TRUE:
            return FALSE
        if sub == CYCLE or base == CYCLE:
            return CYCLE
        return TRUE


@dataclass
class _Entry:
    allowed: bool
    expires: float


class TTLCache:
    """A small cache with a time to live and a size bound (oldest tenth dropped when full)."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[tuple[Any, ...], tuple[Any, float]] = {}

    def lookup(self, key: tuple[Any, ...]) -> tuple[bool, Any]:
        hit = self._entries.get(key)
        if hit is None:
            return False, None
        if hit[1] < time.monotonic():
            self._entries.pop(key, None)
            return False, None
        return True, hit[0]

    def store(self, key: tuple[Any, ...], value: Any) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            for k in list(self._entries)[: self.max_entries // 10 or 1]:
                del self._entries[k]
        self._entries[key] = (value, time.monotonic() + self.ttl)


class CachedChecker:
    """Caches top-level answers for ``ttl`` seconds, keyed by store revision, model, tuple and context, so a
    write in this process is never answered from a stale entry. Requests with contextual tuples and
    ``HIGHER_CONSISTENCY`` requests go straight to the next resolver."""

    def __init__(self, inner: CheckResolver, *, ttl: float = 10.0, max_entries: int = 10_000) -> None:
        self.inner = inner
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self._lock = asyncio.Lock()
        self.hits = 0

    @staticmethod
    def key(
        store_id: str,
        model_id: str,
        revision: int,
        obj: str,
        relation: str,
        user: str,
        context: Mapping[str, Any],
    ) -> tuple[Any, ...]:
        ctx = (
            hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode()).hexdigest()
            if context
            else ""
        )
        return (store_id, model_id, revision, obj, relation, user, ctx)

    def get(self, key: tuple[Any, ...]) -> bool | None:
        e = self._entries.get(key)
        if e is None:
            return None
        if e.expires < time.monotonic():
            self._entries.pop(key, None)
            return None
        self.hits += 1
        return e.allowed

    def put(self, key: tuple[Any, ...], allowed: bool) -> None:
        if len(self._entries) >= self.max_entries:
            # Drop the oldest tenth: dicts keep insertion order.
            for k in list(self._entries)[: self.max_entries // 10 or 1]:
                del self._entries[k]
        self._entries[key] = _Entry(allowed, time.monotonic() + self.ttl)

    async def resolve(self, res: Resolution, otype: str, oid: str, relation: str) -> bool:
        """Answer from the cache when ``res.cache_key`` is set (the service sets it only for cacheable
        requests), else ask the next resolver; remember what it says."""
        if res.cache_key is None:
            return await self.inner.resolve(res, otype, oid, relation)
        hit = self.get(res.cache_key)
        if hit is not None:
            return hit
        allowed = await self.inner.resolve(res, otype, oid, relation)
        self.put(res.cache_key, allowed)
        return allowed
