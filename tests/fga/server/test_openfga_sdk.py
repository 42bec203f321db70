"""The official OpenFGA Python SDK (``openfga-sdk``, async client), unchanged, against Tessera on a real port:
client credentials from Tessera's own token endpoint, then stores, a model, tuples, Check, BatchCheck,
ListObjects, streamed ListObjects, ListUsers, Expand, Read, ReadChanges, assertions, and OpenFGA's errors."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from openfga_sdk import (
    ClientConfiguration,
    CreateStoreRequest,
    OpenFgaClient,
    ReadRequestTupleKey,
)
from openfga_sdk.client.models import (
    ClientBatchCheckItem,
    ClientBatchCheckRequest,
    ClientCheckRequest,
    ClientExpandRequest,
    ClientListObjectsRequest,
    ClientReadChangesRequest,
    ClientTuple,
    ClientWriteRequest,
)
from openfga_sdk.client.models.list_users_request import ClientListUsersRequest
from openfga_sdk.credentials import CredentialConfiguration, Credentials
from openfga_sdk.exceptions import NotFoundException, UnauthorizedException, ValidationException
from openfga_sdk.models import FgaObject, UserTypeFilter

from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.migrate import upgrade
from tessera.web.app import create_app
from tests.fga.server.conftest import model_json
from tests.support.live import free_port, serve


@dataclass
class Live:
    url: str
    client_id: str
    client_secret: str


def _settings(tmp_path: Path, port: int) -> Settings:
    return Settings(
        issuer=f"http://127.0.0.1:{port}",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tessera.db'}",
        data_dir=tmp_path,
        master_key=base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
        fga_auth=True,
    )


async def make_client(settings: Settings, *, scope: str) -> tuple[str, str]:
    """A confidential client allowed the FGA scopes (its own Services: the server runs on another loop)."""
    services = Services(settings)
    try:
        await upgrade(services.db)
        new = services.oauth.build_client(
            client_name="fga tests", grant_types=["client_credentials"], scope=scope
        )
        async with services.db.transaction() as conn:
            await services.oauth.client_store.insert(new.client, conn=conn)
        assert new.client_secret is not None
        return new.client.client_id, new.client_secret
    finally:
        await services.aclose()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
async def live(tmp_path: Path, port: int) -> AsyncIterator[Live]:
    settings = _settings(tmp_path, port)
    client_id, secret = await make_client(settings, scope="fga:read fga:write fga:admin")
    with serve(create_app(settings), port=port) as server:
        yield Live(server.url, client_id, secret)


def sdk(
    live: Live, *, scopes: str = "fga:read fga:write fga:admin", secret: str | None = None
) -> OpenFgaClient:
    credentials = Credentials(
        method="client_credentials",
        configuration=CredentialConfiguration(
            api_issuer=live.url,
            api_audience=f"{live.url}/fga",
            client_id=live.client_id,
            client_secret=secret or live.client_secret,
            scopes=scopes,
        ),
    )
    return OpenFgaClient(ClientConfiguration(api_url=f"{live.url}/fga", credentials=credentials))


@pytest.fixture
async def fga(live: Live) -> AsyncIterator[OpenFgaClient]:
    async with sdk(live) as client:
        yield client


async def test_sdk_end_to_end(fga: OpenFgaClient) -> None:
    store = await fga.create_store(CreateStoreRequest(name="sdk-store"))
    assert len(store.id) == 26 and store.name == "sdk-store"
    fga.set_store_id(store.id)
    got = await fga.get_store()
    assert got.id == store.id

    model = await fga.write_authorization_model(model_json())
    fga.set_authorization_model_id(model.authorization_model_id)
    latest = await fga.read_latest_authorization_model()
    assert latest.authorization_model.id == model.authorization_model_id

    await fga.write(
        ClientWriteRequest(
            writes=[
                ClientTuple(user="user:anne", relation="owner", object="folder:plans"),
                ClientTuple(user="folder:plans", relation="parent", object="document:roadmap"),
                ClientTuple(user="user:bob", relation="member", object="group:eng"),
                ClientTuple(user="group:eng#member", relation="editor", object="document:specs"),
                ClientTuple(user="user:carl", relation="blocked", object="document:specs"),
                ClientTuple(user="user:carl", relation="member", object="group:eng"),
            ]
        )
    )

    assert (
        await fga.check(ClientCheckRequest(user="user:anne", relation="viewer", object="document:roadmap"))
    ).allowed
    assert not (
        await fga.check(ClientCheckRequest(user="user:bob", relation="viewer", object="document:roadmap"))
    ).allowed
    contextual = await fga.check(
        ClientCheckRequest(
            user="user:dana",
            relation="viewer",
            object="document:specs",
            contextual_tuples=[ClientTuple(user="user:dana", relation="member", object="group:eng")],
        )
    )
    assert contextual.allowed

    batch = await fga.batch_check(
        ClientBatchCheckRequest(
            checks=[
                ClientBatchCheckItem(
                    user="user:bob", relation="viewer", object="document:specs", correlation_id="b1"
                ),
                ClientBatchCheckItem(
                    user="user:carl", relation="viewer", object="document:specs", correlation_id="c1"
                ),
                ClientBatchCheckItem(
                    user="user:anne", relation="owner", object="folder:plans", correlation_id="a1"
                ),
            ]
        )
    )
    verdicts = {r.correlation_id: r.allowed for r in batch.result}
    assert verdicts == {"b1": True, "c1": False, "a1": True}

    objects = await fga.list_objects(
        ClientListObjectsRequest(user="user:bob", relation="viewer", type="document")
    )
    assert objects.objects == ["document:specs"]
    streamed = [
        r.object
        async for r in fga.streamed_list_objects(
            ClientListObjectsRequest(user="user:anne", relation="viewer", type="document")
        )
    ]
    assert streamed == ["document:roadmap"]

    users = await fga.list_users(
        ClientListUsersRequest(
            object=FgaObject(type="document", id="specs"),
            relation="editor",
            user_filters=[UserTypeFilter(type="user")],
        )
    )
    assert sorted(u.object.id for u in users.users) == ["bob", "carl"]

    expanded = await fga.expand(ClientExpandRequest(relation="owner", object="folder:plans"))
    assert expanded.tree.root.leaf.users.users == ["user:anne"]

    read = await fga.read(ReadRequestTupleKey(object="group:eng"))
    assert sorted(t.key.user for t in read.tuples) == ["user:bob", "user:carl"]

    changes = await fga.read_changes(ClientReadChangesRequest(type="group"))
    assert [c.tuple_key.user for c in changes.changes] == ["user:bob", "user:carl"]
    assert changes.continuation_token

    await fga.delete_tuples([ClientTuple(user="user:bob", relation="member", object="group:eng")])
    assert not (
        await fga.check(ClientCheckRequest(user="user:bob", relation="viewer", object="document:specs"))
    ).allowed
    changes = await fga.read_changes(ClientReadChangesRequest(type="group"))
    assert changes.changes[-1].operation == "TUPLE_OPERATION_DELETE"

    stores = await fga.list_stores()
    assert store.id in {s.id for s in stores.stores}


async def test_sdk_sees_openfga_errors(fga: OpenFgaClient) -> None:
    store = await fga.create_store(CreateStoreRequest(name="errors"))
    fga.set_store_id(store.id)
    await fga.write_authorization_model(model_json())
    with pytest.raises(ValidationException) as err:
        await fga.check(ClientCheckRequest(user="user:anne", relation="pilot", object="document:x"))
    assert err.value.status == 400 and err.value.code == "validation_error"
    with pytest.raises(ValidationException) as err:
        await fga.write(
            ClientWriteRequest(writes=[ClientTuple(user="user:a", relation="nope", object="document:x")])
        )
    assert err.value.status == 400
    with pytest.raises(ValidationException) as err:
        await fga.write_authorization_model(
            {"schema_version": "1.1", "type_definitions": [{"type": "user"}, {"type": "user"}]}
        )
    assert err.value.code == "cannot_allow_duplicate_types_in_one_request"
    fga.set_store_id("01HZZZZZZZZZZZZZZZZZZZZZZZ")
    with pytest.raises(NotFoundException) as missing:
        await fga.get_store()
    assert missing.value.code == "store_id_not_found"


async def test_wrong_secret_gets_no_token(live: Live) -> None:
    async with sdk(live, secret="wrong") as client:
        # The SDK's token request to /oauth/token fails (invalid_client): it raises before calling /fga.
        with pytest.raises(UnauthorizedException) as err:
            await client.list_stores()
        assert err.value.status == 401


@pytest.fixture
def reader_only(tmp_path: Path, port: int) -> Iterator[Live]:
    import asyncio

    settings = _settings(tmp_path, port)
    client_id, secret = asyncio.run(make_client(settings, scope="fga:read"))
    with serve(create_app(settings), port=port) as server:
        yield Live(server.url, client_id, secret)


def test_a_read_only_client_cannot_create_stores(reader_only: Live) -> None:
    import asyncio

    from openfga_sdk.exceptions import ForbiddenException

    async def go() -> None:
        async with sdk(reader_only, scopes="fga:read") as client:
            assert (await client.list_stores()).stores == []
            with pytest.raises(ForbiddenException) as err:
                await client.create_store(CreateStoreRequest(name="nope"))
            assert err.value.status == 403

    asyncio.run(go())
