"""``tessera serve`` (the production start) and ``tessera dev`` (a seeded local server).

Both run uvicorn with ``tessera.web.app:create_app`` as a factory, so ``--workers N`` starts N processes that
each build their own app. Settings reach those processes through the environment: the command resolves its
flags into ``Settings`` and exports them as ``TESSERA_*`` variables before uvicorn starts the workers, which
read them back with ``Settings()``. Migrations (and, for the embedded database, the master key file) are
done once in the parent, before any worker starts, so workers never race each other over them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from tessera.cli.common import load_settings, run_with_services
from tessera.cli.tls import DevTLS, ensure_dev_tls
from tessera.services import Services
from tessera.settings import Settings

APP_FACTORY = "tessera.web.app:create_app"
DEMO_EMAIL = "demo@example.com"
DEMO_SECRETS_FILE = "demo-secrets.json"
WORKER_HEALTHCHECK_SECONDS = 30

# The settings a command may hand to its workers: every field the flags can set, and what dev derives.
EXPORTED_FIELDS = (
    "host",
    "port",
    "workers",
    "database_url",
    "issuer",
    "redis_url",
    "data_dir",
    "master_key_file",
    "tls_cert",
    "tls_key",
    "auto_migrate",
    "log_level",
    "freeze_heap",
)


def export_settings(settings: Settings, *, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Write ``settings`` into ``TESSERA_*`` variables (of ``os.environ`` by default) for worker processes."""
    target = os.environ if environ is None else environ
    written: dict[str, str] = {}
    for name in EXPORTED_FIELDS:
        value = getattr(settings, name)
        if value is None:
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        written[f"TESSERA_{name.upper()}"] = text
    target.update(written)
    return written


def _default_issuer(host: str, port: int, *, tls: bool) -> str:
    shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104 (comparing, not binding)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"{'https' if tls else 'http'}://{shown}:{port}"


async def _prepare(services: Services) -> None:
    # The embedded setup creates its master key file here, once, rather than in N workers at the same time;
    # a deployment without a key fails now, with a clear message, instead of in every worker.
    _ = services.sealer


def _run_uvicorn(settings: Settings, *, forwarded_allow_ips: str | None = None) -> None:
    import uvicorn

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        log_level=settings.log_level.lower(),
        # uvicorn formats each access line's arguments before the logger's level check: below info they
        # would never print, so the access log is off rather than paid for on every request.
        access_log=settings.log_level.lower() in ("trace", "debug", "info"),
        server_header=False,
        # X-Forwarded-For/-Proto are believed only from these proxies: client IPs drive the rate limits and
        # the audit log, so a client must not be able to choose its own.
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips or "127.0.0.1",
        # uvicorn replaces a worker that does not answer its supervisor within this time; starting a worker
        # (a fresh interpreter importing the app) takes longer than uvicorn's 5 s default on a busy host.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )


# `tessera serve` and `tessera dev` take the same certificate flags (interfaces.md).
TlsCertOption = typer.Option(
    None,
    "--tls-cert",
    envvar="TESSERA_TLS_CERT",
    exists=True,
    dir_okay=False,
    help="Serve https with this PEM certificate chain (with --tls-key).",
)
TlsKeyOption = typer.Option(
    None, "--tls-key", envvar="TESSERA_TLS_KEY", exists=True, dir_okay=False, help="PEM private key."
)


def _require_tls_pair(tls_cert: Path | None, tls_key: Path | None) -> None:
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("--tls-cert and --tls-key go together")


