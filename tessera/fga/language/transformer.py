"""DSL <-> OpenFGA JSON authorization model.

The JSON is the shape OpenFGA's API takes and returns (``schema_version``, ``type_definitions`` with
``relations`` and ``metadata.relations[*].directly_related_user_types``, and ``conditions`` keyed by name),
with the empty values OpenFGA's language transformer writes (``"relations": {}``, ``"metadata": null`` for a
type without relations, ``"directly_related_user_types": []`` for a relation without direct assignment).
"""

from __future__ import annotations

from typing import Any

from .ast import ConditionDef, ModelFile, Positions, RelationDef, Rewrite, TypeDef, TypeRestriction
from .errors import ErrorDetail, ModelValidationError

PARAM_TYPE_NAMES = {
    "bool": "TYPE_NAME_BOOL",
    "string": "TYPE_NAME_STRING",
    "int": "TYPE_NAME_INT",
    "uint": "TYPE_NAME_UINT",
    "double": "TYPE_NAME_DOUBLE",
    "duration": "TYPE_NAME_DURATION",
    "timestamp": "TYPE_NAME_TIMESTAMP",
    "ipaddress": "TYPE_NAME_IPADDRESS",
    "map": "TYPE_NAME_MAP",
    "list": "TYPE_NAME_LIST",
    "any": "TYPE_NAME_ANY",
}
PARAM_TYPE_WORDS = {v: k for k, v in PARAM_TYPE_NAMES.items()}


def restriction_json(r: TypeRestriction, positions: Positions) -> dict[str, Any]:
    out: dict[str, Any] = {"type": r.type.text}
    if r.wildcard:
        out["wildcard"] = {}
    if r.relation is not None:
        out["relation"] = r.relation.text
    if r.condition is not None:
        out["condition"] = r.condition.text
    positions.nodes[id(out)] = r
    return out


def rewrite_json(node: Rewrite, positions: Positions) -> dict[str, Any]:
    out: dict[str, Any]
    if node.kind == "this":
        out = {"this": {}}
    elif node.kind == "computed":
        assert node.relation is not None
        out = {"computedUserset": {"relation": node.relation.text}}
    elif node.kind == "ttu":
        assert node.relation is not None and node.tupleset is not None
        out = {
            "tupleToUserset": {
                "tupleset": {"relation": node.tupleset.text},
                "computedUserset": {"relation": node.relation.text},
            }
        }
    elif node.kind == "difference":
        out = {
            "difference": {
                "base": rewrite_json(node.children[0], positions),
                "subtract": rewrite_json(node.children[1], positions),
            }
        }
    else:
        out = {node.kind: {"child": [rewrite_json(c, positions) for c in node.children]}}
    positions.nodes[id(out)] = node
    return out


def relation_metadata(rel: RelationDef, positions: Positions) -> dict[str, Any]:
    return {"directly_related_user_types": [restriction_json(r, positions) for r in rel.restrictions]}


def type_json(typedef: TypeDef, positions: Positions) -> dict[str, Any]:
    relations: dict[str, Any] = {}
    meta_relations: dict[str, Any] = {}
    out: dict[str, Any] = {"type": typedef.name.text, "relations": relations, "metadata": None}
    for rel in typedef.relations:
        if rel.name.text in relations:
            continue  # reported by the parser
        relations[rel.name.text] = rewrite_json(rel.rewrite, positions)
        meta_relations[rel.name.text] = relation_metadata(rel, positions)
        positions.relation_names[(id(out), rel.name.text)] = rel.name.span
    if relations:
        out["metadata"] = {"relations": meta_relations}
    positions.nodes[id(out)] = typedef
    return out


def condition_json(cond: ConditionDef) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for p in cond.params:
        param: dict[str, Any] = {"type_name": PARAM_TYPE_NAMES[p.type_name]}
        if p.generic is not None:
            param["generic_types"] = [{"type_name": PARAM_TYPE_NAMES[p.generic]}]
        params.setdefault(p.name.text, param)
    return {"name": cond.name.text, "expression": cond.expression, "parameters": params}


