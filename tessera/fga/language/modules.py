"""Modular models (schema 1.2): ``fga.mod`` and module files combined into one JSON model.

``fga.mod`` is YAML with ``schema: '1.2'`` and ``contents:`` (the module files, relative paths ending in
``.fga``). Each module file starts with ``module <name>``, declares types and conditions, and may add
relations to a type of another module with ``extend type``. The combined model carries, as OpenFGA writes it,
the module and file of every type and condition (``metadata.module``, ``metadata.source_info.file``) and of
every relation added by an ``extend``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import yaml

from .ast import Positions, Span, TypeDef
from .errors import DSLSyntaxError, ErrorDetail, ModuleError
from .parser import parse_dsl
from .transformer import condition_json, relation_metadata, rewrite_json
from .validation import collect_errors


@dataclass
class ModFileValue:
    value: Any
    line: tuple[int, int]
    column: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, list):
            value = [v.to_dict() if isinstance(v, ModFileValue) else v for v in value]
        return {
            "value": value,
            "line": {"start": self.line[0], "end": self.line[1]},
            "column": {"start": self.column[0], "end": self.column[1]},
        }


@dataclass
class ModFile:
    schema: ModFileValue
    contents: ModFileValue
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.to_dict(), "contents": self.contents.to_dict()}


def _value(node: yaml.Node, value: Any) -> ModFileValue:
    return ModFileValue(
        value,
        (node.start_mark.line, node.end_mark.line),
        (node.start_mark.column, node.end_mark.column),
    )


def _error(msg: str, node: yaml.Node | None = None) -> ErrorDetail:
    if node is None:
        return ErrorDetail(msg, (0, 0), (0, 0))
    return ErrorDetail(
        msg, (node.start_mark.line, node.end_mark.line), (node.start_mark.column, node.end_mark.column)
    )


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _safe_path(path: str) -> bool:
    """Relative and inside the project: not absolute, no `..` segment, also once %-decoded or with `\\`."""
    decoded = unquote(path)
    for candidate in (path, decoded):
        normalized = candidate.replace("\\", "/")
        if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
            return False
        if any(part == ".." for part in normalized.split("/")):
            return False
    return True


def parse_mod_file(text: str) -> ModFile:
    """Parse ``fga.mod``; raises :class:`ModuleError` with OpenFGA's messages and positions."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line, mark.column) if mark is not None else (0, 0)
        raise ModuleError([ErrorDetail(f"invalid fga.mod: {exc}", (line, line), (col, col))]) from None
    errors: list[ErrorDetail] = []
    fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    if isinstance(root, yaml.MappingNode):
        for key_node, value_node in root.value:
            fields[str(key_node.value)] = (key_node, value_node)
    schema: ModFileValue | None = None
    contents: ModFileValue | None = None
    if "schema" not in fields:
        errors.append(_error("missing schema field"))
    else:
        node = fields["schema"][1]
        value = _construct(node)
        if not isinstance(value, str):
            errors.append(_error(f"unexpected schema type, expected string got value {_show(value)}", node))
        elif value != "1.2":
            errors.append(_error("unsupported schema version, fga.mod only supported in version `1.2`", node))
        else:
            schema = _value(node, value)
    files: list[str] = []
    if "contents" not in fields:
        errors.append(_error("missing contents field"))
    else:
        node = fields["contents"][1]
        if not isinstance(node, yaml.SequenceNode):
            value = _construct(node)
            errors.append(
                _error(f"unexpected contents type, expected list of strings got value {_show(value)}", node)
            )
        else:
            items: list[ModFileValue] = []
            for item in node.value:
                value = _construct(item)
                if not isinstance(value, str):
                    errors.append(
                        _error(
                            f"unexpected contents item type, expected string got value {_show(value)}", item
                        )
                    )
                    continue
                if not value.endswith(".fga"):
                    errors.append(_error(f"contents items should use fga file extension, got {value}", item))
                    continue
                if not _safe_path(value):
                    errors.append(_error(f"invalid contents item {value}", item))
                    continue
                items.append(_value(item, value))
                files.append(value)
            contents = _value(node, items)
    if errors or schema is None or contents is None:
        raise ModuleError(errors)
    return ModFile(schema, contents, files)


def module_names(model: dict[str, Any]) -> list[str]:
    """The modules a combined model is made of (sorted, as OpenFGA lists them)."""
    names: set[str] = set()
    for typedef in model.get("type_definitions") or []:
        meta = typedef.get("metadata") or {}
        if meta.get("module"):
            names.add(meta["module"])
        for rel_meta in (meta.get("relations") or {}).values():
            if (rel_meta or {}).get("module"):
                names.add(rel_meta["module"])
    for cond in (model.get("conditions") or {}).values():
        module = ((cond or {}).get("metadata") or {}).get("module")
        if module:
            names.add(module)
    return sorted(names)


