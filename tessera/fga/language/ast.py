"""The parsed form of a DSL file, with the source position of every name the validator may point at."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Span:
    """A range on one line, 0-based, end exclusive (OpenFGA's ``line``/``column`` ranges)."""

    line: int
    start: int
    end: int
    file: str | None = None  # the module file, for modular models


@dataclass
class Name:
    text: str
    span: Span


@dataclass
class TypeRestriction:
    type: Name
    relation: Name | None = None
    wildcard: bool = False
    condition: Name | None = None
    span: Span | None = None  # `type`, `type:*` or `type#relation`

    @property
    def label(self) -> str:
        if self.wildcard:
            return f"{self.type.text}:*"
        if self.relation is not None:
            return f"{self.type.text}#{self.relation.text}"
        return self.type.text


@dataclass
class Rewrite:
    """One node of a relation definition: ``this``, ``computed``, ``ttu``, ``union``, ``intersection`` or
    ``difference`` (children ``[base, subtract]``)."""

    kind: str
    span: Span
    relation: Name | None = None  # computed: the relation; ttu: the computed relation
    tupleset: Name | None = None  # ttu: the tupleset relation
    children: list[Rewrite] = field(default_factory=list)
    restrictions: list[TypeRestriction] = field(default_factory=list)  # this


@dataclass
class RelationDef:
    name: Name
    rewrite: Rewrite
    restrictions: list[TypeRestriction]
    broken: bool = False  # parser recovery: a token was dropped at the end of the definition


@dataclass
class TypeDef:
    name: Name
    relations: list[RelationDef]
    extend: bool = False
    has_relations_block: bool = False
    broken: bool = False  # parser recovery: nothing may follow this type


@dataclass
class ConditionParam:
    name: Name
    type_name: str
    generic: str | None = None


@dataclass
class ConditionDef:
    name: Name
    params: list[ConditionParam]
    expression: str


@dataclass
class ModelFile:
    schema_version: str | None
    schema_span: Span | None
    module: Name | None
    types: list[TypeDef]
    conditions: list[ConditionDef]


@dataclass
class Positions:
    """Where each JSON node of a transformed model came from, keyed by the node's ``id()``.

    The validator walks the same JSON objects the transformer built, so it can point at the DSL text without
    searching for names in it (which is how a name that is a prefix of another would be mislocated).
    """

    nodes: dict[int, Any] = field(default_factory=dict)
    relation_names: dict[tuple[int, str], Span] = field(default_factory=dict)
    condition_names: dict[str, Span] = field(default_factory=dict)
    schema: Span | None = None

    def of(self, node: Any) -> Any:
        return self.nodes.get(id(node))
