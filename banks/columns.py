"""Columns for tables of millions of rows, in arrays rather than Python objects.

A million payments as objects were ~440 bytes a row (a str is 49 bytes before its first
character, an int above 256 is 28, a slotted object with eleven fields 104), and a dict of
a million ids to rows ~170 more. Kept in these columns a row is the bytes of its text and
a few machine words; an object is made only for the row that is asked for.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import TypeVar, overload

from protocol.wording import count

# Between the fields of one row in a Texts heap: a byte that UTF-8 never writes, so no text
# can hold it and a row splits back into exactly its fields. A row is decoded in one call,
# the separator read as the lone surrogate it decodes to under "surrogateescape" (which no
# encodable text holds either).
FIELD_SEPARATOR = b"\xff"
DECODED_SEPARATOR = FIELD_SEPARATOR.decode("utf-8", "surrogateescape")
MIN_INDEX_SLOTS = 8


T = TypeVar("T")


class Rows(Sequence[T]):
    """A sequence whose items are made from their row when asked for (`_item`), as a list's
    are read: negative indexes, IndexError, a slice as a list."""

    def __len__(self) -> int:
        raise NotImplementedError

    def _item(self, row: int) -> T:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        rows = range(len(self))[index]
        return list(map(self._item, rows)) if isinstance(rows, range) else self._item(rows)

    def __iter__(self) -> Iterator[T]:
        return map(self._item, range(len(self)))


class Texts:
    """Strings one row after another in one UTF-8 heap, found by where each row ends: eight
    bytes a row besides the text itself. A row may hold several fields (`fields`)."""

    def __init__(self) -> None:
        self._heap = bytearray()
        self._ends = array("Q")

    def __len__(self) -> int:
        return len(self._ends)

    def append(self, *fields: str) -> None:
        self._heap += FIELD_SEPARATOR.join(field.encode() for field in fields)
        self._ends.append(len(self._heap))

    def _bytes(self, row: int) -> bytes:
        start = self._ends[row - 1] if row else 0
        return self._heap[start:self._ends[row]]

    def text(self, row: int) -> str:
        """The row's one field."""
        return self._bytes(row).decode()

    def fields(self, row: int) -> list[str]:
        """The row's fields, as appended."""
        return self._bytes(row).decode("utf-8", "surrogateescape").split(DECODED_SEPARATOR)


class Shared:
    """A column of few distinct strings (BICs, programmes, periods): each value kept once,
    four bytes a row."""

    def __init__(self) -> None:
        self._values: list[str] = []
        self._codes: dict[str, int] = {}
        self._rows = array("I")

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, row: int) -> str:
        return self._values[self._rows[row]]

    def append(self, value: str) -> None:
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self._values)
            self._values.append(value)
        self._rows.append(code)


class RowIndex:
    """Rows by key: open addressing over two arrays, sized once for `rows` rows to be at most
    half full (32 to 64 bytes a row), where a dict of str keys to int rows is ~170. The keys
    stay in the rows: `key_of(row)` gives each back, so rows whose keys only share a hash are
    never taken for each other."""

    def __init__(self, key_of: Callable[[int], Hashable], rows: int) -> None:
        self._key_of = key_of
        size = MIN_INDEX_SLOTS
        while size < 2 * rows:
            size *= 2
        self._slots = array("q", [0]) * size  # row + 1; 0: empty
        self._hashes = array("q", [0]) * size
        self._count = 0

    def _probe(self, key: Hashable, key_hash: int) -> tuple[int, int | None]:
        """(the slot holding `key`, its row), or (the empty slot where it would go, None)."""
        slots, hashes = self._slots, self._hashes
        mask = len(slots) - 1
        slot = key_hash & mask
        while entry := slots[slot]:
            if hashes[slot] == key_hash and self._key_of(entry - 1) == key:
                return slot, entry - 1
            slot = (slot + 1) & mask
        return slot, None

    def find(self, key: Hashable) -> int | None:
        """The row indexed under `key`, if any."""
        slots, hashes, key_of = self._slots, self._hashes, self._key_of
        key_hash = hash(key)
        mask = len(slots) - 1
        slot = key_hash & mask
        while entry := slots[slot]:  # _probe, inlined: the treasury asks once a transfer
            if hashes[slot] == key_hash and key_of(entry - 1) == key:
                return entry - 1
            slot = (slot + 1) & mask
        return None

    def add(self, row: int) -> int | None:
        """Index `row` under its key and return None; when an earlier row has an equal key,
        return that row instead and leave `row` out."""
        if 2 * self._count >= len(self._slots):
            raise OverflowError(f"a RowIndex holds at most {count(len(self._slots) // 2, 'row')}")
        key = self._key_of(row)
        key_hash = hash(key)
        slot, found = self._probe(key, key_hash)
        if found is not None:
            return found
        self._slots[slot] = row + 1
        self._hashes[slot] = key_hash
        self._count += 1
        return None
