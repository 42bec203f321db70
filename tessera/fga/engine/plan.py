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
from tessera.fga.engine.tuples import User
from tessera.fga.engine.typesystem import Computed, This, TupleToUserset, TypeSystem, Union

if TYPE_CHECKING:
    from tessera.fga.engine.check import Resolution

# Sets of the user probed with one big relation's direct tuples at most (as check.py's _MAX_KNOWN_SETS).
_MAX_KNOWN_SETS = 64
_MISSING = object()


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
    node = nodes[key] = Node(otype, relations, tuple(direct[n] for n in sorted(direct)))
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
    reader = res.reader
    user = res.user
    me = f"{user.type}:{user.id}"
    wild = f"{user.type}:*"
    # The checker resolves a nesting set forwards past this many steps below it (its depth there is at most
    # the plan's longest chain), so a set that deep is left to it.
    budget = res.max_depth - plan.depth - 2
    seen: set[tuple[Node, str]] = set()
    todo: list[tuple[Node, str]] = [(plan.root, oid)]
    while todo:
        step = todo.pop()
        if step in seen:
            continue
        seen.add(step)
        node, oid = step
        otype = node.type
        whole = await reader.object_rows(otype, oid)
        for d in node.direct:
            rows = (
                whole.get(d.relation, ())
                if whole is not None and reader.prefetches(otype, d.relation)
                else None
            )
            if rows is None:
                verdict = await _big_relation(res, node, oid, d, me, wild, budget, todo, forward_first)
                if verdict != _NO:
                    return None if verdict == _UNSURE else True
                continue
            for k in rows:
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
                    verdict = await _member(res, node, kind, st, sid, srel, budget, todo, forward_first)
                    if verdict != _NO:
                        return None if verdict == _UNSURE else True
        for tupleset, parents in node.ttus:
            if whole is not None and reader.prefetches(otype, tupleset):
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


async def _member(
    res: Resolution,
    node: Node,
    kind: str,
    st: str,
    sid: str,
    srel: str,
    budget: int,
    todo: list[tuple[Node, str]],
    forward_first: Callable[[Resolution, str, str, str], bool],
) -> int:
    """Whether the user is in ``st:sid#srel``: from the user's closure of the kind when the checker would
    use it, else by visiting the set forwards (queued on ``todo``)."""
    sub = node.sets.get(kind)
    cl = res.closures.get((st, srel), _MISSING)
    if cl is _MISSING:
        if sub is not None and forward_first(res, st, sid, srel):
            todo.append((sub, sid))
            return _NO
        try:
            cl = await res.closure(st, srel)
        except FGAError:
            return _UNSURE
    if cl is None:
        if sub is None:
            return _UNSURE  # a nesting kind the checker would walk forwards, level by level
        todo.append((sub, sid))
        return _NO
    if sid in cl.maybe:
        return _UNSURE
    if sid in cl.sure:
        return _TRUE if cl.depth.get(sid, 0) <= budget else _UNSURE
    return _NO


async def _big_relation(
    res: Resolution,
    node: Node,
    oid: str,
    d: Direct,
    me: str,
    wild: str,
    budget: int,
    todo: list[tuple[Node, str]],
    forward_first: Callable[[Resolution, str, str, str], bool],
) -> int:
    """A relation the object's prefetch does not cover (an organisation's thousands of members): read only
    the tuples naming the user, the wildcard or, when the user's sets of every kind there are known and few,
    those sets (index probes); otherwise the user's names and then the relation's usersets."""
    reader = res.reader
    names = ((me,) if d.by_user else ()) + ((wild,) if d.by_wildcard else ())
    sets: list[str] | None = []
    closures: dict[str, Any] = {}
    for st, srel in d.refs:
        cl = res.closures.get((st, srel), _MISSING)
        if cl is _MISSING and f"{st}#{srel}" not in node.sets:
            try:
                cl = await res.closure(st, srel)
            except FGAError:
                return _UNSURE
        if cl is _MISSING or cl is None or cl.maybe or sets is None:
            sets = None
            continue
        closures[f"{st}#{srel}"] = cl
        sets += [f"{st}:{sid}#{srel}" for sid in cl.sure]
        if len(sets) > _MAX_KNOWN_SETS:
            sets = None
    if sets is not None:
        if not names and not sets:
            return _NO
        for k in await reader.direct(node.type, oid, d.relation, names + tuple(sets)):
            if k.condition_name:
                return _UNSURE
            u = k.user
            if u in (me, wild):
                return _TRUE
            st, _, rest = u.partition(":")
            sid, _, srel = rest.partition("#")
            cl = closures.get(f"{st}#{srel}")
            if cl is not None and sid in cl.sure:
                return _TRUE if cl.depth.get(sid, 0) <= budget else _UNSURE
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
            verdict = await _member(res, node, f"{st}#{srel}", st, sid, srel, budget, todo, forward_first)
            if verdict != _NO:
                return verdict
    return _NO
