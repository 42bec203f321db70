"""oauth_extras: initial access tokens (RFC 7591 3) and back-channel logout participants

Revision ID: oauth_extras_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from tessera.storage.schema import UTCDateTime

revision = "oauth_extras_0001"
down_revision = None
branch_labels = ("oauth_extras",)
depends_on = None  # no foreign keys into the oauth branch


def upgrade() -> None:
    op.create_table(
        "oauth_initial_access_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("note", sa.String(512)),
        sa.Column("uses_left", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "oauth_logout_participants",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "client_id", name="pk_oauth_logout_participants"),
    )
    op.create_index("ix_oauth_logout_participants_expires_at", "oauth_logout_participants", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_oauth_logout_participants_expires_at", table_name="oauth_logout_participants")
    op.drop_table("oauth_logout_participants")
    op.drop_table("oauth_initial_access_tokens")
