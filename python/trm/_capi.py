"""Loading libtrm and declaring its C API (include/trm.h) for ctypes.

Internal to the ``trm`` package: the public classes in ``trm/__init__.py`` are the interface.
Every function of trm.h is declared here with its argument and result types, so ctypes checks
and converts each argument instead of guessing (a guessed ``int`` would truncate pointers and
64-bit sizes).
"""
import ctypes
import ctypes.util
import os
from pathlib import Path

# ---- the constants of trm.h (values fixed by the ABI) ----

TRM_OK = 0
TRM_HALTED = 1
TRM_E_INVALID = -1
TRM_E_NOMEM = -2
TRM_E_IO = -3
TRM_E_FORMAT = -4
TRM_E_UNSUPPORTED = -5
TRM_E_STATE = -6

TRM_OPT_YIELD = 1
TRM_OPT_MAX_STEPS = 2
TRM_OPT_HALT = 3
TRM_OPT_THREADS = 4

TRM_YIELD_CALL = 0
TRM_YIELD_CYCLE = 1
TRM_YIELD_STEP = 2

TRM_HALT_FIXED = 0
TRM_HALT_Q = 1

TRM_LATENT_Y = 0
TRM_LATENT_Z = 1

TRM_EVENT_NONE = 0
TRM_EVENT_LATENT = 1
TRM_EVENT_ANSWER = 2
TRM_EVENT_STEP = 3

TRM_SLOT_EMPTY = 0
TRM_SLOT_RUNNING = 1
TRM_SLOT_HALTED = 2

# The oldest library version whose ABI this binding declares. Later minor versions only add
# symbols (lib/libtrm.map versions them: LIBTRM_0.2 extends LIBTRM_0.1); a different major is
# a different ABI.
ABI_VERSION = (0, 1)


class trm_event(ctypes.Structure):
    """struct trm_event of trm.h; ``size`` must be set to sizeof(trm_event) before a call."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("kind", ctypes.c_int),  # trm_event_kind: a C enum, int-sized
        ("step", ctypes.c_int64),
        ("cycle", ctypes.c_int32),
        ("call", ctypes.c_int32),
        ("calls", ctypes.c_int64),
        ("active", ctypes.c_size_t),
        ("halted", ctypes.c_size_t),
    ]


class trm_allocator(ctypes.Structure):
    """struct trm_allocator of trm.h (trm_set_allocator(), since 0.2)."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("malloc_fn", ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)),
        ("aligned_alloc_fn", ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t)),
        ("free_fn", ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)),
        ("user", ctypes.c_void_p),
    ]


