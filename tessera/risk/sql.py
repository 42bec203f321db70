"""Profiles and global counters in the project's database (SQLite or PostgreSQL).

``risk_profiles`` holds one JSON document per user with a version for optimistic concurrency: two workers that
learn from the same user at once cannot silently overwrite each other (the loser gets ``Conflict`` and
reloads).
``risk_global_counts`` holds the global feature frequencies; workers add their deltas with one atomic
``INSERT ... ON CONFLICT DO UPDATE SET count = count + excluded.count``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Float,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from tessera.core.errors import Conflict
from tessera.risk.model.likelihood import Profile
from tessera.storage.database import Database
from tessera.storage.schema import UTCDateTime, metadata

MAX_PATH = 2048
MAX_USER_ID = 255

risk_profiles = Table(
    "risk_profiles",
    metadata,
    Column("user_id", String(MAX_USER_ID), nullable=False),
    Column("version", Integer, nullable=False),
    Column("data", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("user_id", name="pk_risk_profiles"),
)

risk_global_counts = Table(
    "risk_global_counts",
    metadata,
    Column("family", String(16), nullable=False),
    Column("path", String(MAX_PATH), nullable=False),
    Column("count", Float, nullable=False),
    PrimaryKeyConstraint("family", "path", name="pk_risk_global_counts"),
)


class SqlRiskStore:
    def __init__(self, db: Database, *, batch: int = 500) -> None:
        self.db = db
        self.batch = batch

    async def load_profile(self, user_id: str) -> Profile | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(risk_profiles.c.version, risk_profiles.c.data).where(
                        risk_profiles.c.user_id == user_id
                    )
                )
            ).first()
        if row is None:
            return None
        return Profile.from_json(user_id, json.loads(row.data), version=row.version)

    async def save_profile(self, profile: Profile) -> None:
        if len(profile.user_id) > MAX_USER_ID:
            raise Conflict("user id too long for a risk profile")
        data = json.dumps(profile.to_json(), separators=(",", ":"))
        now = datetime.now(UTC)
        async with self.db.transaction() as conn:
            if profile.version == 0:
                insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
                result = await conn.execute(
                    insert(risk_profiles)
                    .values(user_id=profile.user_id, version=1, data=data, updated_at=now)
                    .on_conflict_do_nothing(index_elements=["user_id"])
                )
            else:
                result = await conn.execute(
                    update(risk_profiles)
                    .where(
                        risk_profiles.c.user_id == profile.user_id, risk_profiles.c.version == profile.version
                    )
                    .values(version=profile.version + 1, data=data, updated_at=now)
                )
            if result.rowcount != 1:
                raise Conflict("risk profile changed concurrently")
        profile.version += 1

    async def delete_profile(self, user_id: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(delete(risk_profiles).where(risk_profiles.c.user_id == user_id))

    async def add_global_counts(self, family: str, deltas: dict[str, float]) -> None:
        insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        items = sorted(
            (path[:MAX_PATH], delta) for path, delta in deltas.items()
        )  # one lock order: no deadlocks
        async with self.db.transaction() as conn:
            for start in range(0, len(items), self.batch):
                chunk = items[start : start + self.batch]
                statement = insert(risk_global_counts).values(
                    [{"family": family, "path": path, "count": delta} for path, delta in chunk]
                )
                statement = statement.on_conflict_do_update(
                    index_elements=["family", "path"],
                    set_={"count": risk_global_counts.c.count + statement.excluded.count},
                )
                await conn.execute(statement)

    async def global_counts(self, family: str) -> dict[str, float]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(risk_global_counts.c.path, risk_global_counts.c.count).where(
                    risk_global_counts.c.family == family
                )
            )
            return {row.path: float(row[1]) for row in rows}
