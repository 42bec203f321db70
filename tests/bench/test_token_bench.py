"""The token benchmark's own parts: the bare endpoint must do the real work (or its figure means nothing),
and the harness must build the request and read wrk's and py-spy's output right."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import httpx
import jwt
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bare_token_endpoint  # noqa: E402
import token_endpoint  # noqa: E402

RESOURCE = "https://api.bench.test"
SECRET = "s3cret-with-:colon&amp"


def basic(client_id: str, secret: str) -> str:
    # RFC 6749 2.3.1: form-urlencode each part, then Basic.
    return token_endpoint.Server(
        "x",
        None,
        "",
        "",
        client_id,
        secret,
        "",
    ).basic_auth()


@pytest.fixture
def bare() -> httpx.AsyncClient:
    app = bare_token_endpoint.build_app(
        issuer="http://bare.test", client_id="c1", client_secret=SECRET, resource=RESOURCE, scope="read write"
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bare.test")


FORM = {"grant_type": "client_credentials", "resource": RESOURCE, "scope": "read"}


async def test_bare_endpoint_issues_an_es256_rfc9068_token_that_verifies(bare: httpx.AsyncClient) -> None:
    async with bare:
        response = await bare.post("/oauth/token", data=FORM, headers={"Authorization": basic("c1", SECRET)})
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["token_type"] == "Bearer" and body["scope"] == "read"
        header = jwt.get_unverified_header(body["access_token"])
        assert header["alg"] == "ES256" and header["typ"] == "at+jwt"
        jwks = (await bare.get("/jwks")).json()
        key = jwt.PyJWK(jwks["keys"][0]).key
        claims = jwt.decode(
            body["access_token"], key, algorithms=["ES256"], audience=RESOURCE, issuer="http://bare.test"
        )
        assert claims["client_id"] == claims["sub"] == "c1"
        assert claims["exp"] - claims["iat"] == 3600 and claims["jti"]


async def test_bare_endpoint_accepts_client_secret_post(bare: httpx.AsyncClient) -> None:
    async with bare:
        response = await bare.post("/oauth/token", data={**FORM, "client_id": "c1", "client_secret": SECRET})
        assert response.status_code == 200


@pytest.mark.parametrize(
    ("form", "authorization", "status", "error"),
    [
        (FORM, basic("c1", SECRET + "x"), 401, "invalid_client"),
        (FORM, basic("c2", SECRET), 401, "invalid_client"),
        (FORM, "Basic !!!not-base64", 401, "invalid_client"),
        (FORM, "Basic " + base64.b64encode(b"no-colon").decode(), 401, "invalid_client"),
        (
            {**FORM, "client_secret": SECRET},
            basic("c1", SECRET),
            401,
            "invalid_client",
        ),  # two methods at once
        ({**FORM, "client_id": "c1", "client_secret": ""}, None, 401, "invalid_client"),
        ({**FORM, "grant_type": "password"}, basic("c1", SECRET), 400, "unsupported_grant_type"),
        ({**FORM, "resource": "https://other.test"}, basic("c1", SECRET), 400, "invalid_target"),
        ({**FORM, "scope": "read admin"}, basic("c1", SECRET), 400, "invalid_scope"),
    ],
)
async def test_bare_endpoint_refuses_what_a_token_endpoint_must_refuse(
    bare: httpx.AsyncClient, form: dict[str, str], authorization: str | None, status: int, error: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with bare:
        response = await bare.post("/oauth/token", data=form, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert "access_token" not in response.json()
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic")


def test_basic_auth_form_encodes_id_and_secret() -> None:
    encoded = basic("id with space", "a:b&c")
    decoded = base64.b64decode(encoded.removeprefix("Basic ")).decode()
    assert decoded == "id+with+space:a%3Ab%26c"


@pytest.mark.parametrize("hostile", ['a"b', "a\\nb", "a\nb", "x]]..os.exit()--", "é"])
def test_lua_script_refuses_values_that_could_break_out_of_the_string(hostile: str) -> None:
    with pytest.raises(token_endpoint.BenchError):
        token_endpoint._lua_string(hostile)


def test_lua_script_carries_the_exact_form_and_header(tmp_path: Path) -> None:
    server = token_endpoint.Server("tessera", None, "http://127.0.0.1:1", "", "c1", "s-_~", "")
    script = token_endpoint.write_wrk_script(server, tmp_path).read_text()
    assert (
        'wrk.body = "grant_type=client_credentials&resource=https%3A%2F%2Fapi.bench.test&scope=read"'
        in script
    )
    assert f'wrk.headers["Authorization"] = "{server.basic_auth()}"' in script
    assert 'wrk.method = "POST"' in script


def test_profile_summary_counts_self_and_inclusive_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text(
        "main (x.py:1);FastAPI.__call__ (site-packages/fastapi/applications.py:9);"
        "sign_compact (/repo/tessera/keys/keyring.py:3) 30\n"
        "main (x.py:1);FastAPI.__call__ (site-packages/fastapi/applications.py:9) 10\n"
    )
    run = token_endpoint.Run("tessera", 0, 1000, 1000, {}, 1.0, 1, 1, 1, 1, 0.1)
    token_endpoint.print_profile("tessera", raw, run)
    out = capsys.readouterr().out
    # 40 samples over 1000 requests at 250 Hz: each sample is 4 us per request.
    assert "40 samples" in out
    assert "the whole app: FastAPI.__call__" in out
    line = next(line for line in out.splitlines() if "the whole app" in line)
    assert line.split()[:2] == ["100.0", "160.0"]
    tessera_layer = next(line for line in out.splitlines() if line.strip().endswith("  tessera"))
    assert tessera_layer.split()[:2] == ["75.0", "120.0"]
