"""OpenFGA's semantic rules for an authorization model, with OpenFGA's messages.

The rules run on the JSON model, so the same code validates a model written in DSL (errors then carry the line
and column of the offending text, found through :class:`Positions`) and a JSON model sent to the API. Two
phases, as in OpenFGA's validator: first names, types, relations and conditions are checked; only when they
are all sound does the entrypoint/loop analysis run (it needs a well-formed model).
"""

from __future__ import annotations

import re
from typing import Any

from .ast import Name, Positions, Rewrite, Span, TypeDef, TypeRestriction
from .errors import ErrorDetail, ModelValidationError

SUPPORTED_SCHEMAS = ("1.1", "1.2")
TYPE_NAME_RULE = r"^[^:#@\*\s]{1,254}$"
RELATION_NAME_RULE = r"^[^:#@\*\s]{1,50}$"
_TYPE_RE = re.compile(TYPE_NAME_RULE)
_RELATION_RE = re.compile(RELATION_NAME_RULE)
RESERVED = ("self", "this")

Node = dict[str, Any]


def _full_match(rx: re.Pattern[str], text: str) -> bool:
    # `$` in Python also matches before a final newline; OpenFGA's rule means the whole name.
    return rx.match(text) is not None and "\n" not in text


def rewrite_label(node: Any) -> str | None:
    """The DSL text of a leaf (used in "partial relation definition ... is a duplicate")."""
    if not isinstance(node, dict):
        return None
    if "computedUserset" in node:
        return str((node["computedUserset"] or {}).get("relation", ""))
    if "tupleToUserset" in node:
        ttu = node["tupleToUserset"] or {}
        computed = (ttu.get("computedUserset") or {}).get("relation", "")
        tupleset = (ttu.get("tupleset") or {}).get("relation", "")
        return f"{computed} from {tupleset}"
    return None


def restriction_label(r: dict[str, Any]) -> str:
    text = str(r.get("type", ""))
    if r.get("wildcard") is not None:
        text += ":*"
    elif r.get("relation"):
        text += f"#{r['relation']}"
    return text


MAX_REWRITE_DEPTH = 64
REWRITE_KEYS = ("this", "computedUserset", "tupleToUserset", "union", "intersection", "difference")
PARAM_TYPE_NAMES = {
    "TYPE_NAME_ANY",
    "TYPE_NAME_BOOL",
    "TYPE_NAME_STRING",
    "TYPE_NAME_INT",
    "TYPE_NAME_UINT",
    "TYPE_NAME_DOUBLE",
    "TYPE_NAME_DURATION",
    "TYPE_NAME_TIMESTAMP",
    "TYPE_NAME_MAP",
    "TYPE_NAME_LIST",
    "TYPE_NAME_IPADDRESS",
}


