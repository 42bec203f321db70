"""Tessera's ULIDs are the ones python-ulid would write and read."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from tessera.core.ids import new_id, ulid_text


@given(st.binary(min_size=16, max_size=16))
def test_text_matches_python_ulid(value: bytes) -> None:
    assert ulid_text(value) == str(ULID.from_bytes(value))


def test_extremes() -> None:
    assert ulid_text(bytes(16)) == "0" * 26
    assert ulid_text(b"\xff" * 16) == "7" + "Z" * 25
    assert ulid_text(bytes(16)) == str(ULID.from_bytes(bytes(16)))


def test_new_ids_carry_the_time_sort_by_it_and_differ() -> None:
    before = time.time()
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    parsed = ULID.from_str(first)
    assert abs(parsed.timestamp - before) < 1.0
    assert first < second
    assert len({new_id() for _ in range(10_000)}) == 10_000
