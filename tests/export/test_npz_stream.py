"""The streaming npz writer: valid zips numpy reads, CRCs from pieces, zip64, same bytes every time."""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np
import pytest

from rs_embed.io.npz import (NpzStreamWriter, Piece, array_bytes, compress_piece, crc32_combine, npy_header,
                             write_npz, write_npz_pieces)


def test_crc32_combine_matches_zlib():
    rng = np.random.default_rng(1)
    for n1, n2 in [(0, 5), (7, 0), (1, 1), (1000, 65536), (12345, 640000)]:
        a, b = rng.bytes(n1), rng.bytes(n2)
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_rows_compressed_apart_assemble_into_one_array(tmp_path):
    x = np.random.default_rng(0).normal(size=(7, 3, 5, 4)).astype(np.float32)
    pieces = [compress_piece(npy_header(x.dtype, x.shape))] + [compress_piece(array_bytes(r)) for r in x]
    # pieces can also live in a file (as the checkpoint shards do)
    blob = tmp_path / "rows.bin"
    refs, off = [], 0
    with open(blob, "wb") as fh:
        for p in pieces[1:]:
            fh.write(p.data)
            refs.append(p.to_ref(off))
            off += p.length
    from_file = [pieces[0]] + [Piece.from_ref(str(blob), r) for r in refs]
    write_npz_pieces(str(tmp_path / "a.npz"), [("x", from_file), ("first", [compress_piece(npy_header(x.dtype, x[0].shape)), pieces[1]])])
    with zipfile.ZipFile(tmp_path / "a.npz") as z:
        assert z.testzip() is None and z.namelist() == ["x.npy", "first.npy"]
    with np.load(tmp_path / "a.npz") as z:
        np.testing.assert_array_equal(z["x"], x)
        np.testing.assert_array_equal(z["first"], x[0])


def test_same_arrays_same_bytes(tmp_path):
    arrays = {"a": np.arange(100, dtype=np.float32), "b": np.ones((2, 3), np.float64)}
    write_npz(str(tmp_path / "1.npz"), arrays)
    write_npz(str(tmp_path / "2.npz"), arrays)
    assert (tmp_path / "1.npz").read_bytes() == (tmp_path / "2.npz").read_bytes()
    with np.load(tmp_path / "1.npz") as z:
        assert z["b"].dtype == np.float64 and z["a"][99] == 99


def test_more_than_65535_entries_use_zip64(tmp_path):
    path = tmp_path / "many.npz"
    one = np.zeros(1, np.float32)
    hdr = compress_piece(npy_header(one.dtype, one.shape), 0)
    body = compress_piece(array_bytes(one), 0)
    with open(path, "wb") as fh:
        w = NpzStreamWriter(fh)
        for i in range(70000):
            w.add_pieces(f"k{i}", [hdr, body])
        w.close()
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    assert len(names) == 70000
    with np.load(path) as z:
        assert z["k69999"].shape == (1,)


def test_duplicate_keys_are_refused(tmp_path):
    with open(tmp_path / "d.npz", "wb") as fh:
        w = NpzStreamWriter(fh)
        w.add_array("a", np.zeros(2))
        with pytest.raises(ValueError, match="duplicate"):
            w.add_array("a", np.zeros(2))


def test_a_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(TypeError, match="Python objects"):
        write_npz(str(tmp_path / "x.npz"), {"a": np.zeros(3, np.float32), "b": object()})
    assert os.listdir(tmp_path) == []
