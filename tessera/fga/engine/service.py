"""The operations of OpenFGA's API over a :class:`~tessera.fga.engine.store.Datastore`.

Requests and responses are dataclasses shaped like OpenFGA's JSON bodies (``tuple_key``,
``contextual_tuples``, ``authorization_model_id``, ``consistency``...) so that the ``/fga`` HTTP layer is a
thin mapping. Every request is validated completely before anything is read or written; errors are
:class:`~tessera.fga.engine.errors.FGAError` with OpenFGA's codes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ulid import ULID

from tessera.core.clock import Clock
from tessera.fga.engine.check import (
    DEFAULT_MAX_DEPTH,
    TRUE,
    CachedChecker,
    CheckResolver,
    LocalChecker,
    NestingIndex,
    Resolution,
    TTLCache,
)
from tessera.fga.engine.errors import ErrorCode, FGAError, validation
from tessera.fga.engine.expand import expand as expand_tree
from tessera.fga.engine.filter import filter_ids
from tessera.fga.engine.links import LinkIndex, LinkIndexes
from tessera.fga.engine.list_objects import stream_objects
from tessera.fga.engine.list_users import UserFilter, list_users
from tessera.fga.engine.reader import RequestReader
from tessera.fga.engine.store import (
    Datastore,
    ModelRecord,
    OnDuplicate,
    OnMissing,
    ReadFilter,
    StoredTuple,
    StoreRecord,
    TupleChange,
    decode_token,
    encode_token,
)
from tessera.fga.engine.tuples import MAX_OBJECT_LEN, TupleKey, User, parse_user, split_object
from tessera.fga.engine.typesystem import TypeSystem

Consistency = Literal["UNSPECIFIED", "MINIMIZE_LATENCY", "HIGHER_CONSISTENCY"]


@dataclass(frozen=True)
class EngineConfig:
    """OpenFGA's defaults, except that ListObjects/ListUsers are complete (no deadline, no silent cut)."""

    max_depth: int = DEFAULT_MAX_DEPTH
    max_contextual_tuples: int = 100
    max_tuples_per_write: int = 100
    max_checks_per_batch: int = 50
    max_assertions: int = 100
    max_page_size: int = 100
    default_page_size: int = 50
    # 0: ListObjects returns every result (use page_size/continuation_token to page). OpenFGA cuts at 1000.
    list_objects_max_results: int = 0
    list_users_max_results: int = 0
    check_cache_ttl: float = 10.0
    check_cache_entries: int = 10_000
    # Store existence and the latest model id are remembered this long (seconds): a store deleted or a model
    # written by another process is seen after at most this; this process's own changes at once.
    metadata_cache_ttl: float = 10.0
    # Check reads each object's tuples once (all relations) when it has at most this many; 0: per relation.
    object_prefetch: int = 100
    # A user in more sets of one userset kind than this is resolved forwards (see check.py); 0: always.
    closure_max_facts: int = 500
    # Largest nesting index (groups in groups) kept per store and kind; 0: none (see service._nesting).
    nesting_index_max: int = 100_000
    # The RAG filter first walks backwards from the user up to this many facts (see filter.py); 0: never.
    # Small on purpose: a user who reaches little is answered from their side for almost nothing, and a user
    # who reaches much wastes at most this before the candidates' side takes over.
    filter_reverse_budget: int = 1_000
    # What an index probe costs in tuples scanned inside an object's key range: the set-at-a-time filter
    # weighs with it whether a user's own tuples on a layer's type are read from the user's side (see
    # filter.py). 0: from the user's side whenever the evaluation allows (tests use it).
    filter_probe_cost: int = 8
    # Largest link index (tupleset links and grants to sets of users, see engine/links.py) the filter keeps
    # per store, in tuples; a store with more is filtered from storage. 0: no index.
    filter_index_max: int = 2_000_000
    # Whether a single Check's compiled plan (engine/plan.py) takes links and set grants from that index
    # when the request has no contextual tuples. Off by default: the first such Check of a store builds the
    # index (about a second for a million tuples), for about 5% fewer instructions a Check (callgrind on the
    # bench's store), since the user's own tuples still take one reverse read per type.
    check_links: bool = False


# --- request and response shapes ------------------------------------------------------------------------


@dataclass
class CheckRequest:
    store_id: str
    tuple_key: TupleKey
    authorization_model_id: str = ""
    contextual_tuples: Sequence[TupleKey] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    consistency: Consistency = "UNSPECIFIED"


