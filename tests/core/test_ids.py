from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgate.core.ids import COUNTER_LIMIT, TAG_BITS, IdTagger, MessageIdGenerator

TAGGER = IdTagger(bytes(range(16)))
counters = st.integers(min_value=1, max_value=COUNTER_LIMIT - 1)


@given(counters)
def test_ids_fit_signed_64_and_give_back_their_counter(counter):
    message_id = TAGGER.make(counter)
    assert 0 < message_id <= 2**63 - 1 and len(str(message_id)) <= 19
    assert TAGGER.counter_of(message_id) == counter


@given(counters, st.integers(min_value=1, max_value=(1 << TAG_BITS) - 1))
def test_a_changed_tag_is_not_a_genuine_id(counter, flip):
    assert TAGGER.counter_of(TAGGER.make(counter) ^ flip) is None


def test_consecutive_counters_give_growing_ids_without_a_stride():
    ids = [TAGGER.make(n) for n in range(1, 20001)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # appended to the key
    gaps = {b - a for a, b in pairwise(ids)}
    assert len(gaps) > 19000  # no fixed stride to guess the next id from


def test_another_key_gives_other_ids():
    other = IdTagger(bytes(16))
    assert [other.make(n) for n in range(1, 6)] != [TAGGER.make(n) for n in range(1, 6)]
    assert other.counter_of(TAGGER.make(7)) is None


@pytest.mark.parametrize("counter", [0, -1, COUNTER_LIMIT])
def test_counter_out_of_range_is_refused(counter):
    with pytest.raises(ValueError):
        TAGGER.make(counter)


async def test_reserve_holds_a_request_s_ids_and_a_block_more(store):
    """A 25,000-number request needs more than the two blocks held: reserve allocates
    what it takes, then hands out ids without touching the store."""
    ids = MessageIdGenerator(store, block_size=1_000)
    await ids.start()
    await ids.reserve(25_000)
    taken = [ids.next_id() for _ in range(25_000)]
    assert len(set(taken)) == 25_000 and all(ids.is_genuine(i) for i in taken)
    await ids.reserve(2_500)  # 2,000 left in hand: a block more is allocated
    assert len({*taken, *(ids.next_id() for _ in range(2_500))}) == 27_500
