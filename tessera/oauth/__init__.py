"""The OAuth 2.1 / OpenID Connect authorization server.

One module per concern, named after the specification it follows: ``clients`` (RFC 7591 metadata),
``resources`` (RFC 8707 APIs), ``pkce`` (RFC 7636), ``client_auth`` (RFC 6749 2.3, RFC 7523),
``grants/`` (RFC 6749 section 4 and 6, one file per grant), ``tokens`` (RFC 9068, OIDC Core 2),
``authorize`` (RFC 6749 4.1, OIDC Core 3.1.2), ``introspection`` (RFC 7662), ``revocation`` (RFC 7009),
``userinfo`` (OIDC Core 5.3), ``discovery`` (RFC 8414, OIDC Discovery). ``web`` is the HTTP adapter.
"""

from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