def serve_command(
    host: str | None = typer.Option(None, "--host", envvar="TESSERA_HOST", help="Address to listen on."),
    port: int | None = typer.Option(None, "--port", envvar="TESSERA_PORT", help="Port to listen on."),
    workers: int | None = typer.Option(
        None, "--workers", envvar="TESSERA_WORKERS", min=1, help="Worker processes (share one database)."
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        envvar="TESSERA_DATABASE_URL",
        help="sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db",
    ),
    issuer: str | None = typer.Option(
        None,
        "--issuer",
        envvar="TESSERA_ISSUER",
        help="The public URL clients reach (default: from host/port).",
    ),
    redis_url: str | None = typer.Option(
        None, "--redis-url", envvar="TESSERA_REDIS_URL", help="redis://host:6379/0 for shared fast state."
    ),
    tls_cert: Path | None = TlsCertOption,
    tls_key: Path | None = TlsKeyOption,
    migrate: bool = typer.Option(
        True,
        "--migrate/--no-migrate",
        # TESSERA_<NAME> for every flag (interfaces.md); TESSERA_AUTO_MIGRATE, the setting's own name, too.
        envvar=["TESSERA_MIGRATE", "TESSERA_AUTO_MIGRATE"],
        help="Apply pending migrations before serving (default) or not.",
    ),
    log_level: str | None = typer.Option(
        None, "--log-level", envvar="TESSERA_LOG_LEVEL", help="info, debug..."
    ),
    forwarded_allow_ips: str | None = typer.Option(
        None,
        "--forwarded-allow-ips",
        envvar="TESSERA_FORWARDED_ALLOW_IPS",
        help="Comma-separated proxy addresses whose X-Forwarded-For is trusted (default 127.0.0.1).",
    ),
) -> None:
    """Run the server (production start). Every flag can also be set as TESSERA_<NAME>."""
    _require_tls_pair(tls_cert, tls_key)
    settings = load_settings(
        host=host,
        port=port,
        workers=workers,
        database_url=database_url,
        issuer=issuer,
        redis_url=redis_url,
        tls_cert=tls_cert,
        tls_key=tls_key,
        log_level=log_level,
    )
    if "issuer" not in settings.model_fields_set:
        settings.issuer = _default_issuer(settings.host, settings.port, tls=settings.tls_cert is not None)
    run_with_services(settings, _prepare, migrate=migrate)
    # Migrations ran here (or were declined): workers must not run them again, concurrently.
    settings.auto_migrate = False
    settings.freeze_heap = True  # a server process: see Settings.freeze_heap
    export_settings(settings)
    typer.echo(f"tessera serving {settings.issuer} ({settings.workers} worker(s))", err=True)
    _run_uvicorn(settings, forwarded_allow_ips=forwarded_allow_ips)


# --- tessera dev ---


