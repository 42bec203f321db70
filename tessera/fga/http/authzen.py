"""OpenFGA's [Experimental] AuthZEN endpoints (swagger: ``/stores/{store_id}/access/v1/...`` and
``/.well-known/authzen-configuration/{store_id}``), mapped onto the engine as OpenFGA maps them.

A subject ``{type, id}`` is the user ``type:id``, an action ``{name}`` the relation, a resource ``{type, id}``
the object. Properties are merged into the evaluation context with prefixes (``subject_<name>``,
``resource_<name>``, ``action_<name>``) so conditions can use them; the authorization model is the latest,
unless the ``Openfga-Authorization-Model-Id`` header names one.

Evaluation is Check, Evaluations is a batch of Checks (with ``execute_all``, ``deny_on_first_deny`` and
``permit_on_first_permit``), resource search is ListObjects, subject search is ListUsers, action search asks
Check for each relation of the resource's type. Searches page with ``page.limit`` (default 50, at most 1000)
and ``page.token``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request

from tessera.fga.engine.errors import ErrorCode, FGAError, validation
from tessera.fga.engine.list_users import UserFilter
from tessera.fga.engine.service import CheckRequest, FGAService, ListObjectsRequest, ListUsersRequest
from tessera.fga.engine.store import decode_token, encode_token
from tessera.fga.engine.tuples import TupleKey
from tessera.fga.http import parse
from tessera.fga.http.auth import READ, FGAAuthenticator

MODEL_HEADER = "openfga-authorization-model-id"
_SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")
_DEFAULT_LIMIT, _MAX_LIMIT = 50, 1000


def _entity(data: Any, what: str, *, id_required: bool = True) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise validation(f"invalid {what}: value is required")
    type_ = parse.string(data, "type", what, max_len=254, required=True)
    id_ = parse.string(data, "id", what, max_len=256, required=id_required)
    props = data.get("properties") or {}
    if not isinstance(props, dict):
        raise validation(f"invalid {what}.Properties: value must be an object")
    return {"type": type_, "id": id_, "properties": props}


def _action(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise validation("invalid Action: value is required")
    props = data.get("properties") or {}
    if not isinstance(props, dict):
        raise validation("invalid Action.Properties: value must be an object")
    return {"name": parse.string(data, "name", "Action", max_len=50, required=True), "properties": props}


def _context(
    base: Mapping[str, Any], subject: Mapping[str, Any] | None, resource: Mapping[str, Any] | None,
    action: Mapping[str, Any] | None,
) -> dict[str, Any]:  # fmt: skip
    merged = dict(base)
    for prefix, part in (("subject", subject), ("resource", resource), ("action", action)):
        for key, value in ((part or {}).get("properties") or {}).items():
            merged[f"{prefix}_{key}"] = value
    return merged


def _page(data: Mapping[str, Any], query: list[Any]) -> tuple[int, int]:
    """(offset, limit) from ``page``; the token pins the query it was issued for."""
    page = data.get("page") or {}
    if not isinstance(page, dict):
        raise validation("invalid PageRequest: value must be an object")
    limit = page.get("limit") or _DEFAULT_LIMIT
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1 or limit > _MAX_LIMIT:
        raise FGAError(
            ErrorCode.page_size_invalid, f"invalid PageRequest.Limit: must be between 1 and {_MAX_LIMIT}"
        )
    offset = 0
    token = page.get("token")
    if token:
        if not isinstance(token, str):
            raise FGAError(ErrorCode.invalid_continuation_token, "invalid continuation token")
        decoded = decode_token(token)
        if decoded.get("q") != query or not isinstance(decoded.get("o"), int):
            raise FGAError(ErrorCode.invalid_continuation_token, "the token was issued for another search")
        offset = decoded["o"]
    return offset, limit


def _paged(items: list[Any], offset: int, limit: int, query: list[Any]) -> dict[str, Any]:
    chunk = items[offset : offset + limit]
    more = offset + limit < len(items)
    return {
        "results": chunk,
        "page": {
            "next_token": encode_token({"q": query, "o": offset + limit}) if more else "",
            "count": len(chunk),
            "total": len(items),
        },
    }


def add_routes(api: APIRouter, service: FGAService, auth: FGAAuthenticator, base_url: str) -> None:
    read = Depends(auth.require(READ))

    async def body(request: Request) -> dict[str, Any]:
        return parse.json_body(await request.body())

    def model_id(request: Request) -> str:
        return parse.model_id(request.headers.get(MODEL_HEADER, ""))

    async def decide(
        store_id: str, model: str, subject: dict[str, Any], action: dict[str, Any], resource: dict[str, Any],
        context: Mapping[str, Any],
    ) -> bool:  # fmt: skip
        req = CheckRequest(
            store_id,
            TupleKey(
                f"{resource['type']}:{resource['id']}", action["name"], f"{subject['type']}:{subject['id']}"
            ),
            model,
            context=_context(context, subject, resource, action),
        )
        return (await service.check(req)).allowed

    @api.get("/.well-known/authzen-configuration/{store_id}", dependencies=[read])
    async def configuration(store_id: str) -> dict[str, Any]:
        await service.get_store(parse.store_id(store_id))
        pdp = f"{base_url}/stores/{store_id}"
        return {
            "policy_decision_point": pdp,
            "access_evaluation_endpoint": f"{pdp}/access/v1/evaluation",
            "access_evaluations_endpoint": f"{pdp}/access/v1/evaluations",
            "search_subject_endpoint": f"{pdp}/access/v1/search/subject",
            "search_resource_endpoint": f"{pdp}/access/v1/search/resource",
            "search_action_endpoint": f"{pdp}/access/v1/search/action",
        }

    @api.post("/stores/{store_id}/access/v1/evaluation", dependencies=[read])
    async def evaluation(store_id: str, request: Request) -> dict[str, Any]:
        data = await body(request)
        allowed = await decide(
            parse.store_id(store_id),
            model_id(request),
            _entity(data.get("subject"), "Subject"),
            _action(data.get("action")),
            _entity(data.get("resource"), "Resource"),
            parse.context(data, "EvaluationRequest"),
        )
        return {"decision": allowed}

    @api.post("/stores/{store_id}/access/v1/evaluations", dependencies=[read])
    async def evaluations(store_id: str, request: Request) -> dict[str, Any]:
        data = await body(request)
        sid, model = parse.store_id(store_id), model_id(request)
        options = data.get("options") or {}
        semantic = (
            options.get("evaluations_semantic") if isinstance(options, dict) else None
        ) or "execute_all"
        if semantic not in _SEMANTICS:
            raise validation(
                "invalid EvaluationsOptions.EvaluationsSemantic: value must be a defined enum value"
            )
        items = parse.items(data, "evaluations", "EvaluationsRequest", max_items=parse.MAX_ASSERTIONS) or [{}]
        default_context = parse.context(data, "EvaluationsRequest")
        out: list[dict[str, Any]] = []
        for item in items:
            if not isinstance(item, dict):
                raise validation("invalid EvaluationsItemRequest: value must be an object")
            subject = _entity(item.get("subject") or data.get("subject"), "Subject")
            action = _action(item.get("action") or data.get("action"))
            resource = _entity(item.get("resource") or data.get("resource"), "Resource")
            context = {**default_context, **parse.context(item, "EvaluationsItemRequest")}
            try:
                allowed = await decide(sid, model, subject, action, resource, context)
            except FGAError as exc:
                # AuthZEN 1.0 section 7.2: an item that cannot be evaluated is a deny with the reason.
                out.append(
                    {
                        "decision": False,
                        "context": {"error": {"status": exc.status_code, "message": exc.message}},
                    }
                )
                allowed = False
            else:
                out.append({"decision": allowed})
            if (semantic == "deny_on_first_deny" and not allowed) or (
                semantic == "permit_on_first_permit" and allowed
            ):
                break
        return {"evaluations": out}

    @api.post("/stores/{store_id}/access/v1/search/resource", dependencies=[read])
    async def search_resource(store_id: str, request: Request) -> dict[str, Any]:
        data = await body(request)
        subject = _entity(data.get("subject"), "Subject")
        action = _action(data.get("action"))
        resource = _entity(data.get("resource"), "ResourceFilter", id_required=False)
        query = ["r", subject["type"], subject["id"], action["name"], resource["type"]]
        offset, limit = _page(data, query)
        response = await service.list_objects(
            ListObjectsRequest(
                parse.store_id(store_id),
                resource["type"],
                action["name"],
                f"{subject['type']}:{subject['id']}",
                model_id(request),
                context=_context(parse.context(data, "ResourceSearchRequest"), subject, None, action),
            )
        )
        found = sorted(response.objects)
        results = [{"type": o.partition(":")[0], "id": o.partition(":")[2]} for o in found]
        return _paged(results, offset, limit, query)

    @api.post("/stores/{store_id}/access/v1/search/subject", dependencies=[read])
    async def search_subject(store_id: str, request: Request) -> dict[str, Any]:
        data = await body(request)
        resource = _entity(data.get("resource"), "Resource")
        action = _action(data.get("action"))
        subject = _entity(data.get("subject"), "SubjectFilter", id_required=False)
        query = ["s", resource["type"], resource["id"], action["name"], subject["type"]]
        offset, limit = _page(data, query)
        response = await service.list_users(
            ListUsersRequest(
                parse.store_id(store_id),
                f"{resource['type']}:{resource['id']}",
                action["name"],
                [UserFilter(subject["type"])],
                model_id(request),
                context=_context(parse.context(data, "SubjectSearchRequest"), None, resource, action),
            )
        )
        users = sorted(u for u in response.users if "#" not in u)
        results = [{"type": u.partition(":")[0], "id": u.partition(":")[2]} for u in users]
        return _paged(results, offset, limit, query)

    @api.post("/stores/{store_id}/access/v1/search/action", dependencies=[read])
    async def search_action(store_id: str, request: Request) -> dict[str, Any]:
        data = await body(request)
        sid, model = parse.store_id(store_id), model_id(request)
        subject = _entity(data.get("subject"), "Subject")
        resource = _entity(data.get("resource"), "Resource")
        query = ["a", subject["type"], subject["id"], resource["type"], resource["id"]]
        offset, limit = _page(data, query)
        ts = await service.typesystem(sid, model)
        if not ts.has_type(resource["type"]):
            raise FGAError(ErrorCode.type_not_found, f"type '{resource['type']}' not found")
        context = parse.context(data, "ActionSearchRequest")
        names = []
        for relation in sorted(ts.types[resource["type"]]):
            action = {"name": relation, "properties": {}}
            if await decide(sid, ts.id, subject, action, resource, context):
                names.append({"name": relation})
        return _paged(names, offset, limit, query)
