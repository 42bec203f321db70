"""Turn core errors into HTTP responses.

OAuth endpoints answer RFC 6749 section 5.2 objects (``error``, ``error_description``); every other API
answers ``{"code": ..., "message": ...}``. Which shape applies is decided by the error's class.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tessera.core.errors import OAuthError, TesseraError

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error_response(exc: OAuthError) -> JSONResponse:
    body = {"error": exc.code}
    if exc.description:
        body["error_description"] = exc.description
    headers = dict(NO_STORE)
    headers.update(exc.headers)
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def api_error_response(exc: TesseraError) -> JSONResponse:
    return JSONResponse(
        {"code": exc.code, "message": exc.description or exc.code}, status_code=exc.status_code
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(OAuthError)
    async def _oauth(_request: Request, exc: OAuthError) -> JSONResponse:
        return oauth_error_response(exc)

    @app.exception_handler(TesseraError)
    async def _tessera(_request: Request, exc: TesseraError) -> JSONResponse:
        return api_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"location": list(err.get("loc", ())), "message": err.get("msg", "")} for err in exc.errors()
        ]
        return JSONResponse(
            {"code": "validation_error", "message": "the request is not valid", "details": details},
            status_code=400,
        )
