"""Canonical Huffman coding (Deep Compression step 3).

Code lengths come from the usual Huffman merge with a fixed tie-break: of two subtrees with the
same count, the one created first merges first, where the leaves are created in ascending symbol
order before any merged subtree. Codes are then assigned canonically: symbols sorted by (code
length, symbol) receive consecutive binary values. The code therefore depends only on the symbol
counts, never on the order of the input sequence. A single distinct symbol gets the code "0".

Byte format of ``encode`` (all integers little-endian)::

    uint32  number of symbols in the sequence
    uint32  number of distinct symbols d
    d x (int64 symbol, uint8 code length), in canonical order
    code bits, most significant bit first, zero-padded to a whole byte

``huffman_bits`` counts only the code bits: the table is the decoder's side information and is
small next to the weights of a layer.
"""

from __future__ import annotations

import heapq
import numbers
import struct
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from accel.errors import ConfigError

_HEADER = struct.Struct("<II")
_TABLE_ENTRY = struct.Struct("<qB")
_INT64_RANGE = (-(1 << 63), (1 << 63) - 1)


def _as_symbol_list(symbols: Iterable) -> list:
    if isinstance(symbols, np.ndarray):
        return symbols.ravel().tolist()  # numpy scalars become Python scalars (hashable, sortable)
    return list(symbols)


def _code_lengths(counts: dict) -> dict:
    try:
        ordered = sorted(counts)
    except TypeError as exc:
        raise ConfigError("Huffman symbols must be mutually comparable, e.g. all integers") \
            from exc
    if len(ordered) == 1:
        return {ordered[0]: 1}
    # Heap items: (count, creation order, symbols under this subtree).
    heap = [(counts[symbol], order, [symbol]) for order, symbol in enumerate(ordered)]
    heapq.heapify(heap)
    lengths = dict.fromkeys(ordered, 0)
    created = len(heap)
    while len(heap) > 1:
        count_a, _, members_a = heapq.heappop(heap)
        count_b, _, members_b = heapq.heappop(heap)
        for symbol in members_a + members_b:
            lengths[symbol] += 1
        heapq.heappush(heap, (count_a + count_b, created, members_a + members_b))
        created += 1
    return lengths


def _canonical_code(lengths: dict) -> dict:
    code = {}
    value = 0
    previous_length = 0
    for symbol in sorted(lengths, key=lambda item: (lengths[item], item)):
        length = lengths[symbol]
        value <<= length - previous_length
        code[symbol] = format(value, f"0{length}b")
        value += 1
        previous_length = length
    return code


def huffman_code(symbols: Iterable) -> dict:
    """Canonical Huffman code of a symbol sequence: ``{symbol: bit string}``.

    An empty sequence gives an empty code.
    """
    counts = Counter(_as_symbol_list(symbols))
    if not counts:
        return {}
    return _canonical_code(_code_lengths(counts))


def huffman_bits(symbols: Iterable) -> int:
    """Number of code bits of the sequence under its own Huffman code (no table, no padding)."""
    counts = Counter(_as_symbol_list(symbols))
    if not counts:
        return 0
    lengths = _code_lengths(counts)
    return sum(counts[symbol] * lengths[symbol] for symbol in counts)


def encode(symbols: Iterable) -> bytes:
    """A self-describing byte string of an integer sequence (format in the module notes)."""
    sequence = _as_symbol_list(symbols)
    for symbol in sequence:
        if isinstance(symbol, (bool, np.bool_)) or not isinstance(symbol, numbers.Integral):
            raise ConfigError(f"encode takes integer symbols, got {symbol!r}")
        if not _INT64_RANGE[0] <= symbol <= _INT64_RANGE[1]:
            raise ConfigError(f"symbol {symbol} does not fit in 64 bits")
    sequence = [int(symbol) for symbol in sequence]
    if len(sequence) >= 1 << 32:
        raise ConfigError(f"encode takes fewer than 2**32 symbols, got {len(sequence)}")
    code = huffman_code(sequence)
    parts = [_HEADER.pack(len(sequence), len(code))]
    parts += [_TABLE_ENTRY.pack(symbol, len(bits)) for symbol, bits in code.items()]
    bit_string = "".join(code[symbol] for symbol in sequence)
    padded_length = -(-len(bit_string) // 8) * 8
    if padded_length:
        parts.append(int(bit_string.ljust(padded_length, "0"), 2).to_bytes(padded_length // 8,
                                                                           "big"))
    return b"".join(parts)


def decode(data: bytes) -> list[int]:
    """The integer sequence held by a byte string from ``encode``."""
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise ConfigError("Huffman data is truncated: shorter than its header")
    count, distinct = _HEADER.unpack_from(data, 0)
    payload_start = _HEADER.size + distinct * _TABLE_ENTRY.size
    if len(data) < payload_start:
        raise ConfigError("Huffman data is truncated inside its code table")
    lengths = {}
    for entry in range(distinct):
        symbol, length = _TABLE_ENTRY.unpack_from(data, _HEADER.size + entry * _TABLE_ENTRY.size)
        if length == 0 or symbol in lengths:
            raise ConfigError("Huffman data has a corrupt code table")
        lengths[symbol] = length
    if count and not lengths:
        raise ConfigError("Huffman data has symbols but no code table")
    longest = max(lengths.values(), default=0)
    # Kraft's inequality: lengths beyond it cannot form a prefix-free code.
    if sum(1 << (longest - length) for length in lengths.values()) > 1 << longest:
        raise ConfigError("Huffman data has a corrupt code table")
    by_code = {bits: symbol for symbol, bits in _canonical_code(lengths).items()}
    bit_string = "".join(format(byte, "08b") for byte in data[payload_start:])
    sequence = []
    position = 0
    while len(sequence) < count:
        # Canonical codes are prefix-free, so the first match is the only one.
        for length in range(1, longest + 1):
            word = bit_string[position:position + length]
            if len(word) < length:
                raise ConfigError("Huffman data is truncated inside its code bits")
            if word in by_code:
                sequence.append(by_code[word])
                position += length
                break
        else:
            raise ConfigError("Huffman data holds a bit pattern that is not in its code")
    return sequence


def code_is_prefix_free(code: dict) -> bool:
    """True when no code word is a prefix of another (a property every Huffman code has)."""
    words: Sequence[str] = sorted(code.values())
    # After sorting, a word that is a prefix of another sits directly before one it prefixes.
    return all(not later.startswith(earlier) for earlier, later in zip(words, words[1:]))