def remember_secret(services: Services, name: str) -> tuple[str, bool]:
    """A random secret for the demo data, generated once and kept in ``.tessera/demo-secrets.json`` (0600),
    so that every start of ``tessera dev`` prints the same credentials. Returns it and whether it is new."""
    from tessera.core.ids import new_secret

    path = services.settings.data_dir / DEMO_SECRETS_FILE
    stored: dict[str, str] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except ValueError:
            stored = {}
    if isinstance(stored.get(name), str):
        return stored[name], False
    stored[name] = new_secret(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(stored, handle, indent=2)
    return stored[name], True


async def seed_demo(services: Services) -> dict[str, dict[str, str]]:
    """Create (or refresh) the demo data and return what a newcomer needs to know, one section per item.

    Idempotent: run it on every start. Each section is printed as a titled block by ``tessera dev``; add a
    section for each new kind of demo data (clients, APIs, the FGA store, upstream connections).
    """
    password, _ = remember_secret(services, "demo_user_password")
    user = await services.users.find_by_email(DEMO_EMAIL)
    if user is None:
        user = await services.users.create(DEMO_EMAIL, password, name="Demo User", email_verified=True)
    elif await services.users.verify_password(DEMO_EMAIL, password) is None:
        # The secrets file was lost or the password changed: make the printed one true again.
        await services.users.set_password(user.id, password)
        await services.users.set_disabled(user.id, False)
    seeded: dict[str, dict[str, str]] = {
        "Demo user": {"email": user.email, "password": password, "user_id": user.id}
    }
    seeded.update(await seed_demo_oauth(services))
    from tessera.fga.http import seed_demo_store

    seeded["Demo FGA store (OpenFGA API)"] = await seed_demo_store(services)
    return seeded


DEMO_API_SCOPES = {"demo:read": "Read the demo API", "demo:write": "Change things through the demo API"}
DEMO_API = "urn:tessera:demo-api"  # RFC 8707 resource: any absolute URI
DEMO_AGENT_ID = "demo-agent"
DEMO_APP_ID = "demo-app"


async def _ensure_demo_client(
    services: Services, client_id: str, secret: str | None, **metadata: Any
) -> None:
    """Create the client with this id, or bring its secret and settings back to what is printed."""
    from dataclasses import replace

    from tessera.audit.log import AuditEvent, EventType
    from tessera.core.ids import sha256_hex

    store = services.oauth.client_store
    made = services.oauth.build_client(client_id=client_id, source="dev", **metadata)
    wanted = replace(made.client, client_secret_hash=sha256_hex(secret) if secret else None)
    existing = await store.get(client_id)
    async with services.db.transaction() as conn:
        if existing is None:
            await store.insert(wanted, conn=conn)
            await services.audit.record(
                AuditEvent(EventType.CLIENT_CREATED, client_id=client_id, details={"source": "dev"}),
                conn=conn,
            )
        else:
            await store.update(replace(wanted, created_at=existing.created_at), conn=conn)
    services.oauth.clients.forget(client_id)


async def seed_demo_oauth(services: Services) -> dict[str, dict[str, str]]:
    """A demo API, a confidential agent client and a public app client (see tessera/oauth/README.md)."""
    from tessera.admin import operations

    issuer = services.settings.issuer
    api = DEMO_API
    await operations.ensure_api(services, api, scopes=DEMO_API_SCOPES, name="Demo API")
    agent_secret, _ = remember_secret(services, "demo_agent_client_secret")
    user_scopes = "openid profile email offline_access demo:read demo:write"
    await _ensure_demo_client(
        services,
        DEMO_AGENT_ID,
        agent_secret,
        client_name="Demo agent",
        redirect_uris=["http://127.0.0.1:8765/callback"],
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        scope=f"{user_scopes} fga:read fga:write fga:admin",
    )
    await _ensure_demo_client(
        services,
        DEMO_APP_ID,
        None,
        client_name="Demo app",
        is_public=True,
        # RFC 8252 section 7.3: a native app's loopback redirect may use any port.
        redirect_uris=["http://127.0.0.1/callback"],
        grant_types=["authorization_code", "refresh_token"],
        scope=user_scopes,
    )
    token_curl = (
        f"curl -s -u {DEMO_AGENT_ID}:{agent_secret} -d grant_type=client_credentials "
        f"-d resource={api} -d scope=demo:read {issuer}/oauth/token"
    )
    return {
        "Demo API": {"identifier": api, "scopes": " ".join(DEMO_API_SCOPES)},
        "Demo agent (confidential client)": {
            "client_id": DEMO_AGENT_ID,
            "client_secret": agent_secret,
            "redirect_uri": "http://127.0.0.1:8765/callback",
            "try": token_curl,
        },
        "Demo app (public client, PKCE)": {
            "client_id": DEMO_APP_ID,
            "redirect_uri": "http://127.0.0.1:<any port>/callback",
        },
    }


def dev_summary(settings: Settings, seeded: dict[str, dict[str, str]], tls: DevTLS | None) -> dict[str, Any]:
    issuer = settings.issuer
    summary: dict[str, Any] = {
        "Tessera development server": {
            "issuer": issuer,
            "login page": f"{issuer}/login",
            "discovery": f"{issuer}/.well-known/openid-configuration",
            "JWKS": f"{issuer}/.well-known/jwks.json",
            "API docs": f"{issuer}/docs",
            "health": f"{issuer}/healthz",
        }
    }
    summary.update(seeded)
    if tls is not None:
        ca = str(tls.ca_file.resolve())
        summary["TLS"] = {
            "CA file (trust this)": ca,
            "shell": f"export SSL_CERT_FILE={ca} REQUESTS_CA_BUNDLE={ca}",
        }
    elif settings.tls_cert is not None:
        summary["TLS"] = {"certificate": str(settings.tls_cert.resolve())}
    summary["Data"] = {
        "directory": f"{settings.data_dir.resolve()} (delete it to start over)",
        "database": settings.database_url,
    }
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    for title, section in summary.items():
        typer.secho(title, bold=True)
        width = max((len(key) for key in section), default=0)
        for key, value in section.items():
            typer.echo(f"  {key.ljust(width)}  {value}")
        typer.echo("")


def dev_command(
    port: int = typer.Option(8000, "--port", envvar="TESSERA_PORT", help="Port on 127.0.0.1."),
    tls: bool = typer.Option(
        False, "--tls", help="Serve https with a local CA (made once, under .tessera/tls)."
    ),
    tls_cert: Path | None = TlsCertOption,
    tls_key: Path | None = TlsKeyOption,
    data_dir: Path = typer.Option(
        Path(".tessera"), "--data-dir", envvar="TESSERA_DATA_DIR", help="Where the embedded data lives."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON before serving."),
) -> None:
    """Run a development server: embedded SQLite under .tessera/, seeded with demo data."""
    _require_tls_pair(tls_cert, tls_key)
    if tls and tls_cert is not None:
        raise typer.BadParameter("--tls makes its own certificate; give it or --tls-cert/--tls-key, not both")
    data_dir.mkdir(parents=True, exist_ok=True)
    dev_tls = ensure_dev_tls(data_dir / "tls") if tls else None
    cert_file = dev_tls.cert_file if dev_tls else tls_cert
    key_file = dev_tls.key_file if dev_tls else tls_key
    host = "127.0.0.1"
    settings = Settings(
        host=host,
        port=port,
        workers=1,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'tessera.db'}",
        data_dir=data_dir,
        master_key_file=data_dir / "master.key",
        issuer=_default_issuer(host, port, tls=cert_file is not None),
        tls_cert=cert_file,
        tls_key=key_file,
    )

    async def prepare_and_seed(services: Services) -> dict[str, dict[str, str]]:
        await _prepare(services)
        return await seed_demo(services)

    seeded = run_with_services(settings, prepare_and_seed)
    summary = dev_summary(settings, seeded, dev_tls)
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    settings.auto_migrate = False
    settings.freeze_heap = True  # a server process: see Settings.freeze_heap
    export_settings(settings)
    _run_uvicorn(settings)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("dev")(dev_command)
