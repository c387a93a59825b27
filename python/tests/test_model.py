"""The library, the errors and trm.Model."""
import gc
import os
import subprocess
import sys

import numpy as np
import pytest

import trm
from conftest import REPO, safetensors_bytes

INT_KEYS = [
    "hidden_size", "num_heads", "L_layers", "H_cycles", "L_cycles", "seq_len", "vocab_size",
    "num_puzzle_identifiers", "puzzle_emb_ndim", "puzzle_emb_len", "halt_max_steps", "mlp_t",
    "no_ACT_continue", "pos_encodings", "state_len", "head_dim", "inter_size", "inter_t_size",
    "param_count", "isa",
]  # fmt: skip
DOUBLE_KEYS = ["rms_norm_eps", "rope_theta", "expansion"]


# ---- the library ----


def test_version_matches_header():
    header = (REPO / "include" / "trm.h").read_text()
    parts = []
    for name in ("MAJOR", "MINOR", "PATCH"):
        line = next(l for l in header.splitlines() if l.startswith(f"#define TRM_VERSION_{name} "))
        parts.append(line.split()[2])
    assert trm.version() == ".".join(parts)


def test_library_path_is_the_one_under_test():
    wanted = os.environ.get("TRM_LIBRARY")
    if wanted:
        assert trm.library_path == wanted


def _import_with(env_changes):
    env = dict(os.environ)
    env.update(env_changes)
    code = f"import sys; sys.path.insert(0, {str(REPO / 'python')!r}); import trm; print(trm.library_path)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_trm_library_wrong_path_is_a_clear_import_error(tmp_path):
    missing = tmp_path / "no-such-libtrm.so"
    r = _import_with({"TRM_LIBRARY": str(missing)})
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "TRM_LIBRARY" in r.stderr and str(missing) in r.stderr


def test_trm_library_not_a_libtrm(tmp_path):
    # a real shared library without libtrm's symbols: refused, not half-loaded
    import ctypes.util

    libm = ctypes.util.find_library("m")
    if not libm:
        pytest.skip("no libm to try")
    r = _import_with({"TRM_LIBRARY": libm})
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "trm_" in r.stderr


def test_trm_library_is_used():
    wanted = os.environ.get("TRM_LIBRARY")
    if not wanted:
        pytest.skip("TRM_LIBRARY not set")
    r = _import_with({})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == wanted


def test_build_tree_found_without_trm_library():
    in_tree = REPO / "build" / "make" / "libtrm.so"
    if not in_tree.exists():
        pytest.skip(f"{in_tree} not built")
    env = {k: v for k, v in os.environ.items() if k != "TRM_LIBRARY"}
    code = f"import sys; sys.path.insert(0, {str(REPO / 'python')!r}); import trm; print(trm.library_path)"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(in_tree)


# ---- errors ----

STATUS_CLASSES = [
    (-1, trm.InvalidArgument, ValueError),
    (-2, trm.NoMemory, MemoryError),
    (-3, trm.IOError, OSError),
    (-4, trm.FormatError, None),
    (-5, trm.Unsupported, None),
    (-6, trm.StateError, None),
]


@pytest.mark.parametrize("status,cls,builtin", STATUS_CLASSES)
def test_error_classes(status, cls, builtin):
    assert cls.status == status
    assert issubclass(cls, trm.Error)
    if builtin:
        assert issubclass(cls, builtin)
    e = cls("what went wrong")
    assert e.status == status and e.message == "what went wrong"
    assert str(e).startswith("TRM_E_") and str(e).endswith("what went wrong")


def test_base_error_without_status():
    e = trm.Error("plain")
    assert e.status is None and str(e) == "libtrm error: plain"


def test_error_classes_distinct():
    classes = [c for _, c, _ in STATUS_CLASSES]
    assert len(set(classes)) == len(classes)
    assert issubclass(trm.ClosedError, trm.StateError)


def test_check_maps_every_status():
    from trm import _check

    assert _check(0) == 0 and _check(1) == 1  # TRM_OK, TRM_HALTED are not errors
    for status, cls, _ in STATUS_CLASSES:
        with pytest.raises(cls) as info:
            _check(status)
        assert info.value.status == status
    with pytest.raises(trm.Error) as info:
        _check(-99)
    assert info.value.status == -99 and "unknown status" in str(info.value)


# ---- loading ----


