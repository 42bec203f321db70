"""The engine's :class:`~tessera.fga.engine.store.Datastore` on SQL (SQLite or PostgreSQL).

:class:`SQLDatastore` runs on the project's :class:`~tessera.storage.database.Database`, identically on both
backends. Every write is one transaction (OpenFGA's Write is all or nothing). Each tuple read the resolver
makes is one indexed range scan (see ``schema.py``): ``read_by_objects`` is a prefix of the primary key,
``read_by_users`` a prefix of ``ix_fga_tuples_reverse`` (on SQLite answered from that index alone).

On SQLite the reads every Check makes (store, latest model id, revision, tuples by object, by user, of one
object) skip the pool and aiosqlite's thread and run on a read-only connection of their own
(:class:`_SQLiteHotReads`): microseconds instead of about half a millisecond each. PostgreSQL uses the
SQLAlchemy statements for everything.

Pagination tokens are opaque to clients, as OpenFGA's are: base64url JSON holding the last key returned, so a
page starts strictly after it and concurrent writes never make a page repeat a row.

Known limit: on PostgreSQL, changelog sequence numbers are taken at insert and transactions may commit out of
that order, so a ReadChanges poller at the very head of the log can step past a change committed a moment
later with a smaller number (OpenFGA's ULID-ordered changelog has the same window; it reads behind a horizon).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError

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
    write_conflict,
)
from tessera.fga.engine.tuples import TupleKey
from tessera.fga.sql.schema import fga_assertions, fga_changes, fga_models, fga_stores, fga_tuples
from tessera.storage.database import Database
from tessera.storage.hot import SQLiteHotReader

# openfga.v1.TupleOperation, as stored in fga_changes.operation.
_OPERATIONS = {0: "TUPLE_OPERATION_WRITE", 1: "TUPLE_OPERATION_DELETE"}

_t = fga_tuples.c
_TUPLE_COLUMNS = (
    _t.object_type,
    _t.object_id,
    _t.relation,
    _t.user_type,
    _t.user_id,
    _t.user_relation,
    _t.condition_name,
    _t.condition_context,
)
# Read's page order: the primary key (after the store).
_KEY_ORDER = (_t.object_type, _t.object_id, _t.relation, _t.user_type, _t.user_id, _t.user_relation)


def split_user(user: str) -> tuple[str, str, str]:
    """``type:id`` -> (type, id, ""); ``type:*`` -> (type, "*", ""); ``type:id#rel`` -> (type, id, rel)."""
    type_, _, rest = user.partition(":")
    id_, _, relation = rest.partition("#")
    return type_, id_, relation


def join_user(user_type: str, user_id: str, user_relation: str) -> str:
    return f"{user_type}:{user_id}#{user_relation}" if user_relation else f"{user_type}:{user_id}"


def _key(row: Any) -> TupleKey:
    return TupleKey(
        object=f"{row.object_type}:{row.object_id}",
        relation=row.relation,
        user=join_user(row.user_type, row.user_id, row.user_relation),
        condition_name=row.condition_name or None,
        condition_context=row.condition_context or None,
    )


