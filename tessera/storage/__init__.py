"""The storage adapter: one SQLAlchemy 2 async engine for SQLite or PostgreSQL, and migrations.

Each capability declares narrow store protocols in its own package and implements them with the tables it
adds to :data:`tessera.storage.schema.metadata`; this package only knows engines, transactions and Alembic.
"""
