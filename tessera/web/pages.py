"""HTML pages: Jinja2 with autoescaping always on.

Client names, binding messages and authorization details come from clients and agents: templates show them
as text (autoescape), never as markup. Pages work without JavaScript.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

WEB = Path(__file__).parent

# Pages must not be framed (clickjacking on consent) nor cached (they carry CSRF tokens and user data).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self' http: https:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Pages:
    """Renders templates from ``tessera/web/templates`` and any capability's ``templates`` folder."""

    def __init__(self, extra_dirs: list[Path] | None = None):
        loaders = [FileSystemLoader(str(path)) for path in (extra_dirs or [])]
        loaders.append(FileSystemLoader(str(WEB / "templates")))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(default=True, default_for_string=True),
            enable_async=False,
        )

    def render(
        self, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
    ) -> HTMLResponse:
        html = self.env.get_template(name).render(**(context or {}))
        return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)

    def error(
        self, title: str, message: str, *, code: str | None = None, status_code: int = 400
    ) -> HTMLResponse:
        return self.render(
            "error.html", {"title": title, "message": message, "code": code}, status_code=status_code
        )


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(WEB / "static")), name="static")


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None
