"""audit: the audit_events table

Revision ID: audit_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from tessera.storage.schema import UTCDateTime

revision = "audit_0001"
down_revision = None
branch_labels = ("audit",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64)),
        sa.Column("client_id", sa.String(2048)),
        sa.Column("session_id", sa.String(64)),
        sa.Column("ip", sa.String(64)),
        sa.Column("user_agent", sa.String(1024)),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_events_user_time", "audit_events", ["user_id", "occurred_at"])
    op.create_index("ix_audit_events_type_time", "audit_events", ["type", "occurred_at"])
    op.create_index("ix_audit_events_ip_time", "audit_events", ["ip", "occurred_at"])


def downgrade() -> None:
    op.drop_table("audit_events")