def shape_errors(model: Any) -> list[ErrorDetail]:
    """Structural problems of a JSON model from outside (the API): wrong JSON types, unknown rewrite nodes,
    nesting beyond :data:`MAX_REWRITE_DEPTH`. The semantic rules assume a well-shaped model."""
    errors: list[ErrorDetail] = []

    def bad(msg: str) -> None:
        errors.append(ErrorDetail(msg, error_type="invalid-model-shape"))

    if not isinstance(model, dict):
        bad("the authorization model must be a JSON object")
        return errors
    version = model.get("schema_version")
    if version is not None and not isinstance(version, str):
        bad("`schema_version` must be a string")
    type_defs = model.get("type_definitions")
    if type_defs is not None and not isinstance(type_defs, list):
        bad("`type_definitions` must be a list")
        type_defs = []
    for index, typedef in enumerate(type_defs or []):
        where = f"type_definitions[{index}]"
        if not isinstance(typedef, dict):
            bad(f"`{where}` must be an object")
            continue
        if not isinstance(typedef.get("type"), str):
            bad(f"`{where}.type` must be a string")
        relations = typedef.get("relations")
        if relations is not None and not isinstance(relations, dict):
            bad(f"`{where}.relations` must be an object")
            relations = {}
        for rel, rewrite in (relations or {}).items():
            _rewrite_shape(rewrite, f"{where}.relations.{rel}", bad)
        meta = typedef.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            bad(f"`{where}.metadata` must be an object")
            continue
        meta_relations = (meta or {}).get("relations")
        if meta_relations is not None and not isinstance(meta_relations, dict):
            bad(f"`{where}.metadata.relations` must be an object")
            continue
        for rel, rel_meta in (meta_relations or {}).items():
            if not isinstance(rel_meta, dict):
                bad(f"`{where}.metadata.relations.{rel}` must be an object")
                continue
            drts = rel_meta.get("directly_related_user_types")
            if drts is not None and not isinstance(drts, list):
                bad(f"`{where}.metadata.relations.{rel}.directly_related_user_types` must be a list")
                continue
            for j, r in enumerate(drts or []):
                at = f"{where}.metadata.relations.{rel}.directly_related_user_types[{j}]"
                if not isinstance(r, dict) or not isinstance(r.get("type"), str):
                    bad(f"`{at}` must be an object with a string `type`")
                    continue
                for key in ("relation", "condition"):
                    if r.get(key) is not None and not isinstance(r[key], str):
                        bad(f"`{at}.{key}` must be a string")
                if r.get("wildcard") is not None and not isinstance(r["wildcard"], dict):
                    bad(f"`{at}.wildcard` must be an object")
                if r.get("wildcard") is not None and r.get("relation"):
                    bad(f"`{at}` cannot be both a wildcard and a userset")
    conditions = model.get("conditions")
    if conditions is not None and not isinstance(conditions, dict):
        bad("`conditions` must be an object")
        conditions = {}
    for key, cond in (conditions or {}).items():
        if not isinstance(cond, dict):
            bad(f"`conditions.{key}` must be an object")
            continue
        if not isinstance(cond.get("expression", ""), str):
            bad(f"`conditions.{key}.expression` must be a string")
        params = cond.get("parameters")
        if params is not None and not isinstance(params, dict):
            bad(f"`conditions.{key}.parameters` must be an object")
            continue
        for p_name, p in (params or {}).items():
            if not isinstance(p, dict) or p.get("type_name") not in PARAM_TYPE_NAMES:
                bad(f"`conditions.{key}.parameters.{p_name}.type_name` must be one of the TYPE_NAME_* values")
                continue
            generics = p.get("generic_types")
            if generics is not None and (
                not isinstance(generics, list)
                or not all(isinstance(g, dict) and g.get("type_name") in PARAM_TYPE_NAMES for g in generics)
            ):
                bad(f"`conditions.{key}.parameters.{p_name}.generic_types` must list TYPE_NAME_* values")
    return errors


def _rewrite_shape(root: Any, where: str, bad: Any) -> None:
    """Check a rewrite tree iteratively (hostile input may nest deeply)."""
    stack: list[tuple[Any, str, int]] = [(root, where, 0)]
    while stack:
        node, at, depth = stack.pop()
        if depth > MAX_REWRITE_DEPTH:
            bad(f"`{at}` nests deeper than {MAX_REWRITE_DEPTH} levels")
            return
        if not isinstance(node, dict):
            bad(f"`{at}` must be an object")
            continue
        keys = [k for k in REWRITE_KEYS if node.get(k) is not None]
        if len(keys) != 1:
            bad(f"`{at}` must have exactly one of {', '.join(REWRITE_KEYS)}")
            continue
        key = keys[0]
        value = node[key]
        if not isinstance(value, dict):
            bad(f"`{at}.{key}` must be an object")
        elif key == "computedUserset":
            if not isinstance(value.get("relation"), str) or not value["relation"]:
                bad(f"`{at}.computedUserset.relation` must be a relation name")
        elif key == "tupleToUserset":
            for part in ("tupleset", "computedUserset"):
                inner = value.get(part)
                if (
                    not isinstance(inner, dict)
                    or not isinstance(inner.get("relation"), str)
                    or not inner["relation"]
                ):
                    bad(f"`{at}.tupleToUserset.{part}.relation` must be a relation name")
        elif key in ("union", "intersection"):
            children = value.get("child")
            if not isinstance(children, list) or not children:
                bad(f"`{at}.{key}.child` must be a non-empty list")
                continue
            for i, child in enumerate(children):
                stack.append((child, f"{at}.{key}.child[{i}]", depth + 1))
        elif key == "difference":
            for part in ("base", "subtract"):
                stack.append((value.get(part), f"{at}.difference.{part}", depth + 1))


