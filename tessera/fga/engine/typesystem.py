"""The authorization model: types, relations, rewrites, type restrictions and conditions.

Built from OpenFGA's JSON model (what ``tessera.fga.language.transform_dsl_to_json`` and the
``WriteAuthorizationModel`` API produce). Besides lookups, it answers the questions the resolvers ask on every
step, precomputed once per model:

* ``tuple_allowed``: does the current model's type restriction admit a stored tuple? Tuples written under an
  earlier model that the current one rejects are ignored by every read (OpenFGA's "invalid tuples are
  skipped").
* ``may_contain``: can a subject of some kind ever be a member of ``type#relation``? Used to prune branches
  that   cannot lead to the user being checked.
* ``validate``: the checks ``WriteAuthorizationModel`` makes (references exist, tuplesets are direct, every
  relation has an entry point, conditions compile).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from tessera.fga.engine.conditions import Condition, compile_condition
from tessera.fga.engine.errors import ErrorCode, FGAError, invalid_tuple
from tessera.fga.engine.tuples import TupleKey, User, parse_user, split_object, valid_relation_name

SUPPORTED_SCHEMAS = ("1.1", "1.2")


# --- rewrites -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class This:
    pass


@dataclass(frozen=True, slots=True)
class Computed:
    relation: str


@dataclass(frozen=True, slots=True)
class TupleToUserset:
    tupleset: str
    computed: str


@dataclass(frozen=True, slots=True)
class Union:
    children: tuple[Rewrite, ...]


@dataclass(frozen=True, slots=True)
class Intersection:
    children: tuple[Rewrite, ...]


@dataclass(frozen=True, slots=True)
class Difference:
    base: Rewrite
    subtract: Rewrite


Rewrite = This | Computed | TupleToUserset | Union | Intersection | Difference


@dataclass(frozen=True, slots=True)
class RelationRef:
    """One ``directly_related_user_types`` entry: ``user``, ``user:*``, ``group#member``, ``user with c``."""

    type: str
    relation: str | None = None
    wildcard: bool = False
    condition: str | None = None

    def __str__(self) -> str:
        s = f"{self.type}:*" if self.wildcard else self.type
        if self.relation:
            s += f"#{self.relation}"
        if self.condition:
            s += f" with {self.condition}"
        return s


@dataclass(slots=True)
class Relation:
    type: str
    name: str
    rewrite: Rewrite
    directly_related: tuple[RelationRef, ...] = ()
    # The distinct userset restrictions ("group#member") for reading userset tuples.
    userset_refs: tuple[tuple[str, str], ...] = ()

    @property
    def has_this(self) -> bool:
        return _contains_this(self.rewrite)


def _contains_this(rw: Rewrite) -> bool:
    if isinstance(rw, This):
        return True
    if isinstance(rw, Union | Intersection):
        return any(_contains_this(c) for c in rw.children)
    if isinstance(rw, Difference):
        return _contains_this(rw.base) or _contains_this(rw.subtract)
    return False


def _bad_model(message: str) -> FGAError:
    return FGAError(ErrorCode.invalid_authorization_model, message)


def _parse_rewrite(data: Mapping[str, Any], where: str) -> Rewrite:
    if not isinstance(data, Mapping) or not data:
        raise _bad_model(f"empty relation definition for {where}")
    if "this" in data:
        return This()
    cu = data.get("computedUserset", data.get("computed_userset"))
    if cu is not None:
        return Computed(str(cu.get("relation", "")))
    ttu = data.get("tupleToUserset", data.get("tuple_to_userset"))
    if ttu is not None:
        ts = ttu.get("tupleset") or {}
        cu2 = ttu.get("computedUserset", ttu.get("computed_userset")) or {}
        return TupleToUserset(str(ts.get("relation", "")), str(cu2.get("relation", "")))
    if "union" in data:
        return Union(tuple(_parse_rewrite(c, where) for c in (data["union"] or {}).get("child") or []))
    if "intersection" in data:
        return Intersection(
            tuple(_parse_rewrite(c, where) for c in (data["intersection"] or {}).get("child") or [])
        )
    if "difference" in data:
        d = data["difference"] or {}
        if not d.get("base"):
            raise FGAError(ErrorCode.difference_base_missing_value, f"difference base missing in {where}")
        if not d.get("subtract"):
            raise FGAError(ErrorCode.subtract_base_missing_value, f"difference subtract missing in {where}")
        return Difference(_parse_rewrite(d["base"], where), _parse_rewrite(d["subtract"], where))
    raise _bad_model(f"unknown rewrite in {where}: {sorted(data)}")


