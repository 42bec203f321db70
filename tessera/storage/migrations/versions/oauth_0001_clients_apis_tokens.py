"""oauth: clients, APIs, codes, refresh tokens, revocations, used jtis, consents

Revision ID: oauth_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from tessera.storage.schema import UTCDateTime

revision = "oauth_0001"
down_revision = None
branch_labels = ("oauth",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(2048), primary_key=True),
        sa.Column("client_secret_hash", sa.String(64)),
        sa.Column("client_secret_expires_at", UTCDateTime),
        sa.Column("client_name", sa.String(512), nullable=False),
        sa.Column("is_public", sa.Boolean, nullable=False),
        sa.Column("first_party", sa.Boolean, nullable=False),
        sa.Column("token_endpoint_auth_method", sa.String(64), nullable=False),
        sa.Column("redirect_uris", sa.JSON, nullable=False),
        sa.Column("grant_types", sa.JSON, nullable=False),
        sa.Column("response_types", sa.JSON, nullable=False),
        sa.Column("scope", sa.String(4096)),
        sa.Column("jwks", sa.JSON),
        sa.Column("jwks_uri", sa.String(2048)),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("registration_access_token_hash", sa.String(64)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
    )
    op.create_table(
        "oauth_apis",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("identifier", sa.String(2048), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("access_token_ttl", sa.JSON),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("identifier", name="uq_oauth_apis_identifier"),
    )
    op.create_table(
        "oauth_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("grant_id", sa.String(26), nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64)),
        sa.Column("redirect_uri", sa.String(4096), nullable=False),
        sa.Column("scope", sa.String(4096), nullable=False),
        sa.Column("resources", sa.JSON, nullable=False),
        sa.Column("nonce", sa.String(512)),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("code_challenge_method", sa.String(16), nullable=False),
        sa.Column("auth_time", UTCDateTime, nullable=False),
        sa.Column("amr", sa.JSON),
        sa.Column("acr", sa.String(256)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("consumed_at", UTCDateTime),
    )
    op.create_table(
        "oauth_refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("grant_id", sa.String(26), nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("user_id", sa.String(64)),
        sa.Column("session_id", sa.String(64)),
        sa.Column("scope", sa.String(4096), nullable=False),
        sa.Column("resources", sa.JSON, nullable=False),
        sa.Column("auth_time", UTCDateTime),
        sa.Column("amr", sa.JSON),
        sa.Column("acr", sa.String(256)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("rotated_at", UTCDateTime),
        sa.Column("revoked_at", UTCDateTime),
    )
    op.create_index("ix_oauth_refresh_tokens_grant_id", "oauth_refresh_tokens", ["grant_id"])
    op.create_table(
        "oauth_revocations",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "oauth_used_jtis",
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("jti", sa.String(256), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti", name="pk_oauth_used_jtis"),
    )
    op.create_table(
        "oauth_consents",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("resources", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "client_id", name="pk_oauth_consents"),
    )


def downgrade() -> None:
    for table in (
        "oauth_consents",
        "oauth_used_jtis",
        "oauth_revocations",
        "oauth_refresh_tokens",
        "oauth_codes",
        "oauth_apis",
        "oauth_clients",
    ):
        op.drop_table(table)
