"""The login and logout pages, and how other capabilities find the signed-in user.

``GET /login`` shows the form (or, to a signed-in user, sends them on to ``return_to``); ``POST /login``
checks CSRF, rate limits, the password, then starts a new session and redirects (303) to ``return_to``.
``GET /logout`` asks for confirmation; ``POST /logout`` ends the session (a GET never signs anyone out, so an
``<img src=/logout>`` on another site cannot).

The OAuth authorization endpoint sends a browser to ``login_url(return_to=<its own URL>)`` and reads the
session back with ``current_session(request, services)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData
from starlette.responses import Response

from tessera.audit import AuditEvent, EventType
from tessera.core.errors import ValidationFailed
from tessera.core.ratelimit import RateDecision
from tessera.identity.sessions import MAX_COOKIE_LENGTH, LoginSession
from tessera.identity.users import MAX_EMAIL_LENGTH, MAX_PASSWORD_LENGTH, normalize_email
from tessera.web.csrf import CSRFError
from tessera.web.pages import client_ip

if TYPE_CHECKING:
    from tessera.services import Services

SESSION_COOKIE = "tessera_session"
LOGIN_PURPOSE = "login"
LOGOUT_PURPOSE = "logout"
MAX_RETURN_TO = 4096
# Where a sign-in without return_to lands: /login itself shows "signed in as ..." with a sign-out button.
DEFAULT_AFTER_LOGIN = "/login"


def safe_return_to(value: Any) -> str | None:
    """``value`` when it is a path on this server, else None (open-redirect protection).

    Only ``/``-rooted relative references pass: no scheme, no authority (``//host``), no backslash
    (browsers read ``/\\host`` as ``//host``), and no control characters or spaces (the WHATWG URL parser
    strips tabs and newlines, so ``/<TAB>/host`` would become ``//host``).
    """
    if not isinstance(value, str) or not value or len(value) > MAX_RETURN_TO:
        return None
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def login_url(return_to: str, *, force: bool = False, login_hint: str | None = None) -> str:
    """``/login?return_to=...``; ``force`` shows the form even to a signed-in user (OIDC ``prompt=login``,
    ``max_age``): signing in then replaces the session with one whose ``auth_time`` is now."""
    query: dict[str, str] = {"return_to": return_to}
    if force:
        query["force"] = "1"
    if login_hint:
        query["login_hint"] = login_hint
    return "/login?" + urlencode(query)


async def current_session(request: Request, services: Services) -> LoginSession | None:
    """The live login session named by the ``tessera_session`` cookie, or None."""
    value = request.cookies.get(SESSION_COOKIE)
    if not value or len(value) > MAX_COOKIE_LENGTH:
        return None
    return await services.sessions.get_by_cookie(value)


def set_session_cookie(response: Response, value: str, services: Services) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=services.settings.session_ttl,
        httponly=True,
        samesite="lax",
        secure=services.settings.secure_cookies,
        path="/",
    )


def clear_session_cookie(response: Response, services: Services) -> None:
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="lax", secure=services.settings.secure_cookies, path="/"
    )


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _flag(value: Any) -> bool:
    return isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def _minutes(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return "a minute" if minutes == 1 else f"{minutes} minutes"


def router(services: Services) -> APIRouter:
    routes = APIRouter(tags=["identity"], include_in_schema=False)
    settings = services.settings

    def render_form(
        request: Request, template: str, purpose: str, context: dict[str, Any], *, status_code: int = 200
    ) -> HTMLResponse:
        # The CSRF cookie (when new) is set on a scratch response, then copied: the token must exist before
        # the page that carries it is rendered.
        scratch = Response()
        token = services.csrf.issue(request, scratch, purpose)
        page = services.pages.render(template, {**context, "csrf_token": token}, status_code=status_code)
        for cookie in scratch.headers.getlist("set-cookie"):
            page.headers.append("set-cookie", cookie)
        return page

    def login_page(
        request: Request,
        *,
        email: str = "",
        return_to: str | None,
        force: bool,
        error: str | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        return render_form(
            request,
            "login.html",
            LOGIN_PURPOSE,
            {
                "email": email[:MAX_EMAIL_LENGTH],
                "return_to": return_to or "",
                "force": force,
                "error": error,
                "max_email": MAX_EMAIL_LENGTH,
                "max_password": MAX_PASSWORD_LENGTH,
            },
            status_code=status_code,
        )

    def blocked_page(decision: RateDecision) -> HTMLResponse:
        page = services.pages.render(
            "login_blocked.html", {"wait": _minutes(decision.retry_after)}, status_code=429
        )
        page.headers["Retry-After"] = str(decision.retry_after)
        return page

    def csrf_page() -> HTMLResponse:
        return services.pages.error(
            "This form has expired",
            "The form was not sent from this site, or it expired. Go back, reload the page and try again.",
            code=CSRFError.code,
            status_code=403,
        )

    def audit_context(request: Request) -> dict[str, Any]:
        return {"ip": client_ip(request), "user_agent": request.headers.get("user-agent")}

    @routes.get("/login", response_model=None)
    async def login_form(request: Request) -> Response:
        params = request.query_params
        return_to = safe_return_to(params.get("return_to"))
        force = _flag(params.get("force"))
        session = await current_session(request, services)
        if session is not None and not force:
            if return_to:
                return _redirect(return_to)
            user = await services.users.get(session.user_id)
            return render_form(
                request,
                "signed_in.html",
                LOGOUT_PURPOSE,
                {"user": user, "session": session},
            )
        return login_page(request, email=params.get("login_hint") or "", return_to=return_to, force=force)

    @routes.post("/login", response_model=None)
    async def login_submit(request: Request) -> Response:
        form = await request.form()
        try:
            services.csrf.verify(request, _field(form, "csrf_token"), LOGIN_PURPOSE)
        except CSRFError:
            return csrf_page()
        return_to = safe_return_to(_field(form, "return_to"))
        force = _flag(_field(form, "force"))
        email = _field(form, "email").strip()
        password = _field(form, "password")
        context = audit_context(request)

        if not email or not password:
            return login_page(
                request,
                email=email,
                return_to=return_to,
                force=force,
                error="Enter your email and password.",
                status_code=400,
            )
        if len(email) > MAX_EMAIL_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
            return login_page(
                request,
                return_to=return_to,
                force=force,
                error="That email or password is too long.",
                status_code=400,
            )

        ip = context["ip"] or "unknown"
        try:
            identifier = normalize_email(email)
        except ValidationFailed:  # not an address: still counted, under its raw spelling
            identifier = email.lower()
        ip_decision = await services.rate_limiter.hit(
            f"login:ip:{ip}",
            limit=settings.login_max_attempts_per_ip,
            window_seconds=settings.login_ip_window,
        )
        identifier_key = f"login:id:{identifier}|{ip}"
        if ip_decision.allowed:
            id_decision = await services.rate_limiter.hit(
                identifier_key,
                limit=settings.login_max_failures,
                window_seconds=settings.login_failure_window,
            )
        else:
            id_decision = ip_decision
        if not id_decision.allowed:
            which = "ip" if not ip_decision.allowed else "identifier_ip"
            services.metrics.logins.labels(outcome="rate_limited").inc()
            await services.audit.record(
                AuditEvent(
                    EventType.RATE_LIMITED,
                    details={
                        "endpoint": "login",
                        "limit": which,
                        "identifier": identifier[:MAX_EMAIL_LENGTH],
                        "retry_after": id_decision.retry_after,
                    },
                    **context,
                )
            )
            return blocked_page(id_decision)

        user = await services.users.verify_password(email, password)
        if user is None:
            services.metrics.logins.labels(outcome="failed").inc()
            target = await services.users.find_by_email(email)
            await services.audit.record(
                AuditEvent(
                    EventType.LOGIN_FAILED,
                    user_id=target.id if target else None,
                    details={"reason": "invalid_credentials", "identifier": identifier[:MAX_EMAIL_LENGTH]},
                    **context,
                )
            )
            # One message for unknown email, wrong password and disabled account: no account enumeration.
            return login_page(
                request,
                email=email,
                return_to=return_to,
                force=force,
                error="The email or password is incorrect.",
                status_code=400,
            )

        # A successful sign-in always starts a new session (no session fixation); the old one ends.
        previous = await current_session(request, services)
        if previous is not None:
            await services.sessions.end(previous.id, "replaced")
        await services.rate_limiter.reset(identifier_key, window_seconds=settings.login_failure_window)
        session, cookie = await services.sessions.create(
            user.id, ["pwd"], context["ip"], context["user_agent"]
        )
        services.metrics.logins.labels(outcome="succeeded").inc()
        await services.audit.record(
            AuditEvent(
                EventType.LOGIN_SUCCEEDED,
                user_id=user.id,
                session_id=session.id,
                details={"amr": session.amr, "replaced_session": previous.id if previous else None},
                **context,
            )
        )
        response = _redirect(return_to or DEFAULT_AFTER_LOGIN)
        set_session_cookie(response, cookie, services)
        return response

    @routes.get("/logout", response_model=None)
    async def logout_form(request: Request) -> Response:
        return_to = safe_return_to(request.query_params.get("return_to"))
        session = await current_session(request, services)
        if session is None:
            return services.pages.render("signed_out.html", {"return_to": return_to})
        user = await services.users.get(session.user_id)
        return render_form(
            request, "logout.html", LOGOUT_PURPOSE, {"user": user, "return_to": return_to or ""}
        )

    @routes.post("/logout", response_model=None)
    async def logout_submit(request: Request) -> Response:
        form = await request.form()
        try:
            services.csrf.verify(request, _field(form, "csrf_token"), LOGOUT_PURPOSE)
        except CSRFError:
            return csrf_page()
        return_to = safe_return_to(_field(form, "return_to"))
        session = await current_session(request, services)
        if session is not None:
            async with services.db.transaction() as conn:  # the ending and its audit event commit together
                if await services.sessions.end(session.id, "logout", conn=conn):
                    await services.audit.record(
                        AuditEvent(
                            EventType.LOGOUT,
                            user_id=session.user_id,
                            session_id=session.id,
                            details={"reason": "logout"},
                            **audit_context(request),
                        ),
                        conn=conn,
                    )
        response: Response
        if return_to:
            response = _redirect(return_to)
        else:
            response = services.pages.render("signed_out.html", {"return_to": None})
        clear_session_cookie(response, services)
        return response

    return routes


__all__ = [
    "SESSION_COOKIE",
    "clear_session_cookie",
    "current_session",
    "login_url",
    "router",
    "safe_return_to",
    "set_session_cookie",
]