def _users_clause(users: Sequence[str]) -> Any:
    """``user IN (...)`` that both databases answer from the index.

    A row-value ``(user_type, user_id, user_relation) IN (...)`` makes SQLite scan every tuple of the
    relation; grouping the users by (type, relation) gives ``user_type = ? AND user_relation = ? AND
    user_id IN (...)``, one index probe per user, OR-ed per group.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for user in dict.fromkeys(users):
        utype, uid, urel = split_user(user)
        groups.setdefault((utype, urel), []).append(uid)
    terms = [
        and_(
            _t.user_type == utype,
            _t.user_id == ids[0] if len(ids) == 1 else _t.user_id.in_(ids),
            _t.user_relation == urel,
        )
        for (utype, urel), ids in groups.items()
    ]
    return terms[0] if len(terms) == 1 else or_(*terms)


def _tuple_row(store_id: str, key: TupleKey, now: datetime) -> dict[str, Any]:
    utype, uid, urel = split_user(key.user)
    otype, _, oid = key.object.partition(":")
    return {
        "store_id": store_id,
        "object_type": otype,
        "object_id": oid,
        "relation": key.relation,
        "user_type": utype,
        "user_id": uid,
        "user_relation": urel,
        "condition_name": key.condition_name or None,
        "condition_context": dict(key.condition_context) if key.condition_context else None,
        "inserted_at": now,
    }


def _change_row(store_id: str, key: TupleKey, operation: int, now: datetime) -> dict[str, Any]:
    otype, _, oid = key.object.partition(":")
    return {
        "store_id": store_id,
        "object_type": otype,
        "object_id": oid,
        "relation": key.relation,
        "user": key.user,
        "operation": operation,
        "condition_name": key.condition_name or None,
        "condition_context": dict(key.condition_context) if key.condition_context else None,
        "changed_at": now,
    }


def _identity(store_id: str, key: TupleKey) -> list[Any]:
    utype, uid, urel = split_user(key.user)
    otype, _, oid = key.object.partition(":")
    return [
        _t.store_id == store_id,
        _t.object_type == otype,
        _t.object_id == oid,
        _t.relation == key.relation,
        _t.user_type == utype,
        _t.user_id == uid,
        _t.user_relation == urel,
    ]


def _ident(key: TupleKey) -> tuple[str, str, str]:
    return (key.object, key.relation, key.user)


def _same_condition(row: Any, key: TupleKey) -> bool:
    return (row.condition_name or None) == (key.condition_name or None) and (row.condition_context or {}) == (
        dict(key.condition_context) if key.condition_context else {}
    )


def _store(row: Any) -> StoreRecord:
    return StoreRecord(row.id, row.name, row.created_at, row.updated_at, row.deleted_at)


def _model(row: Any) -> ModelRecord:
    return ModelRecord(row.id, row.store_id, dict(row.model), row.created_at)


class SQLDatastore:
    """Stores, models, tuples, the changelog and assertions of every FGA store, in one database."""

    def __init__(self, db: Database, clock: Clock):
        self.db = db
        self._clock = clock
        self._hot = _SQLiteHotReads.for_database(db)
        # Models never change once written: parsed ones are kept (store_id, model_id) -> record.
        self._models: dict[tuple[str, str], ModelRecord] = {}

    async def aclose(self) -> None:
        if self._hot is not None:
            self._hot.close()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    # --- stores -----------------------------------------------------------------------------------------

    async def create_store(self, store_id: str, name: str) -> StoreRecord:
        now = self._now()
        async with self.db.transaction() as conn:
            await conn.execute(
                insert(fga_stores).values(id=store_id, name=name, created_at=now, updated_at=now)
            )
        return StoreRecord(store_id, name, now, now)

    async def get_store(self, store_id: str) -> StoreRecord | None:
        """None for unknown and for deleted stores (OpenFGA answers 404 for both)."""
        if self._hot is not None:
            return self._hot.store(store_id)
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(fga_stores).where(fga_stores.c.id == store_id, fga_stores.c.deleted_at.is_(None))
                )
            ).first()
        return None if row is None else _store(row)

    async def list_stores(
        self, page_size: int, continuation: str | None, name: str | None = None
    ) -> tuple[list[StoreRecord], str | None]:
        stmt = select(fga_stores).where(fga_stores.c.deleted_at.is_(None))
        if name:
            stmt = stmt.where(fga_stores.c.name == name)
        if continuation:
            stmt = stmt.where(fga_stores.c.id > str(decode_token(continuation).get("id", "")))
        stmt = stmt.order_by(fga_stores.c.id).limit(page_size + 1)
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        items = [_store(r) for r in rows[:page_size]]
        return items, (encode_token({"id": items[-1].id}) if len(rows) > page_size else None)

    async def delete_store(self, store_id: str) -> None:
        """Soft delete, as OpenFGA does: the row stays with ``deleted_at``; its tuples are removed."""
        now = self._now()
        async with self.db.transaction() as conn:
            await conn.execute(
                update(fga_stores)
                .where(fga_stores.c.id == store_id, fga_stores.c.deleted_at.is_(None))
                .values(deleted_at=now, updated_at=now)
            )
            await conn.execute(delete(fga_tuples).where(_t.store_id == store_id))

    # --- authorization models and assertions ------------------------------------------------------------

    async def write_model(self, store_id: str, model_id: str, model: dict[str, Any]) -> ModelRecord:
        now = self._now()
        body = {k: v for k, v in model.items() if k != "id"}
        async with self.db.transaction() as conn:
            await conn.execute(
                insert(fga_models).values(
                    store_id=store_id,
                    id=model_id,
                    schema_version=str(body.get("schema_version") or ""),
                    model=body,
                    created_at=now,
                )
            )
        return ModelRecord(model_id, store_id, body, now)

    async def read_model(self, store_id: str, model_id: str) -> ModelRecord | None:
        cached = self._models.get((store_id, model_id))
        if cached is not None:
            return cached
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(fga_models).where(fga_models.c.store_id == store_id, fga_models.c.id == model_id)
                )
            ).first()
        if row is None:
            return None
        record = _model(row)
        if len(self._models) < 1024:
            self._models[(store_id, model_id)] = record
        return record

    async def latest_model(self, store_id: str) -> ModelRecord | None:
        if self._hot is not None:
            model_id = self._hot.latest_model_id(store_id)
            if model_id is None:
                return None
            cached = self._models.get((store_id, model_id))
            return cached if cached is not None else await self.read_model(store_id, model_id)
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(fga_models)
                    .where(fga_models.c.store_id == store_id)
                    .order_by(fga_models.c.seq.desc())
                    .limit(1)
                )
            ).first()
        return None if row is None else _model(row)

    async def list_models(
        self, store_id: str, page_size: int, continuation: str | None
    ) -> tuple[list[ModelRecord], str | None]:
        """Newest first (OpenFGA's ReadAuthorizationModels order)."""
        stmt = select(fga_models).where(fga_models.c.store_id == store_id)
        if continuation:
            try:
                before = int(decode_token(continuation)["seq"])
            except (KeyError, TypeError, ValueError):
                raise FGAError(ErrorCode.invalid_continuation_token, "invalid continuation token") from None
            stmt = stmt.where(fga_models.c.seq < before)
        stmt = stmt.order_by(fga_models.c.seq.desc()).limit(page_size + 1)
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        items = [_model(r) for r in rows[:page_size]]
        token = encode_token({"seq": rows[page_size - 1].seq}) if len(rows) > page_size else None
        return items, token

    async def write_assertions(self, store_id: str, model_id: str, assertions: list[dict[str, Any]]) -> None:
        """WriteAssertions replaces the model's assertions as a whole."""
        body = json.dumps(assertions, separators=(",", ":"))
        now = self._now()
        async with self.db.transaction() as conn:
            await conn.execute(
                delete(fga_assertions).where(
                    fga_assertions.c.store_id == store_id, fga_assertions.c.model_id == model_id
                )
            )
            await conn.execute(
                insert(fga_assertions).values(
                    store_id=store_id, model_id=model_id, assertions=body, updated_at=now
                )
            )

    async def read_assertions(self, store_id: str, model_id: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(fga_assertions.c.assertions).where(
                        fga_assertions.c.store_id == store_id, fga_assertions.c.model_id == model_id
                    )
                )
            ).first()
        return [] if row is None else list(json.loads(row.assertions))

    # --- tuples: the resolver's reads -------------------------------------------------------------------

    async def revision(self, store_id: str) -> int:
        """The newest changelog sequence number of the store: it moves on every write, from any process."""
        if self._hot is not None:
            return self._hot.revision(store_id)
        async with self.db.read() as conn:
            value = (
                await conn.execute(
                    select(func.max(fga_changes.c.seq)).where(fga_changes.c.store_id == store_id)
                )
            ).scalar()
        return int(value or 0)

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
        if not object_ids or (users is not None and not users) or (usersets is not None and not usersets):
            return []
        ids = list(dict.fromkeys(object_ids))
        if self._hot is not None:
            return self._hot.by_objects(store_id, object_type, relation, ids, users, usersets)
        conds: list[Any] = [
            _t.store_id == store_id,
            _t.object_type == object_type,
            _t.object_id == ids[0] if len(ids) == 1 else _t.object_id.in_(ids),
            _t.relation == relation,
        ]
        if users is not None:
            if not users:
                return []
            conds.append(_users_clause(users))
        elif usersets is not None:
            if not usersets:
                return []
            pairs = list(dict.fromkeys(usersets))
            conds.append(_t.user_relation != literal(""))
            conds.append(or_(*[and_(_t.user_type == ty, _t.user_relation == rel) for ty, rel in pairs]))
        async with self.db.read() as conn:
            rows = (await conn.execute(select(*_TUPLE_COLUMNS).where(*conds))).all()
        return [_key(r) for r in rows]

    async def read_by_users(
        self, store_id: str, object_type: str, relation: str, users: Sequence[str]
    ) -> list[TupleKey]:
        if not users:
            return []
        if self._hot is not None:
            return self._hot.by_users(store_id, object_type, relation, users)
        conds: list[Any] = [
            _t.store_id == store_id,
            _t.object_type == object_type,
            _t.relation == relation,
            _users_clause(users),
        ]
        async with self.db.read() as conn:
            rows = (await conn.execute(select(*_TUPLE_COLUMNS).where(*conds))).all()
        return [_key(r) for r in rows]

    async def read_object_tuples(
        self, store_id: str, obj: str, limit: int, *, relations: Sequence[str] | None = None
    ) -> list[TupleKey] | None:
        """Every tuple of one object (all relations, one primary-key range; or only ``relations``, one range
        each), or None past ``limit``."""
        otype, _, oid = obj.partition(":")
        if relations is not None and not relations:
            return []
        if self._hot is not None:
            rows = self._hot.of_object(store_id, otype, oid, limit + 1, relations)
        else:
            conds = [_t.store_id == store_id, _t.object_type == otype, _t.object_id == oid]
            if relations is not None:
                conds.append(_t.relation.in_(list(dict.fromkeys(relations))))
            stmt = select(*_TUPLE_COLUMNS).where(*conds).limit(limit + 1)
            async with self.db.read() as conn:
                rows = [_key(r) for r in (await conn.execute(stmt)).all()]
        return None if len(rows) > limit else rows

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
        """Tuples of many objects of one type (all relations; one primary-key range per object), or None
        past ``limit`` in all. With any of ``relations``, ``users``, ``usersets``: only tuples on one of
        those relations, or whose user is one of ``users`` (any relation), or a userset of one of those
        (type, relation) pairs (the database filters the range, so only the rows a caller can use come
        back). The same rows as :meth:`read_objects_rows`, as tuple keys."""
        rows = await self.read_objects_rows(
            store_id, object_type, object_ids, limit, relations=relations, users=users, usersets=usersets
        )
        if rows is None:
            return None
        prefix = object_type + ":"
        return [TupleKey(prefix + oid, rel, user, cname, cctx) for oid, rel, user, cname, cctx in rows]

    async def read_objects_rows(
        self,
        store_id: str,
        object_type: str,
        object_ids: Sequence[str],
        limit: int,
        *,
        relations: Sequence[str] | None = None,
        users: Sequence[str] | None = None,
        usersets: Sequence[tuple[str, str]] | None = None,
    ) -> list[ObjectRow] | None:
        """:meth:`read_objects_tuples` as plain ``(object_id, relation, user, condition_name,
        condition_context)`` rows: the RAG filter reads each layer of objects with it, and building a
        tuple key per row would cost it about as much as the database's scan."""
        ids = list(dict.fromkeys(object_ids))
        if not ids:
            return []
        filtered = relations is not None or users is not None or usersets is not None
        rels, names, kinds = list(relations or ()), list(users or ()), list(dict.fromkeys(usersets or ()))
        if filtered and not (rels or names or kinds):
            return []
        rows: list[ObjectRow]
        if self._hot is not None:
            rows = self._hot.of_objects(
                store_id, object_type, ids, limit + 1, (rels, names, kinds) if filtered else None
            )
        else:
            conds: list[Any] = [_t.store_id == store_id, _t.object_type == object_type, _t.object_id.in_(ids)]
            if filtered:
                terms: list[Any] = []
                if rels:
                    terms.append(_t.relation.in_(rels))
                if names:
                    terms.append(_users_clause(names))
                terms += [and_(_t.user_type == ty, _t.user_relation == rel) for ty, rel in kinds]
                conds.append(or_(*terms))
            rows = await self._object_rows(select(*_TUPLE_COLUMNS).where(*conds).limit(limit + 1))
        return None if len(rows) > limit else rows

    async def _object_rows(self, stmt: Any) -> list[ObjectRow]:
        """Run a select of ``_TUPLE_COLUMNS`` through the Database and shape its rows as ObjectRows."""
        async with self.db.read() as conn:
            return [
                (
                    r.object_id,
                    r.relation,
                    join_user(r.user_type, r.user_id, r.user_relation),
                    r.condition_name or None,
                    r.condition_context or None,
                )
                for r in (await conn.execute(stmt)).all()
            ]

    async def read_users_rows(
        self, store_id: str, object_type: str, relations: Sequence[str], users: Sequence[str], limit: int
    ) -> list[ObjectRow] | None:
        """Tuples of objects of ``object_type`` on one of ``relations`` whose user is one of ``users``, as
        :data:`ObjectRow` tuples, or None past ``limit``: probes of ``ix_fga_tuples_reverse`` (relation x
        user), the RAG filter's read of a user's own grants on a type."""
        rels = list(dict.fromkeys(relations))
        if not rels or not users:
            return []
        rows: list[ObjectRow]
        if self._hot is not None:
            rows = self._hot.users_rows(store_id, object_type, rels, users, limit + 1)
        else:
            conds: list[Any] = [
                _t.store_id == store_id,
                _t.object_type == object_type,
                _t.relation.in_(rels),
                _users_clause(users),
            ]
            rows = await self._object_rows(select(*_TUPLE_COLUMNS).where(*conds).limit(limit + 1))
        return None if len(rows) > limit else rows

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
        """One object's tuples on ``relation`` whose user is one of ``users`` (index probes) or any userset
        of one of the ``usersets`` (type, relation) kinds (a primary-key range per kind), or None when the
        usersets are more than ``limit``. Check reads a relation too big to prefetch (an organisation's
        members) with it when the user is in many sets of a kind: the relation's few sets of the kind in one
        range cost less than a probe for each of the user's."""
        kinds = list(dict.fromkeys(usersets))
        if self._hot is not None:
            return self._hot.relation_rows(store_id, object_type, object_id, relation, users, kinds, limit)
        head = [
            _t.store_id == store_id,
            _t.object_type == object_type,
            _t.object_id == object_id,
            _t.relation == relation,
        ]
        async with self.db.read() as conn:
            rows: list[Any] = []
            if kinds:
                kind_terms = [and_(_t.user_type == ty, _t.user_relation == rel) for ty, rel in kinds]
                stmt = select(*_TUPLE_COLUMNS).where(*head, or_(*kind_terms)).limit(limit + 1)
                rows = list((await conn.execute(stmt)).all())
                if len(rows) > limit:
                    return None
            if users:
                rows += (await conn.execute(select(*_TUPLE_COLUMNS).where(*head, _users_clause(users)))).all()
        # A userset among ``users`` of one of the kinds comes from both statements: keep it once.
        unique = {(r.user_type, r.user_id, r.user_relation): r for r in rows}
        return [_key(r) for r in unique.values()]

    async def read_page(
        self, store_id: str, flt: ReadFilter, page_size: int, continuation: str | None
    ) -> tuple[list[StoredTuple], str | None]:
        """The Read API, in primary-key order (object type, id, relation, user): pages are stable."""
        conds: list[Any] = [_t.store_id == store_id]
        if flt.object:
            otype, _, oid = flt.object.partition(":")
            conds.append(_t.object_type == otype)
            if oid:
                conds.append(_t.object_id == oid)
        if flt.relation:
            conds.append(_t.relation == flt.relation)
        if flt.user:
            utype, uid, urel = split_user(flt.user)
            conds.append(_t.user_type == utype)
            if uid:
                conds += [_t.user_id == uid, _t.user_relation == urel]
        if continuation:
            last = decode_token(continuation).get("last")
            if not isinstance(last, list) or len(last) != len(_KEY_ORDER):
                raise FGAError(ErrorCode.invalid_continuation_token, "invalid continuation token")
            conds.append(tuple_(*_KEY_ORDER) > tuple_(*[literal(str(v)) for v in last]))
        stmt = (
            select(*_TUPLE_COLUMNS, _t.inserted_at).where(*conds).order_by(*_KEY_ORDER).limit(page_size + 1)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        items = [StoredTuple(_key(r), r.inserted_at) for r in rows[:page_size]]
        token = None
        if len(rows) > page_size:
            r = rows[page_size - 1]
            token = encode_token(
                {"last": [r.object_type, r.object_id, r.relation, r.user_type, r.user_id, r.user_relation]}
            )
        return items, token

    # --- tuples: writes and the changelog ---------------------------------------------------------------

    async def write(
        self,
        store_id: str,
        deletes: Sequence[TupleKey],
        writes: Sequence[TupleKey],
        *,
        on_duplicate: OnDuplicate = "error",
        on_missing: OnMissing = "error",
    ) -> None:
        """Deletes, then writes, in one transaction; any conflict raises and the transaction rolls back.

        One query finds which of the request's tuples exist (up to 100 a request), one deletes, one inserts.
        """
        now = self._now()
        changes: list[dict[str, Any]] = []
        async with self.db.transaction() as conn:
            existing = await self._existing(conn, store_id, [*deletes, *writes])
            doomed = []
            for key in deletes:
                if _ident(key) not in existing:
                    if on_missing == "ignore":
                        continue
                    raise write_conflict(key, existing=False)
                doomed.append(key)
                changes.append(_change_row(store_id, key, 1, now))
            if doomed:
                result = await conn.execute(
                    delete(fga_tuples).where(or_(*[and_(*_identity(store_id, k)) for k in doomed]))
                )
                if result.rowcount != len(doomed):
                    # A concurrent request deleted one of them after we looked.
                    raise write_conflict(doomed[0], existing=False)
            gone = {_ident(k) for k in doomed}
            rows: list[dict[str, Any]] = []
            for key in writes:
                found = existing.get(_ident(key))
                if found is not None and _ident(key) not in gone:
                    # on_duplicate=ignore skips an identical tuple; one with another condition still fails.
                    if on_duplicate == "ignore" and _same_condition(found, key):
                        continue
                    raise write_conflict(key, existing=True)
                rows.append(_tuple_row(store_id, key, now))
                changes.append(_change_row(store_id, key, 0, now))
            if rows:
                try:
                    await conn.execute(insert(fga_tuples), rows)
                except IntegrityError:
                    # A concurrent request wrote one of these tuples after we looked (PostgreSQL runs writers
                    # side by side): the same answer as a duplicate seen before the insert.
                    raise FGAError(
                        ErrorCode.write_failed_due_to_invalid_input,
                        "cannot write a tuple which already exists: tuple to be written already existed or "
                        "the tuple to be deleted did not exist",
                    ) from None
            if changes:
                await conn.execute(insert(fga_changes), changes)

    async def _existing(
        self, conn: Any, store_id: str, keys: Sequence[TupleKey]
    ) -> dict[tuple[str, str, str], Any]:
        """The stored rows among ``keys`` (identity -> row with its condition), in one indexed query."""
        out: dict[tuple[str, str, str], Any] = {}
        unique = list(dict.fromkeys(keys))
        # OR of primary-key equalities: each term is one index probe on both databases; chunks keep the
        # statement under SQLite's bound-parameter limit.
        for start in range(0, len(unique), 100):
            chunk = unique[start : start + 100]
            stmt = select(*_TUPLE_COLUMNS).where(or_(*[and_(*_identity(store_id, k)) for k in chunk]))
            for row in (await conn.execute(stmt)).all():
                out[_ident(_key(row))] = row
        return out

    async def bulk_load(self, store_id: str, keys: Iterable[TupleKey], *, batch: int = 5000) -> int:
        """Insert many new tuples fast (imports, benchmarks) in one transaction: no duplicate checks and no
        changelog entries, so ReadChanges and the revision do not see them. Not for live stores."""
        now = self._now()
        count = 0
        buffer: list[dict[str, Any]] = []
        async with self.db.transaction() as tx:
            for key in keys:
                buffer.append(_tuple_row(store_id, key, now))
                if len(buffer) >= batch:
                    await tx.execute(insert(fga_tuples), buffer)
                    count += len(buffer)
                    buffer = []
            if buffer:
                await tx.execute(insert(fga_tuples), buffer)
                count += len(buffer)
        return count

    async def read_changes(
        self,
        store_id: str,
        object_type: str,
        page_size: int,
        continuation: str | None,
        start_time: datetime | None,
    ) -> tuple[list[TupleChange], str | None]:
        """Oldest first. The token names the type it was made for; it is returned even on an empty page, so
        a client can poll from where it stopped."""
        conds: list[Any] = [fga_changes.c.store_id == store_id]
        if object_type:
            conds.append(fga_changes.c.object_type == object_type)
        after = 0
        if continuation:
            token = decode_token(continuation)
            if token.get("t", "") != object_type:
                raise FGAError(
                    ErrorCode.invalid_continuation_token,
                    "the continuation token was issued for another object type",
                )
            try:
                after = int(token["seq"])
            except (KeyError, TypeError, ValueError):
                raise FGAError(ErrorCode.invalid_continuation_token, "invalid continuation token") from None
            conds.append(fga_changes.c.seq > after)
        elif start_time is not None:
            conds.append(fga_changes.c.changed_at >= start_time)
        stmt = select(fga_changes).where(*conds).order_by(fga_changes.c.seq).limit(page_size)
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        items = [
            TupleChange(
                TupleKey(
                    object=f"{r.object_type}:{r.object_id}",
                    relation=r.relation,
                    user=r.user,
                    condition_name=r.condition_name or None,
                    condition_context=r.condition_context or None,
                ),
                _OPERATIONS[r.operation],  # type: ignore[arg-type]
                r.changed_at,
            )
            for r in rows
        ]
        last = rows[-1].seq if rows else after
        return items, encode_token({"seq": last, "t": object_type})

    # --- the RAG filter's link index (engine/links.py) ---------------------------------------------------

    async def scan_relation_rows(
        self, store_id: str, object_type: str, relation: str, *, sets_only: bool, limit: int
    ) -> list[ObjectRow] | None:
        """Every tuple of ``object_type`` objects on ``relation`` (with ``sets_only``, only those whose user
        is a set of users: a userset or a wildcard) as :data:`ObjectRow` tuples, or None past ``limit``: one
        range of ``ix_fga_tuples_reverse`` (the RAG filter's link index, engine/links.py, is built from
        these)."""
        if self._hot is not None:
            hot = self._hot.scan_relation(store_id, object_type, relation, sets_only, limit + 1)
            return None if len(hot) > limit else hot
        conds: list[Any] = [_t.store_id == store_id, _t.object_type == object_type, _t.relation == relation]
        if sets_only:
            conds.append(or_(_t.user_relation != "", _t.user_id == "*"))
        rows = await self._object_rows(select(*_TUPLE_COLUMNS).where(*conds).limit(limit + 1))
        return None if len(rows) > limit else rows

    async def read_changes_after(
        self, store_id: str, seq: int, limit: int, also: Sequence[int] = ()
    ) -> tuple[bool, int, list[ChangeRow]]:
        """(whether the store exists and is not deleted, the changelog's newest number, its entries after
        ``seq`` and those numbered in ``also``, in number order, at most ``limit``): the link index's
        catch-up (engine/links.py), on ``ix_fga_changes_store_seq``."""
        if self._hot is not None:
            return self._hot.changes_after(store_id, seq, limit, list(also))
        c = fga_changes.c
        alive_stmt = select(
            select(fga_stores.c.id)
            .where(fga_stores.c.id == store_id, fga_stores.c.deleted_at.is_(None))
            .exists()
            .label("alive"),
            select(func.max(c.seq)).where(c.store_id == store_id).scalar_subquery().label("head"),
        )
        after = c.seq > seq if not also else or_(c.seq > seq, c.seq.in_(list(also)))
        columns = (c.seq, c.object_type, c.object_id, c.relation, c.user, c.operation)
        stmt = (
            select(*columns, c.condition_name, c.condition_context)
            .where(c.store_id == store_id, after)
            .order_by(c.seq)
            .limit(limit)
        )
        async with self.db.read() as conn:
            head_row = (await conn.execute(alive_stmt)).one()
            alive, head = bool(head_row.alive), int(head_row.head or 0)
            if not limit or (head <= seq and not also):
                return alive, head, []
            rows = (await conn.execute(stmt)).all()
        return (
            alive,
            head,
            [
                (
                    r.seq,
                    r.object_type,
                    r.object_id,
                    r.relation,
                    r.user,
                    r.operation == 1,
                    r.condition_name or None,
                    r.condition_context or None,
                )
                for r in rows
            ],
        )


# --- SQLite: the resolver's reads on the event loop -------------------------------------------------------

# The object and user strings are put together by SQLite: one Python string each per row instead of three
# and a format.
_SELECT_TUPLES = (
    "SELECT object_type || ':' || object_id, relation, "
    "user_type || ':' || user_id || CASE user_relation WHEN '' THEN '' ELSE '#' || user_relation END, "
    "condition_name, condition_context "
    "FROM fga_tuples WHERE store_id = ? AND object_type = ? AND relation = ? AND "
)
# Reverse lookups, answered from ix_fga_tuples_reverse alone (it holds every column but the context).
_SELECT_BY_USERS = (
    "SELECT object_type || ':' || object_id, relation, "
    "user_type || ':' || user_id || CASE user_relation WHEN '' THEN '' ELSE '#' || user_relation END, "
    "condition_name, NULL "
    "FROM fga_tuples WHERE store_id = ? AND object_type = ? AND relation = ? AND "
)
_SELECT_OF_OBJECT = (
    "SELECT object_type || ':' || object_id, relation, "
    "user_type || ':' || user_id || CASE user_relation WHEN '' THEN '' ELSE '#' || user_relation END, "
    "condition_name, condition_context "
    "FROM fga_tuples WHERE store_id = ? AND object_type = ? AND object_id = ? LIMIT ?"
)
_SELECT_OF_OBJECT_RELATIONS = (
    "SELECT object_type || ':' || object_id, relation, "
    "user_type || ':' || user_id || CASE user_relation WHEN '' THEN '' ELSE '#' || user_relation END, "
    "condition_name, condition_context "
    "FROM fga_tuples WHERE store_id = ? AND object_type = ? AND object_id = ? AND relation IN ({}) LIMIT ?"
)
# Rows without a condition come back exactly as the filter uses them, (id, relation, user, None, None), so
# they need no rebuilding in Python.
_SELECT_OF_OBJECTS = (
    "SELECT object_id, relation, "
    "user_type || ':' || user_id || CASE user_relation WHEN '' THEN '' ELSE '#' || user_relation END, "
    "NULLIF(condition_name, ''), CASE WHEN condition_name > '' THEN condition_context END "
    "FROM fga_tuples WHERE store_id = ? AND object_type = ? AND object_id IN "
)

# A user's own tuples on several relations of a type (the filter's user-side read), from
# ix_fga_tuples_reverse alone unless a row has a condition; rows as _SELECT_OF_OBJECTS gives them.
_SELECT_USERS_ROWS = (
    "SELECT object_id, relation, "
    "user_type || ':' || user_id || CASE user_relation WHEN '' THEN '' ELSE '#' || user_relation END, "
    "NULLIF(condition_name, ''), NULL "
    "FROM fga_tuples WHERE store_id = ? AND object_type = ? AND {} AND"
)
_SELECT_USERS_ROWS_CONTEXT = _SELECT_USERS_ROWS.replace(
    "NULL FROM", "CASE WHEN condition_name > '' THEN condition_context END FROM"
)


# Every tuple of one relation of a type, from ix_fga_tuples_reverse alone (the link index's build); rows as
# _SELECT_USERS_ROWS gives them.
_SELECT_SCAN_ROWS = _SELECT_USERS_ROWS.format("relation = ?").removesuffix(" AND")
_CONTEXT_COLUMN = "CASE WHEN condition_name > '' THEN condition_context END"
_SELECT_ALIVE_HEAD = (
    "SELECT EXISTS (SELECT 1 FROM fga_stores WHERE id = ? AND deleted_at IS NULL), "
    "(SELECT max(seq) FROM fga_changes WHERE store_id = ?)"
)
_SELECT_CHANGES = (
    "SELECT seq, object_type, object_id, relation, user, operation, condition_name, condition_context "
    "FROM fga_changes WHERE store_id = ? AND "
)


def _sqlite_users(users: Sequence[str], params: list[Any]) -> str:
    """The SQL of :func:`_users_clause`: one index probe per user, grouped by (type, relation)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for user in dict.fromkeys(users):
        utype, uid, urel = split_user(user)
        groups.setdefault((utype, urel), []).append(uid)
    terms = []
    for (utype, urel), ids in groups.items():
        params += [utype, urel, *ids]
        terms.append(f"(user_type = ? AND user_relation = ? AND user_id IN ({', '.join('?' * len(ids))}))")
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


def _sqlite_per_group(head: str, head_params: Sequence[Any], users: Sequence[str]) -> tuple[str, list[Any]]:
    """``head`` (a SELECT whose WHERE ends in ``AND``) for each (type, relation) group of ``users``, joined by
    UNION ALL. An OR of the groups in one statement lets SQLite's estimates (a few tuples per object and
    relation on average) pick the object's primary-key range instead of probes of the reverse index, and on
    an organisation with thousands of members that range is all of them; each group alone is answered by
    probes. The groups are disjoint, so no row comes twice."""
    groups: dict[tuple[str, str], list[str]] = {}
    for user in dict.fromkeys(users):
        utype, uid, urel = split_user(user)
        groups.setdefault((utype, urel), []).append(uid)
    parts = []
    params: list[Any] = []
    for (utype, urel), ids in groups.items():
        parts.append(
            f"{head} user_type = ? AND user_relation = ? AND user_id IN ({', '.join('?' * len(ids))})"
        )
        params += [*head_params, utype, urel, *ids]
    return " UNION ALL ".join(parts), params


def _sqlite_context(cctx: str | None) -> Any:
    # SQL NULL, or JSON 'null' in rows written before none_as_null: both mean no context.
    return (json.loads(cctx) or None) if cctx and cctx != "null" else None


def _sqlite_keys(rows: list[tuple[Any, ...]]) -> list[TupleKey]:
    """Rows of ``_SELECT_TUPLES`` as tuple keys."""
    return [
        TupleKey(obj, rel, user, cname, _sqlite_context(cctx)) if cname else TupleKey(obj, rel, user)
        for obj, rel, user, cname, cctx in rows
    ]


class _SQLiteHotReads:
    """The reads every Check makes (store, latest model id, revision, tuples by object, by user), run on
    SQLite directly from the event loop.

    They are in-process B-tree lookups costing a few microseconds; handing each to aiosqlite's thread
    through SQLAlchemy's pool costs about a hundred times that (measured by bench/fga.py), and the resolver
    makes several per Check. The connection is read-only and in autocommit mode, so each statement sees
    everything committed before it (WAL lets it read beside the writer). Writes and everything else still go
    through :class:`~tessera.storage.database.Database`.
    """

    def __init__(self, path: str):
        # A memory-mapped file: about 2x on the filter's range scans and on point reads of a 1M-tuple store
        # (bench/fga.py).
        self._reader = SQLiteHotReader(path, mmap_size=1 << 30)

    @classmethod
    def for_database(cls, db: Database) -> _SQLiteHotReads | None:
        path = db.sqlite_file
        return cls(path) if path is not None else None

    def _db(self) -> sqlite3.Connection:
        return self._reader.connection()

    def close(self) -> None:
        self._reader.close()

    def store(self, store_id: str) -> StoreRecord | None:
        row = (
            self._db()
            .execute(
                "SELECT id, name, created_at, updated_at FROM fga_stores WHERE id = ? AND deleted_at IS NULL",
                (store_id,),
            )
            .fetchone()
        )
        if row is None:
            return None
        return StoreRecord(row[0], row[1], _sqlite_time(row[2]), _sqlite_time(row[3]))

    def latest_model_id(self, store_id: str) -> str | None:
        row = (
            self._db()
            .execute("SELECT id FROM fga_models WHERE store_id = ? ORDER BY seq DESC LIMIT 1", (store_id,))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def revision(self, store_id: str) -> int:
        row = (
            self._db().execute("SELECT max(seq) FROM fga_changes WHERE store_id = ?", (store_id,)).fetchone()
        )
        return int(row[0] or 0)

    def by_objects(
        self,
        store_id: str,
        object_type: str,
        relation: str,
        object_ids: list[str],
        users: Sequence[str] | None,
        usersets: Sequence[tuple[str, str]] | None,
    ) -> list[TupleKey]:
        params: list[Any] = [store_id, object_type, relation, *object_ids]
        sql = _SELECT_TUPLES + f"object_id IN ({', '.join('?' * len(object_ids))})"
        if users is not None:
            sql, params = _sqlite_per_group(sql + " AND", params, users)
        elif usersets is not None:
            pairs = list(dict.fromkeys(usersets))
            sql += (
                " AND user_relation != '' AND ("
                + " OR ".join("(user_type = ? AND user_relation = ?)" for _ in pairs)
                + ")"
            )
            for utype, urel in pairs:
                params += [utype, urel]
        return _sqlite_keys(self._db().execute(sql, params).fetchall())

    def of_object(
        self,
        store_id: str,
        object_type: str,
        object_id: str,
        limit: int,
        relations: Sequence[str] | None = None,
    ) -> list[TupleKey]:
        if relations is None:
            params: tuple[Any, ...] = (store_id, object_type, object_id, limit)
            return _sqlite_keys(self._db().execute(_SELECT_OF_OBJECT, params).fetchall())
        # One primary-key range per relation: the relations of an object that has too many tuples on others.
        rels = list(dict.fromkeys(relations))
        sql = _SELECT_OF_OBJECT_RELATIONS.format(", ".join("?" * len(rels)))
        return _sqlite_keys(
            self._db().execute(sql, (store_id, object_type, object_id, *rels, limit)).fetchall()
        )

    def of_objects(
        self,
        store_id: str,
        object_type: str,
        object_ids: list[str],
        limit: int,
        only: tuple[list[str], list[str], list[tuple[str, str]]] | None = None,
    ) -> list[ObjectRow]:
        params: list[Any] = [store_id, object_type, *object_ids]
        # Only placeholders are formatted in; every value is a parameter.
        sql = _SELECT_OF_OBJECTS + f"({', '.join('?' * len(object_ids))})"
        if only is not None:
            # The filter is applied to each object's primary-key range as it is scanned: the unary ``+``
            # keeps SQLite from turning the OR into probes of the reverse index (a user in a big team
            # would make that read every grant of the team).
            rels, names, kinds = only
            if rels and not names and not kinds:
                # Only whole relations (the filter's tupleset links when it has the user's own tuples
                # from the reverse index): one primary-key probe per object and relation.
                sql += f" AND relation IN ({', '.join('?' * len(rels))})"
                params += rels
                rows = self._db().execute(sql + " LIMIT ?", (*params, limit)).fetchall()
                if not any(row[3] for row in rows):
                    return rows
                return [(r[0], r[1], r[2], r[3], _sqlite_context(r[4])) if r[3] else r for r in rows]
            terms = []
            if rels:
                terms.append(f"+relation IN ({', '.join('?' * len(rels))})")
                params += rels
            if names:
                terms.append(_sqlite_users(names, params).replace("user_", "+user_"))
            for utype, urel in kinds:
                terms.append("(+user_type = ? AND +user_relation = ?)")
                params += [utype, urel]
            sql += " AND (" + " OR ".join(terms) + ")"
        rows = self._db().execute(sql + " LIMIT ?", (*params, limit)).fetchall()
        if not any(row[3] for row in rows):
            return rows
        return [(r[0], r[1], r[2], r[3], _sqlite_context(r[4])) if r[3] else r for r in rows]

    def relation_rows(
        self,
        store_id: str,
        object_type: str,
        object_id: str,
        relation: str,
        users: Sequence[str],
        kinds: list[tuple[str, str]],
        limit: int,
    ) -> list[TupleKey] | None:
        head = _SELECT_TUPLES.replace("relation = ? AND ", "relation = ? AND object_id = ? AND ")
        head_params = (store_id, object_type, relation, object_id)
        # The last column tells the parts apart: 0 for the users' probes, 1 for the kinds' ranges. Only
        # placeholders are formatted in; every value is a parameter.
        tagged = "SELECT *, {} FROM ({})"
        parts: list[str] = []
        params: list[Any] = []
        if users:
            sql, params = _sqlite_per_group(head, head_params, users)
            parts.append(tagged.format(0, sql))
        for utype, urel in kinds:
            # Each kind's range is bounded on its own, so one kind's thousands of sets stop at the limit.
            parts.append(tagged.format(1, head + " user_type = ? AND user_relation = ? LIMIT ?"))
            params += [*head_params, utype, urel, limit + 1]
        if not parts:
            return []
        rows = self._db().execute(" UNION ALL ".join(parts), params).fetchall()
        if sum(r[5] for r in rows) > limit:
            return None
        # A userset among ``users`` of one of the kinds comes from both parts: keep it once.
        unique = {r[2]: r[:5] for r in rows}
        return _sqlite_keys(list(unique.values()))

    def users_rows(
        self, store_id: str, object_type: str, relations: list[str], users: Sequence[str], limit: int
    ) -> list[ObjectRow]:
        rel_in = f"relation IN ({', '.join('?' * len(relations))})"
        conn = self._db()
        sql, params = _sqlite_per_group(
            _SELECT_USERS_ROWS.format(rel_in), (store_id, object_type, *relations), users
        )
        rows = conn.execute(sql + " LIMIT ?", (*params, limit)).fetchall()
        if not any(row[3] for row in rows):
            return rows
        # Tuples with a condition need their context, which only the table's rows hold.
        sql, params = _sqlite_per_group(
            _SELECT_USERS_ROWS_CONTEXT.format(rel_in), (store_id, object_type, *relations), users
        )
        rows = conn.execute(sql + " LIMIT ?", (*params, limit)).fetchall()
        return [(r[0], r[1], r[2], r[3], _sqlite_context(r[4])) if r[3] else r for r in rows]

    def scan_relation(
        self, store_id: str, object_type: str, relation: str, sets_only: bool, limit: int
    ) -> list[ObjectRow]:
        sql = _SELECT_SCAN_ROWS + (" AND (user_relation != '' OR user_id = '*')" if sets_only else "")
        conn = self._db()
        params = (store_id, object_type, relation, limit)
        rows = conn.execute(sql + " LIMIT ?", params).fetchall()
        if not any(row[3] for row in rows):
            return rows
        # Tuples with a condition need their context, which only the table's rows hold.
        rows = conn.execute(
            sql.replace("NULL FROM", _CONTEXT_COLUMN + " FROM") + " LIMIT ?", params
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], _sqlite_context(r[4])) if r[3] else r for r in rows]

    def changes_after(
        self, store_id: str, seq: int, limit: int, also: list[int]
    ) -> tuple[bool, int, list[ChangeRow]]:
        conn = self._db()
        alive, head = conn.execute(_SELECT_ALIVE_HEAD, (store_id, store_id)).fetchone()
        head = int(head or 0)
        if not limit or (head <= seq and not also):
            return bool(alive), head, []
        sql = _SELECT_CHANGES + "seq > ?"
        params: list[Any] = [store_id, seq]
        if also:
            sql = _SELECT_CHANGES + f"(seq > ? OR seq IN ({', '.join('?' * len(also))}))"
            params += also
        rows = conn.execute(sql + " ORDER BY seq LIMIT ?", (*params, limit)).fetchall()
        return (
            bool(alive),
            head,
            [(r[0], r[1], r[2], r[3], r[4], r[5] == 1, r[6] or None, _sqlite_context(r[7])) for r in rows],
        )

    def by_users(
        self, store_id: str, object_type: str, relation: str, users: Sequence[str]
    ) -> list[TupleKey]:
        head = (store_id, object_type, relation)
        conn = self._db()
        sql, params = _sqlite_per_group(_SELECT_BY_USERS, head, users)
        rows = conn.execute(sql, params).fetchall()
        if any(r[3] for r in rows):
            # Tuples with a condition need their context, which only the table's rows hold.
            sql, params = _sqlite_per_group(_SELECT_TUPLES, head, users)
            rows = conn.execute(sql, params).fetchall()
        return _sqlite_keys(rows)


def _sqlite_time(value: Any) -> datetime:
    # SQLAlchemy's DateTime on SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" (UTC, see UTCDateTime).
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
