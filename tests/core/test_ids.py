"""Tessera's ULIDs are the ones python-ulid would write and read."""

from __future__ import annotations

import base64
import os
import time

from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from tessera.core.ids import new_id, new_token_id, ulid_text


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


def test_token_ids_are_128_bit_and_unique() -> None:
    ids = {new_token_id() for _ in range(20_000)}  # crosses several 4 KiB refills
    assert len(ids) == 20_000
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in list(ids)[:100])


def test_a_forked_child_does_not_repeat_the_parent_ids() -> None:
    new_id()  # the parent's buffer is now partly used
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.write(write, " ".join(new_token_id() for _ in range(8)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = set(os.read(read, 4096).decode().split())
    os.close(read)
    parent = {new_token_id() for _ in range(8)}
    assert len(child) == 8 and not child & parent
