"""The EIE storage format: interleaved rows, per-PE CSC with 4-bit gaps and padding entries."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from accel.compress import EIEMatrix, encode_eie, pack_entries, unpack_entries
from accel.errors import ConfigError


def test_field_notes_example_column():
    column = np.array([0, 0, 1, 2] + [0] * 18 + [3])[:, None]
    matrix = encode_eie(column, num_pes=1)
    assert matrix.v[0].tolist() == [1, 2, 0, 3]
    assert matrix.z[0].tolist() == [2, 0, 15, 2]
    assert matrix.pointers[0].tolist() == [0, 4]
    assert matrix.v[0].dtype == np.uint8 and matrix.z[0].dtype == np.uint8
    assert matrix.padding_entries == 1
    assert np.array_equal(matrix.decode(), column)


@pytest.mark.parametrize("zeros, v, z", [
    (15, [5], [15]),              # the longest gap one entry can express
    (16, [0, 5], [15, 0]),        # one padding entry covers 16 rows
    (31, [0, 5], [15, 15]),
    (32, [0, 0, 5], [15, 15, 0]),
])
def test_padding_boundaries(zeros, v, z):
    column = np.array([0] * zeros + [5])[:, None]
    matrix = encode_eie(column, num_pes=1)
    assert matrix.v[0].tolist() == v and matrix.z[0].tolist() == z
    assert np.array_equal(matrix.decode(), column)


def test_rows_are_interleaved_over_pes():
    indices = np.array([
        [1, 0, 0],
        [0, 2, 0],
        [3, 0, 0],
        [0, 0, 0],
        [0, 4, 5],
    ])
    matrix = encode_eie(indices, num_pes=2)
    # PE 0 owns rows 0, 2, 4 (local 0, 1, 2); PE 1 owns rows 1, 3.
    assert matrix.v[0].tolist() == [1, 3, 4, 5] and matrix.z[0].tolist() == [0, 0, 2, 2]
    assert matrix.pointers[0].tolist() == [0, 2, 3, 4]
    assert matrix.v[1].tolist() == [2] and matrix.z[1].tolist() == [0]
    assert matrix.pointers[1].tolist() == [0, 0, 1, 1]
    assert matrix.entries_per_pe.tolist() == [4, 1]
    assert matrix.local_rows(0) == 3 and matrix.local_rows(1) == 2
    assert [list(part) for part in matrix.column_entries(0, 1)] == [[4], [2]]


def test_all_zero_matrix_and_more_pes_than_rows():
    matrix = encode_eie(np.zeros((3, 4), dtype=int), num_pes=5)
    assert matrix.entries_per_pe.tolist() == [0] * 5
    assert all(pointer.tolist() == [0] * 5 for pointer in matrix.pointers)
    assert not matrix.decode().any() and matrix.decode().shape == (3, 4)


@st.composite
def sparse_matrices(draw):
    rows, cols = draw(st.integers(1, 70)), draw(st.integers(1, 9))
    density = draw(st.sampled_from([0.0, 0.02, 0.1, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    indices = rng.integers(1, 16, size=(rows, cols)) * (rng.random((rows, cols)) < density)
    if draw(st.booleans()):
        indices[:, rng.integers(0, cols)] = 0  # an empty column
    return indices


@settings(max_examples=150, deadline=None)
@given(indices=sparse_matrices(), num_pes=st.integers(1, 16), index_bits=st.integers(1, 4))
def test_round_trip_and_invariants(indices, num_pes, index_bits):
    matrix = encode_eie(indices, num_pes, index_bits=index_bits)
    assert np.array_equal(matrix.decode(), indices)
    span = 1 << index_bits
    nonzeros = 0
    expected_padding = 0
    for pe in range(num_pes):
        pointer = matrix.pointers[pe]
        assert pointer.size == indices.shape[1] + 1 and pointer[0] == 0
        assert pointer[-1] == matrix.v[pe].size == matrix.z[pe].size
        assert np.all(np.diff(pointer) >= 0)
        assert matrix.z[pe].max(initial=0) < span
        local = indices[pe::num_pes]
        nonzeros += np.count_nonzero(local)
        for column in local.T:
            rows = np.flatnonzero(column)
            gaps = np.diff(rows, prepend=-1) - 1
            expected_padding += int(np.sum(gaps // span))
    assert matrix.padding_entries == expected_padding
    assert matrix.total_entries == nonzeros + expected_padding


def test_pack_entries_puts_v_in_the_low_nibble():
    packed = pack_entries(np.array([1, 2, 0, 3]), np.array([2, 0, 15, 2]))
    assert packed.dtype == np.uint8
    assert packed.tolist() == [0x21, 0x02, 0xF0, 0x23]
    v, z = unpack_entries(packed.tobytes())
    assert v.tolist() == [1, 2, 0, 3] and z.tolist() == [2, 0, 15, 2]


def test_pack_entries_refuses_wide_fields():
    with pytest.raises(ConfigError, match="below 16"):
        pack_entries(np.array([16]), np.array([0]))
    with pytest.raises(ConfigError, match="shape"):
        pack_entries(np.array([1, 2]), np.array([0]))


def test_storage_bits():
    indices = np.zeros((64, 10), dtype=int)
    indices[::3, ::2] = 7
    matrix = encode_eie(indices, num_pes=4)
    expected = matrix.total_entries * 8 + 4 * 11 * 16
    assert matrix.storage_bits() == expected
    assert matrix.storage_bits(pointer_bits=32) == expected + 4 * 11 * 16
    with pytest.raises(ConfigError, match="does not fit in 2 bits"):
        matrix.storage_bits(pointer_bits=2)


@pytest.mark.parametrize("kwargs", [
    {"indices": np.array([[16]])},
    {"indices": np.array([[-1]])},
    {"indices": np.array([1, 2])},
    {"indices": np.array([[1.0]])},
    {"num_pes": 0},
    {"index_bits": 0},
    {"index_bits": 9},
])
def test_bad_encode_arguments(kwargs):
    arguments = {"indices": np.array([[1, 0], [0, 2]]), "num_pes": 2}
    arguments.update(kwargs)
    with pytest.raises(ConfigError):
        encode_eie(**arguments)


def test_decode_refuses_entries_past_the_last_row():
    broken = EIEMatrix(rows=2, cols=1, num_pes=1, v=(np.array([0, 1], np.uint8),),
                       z=(np.array([15, 0], np.uint8),), pointers=(np.array([0, 2]),))
    with pytest.raises(ConfigError, match="runs past"):
        broken.decode()
