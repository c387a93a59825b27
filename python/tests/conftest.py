"""Fixtures for the trm binding's tests.

Environment (mk/python.mk sets both):
  TRM_LIBRARY  the libtrm.so under test (the package itself reads it)
  TRM_BUILD    the build directory holding conformance/<case>/ (converted models and the
               reference outputs as .npy); default build/make of this repository
"""
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
# the package under test is the one in this tree, whether or not another is installed
sys.path.insert(0, str(REPO / "python"))

import trm  # noqa: E402

DEMO = REPO / "models" / "demo.safetensors"


def build_dir():
    return Path(os.environ.get("TRM_BUILD", REPO / "build" / "make"))


def conformance_case(case):
    """(model file, directory of the reference .npy files) of a conformance case as the build
    made them: the Makefile's conformance/CASE/{model.safetensors,*.npy} or meson's
    CASE.safetensors and CASE_ref/."""
    b = build_dir()
    make_dir = b / "conformance" / case
    if (make_dir / "model.safetensors").exists():
        assert (make_dir / "ref.stamp").exists(), f"{make_dir}: reference outputs not unpacked"
        return make_dir / "model.safetensors", make_dir
    if (b / f"{case}.safetensors").exists():
        return b / f"{case}.safetensors", b / f"{case}_ref"
    raise AssertionError(f"conformance case {case} is not built in {b}: run `make B={b} check-python`")


def c_example():
    """The C example program of the build (Makefile: examples/step; meson: step), or None."""
    for candidate in (build_dir() / "examples" / "step", build_dir() / "step"):
        if candidate.is_file():
            return candidate
    return None


# ---- a minimal safetensors reader and writer, independent of libtrm ----


def read_safetensors(path):
    """(metadata dict, {name: float32 array}) of a model file; F32 and BF16 only."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n :]
    tensors = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        raw = body[begin:end]
        if t["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif t["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{name}: dtype {t['dtype']} not handled by the test reader")
        tensors[name] = arr.reshape(t["shape"])
    return meta, tensors


def safetensors_bytes(meta, tensors, dtypes=None):
    """A safetensors file's bytes: float32 tensors (or the raw dtype strings given in
    ``dtypes`` for the same 4-byte payload) and string metadata."""
    dtypes = dtypes or {}
    header = {"__metadata__": dict(meta)}
    chunks, offset = [], 0
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {
            "dtype": dtypes.get(name, "F32"),
            "shape": list(np.shape(tensors[name])),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


@pytest.fixture(scope="session")
def demo_path():
    assert DEMO.exists(), f"{DEMO} is missing"
    return str(DEMO)


@pytest.fixture(scope="session")
def demo_file():
    """(metadata, tensors) of the demo model, read without libtrm."""
    return read_safetensors(DEMO)


@pytest.fixture
def demo(demo_path):
    with trm.Model(demo_path) as m:
        yield m


@pytest.fixture
def make_model(demo_file, tmp_path):
    """Writes a variant of the demo model and loads it: make_model(meta={...}, tensors={...})
    overrides metadata entries (None deletes) and tensors. Returns the trm.Model."""
    made = []

    def make(meta=None, tensors=None, path=None):
        base_meta, base_tensors = demo_file
        new_meta = dict(base_meta)
        for k, v in (meta or {}).items():
            if v is None:
                new_meta.pop(k, None)
            else:
                new_meta[k] = v
        new_tensors = dict(base_tensors)
        new_tensors.update(tensors or {})
        target = path or tmp_path / f"variant{len(made)}.safetensors"
        target.write_bytes(safetensors_bytes(new_meta, new_tensors))
        m = trm.Model(target)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


def puzzle(config, k=0):
    """Puzzle number k: token i is (7 i + 3 k + 1) mod vocab, as tests/test_api.c makes them."""
    return [(i * 7 + 3 * k + 1) % config["vocab_size"] for i in range(config["seq_len"])]
