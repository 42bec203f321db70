"""Compiled Check plans: a relation's rewrite tree walked once per model, so a Check on it runs as a plain
search over objects instead of a walk of the rules.

For a plain user (``user:jon``, not a userset or wildcard) and a target ``type#relation`` whose whole
reachable part of the model is a union of direct tuples, computed usersets and tuple-to-usersets (no
intersection, no exclusion, no condition), Check's answer is plain reachability: the user is related exactly
when some chain of tuples leads from the object to the user, the type's wildcard or a set the user is in.
Cycles then never make anything true, so the order of the search and a visited set cannot change the answer
(OpenFGA's union semantics: ``true or cycle`` is true, a cycle alone is false).

A plan is a graph of :class:`Node` s, one per ``(type, set of relations)``: the computed usersets of one
object are merged into one node (``repo#reader`` holds reader, triager, writer, maintainer and admin), the
tuple-to-usersets of one tupleset into one edge per parent type, and userset restrictions into edges to the
set's own node, except nesting kinds (``team#member``), which are answered from the user's side (the
request's closures, see ``check.py``). Evaluating one object is then one read of its tuples (the
request reader's prefetch) and a loop over them.

The plan only answers when it is sure to agree with :class:`~tessera.fga.engine.check.LocalChecker`,
including its errors; otherwise it says so and the checker walks the rules as before:

* the depth limit (``authorization_model_resolution_too_complex``): the plan needs the relation graph below
  the target to be acyclic apart from nesting kinds, and its longest chain of dispatches (each computed
  userset, tuple-to-userset and userset one level, as the checker counts) below the limit; a nesting set
  deeper than the checker's remaining budget (the checker would resolve it forwards) is handed back;
* conditions: any tuple with a condition (contextual ones included) is handed back;
* a closure the checker could not use (too big, undecided members) is handed back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tessera.fga.engine.errors import FGAError
from tessera.fga.engine.links import LinkIndex, as_rows, is_set, slices
from tessera.fga.engine.tuples import TupleKey, User
from tessera.fga.engine.typesystem import Computed, This, TupleToUserset, TypeSystem, Union

if TYPE_CHECKING:
    from tessera.fga.engine.check import NestingIndex, Resolution

# Sets of the user probed with one big relation's direct tuples at most (as check.py's _MAX_KNOWN_SETS).
_MAX_KNOWN_SETS = 64
# Past this many of the user's sets, a big relation's usersets of the kinds are read instead (one range per
# kind, bounded by _MAX_KNOWN_SETS) of being probed one by one.
_MAX_PROBED_SETS = 4
_MISSING = object()
# Lookups of the user's sets of one nesting kind answered from each direct set's ancestors before they are
# merged into one map (see _Nesting.step).
_MERGE_AFTER = 4


class _Unsupported(Exception):
    """The model has a shape the plan does not evaluate (intersection, exclusion)."""


@dataclass(slots=True)
class Direct:
    """One relation of a node whose direct tuples count: which of the user's names the model admits on it,
    and the userset kinds (``team#member``) on it that may hold the user."""

    relation: str
    by_user: bool
    by_wildcard: bool
    kinds: frozenset[str]
    refs: tuple[tuple[str, str], ...]
    # Whether the relation is also a tupleset of the model (the link index keeps its set grants as links).
    in_links: bool = False


@dataclass(slots=True, eq=False)
class Node:
    """What makes the user related to an object of ``type`` by any of ``relations`` (identity-hashed)."""

    type: str
    relations: frozenset[str]
    direct: tuple[Direct, ...] = ()
    # (tupleset relation, {parent type: node of the parent's computed relations})
    ttus: tuple[tuple[str, dict[str, Node]], ...] = ()
    # Userset kind -> the node resolving one set of it forwards; absent for nesting kinds (closures only).
    sets: dict[str, Node] = field(default_factory=dict)
    # The direct relations by name (what a grant kept by the link index is matched against).
    by_relation: dict[str, Direct] = field(default_factory=dict)


@dataclass(slots=True)
class Plan:
    root: Node
    depth: int  # the longest chain of dispatches below the root (LocalChecker's depth)


def compiled(ts: TypeSystem, otype: str, relation: str, user: User) -> Plan | None:
    """The plan of ``otype#relation`` for users of ``user``'s type, kept per model (``ts.cache``); None when
    the model's shape there is not one a plan evaluates or the user is a userset or a wildcard."""
    if user.relation is not None or user.id == "*":
        return None
    cache = ts.cache.setdefault("check_plans", {})
    key = (otype, relation, user.type)
    hit = cache.get(key, _MISSING)
    if hit is not _MISSING:
        return hit
    plan = _compile(ts, otype, relation, user)
    cache[key] = plan
    return plan


def _compile(ts: TypeSystem, otype: str, relation: str, user: User) -> Plan | None:
    if ts.get_relation(otype, relation) is None or ts.conditional(otype, relation):
        return None
    depth = _longest(ts, otype, relation)
    if depth is None:
        return None
    try:
        root = _node(ts, otype, frozenset({relation}), user, {})
    except _Unsupported:
        return None
    return Plan(root, depth)


def _longest(ts: TypeSystem, otype: str, relation: str) -> int | None:
    """The longest chain of dispatches from ``otype#relation`` in the model's relation graph (userset
    restrictions, computed usersets, tuple-to-usersets; nesting kinds are leaves, their members come from
    the user's side); None when the graph has a cycle there."""
    ts._cycles  # noqa: B018 - builds the relation graph
    edges: dict[tuple[str, str], set[tuple[str, str]]] = ts.cache["relation_graph"]["edges"]
    memo: dict[tuple[str, str], int] = {}
    on_path: set[tuple[str, str]] = set()
    # Iterative depth-first search: (node, its successors still to visit, longest so far).
    start = (otype, relation)
    on_path.add(start)
    work: list[tuple[tuple[str, str], list[tuple[str, str]], int]] = [
        (start, sorted(edges.get(start, ())), 0)
    ]
    while work:
        node, todo, best = work[-1]
        if todo:
            nxt = todo.pop()
            if nxt not in edges or ts.nesting_kind(*nxt):
                work[-1] = (node, todo, max(best, 1))
            elif nxt in memo:
                work[-1] = (node, todo, max(best, memo[nxt] + 1))
            elif nxt in on_path:
                return None
            else:
                on_path.add(nxt)
                work.append((nxt, sorted(edges[nxt]), 0))
            continue
        work.pop()
        on_path.discard(node)
        memo[node] = best
        if work:
            parent, ptodo, pbest = work[-1]
            work[-1] = (parent, ptodo, max(pbest, best + 1))
    return memo[start]


def _node(ts: TypeSystem, otype: str, relations: frozenset[str], user: User, nodes: dict[Any, Node]) -> Node:
    key = (otype, relations)
    hit = nodes.get(key)
    if hit is not None:
        return hit
    rels = ts.types[otype]
    direct: dict[str, Direct] = {}
    ttus: dict[str, set[str]] = {}
    seen: set[str] = set()
    todo = sorted(relations)
    while todo:
        name = todo.pop()
        rel = rels.get(name)
        if name in seen or rel is None:
            continue
        seen.add(name)
        if not ts.may_contain(otype, name, user):
            continue  # the checker answers false there without reading
        stack = [rel.rewrite]
        while stack:
            rw = stack.pop()
            if isinstance(rw, This):
                refs = tuple((t, r) for t, r in rel.userset_refs if ts.may_contain(t, r, user))
                plain = [r for r in rel.directly_related if r.type == user.type and r.relation is None]
                direct[name] = Direct(
                    name,
                    any(not r.wildcard for r in plain),
                    any(r.wildcard for r in plain),
                    frozenset(f"{t}#{r}" for t, r in refs),
                    refs,
                )
            elif isinstance(rw, Computed):
                todo.append(rw.relation)
            elif isinstance(rw, TupleToUserset):
                ttus.setdefault(rw.tupleset, set()).add(rw.computed)
            elif isinstance(rw, Union):
                stack.extend(rw.children)
            else:
                raise _Unsupported
    tuplesets = slices(ts)[0]
    for d in direct.values():
        d.in_links = (otype, d.relation) in tuplesets
    node = nodes[key] = Node(otype, relations, tuple(direct[n] for n in sorted(direct)))
    node.by_relation = {d.relation: d for d in node.direct}
    edges: list[tuple[str, dict[str, Node]]] = []
    for tupleset in sorted(ttus):
        tsr = rels.get(tupleset)
        parents: dict[str, Node] = {}
        for ptype in dict.fromkeys(r.type for r in (tsr.directly_related if tsr else ()) if not r.relation):
            wanted = frozenset(
                c
                for c in ttus[tupleset]
                if ts.get_relation(ptype, c) is not None and ts.may_contain(ptype, c, user)
            )
            if wanted:
                parents[ptype] = _node(ts, ptype, wanted, user, nodes)
        if parents:
            edges.append((tupleset, parents))
    node.ttus = tuple(edges)
    for d in node.direct:
        for st, srel in d.refs:
            if not ts.nesting_kind(st, srel):
                node.sets[f"{st}#{srel}"] = _node(ts, st, frozenset({srel}), user, nodes)
    return node


# The verdicts of one step: true, not here, or "the plan cannot tell" (the checker decides).
_TRUE, _NO, _UNSURE = 1, 0, 2


async def run(
    plan: Plan,
    res: Resolution,
    oid: str,
    forward_first: Callable[[Resolution, str, str, str], bool],
) -> bool | None:
    """Whether ``res``'s user is related to ``plan``'s object ``oid``; None when the plan cannot tell
    (the checker then walks the rules). ``forward_first`` is the checker's choice between resolving a set
    forwards and the user's closure of its kind."""
    if plan.depth >= res.max_depth:
        return None
    search = _Search(plan, res, forward_first)
    if res.links is not None:
        idx = await res.links()
        if idx is not None:
            return await search.run_indexed(idx, oid)
    return await search.run(oid)


class _Nesting:
    """The user's sets of one nesting kind: the ancestors in the store's index of the user's direct sets."""

    __slots__ = ("_lookups", "_steps", "index", "starts")

    def __init__(self, index: NestingIndex, starts: list[str]) -> None:
        self.index = index
        self.starts = starts
        self._steps: dict[str, int] | None = None
        self._lookups = 0

    def steps(self) -> dict[str, int]:
        """Every set the user is in, at the fewest steps up from one of the direct ones (the index's
        remembered map itself when there is one direct set)."""
        if self._steps is None:
            if len(self.starts) == 1:
                self._steps = self.index.ancestors(self.starts[0])
            else:
                merged: dict[str, int] = {}
                for start in self.starts:
                    for sid, steps in self.index.ancestors(start).items():
                        known = merged.get(sid)
                        if known is None or steps < known:
                            merged[sid] = steps
                self._steps = merged
        return self._steps

    def bound(self) -> int:
        """At least how many sets the user is in (the ancestor maps' sizes added up), without merging."""
        return sum(len(self.index.ancestors(start)) for start in self.starts)

    def step(self, sid: str) -> int | None:
        """The fewest steps from one of the user's direct sets up to ``sid``; None when above none."""
        if self._steps is not None:
            return self._steps.get(sid)
        self._lookups += 1
        if self._lookups > _MERGE_AFTER:
            # Asked often (an object's many team grants): one merged map is cheaper than a lookup per
            # direct set each time; the same fewest steps either way.
            return self.steps().get(sid)
        best: int | None = None
        for start in self.starts:
            steps = self.index.ancestors(start).get(sid)
            if steps is not None and (best is None or steps < best):
                best = steps
        return best


class _Search:
    """One evaluation of a plan: the objects still to visit and what is known of the user's sets."""

    def __init__(
        self, plan: Plan, res: Resolution, forward_first: Callable[[Resolution, str, str, str], bool]
    ) -> None:
        self.plan = plan
        self.res = res
        self.reader = res.reader
        self.forward_first = forward_first
        user = res.user
        self.me = f"{user.type}:{user.id}"
        self.wild = f"{user.type}:*"
        # The checker resolves a nesting set forwards past this many steps below it (its depth there is at
        # most the plan's longest chain), so a set that deep is left to it.
        self.budget = res.max_depth - plan.depth - 2
        self.todo: list[tuple[Node, str]] = []
        # Nesting kind -> the user's sets of it from the store's index, or None: use the request's closure.
        self.nesting: dict[tuple[str, str], _Nesting | None] = {}
        # Kind ("team#member") -> how every set of it is answered, once that is settled for the request: a
        # closure, or the user's sets from the nesting index.
        self.known: dict[str, Any] = {}

    async def run(self, oid: str) -> bool | None:
        reader = self.reader
        me, wild = self.me, self.wild
        big_relations = reader.big_relations
        known = self.known
        seen: set[tuple[Node, str]] = set()
        todo = self.todo
        todo.append((self.plan.root, oid))
        while todo:
            step = todo.pop()
            if step in seen:
                continue
            seen.add(step)
            node, oid = step
            otype = node.type
            whole = await reader.object_rows(otype, oid)
            big = big_relations.get(otype) if whole is not None else None
            for d in node.direct:
                if whole is None or (big is not None and d.relation in big):
                    verdict = await self._big_relation(node, oid, d)
                    if verdict != _NO:
                        return None if verdict == _UNSURE else True
                    continue
                for k in whole.get(d.relation, ()):
                    u = k.user
                    if u in (me, wild):
                        if k.condition_name:
                            return None
                        return True
                    if d.kinds and "#" in u:
                        st, _, rest = u.partition(":")
                        sid, _, srel = rest.partition("#")
                        kind = f"{st}#{srel}"
                        if kind not in d.kinds:
                            continue
                        if k.condition_name:
                            return None
                        how = known.get(kind)
                        if how is not None:
                            # The kind's sets are settled for the request: a lookup, no coroutine.
                            verdict = self._in_known(how, sid)
                        else:
                            verdict = await self._member(node, kind, st, sid, srel)
                        if verdict != _NO:
                            return None if verdict == _UNSURE else True
            for tupleset, parents in node.ttus:
                if whole is not None and (big is None or tupleset not in big):
                    links = whole.get(tupleset, ())
                else:
                    links = await reader.all(otype, oid, tupleset)
                for k in links:
                    pt, _, pid = k.user.partition(":")
                    if "#" in pid or pid == "*":
                        continue  # tuplesets hold plain objects only
                    sub = parents.get(pt)
                    if sub is not None:
                        if k.condition_name:
                            return None
                        todo.append((sub, pid))
        return False

    async def run_indexed(self, idx: LinkIndex, oid: str) -> bool | None:
        """:meth:`run` with the objects' links and set grants from the store's link index (caught up for the
        request), so the search reads no object: the user's sets are asked for as in :meth:`run` (closures,
        the nesting index), and the user's own tuples on every object met are read last, one reverse read
        per type (:meth:`_own`), only when nothing else made the user related."""
        seen: set[tuple[Node, str]] = set()
        todo = self.todo
        todo.append((self.plan.root, oid))
        # type -> {object id: relations on which the user's own tuple would relate them}
        own: dict[str, dict[str, set[str]]] = {}
        while todo:
            step = todo.pop()
            if step in seen:
                continue
            seen.add(step)
            node, oid = step
            verdict = await self._indexed(idx, node, oid, own)
            if verdict != _NO:
                return None if verdict == _UNSURE else True
        verdict = await self._own(own)
        return None if verdict == _UNSURE else verdict == _TRUE

    def _admits(self, otype: str, oid: str, relation: str, user: str, cname: str | None) -> bool:
        """Whether the request's model admits a tuple the link index keeps (the reader's reads admit each
        row so: OpenFGA ignores tuples the model's type restrictions reject)."""
        hash_at = user.find("#")
        if hash_at >= 0:
            kind = user[: user.index(":")] + user[hash_at:]
        else:
            kind = user if user.endswith(":*") else user[: user.index(":")]
        ok = self.reader._allowed.get((otype, relation, kind, cname))
        if ok is None:
            ok = self.reader.allowed(otype, TupleKey(f"{otype}:{oid}", relation, user, cname))
        return ok

    async def _indexed(
        self, idx: LinkIndex, node: Node, oid: str, own: dict[str, dict[str, set[str]]]
    ) -> int:
        """One object of the search from the index: its grants to the user's wildcard or to sets of the
        kinds that may hold the user, then its links (queued); its relations the user's own tuple may be on
        are noted in ``own``."""
        otype = node.type
        if node.direct:
            wanted = node.by_relation
            # The set slices keep an object's grants as one flat list, set and grant alternating.
            flat = idx.set_objects.get(otype, {}).get(oid)
            if flat:
                it = iter(flat)
                for u, g in zip(it, it, strict=True):
                    if isinstance(g, str):
                        d = wanted.get(g)
                        if d is None:
                            continue
                        verdict = await self._grant(node, oid, d, u, None)
                    else:
                        d = wanted.get(g[0])
                        if d is None:
                            continue
                        verdict = await self._grant(node, oid, d, u, g[1])
                    if verdict != _NO:
                        return verdict
            for d in node.direct:
                if d.by_user:
                    objects = own.get(otype)
                    if objects is None:
                        objects = own[otype] = {}
                    rels = objects.get(oid)
                    if rels is None:
                        objects[oid] = {d.relation}
                    else:
                        rels.add(d.relation)
                if d.in_links:
                    # A relation that is also a tupleset: its set grants are kept with its links.
                    entry = idx.links.get((otype, d.relation), {}).get(oid)
                    for u, cname, _ in as_rows(entry) if entry is not None else ():
                        if is_set(u):
                            verdict = await self._grant(node, oid, d, u, cname)
                            if verdict != _NO:
                                return verdict
        for tupleset, parents in node.ttus:
            sl = idx.links.get((otype, tupleset))
            entry = sl.get(oid) if sl is not None else None
            if entry is None:
                continue
            for u, cname, _ in as_rows(entry):
                pt, _, pid = u.partition(":")
                if "#" in pid or pid == "*":
                    continue  # tuplesets hold plain objects only
                sub = parents.get(pt)
                if sub is None or not self._admits(otype, oid, tupleset, u, cname):
                    continue
                if cname:
                    return _UNSURE
                self.todo.append((sub, pid))
        return _NO

    async def _grant(self, node: Node, oid: str, d: Direct, u: str, cname: str | None) -> int:
        """One grant of ``oid``'s relation ``d`` to a set ``u`` (a userset or a wildcard), kept by the index:
        whether it makes the user related (as :meth:`run` judges the same tuple read from storage)."""
        if u == self.wild:
            if not d.by_wildcard:
                return _NO
            kind = ""
            st = sid = srel = ""
        else:
            hash_at = u.find("#")
            if hash_at < 0:
                return _NO  # another type's wildcard
            colon = u.index(":")
            st, sid, srel = u[:colon], u[colon + 1 : hash_at], u[hash_at + 1 :]
            kind = f"{st}#{srel}"
            if kind not in d.kinds:
                return _NO
        ok = self.reader._allowed.get((node.type, d.relation, kind or u, cname))
        if ok is None:
            ok = self.reader.allowed(node.type, TupleKey(f"{node.type}:{oid}", d.relation, u, cname))
        if not ok:
            return _NO
        if cname:
            return _UNSURE
        if not kind:
            return _TRUE
        how = self.known.get(kind)
        if how is not None:
            return self._in_known(how, sid)
        return await self._member(node, kind, st, sid, srel)

    async def _own(self, own: dict[str, dict[str, set[str]]]) -> int:
        """Whether the user's own tuple is on one of the noted relations of one of the noted objects: per
        type, one reverse read of the user's tuples on those relations (the user's grants are few), or,
        when the user holds more than ``_MAX_KNOWN_SETS`` of them, point probes of the noted objects."""
        reader, me = self.reader, self.me
        read_users = getattr(reader.ds, "read_users_rows", None)  # optional in the protocol
        for otype, objects in own.items():
            relations = sorted({r for rels in objects.values() for r in rels})
            rows = None
            if read_users is not None:
                reader.reads += 1
                rows = await read_users(reader.store_id, otype, relations, [me], _MAX_KNOWN_SETS)
            if rows is not None:
                for oid, rel, user, cname, _ in rows:
                    rels = objects.get(oid)
                    if rels is None or rel not in rels or user != me:
                        continue
                    if not self._admits(otype, oid, rel, user, cname):
                        continue
                    return _UNSURE if cname else _TRUE
                continue
            for oid, rels in objects.items():
                for rel in sorted(rels):
                    for k in await reader.direct(otype, oid, rel, (me,)):
                        return _UNSURE if k.condition_name else _TRUE
        return _NO

    async def _member(self, node: Node, kind: str, st: str, sid: str, srel: str) -> int:
        """Whether the user is in ``st:sid#srel``: from the user's closure of the kind when the checker would
        use it, else by visiting the set forwards (queued)."""
        res = self.res
        sub = node.sets.get(kind)
        cl = res.closures.get((st, srel), _MISSING)
        if cl is _MISSING:
            if sub is None:
                verdict = await self._nested(kind, st, sid, srel)
                if verdict is not None:
                    return verdict
            elif self.forward_first(res, st, sid, srel):
                self.todo.append((sub, sid))
                return _NO
            try:
                cl = await res.closure(st, srel)
            except FGAError:
                return _UNSURE
        if cl is None:
            if sub is None:
                return _UNSURE  # a nesting kind the checker would walk forwards, level by level
            self.todo.append((sub, sid))
            return _NO
        self.known[kind] = cl
        return self._in_known(cl, sid)

    async def _nested(self, kind: str, st: str, sid: str, srel: str) -> int | None:
        """Whether the user is in the nesting set ``st:sid#srel``: the set is an ancestor of one of the
        user's direct sets in the store's nesting index, at the fewest steps from one (what the request's
        closure of the kind holds, without building it); None when the closure must be asked."""
        key = (st, srel)
        found = self.nesting.get(key, _MISSING)
        if found is _MISSING:
            found = self.nesting[key] = await self._nesting_starts(st, srel)
        if found is None:
            return None
        self.known[kind] = found
        return self._in_known(found, sid)

    def _in_known(self, how: Any, sid: str) -> int:
        """Whether the user is in set ``sid`` of a kind known from ``how``: a closure, or a nesting index
        and the user's direct sets of the kind (in at the fewest steps up from one of them)."""
        best: int | None
        if isinstance(how, _Nesting):
            best = how.step(sid)
        else:
            if sid in how.maybe:
                return _UNSURE
            best = how.depth.get(sid, 0) if sid in how.sure else None
        if best is None:
            return _NO
        return _TRUE if best <= self.budget else _UNSURE

    async def _nesting_starts(self, st: str, srel: str) -> _Nesting | None:
        """The nesting index of a kind and the user's direct sets of it, when the request's closure of the
        kind would be exactly their ancestors (see list_objects._nesting_closure): an index, no contextual
        tuple on the kind, no condition, and at most ``closure_max_facts`` ancestors in all (past that the
        checker resolves the kind forwards)."""
        res = self.res
        if res.nesting is None or not res.closure_max_facts or self.reader.has_contextual(st, srel):
            return None
        index = await res.nesting(st, srel)
        if index is None:
            return None
        names = []
        for ref in res.ts.types[st][srel].directly_related:
            if ref.relation is None and ref.type == res.user.type:
                names.append(self.wild if ref.wildcard else self.me)
        starts: list[str] = []
        if names:
            for k in await self.reader.by_users(st, srel, list(dict.fromkeys(names))):
                if k.condition_name:
                    return None
                starts.append(k.object.partition(":")[2])
        found = _Nesting(index, starts)
        if found.bound() > res.closure_max_facts and len(found.steps()) > res.closure_max_facts:
            return None
        return found

    async def _big_relation(self, node: Node, oid: str, d: Direct) -> int:
        """A relation the object's prefetch does not cover (an organisation's thousands of members): read only
        the tuples naming the user, the wildcard or, when the user's sets of every kind there are known and
        few, those sets (index probes, or the relation's own sets of the kinds when the user's are many);
        otherwise the user's names and then the relation's usersets."""
        res, reader, me, wild = self.res, self.reader, self.me, self.wild
        names = ((me,) if d.by_user else ()) + ((wild,) if d.by_wildcard else ())
        # Kind -> how the user's sets of it are known (a closure, or from the nesting index), when every
        # kind's are; and at least how many sets that is.
        known: dict[str, Any] | None = {}
        count = 0
        rows: list[TupleKey] | None = None
        for st, srel in d.refs:
            kind = f"{st}#{srel}"
            cl = res.closures.get((st, srel), _MISSING)
            if cl is _MISSING and kind not in node.sets:
                found = self.nesting.get((st, srel), _MISSING)
                if found is _MISSING:
                    found = self.nesting[(st, srel)] = await self._nesting_starts(st, srel)
                if found is not None:
                    if known is not None:
                        known[kind] = found
                        count += found.bound()
                    continue
                try:
                    cl = await res.closure(st, srel)
                except FGAError:
                    return _UNSURE
            if cl is _MISSING or cl is None or cl.maybe or known is None:
                known = None
                continue
            known[kind] = cl
            count += len(cl.sure)
        if known is not None:
            if not names and not count:
                return _NO
            if count > _MAX_PROBED_SETS:
                # The user is in many sets of the kinds: the relation's own sets of those kinds are usually
                # fewer (an organisation's teams against its members), one range each instead of a probe each.
                rows = await reader.named_and_usersets(
                    node.type, oid, d.relation, names, d.refs, _MAX_KNOWN_SETS
                )
            if rows is None:
                sets = [
                    f"{kind.partition('#')[0]}:{sid}#{kind.partition('#')[2]}"
                    for kind, how in known.items()
                    for sid in (how.steps() if isinstance(how, _Nesting) else how.sure)
                ]
                if len(sets) <= _MAX_KNOWN_SETS:
                    rows = await reader.direct(node.type, oid, d.relation, names + tuple(sets))
        if known is not None and rows is not None:
            for k in rows:
                if k.condition_name:
                    return _UNSURE
                u = k.user
                if u in (me, wild):
                    return _TRUE
                st, _, rest = u.partition(":")
                sid, _, srel = rest.partition("#")
                how = known.get(f"{st}#{srel}")
                if how is not None:
                    verdict = self._in_known(how, sid)
                    if verdict != _NO:
                        return verdict
            return _NO
        if names:
            for k in await reader.direct(node.type, oid, d.relation, names):
                return _UNSURE if k.condition_name else _TRUE
        if d.refs:
            for k in await reader.usersets(node.type, oid, d.relation, d.refs):
                if k.condition_name:
                    return _UNSURE
                st, _, rest = k.user.partition(":")
                sid, _, srel = rest.partition("#")
                verdict = await self._member(node, f"{st}#{srel}", st, sid, srel)
                if verdict != _NO:
                    return verdict
        return _NO
