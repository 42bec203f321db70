"""risk: user profiles and global feature counts of the threat detection engine

Revision ID: risk_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "risk_0001"
down_revision = None
branch_labels = ("risk",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_profiles",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_risk_profiles"),
    )
    op.create_table(
        "risk_global_counts",
        sa.Column("family", sa.String(16), nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("count", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("family", "path", name="pk_risk_global_counts"),
    )


def downgrade() -> None:
    op.drop_table("risk_global_counts")
    op.drop_table("risk_profiles")
