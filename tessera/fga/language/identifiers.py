"""Object, user and relation references as OpenFGA writes them in tuples and queries."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Object ids: letters, digits and `_ | * @ . + / -`, not starting with `*` (OpenFGA's shared object-id cases:
# no `#`, `:` or whitespace anywhere, so `type:id#relation` stays unambiguous).
_OBJECT_ID_RE = re.compile(r"[A-Za-z0-9_|@.+/\-][A-Za-z0-9_|*@.+/\-]*")
_TYPE_RE = re.compile(r"[^:#@*\s]{1,254}")
_RELATION_RE = re.compile(r"[^:#@*\s]{1,50}")


def is_valid_object_id(object_id: str) -> bool:
    return isinstance(object_id, str) and _OBJECT_ID_RE.fullmatch(object_id) is not None


def is_valid_type_name(name: str) -> bool:
    return isinstance(name, str) and _TYPE_RE.fullmatch(name) is not None and name not in ("self", "this")


def is_valid_relation_name(name: str) -> bool:
    return isinstance(name, str) and _RELATION_RE.fullmatch(name) is not None and name not in ("self", "this")


@dataclass(frozen=True)
class ObjectRef:
    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


@dataclass(frozen=True)
class UserRef:
    """``type:id``, ``type:*`` (wildcard) or ``type:id#relation`` (userset)."""

    type: str
    id: str
    relation: str | None = None

    @property
    def wildcard(self) -> bool:
        return self.id == "*"

    def __str__(self) -> str:
        return f"{self.type}:{self.id}" + (f"#{self.relation}" if self.relation else "")


def parse_object(text: str) -> ObjectRef | None:
    """``type:id`` or None when it is not one."""
    if not isinstance(text, str) or text.count(":") != 1:
        return None
    type_name, object_id = text.split(":")
    if not is_valid_type_name(type_name) or not is_valid_object_id(object_id):
        return None
    return ObjectRef(type_name, object_id)


def parse_user(text: str) -> UserRef | None:
    if not isinstance(text, str):
        return None
    relation: str | None = None
    body = text
    if "#" in text:
        body, relation = text.split("#", 1)
        if not is_valid_relation_name(relation):
            return None
    if body.count(":") != 1:
        return None
    type_name, object_id = body.split(":")
    if not is_valid_type_name(type_name):
        return None
    if object_id == "*":
        return None if relation else UserRef(type_name, "*")
    if not is_valid_object_id(object_id):
        return None
    return UserRef(type_name, object_id, relation)