def model_json(model: ModelFile, positions: Positions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if model.schema_version is not None:
        out["schema_version"] = model.schema_version
    positions.schema = model.schema_span
    if model.types:
        # OpenFGA's transformer leaves the list out of a model that declares no type (transformer pair 00).
        out["type_definitions"] = [type_json(t, positions) for t in model.types]
    if model.conditions:
        conditions: dict[str, Any] = {}
        for cond in model.conditions:
            if cond.name.text not in conditions:
                conditions[cond.name.text] = condition_json(cond)
                positions.condition_names[cond.name.text] = cond.name.span
        out["conditions"] = conditions
    return out


# -- JSON -> DSL -------------------------------------------------------------------------------------------


class _Unsupported(Exception):
    pass


def _is_this(node: dict[str, Any]) -> bool:
    return isinstance(node, dict) and "this" in node


def _contains_this(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    if "this" in node:
        return True
    for key in ("union", "intersection"):
        if key in node:
            return any(_contains_this(c) for c in (node[key] or {}).get("child") or [])
    if "difference" in node:
        diff = node["difference"] or {}
        return _contains_this(diff.get("base")) or _contains_this(diff.get("subtract"))
    return False


def _restriction_dsl(r: dict[str, Any]) -> str:
    text = str(r.get("type", ""))
    if r.get("wildcard") is not None:
        text += ":*"
    elif r.get("relation"):
        text += f"#{r['relation']}"
    if r.get("condition"):
        text += f" with {r['condition']}"
    return text


def _rewrite_dsl(node: Any, direct: str, top: bool, direct_allowed: bool) -> str:
    """Render one rewrite; ``direct`` is the ``[...]`` text of the relation's direct assignment.

    The DSL can only write the direct assignment as the leftmost operand, so ``this`` is accepted where it
    can be moved there: the rewrite itself, a direct child of a union or intersection (moved first, which does
    not change the meaning), or inside the first child / the base of a difference.
    """
    if not isinstance(node, dict):
        raise _Unsupported
    if "this" in node:
        if not direct_allowed:
            raise _Unsupported
        return direct
    if "computedUserset" in node:
        return str((node["computedUserset"] or {}).get("relation", ""))
    if "tupleToUserset" in node:
        ttu = node["tupleToUserset"] or {}
        computed = (ttu.get("computedUserset") or {}).get("relation", "")
        tupleset = (ttu.get("tupleset") or {}).get("relation", "")
        return f"{computed} from {tupleset}"
    for key, word in (("union", "or"), ("intersection", "and")):
        if key in node:
            children = list((node[key] or {}).get("child") or [])
            this_children = [c for c in children if _is_this(c)]
            if this_children:
                if len(this_children) > 1 or not direct_allowed:
                    raise _Unsupported
                children.remove(this_children[0])
                children.insert(0, this_children[0])
            parts = []
            for i, child in enumerate(children):
                allowed = direct_allowed and i == 0
                if not allowed and _contains_this(child):
                    raise _Unsupported
                parts.append(_rewrite_dsl(child, direct, False, allowed))
            text = f" {word} ".join(parts)
            return text if top else f"({text})"
    if "difference" in node:
        diff = node["difference"] or {}
        if _contains_this(diff.get("subtract")):
            raise _Unsupported
        base = _rewrite_dsl(diff.get("base"), direct, False, direct_allowed)
        subtract = _rewrite_dsl(diff.get("subtract"), direct, False, False)
        text = f"{base} but not {subtract}"
        return text if top else f"({text})"
    raise _Unsupported


def _source_comment(meta: Any) -> str:
    if not isinstance(meta, dict):
        return ""
    module = meta.get("module") or ""
    file = (meta.get("source_info") or {}).get("file") or ""
    if not module and not file:
        return ""
    return f"module: {module}, file: {file}"


def json_to_dsl(model: dict[str, Any], include_source_information: bool = False) -> str:
    lines = ["model", f"  schema {model.get('schema_version', '')}"]
    for typedef in model.get("type_definitions") or []:
        type_name = typedef.get("type", "")
        meta = typedef.get("metadata") or {}
        type_source = _source_comment(meta) if include_source_information else ""
        lines.append("")
        lines.append(f"type {type_name}" + (f" # {type_source}" if type_source else ""))
        relations = typedef.get("relations") or {}
        if not relations:
            continue
        lines.append("  relations")
        meta_relations = meta.get("relations") or {}
        for rel_name, rewrite in relations.items():
            rel_meta = meta_relations.get(rel_name) or {}
            types = rel_meta.get("directly_related_user_types") or []
            direct = "[" + ", ".join(_restriction_dsl(t) for t in types) + "]"
            try:
                text = _rewrite_dsl(rewrite, direct, True, True)
            except _Unsupported:
                raise ModelValidationError(
                    [
                        ErrorDetail(
                            f"the '{rel_name}' relation definition under the '{type_name}' type is not "
                            "supported by the OpenFGA DSL syntax yet"
                        )
                    ]
                ) from None
            suffix = ""
            if include_source_information:
                rel_source = _source_comment(rel_meta)
                if rel_source:
                    suffix = f" # extended by: {rel_source}"
            lines.append(f"    define {rel_name}: {text}{suffix}")
    conditions = model.get("conditions") or {}
    # Conditions are written in name order, as OpenFGA's transformer does (transformer pair 11).
    for cond_name in sorted(conditions):
        cond = conditions[cond_name]
        params = []
        parameters = cond.get("parameters") or {}
        for p_name in sorted(parameters):  # name order, as OpenFGA writes them (transformer pair 11)
            p = parameters[p_name]
            word = PARAM_TYPE_WORDS.get(p.get("type_name", ""), "")
            generics = p.get("generic_types") or []
            if generics:
                word += (
                    "<" + ", ".join(PARAM_TYPE_WORDS.get(g.get("type_name", ""), "") for g in generics) + ">"
                )
            params.append(f"{p_name}: {word}")
        lines.append("")
        lines.append(f"condition {cond.get('name') or cond_name}({', '.join(params)}) {{")
        lines.append(f"  {cond.get('expression', '')}")
        source = _source_comment(cond.get("metadata")) if include_source_information else ""
        lines.append("}" + (f" # {source}" if source else ""))
    return "\n".join(lines) + "\n"
