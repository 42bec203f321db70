"""Request bodies of OpenFGA's HTTP API, checked as OpenFGA's gateway checks them.

OpenFGA validates requests against the constraints in its protobuf definitions (the ``maxLength``,
``maxItems``, ``required`` and ``pattern`` of shared/reference/openfga/openfga-api.swagger.json) before the
server sees them, and answers 400 ``validation_error`` naming the field (``invalid CheckRequestTupleKey.User:
value length must be at most 512 bytes``). The functions here do the same and return the engine's own types;
the engine then applies the checks that need the model (unknown types and relations, tuple restrictions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tessera.fga.engine.errors import ErrorCode, FGAError, validation
from tessera.fga.engine.tuples import TupleKey

# openfga/api: store and model ids are ULIDs (26 characters of Crockford base32).
_ULID = re.compile(r"^[ABCDEFGHJKMNPQRSTVWXYZ0-9]{26}\Z")
# BatchCheckItem.correlation_id: letters, digits and hyphens, at most 36 (swagger's description).
_CORRELATION = re.compile(r"^[\w\d-]{1,36}\Z")
_CONSISTENCY = ("UNSPECIFIED", "MINIMIZE_LATENCY", "HIGHER_CONSISTENCY")
MAX_CONTEXTUAL = 100
MAX_ASSERTIONS = 100
MAX_ASSERTION_CONTEXTUAL = 20


def json_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is ``{}``, as grpc-gateway reads it)."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise validation(f"invalid JSON body: {exc}") from None
    except RecursionError:
        # A body of thousands of nested arrays: refuse it like any other malformed body.
        raise validation("invalid JSON body: nested too deeply") from None
    if not isinstance(data, dict):
        raise validation("the request body must be a JSON object")
    return data


def store_id(value: str) -> str:
    if not _ULID.match(value):
        raise validation(
            f'invalid {"StoreId"}: value does not match regex pattern "^[ABCDEFGHJKMNPQRSTVWXYZ0-9]{{26}}$"'
        )
    return value


def model_id(value: str, field: str = "AuthorizationModelId") -> str:
    if value and not _ULID.match(value):
        raise validation(
            f'invalid {field}: value does not match regex pattern "^[ABCDEFGHJKMNPQRSTVWXYZ0-9]{{26}}$"'
        )
    return value


def _string(
    data: Mapping[str, Any], key: str, where: str, *, max_len: int | None = None, required: bool = False
) -> str:
    value = data.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise validation(f"invalid {where}.{_camel(key)}: value must be a string")
    if required and not value:
        raise validation(f"invalid {where}.{_camel(key)}: value length must be at least 1 runes")
    if max_len is not None and len(value.encode()) > max_len:
        raise validation(f"invalid {where}.{_camel(key)}: value length must be at most {max_len} bytes")
    return value


def _camel(key: str) -> str:
    return "".join(part.capitalize() for part in key.split("_"))


def _object(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise validation(f"invalid {where}.{_camel(key)}: value must be an object")
    return value


def _list(
    data: Mapping[str, Any], key: str, where: str, *, max_items: int | None = None, min_items: int = 0
) -> list[Any]:
    value = data.get(key)
    if value is None:
        value = []
    if not isinstance(value, list):
        raise validation(f"invalid {where}.{_camel(key)}: value must be a list")
    if len(value) < min_items:
        raise validation(f"invalid {where}.{_camel(key)}: value must contain at least {min_items} item(s)")
    if max_items is not None and len(value) > max_items:
        raise validation(
            f"invalid {where}.{_camel(key)}: value must contain no more than {max_items} item(s)"
        )
    return value


def tuple_key(
    data: Any, where: str = "TupleKey", *, with_condition: bool = True, required: bool = True
) -> TupleKey:
    """A TupleKey (object <= 256, relation <= 50, user <= 512 bytes; all three required)."""
    if not isinstance(data, dict):
        raise validation(f"invalid {where}: value is required")
    obj = _string(data, "object", where, max_len=256, required=required)
    rel = _string(data, "relation", where, max_len=50, required=required)
    user = _string(data, "user", where, max_len=512, required=required)
    cond_name: str | None = None
    cond_ctx: dict[str, Any] | None = None
    if with_condition and data.get("condition") is not None:
        cond = data["condition"]
        if not isinstance(cond, dict):
            raise validation(f"invalid {where}.Condition: value must be an object")
        cond_name = _string(cond, "name", "RelationshipCondition", max_len=256, required=True)
        ctx = cond.get("context")
        if ctx is not None and not isinstance(ctx, dict):
            raise validation("invalid RelationshipCondition.Context: value must be an object")
        cond_ctx = ctx or None
    return TupleKey(obj, rel, user, cond_name, cond_ctx)


def contextual_tuples(data: Mapping[str, Any], where: str) -> list[TupleKey]:
    """``contextual_tuples: {"tuple_keys": [...]}`` (at most 100)."""
    ctx = data.get("contextual_tuples")
    if ctx is None:
        return []
    if not isinstance(ctx, dict):
        raise validation(f"invalid {where}.ContextualTuples: value must be an object")
    keys = _list(ctx, "tuple_keys", "ContextualTupleKeys", max_items=MAX_CONTEXTUAL)
    return [tuple_key(k, "TupleKey") for k in keys]


def context(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    return _object(data, "context", where)


def consistency(data: Mapping[str, Any], where: str) -> Any:
    value = data.get("consistency") or "UNSPECIFIED"
    if value not in _CONSISTENCY:
        raise validation(f"invalid {where}.Consistency: value must be one of the defined enum values")
    return value


def page_size(raw: Any, where: str, *, maximum: int = 100) -> int:
    """Out of range: ``page_size_invalid``, with the message of OpenFGA's request validator."""
    if raw in (None, ""):
        return 0
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise validation(f"invalid {where}.PageSize: value must be an integer") from None
    if value < 1 or value > maximum:
        raise FGAError(
            ErrorCode.page_size_invalid,
            f"invalid {where}.PageSize: value must be inside range [1, {maximum}]",
        )
    return value


