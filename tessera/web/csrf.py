"""CSRF protection for HTML forms (login, consent, approvals).

A random value lives in an HttpOnly, SameSite=Lax cookie; each form carries an HMAC of that value and the
form's purpose, keyed by a secret derived from the master key (so every process of one deployment agrees).
A forged cross-site POST cannot read the cookie, so it cannot produce the matching field. Checked in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request
from starlette.responses import Response

from tessera.core.errors import TesseraError

COOKIE = "tessera_csrf"
FIELD = "csrf_token"


class CSRFError(TesseraError):
    code = "csrf_failed"
    status_code = 403


class CSRF:
    def __init__(self, key: bytes, *, secure_cookies: bool):
        self._key = key
        self._secure = secure_cookies

    def _mac(self, cookie_value: str, purpose: str) -> str:
        return hmac.new(self._key, f"{purpose}\x00{cookie_value}".encode(), hashlib.sha256).hexdigest()

    def issue(self, request: Request, response: Response, purpose: str) -> str:
        """The token to put in the form's hidden ``csrf_token`` field; sets the cookie when missing."""
        cookie_value = request.cookies.get(COOKIE)
        if not cookie_value or len(cookie_value) > 128:
            cookie_value = secrets.token_urlsafe(32)
            response.set_cookie(
                COOKIE, cookie_value, httponly=True, samesite="lax", secure=self._secure, path="/"
            )
            # The same request may render a second form before the cookie round-trips.
            request.cookies[COOKIE] = cookie_value
        return self._mac(cookie_value, purpose)

    def verify(self, request: Request, submitted: str | None, purpose: str) -> None:
        cookie_value = request.cookies.get(COOKIE)
        if not cookie_value or not submitted:
            raise CSRFError("the form expired or was not sent from this site; reload the page and try again")
        if not hmac.compare_digest(self._mac(cookie_value, purpose), submitted):
            raise CSRFError("the form expired or was not sent from this site; reload the page and try again")
