"""Conditions: CEL with OpenFGA's typed parameters, ipaddress/in_cidr, missing parameters, cost limits."""

from __future__ import annotations

import pytest

from tessera.fga.engine.conditions import compile_condition, parse_duration
from tessera.fga.engine.errors import ErrorCode, FGAError
from tessera.fga.engine.list_users import UserFilter
from tessera.fga.engine.service import ListObjectsRequest, ListUsersRequest
from tests.fga.engine.helpers import allowed, setup, tk

MODEL = """model
  schema 1.1
type user
type document
  relations
    define viewer: [user with in_network, user with not_expired, user:* with has_tag]
condition in_network(ip: ipaddress, cidr: string) {
  ip.in_cidr(cidr)
}
condition not_expired(now: timestamp, granted: timestamp, ttl: duration) {
  now < granted + ttl
}
condition has_tag(tags: list<string>, attrs: map<string>, wanted: string) {
  wanted in tags && attrs["level"] == "public"
}
"""


async def test_ip_condition_uses_tuple_and_request_context() -> None:
    svc, sid, _ = await setup(
        MODEL, [tk("document:1", "viewer", "user:anne", "in_network", {"cidr": "10.0.0.0/8"})]
    )
    assert await allowed(svc, sid, "document:1", "viewer", "user:anne", context={"ip": "10.1.2.3"})
    assert not await allowed(svc, sid, "document:1", "viewer", "user:anne", context={"ip": "192.168.0.1"})
    # The tuple's context wins over the request's.
    assert not await allowed(
        svc, sid, "document:1", "viewer", "user:anne", context={"ip": "192.168.0.1", "cidr": "192.168.0.0/16"}
    )


async def test_missing_parameter_is_an_error_not_false() -> None:
    svc, sid, _ = await setup(
        MODEL, [tk("document:1", "viewer", "user:anne", "in_network", {"cidr": "10.0.0.0/8"})]
    )
    with pytest.raises(FGAError) as err:
        await allowed(svc, sid, "document:1", "viewer", "user:anne")
    assert err.value.error_code == ErrorCode.validation_error
    assert "missing parameters ['ip']" in err.value.message


async def test_parameter_of_wrong_type_is_an_error() -> None:
    svc, sid, _ = await setup(
        MODEL, [tk("document:1", "viewer", "user:anne", "in_network", {"cidr": "10.0.0.0/8"})]
    )
    with pytest.raises(FGAError) as err:
        await allowed(svc, sid, "document:1", "viewer", "user:anne", context={"ip": "not-an-ip"})
    assert err.value.error_code == ErrorCode.validation_error
    with pytest.raises(FGAError):
        await allowed(svc, sid, "document:1", "viewer", "user:anne", context={"ip": 17})


async def test_timestamp_and_duration() -> None:
    ctx = {"granted": "2026-01-01T00:00:00Z", "ttl": "1h30m"}
    svc, sid, _ = await setup(MODEL, [tk("document:1", "viewer", "user:bob", "not_expired", ctx)])
    assert await allowed(
        svc, sid, "document:1", "viewer", "user:bob", context={"now": "2026-01-01T01:29:00Z"}
    )
    assert not await allowed(
        svc, sid, "document:1", "viewer", "user:bob", context={"now": "2026-01-01T01:31:00Z"}
    )


async def test_list_and_map_parameters_on_a_wildcard() -> None:
    ctx = {"tags": ["a", "b"], "attrs": {"level": "public"}}
    svc, sid, _ = await setup(MODEL, [tk("document:1", "viewer", "user:*", "has_tag", ctx)])
    assert await allowed(svc, sid, "document:1", "viewer", "user:zed", context={"wanted": "a"})
    assert not await allowed(svc, sid, "document:1", "viewer", "user:zed", context={"wanted": "c"})
    lo = await svc.list_objects(
        ListObjectsRequest(sid, "document", "viewer", "user:zed", context={"wanted": "b"})
    )
    assert lo.objects == ["document:1"]
    lo = await svc.list_objects(
        ListObjectsRequest(sid, "document", "viewer", "user:zed", context={"wanted": "x"})
    )
    assert lo.objects == []
    lu = await svc.list_users(
        ListUsersRequest(sid, "document:1", "viewer", [UserFilter("user")], context={"wanted": "a"})
    )
    assert lu.users == ["user:*"]