@dataclass
class TypeSystem:
    """A parsed, validated authorization model. Immutable once built."""

    id: str
    schema_version: str
    types: dict[str, dict[str, Relation]]
    conditions: dict[str, Condition] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    # Derived data the resolvers compute once per model (reverse rules per user kind, ...).
    cache: dict[str, dict[Any, Any]] = field(default_factory=dict, repr=False, compare=False)

    # --- construction ---------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, model: Mapping[str, Any], model_id: str = "", *, validate: bool = True) -> TypeSystem:
        schema = str(model.get("schema_version", ""))
        if schema not in SUPPORTED_SCHEMAS:
            raise FGAError(ErrorCode.unsupported_schema_version, f"unsupported schema version '{schema}'")
        tds = model.get("type_definitions") or []
        if not tds:
            raise FGAError(ErrorCode.type_definitions_too_few_items, "type_definitions: at least one type")
        types: dict[str, dict[str, Relation]] = {}
        for td in tds:
            tname = str(td.get("type", ""))
            if (
                not tname
                or ":" in tname
                or "#" in tname
                or any(c.isspace() for c in tname)
                or len(tname) > 254
            ):
                raise FGAError(ErrorCode.type_invalid_pattern, f"invalid type name '{tname}'")
            if tname in types:
                raise FGAError(
                    ErrorCode.cannot_allow_duplicate_types_in_one_request, f"duplicate type '{tname}'"
                )
            meta = ((td.get("metadata") or {}).get("relations")) or {}
            rels: dict[str, Relation] = {}
            for rname, rdef in (td.get("relations") or {}).items():
                if not valid_relation_name(rname) or rname in ("self", "this"):
                    raise FGAError(ErrorCode.relations_invalid_pattern, f"invalid relation name '{rname}'")
                rewrite = _parse_rewrite(rdef, f"{tname}#{rname}")
                refs = []
                for ref in (meta.get(rname) or {}).get("directly_related_user_types") or []:
                    refs.append(
                        RelationRef(
                            type=str(ref.get("type", "")),
                            relation=ref.get("relation") or None,
                            wildcard="wildcard" in ref,
                            condition=ref.get("condition") or None,
                        )
                    )
                usersets = tuple(dict.fromkeys((r.type, r.relation) for r in refs if r.relation))
                rels[rname] = Relation(tname, rname, rewrite, tuple(refs), usersets)
            types[tname] = rels
        conditions: dict[str, Condition] = {}
        for cname, cdef in (model.get("conditions") or {}).items():
            conditions[cname] = compile_condition(cname, cdef)
        ts = cls(id=model_id, schema_version=schema, types=types, conditions=conditions, raw=dict(model))
        if validate:
            ts.validate()
        return ts

    # --- lookups -------------------------------------------------------------------------------------

    def has_type(self, type_: str) -> bool:
        return type_ in self.types

    def get_relation(self, type_: str, relation: str) -> Relation | None:
        rels = self.types.get(type_)
        return rels.get(relation) if rels is not None else None

    def relation_or_raise(
        self, type_: str, relation: str, code: ErrorCode = ErrorCode.validation_error
    ) -> Relation:
        rels = self.types.get(type_)
        if rels is None:
            raise FGAError(
                ErrorCode.type_not_found if code != ErrorCode.validation_error else code,
                f"type '{type_}' not found",
            )
        rel = rels.get(relation)
        if rel is None:
            raise FGAError(
                ErrorCode.relation_not_found if code != ErrorCode.validation_error else code,
                f"relation '{type_}#{relation}' not found",
            )
        return rel

    # --- tuple admission ----------------------------------------------------------------------------

    @cached_property
    def _admission(self) -> dict[tuple[str, str], dict[tuple[str, str | None, bool], frozenset[str | None]]]:
        # (object type, relation) -> {(user type, user relation, wildcard): {allowed condition names}}
        out: dict[tuple[str, str], dict[tuple[str, str | None, bool], frozenset[str | None]]] = {}
        for tname, rels in self.types.items():
            for rname, rel in rels.items():
                m: dict[tuple[str, str | None, bool], set[str | None]] = {}
                for ref in rel.directly_related:
                    m.setdefault((ref.type, ref.relation, ref.wildcard), set()).add(ref.condition)
                out[(tname, rname)] = {k: frozenset(v) for k, v in m.items()}
        return out

    def tuple_allowed(self, object_type: str, relation: str, user: User, condition: str | None) -> bool:
        """Whether the model's type restrictions admit this tuple (OpenFGA ignores the ones they do not)."""
        adm = self._admission.get((object_type, relation))
        if adm is None:
            return False
        conds = adm.get((user.type, user.relation, user.wildcard))
        return conds is not None and condition in conds

    def allows_key(self, key: TupleKey) -> bool:
        ot, _, _ = key.object.partition(":")
        u = parse_user(key.user)
        return u is not None and self.tuple_allowed(ot, key.relation, u, key.condition_name)

    def validate_tuple(self, key: TupleKey) -> None:
        """The checks Write and contextual tuples get (invalid_tuple with OpenFGA's reason)."""
        try:
            otype, _ = split_object(key.object)
        except FGAError:
            raise invalid_tuple(f"Invalid tuple '{key}'. Reason: invalid 'object' field format") from None
        if not key.relation:
            raise invalid_tuple(f"Invalid tuple '{key}'. Reason: the 'relation' field is malformed")
        user = parse_user(key.user)
        if user is None:
            raise invalid_tuple(f"Invalid tuple '{key}'. Reason: the 'user' field is malformed")
        if otype not in self.types:
            raise invalid_tuple(f"Invalid tuple '{key}'. Reason: type '{otype}' not found")
        rel = self.types[otype].get(key.relation)
        if rel is None:
            raise invalid_tuple(f"Invalid tuple '{key}'. Reason: relation '{otype}#{key.relation}' not found")
        if user.type not in self.types:
            raise invalid_tuple(f"Invalid tuple '{key}'. Reason: type '{user.type}' not found")
        if user.relation and user.relation not in self.types[user.type]:
            raise invalid_tuple(
                f"Invalid tuple '{key}'. Reason: relation '{user.type}#{user.relation}' not found"
            )
        if user.relation and f"{user.type}:{user.id}" == key.object and user.relation == key.relation:
            # OpenFGA: a userset is always in itself; storing it is refused.
            raise invalid_tuple(f"Invalid tuple '{key}'. Reason: cannot write a tuple that is implicit")
        if key.condition_name and key.condition_name not in self.conditions:
            raise invalid_tuple(f"Invalid tuple '{key}'. Reason: undefined condition '{key.condition_name}'")
        if not self.tuple_allowed(otype, key.relation, user, key.condition_name):
            raise invalid_tuple(
                f"Invalid tuple '{key}'. Reason: type "
                f"'{user.type}{'#' + user.relation if user.relation else ''}'"
                f"{' (wildcard)' if user.wildcard else ''} is not an allowed type restriction for "
                f"'{otype}#{key.relation}'"
            )
        if key.condition_name:
            self.conditions[key.condition_name].check_context_types(key.condition_context or {})

    # --- reachability -------------------------------------------------------------------------------

    @cached_property
    def _subjects(self) -> dict[tuple[str, str], frozenset[tuple[str, str | None]]]:
        """For every ``type#relation``, the kinds of subject that can be members: (type, None) for objects
        and wildcards of ``type``, (type, relation) for usersets. A least fixpoint over the rewrite graph."""
        # Every userset is a member of itself (Check's identity rule), so each starts with its own kind.
        result: dict[tuple[str, str], set[tuple[str, str | None]]] = {
            (t, r): {(t, r)} for t, rels in self.types.items() for r in rels
        }

        def collect(tname: str, rel: Relation, rw: Rewrite, acc: set[tuple[str, str | None]]) -> None:
            if isinstance(rw, This):
                for ref in rel.directly_related:
                    if ref.relation:
                        acc.add((ref.type, ref.relation))
                        acc.update(result.get((ref.type, ref.relation), ()))
                    else:
                        acc.add((ref.type, None))
            elif isinstance(rw, Computed):
                acc.update(result.get((tname, rw.relation), ()))
            elif isinstance(rw, TupleToUserset):
                ts = self.types[tname].get(rw.tupleset)
                for ref in ts.directly_related if ts else ():
                    acc.update(result.get((ref.type, rw.computed), ()))
            elif isinstance(rw, Union | Intersection):
                for c in rw.children:
                    collect(tname, rel, c, acc)
            else:
                collect(tname, rel, rw.base, acc)
                collect(tname, rel, rw.subtract, acc)

        changed = True
        while changed:
            changed = False
            for tname, rels in self.types.items():
                for rname, rel in rels.items():
                    acc = set(result[(tname, rname)])
                    collect(tname, rel, rel.rewrite, acc)
                    if acc != result[(tname, rname)]:
                        result[(tname, rname)] = acc
                        changed = True
        return {k: frozenset(v) for k, v in result.items()}

    def may_contain(self, type_: str, relation: str, user: User) -> bool:
        """Can ``user`` (or a userset like it) ever be in ``type#relation``? A sound over-approximation."""
        if user.relation and user.type == type_ and user.relation == relation:
            return True
        subs = self._subjects.get((type_, relation), frozenset())
        return (user.type, user.relation) in subs

    # --- cycles -------------------------------------------------------------------------------------

    @cached_property
    def _cycles(self) -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
        """(simply recursive relations, relations from which another kind of cycle can be reached).

        OpenFGA resolves a relation that refers only to itself, in a union (``member: [user, group#member]``,
        ``viewer: [user] or viewer from parent``), as a fixpoint: going round the loop adds nothing. Any other
        cycle (through two relations, or under an intersection or exclusion) is a *cycle*, which a negation
        does not turn into "true". Check and the user-side shortcut follow the same split."""
        edges: dict[tuple[str, str], set[tuple[str, str]]] = {}
        simple_self: set[tuple[str, str]] = set()
        other_self: set[tuple[str, str]] = set()

        def walk(tname: str, rel: Relation, rw: Rewrite, plain: bool, out: set[tuple[str, str]]) -> None:
            me = (tname, rel.name)
            targets: list[tuple[str, str]] = []
            if isinstance(rw, This):
                targets = [(t, r) for t, r in rel.userset_refs]
            elif isinstance(rw, Computed):
                targets = [(tname, rw.relation)]
            elif isinstance(rw, TupleToUserset):
                tsr = self.types[tname].get(rw.tupleset)
                targets = [
                    (r.type, rw.computed)
                    for r in (tsr.directly_related if tsr else ())
                    if rw.computed in self.types.get(r.type, {})
                ]
            elif isinstance(rw, Union):
                for c in rw.children:
                    walk(tname, rel, c, plain, out)
            elif isinstance(rw, Intersection):
                for c in rw.children:
                    walk(tname, rel, c, False, out)
            else:
                walk(tname, rel, rw.base, False, out)
                walk(tname, rel, rw.subtract, False, out)
            for t in targets:
                out.add(t)
                if t == me:
                    (simple_self if plain and not isinstance(rw, Computed) else other_self).add(me)

        for tname, rels in self.types.items():
            for rname, rel in rels.items():
                out: set[tuple[str, str]] = set()
                walk(tname, rel, rel.rewrite, True, out)
                edges[(tname, rname)] = out
        # Strongly connected components (iterative Tarjan).
        index: dict[tuple[str, str], int] = {}
        low: dict[tuple[str, str], int] = {}
        on_stack: set[tuple[str, str]] = set()
        stack: list[tuple[str, str]] = []
        comp: dict[tuple[str, str], int] = {}
        sizes: list[int] = []
        counter = 0
        for root in edges:
            if root in index:
                continue
            work = [(root, iter(sorted(edges[root])))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            while work:
                node, it = work[-1]
                advanced = False
                for nxt in it:
                    if nxt not in edges:
                        continue
                    if nxt not in index:
                        index[nxt] = low[nxt] = counter
                        counter += 1
                        stack.append(nxt)
                        on_stack.add(nxt)
                        work.append((nxt, iter(sorted(edges[nxt]))))
                        advanced = True
                        break
                    if nxt in on_stack:
                        low[node] = min(low[node], index[nxt])
                if advanced:
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    size = 0
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp[w] = len(sizes)
                        size += 1
                        if w == node:
                            break
                    sizes.append(size)
        simple = frozenset(n for n in simple_self if sizes[comp[n]] == 1 and n not in other_self)
        bad = {n for n in edges if sizes[comp[n]] > 1 or n in other_self}
        # Everything that can reach a bad node is tainted.
        changed = True
        while changed:
            changed = False
            for n, outs in edges.items():
                if n not in bad and outs & bad:
                    bad.add(n)
                    changed = True
        cyclic = frozenset(n for n in edges if sizes[comp[n]] > 1 or n in edges[n])
        self.cache["relation_graph"] = {"edges": edges, "cyclic": cyclic}
        return simple, frozenset(bad)

    def set_evaluable(self, type_: str, relation: str) -> bool:
        """Whether everything ``type#relation`` depends on is free of cycles, apart from nesting kinds
        (answered from the user's side): then many objects can be resolved at once, set by set."""
        memo = self.cache.setdefault("set_evaluable", {})
        hit = memo.get((type_, relation))
        if hit is not None:
            return bool(hit)
        self._cycles  # noqa: B018 - builds the relation graph
        graph = self.cache["relation_graph"]
        seen: set[tuple[str, str]] = set()
        todo = [(type_, relation)]
        ok = True
        while todo and ok:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            if self.nesting_kind(*node) and node != (type_, relation):
                continue
            if node in graph["cyclic"]:
                ok = False
                break
            todo.extend(graph["edges"].get(node, ()))
        memo[(type_, relation)] = ok
        return ok

    def conditional(self, type_: str, relation: str) -> bool:
        """Whether anything ``type#relation`` depends on admits tuples with a condition (on a relation
        itself or on a tupleset it follows). A forward evaluation can then fail on a tuple that has nothing
        to do with the user (a missing parameter), which a walk from the user's side never meets."""
        memo = self.cache.setdefault("conditional", {})
        hit = memo.get((type_, relation))
        if hit is not None:
            return bool(hit)
        self._cycles  # noqa: B018 - builds the relation graph
        edges = self.cache["relation_graph"]["edges"]
        seen: set[tuple[str, str]] = set()
        todo = [(type_, relation)]
        found = False
        while todo and not found:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            rels = self.types.get(node[0], {})
            rel = rels.get(node[1])
            if rel is None:
                continue
            followed = [rel]
            stack: list[Rewrite] = [rel.rewrite]
            while stack:
                rw = stack.pop()
                if isinstance(rw, TupleToUserset) and rw.tupleset in rels:
                    followed.append(rels[rw.tupleset])
                elif isinstance(rw, (Union, Intersection)):
                    stack.extend(rw.children)
                elif isinstance(rw, Difference):
                    stack += [rw.base, rw.subtract]
            found = any(r.condition for f in followed for r in f.directly_related)
            todo.extend(edges.get(node, ()))
        memo[(type_, relation)] = found
        return found

    def nesting_kind(self, type_: str, relation: str) -> bool:
        """Whether ``type#relation`` is a plain nesting relation (``member: [user, group#member]``): directly
        assignable only, its only userset restriction itself, without a condition. Then the user's sets of
        that kind are their direct ones plus all their ancestors in a nesting graph that a datastore-wide
        index (service ``_nesting``) can hold."""
        rel = self.get_relation(type_, relation)
        if rel is None or not isinstance(rel.rewrite, This) or rel.userset_refs != ((type_, relation),):
            return False
        return all(r.condition is None for r in rel.directly_related if r.relation)

    def shallow(self, type_: str, relation: str) -> bool:
        """Whether resolving ``type#relation`` forwards on one object stays on that object: no
        tuple-to-userset, no cycle, and userset restrictions only of nesting kinds (answered from the user's
        side). Such a set costs a read or two forwards (``organization#member: [user, team#member] or
        owner``), less than walking backwards to every set of its kind the user is in."""
        memo = self.cache.setdefault("shallow", {})
        hit = memo.get((type_, relation))
        if hit is not None:
            return bool(hit)
        self._cycles  # noqa: B018 - builds the relation graph
        cyclic = self.cache["relation_graph"]["cyclic"]
        rels = self.types.get(type_, {})
        seen: set[str] = set()
        todo = [relation]
        ok = True
        while todo and ok:
            name = todo.pop()
            rel = rels.get(name)
            if name in seen or rel is None:
                continue
            seen.add(name)
            if (type_, name) in cyclic or not all(self.nesting_kind(t, r) for t, r in rel.userset_refs):
                ok = False
                break
            stack: list[Rewrite] = [rel.rewrite]
            while stack:
                rw = stack.pop()
                if isinstance(rw, TupleToUserset):
                    ok = False
                elif isinstance(rw, Computed):
                    todo.append(rw.relation)
                elif isinstance(rw, (Union, Intersection)):
                    stack.extend(rw.children)
                elif isinstance(rw, Difference):
                    stack += [rw.base, rw.subtract]
        memo[(type_, relation)] = ok
        return ok

    def simply_recursive(self, type_: str, relation: str) -> bool:
        return (type_, relation) in self._cycles[0]

    def reaches_other_cycles(self, type_: str, relation: str) -> bool:
        return (type_, relation) in self._cycles[1]

    # --- validation ---------------------------------------------------------------------------------

    def validate(self) -> None:
        for tname, rels in self.types.items():
            for rname, rel in rels.items():
                where = f"{tname}#{rname}"
                self._validate_rewrite(tname, rel, rel.rewrite, where)
                if rel.has_this and not rel.directly_related:
                    raise _bad_model(
                        f"the assignable relation '{where}' must have at least one type restriction"
                    )
                if not rel.has_this and rel.directly_related:
                    raise _bad_model(
                        f"the non-assignable relation '{where}' should not have type restrictions"
                    )
                for ref in rel.directly_related:
                    if ref.type not in self.types:
                        raise _bad_model(f"type '{ref.type}' in '{where}' not found")
                    if ref.relation and ref.relation not in self.types[ref.type]:
                        raise _bad_model(f"relation '{ref.type}#{ref.relation}' in '{where}' not found")
                    if ref.wildcard and ref.relation:
                        raise _bad_model(f"wildcard with a relation in '{where}'")
                    if ref.condition and ref.condition not in self.conditions:
                        raise _bad_model(f"condition '{ref.condition}' in '{where}' is undefined")
        entry = self._entry_points()
        for (tname, rname), ok in entry.items():
            if not ok:
                raise _bad_model(f"no entrypoints defined for '{tname}#{rname}'")

    def _validate_rewrite(self, tname: str, rel: Relation, rw: Rewrite, where: str) -> None:
        rels = self.types[tname]
        if isinstance(rw, Computed):
            if rw.relation not in rels:
                raise _bad_model(f"relation '{tname}#{rw.relation}' referenced by '{where}' not found")
            if rw.relation == rel.name:
                raise _bad_model(f"'{where}' cannot be defined as itself")
        elif isinstance(rw, TupleToUserset):
            ts = rels.get(rw.tupleset)
            if ts is None:
                raise _bad_model(
                    f"tupleset relation '{tname}#{rw.tupleset}' referenced by '{where}' not found"
                )
            if not isinstance(ts.rewrite, This):
                raise _bad_model(f"the tupleset relation '{tname}#{rw.tupleset}' must be directly assignable")
            if any(r.relation or r.wildcard for r in ts.directly_related):
                raise _bad_model(
                    f"the tupleset relation '{tname}#{rw.tupleset}' may only have direct object types"
                )
            if not any(rw.computed in self.types.get(r.type, {}) for r in ts.directly_related):
                raise _bad_model(
                    f"relation '{rw.computed}' referenced from '{tname}#{rw.tupleset}' in '{where}' not found"
                )
        elif isinstance(rw, Union | Intersection):
            if not rw.children:
                raise _bad_model(f"empty set operation in '{where}'")
            for c in rw.children:
                self._validate_rewrite(tname, rel, c, where)
        elif isinstance(rw, Difference):
            self._validate_rewrite(tname, rel, rw.base, where)
            self._validate_rewrite(tname, rel, rw.subtract, where)

    def _entry_points(self) -> dict[tuple[str, str], bool]:
        ok: dict[tuple[str, str], bool] = {(t, r): False for t, rels in self.types.items() for r in rels}

        def has(tname: str, rel: Relation, rw: Rewrite) -> bool:
            if isinstance(rw, This):
                return any(
                    (ref.relation is None) or ok.get((ref.type, ref.relation), False)
                    for ref in rel.directly_related
                )
            if isinstance(rw, Computed):
                return ok.get((tname, rw.relation), False)
            if isinstance(rw, TupleToUserset):
                ts = self.types[tname][rw.tupleset]
                return any(ok.get((r.type, rw.computed), False) for r in ts.directly_related)
            if isinstance(rw, Union):
                return any(has(tname, rel, c) for c in rw.children)
            if isinstance(rw, Intersection):
                return all(has(tname, rel, c) for c in rw.children)
            return has(tname, rel, rw.base)

        changed = True
        while changed:
            changed = False
            for tname, rels in self.types.items():
                for rname, rel in rels.items():
                    if not ok[(tname, rname)] and has(tname, rel, rel.rewrite):
                        ok[(tname, rname)] = True
                        changed = True
        return ok

    def relations_with(self, type_: str) -> Iterable[Relation]:
        return self.types.get(type_, {}).values()
