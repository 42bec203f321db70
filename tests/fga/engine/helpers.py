"""Small helpers for the engine tests: a service on the memory store with a model written from DSL."""

from __future__ import annotations

from tessera.fga.engine.memory import MemoryDatastore
from tessera.fga.engine.service import CheckRequest, FGAService
from tessera.fga.engine.tuples import TupleKey
from tessera.fga.language import transform_dsl_to_json


def tk(obj: str, rel: str, user: str, cond: str | None = None, ctx: dict | None = None) -> TupleKey:
    return TupleKey(obj, rel, user, cond, ctx)


async def setup(
    dsl: str, tuples: list[TupleKey] = (), ds: MemoryDatastore | None = None
) -> tuple[FGAService, str, str]:
    svc = FGAService(ds or MemoryDatastore())
    store = await svc.create_store("test")
    model_id = await svc.write_authorization_model(store.id, transform_dsl_to_json(dsl))
    for i in range(0, len(tuples), 100):
        await svc.write(store.id, list(tuples[i : i + 100]))
    return svc, store.id, model_id


async def allowed(svc: FGAService, store_id: str, obj: str, rel: str, user: str, **kw: object) -> bool:
    return (await svc.check(CheckRequest(store_id, TupleKey(obj, rel, user), **kw))).allowed  # type: ignore[arg-type]
