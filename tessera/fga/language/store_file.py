"""Store test files (``store.fga.yaml``), the format ``fga model test`` reads.

Top level: ``name``, ``description``, ``model`` (DSL text) or ``model_file`` (a ``.fga``, ``.json`` or
``fga.mod`` path relative to the store file), ``tuples`` and/or ``tuple_file`` / ``tuple_files`` (YAML, JSON
or CSV), and ``tests``. Each test has ``name``, ``description``, ``tuples``/``tuple_file``/``tuple_files`` and
assertions: ``check``
(``user`` or ``users``, ``object`` or ``objects``, ``context``, ``assertions: {relation: bool}``),
``list_objects`` (``user``, ``type``, ``context``, ``assertions: {relation: [objects]}``) and ``list_users``
(``object``, ``user_filter``, ``context``, ``assertions: {relation: {users: [...]}}``).

The file is checked against the schema the fga CLI uses; errors come back in its validator's shape
(``keyword``, ``message``, ``instancePath``, ``schemaPath``, ``params``) on :class:`StoreFileError`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ErrorDetail, StoreFileError
from .identifiers import is_valid_relation_name, is_valid_type_name, parse_object, parse_user

# -- typed result ------------------------------------------------------------------------------------------


@dataclass
class TupleCondition:
    name: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class TupleSpec:
    user: str
    relation: str
    object: str
    condition: TupleCondition | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"user": self.user, "relation": self.relation, "object": self.object}
        if self.condition is not None:
            out["condition"] = {"name": self.condition.name, "context": self.condition.context}
        return out


@dataclass
class CheckAssertion:
    users: list[str]
    objects: list[str]
    assertions: dict[str, bool]
    context: dict[str, Any] | None = None

    def cases(self) -> Iterator[tuple[str, str, str, bool]]:
        """Every (user, object, relation, expected) the item asserts."""
        for user in self.users:
            for obj in self.objects:
                for relation, expected in self.assertions.items():
                    yield user, obj, relation, expected


@dataclass
class ListObjectsAssertion:
    user: str
    type: str
    assertions: dict[str, list[str]]
    context: dict[str, Any] | None = None


@dataclass
class UserFilter:
    type: str
    relation: str | None = None


@dataclass
class ListUsersAssertion:
    object: str
    user_filter: list[UserFilter]
    assertions: dict[str, list[str]]  # relation -> expected users
    context: dict[str, Any] | None = None


@dataclass
class StoreTest:
    name: str
    description: str | None = None
    tuples: list[TupleSpec] = field(default_factory=list)
    check: list[CheckAssertion] = field(default_factory=list)
    list_objects: list[ListObjectsAssertion] = field(default_factory=list)
    list_users: list[ListUsersAssertion] = field(default_factory=list)


@dataclass
class StoreFile:
    path: Path | None
    name: str | None
    description: str | None
    model: dict[str, Any]  # OpenFGA JSON authorization model
    model_dsl: str | None
    tuples: list[TupleSpec]
    tests: list[StoreTest]


# -- schema check (the fga CLI's store file schema, ajv-style errors) -------------------------------------

_TUPLE_KEYS = {"user", "relation", "object", "condition"}
_TEST_KEYS = {
    "name",
    "description",
    "tuple_file",
    "tuple_files",
    "tuples",
    "check",
    "list_objects",
    "list_users",
}
_ROOT_KEYS = {"name", "description", "model_file", "model", "tuple_file", "tuple_files", "tuples", "tests"}
_FORMATS = {
    "user": lambda v: parse_user(v) is not None,
    "object": lambda v: parse_object(v) is not None,
    "relation": is_valid_relation_name,
    "type": is_valid_type_name,
    "condition": lambda v: bool(v) and is_valid_relation_name(v),
}
_TYPE_CHECKS: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


class _SchemaCheck:
    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def error(
        self, keyword: str, message: str, path: str, schema_path: str, params: dict[str, Any], data: Any
    ) -> None:
        self.errors.append(
            {
                "keyword": keyword,
                "message": message,
                "instancePath": path,
                "schemaPath": schema_path,
                "params": params,
                "data": data,
            }
        )

    def type(self, value: Any, expected: str, path: str, schema_path: str) -> bool:
        if _TYPE_CHECKS[expected](value):
            return True
        self.error("type", f"must be {expected}", path, f"{schema_path}/type", {"type": expected}, value)
        return False

    def string(self, value: Any, path: str, schema_path: str, fmt: str | None = None) -> None:
        if self.type(value, "string", path, schema_path) and fmt is not None and not _FORMATS[fmt](value):
            self.error(
                "format", f'must match format "{fmt}"', path, f"{schema_path}/format", {"format": fmt}, value
            )

    def object(
        self,
        value: Any,
        path: str,
        schema_path: str,
        allowed: set[str] | None,
        required: list[str],
    ) -> bool:
        if not self.type(value, "object", path, schema_path):
            return False
        for key in required:
            if key not in value:
                self.error(
                    "required",
                    f"must have required property '{key}'",
                    path,
                    f"{schema_path}/required",
                    {"missingProperty": key},
                    value,
                )
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    self.error(
                        "additionalProperties",
                        "must NOT have additional properties",
                        path,
                        f"{schema_path}/additionalProperties",
                        {"additionalProperty": key},
                        value,
                    )
        return True

    def array(self, value: Any, path: str, schema_path: str) -> list[Any]:
        return value if self.type(value, "array", path, schema_path) else []

    def tuples(self, value: Any, path: str, schema_path: str) -> None:
        for i, item in enumerate(self.array(value, path, schema_path)):
            p, sp = f"{path}/{i}", f"{schema_path}/items"
            if not self.object(item, p, sp, _TUPLE_KEYS, ["user", "relation", "object"]):
                continue
            for key, fmt in (("user", "user"), ("relation", "relation"), ("object", "object")):
                if key in item:
                    self.string(item[key], f"{p}/{key}", f"{sp}/properties/{key}", fmt)
            if "condition" in item:
                cp, csp = f"{p}/condition", f"{sp}/properties/condition"
                cond = item["condition"]
                if self.object(cond, cp, csp, {"name", "context"}, ["name"]):
                    if "name" in cond:
                        self.string(cond["name"], f"{cp}/name", f"{csp}/properties/name", "condition")
                    if "context" in cond:
                        self.type(cond["context"], "object", f"{cp}/context", f"{csp}/properties/context")

    def context(self, item: dict[str, Any], path: str, schema_path: str) -> None:
        if "context" in item:
            self.type(item["context"], "object", f"{path}/context", f"{schema_path}/properties/context")

    def check_items(self, value: Any, path: str, schema_path: str) -> None:
        for i, item in enumerate(self.array(value, path, schema_path)):
            p, sp = f"{path}/{i}", f"{schema_path}/items"
            allowed = {"user", "users", "object", "objects", "assertions", "context"}
            if not self.object(item, p, sp, allowed, ["assertions"]):
                continue
            for single, plural, fmt in (("user", "users", "user"), ("object", "objects", "object")):
                if single not in item and plural not in item:
                    self.error(
                        "required",
                        f"must have required property '{single}'",
                        p,
                        f"{sp}/required",
                        {"missingProperty": single},
                        item,
                    )
                if single in item:
                    self.string(item[single], f"{p}/{single}", f"{sp}/properties/{single}", fmt)
                if plural in item:
                    for j, v in enumerate(
                        self.array(item[plural], f"{p}/{plural}", f"{sp}/properties/{plural}")
                    ):
                        self.string(v, f"{p}/{plural}/{j}", f"{sp}/properties/{plural}/items", fmt)
            if "assertions" in item and self.type(
                item["assertions"], "object", f"{p}/assertions", f"{sp}/properties/assertions"
            ):
                for rel, expected in item["assertions"].items():
                    self.type(
                        expected,
                        "boolean",
                        f"{p}/assertions/{rel}",
                        f"{sp}/properties/assertions/patternProperties/.*",
                    )
            self.context(item, p, sp)

    def list_objects_items(self, value: Any, path: str, schema_path: str) -> None:
        for i, item in enumerate(self.array(value, path, schema_path)):
            p, sp = f"{path}/{i}", f"{schema_path}/items"
            if not self.object(
                item,
                p,
                sp,
                {"user", "type", "relation", "assertions", "context"},
                ["user", "type", "assertions"],
            ):
                continue
            for key, fmt in (("user", "user"), ("type", "type"), ("relation", "relation")):
                if key in item:
                    self.string(item[key], f"{p}/{key}", f"{sp}/properties/{key}", fmt)
            if "assertions" in item and self.type(
                item["assertions"], "object", f"{p}/assertions", f"{sp}/properties/assertions"
            ):
                for rel, objects in item["assertions"].items():
                    ap = f"{p}/assertions/{rel}"
                    asp = f"{sp}/properties/assertions/patternProperties/.*"
                    for j, obj in enumerate(self.array(objects, ap, asp)):
                        self.string(obj, f"{ap}/{j}", f"{asp}/items")
            self.context(item, p, sp)

    def list_users_items(self, value: Any, path: str, schema_path: str) -> None:
        for i, item in enumerate(self.array(value, path, schema_path)):
            p, sp = f"{path}/{i}", f"{schema_path}/items"
            if not self.object(
                item,
                p,
                sp,
                {"object", "user_filter", "context", "assertions"},
                ["object", "user_filter", "assertions"],
            ):
                continue
            if "object" in item:
                self.string(item["object"], f"{p}/object", f"{sp}/properties/object", "object")
            if "user_filter" in item:
                fp, fsp = f"{p}/user_filter", f"{sp}/properties/user_filter"
                for j, flt in enumerate(self.array(item["user_filter"], fp, fsp)):
                    if self.object(flt, f"{fp}/{j}", f"{fsp}/items", None, ["type"]):
                        for key in ("type", "relation"):
                            if key in flt:
                                self.string(flt[key], f"{fp}/{j}/{key}", f"{fsp}/items/properties/{key}")
            self.context(item, p, sp)
            if "assertions" in item and self.type(
                item["assertions"], "object", f"{p}/assertions", f"{sp}/properties/assertions"
            ):
                for rel, expected in item["assertions"].items():
                    ap = f"{p}/assertions/{rel}"
                    asp = f"{sp}/properties/assertions/patternProperties/.*"
                    if self.object(expected, ap, asp, {"users"}, []) and "users" in expected:
                        up, usp = f"{ap}/users", f"{asp}/properties/users"
                        for j, user in enumerate(self.array(expected["users"], up, usp)):
                            self.string(user, f"{up}/{j}", f"{usp}/items", "user")

    def file_list(self, item: dict[str, Any], path: str, schema_path: str) -> None:
        """``tuple_files``: a list of paths (the fga CLI reads them all, in order)."""
        if "tuple_files" in item:
            files = self.array(item["tuple_files"], f"{path}/tuple_files", f"{schema_path}/tuple_files")
            for j, name in enumerate(files):
                self.string(name, f"{path}/tuple_files/{j}", f"{schema_path}/tuple_files/items")

    def store(self, doc: Any) -> None:
        if not self.object(doc, "", "#", _ROOT_KEYS, ["tests"]):
            return
        for key in ("name", "description", "model_file", "model", "tuple_file"):
            if key in doc:
                self.string(doc[key], f"/{key}", f"#/properties/{key}")
        self.file_list(doc, "", "#/properties")
        if "tuples" in doc:
            self.tuples(doc["tuples"], "/tuples", "#/properties/tuples")
        if "tests" in doc:
            tests_sp = "#/properties/tests/items"
            for i, test in enumerate(self.array(doc["tests"], "/tests", "#/properties/tests")):
                p = f"/tests/{i}"
                if not self.object(test, p, tests_sp, _TEST_KEYS, []):
                    continue
                for key in ("name", "description", "tuple_file"):
                    if key in test:
                        self.string(test[key], f"{p}/{key}", f"{tests_sp}/properties/{key}")
                self.file_list(test, p, f"{tests_sp}/properties")
                if "tuples" in test:
                    self.tuples(test["tuples"], f"{p}/tuples", f"{tests_sp}/properties/tuples")
                if "check" in test:
                    self.check_items(test["check"], f"{p}/check", f"{tests_sp}/properties/check")
                if "list_objects" in test:
                    self.list_objects_items(
                        test["list_objects"], f"{p}/list_objects", f"{tests_sp}/properties/list_objects"
                    )
                if "list_users" in test:
                    self.list_users_items(
                        test["list_users"], f"{p}/list_users", f"{tests_sp}/properties/list_users"
                    )
        if "model" not in doc and "model_file" not in doc:
            # The CLI's own keyword (and its spelling) for a store without a model.
            self.error(
                "valid_store", "'model' or 'model_file' must be presenet keys.", "", "#/valid_store", {}, doc
            )


def check_store_document(doc: Any) -> list[dict[str, Any]]:
    """Schema errors of a parsed store file (empty when it is valid)."""
    checker = _SchemaCheck()
    checker.store(doc)
    return checker.errors


# -- loading -----------------------------------------------------------------------------------------------


def _fail(message: str, schema_errors: list[dict[str, Any]] | None = None) -> StoreFileError:
    return StoreFileError([ErrorDetail(message)], schema_errors)


def _tuple(raw: dict[str, Any]) -> TupleSpec:
    cond = raw.get("condition")
    condition = None
    if isinstance(cond, dict) and cond.get("name"):
        condition = TupleCondition(str(cond["name"]), dict(cond.get("context") or {}))
    return TupleSpec(str(raw["user"]), str(raw["relation"]), str(raw["object"]), condition)


def _csv_tuples(text: str, source: Path) -> list[TupleSpec]:
    """The fga CLI's CSV columns: user_type, user_id, user_relation, relation, object_type, object_id,
    condition_name, condition_context (a JSON object)."""
    reader = csv.DictReader(io.StringIO(text))
    needed = {"user_type", "user_id", "relation", "object_type", "object_id"}
    if reader.fieldnames is None or not needed <= set(reader.fieldnames):
        raise _fail(f"{source}: CSV tuple file needs the columns {', '.join(sorted(needed))}")
    out = []
    for row_number, row in enumerate(reader, start=2):
        user = f"{row['user_type']}:{row['user_id']}"
        if row.get("user_relation"):
            user += f"#{row['user_relation']}"
        condition = None
        if row.get("condition_name"):
            context: dict[str, Any] = {}
            if row.get("condition_context"):
                try:
                    context = json.loads(row["condition_context"])
                except json.JSONDecodeError as exc:
                    raise _fail(f"{source}:{row_number}: condition_context is not JSON: {exc}") from None
            condition = TupleCondition(row["condition_name"], context)
        out.append(TupleSpec(user, row["relation"], f"{row['object_type']}:{row['object_id']}", condition))
    return out


def _load_yaml(text: str) -> Any:
    """Safe YAML loading, with libyaml's C parser when PyYAML was built with it (several times faster on
    large tuple files)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 - SafeLoader or its C twin, never the unsafe loader


