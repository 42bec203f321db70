"""A value followed by a newline is not that value. Python's ``$`` also matches before a final newline, so
patterns anchored with it let ``document:d2\\n`` be written and checked as ``document:d2``; OpenFGA's
patterns (Go, where ``$`` ends the text) refuse it, and so must Tessera's."""

from __future__ import annotations

import pytest

from tessera.fga.engine.errors import FGAError
from tessera.fga.engine.memory import MemoryDatastore
from tessera.fga.engine.service import CheckRequest, FGAService, FilterRequest
from tessera.fga.engine.tuples import TupleKey, parse_user, split_object, valid_relation_name
from tessera.fga.http import parse
from tessera.fga.language import transform_dsl_to_json

MODEL = "model\n  schema 1.1\ntype user\ntype document\n  relations\n    define viewer: [user]\n"


def test_the_tuple_patterns_end_at_the_end_of_the_text() -> None:
    assert split_object("document:d2") == ("document", "d2")
    with pytest.raises(FGAError):
        split_object("document:d2\n")
    assert parse_user("user:a") is not None
    assert parse_user("user:a\n") is None
    assert parse_user("team:t#member\n") is None
    assert valid_relation_name("viewer")
    assert not valid_relation_name("viewer\n")


def test_the_http_ids_end_at_the_end_of_the_text() -> None:
    good = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert parse.store_id(good) == good
    for refused in (f"{good}\n",):
        with pytest.raises(FGAError):
            parse.store_id(refused)
        with pytest.raises(FGAError):
            parse.model_id(refused)
    assert parse.correlation_id("item-1") == "item-1"
    with pytest.raises(FGAError):
        parse.correlation_id("item-1\n")


async def test_writes_checks_and_filters_refuse_a_trailing_newline() -> None:
    fga = FGAService(MemoryDatastore())
    store = (await fga.create_store("newlines")).id
    await fga.write_authorization_model(store, transform_dsl_to_json(MODEL))
    await fga.write(store, [TupleKey("document:d2", "viewer", "user:a")])
    for key in (TupleKey("document:d3\n", "viewer", "user:a"), TupleKey("document:d3", "viewer", "user:a\n")):
        with pytest.raises(FGAError):
            await fga.write(store, [key])
        with pytest.raises(FGAError):
            await fga.check(CheckRequest(store, key))
    # Nothing of the refused writes was kept.
    assert not (await fga.check(CheckRequest(store, TupleKey("document:d3", "viewer", "user:a")))).allowed
    assert (await fga.check(CheckRequest(store, TupleKey("document:d2", "viewer", "user:a")))).allowed
    with pytest.raises(FGAError):
        await fga.filter_objects(FilterRequest(store, "user:a\n", "viewer", ["document:d2"]))
