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
from tessera.fga.engine.links import Grant, LinkIndex, as_rows, is_set, slices
from tessera.fga.engine.reader import LayerRow
from tessera.fga.engine.tuples import TupleKey
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

DEFAULT_CONCURRENCY = 512
_THE_USER = "\x00user"  # stands for the request's user in the plans kept per model
# Index probes (set x object) one read may make for a user's sets before reading every userset tuple of
# the kinds is the cheaper way.
_MAX_SET_PROBES = 2_000
# What an index probe costs in tuples scanned inside an object's key range (see SetEvaluator._own_rows).
_PROBE_COST = 8
# Consecutive reads from the user's side that exceeded their budget on a type before it is tried seldom.
_OWN_MISSES = 3
_OWN_RETRY = 16
# A user's own tuples (naming the user or the wildcard) on one type read beside the link index at most;
# past it the type is read from the candidates' side.
_OWN_LIMIT = 10_000
# With the link index, a userset kind that is not a nesting kind and has at most this many sets with grants on
# a layer's type is resolved forwards: those sets' grants come from the index, and whether the user is in
# each is evaluated set at a time like any layer (from the index too), instead of walking back from the user
# to every set of the kind they are in.
_FORWARD_SETS = 64


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
    probe_cost: int = _PROBE_COST,
    links: LinkIndex | None = None,
) -> set[str]:
    """The ids among ``object_ids`` that ``res.user`` has ``relation`` with.

    Three strategies, in this order. When nothing the relation depends on has cycles (groups in groups
    aside), :class:`SetEvaluator` resolves all candidates set by set: one batched read per layer of
    objects, whoever the user is. Otherwise, and when no condition can occur below the relation, the
    user's side is tried: a backwards walk from the user (ListObjects' reverse expansion) within
    ``reverse_budget`` facts, intersected with the candidates; a user who reaches more, or a relation with
    conditions, falls back to the candidates' side, per object but all at once (:func:`check_many`).
    Candidates the walk leaves undecided (cycles) or found deeper than the depth limit get the per-object
    check too, so the answer is Check's.
    """
    ids = list(dict.fromkeys(object_ids))
    if not ids:
        return set()
    from tessera.fga.engine.list_objects import closure

    if res.ts.set_evaluable(object_type, relation):
        # Without cycles, set-at-a-time costs one batched read per rewrite step whoever the user is.
        was = res.reader.batching
        res.reader.batching = True
        try:
            evaluator = SetEvaluator(res, probe_cost, links)
            return await evaluator.union(object_type, set(ids), frozenset([relation]), 0)
        except _Fallback:
            pass
        finally:
            res.reader.batching = was
    # A walk from the user's side never meets the tuples that have nothing to do with the user, so it
    # cannot see a forward Check fail on one (a condition missing its parameter): where conditions can
    # occur, the candidates get Check's own resolution.
    walk = bool(reverse_budget) and not res.ts.conditional(object_type, relation)
    cl = await closure(res, object_type, relation, reverse_budget) if walk else None
    if cl is None:
        verdicts = await check_many(res, object_type, relation, ids)
        return {i for i, ok in zip(ids, verdicts, strict=True) if ok}
    # Nor can the walk see a forward Check meet the depth limit on a candidate it does not reach (Check
    # fails with authorization_model_resolution_too_complex wherever its dispatches go 25 deep, whether or
    # not they lead to the user). Unless the model bounds every dispatch chain below the limit, those
    # candidates get Check's own resolution, which fails the request as Check would.
    bounded = _dispatch_bound(res.ts, object_type, relation)
    sure_of_no = bounded is not None and bounded < res.max_depth
    allowed: set[str] = set()
    unsure: list[str] = []
    for i in ids:
        if i in cl.sure and cl.depth.get(i, 0) < res.max_depth:
            allowed.add(i)
        elif i in cl.maybe or i in cl.sure or not sure_of_no:
            unsure.append(i)
    if unsure:
        verdicts = await check_many(res, object_type, relation, unsure)
        allowed.update(i for i, ok in zip(unsure, verdicts, strict=True) if ok)
    return allowed