def continuation_token(raw: Any) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise validation("invalid ContinuationToken: value must be a string")
    if len(raw) > 5000:
        raise FGAError(ErrorCode.invalid_continuation_token, "invalid continuation token")
    return raw


def start_time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise FGAError(ErrorCode.invalid_start_time, "invalid start time") from None
    if value.tzinfo is None:
        raise FGAError(ErrorCode.invalid_start_time, "invalid start time: a timezone is required")
    return value


def correlation_id(value: Any) -> str:
    if not isinstance(value, str) or not _CORRELATION.match(value):
        raise validation(
            "invalid BatchCheckItem.CorrelationId: value must be a string of letters, numbers or hyphens "
            "of at most 36 characters"
        )
    return value


def assertions(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """WriteAssertions' body, normalised to OpenFGA's JSON (at most 100, 20 contextual tuples each)."""
    items = _list(data, "assertions", "WriteAssertionsRequest", max_items=MAX_ASSERTIONS)
    out: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            raise validation("invalid Assertion: value must be an object")
        key = tuple_key(item.get("tuple_key"), "AssertionTupleKey", with_condition=False)
        if not isinstance(item.get("expectation"), bool):
            raise validation("invalid Assertion.Expectation: value is required")
        ctx_keys = _list(item, "contextual_tuples", "Assertion", max_items=MAX_ASSERTION_CONTEXTUAL)
        entry: dict[str, Any] = {
            "tuple_key": {"object": key.object, "relation": key.relation, "user": key.user},
            "expectation": item["expectation"],
        }
        if ctx_keys:
            entry["contextual_tuples"] = [tuple_key(k).to_json() for k in ctx_keys]
        ctx = _object(item, "context", "Assertion")
        if ctx:
            entry["context"] = ctx
        out.append(entry)
    return out


def required_object(data: Mapping[str, Any], key: str, where: str) -> Any:
    if data.get(key) is None:
        raise validation(f"invalid {where}.{_camel(key)}: value is required")
    return data[key]


def string(
    data: Mapping[str, Any], key: str, where: str, *, max_len: int | None = None, required: bool = False
) -> str:
    return _string(data, key, where, max_len=max_len, required=required)


def items(
    data: Mapping[str, Any], key: str, where: str, *, max_items: int | None = None, min_items: int = 0
) -> list[Any]:
    return _list(data, key, where, max_items=max_items, min_items=min_items)
