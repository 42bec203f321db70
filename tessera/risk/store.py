"""Where profiles and global counts live.

``RiskStore`` is the narrow protocol the engine needs; ``MemoryStore`` keeps everything in-process (replays,
tests), ``tessera.risk.sql.SqlRiskStore`` uses the project's database (SQLite or PostgreSQL). ``ProfileCache``
is the bounded in-process cache in front of either.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Protocol

from tessera.risk.model.likelihood import Profile


class RiskStore(Protocol):
    async def load_profile(self, user_id: str) -> Profile | None: ...

    async def save_profile(self, profile: Profile) -> None:
        """Insert or replace; ``profile.version`` guards against a concurrent writer (Conflict)."""

    async def delete_profile(self, user_id: str) -> None: ...

    async def add_global_counts(self, family: str, deltas: dict[str, float]) -> None:
        """Add the deltas to the persisted global counters (atomic increments)."""

    async def global_counts(self, family: str) -> dict[str, float]: ...


class MemoryStore:
    """Profiles kept serialised, as a database would: what is measured per profile is what is stored."""

    def __init__(self) -> None:
        self._profiles: dict[str, tuple[int, str]] = {}
        self._globals: dict[str, dict[str, float]] = {}

    async def load_profile(self, user_id: str) -> Profile | None:
        found = self._profiles.get(user_id)
        if found is None:
            return None
        return Profile.from_json(user_id, json.loads(found[1]), version=found[0])

    async def save_profile(self, profile: Profile) -> None:
        from tessera.core.errors import Conflict

        current = self._profiles.get(profile.user_id)
        if current is not None and current[0] != profile.version:
            raise Conflict("risk profile changed concurrently")
        profile.version += 1
        self._profiles[profile.user_id] = (
            profile.version,
            json.dumps(profile.to_json(), separators=(",", ":")),
        )

    async def delete_profile(self, user_id: str) -> None:
        self._profiles.pop(user_id, None)

    async def add_global_counts(self, family: str, deltas: dict[str, float]) -> None:
        table = self._globals.setdefault(family, {})
        for path, delta in deltas.items():
            table[path] = table.get(path, 0.0) + delta

    async def global_counts(self, family: str) -> dict[str, float]:
        return dict(self._globals.get(family, {}))


class ProfileCache:
    """A bounded LRU of live profiles in front of the store (write-through on learning)."""

    def __init__(self, store: RiskStore, max_entries: int = 100_000) -> None:
        self.store = store
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Profile] = OrderedDict()

    async def get(self, user_id: str) -> Profile:
        profile = self._entries.get(user_id)
        if profile is not None:
            self._entries.move_to_end(user_id)
            return profile
        profile = await self.store.load_profile(user_id) or Profile(user_id)
        self._entries[user_id] = profile
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return profile

    async def save(self, profile: Profile) -> None:
        from tessera.core.errors import Conflict

        try:
            await self.store.save_profile(profile)
        except Conflict:
            # Another worker wrote first: drop our copy so the next read sees theirs.
            self._entries.pop(profile.user_id, None)
            raise

    def evict(self, user_id: str) -> None:
        self._entries.pop(user_id, None)

    def __len__(self) -> int:
        return len(self._entries)
