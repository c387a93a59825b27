#!/usr/bin/env python3
"""Unpacks a conformance case's NAME.npz into one .npy file per array, for the C test to read.

The .npz files are compressed zips, which the C test does not read; numpy rewrites each array
as a plain little-endian .npy. Nothing is computed here."""
import sys
import os

import numpy as np


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: unpack_npz.py CASE.npz OUTDIR")
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with np.load(src) as arrays:
        for name in arrays.files:
            a = arrays[name]
            a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))
            np.save(os.path.join(out, name + ".npy"), a)


if __name__ == "__main__":
    main()
