"""The relationship engine's SQL storage: stores, authorization models, tuples, the changelog and assertions
in SQLite or PostgreSQL, through the project's ``Database``."""
