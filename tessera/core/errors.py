"""One error hierarchy for all of Tessera.

Core code raises these; the HTTP adapters turn them into RFC 6749 section 5.2 error objects on OAuth endpoints
and into the documented ``{"code", "message"}`` shape on the other APIs.
"""

from __future__ import annotations


class TesseraError(Exception):
    """Base class. ``code`` is stable and machine-readable."""

    code: str = "server_error"
    status_code: int = 500

    def __init__(self, description: str = "", *, code: str | None = None, status_code: int | None = None):
        super().__init__(description or self.code)
        self.description = description
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code


class NotFound(TesseraError):
    code = "not_found"
    status_code = 404


class Conflict(TesseraError):
    code = "conflict"
    status_code = 409


class ValidationFailed(TesseraError):
    code = "validation_error"
    status_code = 400


class OAuthError(TesseraError):
    """An RFC 6749 error. ``code`` is the ``error`` value (section 5.2, 4.1.2.1)."""

    code = "invalid_request"
    status_code = 400

    def __init__(
        self,
        description: str = "",
        *,
        code: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(description, code=code, status_code=status_code)
        self.headers = headers or {}


class InvalidRequest(OAuthError):
    code = "invalid_request"


class InvalidClient(OAuthError):
    # RFC 6749 section 5.2: 401 when the client authenticated (or tried to) with a scheme.
    code = "invalid_client"
    status_code = 401


class InvalidGrant(OAuthError):
    code = "invalid_grant"


class UnauthorizedClient(OAuthError):
    code = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    code = "unsupported_grant_type"


class InvalidScope(OAuthError):
    code = "invalid_scope"


class InvalidTarget(OAuthError):
    # RFC 8707 section 2.
    code = "invalid_target"


class AccessDenied(OAuthError):
    code = "access_denied"
    status_code = 403


class InvalidToken(OAuthError):
    # RFC 6750 section 3.1.
    code = "invalid_token"
    status_code = 401


class InsufficientScope(OAuthError):
    code = "insufficient_scope"
    status_code = 403


class TooManyRequests(TesseraError):
    code = "too_many_requests"
    status_code = 429