def _at(msg: str, span: Span, file: str) -> ErrorDetail:
    return ErrorDetail(msg, (span.line, span.line), (span.start, span.end), file=file)


def transform_modules(files: dict[str, str], schema_version: str = "1.2") -> dict[str, Any]:
    """Combine module files (``{path: text}``, in ``fga.mod`` order) into one JSON model.

    Raises :class:`ModuleError` listing every problem: syntax errors (``type: syntax``), files that are not
    modules, duplicate conditions, extends of unknown types or of existing relations, and then OpenFGA's
    semantic rules on the combined model, each with the file and position it comes from.
    """
    errors: list[ErrorDetail] = []
    positions = Positions()
    type_defs: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    conditions: dict[str, Any] = {}
    extends: list[tuple[str, str, TypeDef]] = []
    for path, text in files.items():
        try:
            parsed = parse_dsl(text, file=path)
        except DSLSyntaxError as exc:
            for detail in exc.errors:
                detail.file = path
                detail.kind = "syntax"
                detail.symbol = None
            errors.extend(exc.errors)
            continue
        if parsed.module is None:
            errors.append(ErrorDetail("file is not a module", (0, 0), (0, 0), file=path))
            continue
        module = parsed.module.text
        source = {"module": module, "source_info": {"file": path}}
        for typedef in parsed.types:
            if typedef.extend:
                extends.append((module, path, typedef))
                continue
            if typedef.name.text in by_name:
                errors.append(_at(f"duplicate type definition {typedef.name.text}", typedef.name.span, path))
                continue
            relations: dict[str, Any] = {}
            meta_relations: dict[str, Any] = {}
            out: dict[str, Any] = {
                "type": typedef.name.text,
                "relations": relations,
                "metadata": dict(source),
            }
            for rel in typedef.relations:
                if rel.name.text in relations:
                    continue
                relations[rel.name.text] = rewrite_json(rel.rewrite, positions)
                meta_relations[rel.name.text] = relation_metadata(rel, positions)
                positions.relation_names[(id(out), rel.name.text)] = rel.name.span
            if meta_relations:
                out["metadata"]["relations"] = meta_relations
            positions.nodes[id(out)] = typedef
            type_defs.append(out)
            by_name[typedef.name.text] = out
        for cond in parsed.conditions:
            if cond.name.text in conditions:
                errors.append(_at(f"duplicate condition {cond.name.text}", cond.name.span, path))
                continue
            cond_json = condition_json(cond)
            cond_json["metadata"] = dict(source)
            conditions[cond.name.text] = cond_json
            positions.condition_names[cond.name.text] = cond.name.span
    for module, path, typedef in extends:
        target = by_name.get(typedef.name.text)
        if target is None:
            errors.append(_at(f"extended type {typedef.name.text} does not exist", typedef.name.span, path))
            continue
        relations = target["relations"]
        meta = target["metadata"]
        for rel in typedef.relations:
            if rel.name.text in relations:
                errors.append(
                    _at(
                        f"relation {rel.name.text} already exists on type {typedef.name.text}",
                        rel.name.span,
                        path,
                    )
                )
                continue
            relations[rel.name.text] = rewrite_json(rel.rewrite, positions)
            rel_meta = relation_metadata(rel, positions)
            rel_meta["module"] = module
            rel_meta["source_info"] = {"file": path}
            meta.setdefault("relations", {})[rel.name.text] = rel_meta
            positions.relation_names[(id(target), rel.name.text)] = rel.name.span
    model: dict[str, Any] = {"schema_version": schema_version, "type_definitions": type_defs}
    if conditions:
        model["conditions"] = conditions
    errors.extend(collect_errors(model, positions))
    if errors:
        raise ModuleError(errors)
    return model


def transform_module_files(fga_mod: str, files: dict[str, str]) -> dict[str, Any]:
    """``fga.mod`` text plus the module files it lists (``{path: text}``) to one JSON model."""
    mod = parse_mod_file(fga_mod)
    missing = [p for p in mod.files if p not in files]
    if missing:
        raise ModuleError([ErrorDetail(f"file {p} listed in fga.mod was not found") for p in missing])
    return transform_modules({p: files[p] for p in mod.files}, schema_version=mod.schema.value)
