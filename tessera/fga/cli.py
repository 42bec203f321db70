"""``tessera fga``: run store test files, and manage stores, models and tuples from the command line.

``tessera fga test FILE...`` runs OpenFGA store test files (the format ``fga model test`` reads) against
Tessera's engine on its in-memory datastore: every test gets a fresh store with the file's model, the file's
tuples and the test's own tuples, then each assertion is asked. It prints one line per test, the failures,
and last ``N passed, M failed``; it exits 0 only when every assertion passed (1 when one failed, 2 when a
file cannot be loaded).

The other commands work on the server's database (``--database-url`` / ``TESSERA_DATABASE_URL``), through the
same service the ``/fga`` API uses: ``store create|list``, ``model write|get``, ``tuple write|read``,
``check``, ``list-objects``. Their argument order is the ``fga`` CLI's (``USER RELATION OBJECT``).

Heavy imports happen inside the commands, so ``tessera fga test`` starts quickly.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from tessera.fga.engine.service import FGAService
    from tessera.fga.engine.tuples import TupleKey
    from tessera.fga.language import StoreFile, TupleSpec
    from tessera.services import Services

app = typer.Typer(
    help="OpenFGA-compatible relationship engine: test files, stores, models, tuples, queries.",
    no_args_is_help=True,
)
store_app = typer.Typer(help="Create and list FGA stores.", no_args_is_help=True)
model_app = typer.Typer(help="Write and read authorization models.", no_args_is_help=True)
tuple_app = typer.Typer(help="Write and read relationship tuples.", no_args_is_help=True)
app.add_typer(store_app, name="store")
app.add_typer(model_app, name="model")
app.add_typer(tuple_app, name="tuple")

# tessera.cli.common's options, declared here so that `tessera fga test` need not import the server.
DatabaseUrlOption = typer.Option(
    None,
    "--database-url",
    envvar="TESSERA_DATABASE_URL",
    help="sqlite+aiosqlite:///path.db or postgresql+asyncpg://...",
)
JsonOption = typer.Option(False, "--json", help="Print the record as JSON.")
StoreIdOption = typer.Option(
    ..., "--store-id", envvar="TESSERA_FGA_STORE_ID", help="The store's id (a ULID)."
)
ModelIdOption = typer.Option(
    "", "--model-id", envvar="TESSERA_FGA_MODEL_ID", help="An authorization model id (default: the latest)."
)
ContextOption = typer.Option(None, "--context", help="ABAC request context, a JSON object.")
ContextualOption = typer.Option(
    None, "--contextual-tuple", help='A contextual tuple "USER RELATION OBJECT" (repeatable).'
)


# --- tessera fga test ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One assertion's result (the same facts ``fga model test --verbose`` reports)."""

    kind: str  # check, list_objects, list_users
    request: dict[str, Any]
    expected: Any
    got: Any = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.got == self.expected

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "request": self.request,
            "expected": self.expected,
            "got": self.got,
            "error": self.error,
            "test_result": self.passed,
        }


@dataclass
class TestResult:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)

    def counts(self, kind: str) -> tuple[int, int]:
        mine = [o for o in self.outcomes if o.kind == kind]
        return sum(o.passed for o in mine), len(mine)


def _key(spec: TupleSpec) -> TupleKey:
    from tessera.fga.engine.tuples import TupleKey

    cond = spec.condition
    return TupleKey(
        spec.object, spec.relation, spec.user, cond.name if cond else None, cond.context if cond else None
    )


