#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_npy (tests/fuzz/corpus/npy/): small .npy files numpy writes
(every integer dtype, format versions 1.0 to 3.0, 0 to 3 dimensions, empty arrays) and
near-valid ones the reader must refuse (floats, big-endian, Fortran order, truncated data,
a bad magic). Run from the repository root: python3 tests/fuzz/make_npy_corpus.py"""
import io
import os
import sys

import numpy as np
from numpy.lib import format as npformat

out = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus/npy"
os.makedirs(out, exist_ok=True)


def save(name, array, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array)
    else:
        npformat.write_array(buf, array, version=version)
    data = buf.getvalue()
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    return data


rng = np.random.default_rng(7)
for dt in ["i1", "u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8"]:
    info = np.iinfo(dt)
    values = np.array([info.min, info.max, 0, 1, -1 if info.min < 0 else 2, 5], dtype=dt)
    save("vec_%s.npy" % dt.strip("<|"), values)
save("sudoku_like_2d.npy", rng.integers(0, 10, size=(3, 81), dtype=np.uint8))
save("matrix_3d.npy", rng.integers(-5, 5, size=(2, 3, 4), dtype=np.int32))
save("scalar.npy", np.array(42, dtype=np.int64))
save("empty.npy", np.zeros((0, 9), dtype=np.int16))
save("v2.npy", np.arange(6, dtype=np.int32).reshape(2, 3), version=(2, 0))
save("v3.npy", np.arange(4, dtype=np.uint16), version=(3, 0))
# refused
save("float32.npy", np.arange(4, dtype=np.float32))
save("big_endian.npy", np.arange(4, dtype=">i4"))
save("fortran.npy", np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)))
save("bool.npy", np.array([True, False]))
whole = save("truncated.npy", np.arange(8, dtype=np.int64))
with open(os.path.join(out, "truncated.npy"), "wb") as f:
    f.write(whole[:-5])
with open(os.path.join(out, "trailing_bytes.npy"), "wb") as f:
    f.write(whole + b"\0\0\0\0\0\0\0\0")
with open(os.path.join(out, "bad_magic.npy"), "wb") as f:
    f.write(b"\x93NUMPX" + whole[6:])