def test_load_and_config(demo, demo_file):
    meta, tensors = demo_file
    assert set(demo.config) == set(INT_KEYS + DOUBLE_KEYS)
    for key in INT_KEYS:
        assert isinstance(demo.config[key], int) and demo.config[key] == demo.info(key)
    for key in DOUBLE_KEYS:
        assert isinstance(demo.config[key], float) and demo.config[key] == demo.info(key)
    # the file's own metadata, read without libtrm
    for key in ("hidden_size", "num_heads", "L_layers", "H_cycles", "L_cycles", "seq_len", "vocab_size",
                "num_puzzle_identifiers", "puzzle_emb_ndim", "puzzle_emb_len", "halt_max_steps"):  # fmt: skip
        assert demo.config[key] == int(meta[key]), key
    assert demo.config["rms_norm_eps"] == pytest.approx(float(meta["rms_norm_eps"]))
    assert demo.config["rope_theta"] == float(meta["rope_theta"])
    assert demo.config["mlp_t"] == 0 and demo.config["pos_encodings"] == 1  # rope
    c = demo.config
    assert c["state_len"] == c["seq_len"] + c["puzzle_emb_len"]
    assert c["head_dim"] * c["num_heads"] == c["hidden_size"]
    assert c["param_count"] == sum(t.size for t in tensors.values())
    assert demo.isa in ("scalar", "avx2", "avx512", "neon")
    assert "seq_len 16" in repr(demo)


def test_load_pathlike_and_from_bytes(demo_path):
    from pathlib import Path

    with trm.Model(Path(demo_path)) as a:
        data = Path(demo_path).read_bytes()
        for buf in (data, bytearray(data), memoryview(data)):
            with trm.Model.from_bytes(buf) as b:
                assert b.config == a.config
                assert b.path is None and "(memory)" in repr(b)


def test_info_unknown_key(demo):
    with pytest.raises(trm.InvalidArgument, match="unknown key 'no_such_key'"):
        demo.info("no_such_key")
    with pytest.raises(trm.InvalidArgument):
        demo.info(3)
    with pytest.raises(trm.InvalidArgument):
        demo.info("seq\0len")


def test_load_missing_file(tmp_path):
    missing = tmp_path / "none.safetensors"
    with pytest.raises(trm.IOError) as info:
        trm.Model(missing)
    assert info.value.status == -3 and str(missing) in info.value.message
    assert isinstance(info.value, OSError)


def test_load_directory(tmp_path):
    with pytest.raises(trm.IOError):
        trm.Model(tmp_path)


def test_load_bad_path_argument():
    with pytest.raises(trm.InvalidArgument, match="NUL"):
        trm.Model("a\0b")
    with pytest.raises(trm.InvalidArgument):
        trm.Model(42)
    with pytest.raises(trm.InvalidArgument):
        trm.Model.from_bytes(42)


def test_load_malformed(tmp_path, demo_path):
    data = open(demo_path, "rb").read()
    cases = {
        "empty": b"",
        "short": data[:5],
        "header past the end": (10**6).to_bytes(8, "little") + b"{}",
        "not json": (8).to_bytes(8, "little") + b"{nonsense",
        "truncated data": data[: len(data) - 100],
    }
    for what, content in cases.items():
        with pytest.raises(trm.FormatError) as info:
            trm.Model.from_bytes(content)
        assert info.value.status == -4 and info.value.message, what
        path = tmp_path / "bad.safetensors"
        path.write_bytes(content)
        with pytest.raises(trm.FormatError):
            trm.Model(path)


def test_load_inconsistent_or_unsupported(demo_file):
    meta, tensors = demo_file
    # a tensor missing
    fewer = {k: v for k, v in tensors.items() if k != "lm_head.weight"}
    with pytest.raises(trm.FormatError, match="lm_head.weight"):
        trm.Model.from_bytes(safetensors_bytes(meta, fewer))
    # a shape against the configuration
    with pytest.raises(trm.FormatError):
        trm.Model.from_bytes(safetensors_bytes(dict(meta, hidden_size="64"), tensors))
    # a non-finite weight
    bad = dict(tensors)
    bad["q_head.bias"] = np.array([np.nan, 0], np.float32)
    with pytest.raises(trm.FormatError):
        trm.Model.from_bytes(safetensors_bytes(meta, bad))
    # a well-formed dtype libtrm does not compute with (4 bytes, like F32)
    with pytest.raises(trm.Unsupported) as info:
        trm.Model.from_bytes(safetensors_bytes(meta, tensors, dtypes={"q_head.weight": "I32"}))
    assert info.value.status == -5