def _dispatch_bound(ts: TypeSystem, otype: str, relation: str) -> int | None:
    """The most dispatches deep a forward Check of ``otype#relation`` can go (a computed userset, a
    tuple-to-userset or a userset tuple is one level each, as in check.py), whatever the tuples; None when
    the model bounds it by no number: a cycle, a nesting kind's loop on itself included (a group tree is
    as deep as its tuples). Every edge counts, whether or not it can lead to the user, because Check
    meets the limit before it prunes (``resolve_tri``). Worked out once per model."""
    memo: dict[tuple[str, str], int | None] = ts.cache.setdefault("filter_dispatch_bound", {})
    key = (otype, relation)
    if key in memo:
        return memo[key]
    # Depth-first with an explicit stack; a node met again while on the stack is a cycle.
    on_path: set[tuple[str, str]] = set()

    def edges(node: tuple[str, str]) -> list[tuple[str, str]]:
        rels = ts.types.get(node[0], {})
        rel = rels.get(node[1])
        if rel is None:
            return []
        out: list[tuple[str, str]] = list(rel.userset_refs)
        stack: list[Rewrite] = [rel.rewrite]
        while stack:
            rw = stack.pop()
            if isinstance(rw, Computed):
                out.append((node[0], rw.relation))
            elif isinstance(rw, TupleToUserset):
                ts_rel = rels.get(rw.tupleset)
                for ref in ts_rel.directly_related if ts_rel is not None else ():
                    if rw.computed in ts.types.get(ref.type, {}):
                        out.append((ref.type, rw.computed))
            elif isinstance(rw, (Union, Intersection)):
                stack.extend(rw.children)
            elif isinstance(rw, Difference):
                stack += [rw.base, rw.subtract]
        return out

    def bound(node: tuple[str, str]) -> int | None:
        if node in memo:
            return memo[node]
        if node in on_path:
            return None
        on_path.add(node)
        deepest: int | None = 0
        for nxt in edges(node):
            b = bound(nxt)
            if b is None:
                deepest = None
                break
            assert deepest is not None
            deepest = max(deepest, b + 1)
        on_path.discard(node)
        memo[node] = deepest
        return deepest

    return bound(key)


# A union-only part of a model, flattened for one object type and a set of relations (see _flat): (the
# relations whose own tuples grant, each with the most computed steps it is reached in; per tupleset, the
# relations followed on the parent; the most steps to a tuple-to-userset; every relation met).
_Flat = tuple[tuple[tuple[str, int], ...], tuple[tuple[str, frozenset[str]], ...], int, frozenset[str]]


def _flat(ts: TypeSystem, otype: str, relations: frozenset[str]) -> _Flat | None:
    """``relations`` of ``otype`` as one union, when every rewrite they reach through computed usersets
    is a union of direct tuples, computed usersets and tuple-to-usersets (no intersection or exclusion):
    an object is in it when one of its own tuples on a direct relation grants, or when one of its parents
    through a tupleset is in the relations followed there. Worked out once per model."""
    memo = ts.cache.setdefault("filter_flat", {})
    key = (otype, relations)
    if key in memo:
        hit: _Flat | None = memo[key]
        return hit
    direct: dict[str, int] = {}
    follow: dict[str, set[str]] = {}
    seen: dict[str, int] = {}
    deepest = 0
    stack = [(r, 0) for r in sorted(relations)]
    out: _Flat | None = None
    while stack:
        name, steps = stack.pop()
        if seen.get(name, -1) >= steps:
            continue
        seen[name] = steps
        rel = ts.get_relation(otype, name)
        if rel is None:
            continue
        rws: list[Rewrite] = [rel.rewrite]
        while rws:
            rw = rws.pop()
            if isinstance(rw, Union):
                rws.extend(rw.children)
            elif isinstance(rw, This):
                direct[name] = max(direct.get(name, 0), steps)
            elif isinstance(rw, Computed):
                stack.append((rw.relation, steps + 1))
            elif isinstance(rw, TupleToUserset):
                follow.setdefault(rw.tupleset, set()).add(rw.computed)
                deepest = max(deepest, steps + 1)
            else:
                memo[key] = None
                return None
        deepest = max(deepest, steps)
    out = (
        tuple(sorted(direct.items())),
        tuple((t, frozenset(c)) for t, c in sorted(follow.items())),
        deepest,
        frozenset(seen),
    )
    memo[key] = out
    return out


class _Fallback(Exception):
    """Set-at-a-time evaluation met something it leaves to the per-object resolver."""


