from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from smsgate.core.ids import IdPermutation

PERM = IdPermutation(bytes(range(16)))


@given(st.integers(min_value=0, max_value=(1 << 62) - 1))
def test_permutation_is_invertible_and_fits_signed_64(value):
    encrypted = PERM.encrypt(value)
    assert 0 <= encrypted < 1 << 62 <= 2**63 - 1
    assert PERM.decrypt(encrypted) == value


def test_consecutive_counters_give_unrelated_unique_ids():
    ids = [PERM.encrypt(n) for n in range(1, 20001)]
    assert len(set(ids)) == len(ids)
    gaps = {b - a for a, b in pairwise(ids)}
    assert len(gaps) > 19000  # no fixed stride to guess the next id from
    assert all(len(str(i)) <= 19 for i in ids)


def test_another_key_gives_other_ids():
    other = IdPermutation(bytes(16))
    assert [other.encrypt(n) for n in range(5)] != [PERM.encrypt(n) for n in range(5)]
