"""Tessera SDK: what agent and app developers import.

It depends only on httpx and a JOSE library, never on the server's packages.
"""

__version__ = "0.1.0"