@dataclass
class CheckResponse:
    allowed: bool
    resolution: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "resolution": self.resolution}


@dataclass
class BatchCheckItem:
    tuple_key: TupleKey
    correlation_id: str
    contextual_tuples: Sequence[TupleKey] = ()
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class BatchCheckRequest:
    store_id: str
    checks: Sequence[BatchCheckItem]
    authorization_model_id: str = ""
    consistency: Consistency = "UNSPECIFIED"


@dataclass
class BatchCheckResult:
    allowed: bool = False
    error: FGAError | None = None

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            kind = "input_error" if self.error.error_code < 4000 else "internal_error"
            return {"error": {kind: self.error.error_code.name, "message": self.error.message}}
        return {"allowed": self.allowed}


@dataclass
class ListObjectsRequest:
    store_id: str
    type: str
    relation: str
    user: str
    authorization_model_id: str = ""
    contextual_tuples: Sequence[TupleKey] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    consistency: Consistency = "UNSPECIFIED"
    # Tessera's extension for complete results over large stores: objects sorted by id, one page at a time.
    page_size: int = 0
    continuation_token: str = ""


@dataclass
class ListObjectsResponse:
    objects: list[str]
    continuation_token: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"objects": self.objects}
        if self.continuation_token:
            out["continuation_token"] = self.continuation_token
        return out


@dataclass
class ListUsersRequest:
    store_id: str
    object: str
    relation: str
    user_filters: Sequence[UserFilter]
    authorization_model_id: str = ""
    contextual_tuples: Sequence[TupleKey] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    consistency: Consistency = "UNSPECIFIED"


@dataclass
class ListUsersResponse:
    users: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"users": [user_to_json(u) for u in self.users]}


def user_to_json(user: str) -> dict[str, Any]:
    """OpenFGA's ListUsers ``User`` shape: object, userset or wildcard."""
    u = parse_user(user)
    assert u is not None
    if u.relation:
        return {"userset": {"type": u.type, "id": u.id, "relation": u.relation}}
    if u.wildcard:
        return {"wildcard": {"type": u.type}}
    return {"object": {"type": u.type, "id": u.id}}


@dataclass
class FilterRequest:
    """The RAG filter: which of ``objects`` does ``user`` have ``relation`` with?"""

    store_id: str
    user: str
    relation: str
    objects: Sequence[str]
    authorization_model_id: str = ""
    contextual_tuples: Sequence[TupleKey] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    consistency: Consistency = "UNSPECIFIED"


# --- the service ---------------------------------------------------------------------------------------


class _CheckLinks:
    """One Check's link index: caught up on the first call (a compiled plan's), then the same for the
    request; ``index`` is what that call returned (None before it)."""

    __slots__ = ("_get", "asked", "index")

    def __init__(self, get: Callable[[], Awaitable[LinkIndex | None]]) -> None:
        self._get = get
        self.asked = False
        self.index: LinkIndex | None = None

    async def __call__(self) -> LinkIndex | None:
        if not self.asked:
            self.asked = True
            self.index = await self._get()
        return self.index