class trm_train_metrics(ctypes.Structure):
    """struct trm_train_metrics of trm.h (the trainer, since 0.2); ``size`` set by the caller."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("step", ctypes.c_int64),
        ("samples", ctypes.c_uint64),
        ("epoch", ctypes.c_double),
        ("lr", ctypes.c_double),
        ("loss", ctypes.c_double),
        ("lm_loss", ctypes.c_double),
        ("q_halt_loss", ctypes.c_double),
        ("token_accuracy", ctypes.c_double),
        ("exact_accuracy", ctypes.c_double),
        ("q_halt_accuracy", ctypes.c_double),
        ("halted", ctypes.c_size_t),
        ("halted_exact_accuracy", ctypes.c_double),
        ("halted_mean_steps", ctypes.c_double),
    ]


_model_p = ctypes.c_void_p  # opaque trm_model *
_session_p = ctypes.c_void_p  # opaque trm_session *
_trainer_p = ctypes.c_void_p  # opaque trm_trainer *
_status = ctypes.c_int  # trm_status: a C enum
_f32_p = ctypes.POINTER(ctypes.c_float)
_i32_p = ctypes.POINTER(ctypes.c_int32)

# name: (restype, argtypes), one entry per declaration of include/trm.h
PROTOTYPES = {
    "trm_status_string": (ctypes.c_char_p, [_status]),
    "trm_version_string": (ctypes.c_char_p, []),
    "trm_last_error": (ctypes.c_char_p, []),
    "trm_set_allocator": (_status, [ctypes.POINTER(trm_allocator)]),
    "trm_model_load": (_status, [ctypes.c_char_p, ctypes.POINTER(_model_p)]),
    "trm_model_load_memory": (_status, [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(_model_p)]),
    "trm_model_free": (None, [_model_p]),
    "trm_model_info": (_status, [_model_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64)]),
    "trm_model_info_double": (_status, [_model_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_double)]),
    "trm_session_create": (_status, [_model_p, ctypes.c_size_t, ctypes.POINTER(_session_p)]),
    "trm_session_free": (None, [_session_p]),
    "trm_session_set_option": (_status, [_session_p, ctypes.c_int, ctypes.c_int64]),
    "trm_session_get_option": (_status, [_session_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int64)]),
    "trm_session_set_input": (_status, [_session_p, ctypes.c_size_t, _i32_p, ctypes.c_size_t, ctypes.c_int32]),
    "trm_refine": (_status, [_session_p, ctypes.POINTER(trm_event)]),
    "trm_session_slot_state": (
        _status,
        [_session_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int64)],
    ),
    "trm_session_logits": (_status, [_session_p, ctypes.c_size_t, _f32_p, ctypes.c_size_t]),
    "trm_session_answer": (_status, [_session_p, ctypes.c_size_t, _i32_p, _f32_p, ctypes.c_size_t]),
    "trm_session_q": (
        _status,
        [_session_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)],
    ),
    "trm_session_latent": (_status, [_session_p, ctypes.c_size_t, ctypes.c_int, _f32_p, ctypes.c_size_t]),
    "trm_session_set_latent": (_status, [_session_p, ctypes.c_size_t, ctypes.c_int, _f32_p, ctypes.c_size_t]),
    # the trainer (since 0.2): declared so that nothing reaches it with guessed types; the
    # package itself does not wrap it yet
    "trm_trainer_create": (_status, [ctypes.c_char_p, ctypes.POINTER(_trainer_p)]),
    "trm_trainer_create_from_model": (_status, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_trainer_p)]),
    "trm_trainer_free": (None, [_trainer_p]),
    "trm_trainer_set_option": (_status, [_trainer_p, ctypes.c_int, ctypes.c_double]),
    "trm_trainer_get_option": (_status, [_trainer_p, ctypes.c_int, ctypes.POINTER(ctypes.c_double)]),
    "trm_trainer_info": (_status, [_trainer_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64)]),
    "trm_trainer_set_data": (_status, [_trainer_p, _i32_p, _i32_p, _i32_p, ctypes.c_size_t, ctypes.c_int32]),
    "trm_trainer_step": (_status, [_trainer_p, ctypes.POINTER(trm_train_metrics)]),
    "trm_trainer_save_model": (_status, [_trainer_p, ctypes.c_char_p, ctypes.c_int]),
    "trm_trainer_model": (_status, [_trainer_p, ctypes.c_int, ctypes.POINTER(_model_p)]),
    "trm_trainer_save_checkpoint": (_status, [_trainer_p, ctypes.c_char_p]),
    "trm_trainer_load_checkpoint": (_status, [ctypes.c_char_p, ctypes.POINTER(_trainer_p)]),
}


def _candidates():
    """Where to look for libtrm, in order: (description, path or name for dlopen)."""
    env = os.environ.get("TRM_LIBRARY")
    if env:
        # an explicit choice is the only one: falling back would hide a wrong setting
        return [("$TRM_LIBRARY", env)]
    found = []
    # python/trm/_capi.py -> the repository root is two levels above the package
    repo_root = Path(__file__).resolve().parent.parent.parent
    in_tree = repo_root / "build" / "make" / "libtrm.so"
    if in_tree.exists():
        found.append(("the build tree", str(in_tree)))
    system = ctypes.util.find_library("trm")
    if system:
        found.append(("the system (find_library)", system))
    found.append(("the system (SONAME)", "libtrm.so.0"))
    return found


# added after 0.1: a 0.1 library lacks them, and the binding runs without them
OPTIONAL = {"trm_set_allocator"} | {name for name in PROTOTYPES if name.startswith("trm_trainer_")}


def _declare(lib):
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:  # not a libtrm, or one without this symbol
            if name in OPTIONAL:
                continue
            raise
        fn.restype = restype
        fn.argtypes = argtypes


def load():
    """Opens libtrm and declares its functions; returns (CDLL, path it was loaded from).

    Raises ImportError naming every place tried when none gives a usable libtrm."""
    tried = []
    for where, path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            _declare(lib)
        except (OSError, AttributeError) as e:
            tried.append(f"{where}: {path}: {e}")
            continue
        version = lib.trm_version_string().decode()
        try:
            major_minor = tuple(int(part) for part in version.split(".")[:2])
        except ValueError:
            major_minor = None
        if major_minor is None or major_minor[0] != ABI_VERSION[0] or major_minor < ABI_VERSION:
            tried.append(
                f"{where}: {path}: libtrm {version}, this binding needs "
                f"{ABI_VERSION[0]}.x with x >= {ABI_VERSION[1]}"
            )
            continue
        return lib, path
    raise ImportError(
        "trm: no usable libtrm shared library. Set TRM_LIBRARY to the path of libtrm.so, "
        "build it with `make` in the repository, or install it. Tried:\n  " + "\n  ".join(tried)
    )
