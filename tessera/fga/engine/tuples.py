"""Tuple keys, object and user strings (OpenFGA's ``type:id``, ``type:*``, ``type:id#relation``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tessera.fga.engine.errors import invalid_tuple, validation

# openfga/api validation patterns (TupleKey.object, .relation, .user). Anchored with \Z, not $: Python's $
# also matches before a final newline, so "document:d2\n" was taken for document:d2 (Go's $ is \z).
_TYPE = r"[^:#@\s]{1,254}"
_OBJECT_RE = re.compile(rf"^({_TYPE}):([^#:\s]+)\Z")
_RELATION_RE = re.compile(r"^[^:#@\s]{1,50}\Z")
_USER_RE = re.compile(rf"^({_TYPE}):([^#:\s]+)(?:#([^:#@\s]{{1,50}}))?\Z")
MAX_OBJECT_LEN = 256
MAX_USER_LEN = 512


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__, about 1 us a tuple
# against 0.15 us, and Check builds one per row it reads (a tenth of a Check's time). Never assign to one:
# tuple keys are hashed (sets, dict keys) by their identity fields.
@dataclass(slots=True, unsafe_hash=True)
class TupleKey:
    """A relationship tuple. Identity is (object, relation, user): the condition does not take part."""

    object: str
    relation: str
    user: str
    condition_name: str | None = field(default=None, compare=False, hash=False)
    condition_context: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def object_type(self) -> str:
        return self.object.partition(":")[0]

    @property
    def object_id(self) -> str:
        return self.object.partition(":")[2]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"object": self.object, "relation": self.relation, "user": self.user}
        if self.condition_name:
            cond: dict[str, Any] = {"name": self.condition_name}
            if self.condition_context:
                cond["context"] = dict(self.condition_context)
            out["condition"] = cond
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TupleKey:
        cond = data.get("condition") or None
        return cls(
            object=str(data.get("object", "")),
            relation=str(data.get("relation", "")),
            user=str(data.get("user", "")),
            condition_name=(cond or {}).get("name") or None,
            condition_context=(cond or {}).get("context") or None,
        )

    def __str__(self) -> str:
        return f"{self.object}#{self.relation}@{self.user}"


@dataclass(frozen=True, slots=True)
class User:
    """A parsed user: an object (``user:jon``), a wildcard (``user:*``) or a userset (``group:x#member``)."""

    type: str
    id: str
    relation: str | None = None

    @property
    def wildcard(self) -> bool:
        return self.id == "*"

    @property
    def object(self) -> str:
        return f"{self.type}:{self.id}"

    def __str__(self) -> str:
        return f"{self.type}:{self.id}#{self.relation}" if self.relation else f"{self.type}:{self.id}"


def split_object(obj: str) -> tuple[str, str]:
    m = _OBJECT_RE.match(obj) if len(obj) <= MAX_OBJECT_LEN else None
    if not m:
        raise invalid_tuple(f"invalid 'object' field format: '{obj}'")
    return m.group(1), m.group(2)


def parse_user(user: str) -> User | None:
    """Parse a user string; None when it is malformed."""
    if len(user) > MAX_USER_LEN:
        return None
    m = _USER_RE.match(user)
    if not m:
        return None
    type_, id_, rel = m.group(1), m.group(2), m.group(3)
    if id_ == "*" and rel:
        return None  # "user:*#rel" is not a user
    if "*" in id_ and id_ != "*":
        return None
    return User(type_, id_, rel)


def parse_user_or_raise(user: str, *, what: str = "user") -> User:
    u = parse_user(user)
    if u is None:
        raise validation(f"invalid '{what}' field format: '{user}'")
    return u


def valid_relation_name(relation: str) -> bool:
    return bool(_RELATION_RE.match(relation))


def user_type_of(user: str) -> str:
    return user.partition(":")[0]
