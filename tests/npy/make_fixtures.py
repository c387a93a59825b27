"""Writes .npy files with numpy for tests/test_npy.c: python3 make_fixtures.py DIR

DIR/good.txt lists files the reader must accept: "FILE DTYPE SAVED_BY NDIM DIM..." where
SAVED_BY is "save" (np.save, format 1.0: the C writer must reproduce its bytes) or "v2"/"v3"
(format 2.0/3.0 headers). Values follow the formula test_npy.c recomputes: for flat index i,
u = (i * 0x9E3779B97F4A7C15 + 0x1234567) mod 2**64, cut to the dtype's width, two's complement
for signed dtypes, the top bit cleared for uint64 (values above INT64_MAX are refused).
DIR/bad.txt lists files it must refuse: "FILE WORD", WORD a word the message must contain.
"""
import os
import sys

import numpy as np

DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
SHAPES = [(), (0,), (7,), (3, 4), (2, 0, 3), (2, 3, 4), (1, 1, 1, 1, 1, 1, 1, 2)]


def values(dtype, count):
    bits = np.dtype(dtype).itemsize * 8
    out = []
    for i in range(count):
        u = (i * 0x9E3779B97F4A7C15 + 0x1234567) % 2**64
        u %= 2**bits
        if dtype == "uint64":
            u &= 2**63 - 1
        if dtype.startswith("int") and u >= 2 ** (bits - 1):
            u -= 2**bits
        out.append(u)
    return np.array(out, dtype=dtype)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    good = []
    for dtype in DTYPES:
        for shape in SHAPES:
            count = int(np.prod(shape))
            arr = values(dtype, count).reshape(shape)
            name = "%s_%s.npy" % (dtype, "x".join(map(str, shape)) or "scalar")
            np.save(os.path.join(out, name), arr)
            good.append("%s %s save %d %s" % (name, dtype, len(shape), " ".join(map(str, shape))))
        for version in (2, 3):
            arr = values(dtype, 6).reshape(2, 3)
            name = "%s_v%d.npy" % (dtype, version)
            with open(os.path.join(out, name), "wb") as f:
                np.lib.format.write_array(f, arr, version=(version, 0))
            good.append("%s %s v%d 2 2 3" % (name, dtype, version))
    with open(os.path.join(out, "good.txt"), "w") as f:
        f.write("\n".join(good) + "\n")

    bad = [
        ("float32.npy", np.arange(4, dtype="<f4"), "floating"),
        ("float64.npy", np.arange(4, dtype="<f8"), "floating"),
        ("float16.npy", np.arange(4, dtype="<f2"), "floating"),
        ("complex.npy", np.arange(4, dtype="<c8"), "floating"),
        ("big_endian_i4.npy", np.arange(4, dtype=">i4"), "big-endian"),
        ("big_endian_u8.npy", np.arange(4, dtype=">u8"), "big-endian"),
        ("fortran.npy", np.asfortranarray(np.arange(6, dtype="<i4").reshape(2, 3)), "Fortran"),
        ("bool.npy", np.array([True, False]), "boolean"),
        ("unicode.npy", np.array(["abc"]), "dtype"),
        ("bytes.npy", np.array([b"abc"]), "dtype"),
        ("structured.npy", np.zeros(2, dtype=[("a", "<i4")]), "descr"),
        ("datetime.npy", np.array(["2020-01-01"], dtype="datetime64[D]"), "dtype"),
        ("object.npy", np.array([1, "a"], dtype=object), "object"),
        ("uint64_big.npy", np.array([2**63], dtype="<u8"), "INT64_MAX"),
    ]
    lines = []
    for name, arr, word in bad:
        np.save(os.path.join(out, name), arr, allow_pickle=True)
        lines.append("%s %s" % (name, word))
    with open(os.path.join(out, "bad.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