class FGAService:
    def __init__(
        self, datastore: Datastore, *, config: EngineConfig | None = None, clock: Clock | None = None
    ):
        self.ds = datastore
        self.config = config or EngineConfig()
        self.clock = clock or Clock()
        self.checker = LocalChecker()
        self.cache = CachedChecker(
            self.checker, ttl=self.config.check_cache_ttl, max_entries=self.config.check_cache_entries
        )
        self.resolver: CheckResolver = self.cache
        # The users' memberships (closures) of cacheable requests, for the same TTL as answers.
        self.closure_cache = TTLCache(self.config.check_cache_ttl, self.config.check_cache_entries)
        # Models are immutable, so a parsed model can be kept for the life of the service.
        self._typesystems: dict[tuple[str, str], TypeSystem] = {}
        self._revisions: dict[str, int] = {}
        self._known_stores: dict[str, float] = {}
        self._latest: dict[str, tuple[str, float]] = {}
        # (store, model, type, relation) -> (store revision, {child: [parents]} or None): nesting indexes.
        # The version is the store's revision, or a link index's (see _nesting_provider).
        self._nesting_cache: dict[tuple[str, str, str, str], tuple[Any, NestingIndex | None]] = {}
        # Per store and model: object types too large to prefetch whole (learned by the readers).
        self._big_types: dict[tuple[str, str], set[str]] = {}
        self._small_types: dict[tuple[str, str], set[str]] = {}
        self._densities: dict[tuple[str, str], dict[str, float]] = {}
        self._own_misses: dict[tuple[str, str], dict[str, list[int]]] = {}
        # Per store and model: the relations of those types that hold too many tuples to prefetch.
        self._big_relations: dict[tuple[str, str], dict[str, set[str]]] = {}
        # The RAG filter's link indexes, per store; and this service's write count per store when each was
        # last caught up (a MINIMIZE_LATENCY filter still sees this process's own writes at once).
        self.links = LinkIndexes(self.config.filter_index_max)
        self._links_seen: dict[str, int] = {}

    # --- stores ---------------------------------------------------------------------------------------

    async def create_store(self, name: str) -> StoreRecord:
        if not name or len(name) > 64:
            raise validation("invalid CreateStoreRequest.Name: value length must be between 1 and 64 runes")
        return await self.ds.create_store(str(ULID()), name)

    async def get_store(self, store_id: str) -> StoreRecord:
        self._check_store_id(store_id)
        rec = await self.ds.get_store(store_id)
        if rec is None:
            raise FGAError(ErrorCode.store_id_not_found, f"store {store_id} not found")
        return rec

    async def list_stores(
        self, page_size: int = 0, continuation_token: str = "", name: str | None = None
    ) -> tuple[list[StoreRecord], str]:
        size = self._page_size(page_size)
        recs, tok = await self.ds.list_stores(size, continuation_token or None, name)
        return recs, tok or ""

    async def delete_store(self, store_id: str) -> None:
        await self.get_store(store_id)
        await self.ds.delete_store(store_id)
        self.links.drop(store_id)
        self._known_stores.pop(store_id, None)
        self._latest.pop(store_id, None)

    async def _ensure_store(self, store_id: str) -> None:
        """get_store for the hot path: a store seen recently is not read again."""
        now = self.clock.now()
        if self._known_stores.get(store_id, 0.0) > now:
            return
        await self.get_store(store_id)
        self._known_stores[store_id] = now + self.config.metadata_cache_ttl

    # --- models -----------------------------------------------------------------------------------------

    async def write_authorization_model(self, store_id: str, model: Mapping[str, Any]) -> str:
        await self.get_store(store_id)
        body = {k: model[k] for k in ("schema_version", "type_definitions", "conditions") if k in model}
        model_id = str(ULID())
        ts = TypeSystem.from_json(body, model_id)
        await self.ds.write_model(store_id, model_id, body)
        self._typesystems[(store_id, model_id)] = ts
        self._latest[store_id] = (model_id, self.clock.now() + self.config.metadata_cache_ttl)
        return model_id

    async def read_authorization_model(self, store_id: str, model_id: str) -> ModelRecord:
        await self.get_store(store_id)
        rec = await self.ds.read_model(store_id, model_id)
        if rec is None:
            raise FGAError(
                ErrorCode.authorization_model_not_found, f"Authorization Model '{model_id}' not found"
            )
        return rec

    async def read_authorization_models(
        self, store_id: str, page_size: int = 0, continuation_token: str = ""
    ) -> tuple[list[ModelRecord], str]:
        await self.get_store(store_id)
        recs, tok = await self.ds.list_models(
            store_id, self._page_size(page_size), continuation_token or None
        )
        return recs, tok or ""

    async def typesystem(self, store_id: str, model_id: str = "") -> TypeSystem:
        await self._ensure_store(store_id)
        if not model_id:
            cached = self._latest.get(store_id)
            if cached is not None and cached[1] > self.clock.now():
                model_id = cached[0]
        if model_id:
            if len(model_id) != 26:
                raise FGAError(ErrorCode.authorization_model_id_too_long, f"invalid model id '{model_id}'")
            hit = self._typesystems.get((store_id, model_id))
            if hit is not None:
                return hit
            rec = await self.ds.read_model(store_id, model_id)
            if rec is None:
                raise FGAError(
                    ErrorCode.authorization_model_not_found, f"Authorization Model '{model_id}' not found"
                )
        else:
            rec = await self.ds.latest_model(store_id)
            if rec is None:
                raise FGAError(
                    ErrorCode.latest_authorization_model_not_found,
                    f"No authorization models found for store '{store_id}'",
                )
            self._latest[store_id] = (rec.id, self.clock.now() + self.config.metadata_cache_ttl)
            hit = self._typesystems.get((store_id, rec.id))
            if hit is not None:
                return hit
        ts = TypeSystem.from_json(rec.model, rec.id, validate=False)
        self._typesystems[(store_id, rec.id)] = ts
        return ts

    # --- assertions -----------------------------------------------------------------------------------

    async def write_assertions(self, store_id: str, model_id: str, assertions: list[dict[str, Any]]) -> None:
        ts = await self.typesystem(store_id, model_id)
        if len(assertions) > self.config.max_assertions:
            raise FGAError(
                ErrorCode.assertions_too_many_items,
                f"at most {self.config.max_assertions} assertions per authorization model",
            )
        for a in assertions:
            key = TupleKey.from_json(a.get("tuple_key") or {})
            self._validate_check_key(ts, key)
            if not isinstance(a.get("expectation"), bool):
                raise validation("assertion expectation must be a boolean")
            self._contextual(ts, [TupleKey.from_json(t) for t in a.get("contextual_tuples") or []])
        await self.ds.write_assertions(store_id, model_id, assertions)

    async def read_assertions(self, store_id: str, model_id: str) -> list[dict[str, Any]]:
        await self.typesystem(store_id, model_id)
        return await self.ds.read_assertions(store_id, model_id)

    # --- tuples ---------------------------------------------------------------------------------------

    async def write(
        self,
        store_id: str,
        writes: Sequence[TupleKey] = (),
        deletes: Sequence[TupleKey] = (),
        *,
        authorization_model_id: str = "",
        on_duplicate: OnDuplicate = "error",
        on_missing: OnMissing = "error",
    ) -> None:
        if on_duplicate not in ("error", "ignore") or on_missing not in ("error", "ignore"):
            raise validation("on_duplicate and on_missing must be 'error' or 'ignore'")
        total = len(writes) + len(deletes)
        if total == 0:
            raise FGAError(
                ErrorCode.invalid_write_input,
                "Invalid input. Make sure you provide at least one write or delete",
            )
        if total > self.config.max_tuples_per_write:
            raise FGAError(
                ErrorCode.exceeded_entity_limit,
                "The number of write operations exceeds the allowed limit of "
                f"{self.config.max_tuples_per_write}",
            )
        ts = await self.typesystem(store_id, authorization_model_id)
        seen: set[TupleKey] = set()
        for k in list(writes) + list(deletes):
            if k in seen:
                raise FGAError(
                    ErrorCode.cannot_allow_duplicate_tuples_in_one_request,
                    f"duplicate tuple in write: user: '{k.user}', relation: '{k.relation}', "
                    f"object: '{k.object}'",
                )
            seen.add(k)
        for k in writes:
            try:
                ts.validate_tuple(k)
            except FGAError as exc:
                # OpenFGA's Write reports invalid tuples as validation_error (2000), with the same reason
                # that contextual tuples get as invalid_tuple (2027).
                if exc.error_code == ErrorCode.invalid_tuple:
                    raise validation(exc.message) from None
                raise
        for k in deletes:
            try:
                split_object(k.object)
            except FGAError:
                raise validation(f"Invalid tuple '{k}'. Reason: invalid 'object' field format") from None
            if parse_user(k.user) is None or not k.relation:
                raise validation(f"Invalid tuple '{k}'. Reason: the 'user' or 'relation' field is malformed")
        try:
            await self.ds.write(store_id, deletes, writes, on_duplicate=on_duplicate, on_missing=on_missing)
        finally:
            self._revisions[store_id] = self._revisions.get(store_id, 0) + 1

    async def read(
        self,
        store_id: str,
        tuple_key: ReadFilter | None = None,
        page_size: int = 0,
        continuation_token: str = "",
    ) -> tuple[list[StoredTuple], str]:
        await self.get_store(store_id)
        flt = tuple_key or ReadFilter()
        if flt.object and not flt.object.endswith(":"):
            split_object(flt.object)
        if flt.object.endswith(":") and not flt.user:
            raise validation("the 'user' field is required when the 'object' field is a type only")
        if (flt.relation or flt.user) and not flt.object:
            raise validation("the 'object' field is required (a type, as 'document:', at least)")
        rows, tok = await self.ds.read_page(
            store_id, flt, self._page_size(page_size), continuation_token or None
        )
        return rows, tok or ""

    async def read_changes(
        self,
        store_id: str,
        type: str = "",
        page_size: int = 0,
        continuation_token: str = "",
        start_time: datetime | None = None,
    ) -> tuple[list[TupleChange], str]:
        await self.get_store(store_id)
        if continuation_token and start_time is not None:
            raise FGAError(
                ErrorCode.invalid_start_time, "start_time cannot be combined with a continuation token"
            )
        rows, tok = await self.ds.read_changes(
            store_id, type, self._page_size(page_size), continuation_token or None, start_time
        )
        return rows, tok or ""

    # --- queries --------------------------------------------------------------------------------------

    async def check(self, req: CheckRequest) -> CheckResponse:
        ts = await self.typesystem(req.store_id, req.authorization_model_id)
        user = self._validate_check_key(ts, req.tuple_key)
        ctx_tuples = self._contextual(ts, req.contextual_tuples)
        self._validate_context(req.context)
        otype, oid = split_object(req.tuple_key.object)
        cache_key: tuple[Any, ...] | None = None
        if not ctx_tuples and req.consistency != "HIGHER_CONSISTENCY":
            # Writes made through this service move the local revision, so this process never answers from
            # before its own write; writes from other processes show after at most the cache TTL, and
            # HIGHER_CONSISTENCY skips the cache (OpenFGA's contract for its check cache).
            rev = self._revisions.get(req.store_id, 0)
            cache_key = CachedChecker.key(
                req.store_id, ts.id, rev, req.tuple_key.object, req.tuple_key.relation, str(user), req.context
            )
        reader = RequestReader(
            self.ds,
            req.store_id,
            ts,
            ctx_tuples,
            object_prefetch=self.config.object_prefetch,
            big_types=self._big_types.setdefault((req.store_id, ts.id), set()),
            big_relations=self._big_relations.setdefault((req.store_id, ts.id), {}),
        )
        res = Resolution(
            ts,
            reader,
            user,
            req.context,
            self.config.max_depth,
            closure_max_facts=self.config.closure_max_facts,
            cache_key=cache_key,
            shared_closures=(self.closure_cache, cache_key[:3] + cache_key[5:]) if cache_key else None,
        )
        links = self._check_links(req.store_id, ts, req.consistency) if not ctx_tuples else None
        res.links = links
        if self.config.nesting_index_max:
            res.nesting = self._nesting_provider(req.store_id, ts, links)
        # The resolver chain: cache, then the local checker.
        return CheckResponse(await self.resolver.resolve(res, otype, oid, req.tuple_key.relation))

    async def batch_check(self, req: BatchCheckRequest) -> dict[str, BatchCheckResult]:
        if not req.checks:
            raise validation("invalid BatchCheckRequest.Checks: value must contain at least 1 item(s)")
        if len(req.checks) > self.config.max_checks_per_batch:
            raise validation(
                f"batchCheck received {len(req.checks)} checks, the maximum allowed is "
                f"{self.config.max_checks_per_batch}"
            )
        seen: set[str] = set()
        for item in req.checks:
            if not item.correlation_id or len(item.correlation_id) > 36:
                raise validation(
                    "invalid BatchCheckItem.CorrelationId: value length must be between 1 and 36"
                )
            if item.correlation_id in seen:
                raise validation(f"duplicate correlation_id provided: {item.correlation_id}")
            seen.add(item.correlation_id)
        ts = await self.typesystem(req.store_id, req.authorization_model_id)
        # Items for the same user, context and contextual tuples are resolved together, like the RAG filter:
        # one memo, one set of user-side closures and batched reads for the whole group.
        results: dict[str, BatchCheckResult] = {}
        groups: dict[str, list[tuple[BatchCheckItem, User]]] = {}
        for item in req.checks:
            try:
                user = self._validate_check_key(ts, item.tuple_key)
                self._contextual(ts, item.contextual_tuples)
                self._validate_context(item.context)
            except FGAError as exc:
                results[item.correlation_id] = BatchCheckResult(error=exc)
                continue
            gkey = json.dumps(
                [str(user), item.context, [k.to_json() for k in item.contextual_tuples]],
                sort_keys=True,
                default=str,
            )
            groups.setdefault(gkey, []).append((item, user))

        async def group(items: list[tuple[BatchCheckItem, User]]) -> None:
            first, user = items[0]
            reader = RequestReader(
                self.ds, req.store_id, ts, list(first.contextual_tuples), batching=len(items) > 1
            )
            res = Resolution(
                ts,
                reader,
                user,
                first.context,
                self.config.max_depth,
                closure_max_facts=self.config.closure_max_facts,
                nesting=self._nesting_provider(req.store_id, ts) if self.config.nesting_index_max else None,
            )

            async def one(item: BatchCheckItem) -> None:
                otype, oid = split_object(item.tuple_key.object)
                try:
                    verdict = await self.checker.resolve_tri(
                        res, otype, oid, item.tuple_key.relation, 0, frozenset()
                    )
                except FGAError as exc:
                    results[item.correlation_id] = BatchCheckResult(error=exc)
                    return
                results[item.correlation_id] = BatchCheckResult(allowed=verdict == TRUE)

            await asyncio.gather(*(one(item) for item, _ in items))

        await asyncio.gather(*(group(g) for g in groups.values()))
        return {i.correlation_id: results[i.correlation_id] for i in req.checks}

    async def expand(
        self,
        store_id: str,
        object: str,
        relation: str,
        *,
        authorization_model_id: str = "",
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = "UNSPECIFIED",
    ) -> dict[str, Any]:
        ts = await self.typesystem(store_id, authorization_model_id)
        otype, oid = split_object(object)
        ts.relation_or_raise(otype, relation)
        ctx = self._contextual(ts, contextual_tuples)
        return await expand_tree(ts, RequestReader(self.ds, store_id, ts, ctx), otype, oid, relation)

    async def _list_objects_setup(self, req: ListObjectsRequest) -> tuple[TypeSystem, RequestReader, User]:
        ts = await self.typesystem(req.store_id, req.authorization_model_id)
        if not ts.has_type(req.type):
            raise FGAError(ErrorCode.type_not_found, f"type '{req.type}' not found")
        if ts.get_relation(req.type, req.relation) is None:
            raise FGAError(ErrorCode.relation_not_found, f"relation '{req.type}#{req.relation}' not found")
        user = self._validate_user(ts, req.user)
        ctx = self._contextual(ts, req.contextual_tuples)
        self._validate_context(req.context)
        return ts, RequestReader(self.ds, req.store_id, ts, ctx), user

    async def streamed_list_objects(self, req: ListObjectsRequest) -> AsyncIterator[str]:
        """Objects as they are found, each once, all of them (no deadline)."""
        ts, reader, user = await self._list_objects_setup(req)
        async for obj in stream_objects(ts, reader, user, req.context, req.type, req.relation):
            yield obj

    async def list_objects(self, req: ListObjectsRequest) -> ListObjectsResponse:
        ts, reader, user = await self._list_objects_setup(req)
        objects = [o async for o in stream_objects(ts, reader, user, req.context, req.type, req.relation)]
        limit = self.config.list_objects_max_results
        if req.page_size or req.continuation_token:
            if req.page_size < 0 or req.page_size > 10_000:
                raise FGAError(ErrorCode.page_size_invalid, "page_size must be between 1 and 10000")
            size = req.page_size or self.config.default_page_size
            after = ""
            if req.continuation_token:
                tok = decode_token(req.continuation_token)
                if tok.get("lo") != [req.type, req.relation, req.user]:
                    raise FGAError(ErrorCode.invalid_continuation_token, "token was issued for another query")
                after = str(tok.get("after", ""))
            objects.sort()
            rest = [o for o in objects if o > after]
            page = rest[:size]
            token = (
                encode_token({"lo": [req.type, req.relation, req.user], "after": page[-1]})
                if len(rest) > size
                else ""
            )
            return ListObjectsResponse(page, token)
        if limit and len(objects) > limit:
            objects = objects[:limit]
        return ListObjectsResponse(objects)

    async def list_users(self, req: ListUsersRequest) -> ListUsersResponse:
        ts = await self.typesystem(req.store_id, req.authorization_model_id)
        try:
            otype, oid = split_object(req.object)
        except FGAError:
            raise validation(f"invalid object '{req.object}'") from None
        if not ts.has_type(otype):
            raise FGAError(ErrorCode.type_not_found, f"type '{otype}' not found")
        if ts.get_relation(otype, req.relation) is None:
            raise FGAError(ErrorCode.relation_not_found, f"relation '{otype}#{req.relation}' not found")
        if len(req.user_filters) != 1:
            raise validation("invalid ListUsersRequest.UserFilters: value must contain exactly 1 item(s)")
        for f in req.user_filters:
            if not ts.has_type(f.type):
                raise FGAError(ErrorCode.type_not_found, f"type '{f.type}' not found")
            if f.relation and ts.get_relation(f.type, f.relation) is None:
                raise FGAError(ErrorCode.relation_not_found, f"relation '{f.type}#{f.relation}' not found")
        ctx = self._contextual(ts, req.contextual_tuples)
        self._validate_context(req.context)
        reader = RequestReader(self.ds, req.store_id, ts, ctx)
        users = await list_users(ts, reader, otype, oid, req.relation, req.user_filters, req.context)
        limit = self.config.list_users_max_results
        return ListUsersResponse(users[:limit] if limit else users)

    async def filter_objects(self, req: FilterRequest) -> list[str]:
        """The RAG filter: the subset of ``objects`` (in input order) that ``user`` has ``relation`` with."""
        ts = await self.typesystem(req.store_id, req.authorization_model_id)
        user = self._validate_user(ts, req.user)
        ctx = self._contextual(ts, req.contextual_tuples)
        self._validate_context(req.context)
        by_type: dict[str, list[str]] = {}
        for obj in req.objects:
            # The candidates mostly share a type: once a type has been parsed and checked, an object of it
            # whose id is letters and digits only (so within split_object's [^#:\s]+) needs nothing more;
            # any other id is parsed the long way, so the answer and the error are the same.
            otype, _, oid = obj.partition(":")
            ids = by_type.get(otype)
            if ids is None or len(obj) > MAX_OBJECT_LEN or not oid.isalnum():
                otype, oid = split_object(obj)
                ids = by_type.get(otype)
                if ids is None:
                    ts.relation_or_raise(otype, req.relation)
                    ids = by_type[otype] = []
            ids.append(oid)
        reader = RequestReader(
            self.ds,
            req.store_id,
            ts,
            ctx,
            batching=True,
            object_prefetch=self.config.object_prefetch,
            big_types=self._big_types.setdefault((req.store_id, ts.id), set()),
            small_types=self._small_types.setdefault((req.store_id, ts.id), set()),
            big_relations=self._big_relations.setdefault((req.store_id, ts.id), {}),
            densities=self._densities.setdefault((req.store_id, ts.id), {}),
            own_misses=self._own_misses.setdefault((req.store_id, ts.id), {}),
        )
        res = Resolution(
            ts,
            reader,
            user,
            req.context,
            self.config.max_depth,
            closure_max_facts=self.config.closure_max_facts,
            nesting=self._nesting_provider(req.store_id, ts) if self.config.nesting_index_max else None,
        )
        # Contextual tuples are merged per relation by the reader: such requests read storage.
        links = None if ctx else await self._link_index(req.store_id, ts, req.consistency)
        allowed: set[str] = set()
        for otype, ids in by_type.items():
            found = await filter_ids(
                res,
                otype,
                req.relation,
                ids,
                reverse_budget=self.config.filter_reverse_budget,
                probe_cost=self.config.filter_probe_cost,
                links=links,
            )
            allowed.update(f"{otype}:{i}" for i in found)
        return [o for o in dict.fromkeys(req.objects) if o in allowed]

    async def _link_index(self, store_id: str, ts: TypeSystem, consistency: Consistency) -> LinkIndex | None:
        """The store's link index for one filter request (engine/links.py). Caught up with the changelog
        first (one indexed read when nothing changed), except that MINIMIZE_LATENCY takes an index caught up
        within the metadata TTL, unless this service wrote to the store since (OpenFGA lets that consistency
        answer from caches; this process never answers from before its own write)."""
        writes = self._revisions.get(store_id, 0)
        max_age = 0.0
        if consistency == "MINIMIZE_LATENCY" and self._links_seen.get(store_id) == writes:
            max_age = self.config.metadata_cache_ttl
        idx = await self.links.current(self.ds, store_id, ts, max_age=max_age)
        self._links_seen[store_id] = writes
        return idx

    # --- the nesting index -------------------------------------------------------------------------------

    def _check_links(self, store_id: str, ts: TypeSystem, consistency: Consistency) -> _CheckLinks | None:
        """For one Check: the store's link index, asked for once (by a compiled plan), or None when the
        service keeps none or Check is not to use it."""
        if not self.config.check_links or not self.config.filter_index_max:
            return None
        return _CheckLinks(lambda: self._link_index(store_id, ts, consistency))

    def _nesting_provider(self, store_id: str, ts: TypeSystem, links: _CheckLinks | None = None) -> Any:
        """For one request: the nesting index of a kind, valid for the store's current revision (read once
        per request, so a HIGHER_CONSISTENCY request never sees an index older than the store). When the
        request has caught the link index up already, the index's version stands for the revision instead
        (the same guarantee, without reading the revision too); the two are different kinds of key (a tuple
        and an int), never equal, since they count different things."""
        revision: list[Any] = []

        async def provide(otype: str, relation: str) -> NestingIndex | None:
            if not revision:
                idx = links.index if links is not None else None
                if idx is not None:
                    revision.append(("links", idx.token, idx.applied))
                else:
                    revision.append(await self.ds.revision(store_id))
            return await self._nesting(store_id, ts, otype, relation, revision[0])

        return provide

    async def _nesting(
        self, store_id: str, ts: TypeSystem, otype: str, relation: str, revision: Any
    ) -> NestingIndex | None:
        """``{child id: [parent ids]}`` over every ``otype:parent#relation@otype:child#relation`` tuple the
        model admits: how sets of a nesting kind (groups in groups) contain each other. Built with paged reads
        and kept until the store's revision moves; None when the store holds more than
        ``nesting_index_max`` such tuples (the walk then goes through storage as usual)."""
        key = (store_id, ts.id, otype, relation)
        hit = self._nesting_cache.get(key)
        if hit is not None and hit[0] == revision:
            return hit[1]
        parents: dict[str, list[str]] | None = {}
        token: str | None = None
        count = 0
        flt = ReadFilter(f"{otype}:", relation, f"{otype}:")
        while parents is not None:
            rows, token = await self.ds.read_page(store_id, flt, 1000, token)
            for row in rows:
                k = row.key
                user = parse_user(k.user)
                if user is None or user.relation != relation or user.type != otype or k.condition_name:
                    continue
                if not ts.allows_key(k):
                    continue
                count += 1
                if count > self.config.nesting_index_max:
                    parents = None
                    break
                parents.setdefault(user.id, []).append(k.object.partition(":")[2])
            if not token:
                break
        if len(self._nesting_cache) > 256:
            self._nesting_cache.clear()
        index = None if parents is None else NestingIndex(parents)
        self._nesting_cache[key] = (revision, index)
        return index

    # --- validation helpers -----------------------------------------------------------------------------

    def _check_store_id(self, store_id: str) -> None:
        if len(store_id) != 26:
            raise validation(f"invalid store id '{store_id}': value must be a 26 character ULID")

    def _page_size(self, page_size: int) -> int:
        if page_size < 0 or page_size > self.config.max_page_size:
            raise FGAError(
                ErrorCode.page_size_invalid, f"page_size must be between 1 and {self.config.max_page_size}"
            )
        return page_size or self.config.default_page_size

    def _validate_user(self, ts: TypeSystem, user_str: str) -> User:
        user = parse_user(user_str)
        if user is None:
            raise validation(f"invalid 'user' field format: '{user_str}'")
        if not ts.has_type(user.type):
            raise validation(f"type '{user.type}' not found")
        if user.relation and ts.get_relation(user.type, user.relation) is None:
            raise validation(f"relation '{user.type}#{user.relation}' not found")
        return user

    def _validate_check_key(self, ts: TypeSystem, key: TupleKey) -> User:
        if not key.object or not key.relation or not key.user:
            raise validation("the 'object', 'relation' and 'user' fields are required")
        try:
            otype, _ = split_object(key.object)
        except FGAError:
            raise validation(f"invalid 'object' field format: '{key.object}'") from None
        user = self._validate_user(ts, key.user)
        if not ts.has_type(otype):
            raise validation(f"type '{otype}' not found")
        if ts.get_relation(otype, key.relation) is None:
            raise validation(f"relation '{otype}#{key.relation}' not found")
        return user

    def _contextual(self, ts: TypeSystem, tuples: Sequence[TupleKey]) -> list[TupleKey]:
        if len(tuples) > self.config.max_contextual_tuples:
            raise validation(
                f"invalid ContextualTupleKeys.TupleKeys: value must contain at most "
                f"{self.config.max_contextual_tuples} item(s)"
            )
        for k in tuples:
            ts.validate_tuple(k)
        return list(tuples)

    def _validate_context(self, context: Mapping[str, Any]) -> None:
        if not isinstance(context, Mapping):
            raise validation("context must be an object")