async def run_store_file(store_file: StoreFile) -> list[TestResult]:
    """Run every test of a loaded store file against a fresh in-memory store each."""
    from tessera.fga.engine.errors import FGAError
    from tessera.fga.engine.list_users import UserFilter
    from tessera.fga.engine.memory import MemoryDatastore
    from tessera.fga.engine.service import CheckRequest, FGAService, ListObjectsRequest, ListUsersRequest
    from tessera.fga.engine.tuples import TupleKey

    results = []
    for test in store_file.tests:
        service = FGAService(MemoryDatastore())
        result = TestResult(test.name)
        results.append(result)
        setup_error: str | None = None
        try:
            store = await service.create_store(store_file.name or "store-test")
            store_id = store.id
            model_id = await service.write_authorization_model(store_id, store_file.model)
            keys = [_key(t) for t in [*store_file.tuples, *test.tuples]]
            # Duplicates across the file's and the test's tuples are one tuple, as in a store.
            unique = list(dict.fromkeys(keys))
            step = service.config.max_tuples_per_write
            for start in range(0, len(unique), step):
                await service.write(store_id, unique[start : start + step], authorization_model_id=model_id)
        except FGAError as exc:
            setup_error = exc.message
        for item in test.check:
            for user, obj, relation, expected in item.cases():
                outcome = Outcome(
                    "check",
                    {"user": user, "relation": relation, "object": obj, "context": item.context},
                    expected,
                )
                result.outcomes.append(outcome)
                if setup_error:
                    outcome.error = setup_error
                    continue
                try:
                    response = await service.check(
                        CheckRequest(
                            store_id, TupleKey(obj, relation, user), model_id, context=item.context or {}
                        )
                    )
                    outcome.got = response.allowed
                except FGAError as exc:
                    outcome.error = exc.message
        for lo in test.list_objects:
            for relation, expected_objects in lo.assertions.items():
                outcome = Outcome(
                    "list_objects",
                    {"user": lo.user, "relation": relation, "type": lo.type, "context": lo.context},
                    sorted(expected_objects),
                )
                result.outcomes.append(outcome)
                if setup_error:
                    outcome.error = setup_error
                    continue
                try:
                    got = await service.list_objects(
                        ListObjectsRequest(
                            store_id, lo.type, relation, lo.user, model_id, context=lo.context or {}
                        )
                    )
                    outcome.got = sorted(got.objects)
                except FGAError as exc:
                    outcome.error = exc.message
        for lu in test.list_users:
            filters = [UserFilter(f.type, f.relation) for f in lu.user_filter]
            for relation, expected_users in lu.assertions.items():
                outcome = Outcome(
                    "list_users",
                    {
                        "object": lu.object,
                        "relation": relation,
                        "user_filter": [{"type": f.type, "relation": f.relation} for f in lu.user_filter],
                        "context": lu.context,
                    },
                    sorted(expected_users),
                )
                result.outcomes.append(outcome)
                if setup_error:
                    outcome.error = setup_error
                    continue
                try:
                    got_users = await service.list_users(
                        ListUsersRequest(
                            store_id, lu.object, relation, filters, model_id, context=lu.context or {}
                        )
                    )
                    outcome.got = sorted(got_users.users)
                except FGAError as exc:
                    outcome.error = exc.message
    return results


def _describe(outcome: Outcome) -> str:
    r = outcome.request
    if outcome.kind == "check":
        call = f"Check(user={r['user']},relation={r['relation']},object={r['object']})"
    elif outcome.kind == "list_objects":
        call = f"ListObjects(user={r['user']},relation={r['relation']},type={r['type']})"
    else:
        filters = ",".join(
            f["type"] + (f"#{f['relation']}" if f["relation"] else "") for f in r["user_filter"]
        )
        call = f"ListUsers(object={r['object']},relation={r['relation']},user_filter={filters})"
    if r.get("context"):
        call += f" with context {json.dumps(r['context'], sort_keys=True)}"
    if outcome.error is not None:
        return f"{call}: expected={_show(outcome.expected)}, error={outcome.error}"
    return f"{call}: expected={_show(outcome.expected)}, got={_show(outcome.got)}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _load_store_file(path: Path) -> StoreFile:
    """``load_store_file``, with libyaml's parser when PyYAML has it (five times faster on large files)."""
    import yaml

    from tessera.fga.language import load_store_file
    from tessera.fga.language.errors import ErrorDetail, StoreFileError
    from tessera.fga.language.store_file import parse_store_document

    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return load_store_file(path)
    try:
        with path.open("rb") as handle:
            doc = yaml.load(handle, Loader=loader)  # noqa: S506 - CSafeLoader is the safe loader, in C
    except OSError as exc:
        raise StoreFileError([ErrorDetail(f"cannot read store file {path}: {exc.strerror}")]) from None
    except yaml.YAMLError as exc:
        raise StoreFileError([ErrorDetail(f"cannot parse store file {path}: {exc}")]) from None
    return parse_store_document(doc, path.parent, path)


