"""Tables of the FGA store (migrations ``fga_0001``, ``fga_0002``).

A tuple is kept split into its parts (object type and id, relation, user type, id and relation) so that each
lookup the resolver makes is a prefix of one index:

- by object and relation (``Check``'s direct and userset reads, ``Expand``, ``ListUsers``): the primary key
  ``(store_id, object_type, object_id, relation, user_type, user_id, user_relation)``;
- by user, for a given object type and relation (``ListObjects``'s reverse expansion and tuple-to-userset
  walks backwards): ``ix_fga_tuples_reverse``, which also holds ``condition_name`` so that SQLite answers
  these lookups from the index alone except for tuples with a condition;
- by user across relations and object types (``Read`` with only a user and a type):
  ``ix_fga_tuples_user``.

``user_relation`` is the empty string for plain users and wildcards (``user:*``), never NULL, so the primary
key is total on both databases. Changes are ordered by an integer sequence, not by a ULID, because ULIDs made
in the same millisecond by two writers do not sort by commit order.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from tessera.storage.schema import UTCDateTime, metadata

# Field limits from openfga/api (TupleKey: object 256, relation 50, user 512; type names 254).
TYPE_LEN = 254
OBJECT_ID_LEN = 256
RELATION_LEN = 50
USER_ID_LEN = 512
CONDITION_NAME_LEN = 256

# BIGINT on PostgreSQL, INTEGER (the rowid alias that autoincrements) on SQLite.
_Sequence = BigInteger().with_variant(Integer(), "sqlite")

fga_stores = Table(
    "fga_stores",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
)

fga_models = Table(
    "fga_models",
    metadata,
    # Write order: "latest model" is the last one written, even when two ULIDs share a millisecond.
    Column("seq", _Sequence, primary_key=True, autoincrement=True),
    Column("store_id", String(26), nullable=False),
    Column("id", String(26), nullable=False),
    Column("schema_version", String(16), nullable=False),
    # The model exactly as written (type_definitions, conditions), in OpenFGA's JSON shape.
    Column("model", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("store_id", "id", name="uq_fga_models_store_id_id"),
    Index("ix_fga_models_store_seq", "store_id", "seq"),
)

fga_tuples = Table(
    "fga_tuples",
    metadata,
    Column("store_id", String(26), nullable=False),
    Column("object_type", String(TYPE_LEN), nullable=False),
    Column("object_id", String(OBJECT_ID_LEN), nullable=False),
    Column("relation", String(RELATION_LEN), nullable=False),
    Column("user_type", String(TYPE_LEN), nullable=False),
    Column("user_id", String(USER_ID_LEN), nullable=False),
    Column("user_relation", String(RELATION_LEN), nullable=False),
    Column("condition_name", String(CONDITION_NAME_LEN)),
    Column("condition_context", JSON(none_as_null=True)),
    Column("inserted_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint(
        "store_id",
        "object_type",
        "object_id",
        "relation",
        "user_type",
        "user_id",
        "user_relation",
        name="pk_fga_tuples",
    ),
    Index(
        "ix_fga_tuples_reverse",
        "store_id",
        "object_type",
        "relation",
        "user_type",
        "user_id",
        "user_relation",
        "object_id",
        # So that a reverse lookup needs the table's row only for tuples with a condition (fga_0002).
        "condition_name",
    ),
    Index("ix_fga_tuples_user", "store_id", "user_type", "user_id", "user_relation", "object_type"),
    # SQLite: the table is its primary-key B-tree, so a point read is one index descent, not two.
    sqlite_with_rowid=False,
)

fga_changes = Table(
    "fga_changes",
    metadata,
    Column("seq", _Sequence, primary_key=True, autoincrement=True),
    Column("store_id", String(26), nullable=False),
    Column("object_type", String(TYPE_LEN), nullable=False),
    Column("object_id", String(OBJECT_ID_LEN), nullable=False),
    Column("relation", String(RELATION_LEN), nullable=False),
    Column("user", String(TYPE_LEN + USER_ID_LEN + RELATION_LEN + 2), nullable=False),
    # 0 = TUPLE_OPERATION_WRITE, 1 = TUPLE_OPERATION_DELETE (openfga.v1.TupleOperation).
    Column("operation", SmallInteger, nullable=False),
    Column("condition_name", String(CONDITION_NAME_LEN)),
    Column("condition_context", JSON(none_as_null=True)),
    Column("changed_at", UTCDateTime, nullable=False),
    Index("ix_fga_changes_store_seq", "store_id", "seq"),
    Index("ix_fga_changes_store_type_seq", "store_id", "object_type", "seq"),
)

fga_assertions = Table(
    "fga_assertions",
    metadata,
    Column("store_id", String(26), nullable=False),
    Column("model_id", String(26), nullable=False),
    # The assertions as written (openfga.v1.Assertion list), replaced as a whole by WriteAssertions.
    Column("assertions", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("store_id", "model_id", name="pk_fga_assertions"),
)
