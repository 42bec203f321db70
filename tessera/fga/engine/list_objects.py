"""ListObjects: every object of a type that a user has a relation with, found by walking the model backwards
from the user (reverse expansion), complete and without a deadline.

Facts are ``user ∈ type:id#relation``. The walk starts from the tuples that name the user (or the type's
wildcard) and applies the model's rules backwards, batching one reverse storage read per rule and per round:

* a direct restriction ``[group#member]`` on ``doc#viewer``: from ``user ∈ group:x#member`` and the tuple
  ``doc:1#viewer@group:x#member`` follows ``user ∈ doc:1#viewer``;
* a computed userset ``viewer: editor``: ``user ∈ doc:1#editor`` gives ``user ∈ doc:1#viewer``;
* a tuple-to-userset ``viewer from parent``: ``user ∈ folder:a#viewer`` and ``doc:1#parent@folder:a``.

Each fact is derived once, so cycles end the walk rather than loop. A fact derived from one operand of an
intersection, or from the base of an exclusion, carries *guards*: the other operands must hold, the
subtracted set must not, and Check's resolver decides them on the derived object (batched, see
``filter.py``). Whatever cannot be decided there (a cycle, a condition missing a parameter) stays a
*candidate* and gets a full Check before it is returned, so the answer is exact. Objects of the requested type
are streamed as soon as they are known.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tessera.fga.engine.check import Resolution
from tessera.fga.engine.errors import ConditionError
from tessera.fga.engine.filter import check_many, guard_many
from tessera.fga.engine.reader import RequestReader
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

SURE, MAYBE = 1, 0
_THE_USER = "\x00user"  # stands for the request's user in the cached rules
# What else must hold on the derived object: (negated, rewrite of the derived relation). A fact derived from
# one operand of an intersection must pass the other operands; one derived from an exclusion's base must not
# be in the subtracted set. Guards are decided with Check's resolver on the derived object.
Guards = tuple[tuple[bool, Rewrite], ...]


@dataclass(frozen=True, slots=True)
class _UsersetRule:  # fact (S, o, r) + tuple T:x#R@S:o#r -> (T, x, target)
    object_type: str
    relation: str
    target: str
    sure: bool
    guards: Guards = ()


@dataclass(frozen=True, slots=True)
class _ComputedRule:  # fact (T, x, r) -> (T, x, target)
    object_type: str
    target: str
    sure: bool
    guards: Guards = ()


@dataclass(frozen=True, slots=True)
class _TTURule:  # fact (P, p, cr) + tuple T:x#ts@P:p -> (T, x, target)
    object_type: str
    tupleset: str
    target: str
    sure: bool
    guards: Guards = ()


@dataclass
class _Rules:
    # (type, relation) of a fact -> rules consuming it
    consumers: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    # rules started from the user's own tuples: (object type, relation, sure, user names, guards)
    starts: list[tuple[str, str, bool, tuple[str, ...], Guards]] = field(default_factory=list)
    relevant: frozenset[tuple[str, str]] = frozenset()


def _rewrite_may_contain(ts: TypeSystem, otype: str, relation: str, rw: Rewrite, user: User) -> bool:
    if isinstance(rw, This):
        rel = ts.types[otype][relation]
        for ref in rel.directly_related:
            if ref.relation:
                if ts.may_contain(ref.type, ref.relation, user):
                    return True
            elif ref.type == user.type and user.relation is None:
                return True
        return False
    if isinstance(rw, Computed):
        return ts.may_contain(otype, rw.relation, user)
    if isinstance(rw, TupleToUserset):
        tsr = ts.types[otype].get(rw.tupleset)
        return any(
            ts.get_relation(r.type, rw.computed) is not None and ts.may_contain(r.type, rw.computed, user)
            for r in (tsr.directly_related if tsr else ())
        )
    if isinstance(rw, Union | Intersection):
        return any(_rewrite_may_contain(ts, otype, relation, c, user) for c in rw.children)
    return _rewrite_may_contain(ts, otype, relation, rw.base, user)


def build_rules(ts: TypeSystem, user: User, target: tuple[str, str]) -> _Rules:
    """The model's rules read backwards, for one user, restricted to those that can lead to ``target``."""
    cache = ts.cache.setdefault("reverse_rules", {})
    ck = (user.type, user.relation, user.wildcard, target)
    hit = cache.get(ck)
    if hit is not None:
        return hit
    rules = _all_rules(ts, user)
    # Keep only what can reach the target: walk the rule graph backwards from it.
    relevant = {target}
    changed = True
    while changed:
        changed = False
        for source, consumers in rules.consumers.items():
            if source in relevant:
                continue
            if any((_rule_type(c, source), c.target) in relevant for c in consumers):
                relevant.add(source)
                changed = True
    pruned = _Rules()
    for source, consumers in rules.consumers.items():
        if source in relevant:
            kept = [c for c in consumers if (_rule_type(c, source), c.target) in relevant]
            if kept:
                pruned.consumers[source] = kept
    pruned.starts = [st for st in rules.starts if (st[0], st[1]) in relevant]
    pruned.relevant = frozenset(relevant)
    cache[ck] = pruned
    return pruned


