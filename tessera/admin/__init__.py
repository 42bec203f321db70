"""The management API under /api/v1: users, clients, sessions, keys and the audit log.

It is an API like any other: identifier ``<issuer>/api/v1``, protected by Tessera's own access tokens,
one scope per resource and verb (``users:read``, ``users:write``, ...).
"""

from tessera.admin.operations import MANAGEMENT_SCOPES, management_api_identifier

__all__ = ["MANAGEMENT_SCOPES", "management_api_identifier"]
