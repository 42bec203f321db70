"""The storage protocols the engine runs on. Everything is async; an implementation is one object that
satisfies :class:`Datastore` (the in-memory one is :mod:`tessera.fga.engine.memory`; the SQL one lives with
the HTTP layer). One conformance suite (``tests/fga/engine/test_store_contract.py``) runs against every
implementation.

The tuple reads are shaped after what the resolvers need, not after SQL:

* ``read_by_objects``: tuples on one relation of *many* objects of one type at once (point lookups for a user,
  the userset tuples of some types, or everything: the three reads of Check). Taking many ids is what lets the
  RAG filter and ListObjects verify a hundred candidates with one query per rewrite step.
* ``read_by_users``: the reverse lookup (objects of a type that have some users on a relation) that
  ListObjects walks backwards with.
* ``read_page``: the paged ``Read`` API.

Implementations return tuples as they are stored; the engine itself drops tuples that the current model's type
restrictions reject, so old tuples never have to be rewritten when a model changes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from tessera.fga.engine.errors import ErrorCode, FGAError
from tessera.fga.engine.tuples import TupleKey

OnDuplicate = Literal["error", "ignore"]
OnMissing = Literal["error", "ignore"]
Operation = Literal["TUPLE_OPERATION_WRITE", "TUPLE_OPERATION_DELETE"]


@dataclass(frozen=True, slots=True)
class StoredTuple:
    key: TupleKey
    timestamp: datetime

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key.to_json(), "timestamp": _rfc3339(self.timestamp)}


# One tuple of a known object type, as the RAG filter's layer reads return it: (object id, relation, user,
# condition name or None, condition context or None).
ObjectRow = tuple[str, str, str, str | None, Mapping[str, Any] | None]


@dataclass(frozen=True, slots=True)
class TupleChange:
    key: TupleKey
    operation: Operation
    timestamp: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "tuple_key": self.key.to_json(),
            "operation": self.operation,
            "timestamp": _rfc3339(self.timestamp),
        }


@dataclass(frozen=True, slots=True)
class ReadFilter:
    """The ``Read`` API's tuple key: ``object`` may be ``type:`` (every object of a type), any part empty."""

    object: str = ""
    relation: str = ""
    user: str = ""


@dataclass(frozen=True, slots=True)
class StoreRecord:
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "name": self.name,
            "created_at": _rfc3339(self.created_at),
            "updated_at": _rfc3339(self.updated_at),
        }
        if self.deleted_at:
            out["deleted_at"] = _rfc3339(self.deleted_at)
        return out


@dataclass(frozen=True, slots=True)
class ModelRecord:
    id: str
    store_id: str
    model: dict[str, Any] = field(hash=False)
    created_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, **{k: v for k, v in self.model.items() if k != "id"}}
        out.setdefault("conditions", {})
        return out


class TupleReader(Protocol):
    async def read_by_objects(
        self,
        store_id: str,
        object_type: str,
        relation: str,
        object_ids: Sequence[str],
        *,
        users: Sequence[str] | None = None,
        usersets: Sequence[tuple[str, str]] | None = None,
    ) -> list[TupleKey]:
        """Tuples ``object_type:<id>#relation@user`` for the given ids. ``users``: only these exact user
        strings (``user:jon``, ``user:*``, ``group:x#member``). ``usersets``: only users that are usersets of
        these (type, relation) pairs. Neither: every user."""
        ...

    async def read_by_users(
        self, store_id: str, object_type: str, relation: str, users: Sequence[str]
    ) -> list[TupleKey]:
        """Tuples whose object is of ``object_type``, on ``relation``, whose user is one of ``users``."""
        ...

    async def read_page(
        self, store_id: str, flt: ReadFilter, page_size: int, continuation: str | None
    ) -> tuple[list[StoredTuple], str | None]:
        """The Read API: tuples matching the filter in a stable order, one page; the token for the next."""
        ...

    # Optional: ``async def read_object_tuples(store_id, object, limit, *, relations=None) ->
    # list[TupleKey] | None``, every tuple of one object (all relations, or only ``relations``), or None when
    # it has more than ``limit``. Check uses it to fetch an object once instead of once per relation (only
    # its small relations when others hold too many tuples); without it the engine uses ``read_page``.
    #
    # Optional: ``async def read_objects_tuples(store_id, object_type, object_ids, limit, *, relations=None,
    # users=None, usersets=None) -> list[TupleKey] | None``, the tuples of many objects of one type (all
    # relations), or None when there are more than ``limit`` in all. With any of the keywords, only tuples
    # on one of ``relations``, or whose user is one of ``users`` (on any relation), or a userset of one of
    # the ``usersets`` (type, relation) pairs. The RAG filter reads each layer of objects (the candidates,
    # then their parents) with it in one call, only the rows that can matter to its user, instead of every
    # row of one relation at a time; without it the engine reads relation by relation.
    #
    # Optional: ``async def read_objects_rows(...)``, the same arguments and rows as ``read_objects_tuples``,
    # as :data:`ObjectRow` tuples instead of tuple keys (cheaper to build; the filter prefers it).
    #
    # Optional: ``async def read_users_rows(store_id, object_type, relations, users, limit) ->
    # list[ObjectRow] | None``, the reverse lookup over several relations at once: tuples whose object is of
    # ``object_type``, on one of ``relations``, whose user is one of ``users``, or None when there are more
    # than ``limit``. The RAG filter reads a user's own grants on a layer's type with it when that is
    # cheaper than filtering every candidate's tuples (see engine/filter.py).
    #
    # Optional: ``async def read_relation_rows(store_id, object_type, object_id, relation, users, usersets,
    # limit) -> list[TupleKey] | None``, one object's tuples on ``relation`` naming one of ``users`` (probes)
    # or any userset of the ``usersets`` kinds (a key range per kind), or None past ``limit`` usersets: a
    # compiled Check plan (engine/plan.py) reads a big relation with it when the user is in many sets.
    #
    # Optional, both or neither: ``async def scan_relation_rows(store_id, object_type, relation, *,
    # sets_only, limit) -> list[ObjectRow] | None`` (every tuple of one relation of a type, or only those
    # whose user is a userset or a wildcard; None past ``limit``) and ``async def read_changes_after(store_id,
    # seq, limit, also=()) -> (alive, newest seq, [ChangeRow])`` (whether the store exists, the changelog's
    # newest number, its entries after ``seq`` and those numbered in ``also``): the RAG filter's link index
    # (engine/links.py) is built with the first and kept current with the second; without them the filter
    # reads storage per layer.