def _rule_type(rule: Any, source: tuple[str, str]) -> str:
    return rule.object_type


def _all_rules(ts: TypeSystem, user: User) -> _Rules:
    rules = _Rules()

    def walk(otype: str, relation: str, rw: Rewrite, sure: bool, guards: Guards) -> None:
        if isinstance(rw, This):
            rel = ts.types[otype][relation]
            names: list[str] = []
            for ref in rel.directly_related:
                if ref.relation:
                    rules.consumers.setdefault((ref.type, ref.relation), []).append(
                        _UsersetRule(otype, relation, relation, sure, guards)
                    )
                elif ref.type == user.type and user.relation is None:
                    if ref.wildcard:
                        names.append(f"{user.type}:*")
                    elif not user.wildcard:
                        names.append(_THE_USER)
            if names:
                rules.starts.append((otype, relation, sure, tuple(dict.fromkeys(names)), guards))
        elif isinstance(rw, Computed):
            rules.consumers.setdefault((otype, rw.relation), []).append(
                _ComputedRule(otype, relation, sure, guards)
            )
        elif isinstance(rw, TupleToUserset):
            tsr = ts.types[otype][rw.tupleset]
            for ptype in dict.fromkeys(r.type for r in tsr.directly_related):
                if ts.get_relation(ptype, rw.computed) is not None:
                    rules.consumers.setdefault((ptype, rw.computed), []).append(
                        _TTURule(otype, rw.tupleset, relation, sure, guards)
                    )
        elif isinstance(rw, Union):
            for c in rw.children:
                walk(otype, relation, c, sure, guards)
        elif isinstance(rw, Intersection):
            # Members of an intersection are members of every operand: walk one operand that can hold the
            # user, and require the others of whatever it yields.
            for i, c in enumerate(rw.children):
                if _rewrite_may_contain(ts, otype, relation, c, user):
                    others = tuple((False, o) for j, o in enumerate(rw.children) if j != i)
                    walk(otype, relation, c, sure, guards + others)
                    break
        else:
            assert isinstance(rw, Difference)
            walk(otype, relation, rw.base, sure, ((True, rw.subtract), *guards))

    for tname, rels in ts.types.items():
        for rname, rel in rels.items():
            walk(tname, rname, rel.rewrite, True, ())
    return rules


class TooManyFacts(Exception):
    """The walk outgrew its budget (``max_facts``): the caller falls back to forward resolution."""


@dataclass
class Closure:
    """The objects ``o`` with ``user ∈ type:o#relation``: ``sure`` ones and undecided ``maybe`` ones."""

    sure: set[str]
    maybe: set[str]
    depth: dict[str, int] = field(default_factory=dict)  # steps a forward Check would take below each


async def _nesting_closure(
    res: Resolution, object_type: str, relation: str, max_facts: int
) -> Closure | None:
    """The closure of a nesting kind (``group#member``) from the store-wide nesting index: the user's direct
    sets in one reverse read, then their ancestors in memory."""
    if res.nesting is None or res.reader.has_contextual(object_type, relation):
        return None
    index = await res.nesting(object_type, relation)
    if index is None:
        return None
    user = res.user
    # The user's direct sets: sure ones, and undecided ones (a condition that cannot be evaluated here).
    starts: dict[str, bool] = {}
    if user.relation == relation and user.type == object_type:
        starts[user.id] = True
    names = []
    for ref in res.ts.types[object_type][relation].directly_related:
        if ref.relation is None and ref.type == user.type and user.relation is None:
            if ref.wildcard:
                names.append(f"{user.type}:*")
            elif not user.wildcard:
                names.append(str(user))
    if names:
        for k in await res.reader.by_users(object_type, relation, list(dict.fromkeys(names))):
            oid = k.object.partition(":")[2]
            try:
                ok = res.condition_holds(k)
            except ConditionError:
                starts.setdefault(oid, False)
                continue
            if ok:
                starts[oid] = True
    # Every set above a sure one is sure, at its fewest steps from one; the sets above only undecided ones
    # are undecided (a sure path always wins). The walks up are shared by every request on the index.
    sure: dict[str, int] = {}
    maybe: dict[str, int] = {}
    for oid, is_sure in starts.items():
        if is_sure:
            for sid, steps in index.ancestors(oid).items():
                known = sure.get(sid)
                if known is None or steps < known:
                    sure[sid] = steps
    for oid, is_sure in starts.items():
        if not is_sure:
            for sid, steps in index.ancestors(oid).items():
                known = maybe.get(sid)
                if sid not in sure and (known is None or steps < known):
                    maybe[sid] = steps
    if len(sure) + len(maybe) > max_facts:
        return None
    return Closure(set(sure), set(maybe), {**maybe, **sure})


