"""Specifications for prefixed, time-sortable identifiers."""

from __future__ import annotations

import itertools
import re
import types

import pytest

from app import ids
from app.ids import has_prefix, new_id, new_id_block, new_ids, new_ulid

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SUB_ID = re.compile(r"^sub_[0-9A-HJKMNP-TV-Z]{26}$")


def test_an_id_is_the_prefix_an_underscore_and_26_crockford_characters() -> None:
    value = new_id("sub")
    assert SUB_ID.match(value), value
    assert len(value) == len("sub_") + 26
    assert set(value.removeprefix("sub_")) <= set(CROCKFORD)


def test_ids_made_in_a_tight_loop_are_unique_and_strictly_increasing() -> None:
    made = [new_id("sub") for _ in range(10_000)]
    assert len(set(made)) == len(made)
    assert all(earlier < later for earlier, later in itertools.pairwise(made))


def test_ids_of_different_kinds_share_one_ordering() -> None:
    first, second = new_ulid(), new_id("evt").removeprefix("evt_")
    assert first < second


def test_the_leading_characters_encode_the_creation_time(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_time = types.SimpleNamespace(time_ns=lambda: 4_102_444_800_000 * 1_000_000)
    monkeypatch.setattr(ids, "time", fake_time)
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_last_random", ids._last_random)
    stamp = new_ulid()[:10]
    value = 0
    for char in stamp:
        value = value * 32 + CROCKFORD.index(char)
    assert value == 4_102_444_800_000


def test_ids_keep_increasing_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    now_ms = [4_102_444_800_000]
    fake_time = types.SimpleNamespace(time_ns=lambda: now_ms[0] * 1_000_000)
    monkeypatch.setattr(ids, "time", fake_time)
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_last_random", ids._last_random)
    before = new_ulid()
    now_ms[0] -= 5_000
    after = [new_ulid() for _ in range(3)]
    assert before < after[0] < after[1] < after[2]


def test_has_prefix_accepts_our_own_ids() -> None:
    for prefix in ("ten", "sub", "evt", "dlv", "att", "src", "rpl", "aud"):
        assert has_prefix(new_id(prefix), prefix)
    assert has_prefix("sub_" + "0" * 26, "sub")
    assert has_prefix("sub_" + "Z" * 26, "sub")


def test_has_prefix_rejects_another_kind() -> None:
    assert not has_prefix(new_id("evt"), "sub")
    assert not has_prefix(new_id("sub"), "su")
    assert not has_prefix(new_id("sub").removeprefix("sub_"), "sub")
    assert not has_prefix("sub" + new_ulid(), "sub")


@pytest.mark.parametrize("length", [0, 1, 25, 27, 52])
def test_has_prefix_rejects_the_wrong_length(length: int) -> None:
    assert not has_prefix("sub_" + "0" * length, "sub")


@pytest.mark.parametrize("bad", ["I", "L", "O", "U", "a", "z", "-", "_", " ", "é"])
def test_has_prefix_rejects_characters_outside_crockford_base32(bad: str) -> None:
    body = new_ulid()
    assert not has_prefix("sub_" + body[:-1] + bad, "sub")
    assert not has_prefix("sub_" + bad + body[1:], "sub")


def test_ids_stay_increasing_when_the_random_part_overflows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fixed_ms = 4_102_444_800_000
    monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda: fixed_ms * 1_000_000))
    monkeypatch.setattr(ids, "_last_ms", fixed_ms)
    monkeypatch.setattr(ids, "_last_random", (1 << 80) - 2)
    first = new_ulid()
    second = new_ulid()
    assert first < second


def _frozen_clock(monkeypatch: pytest.MonkeyPatch, last_random: int) -> None:
    fixed_ms = 4_102_444_800_000
    monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda: fixed_ms * 1_000_000))
    monkeypatch.setattr(ids, "_last_ms", fixed_ms)
    monkeypatch.setattr(ids, "_last_random", last_random)


def test_a_block_is_the_prefix_and_22_characters_its_holder_completes_with_four() -> None:
    block = new_id_block("dlv")
    assert re.fullmatch(r"dlv_[0-9A-HJKMNP-TV-Z]{22}", block), block
    for last in ("0000", "0001", "ZZZZ"):
        assert has_prefix(block + last, "dlv")


@pytest.mark.parametrize("last_random", [0, 12_345, (1 << 80) - (1 << 20) - 2, (1 << 80) - 2])
def test_a_blocks_ids_sort_after_every_id_before_it_and_before_every_id_after_it(
    monkeypatch: pytest.MonkeyPatch, last_random: int
) -> None:
    """Also within one millisecond, and when the block no longer fits in the random part."""
    _frozen_clock(monkeypatch, last_random)
    before = new_id("dlv")
    first_block = new_id_block("dlv")
    second_block = new_id_block("dlv")
    after = new_id("dlv")
    assert before < first_block + "0000"
    assert first_block + "ZZZZ" < second_block + "0000"
    assert second_block + "ZZZZ" < after


def test_ids_made_together_are_valid_distinct_increasing_and_between_their_neighbours() -> None:
    before = new_id("att")
    made = new_ids("att", 1100)  # past 1,024: the third character from the end moves too
    after = new_id("att")
    assert all(has_prefix(value, "att") for value in made)
    assert len(set(made)) == len(made)
    assert all(earlier < later for earlier, later in itertools.pairwise([before, *made, after]))
    # The n-th id ends in n as four base32 characters.
    assert [value[-4:] for value in made[1023:1026]] == ["00ZZ", "0100", "0101"]


def test_no_ids_or_too_many_for_one_block() -> None:
    assert new_ids("att", 0) == []
    with pytest.raises(ValueError, match="at most"):
        new_ids("att", (1 << 20) + 1)
