"""Canonical Huffman codes, their sizes, and the byte round trip."""

import math
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from accel.compress import decode, encode, huffman_bits, huffman_code
from accel.compress.huffman import code_is_prefix_free
from accel.errors import ConfigError


def _sequence(counts: dict) -> list:
    return [symbol for symbol, count in counts.items() for _ in range(count)]


def test_textbook_example():
    # CLRS 16.3: frequencies 45, 13, 12, 16, 9, 5 give lengths 1, 3, 3, 3, 4, 4 and 224 bits.
    counts = {0: 45, 1: 13, 2: 12, 3: 16, 4: 9, 5: 5}
    code = huffman_code(_sequence(counts))
    assert {symbol: len(bits) for symbol, bits in code.items()} == {0: 1, 1: 3, 2: 3, 3: 3,
                                                                    4: 4, 5: 4}
    assert huffman_bits(_sequence(counts)) == 224
    # Canonical: ordered by (length, symbol), code values count up.
    assert code == {0: "0", 1: "100", 2: "101", 3: "110", 4: "1110", 5: "1111"}


def test_single_and_no_symbol():
    assert huffman_code([7, 7, 7]) == {7: "0"}
    assert huffman_bits([7, 7, 7]) == 3
    assert huffman_code([]) == {} and huffman_bits([]) == 0


def test_code_depends_only_on_counts():
    symbols = _sequence({3: 5, 1: 5, 2: 5, 9: 1, 4: 2})
    shuffled = symbols[:]
    random.Random(0).shuffle(shuffled)
    assert huffman_code(symbols) == huffman_code(shuffled)
    assert huffman_code(np.array(symbols)) == huffman_code(symbols)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-3, 40), min_size=1, max_size=300))
def test_code_is_prefix_free_complete_and_within_the_entropy_bound(symbols):
    code = huffman_code(symbols)
    counts = Counter(symbols)
    assert set(code) == set(counts)
    assert code_is_prefix_free(code)
    total = huffman_bits(symbols)
    assert total == sum(len(code[symbol]) for symbol in symbols)
    if len(counts) > 1:
        # A Huffman tree is full: Kraft's sum is exactly one.
        assert sum(2.0 ** -len(bits) for bits in code.values()) == pytest.approx(1.0)
        entropy = -sum(count * math.log2(count / len(symbols)) for count in counts.values())
        assert entropy - 1e-9 <= total < entropy + len(symbols)
    ordered = sorted(code, key=lambda symbol: (len(code[symbol]), symbol))
    values = [int(code[symbol], 2) for symbol in ordered]
    lengths = [len(code[symbol]) for symbol in ordered]
    for (value_a, length_a), (value_b, length_b) in zip(zip(values, lengths),
                                                       zip(values[1:], lengths[1:])):
        assert value_b == (value_a + 1) << (length_b - length_a)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-2**63, 2**63 - 1) | st.integers(0, 5), max_size=200))
def test_encode_decode_round_trip(symbols):
    data = encode(symbols)
    assert isinstance(data, bytes)
    assert decode(data) == symbols


def test_encoded_size_is_header_table_and_code_bits():
    symbols = np.random.default_rng(0).integers(0, 16, 1000)
    data = encode(symbols)
    distinct = len(set(symbols.tolist()))
    assert len(data) == 8 + 9 * distinct + math.ceil(huffman_bits(symbols) / 8)
    assert decode(data) == symbols.tolist()


def test_skewed_data_compresses():
    symbols = [0] * 900 + list(range(1, 16)) * 6 + [15] * 10
    assert huffman_bits(symbols) < 2 * len(symbols)


def test_encode_refuses_non_integers():
    with pytest.raises(ConfigError, match="integer"):
        encode([1, 2.5])
    with pytest.raises(ConfigError, match="64 bits"):
        encode([2**64])


def test_mixed_unorderable_symbols_are_refused():
    with pytest.raises(ConfigError, match="comparable"):
        huffman_code([1, "a"])


@pytest.mark.parametrize("damage", [
    lambda data: data[:5],
    lambda data: data[:12],
    lambda data: data[:-1],
    lambda data: data[:8] + bytes([0] * 9) + data[17:],
])
def test_decode_refuses_damaged_data(damage):
    data = encode([0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3])
    with pytest.raises(ConfigError, match="Huffman data"):
        decode(damage(data))
