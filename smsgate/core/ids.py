"""Message ids: decimal, unique across nodes, not guessable from one another.

Each node reserves blocks of a shared counter from the store (unique across nodes), and
each counter value is passed through a keyed Feistel permutation of 62 bits. A
permutation never maps two inputs to one output, so ids stay unique; without the key,
consecutive counters give unrelated ids. 62 bits keep every id within a signed 64-bit
integer (at most 19 digits), as clients such as Kannel parse ids as numbers.
"""

import hashlib
import secrets

from .ports import Store

HALF_BITS = 31
HALF_MASK = (1 << HALF_BITS) - 1
ROUNDS = 4
BLOCK_SIZE = 10_000
KEY_SETTING = "message_id_key"


class IdPermutation:
    def __init__(self, key: bytes) -> None:
        # One keyed BLAKE2b state per round, copied per use (cheaper than re-keying).
        self._rounds = [hashlib.blake2b(key=key, digest_size=4, person=bytes([r]) * 16)
                        for r in range(ROUNDS)]

    def _f(self, rnd: int, half: int) -> int:
        h = self._rounds[rnd].copy()
        h.update(half.to_bytes(4, "big"))
        return int.from_bytes(h.digest(), "big") & HALF_MASK

    def encrypt(self, value: int) -> int:
        left, right = value >> HALF_BITS, value & HALF_MASK
        for rnd in range(ROUNDS):
            left, right = right, left ^ self._f(rnd, right)
        return (left << HALF_BITS) | right

    def decrypt(self, value: int) -> int:
        left, right = value >> HALF_BITS, value & HALF_MASK
        for rnd in reversed(range(ROUNDS)):
            left, right = right ^ self._f(rnd, left), left
        return (left << HALF_BITS) | right


class MessageIdGenerator:
    """Hands out ids synchronously from reserved blocks; `refill` keeps one in hand."""

    def __init__(self, store: Store, block_size: int = BLOCK_SIZE) -> None:
        self._store = store
        self._block_size = block_size
        self._permutation: IdPermutation | None = None
        self._blocks: list[tuple[int, int]] = []  # (next, end)

    async def start(self) -> None:
        key = await self._store.set_setting_if_absent(KEY_SETTING, secrets.token_hex(16))
        self._permutation = IdPermutation(bytes.fromhex(key))
        await self.refill()

    async def refill(self) -> None:
        """Reserve blocks until at least two are in hand (cheap; call it often)."""
        while len(self._blocks) < 2:
            first = await self._store.allocate_ids(self._block_size)
            self._blocks.append((first, first + self._block_size))

    @property
    def low(self) -> bool:
        return len(self._blocks) < 2

    def next_id(self) -> int:
        if not self._blocks or self._permutation is None:
            raise RuntimeError("message id blocks exhausted; refill() was not awaited")
        nxt, end = self._blocks[0]
        if nxt + 1 >= end:
            self._blocks.pop(0)
        else:
            self._blocks[0] = (nxt + 1, end)
        # Counter 0 would encrypt to some id too; start at 1 so ids are never 0.
        return self._permutation.encrypt(nxt + 1) or self._permutation.encrypt(1 << 61)
