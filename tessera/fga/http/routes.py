"""OpenFGA's HTTP API under ``/fga`` (shared/reference/openfga/openfga-api.swagger.json), unchanged.

Each route parses its body the way OpenFGA's gateway does (:mod:`tessera.fga.http.parse`), calls one
operation of :class:`~tessera.fga.engine.service.FGAService`, and writes OpenFGA's response shape. Every
error, including authentication and unknown paths, answers OpenFGA's ``{"code": "...", "message": "..."}``
with OpenFGA's HTTP status, so OpenFGA's SDKs and CLI raise the exceptions they would raise against OpenFGA.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute

from tessera.core.errors import TesseraError
from tessera.fga.engine.errors import ErrorCode, FGAError, validation
from tessera.fga.engine.list_users import UserFilter
from tessera.fga.engine.service import (
    BatchCheckItem,
    BatchCheckRequest,
    CheckRequest,
    FGAService,
    ListObjectsRequest,
    ListUsersRequest,
)
from tessera.fga.engine.store import ReadFilter
from tessera.fga.http import authzen, parse
from tessera.fga.http.auth import ADMIN, READ, WRITE, FGAAuthenticator, FGAAuthError

log = logging.getLogger("tessera.fga")

# openfga.v1 ListUsers: "The type of results returned. Only accepts exactly one value."
_MAX_USER_FILTERS = 1


def _fga_error(exc: FGAError) -> JSONResponse:
    return JSONResponse(exc.to_json(), status_code=exc.status_code)


class FGARoute(APIRoute):
    """Turns errors raised anywhere in a route (its dependencies included) into OpenFGA's error bodies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except FGAAuthError as exc:
                return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=exc.headers)
            except FGAError as exc:
                return _fga_error(exc)
            except TesseraError:
                raise  # the app's handler answers {"code", "message"} with the error's own status
            except Exception:
                # OpenFGA's InternalErrorMessageResponse; the details go to the log, not to the client.
                log.exception("internal error in %s %s", request.method, request.url.path)
                return JSONResponse(
                    {"code": "internal_error", "message": "Internal Server Error"}, status_code=500
                )

        return run


