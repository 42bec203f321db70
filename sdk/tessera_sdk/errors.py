"""Errors the SDK raises."""

from __future__ import annotations


class TesseraSDKError(Exception):
    """Base class."""


class OAuthResponseError(TesseraSDKError):
    """The server answered with an RFC 6749 error object."""

    def __init__(self, status_code: int, error: str, description: str | None = None):
        super().__init__(f"{error}: {description}" if description else error)
        self.status_code = status_code
        self.error = error
        self.description = description


class TokenVerificationError(TesseraSDKError):
    """An access token is not valid for this resource (bad signature, wrong audience, expired, ...)."""