def test_close(demo_path):
    m = trm.Model(demo_path)
    assert not m.closed
    m.close()
    m.close()  # idempotent
    assert m.closed and repr(m) == "<trm.Model closed>"
    with pytest.raises(trm.ClosedError, match="closed"):
        m.info("seq_len")
    with pytest.raises(trm.ClosedError):
        m.session()
    with pytest.raises(trm.ClosedError):
        with m:
            pass
    assert m.config["seq_len"] == 16  # the Python-side copy stays readable


def test_context_manager_closes_on_error(demo_path):
    with pytest.raises(RuntimeError):
        with trm.Model(demo_path) as m:
            raise RuntimeError("boom")
    assert m.closed


def test_garbage_collected_without_close(demo_path):
    for _ in range(20):
        m = trm.Model(demo_path)
        s = m.session(batch=2)
        s.set_input(0, [1] * 16)
        del m, s
    gc.collect()
    # a cycle holding a session and its model: freed in whichever order the collector picks
    m = trm.Model(demo_path)
    s = m.session()
    holder = {"s": s, "m": m}
    holder["self"] = holder
    m.cycle = holder
    del m, s, holder
    gc.collect()


# ---- the declarations against include/trm.h ----


def header_functions():
    """{name: number of parameters} of every TRM_API function in include/trm.h."""
    import re

    text = (REPO / "include" / "trm.h").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # comments
    found = {}
    for ret, name, params in re.findall(r"TRM_API\s+([\w\s\*]+?)\s*\**\s*(trm_\w+)\s*\(([^)]*)\)\s*;", text):
        params = " ".join(params.split())
        found[name] = 0 if params in ("void", "") else params.count(",") + 1
    return found


def test_every_header_function_is_declared():
    from trm import _capi

    declared = header_functions()
    assert len(declared) >= 20, declared  # the parser found the API
    assert set(_capi.PROTOTYPES) == set(declared)
    for name, n_params in declared.items():
        restype, argtypes = _capi.PROTOTYPES[name]
        assert len(argtypes) == n_params, name
        fn = getattr(trm._lib, name, None)
        if fn is None:
            assert name in _capi.OPTIONAL, f"{name} missing from the library"
            continue
        assert fn.argtypes == argtypes and fn.restype is restype


def test_event_struct_layout():
    import ctypes

    from trm import _capi

    # struct trm_event on LP64: size_t, enum (padded), int64, int32, int32, int64, size_t, size_t
    assert ctypes.sizeof(_capi.trm_event) == 8 + 8 + 8 + 4 + 4 + 8 + 8 + 8
    assert _capi.trm_event.step.offset == 16 and _capi.trm_event.calls.offset == 32


def test_train_metrics_struct_layout():
    import ctypes

    from trm import _capi

    # struct trm_train_metrics on LP64: size_t, int64, uint64, 8 doubles, size_t, 2 doubles
    assert ctypes.sizeof(_capi.trm_train_metrics) == 14 * 8
    assert _capi.trm_train_metrics.halted.offset == 88 and _capi.trm_train_metrics.halted_mean_steps.offset == 104


def test_trainer_declarations_reach_the_library(tmp_path):
    import ctypes

    from trm import _capi

    if not hasattr(trm._lib, "trm_trainer_create"):
        pytest.skip("libtrm without the trainer")
    trainer = ctypes.c_void_p()
    assert trm._lib.trm_trainer_create(b"no_such_key = 1\n", ctypes.byref(trainer)) == _capi.TRM_E_INVALID
    assert trainer.value is None
    assert b"no_such_key" in trm._lib.trm_last_error()


def test_set_allocator_declaration():
    import ctypes

    from trm import _capi

    if not hasattr(trm._lib, "trm_set_allocator"):
        pytest.skip("libtrm older than 0.2")
    assert trm._lib.trm_set_allocator(None) == 0  # back to the C library's functions
    small = _capi.trm_allocator(size=1)
    assert trm._lib.trm_set_allocator(ctypes.byref(small)) == -1
    # the library's sizeof(trm_allocator) is the binding's
    message = trm._lib.trm_last_error().decode()
    assert f"sizeof(trm_allocator) = {ctypes.sizeof(_capi.trm_allocator)}" in message, message
