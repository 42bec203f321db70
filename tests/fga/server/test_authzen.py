"""OpenFGA's [Experimental] AuthZEN endpoints under /fga: configuration, evaluation (with properties merged
into the condition context), evaluations and their semantics, resource, subject and action search."""

from __future__ import annotations

import httpx

from tests.fga.server.conftest import ISSUER, new_store_with_model, tk


async def _store(api: httpx.AsyncClient) -> str:
    store_id, _ = await new_store_with_model(api)
    r = await api.post(
        f"/stores/{store_id}/write",
        json={
            "writes": {
                "tuple_keys": [
                    tk("user:anne", "owner", "document:d1"),
                    tk("user:anne", "owner", "document:d2"),
                    tk("user:bob", "member", "group:eng"),
                    tk("group:eng#member", "editor", "document:d2"),
                    tk(
                        "user:cy",
                        "viewer",
                        "document:d3",
                        condition={"name": "in_office", "context": {"office": "10.0.0.0/8"}},
                    ),
                ]
            }
        },
    )
    assert r.status_code == 200, r.text
    return store_id


def ev(subject: str, action: str, resource: str, **extra: object) -> dict[str, object]:
    st, _, si = subject.partition(":")
    rt, _, ri = resource.partition(":")
    return {
        "subject": {"type": st, "id": si},
        "action": {"name": action},
        "resource": {"type": rt, "id": ri},
        **extra,
    }


async def test_configuration_names_the_store_endpoints(api: httpx.AsyncClient) -> None:
    store_id = await _store(api)
    r = await api.get(f"/.well-known/authzen-configuration/{store_id}")
    assert r.status_code == 200
    body = r.json()
    assert body["policy_decision_point"] == f"{ISSUER}/fga/stores/{store_id}"
    assert body["access_evaluation_endpoint"].endswith(f"/stores/{store_id}/access/v1/evaluation")
    r = await api.get("/.well-known/authzen-configuration/01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert r.status_code == 404 and r.json()["code"] == "store_id_not_found"


async def test_evaluation_and_properties_as_context(api: httpx.AsyncClient) -> None:
    store_id = await _store(api)
    url = f"/stores/{store_id}/access/v1/evaluation"
    assert (await api.post(url, json=ev("user:anne", "viewer", "document:d1"))).json() == {"decision": True}
    assert (await api.post(url, json=ev("user:bob", "viewer", "document:d1"))).json() == {"decision": False}
    assert (await api.post(url, json=ev("user:bob", "editor", "document:d2"))).json() == {"decision": True}
    # The condition's `ip` parameter comes from the request context...
    inside = ev("user:cy", "viewer", "document:d3", context={"ip": "10.1.1.1"})
    assert (await api.post(url, json=inside)).json() == {"decision": True}
    outside = ev("user:cy", "viewer", "document:d3", context={"ip": "192.168.1.1"})
    assert (await api.post(url, json=outside)).json() == {"decision": False}
    # ...and a property that is not a condition parameter changes nothing.
    extra = ev("user:cy", "viewer", "document:d3", context={"ip": "10.1.1.1"})
    extra["subject"] = {"type": "user", "id": "cy", "properties": {"department": "eng"}}
    assert (await api.post(url, json=extra)).json() == {"decision": True}

    r = await api.post(url, json=ev("user:anne", "pilot", "document:d1"))
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    r = await api.post(url, json={"subject": {"type": "user"}, "action": {"name": "viewer"}})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"


async def test_evaluations_defaults_overrides_and_semantics(api: httpx.AsyncClient) -> None:
    store_id = await _store(api)
    url = f"/stores/{store_id}/access/v1/evaluations"
    body = {
        "subject": {"type": "user", "id": "anne"},
        "action": {"name": "viewer"},
        "evaluations": [
            {"resource": {"type": "document", "id": "d1"}},
            {"resource": {"type": "document", "id": "d3"}},
            {"resource": {"type": "document", "id": "d2"}},
            {"resource": {"type": "document", "id": "d1"}, "action": {"name": "pilot"}},
        ],
    }
    r = await api.post(url, json=body)
    assert r.status_code == 200, r.text
    results = r.json()["evaluations"]
    assert [e["decision"] for e in results] == [True, False, True, False]
    assert results[3]["context"]["error"]["status"] == 400
    first_deny = await api.post(url, json={**body, "options": {"evaluations_semantic": "deny_on_first_deny"}})
    assert [e["decision"] for e in first_deny.json()["evaluations"]] == [True, False]
    first_permit = await api.post(
        url, json={**body, "options": {"evaluations_semantic": "permit_on_first_permit"}}
    )
    assert [e["decision"] for e in first_permit.json()["evaluations"]] == [True]
    single = await api.post(url, json=ev("user:anne", "owner", "document:d2"))
    assert single.json() == {"evaluations": [{"decision": True}]}
    bad = await api.post(url, json={**body, "options": {"evaluations_semantic": "sometimes"}})
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"


async def test_searches_and_pages(api: httpx.AsyncClient) -> None:
    store_id = await _store(api)
    base = f"/stores/{store_id}/access/v1/search"
    r = await api.post(
        f"{base}/resource",
        json={
            "subject": {"type": "user", "id": "anne"},
            "action": {"name": "viewer"},
            "resource": {"type": "document"},
        },
    )
    assert r.json()["results"] == [{"type": "document", "id": "d1"}, {"type": "document", "id": "d2"}]
    first = await api.post(
        f"{base}/resource",
        json={
            "subject": {"type": "user", "id": "anne"},
            "action": {"name": "viewer"},
            "resource": {"type": "document"},
            "page": {"limit": 1},
        },
    )
    page = first.json()
    assert page["results"] == [{"type": "document", "id": "d1"}] and page["page"]["next_token"]
    second = await api.post(
        f"{base}/resource",
        json={
            "subject": {"type": "user", "id": "anne"},
            "action": {"name": "viewer"},
            "resource": {"type": "document"},
            "page": {"limit": 1, "token": page["page"]["next_token"]},
        },
    )
    assert second.json()["results"] == [{"type": "document", "id": "d2"}]
    assert second.json()["page"]["next_token"] == ""
    reused = await api.post(
        f"{base}/resource",
        json={
            "subject": {"type": "user", "id": "bob"},
            "action": {"name": "viewer"},
            "resource": {"type": "document"},
            "page": {"token": page["page"]["next_token"]},
        },
    )
    assert reused.status_code == 400 and reused.json()["code"] == "invalid_continuation_token"

    r = await api.post(
        f"{base}/subject",
        json={
            "resource": {"type": "document", "id": "d2"},
            "action": {"name": "viewer"},
            "subject": {"type": "user"},
        },
    )
    assert r.json()["results"] == [{"type": "user", "id": "anne"}, {"type": "user", "id": "bob"}]

    r = await api.post(
        f"{base}/action",
        json={"subject": {"type": "user", "id": "anne"}, "resource": {"type": "document", "id": "d1"}},
    )
    assert [a["name"] for a in r.json()["results"]] == ["editor", "owner", "viewer"]
    r = await api.post(
        f"{base}/action",
        json={"subject": {"type": "user", "id": "anne"}, "resource": {"type": "spaceship", "id": "x"}},
    )
    assert r.status_code == 400 and r.json()["code"] == "type_not_found"