def _has_this(root: Any) -> bool:
    stack = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("this") is not None:
            return True
        for key in ("union", "intersection"):
            if isinstance(node.get(key), dict):
                stack.extend(node[key].get("child") or [])
        if isinstance(node.get("difference"), dict):
            stack.extend([node["difference"].get("base"), node["difference"].get("subtract")])
    return False


class _Validator:
    def __init__(self, model: dict[str, Any], positions: Positions | None, strict: bool = True):
        self.model = model
        self.pos = positions
        self.strict = strict
        self.errors: list[ErrorDetail] = []
        self.type_defs: list[Node] = [t for t in (model.get("type_definitions") or []) if isinstance(t, dict)]
        # Relations of every type; a type defined twice contributes the relations of both definitions (the
        # duplicate itself is reported once).
        self.relations: dict[str, dict[str, Any]] = {}
        self.direct: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for t in self.type_defs:
            name = str(t.get("type", ""))
            rels = t.get("relations") or {}
            self.relations.setdefault(name, {}).update(rels)
            meta = (t.get("metadata") or {}).get("relations") or {}
            drts = self.direct.setdefault(name, {})
            for rel in rels:
                drts[rel] = list((meta.get(rel) or {}).get("directly_related_user_types") or [])
        self.conditions: dict[str, Any] = dict(model.get("conditions") or {})

    # -- error helpers ---------------------------------------------------------------------------------------
    def add(self, msg: str, error_type: str, span: Span | None = None, symbol: str | None = None) -> None:
        detail = ErrorDetail(msg, symbol=symbol, error_type=error_type)
        if span is not None:
            detail.line = (span.line, span.line)
            detail.column = (span.start, span.end)
            detail.file = span.file
        self.errors.append(detail)

    def _node(self, node: Any) -> Any:
        return self.pos.of(node) if self.pos is not None else None

    def type_span(self, typedef: Node) -> Span | None:
        ast = self._node(typedef)
        return ast.name.span if isinstance(ast, TypeDef) else None

    def relation_span(self, typedef: Node, relation: str) -> Span | None:
        if self.pos is None:
            return None
        return self.pos.relation_names.get((id(typedef), relation))

    def restriction(self, r: dict[str, Any]) -> TypeRestriction | None:
        ast = self._node(r)
        return ast if isinstance(ast, TypeRestriction) else None

    def rewrite(self, node: Any) -> Rewrite | None:
        ast = self._node(node)
        return ast if isinstance(ast, Rewrite) else None

    @staticmethod
    def _name_span(name: Name | None) -> Span | None:
        return name.span if name is not None else None

    # -- phase 0: schema -------------------------------------------------------------------------------------
    def schema(self) -> bool:
        version = self.model.get("schema_version")
        if not version:
            span = Span(0, 0, 0) if self.pos is not None else None
            self.add("schema version required", "schema-version-required", span, symbol="")
            return False
        if version not in SUPPORTED_SCHEMAS:
            span = self.pos.schema if self.pos is not None else None
            self.add(f"invalid schema {version}", "invalid-schema", span, symbol=str(version))
            return False
        return True

    # -- phase 1 ---------------------------------------------------------------------------------------------
    def structure(self) -> None:
        seen_types: dict[str, Node] = {}
        used_conditions: set[str] = set()
        for typedef in self.type_defs:
            type_name = str(typedef.get("type", ""))
            span = self.type_span(typedef)
            if type_name in RESERVED:
                self.add(
                    "a type cannot be named 'self' or 'this'.", "reserved-type-keywords", span, type_name
                )
            elif not _full_match(_TYPE_RE, type_name):
                self.add(
                    f"type '{type_name}' does not match naming rule: '{TYPE_NAME_RULE}'.",
                    "invalid-name",
                    span,
                    type_name,
                )
            if type_name in seen_types:
                first = seen_types[type_name]
                self.add(
                    f"the type `{type_name}` is a duplicate.",
                    "duplicated-error",
                    self.type_span(first),
                    type_name,
                )
            else:
                seen_types[type_name] = typedef
            meta = (typedef.get("metadata") or {}).get("relations") or {}
            for rel_name, rewrite in (typedef.get("relations") or {}).items():
                rel_span = self.relation_span(typedef, rel_name)
                if rel_name in RESERVED:
                    self.add(
                        "a relation cannot be named 'self' or 'this'.",
                        "reserved-relation-keywords",
                        rel_span,
                        rel_name,
                    )
                elif not _full_match(_RELATION_RE, rel_name):
                    self.add(
                        f"relation '{rel_name}' of type '{type_name}' does not match naming rule: "
                        f"'{RELATION_NAME_RULE}'.",
                        "invalid-name",
                        rel_span,
                        rel_name,
                    )
                drts = list((meta.get(rel_name) or {}).get("directly_related_user_types") or [])
                if self.pos is None:
                    assignable = _has_this(rewrite)
                    if assignable and not drts:
                        self.add(
                            f"the relation `{rel_name}` of type `{type_name}` is directly assignable but "
                            "lists no directly related user types.",
                            "assignable-relation-must-have-type",
                            None,
                            rel_name,
                        )
                    elif drts and not assignable:
                        self.add(
                            f"the relation `{rel_name}` of type `{type_name}` lists directly related user "
                            "types but is not directly assignable.",
                            "non-assignable-relation-with-types",
                            None,
                            rel_name,
                        )
                self.restrictions(type_name, rel_name, drts, used_conditions)
                self.walk(type_name, rel_name, rewrite)
        for key, cond in self.conditions.items():
            nested = (cond or {}).get("name") if isinstance(cond, dict) else None
            span = self.pos.condition_names.get(key) if self.pos is not None else None
            if nested and nested != key:
                self.add(
                    f"condition key is `{key}` but nested name property is {nested}",
                    "different-nested-condition-name",
                    span,
                    str(nested),
                )
            if key not in used_conditions and self.strict:
                self.add(f"`{key}` condition is not used in the model.", "condition-not-used", span, key)
        self.modules_per_file()

    def restrictions(
        self, type_name: str, rel_name: str, drts: list[dict[str, Any]], used_conditions: set[str]
    ) -> None:
        seen: dict[tuple[str, str | None], dict[str, Any]] = {}
        for r in drts:
            if not isinstance(r, dict):
                continue
            label = restriction_label(r)
            key = (label, r.get("condition") or None)
            ast = self.restriction(r)
            if key in seen:
                if not self.strict:
                    continue
                first = self.restriction(seen[key])
                self.add(
                    f"the type restriction `{label}` is a duplicate in the relation `{rel_name}`.",
                    "duplicated-error",
                    first.span if first is not None else None,
                    label,
                )
                continue
            seen[key] = r
            target = str(r.get("type", ""))
            if target not in self.relations:
                self.add(
                    f"`{target}` is not a valid type.",
                    "invalid-type",
                    self._name_span(ast.type) if ast is not None else None,
                    target,
                )
            elif r.get("relation") and r["relation"] not in self.relations[target]:
                self.add(
                    f"`{r['relation']}` is not a valid relation for `{target}`.",
                    "invalid-relation-type",
                    ast.span if ast is not None else None,
                    label,
                )
            condition = r.get("condition")
            if condition:
                used_conditions.add(condition)
                if condition not in self.conditions:
                    self.add(
                        f"`{condition}` is not a defined condition in the model.",
                        "condition-not-defined",
                        self._name_span(ast.condition) if ast is not None else None,
                        condition,
                    )

    def _duplicates(self, rel_name: str, children: list[Any]) -> None:
        if not self.strict:
            return
        seen: dict[str, Any] = {}
        for child in children:
            label = rewrite_label(child)
            if label is None:
                continue
            if label in seen:
                first = self.rewrite(seen[label])
                self.add(
                    f"the partial relation definition `{label}` is a duplicate in the relation `{rel_name}`.",
                    "duplicated-error",
                    first.span if first is not None else None,
                    label,
                )
            else:
                seen[label] = child

    def _is_direct_only(self, type_name: str, relation: str) -> bool:
        rewrite = self.relations.get(type_name, {}).get(relation)
        if not (isinstance(rewrite, dict) and set(rewrite) == {"this"}):
            return False
        for r in self.direct.get(type_name, {}).get(relation, []):
            if r.get("relation") or r.get("wildcard") is not None:
                return False
        return True

    def walk(self, type_name: str, rel_name: str, node: Any) -> None:
        if not isinstance(node, dict):
            return
        ast = self.rewrite(node)
        if "computedUserset" in node:
            target = (node["computedUserset"] or {}).get("relation", "")
            if target not in self.relations.get(type_name, {}):
                self.add(
                    f"the relation `{target}` does not exist.",
                    "missing-definition",
                    self._name_span(ast.relation) if ast is not None else None,
                    target,
                )
            elif target == rel_name:
                # OpenFGA's server refuses a relation that names itself as a computed userset anywhere in its
                # own definition (`define x: [user] or x`), which its language validator lets through.
                self.add(
                    f"the definition of relation '{rel_name}' in object type '{type_name}' is invalid: "
                    "invalid userset rewrite definition",
                    "invalid-userset-rewrite",
                    self._name_span(ast.relation) if ast is not None else None,
                    target,
                )
        elif "tupleToUserset" in node:
            ttu = node["tupleToUserset"] or {}
            computed = (ttu.get("computedUserset") or {}).get("relation", "")
            tupleset = (ttu.get("tupleset") or {}).get("relation", "")
            span = ast.span if ast is not None else None
            if tupleset not in self.relations.get(type_name, {}):
                self.add(
                    f"`{tupleset}` is not a valid relation for `{type_name}`.",
                    "invalid-relation-type",
                    span,
                    f"{computed} from {tupleset}",
                )
            elif not self._is_direct_only(type_name, tupleset):
                self.add(
                    f"`{tupleset}` relation used inside from allows only direct relation.",
                    "tupleuserset-not-direct",
                    self._name_span(ast.tupleset) if ast is not None else None,
                    tupleset,
                )
            else:
                targets = [str(r.get("type", "")) for r in self.direct.get(type_name, {}).get(tupleset, [])]
                if targets and not any(computed in self.relations.get(t, {}) for t in targets):
                    for t in targets:
                        self.add(
                            f"the `{computed}` relation definition on type `{type_name}` is not valid: "
                            f"`{computed}` does not exist on `{tupleset}`, which is of type `{t}`.",
                            "invalid-relation-on-tupleset",
                            span,
                            f"{computed} from {tupleset}",
                        )
        elif "union" in node or "intersection" in node:
            children = list((node.get("union") or node.get("intersection") or {}).get("child") or [])
            self._duplicates(rel_name, children)
            for child in children:
                self.walk(type_name, rel_name, child)
        elif "difference" in node:
            diff = node["difference"] or {}
            children = [diff.get("base"), diff.get("subtract")]
            self._duplicates(rel_name, children)
            for child in children:
                self.walk(type_name, rel_name, child)

    def modules_per_file(self) -> None:
        """A file of a modular model holds one module (JSON -> DSL could not write it back otherwise)."""
        files: dict[str, list[str]] = {}

        def note(meta: Any) -> None:
            if not isinstance(meta, dict):
                return
            module = meta.get("module")
            file = (meta.get("source_info") or {}).get("file")
            if module and file:
                modules = files.setdefault(file, [])
                if module not in modules:
                    modules.append(module)

        for typedef in self.type_defs:
            meta = typedef.get("metadata")
            note(meta)
            for rel_meta in ((meta or {}).get("relations") or {}).values():
                note(rel_meta)
        for cond in self.conditions.values():
            if isinstance(cond, dict):
                note(cond.get("metadata"))
        for file, modules in files.items():
            if len(modules) > 1:
                self.add(
                    f"file {file} would contain multiple module definitions ({', '.join(modules)}) when "
                    "transforming to DSL. Only one module can be defined per file.",
                    "multiple-modules-in-file",
                    None,
                    file,
                )

    # -- phase 2: entrypoints and loops ----------------------------------------------------------------------
    def _computed_cycles(self, type_name: str) -> set[str]:
        """Relations of one type on a cycle of computed usersets (through unions, intersections and
        exclusions; tuple-to-usersets and direct assignments do not count, as their tuples end recursion).

        OpenFGA's server rejects such models ("an authorization model cannot contain a cycle") even when a
        direct assignment gives the relations an entrypoint; its language validator misses them (the
        "cycle N should fail" cases are marked skip in the shared test data).
        """
        relations = self.relations.get(type_name, {})
        edges: dict[str, set[str]] = {}
        for rel, rewrite in relations.items():
            targets: set[str] = set()
            stack = [rewrite]
            while stack:
                node = stack.pop()
                if not isinstance(node, dict):
                    continue
                if "computedUserset" in node:
                    targets.add(str((node["computedUserset"] or {}).get("relation", "")))
                for key in ("union", "intersection"):
                    if isinstance(node.get(key), dict):
                        stack.extend(node[key].get("child") or [])
                if isinstance(node.get("difference"), dict):
                    stack.extend([node["difference"].get("base"), node["difference"].get("subtract")])
            edges[rel] = {t for t in targets if t in relations}
        on_cycle: set[str] = set()
        for start in edges:
            seen: set[str] = set()
            stack = list(edges[start])
            while stack:
                current = stack.pop()
                if current == start:
                    on_cycle.add(start)
                    break
                if current in seen:
                    continue
                seen.add(current)
                stack.extend(edges.get(current, ()))
        return on_cycle

    def _with_entrypoints(self) -> set[tuple[str, str]]:
        """Every relation that has an entrypoint: the least fixpoint, computed with a worklist so that long
        chains of types (``viewer from parent`` a thousand times) need no deep recursion."""
        Key = tuple[str, str]
        deps: dict[Key, set[Key]] = {}
        for type_name, rels in self.relations.items():
            for rel, rewrite in rels.items():
                refs: set[Key] = set()
                stack = [rewrite]
                while stack:
                    node = stack.pop()
                    if not isinstance(node, dict):
                        continue
                    if "this" in node:
                        for r in self.direct.get(type_name, {}).get(rel, []):
                            if r.get("relation"):
                                refs.add((str(r.get("type", "")), str(r["relation"])))
                    elif "computedUserset" in node:
                        refs.add((type_name, str((node["computedUserset"] or {}).get("relation", ""))))
                    elif "tupleToUserset" in node:
                        ttu = node["tupleToUserset"] or {}
                        computed = str((ttu.get("computedUserset") or {}).get("relation", ""))
                        tupleset = (ttu.get("tupleset") or {}).get("relation", "")
                        for r in self.direct.get(type_name, {}).get(tupleset, []):
                            refs.add((str(r.get("type", "")), computed))
                    for op in ("union", "intersection"):
                        if isinstance(node.get(op), dict):
                            stack.extend(node[op].get("child") or [])
                    if isinstance(node.get("difference"), dict):
                        stack.extend([node["difference"].get("base"), node["difference"].get("subtract")])
                deps[(type_name, rel)] = refs
        dependents: dict[Key, set[Key]] = {}
        for key, refs in deps.items():
            for ref in refs:
                dependents.setdefault(ref, set()).add(key)
        has: set[Key] = set()

        def holds(type_name: str, rel: str, node: Any, depth: int = 0) -> bool:
            if not isinstance(node, dict) or depth > MAX_REWRITE_DEPTH:
                return False
            if "this" in node:
                for r in self.direct.get(type_name, {}).get(rel, []):
                    target = str(r.get("type", ""))
                    if target in self.relations and (not r.get("relation") or (target, r["relation"]) in has):
                        return True
                return False
            if "computedUserset" in node:
                return (type_name, (node["computedUserset"] or {}).get("relation", "")) in has
            if "tupleToUserset" in node:
                ttu = node["tupleToUserset"] or {}
                computed = (ttu.get("computedUserset") or {}).get("relation", "")
                tupleset = (ttu.get("tupleset") or {}).get("relation", "")
                return any(
                    (str(r.get("type", "")), computed) in has
                    for r in self.direct.get(type_name, {}).get(tupleset, [])
                )
            if "union" in node:
                return any(
                    holds(type_name, rel, c, depth + 1) for c in (node["union"] or {}).get("child") or []
                )
            if "intersection" in node:
                children = (node["intersection"] or {}).get("child") or []
                return bool(children) and all(holds(type_name, rel, c, depth + 1) for c in children)
            if "difference" in node:
                diff = node["difference"] or {}
                return holds(type_name, rel, diff.get("base"), depth + 1) and holds(
                    type_name, rel, diff.get("subtract"), depth + 1
                )
            return False

        work = list(deps)
        while work:
            key = work.pop()
            if key in has:
                continue
            rewrite = self.relations.get(key[0], {}).get(key[1])
            if holds(key[0], key[1], rewrite):
                has.add(key)
                work.extend(dependents.get(key, ()))
        return has

    def entrypoints(self) -> None:
        # Relations known to have an entrypoint (independent of the path); the recursive analysis below only
        # runs for the others, to tell a loop from a missing entrypoint.
        found: set[tuple[str, str]] = self._with_entrypoints()

        def relation(type_name: str, rel: str, visited: frozenset[tuple[str, str]]) -> tuple[bool, bool]:
            key = (type_name, rel)
            if key in found:
                return True, False
            if key in visited:
                return False, True
            rewrite = self.relations.get(type_name, {}).get(rel)
            if rewrite is None:
                return False, False
            result = node(type_name, rel, rewrite, visited | {key})
            if result[0]:
                found.add(key)
            return result

        def node(type_name: str, rel: str, rw: Any, visited: frozenset[tuple[str, str]]) -> tuple[bool, bool]:
            if not isinstance(rw, dict):
                return False, False
            if "this" in rw:
                for r in self.direct.get(type_name, {}).get(rel, []):
                    target = str(r.get("type", ""))
                    if target not in self.relations:
                        continue
                    if not r.get("relation"):
                        return True, False
                    if relation(target, r["relation"], visited)[0]:
                        return True, False
                # A userset restriction back to the relation itself is "no entrypoint", not a loop.
                return False, False
            if "computedUserset" in rw:
                return relation(type_name, (rw["computedUserset"] or {}).get("relation", ""), visited)
            if "tupleToUserset" in rw:
                ttu = rw["tupleToUserset"] or {}
                computed = (ttu.get("computedUserset") or {}).get("relation", "")
                tupleset = (ttu.get("tupleset") or {}).get("relation", "")
                for r in self.direct.get(type_name, {}).get(tupleset, []):
                    target = str(r.get("type", ""))
                    if computed in self.relations.get(target, {}) and relation(target, computed, visited)[0]:
                        return True, False
                return False, False
            if "union" in rw:
                loop = False
                for child in (rw["union"] or {}).get("child") or []:
                    has, child_loop = node(type_name, rel, child, visited)
                    if has:
                        return True, False
                    loop = loop or child_loop
                return False, loop
            if "intersection" in rw:
                for child in (rw["intersection"] or {}).get("child") or []:
                    has, child_loop = node(type_name, rel, child, visited)
                    if not has:
                        return False, child_loop
                return True, False
            if "difference" in rw:
                diff = rw["difference"] or {}
                for child in (diff.get("base"), diff.get("subtract")):
                    has, child_loop = node(type_name, rel, child, visited)
                    if not has:
                        return False, child_loop
                return True, False
            return False, False

        for typedef in self.type_defs:
            type_name = str(typedef.get("type", ""))
            cyclic = self._computed_cycles(type_name)
            for rel_name in typedef.get("relations") or {}:
                has, loop = relation(type_name, rel_name, frozenset())
                if not has or rel_name in cyclic:
                    reason = "potential loop" if loop or has else "no entrypoint"
                    self.add(
                        f"`{rel_name}` is an impossible relation for `{type_name}` ({reason}).",
                        "relation-no-entry-point",
                        self.relation_span(typedef, rel_name),
                        rel_name,
                    )


def collect_errors(
    model: dict[str, Any], positions: Positions | None = None, *, strict: bool = True
) -> list[ErrorDetail]:
    if positions is None:
        shape = shape_errors(model)
        if shape:
            return shape
    validator = _Validator(model, positions, strict)
    if not validator.schema():
        return validator.errors
    try:
        validator.structure()
        if not validator.errors:
            validator.entrypoints()
    except RecursionError:
        # A chain of thousands of relations each pointing at the next; OpenFGA would not take it either.
        validator.errors.append(
            ErrorDetail("the authorization model is too deeply nested to validate", error_type="too-deep")
        )
    return validator.errors


def validate_model(model: Any, positions: Positions | None = None, *, strict: bool = True) -> None:
    """Raise :class:`ModelValidationError` listing every broken rule.

    ``strict=False`` leaves out the three rules of OpenFGA's language that its server does not enforce on
    WriteAuthorizationModel (an unused condition, a duplicate type restriction, a duplicate operand), as
    ``fga model validate`` shows.
    """
    if not isinstance(model, dict):
        raise ModelValidationError([ErrorDetail("the authorization model must be a JSON object")])
    errors = collect_errors(model, positions, strict=strict)
    if errors:
        raise ModelValidationError(errors)
