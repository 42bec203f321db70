"""The form parser of the token endpoint's hot path gives exactly what ``urllib.parse.parse_qsl`` gives."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera.core.errors import InvalidRequest
from tessera.oauth.params import MAX_PARAMS, form_pairs, parse_form

# Characters that matter to the form encoding, plus escapes (good and broken) and non-ASCII text.
_pieces = st.sampled_from(
    ["&", "=", "+", "%", "%2", "%3D", "%26", "%2B", "%zz", "%C3%A9", "%FF", "é", " ", "a", "b"]
)
_forms = st.lists(st.one_of(_pieces, st.text(max_size=4)), max_size=30).map("".join)


@given(_forms)
def test_same_pairs_as_parse_qsl(text: str) -> None:
    expected = parse_qsl(text, keep_blank_values=True)
    if len(expected) > MAX_PARAMS:
        with pytest.raises(InvalidRequest):
            form_pairs(text)
    else:
        assert form_pairs(text) == expected


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=8))
def test_round_trips_what_urlencode_writes(values: dict[str, str]) -> None:
    assert dict(form_pairs(urlencode(values))) == values


def test_token_request_body() -> None:
    params = parse_form(b"grant_type=client_credentials&resource=https%3A%2F%2Fapi.example&scope=read+write")
    assert params.get("grant_type") == "client_credentials"
    assert params.get("resource") == "https://api.example"
    assert params.get("scope") == "read write"


def test_too_many_parameters_and_bad_utf8_are_invalid_requests() -> None:
    with pytest.raises(InvalidRequest):
        parse_form(b"&".join(b"p%d=1" % i for i in range(MAX_PARAMS + 1)))
    with pytest.raises(InvalidRequest):
        parse_form(b"a=\xff")


def test_repeated_parameter_is_refused_unless_multi_valued() -> None:
    params = parse_form(b"scope=a&scope=b&resource=x&resource=y")
    with pytest.raises(InvalidRequest):
        params.get("scope")
    assert params.getlist("resource") == ["x", "y"]
