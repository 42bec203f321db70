"""keys: the signing_keys table

Revision ID: keys_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from tessera.storage.schema import UTCDateTime

revision = "keys_0001"
down_revision = None
branch_labels = ("keys",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.JSON, nullable=False),
        sa.Column("private_key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("retired_at", UTCDateTime),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