def load_tuple_file(path: Path) -> list[TupleSpec]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot read tuple file {path}: {exc.strerror}") from None
    if path.suffix.lower() == ".csv":
        return _csv_tuples(text, path)
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else _load_yaml(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise _fail(f"cannot parse tuple file {path}: {exc}") from None
    checker = _SchemaCheck()
    checker.tuples(raw, "", "#")
    if checker.errors:
        raise _fail(f"invalid tuple file {path}", checker.errors)
    return [_tuple(t) for t in raw or []]


def _load_model(doc: dict[str, Any], base: Path) -> tuple[dict[str, Any], str | None]:
    from .api import transform_dsl_to_json
    from .modules import transform_module_files

    if "model" in doc:
        dsl = doc["model"]
        return transform_dsl_to_json(dsl), dsl
    model_path = base / doc["model_file"]
    try:
        text = model_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot read model file {model_path}: {exc.strerror}") from None
    if model_path.suffix.lower() == ".json":
        from .validation import validate_model

        model = json.loads(text)
        validate_model(model)
        return model, None
    if model_path.name == "fga.mod" or model_path.suffix.lower() == ".mod":
        from .modules import parse_mod_file

        mod = parse_mod_file(text)
        files = {}
        for item in mod.files:
            try:
                files[item] = (model_path.parent / item).read_text(encoding="utf-8")
            except OSError as exc:
                raise _fail(f"cannot read module file {model_path.parent / item}: {exc.strerror}") from None
        return transform_module_files(text, files), None
    return transform_dsl_to_json(text), text


def _tuple_file_names(item: dict[str, Any]) -> list[str]:
    names = [item["tuple_file"]] if item.get("tuple_file") else []
    return names + list(item.get("tuple_files") or [])


def parse_store_document(doc: Any, base: Path, path: Path | None = None) -> StoreFile:
    errors = check_store_document(doc)
    if errors:
        raise _fail(f"{path or 'store file'} does not follow the store file schema", errors)
    assert isinstance(doc, dict)
    model, dsl = _load_model(doc, base)
    tuples = [_tuple(t) for t in doc.get("tuples") or []]
    for name in _tuple_file_names(doc):
        tuples.extend(load_tuple_file(base / name))
    tests = []
    for raw in doc.get("tests") or []:
        test = StoreTest(name=str(raw.get("name", "")), description=raw.get("description"))
        test.tuples = [_tuple(t) for t in raw.get("tuples") or []]
        for name in _tuple_file_names(raw):
            test.tuples.extend(load_tuple_file(base / name))
        for item in raw.get("check") or []:
            users = list(item["users"]) if "users" in item else [item["user"]]
            objects = list(item["objects"]) if "objects" in item else [item["object"]]
            test.check.append(CheckAssertion(users, objects, dict(item["assertions"]), item.get("context")))
        for item in raw.get("list_objects") or []:
            test.list_objects.append(
                ListObjectsAssertion(
                    item["user"],
                    item["type"],
                    {k: list(v or []) for k, v in item["assertions"].items()},
                    item.get("context"),
                )
            )
        for item in raw.get("list_users") or []:
            test.list_users.append(
                ListUsersAssertion(
                    item["object"],
                    [UserFilter(f["type"], f.get("relation")) for f in item["user_filter"]],
                    {k: list((v or {}).get("users") or []) for k, v in item["assertions"].items()},
                    item.get("context"),
                )
            )
        tests.append(test)
    return StoreFile(path, doc.get("name"), doc.get("description"), model, dsl, tuples, tests)


def load_store_file(path: str | Path) -> StoreFile:
    """Read a store test file; ``model_file`` and tuple files are resolved relative to it.

    Raises :class:`StoreFileError` (schema problems, with ``schema_errors``), or the model's own
    :class:`~tessera.fga.language.DSLSyntaxError` / :class:`~tessera.fga.language.ModelValidationError`.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot read store file {file}: {exc.strerror}") from None
    try:
        doc = _load_yaml(text)
    except yaml.YAMLError as exc:
        raise _fail(f"cannot parse store file {file}: {exc}") from None
    return parse_store_document(doc, file.parent, file)