def router(service: FGAService, auth: FGAAuthenticator, *, base_url: str) -> APIRouter:
    """Every route of the API; ``base_url`` (``<issuer>/fga``) makes AuthZEN's absolute endpoint URLs."""
    api = APIRouter(route_class=FGARoute, tags=["fga"])
    read = Depends(auth.require(READ))
    write = Depends(auth.require(WRITE))
    admin = Depends(auth.require(ADMIN))

    async def body(request: Request) -> dict[str, Any]:
        return parse.json_body(await request.body())

    # --- stores -----------------------------------------------------------------------------------------

    @api.post("/stores", status_code=201, dependencies=[admin])
    async def create_store(request: Request) -> JSONResponse:
        data = await body(request)
        name = parse.string(data, "name", "CreateStoreRequest", required=True)
        record = await service.create_store(name)
        return JSONResponse(record.to_json(), status_code=201)

    @api.get("/stores", dependencies=[read])
    async def list_stores(request: Request) -> dict[str, Any]:
        q = request.query_params
        records, token = await service.list_stores(
            parse.page_size(q.get("page_size"), "ListStoresRequest"),
            parse.continuation_token(q.get("continuation_token")),
            q.get("name"),
        )
        return {"stores": [r.to_json() for r in records], "continuation_token": token}

    @api.get("/stores/{store_id}", dependencies=[read])
    async def get_store(store_id: str) -> dict[str, Any]:
        return (await service.get_store(parse.store_id(store_id))).to_json()

    @api.delete("/stores/{store_id}", status_code=204, dependencies=[admin])
    async def delete_store(store_id: str) -> Response:
        await service.delete_store(parse.store_id(store_id))
        return Response(status_code=204)

    # --- authorization models ---------------------------------------------------------------------------

    @api.post("/stores/{store_id}/authorization-models", status_code=201, dependencies=[admin])
    async def write_model(store_id: str, request: Request) -> JSONResponse:
        data = await body(request)
        parse.items(data, "type_definitions", "WriteAuthorizationModelRequest", min_items=1)
        parse.string(data, "schema_version", "WriteAuthorizationModelRequest", required=True)
        if data.get("conditions") is not None and not isinstance(data["conditions"], dict):
            raise validation("invalid WriteAuthorizationModelRequest.Conditions: value must be an object")
        model_id = await service.write_authorization_model(parse.store_id(store_id), data)
        return JSONResponse({"authorization_model_id": model_id}, status_code=201)

    @api.get("/stores/{store_id}/authorization-models", dependencies=[read])
    async def read_models(store_id: str, request: Request) -> dict[str, Any]:
        q = request.query_params
        records, token = await service.read_authorization_models(
            parse.store_id(store_id),
            parse.page_size(q.get("page_size"), "ReadAuthorizationModelsRequest", maximum=50),
            parse.continuation_token(q.get("continuation_token")),
        )
        return {"authorization_models": [r.to_json() for r in records], "continuation_token": token}

    @api.get("/stores/{store_id}/authorization-models/{model_id}", dependencies=[read])
    async def read_model(store_id: str, model_id: str) -> dict[str, Any]:
        record = await service.read_authorization_model(
            parse.store_id(store_id), parse.model_id(model_id, "Id")
        )
        return {"authorization_model": record.to_json()}

    # --- assertions -------------------------------------------------------------------------------------

    @api.put("/stores/{store_id}/assertions/{model_id}", status_code=204, dependencies=[write])
    async def write_assertions(store_id: str, model_id: str, request: Request) -> Response:
        data = await body(request)
        parse.required_object(data, "assertions", "WriteAssertionsRequest")
        await service.write_assertions(
            parse.store_id(store_id), parse.model_id(model_id), parse.assertions(data)
        )
        return Response(status_code=204)

    @api.get("/stores/{store_id}/assertions/{model_id}", dependencies=[read])
    async def read_assertions(store_id: str, model_id: str) -> dict[str, Any]:
        items = await service.read_assertions(parse.store_id(store_id), parse.model_id(model_id))
        return {"authorization_model_id": model_id, "assertions": items}

    # --- tuples -----------------------------------------------------------------------------------------

    @api.post("/stores/{store_id}/write", dependencies=[write])
    async def write_tuples(store_id: str, request: Request) -> dict[str, Any]:
        data = await body(request)
        sid = parse.store_id(store_id)
        writes_obj = data.get("writes") or {}
        deletes_obj = data.get("deletes") or {}
        if not isinstance(writes_obj, dict) or not isinstance(deletes_obj, dict):
            raise validation("invalid WriteRequest: writes and deletes must be objects")
        writes = [parse.tuple_key(k) for k in parse.items(writes_obj, "tuple_keys", "WriteRequestWrites")]
        deletes = [
            parse.tuple_key(k, "TupleKeyWithoutCondition", with_condition=False)
            for k in parse.items(deletes_obj, "tuple_keys", "WriteRequestDeletes")
        ]
        if "writes" in data and data["writes"] is not None and not writes:
            raise validation("invalid WriteRequestWrites.TupleKeys: value must contain at least 1 item(s)")
        if "deletes" in data and data["deletes"] is not None and not deletes:
            raise validation("invalid WriteRequestDeletes.TupleKeys: value must contain at least 1 item(s)")
        await service.write(
            sid,
            writes,
            deletes,
            authorization_model_id=parse.model_id(
                parse.string(data, "authorization_model_id", "WriteRequest")
            ),
            on_duplicate=writes_obj.get("on_duplicate") or "error",
            on_missing=deletes_obj.get("on_missing") or "error",
        )
        return {}

    @api.post("/stores/{store_id}/read", dependencies=[read])
    async def read_tuples(store_id: str, request: Request) -> dict[str, Any]:
        data = await body(request)
        key = data.get("tuple_key") or {}
        if not isinstance(key, dict):
            raise validation("invalid ReadRequest.TupleKey: value must be an object")
        flt = ReadFilter(
            object=parse.string(key, "object", "ReadRequestTupleKey", max_len=256),
            relation=parse.string(key, "relation", "ReadRequestTupleKey", max_len=50),
            user=parse.string(key, "user", "ReadRequestTupleKey", max_len=512),
        )
        parse.consistency(data, "ReadRequest")
        rows, token = await service.read(
            parse.store_id(store_id),
            flt,
            parse.page_size(data.get("page_size"), "ReadRequest"),
            parse.continuation_token(data.get("continuation_token")),
        )
        return {"tuples": [r.to_json() for r in rows], "continuation_token": token}

    @api.get("/stores/{store_id}/changes", dependencies=[read])
    async def read_changes(store_id: str, request: Request) -> dict[str, Any]:
        q = request.query_params
        changes, token = await service.read_changes(
            parse.store_id(store_id),
            q.get("type") or "",
            parse.page_size(q.get("page_size"), "ReadChangesRequest"),
            parse.continuation_token(q.get("continuation_token")),
            parse.start_time(q.get("start_time")),
        )
        return {"changes": [c.to_json() for c in changes], "continuation_token": token}

    # --- queries ----------------------------------------------------------------------------------------

    def check_request(sid: str, data: dict[str, Any]) -> CheckRequest:
        key = parse.tuple_key(
            parse.required_object(data, "tuple_key", "CheckRequest"),
            "CheckRequestTupleKey",
            with_condition=False,
        )
        return CheckRequest(
            store_id=sid,
            tuple_key=key,
            authorization_model_id=parse.model_id(
                parse.string(data, "authorization_model_id", "CheckRequest")
            ),
            contextual_tuples=parse.contextual_tuples(data, "CheckRequest"),
            context=parse.context(data, "CheckRequest"),
            consistency=parse.consistency(data, "CheckRequest"),
        )

    @api.post("/stores/{store_id}/check", dependencies=[read])
    async def check(store_id: str, request: Request) -> dict[str, Any]:
        req = check_request(parse.store_id(store_id), await body(request))
        return (await service.check(req)).to_json()

    @api.post("/stores/{store_id}/batch-check", dependencies=[read])
    async def batch_check(store_id: str, request: Request) -> dict[str, Any]:
        data = await body(request)
        sid = parse.store_id(store_id)
        raw = parse.items(data, "checks", "BatchCheckRequest", min_items=1)
        items = []
        for item in raw:
            if not isinstance(item, dict):
                raise validation("invalid BatchCheckItem: value must be an object")
            key = parse.tuple_key(
                parse.required_object(item, "tuple_key", "BatchCheckItem"),
                "CheckRequestTupleKey",
                with_condition=False,
            )
            items.append(
                BatchCheckItem(
                    tuple_key=key,
                    correlation_id=parse.correlation_id(item.get("correlation_id")),
                    contextual_tuples=parse.contextual_tuples(item, "BatchCheckItem"),
                    context=parse.context(item, "BatchCheckItem"),
                )
            )
        results = await service.batch_check(
            BatchCheckRequest(
                store_id=sid,
                checks=items,
                authorization_model_id=parse.model_id(
                    parse.string(data, "authorization_model_id", "BatchCheckRequest")
                ),
                consistency=parse.consistency(data, "BatchCheckRequest"),
            )
        )
        return {"result": {cid: r.to_json() for cid, r in results.items()}}

    @api.post("/stores/{store_id}/expand", dependencies=[read])
    async def expand(store_id: str, request: Request) -> dict[str, Any]:
        data = await body(request)
        key = parse.required_object(data, "tuple_key", "ExpandRequest")
        if not isinstance(key, dict):
            raise validation("invalid ExpandRequest.TupleKey: value must be an object")
        obj = parse.string(key, "object", "ExpandRequestTupleKey", max_len=256, required=True)
        rel = parse.string(key, "relation", "ExpandRequestTupleKey", max_len=50, required=True)
        return await service.expand(
            parse.store_id(store_id),
            obj,
            rel,
            authorization_model_id=parse.model_id(
                parse.string(data, "authorization_model_id", "ExpandRequest")
            ),
            contextual_tuples=parse.contextual_tuples(data, "ExpandRequest"),
            consistency=parse.consistency(data, "ExpandRequest"),
        )

    def list_objects_request(sid: str, data: dict[str, Any]) -> ListObjectsRequest:
        where = "ListObjectsRequest"
        return ListObjectsRequest(
            store_id=sid,
            type=parse.string(data, "type", where, required=True),
            relation=parse.string(data, "relation", where, required=True),
            user=parse.string(data, "user", where, max_len=512, required=True),
            authorization_model_id=parse.model_id(parse.string(data, "authorization_model_id", where)),
            contextual_tuples=parse.contextual_tuples(data, where),
            context=parse.context(data, where),
            consistency=parse.consistency(data, where),
        )

    @api.post("/stores/{store_id}/list-objects", dependencies=[read])
    async def list_objects(store_id: str, request: Request) -> dict[str, Any]:
        req = list_objects_request(parse.store_id(store_id), await body(request))
        return (await service.list_objects(req)).to_json()

    @api.post("/stores/{store_id}/streamed-list-objects", dependencies=[read])
    async def streamed_list_objects(store_id: str, request: Request) -> StreamingResponse:
        req = list_objects_request(parse.store_id(store_id), await body(request))
        stream = service.streamed_list_objects(req)
        # Validation errors (unknown type or relation, bad user) surface before the 200 is sent.
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            first = None

        async def lines() -> AsyncIterator[bytes]:
            # grpc-gateway's streaming shape: one JSON object per line, {"result": {...}} or {"error": {...}}.
            try:
                if first is not None:
                    yield json.dumps({"result": {"object": first}}).encode() + b"\n"
                async for obj in stream:
                    yield json.dumps({"result": {"object": obj}}).encode() + b"\n"
            except FGAError as exc:
                yield (
                    json.dumps({"error": {"code": int(exc.error_code), "message": exc.message}}).encode()
                    + b"\n"
                )

        return StreamingResponse(lines(), media_type="application/json")

    @api.post("/stores/{store_id}/list-users", dependencies=[read])
    async def list_users(store_id: str, request: Request) -> dict[str, Any]:
        data = await body(request)
        where = "ListUsersRequest"
        obj = parse.required_object(data, "object", where)
        if not isinstance(obj, dict):
            raise validation("invalid ListUsersRequest.Object: value must be an object")
        otype = parse.string(obj, "type", "Object", max_len=254, required=True)
        oid = parse.string(obj, "id", "Object", max_len=256, required=True)
        filters = []
        for f in parse.items(data, "user_filters", where, min_items=1, max_items=_MAX_USER_FILTERS):
            if not isinstance(f, dict):
                raise validation("invalid UserTypeFilter: value must be an object")
            filters.append(
                UserFilter(
                    type=parse.string(f, "type", "UserTypeFilter", required=True),
                    relation=parse.string(f, "relation", "UserTypeFilter") or None,
                )
            )
        ctx_keys = parse.items(data, "contextual_tuples", where, max_items=parse.MAX_CONTEXTUAL)
        req = ListUsersRequest(
            store_id=parse.store_id(store_id),
            object=f"{otype}:{oid}",
            relation=parse.string(data, "relation", where, required=True),
            user_filters=filters,
            authorization_model_id=parse.model_id(parse.string(data, "authorization_model_id", where)),
            contextual_tuples=[parse.tuple_key(k) for k in ctx_keys],
            context=parse.context(data, where),
            consistency=parse.consistency(data, where),
        )
        return (await service.list_users(req)).to_json()

    # --- AuthZEN ([Experimental] in OpenFGA's API) ------------------------------------------------------

    authzen.add_routes(api, service, auth, base_url)

    # --- anything else under /fga -----------------------------------------------------------------------

    @api.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    async def undefined(path: str) -> JSONResponse:
        return _fga_error(FGAError(ErrorCode.undefined_endpoint, "Not Found"))

    return api
