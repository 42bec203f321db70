"""fga: stores, authorization models, tuples, the changelog and assertions

Revision ID: fga_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from tessera.storage.schema import UTCDateTime

revision = "fga_0001"
down_revision = None
branch_labels = ("fga",)
depends_on = None

# Kept in step with tessera/fga/sql/schema.py (hand written: migrations never import live table objects).
_TYPE, _OBJECT_ID, _RELATION, _USER_ID, _CONDITION = 254, 256, 50, 512, 256
_Sequence = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "fga_stores",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("deleted_at", UTCDateTime),
    )
    op.create_table(
        "fga_models",
        sa.Column("seq", _Sequence, primary_key=True, autoincrement=True),
        sa.Column("store_id", sa.String(26), nullable=False),
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("schema_version", sa.String(16), nullable=False),
        sa.Column("model", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("store_id", "id", name="uq_fga_models_store_id_id"),
    )
    op.create_index("ix_fga_models_store_seq", "fga_models", ["store_id", "seq"])
    op.create_table(
        "fga_tuples",
        sa.Column("store_id", sa.String(26), nullable=False),
        sa.Column("object_type", sa.String(_TYPE), nullable=False),
        sa.Column("object_id", sa.String(_OBJECT_ID), nullable=False),
        sa.Column("relation", sa.String(_RELATION), nullable=False),
        sa.Column("user_type", sa.String(_TYPE), nullable=False),
        sa.Column("user_id", sa.String(_USER_ID), nullable=False),
        sa.Column("user_relation", sa.String(_RELATION), nullable=False),
        sa.Column("condition_name", sa.String(_CONDITION)),
        sa.Column("condition_context", sa.JSON),
        sa.Column("inserted_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint(
            "store_id",
            "object_type",
            "object_id",
            "relation",
            "user_type",
            "user_id",
            "user_relation",
            name="pk_fga_tuples",
        ),
        # SQLite: the table is its primary-key B-tree, so a point read is one index descent, not two.
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_fga_tuples_reverse",
        "fga_tuples",
        ["store_id", "object_type", "relation", "user_type", "user_id", "user_relation", "object_id"],
    )
    op.create_index(
        "ix_fga_tuples_user",
        "fga_tuples",
        ["store_id", "user_type", "user_id", "user_relation", "object_type"],
    )
    op.create_table(
        "fga_changes",
        sa.Column("seq", _Sequence, primary_key=True, autoincrement=True),
        sa.Column("store_id", sa.String(26), nullable=False),
        sa.Column("object_type", sa.String(_TYPE), nullable=False),
        sa.Column("object_id", sa.String(_OBJECT_ID), nullable=False),
        sa.Column("relation", sa.String(_RELATION), nullable=False),
        sa.Column("user", sa.String(_TYPE + _USER_ID + _RELATION + 2), nullable=False),
        sa.Column("operation", sa.SmallInteger, nullable=False),
        sa.Column("condition_name", sa.String(_CONDITION)),
        sa.Column("condition_context", sa.JSON),
        sa.Column("changed_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_fga_changes_store_seq", "fga_changes", ["store_id", "seq"])
    op.create_index("ix_fga_changes_store_type_seq", "fga_changes", ["store_id", "object_type", "seq"])
    op.create_table(
        "fga_assertions",
        sa.Column("store_id", sa.String(26), nullable=False),
        sa.Column("model_id", sa.String(26), nullable=False),
        sa.Column("assertions", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "model_id", name="pk_fga_assertions"),
    )


def downgrade() -> None:
    for table in ("fga_assertions", "fga_changes", "fga_tuples", "fga_models", "fga_stores"):
        op.drop_table(table)