async def test_write_rejects_a_tuple_without_its_condition_or_with_a_bad_context() -> None:
    svc, sid, _ = await setup(MODEL)
    with pytest.raises(FGAError) as err:
        await svc.write(sid, [tk("document:1", "viewer", "user:anne")])
    assert err.value.error_code == ErrorCode.validation_error
    with pytest.raises(FGAError) as err:
        await svc.write(sid, [tk("document:1", "viewer", "user:anne", "nope")])
    assert err.value.error_code == ErrorCode.validation_error
    with pytest.raises(FGAError) as err:
        await svc.write(sid, [tk("document:1", "viewer", "user:anne", "in_network", {"ip": 12})])
    assert err.value.error_code == ErrorCode.validation_error
    rows, _ = await svc.read(sid)
    assert rows == []


async def test_condition_that_does_not_compile_is_refused_with_the_model() -> None:
    svc, sid, _ = await setup(MODEL)
    bad = {
        "schema_version": "1.1",
        "type_definitions": [{"type": "user"}],
        "conditions": {
            "c": {"name": "c", "expression": "x +", "parameters": {"x": {"type_name": "TYPE_NAME_INT"}}}
        },
    }
    with pytest.raises(FGAError) as err:
        await svc.write_authorization_model(sid, bad)
    assert err.value.error_code == ErrorCode.invalid_authorization_model
    bad["conditions"]["c"]["expression"] = "y > 1"  # type: ignore[index]
    with pytest.raises(FGAError) as err:
        await svc.write_authorization_model(sid, bad)
    assert "undeclared" in err.value.message
    bad["conditions"]["c"]["expression"] = "x > 1 && " * 400 + "true"  # type: ignore[index]
    with pytest.raises(FGAError) as err:
        await svc.write_authorization_model(sid, bad)
    assert err.value.error_code == ErrorCode.invalid_authorization_model


def test_cost_overrun_on_large_collections() -> None:
    cond = compile_condition(
        "c",
        {
            "expression": "xs.all(x, x > 0)",
            "parameters": {
                "xs": {"type_name": "TYPE_NAME_LIST", "generic_types": [{"type_name": "TYPE_NAME_INT"}]}
            },
        },
    )
    assert cond.evaluate(None, {"xs": [1, 2, 3]}) is True
    with pytest.raises(FGAError) as err:
        cond.evaluate(None, {"xs": list(range(1, 1000))})
    assert "cost limit exceeded" in err.value.message


def test_numeric_types() -> None:
    cond = compile_condition(
        "c",
        {
            "expression": "n < limit && d >= 1.5",
            "parameters": {
                "n": {"type_name": "TYPE_NAME_INT"},
                "limit": {"type_name": "TYPE_NAME_INT"},
                "d": {"type_name": "TYPE_NAME_DOUBLE"},
            },
        },
    )
    assert cond.evaluate({"limit": 10}, {"n": 3, "d": 2}) is True
    with pytest.raises(FGAError):
        cond.evaluate({"limit": 10}, {"n": 3.5, "d": 2})  # not an integer
    with pytest.raises(FGAError):
        cond.evaluate({"limit": 10}, {"n": 2**70, "d": 2})  # out of int64


def test_go_durations() -> None:
    assert parse_duration("1h30m").total_seconds() == 5400
    assert parse_duration("1.5s").total_seconds() == 1.5
    assert parse_duration("-2m").total_seconds() == -120
    assert parse_duration("300ms").total_seconds() == pytest.approx(0.3)
    for bad in ("", "1", "h", "1x", "1h 2m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


async def test_cost_overrun_through_check_is_a_validation_error() -> None:
    dsl = """model
  schema 1.1
type user
type document
  relations
    define viewer: [user with all_positive]
condition all_positive(xs: list<int>) {
  xs.all(x, x > 0)
}
"""
    svc, sid, _ = await setup(dsl, [tk("document:1", "viewer", "user:anne", "all_positive")])
    assert await allowed(svc, sid, "document:1", "viewer", "user:anne", context={"xs": [1, 2, 3]})
    with pytest.raises(FGAError) as err:
        await allowed(svc, sid, "document:1", "viewer", "user:anne", context={"xs": list(range(1, 5000))})
    assert err.value.error_code == ErrorCode.validation_error
    assert "cost limit exceeded" in err.value.message
