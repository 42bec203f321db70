"""HTTP adapter for ``/oidc/logout`` (OpenID RP-Initiated Logout 1.0; GET and POST, section 2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.background import BackgroundTask
from starlette.responses import Response

from tessera.core.errors import InvalidRequest
from tessera.oauth.logout import LOGOUT_PATH, LogoutError, LogoutRequest
from tessera.oauth.params import Params, parse_form
from tessera.web.csrf import CSRFError
from tessera.web.pages import client_ip

if TYPE_CHECKING:
    from tessera.services import Services

LOGOUT_CONFIRM_PURPOSE = "oidc-logout"
LOGOUT_PARAMS = (
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "logout_hint",
    "ui_locales",
)


def router(services: Services) -> APIRouter:
    from tessera.identity.web import clear_session_cookie, current_session

    routes = APIRouter(tags=["oauth"], include_in_schema=False)

    def finish(request: Request, logout: LogoutRequest, *, signed_out: bool) -> Response:
        location = logout.location() if signed_out else None
        response: Response
        if location is not None:
            response = RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})
        else:
            response = services.pages.render(
                "logout_done.html",
                {
                    "signed_out": signed_out,
                    "client_name": logout.client.client_name if logout.client else None,
                },
            )
        if signed_out:
            clear_session_cookie(response, services)
        return response

    async def confirm_page(request: Request, logout: LogoutRequest, params: Params, session: Any) -> Response:
        user = await services.users.get(session.user_id)
        scratch = Response()
        token = services.csrf.issue(request, scratch, LOGOUT_CONFIRM_PURPOSE)
        page = services.pages.render(
            "logout_confirm.html",
            {
                "client_name": logout.client.client_name if logout.client else None,
                "user_email": getattr(user, "email", ""),
                "params": [(n, v) for n, v in params.items() if n in LOGOUT_PARAMS],
                "csrf_token": token,
            },
        )
        for cookie in scratch.headers.getlist("set-cookie"):
            page.headers.append("set-cookie", cookie)
        return page

    async def logout(request: Request) -> Response:
        decision = None
        try:
            if request.method == "POST":
                form = parse_form(await request.body())
                decision = form.get("decision")
                if decision is not None:
                    services.csrf.verify(request, form.get("csrf_token"), LOGOUT_CONFIRM_PURPOSE)
                params = Params((n, v) for n, v in form.items() if n in LOGOUT_PARAMS)
            else:
                params = Params((n, v) for n, v in request.query_params.multi_items() if n in LOGOUT_PARAMS)
            logout_request = await services.oauth.logout.parse(params)
        except CSRFError as exc:
            return services.pages.error("This form expired", exc.description, code=exc.code, status_code=403)
        except InvalidRequest as exc:
            return services.pages.error("Invalid request", exc.description, code=exc.code)
        except LogoutError as exc:
            return services.pages.error(exc.title, exc.message, code="invalid_request")
        session = await current_session(request, services)
        if session is None:
            # Nobody to sign out; going back to the client is still what it asked for (section 3).
            return finish(request, logout_request, signed_out=True)
        if decision == "deny":
            return finish(request, logout_request, signed_out=False)
        if decision != "allow" and not logout_request.trusted_for(session):
            # Section 6: without proof that the client knows this session, the user confirms.
            return await confirm_page(request, logout_request, params, session)
        service = services.oauth.logout
        await service.end_session(
            session,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            client_id=logout_request.client.client_id if logout_request.client else None,
        )
        response = finish(request, logout_request, signed_out=True)
        # The logout tokens go out after the response, so the user does not wait on the clients.
        response.background = BackgroundTask(service.notify, session.id, session.user_id)
        return response

    routes.add_api_route(LOGOUT_PATH, logout, methods=["GET", "POST"])
    return routes