async def closure(res: Resolution, object_type: str, relation: str, max_facts: int) -> Closure | None:
    """All ``object_type:o#relation`` sets the user of ``res`` is in, found backwards from the user (sharing
    ``res``'s memo); None when the walk would exceed ``max_facts``."""
    if res.ts.nesting_kind(object_type, relation):
        fast = await _nesting_closure(res, object_type, relation, max_facts)
        if fast is not None:
            return fast
    else:
        # Nesting kinds the walk passes through come from the index first, so the walk is seeded with them.
        for key in build_rules(res.ts, res.user, (object_type, relation)).relevant:
            if key != (object_type, relation) and key not in res.closures and res.ts.nesting_kind(*key):
                await res.closure(*key)
    rx = ReverseExpansion(
        res.ts, res.reader, res.user, res.context, object_type, relation, res=res, max_facts=max_facts
    )
    try:
        async for _ in rx.run():
            pass
    except TooManyFacts:
        return None
    # Every relation the walk could reach the target through was walked completely, so its facts are that
    # relation's closure too (a team closure falls out of an organization closure): keep them.
    result: Closure | None = None
    for key in rx.relevant:
        found = rx.facts.get(key, {})
        cl = Closure(
            {o for o, m in found.items() if m == SURE},
            {o for o, m in found.items() if m != SURE},
            {o: rx.depth[(key[0], key[1], o)] for o in found},
        )
        if key == (object_type, relation):
            result = cl
        else:
            res.closures.setdefault(key, cl)
    return result


