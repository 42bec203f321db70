"""fga: the reverse index also holds condition_name, so reverse lookups are answered from it alone

Revision ID: fga_0002
Revises: fga_0001
"""

from alembic import op

revision = "fga_0002"
down_revision = "fga_0001"
branch_labels = None
depends_on = None

_OLD = ["store_id", "object_type", "relation", "user_type", "user_id", "user_relation", "object_id"]


def upgrade() -> None:
    # The user-side walks (closures, ListObjects) read by user through this index. Without the condition
    # name, SQLite has to visit the table's row for every tuple found, one more B-tree descent each; with
    # it, only tuples that have a condition need their row (for its context).
    op.drop_index("ix_fga_tuples_reverse", table_name="fga_tuples")
    op.create_index("ix_fga_tuples_reverse", "fga_tuples", [*_OLD, "condition_name"])


def downgrade() -> None:
    op.drop_index("ix_fga_tuples_reverse", table_name="fga_tuples")
    op.create_index("ix_fga_tuples_reverse", "fga_tuples", _OLD)
