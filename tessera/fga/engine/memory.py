"""In-memory :class:`~tessera.fga.engine.store.Datastore`: dict indexes, for tests, ``tessera fga test`` and
embedded use. Not persistent; one instance per process (or per test)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tessera.core.clock import Clock
from tessera.fga.engine.errors import ErrorCode, FGAError
from tessera.fga.engine.links import ChangeRow
from tessera.fga.engine.store import (
    ModelRecord,
    ObjectRow,
    OnDuplicate,
    OnMissing,
    ReadFilter,
    StoredTuple,
    StoreRecord,
    TupleChange,
    decode_token,
    encode_token,
    matches,
    write_conflict,
)
from tessera.fga.engine.tuples import TupleKey


@dataclass
class _Store:
    record: StoreRecord
    # (object, relation, user) -> (seq, StoredTuple); dict order is write order.
    tuples: dict[tuple[str, str, str], tuple[int, StoredTuple]] = field(default_factory=dict)
    by_object: dict[tuple[str, str], dict[str, TupleKey]] = field(default_factory=dict)
    by_user: dict[tuple[str, str, str], dict[str, TupleKey]] = field(default_factory=dict)
    relations_of: dict[str, dict[str, int]] = field(default_factory=dict)  # object -> relation -> count
    changes: list[TupleChange] = field(default_factory=list)
    models: list[ModelRecord] = field(default_factory=list)
    assertions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seq: int = 0
    revision: int = 0


class MemoryDatastore:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or Clock()
        self._stores: dict[str, _Store] = {}

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    def _get(self, store_id: str) -> _Store:
        s = self._stores.get(store_id)
        if s is None or s.record.deleted_at is not None:
            # The service checks stores exist before calling; an empty store is the safe answer here.
            s = _Store(StoreRecord(store_id, "", self._now(), self._now()))
        return s

    # --- stores -----------------------------------------------------------------------------------------

    async def create_store(self, store_id: str, name: str) -> StoreRecord:
        now = self._now()
        rec = StoreRecord(store_id, name, now, now)
        self._stores[store_id] = _Store(rec)
        return rec

    async def get_store(self, store_id: str) -> StoreRecord | None:
        s = self._stores.get(store_id)
        return s.record if s is not None and s.record.deleted_at is None else None

    async def list_stores(
        self, page_size: int, continuation: str | None, name: str | None = None
    ) -> tuple[list[StoreRecord], str | None]:
        after = decode_token(continuation)["id"] if continuation else ""
        recs = sorted(
            (s.record for s in self._stores.values() if s.record.deleted_at is None),
            key=lambda r: r.id,
        )
        recs = [r for r in recs if r.id > after and (name is None or r.name == name)]
        page = recs[:page_size]
        return page, (encode_token({"id": page[-1].id}) if len(recs) > page_size else None)

    async def delete_store(self, store_id: str) -> None:
        s = self._stores.get(store_id)
        if s is not None:
            r = s.record
            s.record = StoreRecord(r.id, r.name, r.created_at, self._now(), self._now())

    # --- models and assertions -----------------------------------------------------------------------

    async def write_model(self, store_id: str, model_id: str, model: dict[str, Any]) -> ModelRecord:
        rec = ModelRecord(model_id, store_id, copy.deepcopy(model), self._now())
        self._get(store_id).models.append(rec)
        return rec

    async def read_model(self, store_id: str, model_id: str) -> ModelRecord | None:
        return next((m for m in self._get(store_id).models if m.id == model_id), None)

    async def latest_model(self, store_id: str) -> ModelRecord | None:
        models = self._get(store_id).models
        return models[-1] if models else None

    async def list_models(
        self, store_id: str, page_size: int, continuation: str | None
    ) -> tuple[list[ModelRecord], str | None]:
        models = list(reversed(self._get(store_id).models))
        start = int(decode_token(continuation).get("i", 0)) if continuation else 0
        page = models[start : start + page_size]
        more = start + page_size < len(models)
        return page, (encode_token({"i": start + page_size}) if more else None)

    async def write_assertions(self, store_id: str, model_id: str, assertions: list[dict[str, Any]]) -> None:
        self._get(store_id).assertions[model_id] = copy.deepcopy(assertions)

    async def read_assertions(self, store_id: str, model_id: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self._get(store_id).assertions.get(model_id, []))

    # --- tuples ---------------------------------------------------------------------------------------

    async def revision(self, store_id: str) -> int:
        return self._get(store_id).revision

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
        s = self._get(store_id)
        out: list[TupleKey] = []
        for oid in object_ids:
            row = s.by_object.get((f"{object_type}:{oid}", relation))
            if not row:
                continue
            if users is not None:
                out.extend(row[u] for u in users if u in row)
            elif usersets is not None:
                wanted = {f"{t}#{r}" for t, r in usersets}
                for u, k in row.items():
                    t, _, rest = u.partition(":")
                    _, sep, r = rest.partition("#")
                    if sep and f"{t}#{r}" in wanted:
                        out.append(k)
            else:
                out.extend(row.values())
        return out

    async def read_object_tuples(
        self, store_id: str, obj: str, limit: int, *, relations: Sequence[str] | None = None
    ) -> list[TupleKey] | None:
        s = self._get(store_id)
        rels = s.relations_of.get(obj)
        if not rels:
            return []
        wanted = [r for r in rels if relations is None or r in relations]
        if sum(rels[r] for r in wanted) > limit:
            return None
        out: list[TupleKey] = []
        for rel in wanted:
            out.extend(s.by_object[(obj, rel)].values())
        return out

    async def read_objects_tuples(
        self,
        store_id: str,
        object_type: str,
        object_ids: Sequence[str],
        limit: int,
        *,
        relations: Sequence[str] | None = None,
        users: Sequence[str] | None = None,
        usersets: Sequence[tuple[str, str]] | None = None,
    ) -> list[TupleKey] | None:
        s = self._get(store_id)
        filtered = relations is not None or users is not None or usersets is not None
        rels, names, kinds = set(relations or ()), set(users or ()), set(usersets or ())
        out: list[TupleKey] = []
        for oid in dict.fromkeys(object_ids):
            obj = f"{object_type}:{oid}"
            for rel in s.relations_of.get(obj, ()):
                for k in s.by_object[(obj, rel)].values():
                    if filtered and rel not in rels and k.user not in names:
                        utype, _, rest = k.user.partition(":")
                        if "#" not in rest or (utype, rest.partition("#")[2]) not in kinds:
                            continue
                    out.append(k)
            if len(out) > limit:
                return None
        return out

    async def read_relation_rows(
        self,
        store_id: str,
        object_type: str,
        object_id: str,
        relation: str,
        users: Sequence[str],
        usersets: Sequence[tuple[str, str]],
        limit: int,
    ) -> list[TupleKey] | None:
        """As :meth:`SQLDatastore.read_relation_rows`: the tuples naming one of ``users`` or a userset of
        one of the kinds, or None when those usersets are more than ``limit``."""
        row = self._get(store_id).by_object.get((f"{object_type}:{object_id}", relation)) or {}
        wanted = {f"{t}#{r}" for t, r in usersets}
        sets = []
        for u, k in row.items():
            t, _, rest = u.partition(":")
            _, sep, r = rest.partition("#")
            if sep and f"{t}#{r}" in wanted:
                sets.append(k)
        if len(sets) > limit:
            return None
        named = [row[u] for u in dict.fromkeys(users) if u in row and row[u] not in sets]
        return named + sets

    async def read_users_rows(
        self, store_id: str, object_type: str, relations: Sequence[str], users: Sequence[str], limit: int
    ) -> list[ObjectRow] | None:
        s = self._get(store_id)
        out: list[ObjectRow] = []
        for rel in dict.fromkeys(relations):
            for u in dict.fromkeys(users):
                for k in (s.by_user.get((object_type, rel, u)) or {}).values():
                    oid = k.object.partition(":")[2]
                    out.append((oid, rel, k.user, k.condition_name, k.condition_context))
                if len(out) > limit:
                    return None
        return out

    async def scan_relation_rows(
        self, store_id: str, object_type: str, relation: str, *, sets_only: bool, limit: int
    ) -> list[ObjectRow] | None:
        s = self._get(store_id)
        out: list[ObjectRow] = []
        prefix = object_type + ":"
        for (obj, rel, user), (_, st) in s.tuples.items():
            if (
                rel != relation
                or not obj.startswith(prefix)
                or (sets_only and "#" not in user and not user.endswith(":*"))
            ):
                continue
            k = st.key
            out.append((obj[len(prefix) :], rel, user, k.condition_name, k.condition_context))
            if len(out) > limit:
                return None
        return out

    async def read_changes_after(
        self, store_id: str, seq: int, limit: int, also: Sequence[int] = ()
    ) -> tuple[bool, int, list[ChangeRow]]:
        """The changelog's entries are numbered from 1 in write order."""
        alive = await self.get_store(store_id) is not None
        changes = self._get(store_id).changes
        numbers = sorted({n for n in also if 0 < n <= min(seq, len(changes))}) + list(
            range(seq + 1, len(changes) + 1)
        )
        out: list[ChangeRow] = []
        for n in numbers[:limit]:
            c = changes[n - 1]
            otype, _, oid = c.key.object.partition(":")
            deleted = c.operation == "TUPLE_OPERATION_DELETE"
            out.append(
                (
                    n,
                    otype,
                    oid,
                    c.key.relation,
                    c.key.user,
                    deleted,
                    c.key.condition_name,
                    c.key.condition_context,
                )
            )
        return alive, len(changes), out

    async def read_by_users(
        self, store_id: str, object_type: str, relation: str, users: Sequence[str]
    ) -> list[TupleKey]:
        s = self._get(store_id)
        out: list[TupleKey] = []
        for u in users:
            row = s.by_user.get((object_type, relation, u))
            if row:
                out.extend(row.values())
        return out

    async def read_page(
        self, store_id: str, flt: ReadFilter, page_size: int, continuation: str | None
    ) -> tuple[list[StoredTuple], str | None]:
        s = self._get(store_id)
        after = int(decode_token(continuation).get("s", 0)) if continuation else 0
        page: list[StoredTuple] = []
        last = 0
        more = False
        for seq, st in s.tuples.values():
            if seq <= after or not matches(st.key, flt):
                continue
            if len(page) == page_size:
                more = True
                break
            page.append(st)
            last = seq
        return page, (encode_token({"s": last}) if more else None)

    async def write(
        self,
        store_id: str,
        deletes: Sequence[TupleKey],
        writes: Sequence[TupleKey],
        *,
        on_duplicate: OnDuplicate = "error",
        on_missing: OnMissing = "error",
    ) -> None:
        s = self._get(store_id)
        # Validate the whole request before changing anything: all or nothing.
        real_deletes: list[TupleKey] = []
        for k in deletes:
            if (k.object, k.relation, k.user) in s.tuples:
                real_deletes.append(k)
            elif on_missing == "error":
                raise write_conflict(k, existing=False)
        deleted = {(k.object, k.relation, k.user) for k in real_deletes}
        real_writes: list[TupleKey] = []
        for k in writes:
            ident = (k.object, k.relation, k.user)
            cur = s.tuples.get(ident)
            if cur is not None and ident not in deleted:
                same = cur[1].key.condition_name == k.condition_name and (
                    (cur[1].key.condition_context or {}) == (k.condition_context or {})
                )
                if on_duplicate == "error" or not same:
                    raise write_conflict(k, existing=True)
                continue
            real_writes.append(k)
        now = self._now()
        for k in real_deletes:
            ident = (k.object, k.relation, k.user)
            _, st = s.tuples.pop(ident)
            del s.by_object[(k.object, k.relation)][k.user]
            del s.by_user[(k.object.partition(":")[0], k.relation, k.user)][k.object]
            rels = s.relations_of[k.object]
            rels[k.relation] -= 1
            if not rels[k.relation]:
                del rels[k.relation]
            s.changes.append(TupleChange(st.key, "TUPLE_OPERATION_DELETE", now))
        for k in real_writes:
            s.seq += 1
            s.tuples[(k.object, k.relation, k.user)] = (s.seq, StoredTuple(k, now))
            s.by_object.setdefault((k.object, k.relation), {})[k.user] = k
            s.by_user.setdefault((k.object.partition(":")[0], k.relation, k.user), {})[k.object] = k
            rels = s.relations_of.setdefault(k.object, {})
            rels[k.relation] = rels.get(k.relation, 0) + 1
            s.changes.append(TupleChange(k, "TUPLE_OPERATION_WRITE", now))
        if real_deletes or real_writes:
            s.revision += 1

    async def read_changes(
        self,
        store_id: str,
        object_type: str,
        page_size: int,
        continuation: str | None,
        start_time: datetime | None,
    ) -> tuple[list[TupleChange], str | None]:
        s = self._get(store_id)
        if continuation:
            tok = decode_token(continuation)
            if tok.get("t", "") != object_type:
                raise FGAError(
                    ErrorCode.invalid_continuation_token,
                    "the continuation token was issued for another object type",
                )
            start = int(tok.get("i", 0))
        else:
            start = 0
            if start_time is not None:
                start = next(
                    (i for i, c in enumerate(s.changes) if c.timestamp >= start_time), len(s.changes)
                )
        out: list[TupleChange] = []
        i = start
        while i < len(s.changes) and len(out) < page_size:
            c = s.changes[i]
            i += 1
            if object_type and c.key.object_type != object_type:
                continue
            out.append(c)
        return out, encode_token({"i": i, "t": object_type})