class ReverseExpansion:
    def __init__(
        self,
        ts: TypeSystem,
        reader: RequestReader,
        user: User,
        context: Mapping[str, Any],
        object_type: str,
        relation: str,
        *,
        res: Resolution | None = None,
        max_facts: int = 0,
    ) -> None:
        self.ts = ts
        self.reader = reader
        self.user = user
        self.context = context
        self.target = (object_type, relation)
        self.facts: dict[tuple[str, str], dict[str, int]] = {}
        self._pending: dict[tuple[str, str], dict[str, int]] = {}
        self._res = res or Resolution(ts, reader, user, context)
        self.max_facts = max_facts
        self._count = 0
        self.depth: dict[tuple[str, str, str], int] = {}
        self.relevant: frozenset[tuple[str, str]] = frozenset()

    def _condition(self, key: TupleKey) -> int | None:
        """SURE when the tuple's condition holds, None when it does not, MAYBE when it cannot be decided
        here (Check will give the verdict and its error)."""
        try:
            return SURE if self._res.condition_holds(key) else None
        except ConditionError:
            return MAYBE

    def _add(self, otype: str, oid: str, relation: str, mode: int, depth: int) -> None:
        known = self.facts.setdefault((otype, relation), {})
        cur = known.get(oid)
        dkey = (otype, relation, oid)
        if cur is not None and cur >= mode and self.depth[dkey] <= depth:
            return
        if cur is None:
            self._count += 1
            if self.max_facts and self._count > self.max_facts:
                raise TooManyFacts
            self.depth[dkey] = depth
        else:
            self.depth[dkey] = min(depth, self.depth[dkey])
        known[oid] = max(mode, cur if cur is not None else mode)
        self._pending.setdefault((otype, relation), {})[oid] = known[oid]

    async def _add_guarded(
        self, otype: str, relation: str, found: dict[str, tuple[int, int]], guards: Guards
    ) -> None:
        """Add facts (id -> (mode, depth)), deciding the guards first when there are any."""
        if not guards:
            for oid, (mode, depth) in found.items():
                self._add(otype, oid, relation, mode, depth)
            return
        known = self.facts.get((otype, relation), {})
        todo = [oid for oid, (mode, _) in found.items() if known.get(oid, -1) < mode]
        if not todo:
            return
        verdicts = await guard_many(self._res, otype, relation, todo, guards)
        for oid, verdict in zip(todo, verdicts, strict=True):
            if verdict is not None:
                mode, depth = found[oid]
                self._add(otype, oid, relation, min(mode, verdict), depth)

    async def run(self) -> AsyncIterator[tuple[str, int]]:
        """Yields (object id, SURE/MAYBE) facts of the target as they are found, sure ones possibly after
        a maybe for the same id. ``self.depth`` records how many resolution steps below each fact the
        user was found (what a forward Check would need), for the depth limit."""
        rules = build_rules(self.ts, self.user, self.target)
        self.relevant = rules.relevant
        u = self.user
        # Closures this request already computed are complete: their facts are seeded and the rules that
        # derive them skipped (a team closure is not recomputed inside an organization closure).
        done: set[tuple[str, str]] = set()
        for key, cl in self._res.closures.items():
            if cl is not None and not cl.maybe and key in rules.relevant and key != self.target:
                done.add(key)
                for oid in cl.sure:
                    self._add(key[0], oid, key[1], SURE, cl.depth.get(oid, 0))
        if u.relation is not None and self.ts.get_relation(u.type, u.relation) is not None:
            self._add(u.type, u.id, u.relation, SURE, 0)
        for otype, relation, sure, names, guards in rules.starts:
            if (otype, relation) in done:
                continue
            found: dict[str, tuple[int, int]] = {}
            users = [str(u) if n == _THE_USER else n for n in names]
            for k in await self.reader.by_users(otype, relation, users):
                m = self._condition(k)
                if m is not None:
                    oid = k.object.partition(":")[2]
                    found[oid] = (max(found.get(oid, (-1, 0))[0], m if sure else MAYBE), 0)
            await self._add_guarded(otype, relation, found, guards)
        emitted: dict[str, int] = {}
        while True:
            for oid, mode in self._pending.get(self.target, {}).items():
                if emitted.get(oid, -1) < mode:
                    emitted[oid] = mode
                    yield oid, mode
            if not self._pending:
                return
            (ftype, frel), ids = next(iter(self._pending.items()))
            del self._pending[(ftype, frel)]
            depth = self.depth
            for rule in rules.consumers.get((ftype, frel), ()):
                if (rule.object_type, rule.target) in done:
                    continue
                if isinstance(rule, _ComputedRule):
                    found = {
                        oid: (mode if rule.sure else MAYBE, depth[(ftype, frel, oid)] + 1)
                        for oid, mode in ids.items()
                    }
                    await self._add_guarded(ftype, rule.target, found, rule.guards)
                    continue
                if isinstance(rule, _UsersetRule):
                    subjects = {f"{ftype}:{oid}#{frel}": (mode, oid) for oid, mode in ids.items()}
                    rows = await self.reader.by_users(rule.object_type, rule.relation, list(subjects))
                else:
                    subjects = {f"{ftype}:{oid}": (mode, oid) for oid, mode in ids.items()}
                    rows = await self.reader.by_users(rule.object_type, rule.tupleset, list(subjects))
                found = {}
                for k in rows:
                    m = self._condition(k)
                    subject = subjects.get(k.user)
                    if m is None or subject is None:
                        continue
                    mode = min(m, subject[0], SURE if rule.sure else MAYBE)
                    d = depth[(ftype, frel, subject[1])] + 1
                    oid = k.object.partition(":")[2]
                    prev = found.get(oid)
                    found[oid] = (max(mode, prev[0]), min(d, prev[1])) if prev else (mode, d)
                await self._add_guarded(rule.object_type, rule.target, found, rule.guards)


async def stream_objects(
    ts: TypeSystem,
    reader: RequestReader,
    user: User,
    context: Mapping[str, Any],
    object_type: str,
    relation: str,
    *,
    verify_batch: int = 256,
) -> AsyncIterator[str]:
    """Every object (``type:id``) of ``object_type`` that ``user`` has ``relation`` with, each once."""
    res = Resolution(ts, reader, user, context)
    rx = ReverseExpansion(ts, reader, user, context, object_type, relation, res=res)
    done: set[str] = set()
    maybe: list[str] = []
    async for oid, mode in rx.run():
        if oid in done:
            continue
        # Found deeper than Check may go: Check (which then fails with resolution_too_complex) decides.
        if mode == SURE and rx.depth[(object_type, relation, oid)] < res.max_depth:
            done.add(oid)
            yield f"{object_type}:{oid}"
        else:
            maybe.append(oid)
            if len(maybe) >= verify_batch:
                async for obj in _verify(res, object_type, relation, maybe, done):
                    yield obj
                maybe = []
    async for obj in _verify(res, object_type, relation, maybe, done):
        yield obj


async def _verify(
    res: Resolution, object_type: str, relation: str, ids: list[str], done: set[str]
) -> AsyncIterator[str]:
    todo = [i for i in dict.fromkeys(ids) if i not in done]
    if not todo:
        return
    verdicts = await check_many(res, object_type, relation, todo)
    for oid, ok in zip(todo, verdicts, strict=True):
        if ok and oid not in done:
            done.add(oid)
            yield f"{object_type}:{oid}"