@app.command("test")
def test_command(
    files: list[Path] = typer.Argument(
        ..., help="Store test files (store.fga.yaml), as fga model test reads."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print every assertion's result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only failures and the summary."),
) -> None:
    """Run store test files against Tessera's engine. Exit 0 only when every assertion passes."""
    from tessera.fga.language import LanguageError

    passed = failed = 0
    broken = False
    report: list[dict[str, Any]] = []
    started = time.perf_counter()
    for path in files:
        try:
            store_file = _load_store_file(path)
        except LanguageError as exc:
            broken = True
            typer.secho(f"{path}: {exc}", fg=typer.colors.RED, err=True)
            for detail in getattr(exc, "schema_errors", None) or []:
                typer.echo(f"  {json.dumps(detail)}", err=True)
            continue
        results = asyncio.run(run_store_file(store_file))
        for result in results:
            p = sum(o.passed for o in result.outcomes)
            passed += p
            failed += len(result.outcomes) - p
            if as_json:
                report.append(
                    {
                        "file": str(path),
                        "name": result.name,
                        "results": [o.to_json() for o in result.outcomes],
                    }
                )
                continue
            ok = p == len(result.outcomes)
            if ok and quiet:
                continue
            parts = []
            for kind, label in (
                ("check", "Checks"),
                ("list_objects", "ListObjects"),
                ("list_users", "ListUsers"),
            ):
                good, total = result.counts(kind)
                if total:
                    parts.append(f"{label} ({good}/{total} passing)")
            status = "PASSING" if ok else "FAILING"
            typer.echo(f"({status}) {result.name}: {' | '.join(parts) or 'no assertions'}")
            for outcome in result.outcomes:
                if not outcome.passed:
                    typer.echo(f"  ✗ {_describe(outcome)}")
    if as_json:
        typer.echo(json.dumps(report))
    elapsed = time.perf_counter() - started
    if not as_json and not quiet:
        typer.echo(f"ran {passed + failed} assertions from {len(files)} file(s) in {elapsed:.3f} s", err=True)
    typer.echo(f"{passed} passed, {failed} failed")
    if broken:
        raise typer.Exit(2)
    if failed:
        raise typer.Exit(1)


# --- commands on the server's database ----------------------------------------------------------------------


def _run(database_url: str | None, work: Any) -> Any:
    from tessera.cli.common import load_settings, run_with_services

    settings = load_settings(database_url=database_url)
    return run_with_services(settings, work)


def print_record(record: dict[str, Any], *, as_json: bool) -> None:
    from tessera.cli import common

    common.print_record(record, as_json=as_json)


def _fga(services: Services) -> FGAService:
    return services.fga


def _json_object(raw: str | None, what: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise typer.BadParameter(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f"{what} must be a JSON object")
    return value


def _contextual(items: list[str] | None) -> list[TupleKey]:
    from tessera.fga.engine.tuples import TupleKey

    out = []
    for item in items or []:
        parts = item.split()
        if len(parts) != 3:
            raise typer.BadParameter(f'contextual tuple {item!r} is not "USER RELATION OBJECT"')
        out.append(TupleKey(parts[2], parts[1], parts[0]))
    return out


@store_app.command("create")
def store_create(
    name: str = typer.Argument(..., help="The store's name."),
    database_url: str | None = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a store and print its id."""

    async def work(services: Services) -> dict[str, Any]:
        return (await _fga(services).create_store(name)).to_json()

    print_record(_run(database_url, work), as_json=as_json)


@store_app.command("list")
def store_list(database_url: str | None = DatabaseUrlOption, as_json: bool = JsonOption) -> None:
    """List the stores."""

    async def work(services: Services) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = ""
        while True:
            records, token = await _fga(services).list_stores(100, token)
            out += [r.to_json() for r in records]
            if not token:
                return out

    stores = _run(database_url, work)
    if as_json:
        typer.echo(json.dumps(stores, indent=2))
        return
    for store in stores:
        typer.echo(f"{store['id']}  {store['name']}")


@model_app.command("write")
def model_write(
    file: Path = typer.Argument(..., help="A model in the DSL (.fga), in JSON (.json), or an fga.mod file."),
    store_id: str = StoreIdOption,
    database_url: str | None = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Write an authorization model and print its id."""
    model = _load_model(file)

    async def work(services: Services) -> dict[str, Any]:
        return {"authorization_model_id": await _fga(services).write_authorization_model(store_id, model)}

    print_record(_run(database_url, work), as_json=as_json)


def _load_model(file: Path) -> dict[str, Any]:
    from tessera.core.errors import TesseraError
    from tessera.fga.language import transform_dsl_to_json, transform_module_files, validate_json_model

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc.strerror}") from None
    try:
        if file.suffix.lower() == ".json":
            model = json.loads(text)
            validate_json_model(model)
            return dict(model)
        if file.name == "fga.mod" or file.suffix.lower() == ".mod":
            from tessera.fga.language.modules import parse_mod_file

            files = {
                name: (file.parent / name).read_text(encoding="utf-8") for name in parse_mod_file(text).files
            }
            return transform_module_files(text, files)
        return transform_dsl_to_json(text)
    except (TesseraError, ValueError) as exc:
        typer.secho(f"error: {file}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


@model_app.command("get")
def model_get(
    store_id: str = StoreIdOption,
    model_id: str = ModelIdOption,
    output_format: str = typer.Option("dsl", "--format", help="dsl or json"),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Print an authorization model (the latest unless --model-id)."""
    from tessera.fga.language import transform_json_to_dsl

    async def work(services: Services) -> dict[str, Any]:
        fga = _fga(services)
        if model_id:
            record = await fga.read_authorization_model(store_id, model_id)
        else:
            records, _ = await fga.read_authorization_models(store_id, 1)
            if not records:
                typer.secho(
                    f"error: store {store_id} has no authorization model", fg=typer.colors.RED, err=True
                )
                raise typer.Exit(1)
            record = records[0]
        return record.to_json()

    model = _run(database_url, work)
    if output_format == "json":
        typer.echo(json.dumps(model, indent=2))
    else:
        typer.echo(f"# model id: {model['id']}")
        typer.echo(transform_json_to_dsl(model), nl=False)


@tuple_app.command("write")
def tuple_write(
    user: str = typer.Argument(None, help="user:anne, group:eng#member, user:*"),
    relation: str = typer.Argument(None),
    obj: str = typer.Argument(None, metavar="OBJECT"),
    store_id: str = StoreIdOption,
    model_id: str = ModelIdOption,
    file: Path | None = typer.Option(None, "--file", help="Tuples from a YAML, JSON or CSV file."),
    condition_name: str | None = typer.Option(None, "--condition-name"),
    condition_context: str | None = typer.Option(None, "--condition-context", help="A JSON object."),
    database_url: str | None = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Write one tuple (USER RELATION OBJECT) or every tuple of --file (100 per transaction)."""
    from tessera.fga.engine.tuples import TupleKey

    keys: list[TupleKey]
    if file is not None:
        from tessera.fga.language.store_file import load_tuple_file

        keys = [_key(spec) for spec in load_tuple_file(file)]
    elif user and relation and obj:
        context = _json_object(condition_context, "--condition-context") or None
        keys = [TupleKey(obj, relation, user, condition_name, context)]
    else:
        raise typer.BadParameter("give USER RELATION OBJECT, or --file")

    async def work(services: Services) -> dict[str, Any]:
        fga = _fga(services)
        step = fga.config.max_tuples_per_write
        for start in range(0, len(keys), step):
            await fga.write(store_id, keys[start : start + step], authorization_model_id=model_id)
        return {"written": len(keys)}

    print_record(_run(database_url, work), as_json=as_json)


@tuple_app.command("delete")
def tuple_delete(
    user: str = typer.Argument(...),
    relation: str = typer.Argument(...),
    obj: str = typer.Argument(..., metavar="OBJECT"),
    store_id: str = StoreIdOption,
    database_url: str | None = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Delete one tuple."""
    from tessera.fga.engine.tuples import TupleKey

    async def work(services: Services) -> dict[str, Any]:
        await _fga(services).write(store_id, deletes=[TupleKey(obj, relation, user)])
        return {"deleted": 1}

    print_record(_run(database_url, work), as_json=as_json)


@tuple_app.command("read")
def tuple_read(
    store_id: str = StoreIdOption,
    user: str = typer.Option("", "--user"),
    relation: str = typer.Option("", "--relation"),
    obj: str = typer.Option("", "--object", help="document:1, or document: for every object of a type"),
    max_pages: int = typer.Option(20, "--max-pages", help="Stop after this many pages of 100 (0: all)."),
    database_url: str | None = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Read tuples matching a filter (all of the store's tuples without one)."""
    from tessera.fga.engine.store import ReadFilter

    async def work(services: Services) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = ""
        pages = 0
        while True:
            rows, token = await _fga(services).read(store_id, ReadFilter(obj, relation, user), 100, token)
            out += [r.to_json() for r in rows]
            pages += 1
            if not token or (max_pages and pages >= max_pages):
                return out

    rows = _run(database_url, work)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        key = row["key"]
        line = f"{key['user']} {key['relation']} {key['object']}"
        if key.get("condition"):
            line += f" with {key['condition']['name']} {json.dumps(key['condition'].get('context') or {})}"
        typer.echo(line)


@app.command("check")
def check_command(
    user: str = typer.Argument(...),
    relation: str = typer.Argument(...),
    obj: str = typer.Argument(..., metavar="OBJECT"),
    store_id: str = StoreIdOption,
    model_id: str = ModelIdOption,
    context: str | None = ContextOption,
    contextual: list[str] | None = ContextualOption,
    database_url: str | None = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Is USER related to OBJECT by RELATION? Prints allowed: true|false (exit 0 either way)."""
    from tessera.fga.engine.service import CheckRequest
    from tessera.fga.engine.tuples import TupleKey

    ctx = _json_object(context, "--context")
    extra = _contextual(contextual)

    async def work(services: Services) -> dict[str, Any]:
        response = await _fga(services).check(
            CheckRequest(store_id, TupleKey(obj, relation, user), model_id, extra, ctx)
        )
        return {"allowed": response.allowed}

    record = _run(database_url, work)
    if as_json:
        typer.echo(json.dumps(record))
    else:
        typer.echo(f"allowed: {'true' if record['allowed'] else 'false'}")


@app.command("list-objects")
def list_objects_command(
    user: str = typer.Argument(...),
    relation: str = typer.Argument(...),
    object_type: str = typer.Argument(..., metavar="TYPE"),
    store_id: str = StoreIdOption,
    model_id: str = ModelIdOption,
    context: str | None = ContextOption,
    contextual: list[str] | None = ContextualOption,
    database_url: str | None = DatabaseUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Every object of TYPE that USER has RELATION with (complete, not cut at 1000)."""
    from tessera.fga.engine.service import ListObjectsRequest

    ctx = _json_object(context, "--context")
    extra = _contextual(contextual)

    async def work(services: Services) -> list[str]:
        response = await _fga(services).list_objects(
            ListObjectsRequest(store_id, object_type, relation, user, model_id, extra, ctx)
        )
        return sorted(response.objects)

    objects = _run(database_url, work)
    if as_json:
        typer.echo(json.dumps({"objects": objects}))
    else:
        for item in objects:
            typer.echo(item)


def main() -> None:
    """``python -m tessera.fga.cli``: the same commands without loading the rest of Tessera's CLI."""
    app(sys.argv[1:], prog_name="tessera fga")


if __name__ == "__main__":
    main()