class TupleWriter(Protocol):
    async def write(
        self,
        store_id: str,
        deletes: Sequence[TupleKey],
        writes: Sequence[TupleKey],
        *,
        on_duplicate: OnDuplicate = "error",
        on_missing: OnMissing = "error",
    ) -> None:
        """All or nothing. A write of an existing tuple is an error unless ``on_duplicate="ignore"`` (and then
        still one when the stored tuple has another condition); a delete of a missing tuple is an error unless
        ``on_missing="ignore"``. Raise :func:`write_conflict` for both."""
        ...

    async def read_changes(
        self,
        store_id: str,
        object_type: str,
        page_size: int,
        continuation: str | None,
        start_time: datetime | None,
    ) -> tuple[list[TupleChange], str | None]:
        """The changelog, oldest first. The token is returned even on an empty page so clients can poll."""
        ...


class ModelStore(Protocol):
    async def write_model(self, store_id: str, model_id: str, model: dict[str, Any]) -> ModelRecord: ...

    async def read_model(self, store_id: str, model_id: str) -> ModelRecord | None: ...

    async def latest_model(self, store_id: str) -> ModelRecord | None: ...

    async def list_models(
        self, store_id: str, page_size: int, continuation: str | None
    ) -> tuple[list[ModelRecord], str | None]:
        """Newest first (OpenFGA's ReadAuthorizationModels order)."""
        ...


class AssertionStore(Protocol):
    async def write_assertions(
        self, store_id: str, model_id: str, assertions: list[dict[str, Any]]
    ) -> None: ...

    async def read_assertions(self, store_id: str, model_id: str) -> list[dict[str, Any]]: ...


class StoreRegistry(Protocol):
    async def create_store(self, store_id: str, name: str) -> StoreRecord: ...

    async def get_store(self, store_id: str) -> StoreRecord | None:
        """None for unknown and for deleted stores."""
        ...

    async def list_stores(
        self, page_size: int, continuation: str | None, name: str | None = None
    ) -> tuple[list[StoreRecord], str | None]: ...

    async def delete_store(self, store_id: str) -> None: ...


class Datastore(TupleReader, TupleWriter, ModelStore, AssertionStore, StoreRegistry, Protocol):
    """Everything the service needs from storage."""

    async def revision(self, store_id: str) -> int:
        """A number that changes on every tuple write to the store (0 if unknown): the check cache keys on it
        so a cached answer never outlives a write within one process."""
        ...


# --- helpers shared by implementations -------------------------------------------------------------------


async def read_object_tuples(
    reader: TupleReader, store_id: str, obj: str, limit: int, relations: Sequence[str] | None = None
) -> list[TupleKey] | None:
    """Every tuple of ``obj`` (all relations, or only ``relations``), or None when there are more than
    ``limit``: the datastore's own ``read_object_tuples`` when it has one, else ``read_page`` on the object
    (once per relation when some are named)."""
    native = getattr(reader, "read_object_tuples", None)
    if native is not None:
        result: list[TupleKey] | None
        if relations is None:
            result = await native(store_id, obj, limit)
        else:
            result = await native(store_id, obj, limit, relations=relations)
        return result
    out: list[TupleKey] = []
    for flt in [ReadFilter(object=obj)] if relations is None else [ReadFilter(obj, r) for r in relations]:
        rows, _ = await reader.read_page(store_id, flt, limit + 1 - len(out), None)
        out += [r.key for r in rows]
        if len(out) > limit:
            return None
    return out


def write_conflict(key: TupleKey, *, existing: bool) -> FGAError:
    what = "a tuple which already exists" if existing else "a tuple which does not exist"
    verb = "write" if existing else "delete"
    return FGAError(
        ErrorCode.write_failed_due_to_invalid_input,
        f"cannot {verb} {what}: user: '{key.user}', relation: '{key.relation}', object: '{key.object}': "
        "tuple to be written already existed or the tuple to be deleted did not exist",
    )


def encode_token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError
        return data
    except (ValueError, UnicodeDecodeError):
        raise FGAError(ErrorCode.invalid_continuation_token, "invalid continuation token") from None


def _rfc3339(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def matches(key: TupleKey, flt: ReadFilter) -> bool:
    if flt.object:
        if flt.object.endswith(":"):
            if not key.object.startswith(flt.object):
                return False
        elif key.object != flt.object:
            return False
    if flt.relation and key.relation != flt.relation:
        return False
    if flt.user:
        if flt.user.endswith(":"):
            return key.user.startswith(flt.user)
        return key.user == flt.user
    return True
