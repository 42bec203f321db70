"""Alembic environment: migrations always run on a connection that Tessera hands in."""

from __future__ import annotations

from alembic import context

from tessera.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI by hand
    raise RuntimeError("run migrations with `tessera db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table rebuilds for ALTER
)
with context.begin_transaction():
    context.run_migrations()
