"""Tessera's ULIDs are the ones python-ulid would write and read."""

from __future__ import annotations

import base64
import itertools
import os
import time

import pytest
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


def test_ids_increase_within_a_millisecond() -> None:
    # Thousands of ids a millisecond here: most share their millisecond with the one before, and paging by
    # id must still give creation order (tests/identity's page test caught the random order once).
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    same_ms = sum(a[:10] == b[:10] for a, b in itertools.pairwise(ids))
    assert same_ms > 1_000  # the case under test did happen
    for text in ids[:50]:
        assert str(ULID.from_str(text)) == text


def test_ids_stay_increasing_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    first = new_id()
    now = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: now - 5_000_000_000)  # 5 s back (an NTP step)
    later = [new_id() for _ in range(100)]
    assert [first, *later] == sorted([first, *later])
    assert later[0][:10] == first[:10]  # the old millisecond is kept, not the stepped-back one


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
