"""Tessera: identity and authorization for AI agents."""

__version__ = "0.1.0"