class SetEvaluator:
    """Resolve one relation for many objects at once, for one user, set by set: every rewrite step is one
    batched read for all the objects still undecided, and Python work is a few set operations per step rather
    than a coroutine per object and step. Only for relations whose dependencies have no cycles
    (:meth:`TypeSystem.set_evaluable`); nesting kinds (groups in groups) are answered from the user's side.
    Anything unusual (an undecided membership, a condition error, the depth limit) raises :class:`_Fallback`
    and the caller resolves per object, so answers and errors stay exactly Check's."""

    def __init__(
        self, res: Resolution, probe_cost: int = _PROBE_COST, links: LinkIndex | None = None
    ) -> None:
        self.res = res
        self.probe_cost = probe_cost
        self.links = links
        # (object type, tupleset) -> (the loaded objects grouped so far, parent type -> id -> those objects).
        self._groups: dict[tuple[str, str], tuple[set[str], dict[str, dict[str, set[str]]]]] = {}
        # Tupleset relations read straight from the link index by tuple-to-userset (see _indexed).
        self._index_links: set[tuple[str, str]] = set()
        # (type, relations) -> (ids decided, the ids among them in one of the relations): see union().
        self._union_memo: dict[tuple[str, frozenset[str]], tuple[set[str], set[str]]] = {}
        # (type, relation) -> whether the type defines the relation.
        self._defines: dict[tuple[str, str], bool] = {}
        # Userset kinds resolved forwards instead of from the user's closure (see _FORWARD_SETS).
        self._forward: set[tuple[str, str]] = set()
        # Per object type: the user's own tuples (naming the user or the wildcard) read beside the index.
        self._own_index: dict[str, dict[str, dict[str, list[LayerRow]]] | None] = {}
        # (type, relation) -> (ids decided, the ids among them that are in the relation).
        self.memo: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
        # Per object type: what one read of its objects fetches (see _plan), None: read per relation.
        self._plans: dict[str, tuple[list[str], list[str], list[tuple[str, str]]] | None] = {}
        # Per object type: the relations a tuple can grant the user on directly (not tuplesets).
        self._granting: dict[str, list[str]] = {}
        # Per object type: the user's own tuples on those relations, from the user's side (see _own_rows);
        # None: read from the candidates' side.
        self._own: dict[str, dict[str, dict[str, list[LayerRow]]] | None] = {}
        # Per object type: relation -> id -> the planned rows, for the ids in _ids.
        self._rows: dict[str, dict[str, dict[str, list[LayerRow]]]] = {}
        self._ids: dict[str, set[str]] = {}

    def _names(self, otype: str, relation: str) -> list[str]:
        """The user strings a direct tuple of ``otype#relation`` would name the user by."""
        user = self.res.user
        names: list[str] = []
        for ref in self.res.ts.types[otype][relation].directly_related:
            if ref.type != user.type:
                continue
            if user.relation is None:
                if ref.wildcard:
                    names.append(f"{user.type}:*")
                elif ref.relation is None and not user.wildcard:
                    names.append(str(user))
            elif ref.relation == user.relation:
                names.append(str(user))
        return names

    async def _plan(self, otype: str) -> tuple[list[str], list[str], list[tuple[str, str]]] | None:
        """What the evaluation can ever use of an object of ``otype``, for this user: every tuple on a
        tupleset relation (``parent``), the direct tuples naming the user or the wildcard, the userset tuples
        of the sets the user is in (from the user-side closures, computed here once per kind), and every
        userset tuple of kinds without a closure. One read of exactly that per layer of objects replaces one
        read per relation of every row; the database drops the rest (other users' grants)."""
        if otype in self._plans:
            return self._plans[otype]
        res, ts, user = self.res, self.res.ts, self.res.user
        # What depends only on the model and the kind of user is worked out once per model.
        static = ts.cache.setdefault("filter_plans", {})
        ck = (otype, user.type, user.relation, user.wildcard)
        hit = static.get(ck)
        if hit is None:
            tuplesets: set[str] = set()
            named: set[str] = set()
            kinds: set[tuple[str, str]] = set()
            holding: list[str] = []
            for relation, rel in ts.types[otype].items():
                stack: list[Rewrite] = [rel.rewrite]
                while stack:
                    rw = stack.pop()
                    if isinstance(rw, TupleToUserset):
                        tuplesets.add(rw.tupleset)
                    elif isinstance(rw, (Union, Intersection)):
                        stack.extend(rw.children)
                    elif isinstance(rw, Difference):
                        stack += [rw.base, rw.subtract]
                direct = self._names(otype, relation)
                refs = [r for r in rel.userset_refs if ts.may_contain(r[0], r[1], user)]
                named.update(_THE_USER if n == str(user) else n for n in direct)
                kinds.update(refs)
                if direct or refs:
                    holding.append(relation)
            granting = [r for r in holding if r not in tuplesets]
            hit = static[ck] = (sorted(tuplesets), tuple(named), sorted(kinds), granting)
        self._granting[otype] = hit[3]
        names = {str(user) if n == _THE_USER else n for n in hit[1]}
        whole: list[tuple[str, str]] = []
        for st, srel in hit[2]:
            if self.links is not None and not ts.nesting_kind(st, srel):
                kind_users = self.links.kind_users.get(otype, {}).get(f"{st}#{srel}", ())
                if len(kind_users) <= _FORWARD_SETS:
                    self._forward.add((st, srel))
                    whole.append((st, srel))
                    continue
            cl = await res.closure(st, srel)
            if cl is None:
                whole.append((st, srel))
            else:
                names.update(f"{st}:{sid}#{srel}" for sid in (*cl.sure, *cl.maybe))
        plan = (hit[0], sorted(names), whole)
        self._plans[otype] = plan
        return plan

    async def _load(self, otype: str, ids: set[str]) -> None:
        """Read the planned rows of the objects not read yet, in one call (see :meth:`_plan`)."""
        plan = await self._plan(otype)
        if plan is None:
            return
        done = self._ids.setdefault(otype, set())
        todo = ids - done
        if not todo:
            return
        reader = self.res.reader
        got: dict[str, dict[str, list[LayerRow]]] | None = None
        if self.links is not None:
            got = await self._indexed(otype, plan, todo)
            if got is not None:
                rows = self._rows.setdefault(otype, {})
                for relation, by_id in got.items():
                    rows.setdefault(relation, {}).update(by_id)
                done |= todo
                return
        own = await self._own_rows(otype, plan, len(todo))
        if own is None:
            got = await reader.objects_many(otype, sorted(todo), *plan)
        else:
            # The user's own tuples are known for every object of the type: the candidates' side only
            # has to give the tupleset links (a probe per object and relation).
            got = await reader.objects_many(otype, sorted(todo), plan[0], [], []) if plan[0] else {}
            if got is not None:
                for relation, by_id in own.items():
                    got[relation] = _among(by_id, todo)
        if got is None:
            self._plans[otype] = None  # read relation by relation from now on
            return
        rows = self._rows.setdefault(otype, {})
        for relation, by_id in got.items():
            rows.setdefault(relation, {}).update(by_id)
        done |= todo

    async def _indexed(
        self, otype: str, plan: tuple[list[str], list[str], list[tuple[str, str]]], todo: set[str]
    ) -> dict[str, dict[str, list[LayerRow]]] | None:
        """The planned rows of ``todo`` (see :meth:`_plan`) from the link index: the tupleset links and
        the grants to the user's sets and the wildcard from memory, the tuples naming the user from the
        reverse index, once per request and type. None when the index cannot
        answer (contextual tuples on the type, a relation it lacks, a user with too many own tuples): the
        candidates' side is read instead."""
        links, reader, ts = self.links, self.res.reader, self.res.ts
        assert links is not None
        if not reader.reads_users(otype):
            return None
        tuplesets, names, whole = plan
        granting = self._granting.get(otype, [])
        if otype in self._own_index:
            own = self._own_index[otype]
        else:
            direct = [n for n in names if not is_set(n)]
            own = (
                {}
                if not direct or not granting
                else await reader.users_many(otype, granting, direct, _OWN_LIMIT)
            )
            self._own_index[otype] = own
        if own is None:
            return None
        sets = [n for n in names if is_set(n)]
        for st, srel in whole:
            # Every set of a kind read whole: from the index when there are few.
            kind_users = links.kind_users.get(otype, {}).get(f"{st}#{srel}", set())
            if len(kind_users) > _FORWARD_SETS:
                return None
            sets += sorted(kind_users.difference(sets))
        admit = self._admit
        out: dict[str, dict[str, list[LayerRow]]] = {}
        user = self.res.user
        followed: list[tuple[str, str]] = []
        for relation in tuplesets:
            links_of = links.links.get((otype, relation))
            if links_of is None:
                return None
            rel = ts.types[otype][relation]
            if not self._names(otype, relation) and not any(
                ts.may_contain(t, r, user) for t, r in rel.userset_refs
            ):
                # Only followed (tuple to userset), never a grant to this user: read from the index when
                # the layer's parents are grouped (see _group_links), without a copy here.
                followed.append((otype, relation))
                continue
            by_id: dict[str, list[LayerRow]] = {}
            for i in todo:
                entry = links_of.get(i)
                if entry is not None:
                    kept = [row for row in as_rows(entry) if admit(otype, i, relation, row[0], row[1])]
                    if kept:
                        by_id[i] = kept
            if by_id:
                out[relation] = by_id
        wanted = slices(ts)[1]
        with_sets = {r for r in granting if (otype, r) in wanted} if sets else set()
        if with_sets:
            if not all((otype, r) in links.set_relations for r in with_sets):
                return None
            by_user = links.sets.get(otype, {})
            by_object = links.set_objects.get(otype, {})
            # From the smaller side: a set's grants cost a lookup per candidate (or per grant, when it
            # has fewer), every set of the user's; a candidate's grants from the object's side cost one
            # lookup and a pass over its set grants (a few each: the type's average), whatever the
            # number of sets. A user in 20-odd teams (nested into t0) looks the candidates up; the hot
            # user, in one team with many grants, intersects.
            objects = len(by_object)
            per_object = 1 + links.set_pairs.get(otype, 0) / objects if objects else 0.0
            if len(sets) > per_object:
                in_sets = set(sets)
                pairs: list[tuple[str, str, Grant]] = []
                of_object = by_object.get
                for i in todo:
                    flat = of_object(i)
                    if flat is None:
                        continue
                    pair = iter(flat)
                    for name in pair:
                        grant = next(pair)
                        if name in in_sets:
                            pairs.append((i, name, grant))
            else:
                pairs = []
                for name in sets:
                    grants = by_user.get(name)
                    if not grants:
                        continue
                    # The set's grants among the candidates, on every relation at once: one C-level
                    # intersection of two hash sets.
                    for i in grants.keys() & todo:
                        held = grants[i]
                        for grant in held if isinstance(held, list) else (held,):
                            pairs.append((i, name, grant))
            for i, name, grant in pairs:
                row: LayerRow
                if isinstance(grant, str):
                    relation, row = grant, (name, None, None)
                else:
                    relation, row = grant[0], (name, grant[1], grant[2])
                if relation not in with_sets or not admit(otype, i, relation, name, row[1]):
                    continue
                rel_rows = out.get(relation)
                if rel_rows is None:
                    rel_rows = out[relation] = {}
                found = rel_rows.get(i)
                if found is None:
                    rel_rows[i] = [row]
                else:
                    found.append(row)
        for relation in granting:
            mine = own.get(relation)
            if mine:
                by_id = out.setdefault(relation, {})
                for i, found in _among(mine, todo).items():
                    by_id[i] = by_id.get(i, []) + found
        self._index_links.update(followed)
        return out

    async def _own_rows(
        self, otype: str, plan: tuple[list[str], list[str], list[tuple[str, str]]], objects: int
    ) -> dict[str, dict[str, list[LayerRow]]] | None:
        """The user's own tuples (naming the user, the wildcard, or one of the user's sets) on the relations
        of ``otype`` that are not tuplesets, from the user's side (the reverse index), once per request and
        type, when that is the cheaper side: the candidates' side then reads only their tupleset links, a
        probe per object instead of a scan of all the object's tuples. Only for types known to be small (a
        filtered layer read follows) and plans that read no kind whole (those rows come only from the
        candidates' side). None: read from the candidates' side."""
        if otype in self._own:
            return self._own[otype]
        reader = self.res.reader
        granting, names = self._granting.get(otype, []), plan[1]
        density = reader.densities.get(otype)
        own = None
        usable = bool(not plan[2] and granting and names) and otype in reader.small_types
        if usable and density is not None and reader.reads_users(otype):
            if self.probe_cost <= 0:
                # Whenever the evaluation allows, as far as a layer read would go.
                own = await reader.users_many(otype, granting, names, objects * reader.object_prefetch)
                self._own[otype] = own
                return own
            # In tuples scanned: the candidates' side scans each object's tuples off its tupleset links;
            # the user's side pays a probe per relation and name (on SQLite a probe of an index costs
            # about 8 tuples scanned inside a key range: random pages against neighbouring rows) and then
            # the user's tuples on the type, so it may read as many as the candidates' side would scan.
            probes = len(granting) * len(names)
            budget = int(objects * (density - len(plan[0]))) - probes * self.probe_cost
            # A type on which users' own tuples keep exceeding that (every user inherits a team that reads
            # thousands of repositories) is tried again only every 16th request: a try that finds out
            # costs about what the candidates' side would. A saving under a tuple per object does not pay
            # for the second statement.
            misses = reader.own_misses.setdefault(otype, [0, 0])
            seldom = misses[0] >= _OWN_MISSES and misses[1] < _OWN_RETRY - 1
            if budget >= objects and seldom:
                misses[1] += 1
            elif budget >= objects:
                misses[1] = 0
                own = await reader.users_many(otype, granting, names, budget)
                misses[0] = misses[0] + 1 if own is None else 0
        self._own[otype] = own
        return own

    def _loaded(self, otype: str, ids: set[str]) -> dict[str, dict[str, list[LayerRow]]] | None:
        """relation -> id -> planned rows, when every one of ``ids`` has been read by :meth:`_load`."""
        if self._plans.get(otype) is None or not ids <= self._ids.get(otype, set()):
            return None
        return self._rows.get(otype, {})

    async def union(self, otype: str, ids: set[str], relations: frozenset[str], depth: int) -> set[str]:
        """The ids in any of ``relations``. A union-only part of the model (see :func:`_flat`) is evaluated
        as one: each direct relation's own tuples once, then each tupleset's parents once for every relation
        followed through it (a repository's owner for its admins, writers and readers alike), instead of one
        rewrite step per relation and operand. Other parts go relation by relation."""
        res = self.res
        flat = _flat(res.ts, otype, relations)
        if flat is None:
            allowed: set[str] = set()
            for relation in sorted(relations):
                rest = ids - allowed if allowed else ids
                if rest:
                    allowed |= await self.relation(otype, rest, relation, depth)
            return allowed
        direct, follow, deepest, met = flat
        # The steps inside the layer are counted at their most, so the depth limit is met no later than
        # Check would meet it on any path; past it, Check's own resolver decides.
        if depth + deepest >= res.max_depth - 2:
            raise _Fallback
        known, members = self._union_memo.setdefault((otype, relations), (set(), set()))
        need = ids - known if known else ids
        if need:
            got: set[str] = set()
            user = res.user
            if user.type == otype and user.relation in met and user.id in need:
                got.add(user.id)  # a userset is in itself
            rest = need - got if got else need
            await self._load(otype, rest)
            for relation, steps in direct:
                if not rest:
                    break
                found = await self._this(otype, rest, relation, depth + steps)
                if found:
                    got |= found
                    rest = rest - found
            for tupleset, followed in follow:
                if not rest:
                    break
                found = await self._follow(otype, rest, tupleset, followed, depth + deepest)
                if found:
                    got |= found
                    rest = rest - found
            known |= need
            members |= got
            if need is ids:
                return got & ids
        return ids & members

    async def _follow(
        self, otype: str, ids: set[str], tupleset: str, relations: frozenset[str], depth: int
    ) -> set[str]:
        """The ids linked through ``tupleset`` to a parent in one of ``relations`` (a tuple-to-userset)."""
        res, reader = self.res, self.res.reader
        loaded = self._loaded(otype, ids)
        full = False
        if loaded is None:
            rows = _as_rows(await reader.all_many(otype, sorted(ids), tupleset))
            parents = self._group(otype, tupleset, rows, {})
            full = True
        else:
            covered, parents = self._groups.setdefault((otype, tupleset), (set(), {}))
            indexed = (otype, tupleset) in self._index_links
            if len(ids) * 2 < len(covered):
                # A few of the layer's objects (a union's remainder): their own rows are fewer than the
                # layer's parents.
                if indexed:
                    parents = self._group_links(otype, tupleset, ids, {})
                else:
                    parents = self._group(otype, tupleset, _among(loaded.get(tupleset), ids), {})
                full = True
            else:
                extra = ids - covered
                if extra and indexed:
                    self._group_links(otype, tupleset, extra, parents)
                elif extra:
                    self._group(otype, tupleset, _among(loaded.get(tupleset), extra), parents)
                covered |= extra
                full = len(ids) == len(covered)
        allowed: set[str] = set()
        for pt, by_pid in parents.items():
            # Only parent types that define a relation followed (OpenFGA skips the others).
            defined = []
            for relation in relations:
                ok = self._defines.get((pt, relation))
                if ok is None:
                    ok = self._defines[(pt, relation)] = res.ts.get_relation(pt, relation) is not None
                if ok:
                    defined.append(relation)
            if not defined:
                continue
            # The layer's parents are grouped once and shared by every tuple-to-userset on the tupleset.
            children = by_pid if full else {p: k for p, kids in by_pid.items() if (k := kids & ids)}
            for pid in await self.union(pt, set(children), frozenset(defined), depth):
                allowed |= children[pid]
        return allowed

    async def relation(self, otype: str, ids: set[str], relation: str, depth: int) -> set[str]:
        res = self.res
        known, members = self.memo.setdefault((otype, relation), (set(), set()))
        # No copies of the candidates where none is needed: a relation is mostly met once per layer.
        need = ids - known if known else ids
        if need:
            if depth >= res.max_depth:
                raise _Fallback
            rel = res.ts.get_relation(otype, relation)
            got: set[str] = set()
            user = res.user
            if user.relation == relation and user.type == otype and user.id in need:
                got.add(user.id)  # a userset is in itself
            if rel is not None and res.ts.may_contain(otype, relation, user):
                rest = need - got if got else need
                await self._load(otype, rest)
                got |= await self.rewrite(otype, rest, relation, rel.rewrite, depth)
            known |= need
            members |= got & need
            if need is ids:
                return got & ids
        return ids & members

    def _holds(self, otype: str, oid: str, relation: str, row: LayerRow) -> bool:
        """Whether a row's condition holds (rows without one always do); an evaluation error leaves the
        request to the per-object resolver."""
        user, cname, cctx = row
        if not cname:
            return True
        try:
            return self.res.condition_holds(TupleKey(f"{otype}:{oid}", relation, user, cname, cctx))
        except FGAError:
            raise _Fallback from None

    async def rewrite(self, otype: str, ids: set[str], relation: str, rw: Rewrite, depth: int) -> set[str]:
        if not ids:
            return set()
        if isinstance(rw, This):
            return await self._this(otype, ids, relation, depth)
        if isinstance(rw, Computed):
            return await self.relation(otype, ids, rw.relation, depth + 1)
        if isinstance(rw, TupleToUserset):
            return await self._follow(otype, ids, rw.tupleset, frozenset([rw.computed]), depth + 1)
        if isinstance(rw, Union):
            allowed, remaining = set(), set(ids)
            for c in rw.children:
                got = await self.rewrite(otype, remaining, relation, c, depth)
                allowed |= got
                remaining -= got
                if not remaining:
                    break
            return allowed
        if isinstance(rw, Intersection):
            current = set(ids)
            for c in rw.children:
                current = await self.rewrite(otype, current, relation, c, depth)
                if not current:
                    break
            return current
        assert isinstance(rw, Difference)
        base = await self.rewrite(otype, ids, relation, rw.base, depth)
        return base - await self.rewrite(otype, base, relation, rw.subtract, depth)

    def _admit(self, otype: str, oid: str, relation: str, user: str, cname: str | None) -> bool:
        """Whether the request's model admits a tuple kept by the link index (as the reader's reads do)."""
        hash_at = user.find("#")
        if hash_at >= 0:
            kind = user[: user.index(":")] + user[hash_at:]
        else:
            kind = user if user.endswith(":*") else user[: user.index(":")]
        ok = self.res.ts.cache.setdefault("allowed", {}).get((otype, relation, kind, cname))
        if ok is None:
            ok = self.res.reader.allowed(otype, TupleKey(f"{otype}:{oid}", relation, user, cname))
        return bool(ok)

    def _group_links(
        self, otype: str, tupleset: str, ids: set[str], parents: dict[str, dict[str, set[str]]]
    ) -> dict[str, dict[str, set[str]]]:
        """:meth:`_group` for links kept by the index, read from it directly. A plain link (a user string:
        an object, no condition) is admitted by its type alone: when every type the slice's plain links
        have named is, they are taken as they are."""
        assert self.links is not None
        links_of = self.links.links[(otype, tupleset)]
        admit = self._admit
        types = self.links.link_types.get((otype, tupleset), ())
        plain = all(admit(otype, "x", tupleset, f"{t}:x", None) for t in types)
        for i in ids:
            entry = links_of.get(i)
            if entry is None:
                continue
            if plain and type(entry) is str:
                pt, _, pid = entry.partition(":")
                by_id = parents.get(pt)
                if by_id is None:
                    by_id = parents[pt] = {}
                kids = by_id.get(pid)
                if kids is None:
                    by_id[pid] = {i}
                else:
                    kids.add(i)
                continue
            kept = [row for row in as_rows(entry) if admit(otype, i, tupleset, row[0], row[1])]
            if kept:
                self._group(otype, tupleset, {i: kept}, parents)
        return parents

    def _group(
        self,
        otype: str,
        tupleset: str,
        rows: dict[str, list[LayerRow]],
        parents: dict[str, dict[str, set[str]]],
    ) -> dict[str, dict[str, set[str]]]:
        """Add ``rows`` (an object's tupleset links) to ``parents``: parent type -> parent id -> the objects
        linked to it (links to usersets and links whose condition does not hold left out)."""
        for i, found in rows.items():
            for row in found:
                pt, _, pid = row[0].partition(":")
                if "#" in pid or (row[1] and not self._holds(otype, i, tupleset, row)):
                    continue
                by_id = parents.get(pt)
                if by_id is None:
                    by_id = parents[pt] = {}
                kids = by_id.get(pid)
                if kids is None:
                    by_id[pid] = {i}
                else:
                    kids.add(i)
        return parents

    async def _this(self, otype: str, ids: set[str], relation: str, depth: int) -> set[str]:
        res, reader, ts, user = self.res, self.res.reader, self.res.ts, self.res.user
        rel = ts.types[otype][relation]
        names = self._names(otype, relation)
        refs = tuple(r for r in rel.userset_refs if ts.may_contain(r[0], r[1], user))
        loaded = self._loaded(otype, ids)
        allowed: set[str] = set()
        rows: dict[str, list[LayerRow]]
        if loaded is not None:
            # One pass over the planned rows (only objects that have some on this relation): the direct
            # ones naming the user decide at once; the userset ones are kept for the loop below. The plan
            # holds only the userset tuples of sets the user is in (or of kinds without a closure), which
            # is all that loop acts on.
            wanted = set(names)
            kinds = {f"{t}#{r}" for t, r in refs}
            rows = {}
            for i, found in _among(loaded.get(relation), ids).items():
                for row in found:
                    u = row[0]
                    if u in wanted:
                        if i not in allowed and self._holds(otype, i, relation, row):
                            allowed.add(i)
                    elif kinds and "#" in u and _kind(u) in kinds:
                        kept = rows.get(i)
                        if kept is None:
                            rows[i] = [row]
                        else:
                            kept.append(row)
            for i in allowed:
                rows.pop(i, None)
        else:
            # Relation by relation (a type too big to read whole). When the user's closures of every
            # userset kind here are known and small, the userset tuples that can matter are exactly those
            # naming one of the user's sets: they come in the same read as the direct ones (index probes),
            # instead of a second read of every userset tuple of the kinds.
            sets = await self._user_sets(refs, len(ids))
            rows = {}
            if names or sets:
                wanted = set(names)
                asked = tuple(dict.fromkeys([*names, *(sets or ())]))
                got = await reader.direct_many(otype, sorted(ids), relation, asked)
                for i, found in _as_rows(got).items():
                    for row in found:
                        if row[0] not in wanted:
                            rows.setdefault(i, []).append(row)
                        elif i not in allowed and self._holds(otype, i, relation, row):
                            allowed.add(i)
                for i in allowed:
                    rows.pop(i, None)
            remaining = sorted(ids - allowed)
            if sets is None and refs and remaining:
                rows = _as_rows(await reader.usersets_many(otype, remaining, relation, refs))
        by_kind: dict[tuple[str, str], dict[str, set[str]]] = {}  # (type, rel) -> set id -> object ids
        for i, found in rows.items():
            for row in found:
                if row[1] and not self._holds(otype, i, relation, row):
                    continue
                st, _, rest = row[0].partition(":")
                sid, _, srel = rest.partition("#")
                by_kind.setdefault((st, srel), {}).setdefault(sid, set()).add(i)
        budget = res.max_depth - depth - 2
        for (st, srel), holders in by_kind.items():
            cl = None if (st, srel) in self._forward else await res.closure(st, srel)
            if cl is not None:
                for sid, objs in holders.items():
                    if sid in cl.maybe or cl.depth.get(sid, 0) > budget:
                        raise _Fallback
                    if sid in cl.sure:
                        allowed |= objs
                continue
            if ts.nesting_kind(st, srel):
                raise _Fallback  # its loops need the per-object resolver
            for sid in await self.relation(st, set(holders), srel, depth + 1):
                allowed |= holders[sid]
        return allowed

    async def _user_sets(self, refs: tuple[tuple[str, str], ...], objects: int) -> list[str] | None:
        """The user strings of every set of the kinds ``refs`` the user is in (or may be), when every kind
        has a closure and probing them on ``objects`` objects stays small; else None."""
        if not refs:
            return []
        out: list[str] = []
        for st, srel in refs:
            cl = await self.res.closure(st, srel)
            if cl is None:
                return None
            out += [f"{st}:{sid}#{srel}" for sid in (*cl.sure, *cl.maybe)]
        return out if len(out) * objects <= _MAX_SET_PROBES else None


def _as_rows(by_id: dict[str, list[TupleKey]]) -> dict[str, list[LayerRow]]:
    """A per-relation read's tuple keys as layer rows (the object and relation are the read's)."""
    return {
        i: [(k.user, k.condition_name, k.condition_context) for k in found]
        for i, found in by_id.items()
        if found
    }


def _among(by_id: dict[str, list[LayerRow]] | None, ids: set[str]) -> dict[str, list[LayerRow]]:
    """The entries of ``by_id`` for ``ids`` (walking the smaller of the two)."""
    if not by_id:
        return {}
    if len(ids) < len(by_id):
        return {i: by_id[i] for i in ids if i in by_id}
    return {i: found for i, found in by_id.items() if i in ids}


def _kind(user: str) -> str:
    """``group:eng#member`` -> ``group#member``."""
    return user[: user.index(":")] + user[user.index("#") :]


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
