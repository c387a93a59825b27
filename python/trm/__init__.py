"""Python binding of libtrm: run Tiny Recursive Models one recursion step at a time.

Pure Python over the C library (ctypes) and numpy::

    import trm
    with trm.Model("model.safetensors") as m:
        s = m.session(batch=1, max_steps=16, halt="q")
        s.set_input(0, tokens)                 # seq_len token ids
        for ev in s.refine(unit="step"):       # until every slot has halted
            answer, confidence = s.answer(0)
            print(ev.step, answer, confidence.mean(), s.q(0)[0])

The shared library is found through the environment variable ``TRM_LIBRARY`` (a path to
libtrm.so), else the build tree of the repository this package sits in (build/make/libtrm.so),
else the system's libtrm.so.0. Every failure of the library raises a subclass of
:class:`trm.Error` carrying the library's status and message.
"""
import ctypes
import operator
import os
import threading
from dataclasses import dataclass

import numpy as np

from . import _capi

__all__ = [
    "Error",
    "InvalidArgument",
    "NoMemory",
    "IOError",
    "FormatError",
    "Unsupported",
    "StateError",
    "ClosedError",
    "Event",
    "Model",
    "Session",
    "version",
    "library_path",
]

_lib, library_path = _capi.load()
"""library_path: the file or name libtrm was loaded from."""

__version__ = "0.1.0"


def version():
    """The version of the loaded libtrm, as "MAJOR.MINOR.PATCH"."""
    return _lib.trm_version_string().decode()


# ---- errors ----


class Error(Exception):
    """A libtrm call failed.

    Attributes:
        status: the trm_status (a negative int, e.g. -1 for TRM_E_INVALID).
        message: the library's detailed reason (trm_last_error()), or the binding's own when
            it refused the call before reaching the library.
    """

    status = None

    def __init__(self, message, status=None):
        if status is not None:
            self.status = status
        self.message = message
        name = _lib.trm_status_string(self.status).decode() if isinstance(self.status, int) else "libtrm error"
        super().__init__(f"{name}: {message}" if message else name)

    def __str__(self):
        return self.args[0]


class InvalidArgument(Error, ValueError):
    """TRM_E_INVALID: an argument is invalid (out of range, wrong length, shape or type)."""

    status = _capi.TRM_E_INVALID


class NoMemory(Error, MemoryError):
    """TRM_E_NOMEM: an allocation failed (or the request could never fit in memory)."""

    status = _capi.TRM_E_NOMEM


class IOError(Error, OSError):  # noqa: A001 - named after TRM_E_IO; also an OSError
    """TRM_E_IO: a file could not be opened or read."""

    status = _capi.TRM_E_IO


class FormatError(Error):
    """TRM_E_FORMAT: a model file is malformed or inconsistent with its configuration."""

    status = _capi.TRM_E_FORMAT


class Unsupported(Error):
    """TRM_E_UNSUPPORTED: well-formed, but uses something this libtrm does not implement."""

    status = _capi.TRM_E_UNSUPPORTED


class StateError(Error):
    """TRM_E_STATE: the call is not allowed in the object's current state (e.g. a slot
    without input)."""

    status = _capi.TRM_E_STATE


class ClosedError(StateError):
    """The Model or Session was closed; its handle can no longer be used."""


_ERRORS = {cls.status: cls for cls in (InvalidArgument, NoMemory, IOError, FormatError, Unsupported, StateError)}


def _check(status):
    """Raises the Error subclass for a failed status with the library's message; returns the
    status otherwise (TRM_OK or TRM_HALTED)."""
    if status >= 0:
        return status
    # read on the same thread right after the call: the message is thread-local
    message = _lib.trm_last_error().decode(errors="replace")
    cls = _ERRORS.get(status)
    if cls is None:
        raise Error(message, status)
    raise cls(message)


# ---- argument checks done in Python, before any pointer reaches C ----


def _index(value, what):
    """A non-negative Python int from an int-like value, or InvalidArgument."""
    if isinstance(value, (bool, np.bool_)):
        raise InvalidArgument(f"{what} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise InvalidArgument(f"{what} must be an integer, got {type(value).__name__}") from None
    if value < 0:
        raise InvalidArgument(f"{what} must be >= 0, got {value}")
    return value


_INT32 = np.iinfo(np.int32)
_INT64 = np.iinfo(np.int64)


def _tokens_array(tokens, seq_len):
    """tokens as a C-contiguous int32 array of seq_len ids, or InvalidArgument."""
    try:
        arr = np.asarray(tokens)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"tokens: not a sequence of integers ({e})") from None
    if arr.ndim != 1:
        raise InvalidArgument(f"tokens: need a 1-D sequence of {seq_len} ids, got shape {arr.shape}")
    if arr.shape[0] != seq_len:
        raise InvalidArgument(f"tokens: {arr.shape[0]} given, the model takes seq_len = {seq_len}")
    if arr.dtype == object or arr.dtype.kind not in "iu":
        if arr.dtype.kind == "b":
            raise InvalidArgument("tokens: booleans are not token ids")
        raise InvalidArgument(f"tokens: need integer token ids, got dtype {arr.dtype}")
    if arr.size and (arr.min() < _INT32.min or arr.max() > _INT32.max):
        # checked before the cast so that no id can wrap around into a valid one
        bad = int(np.flatnonzero((arr < _INT32.min) | (arr > _INT32.max))[0])
        raise InvalidArgument(f"tokens: token {bad} is {int(arr[bad])}, outside int32")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _f32_ptr(arr):
    return arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def _i32_ptr(arr):
    return arr.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))


# ---- model ----

# the keys of trm_model_info / trm_model_info_double (include/trm.h)
_INT_KEYS = (
    "hidden_size",
    "num_heads",
    "L_layers",
    "H_cycles",
    "L_cycles",
    "seq_len",
    "vocab_size",
    "num_puzzle_identifiers",
    "puzzle_emb_ndim",
    "puzzle_emb_len",
    "halt_max_steps",
    "mlp_t",
    "no_ACT_continue",
    "pos_encodings",
    "state_len",
    "head_dim",
    "inter_size",
    "inter_t_size",
    "param_count",
    "isa",
)
_DOUBLE_KEYS = ("rms_norm_eps", "rope_theta", "expansion")
_ISA_NAMES = {0: "scalar", 1: "avx2", 2: "avx512", 3: "neon"}


class Model:
    """A loaded TRM model: configuration and weights, immutable once loaded.

    ``Model(path)`` loads a model file (safetensors with libtrm metadata; see docs/FORMAT.md);
    :meth:`from_bytes` loads one from memory. Use it as a context manager or call
    :meth:`close`. Sessions keep their model alive: closing a model that still has open
    sessions frees it only once the last of them is closed.

    Attributes:
        path: the file it was loaded from (None for :meth:`from_bytes`).
        config: dict of every fact trm_model_info / trm_model_info_double report, under the
            reference configuration names (hidden_size, num_heads, H_cycles, L_cycles,
            L_layers, seq_len, vocab_size, ..., rms_norm_eps, rope_theta, expansion), plus
            the derived sizes (state_len, head_dim, ...) and "isa". Integer facts are ints,
            real ones floats; flags (mlp_t, no_ACT_continue) are 0/1 and pos_encodings is
            0 none, 1 rope, 2 learned, as the C API reports them.
    """

    def __init__(self, path):
        """Loads the model file at ``path`` (str or os.PathLike).

        Raises IOError (cannot open/read), FormatError (malformed), Unsupported,
        NoMemory, or InvalidArgument (e.g. a path holding a NUL byte)."""
        self._init_state()
        try:
            encoded = os.fsencode(path)
        except TypeError:
            raise InvalidArgument(f"model path must be a str or os.PathLike, got {type(path).__name__}") from None
        if b"\0" in encoded:
            raise InvalidArgument("model path contains a NUL byte")
        ptr = ctypes.c_void_p()
        _check(_lib.trm_model_load(encoded, ctypes.byref(ptr)))
        self._adopt(ptr)
        self.path = os.fspath(path)

    @classmethod
    def from_bytes(cls, data):
        """Loads a model from the bytes of a whole model file (bytes, bytearray, memoryview
        or anything with the buffer protocol). The model copies what it needs."""
        try:
            view = memoryview(data).cast("B")
        except TypeError:
            raise InvalidArgument(f"model data must be a bytes-like object, got {type(data).__name__}") from None
        buf = np.frombuffer(view, dtype=np.uint8) if view.nbytes else np.zeros(0, np.uint8)
        self = cls.__new__(cls)
        self._init_state()
        ptr = ctypes.c_void_p()
        _check(_lib.trm_model_load_memory(buf.ctypes.data_as(ctypes.c_void_p), buf.nbytes, ctypes.byref(ptr)))
        self._adopt(ptr)
        self.path = None
        return self

    def _init_state(self):
        self._ptr = None
        self._sessions = 0  # open sessions: the C model is freed only when none is left
        self._closing = False
        self._lock = threading.Lock()  # sessions may be made and closed from several threads

    def _opened_session(self):
        with self._lock:
            self._handle()
            self._sessions += 1

    def _closed_session(self):
        with self._lock:
            self._sessions -= 1
        self._release()

    def _adopt(self, ptr):
        self._ptr = ptr
        config = {}
        for key in _INT_KEYS:
            value = ctypes.c_int64()
            _check(_lib.trm_model_info(ptr, key.encode(), ctypes.byref(value)))
            config[key] = value.value
        for key in _DOUBLE_KEYS:
            value = ctypes.c_double()
            _check(_lib.trm_model_info_double(ptr, key.encode(), ctypes.byref(value)))
            config[key] = value.value
        self.config = config

    def _handle(self):
        if self._ptr is None or self._closing:
            raise ClosedError("the model is closed")
        return self._ptr

    @property
    def closed(self):
        """True once :meth:`close` was called."""
        return self._ptr is None or self._closing

    @property
    def isa(self):
        """Name of the matrix kernel the weights were packed for: "scalar", "avx2",
        "avx512" or "neon"."""
        return _ISA_NAMES.get(self.config["isa"], str(self.config["isa"]))

    def info(self, key):
        """One fact about the model straight from the library: an int for the keys of
        trm_model_info, a float for those of trm_model_info_double. Unknown keys raise
        InvalidArgument."""
        ptr = self._handle()
        if not isinstance(key, str):
            raise InvalidArgument(f"info key must be a str, got {type(key).__name__}")
        if "\0" in key:
            raise InvalidArgument("info key contains a NUL byte")
        encoded = key.encode()
        if key in _DOUBLE_KEYS:
            value = ctypes.c_double()
            _check(_lib.trm_model_info_double(ptr, encoded, ctypes.byref(value)))
            return value.value
        value = ctypes.c_int64()
        _check(_lib.trm_model_info(ptr, encoded, ctypes.byref(value)))
        return value.value

    def session(self, batch=1, threads=1, max_steps=None, halt="fixed", unit="step"):
        """A new :class:`Session` of ``batch`` slots on this model (see Session)."""
        return Session(self, batch=batch, threads=threads, max_steps=max_steps, halt=halt, unit=unit)

    def close(self):
        """Closes the model. Idempotent. If sessions are still open the C model is freed
        when the last one closes; until then the model cannot make new sessions."""
        if self._ptr is None:
            return
        self._closing = True
        self._release()

    def _release(self):
        with self._lock:
            if not (self._closing and self._sessions == 0 and self._ptr is not None):
                return
            ptr, self._ptr = self._ptr, None
        _lib.trm_model_free(ptr)

    def __enter__(self):
        self._handle()
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # also runs for a partly built object whose load failed
        if getattr(self, "_ptr", None) is not None:
            try:
                self.close()
            except Exception:  # at interpreter exit the module may already be torn down
                pass

    def __repr__(self):
        if self._ptr is None:
            return "<trm.Model closed>"
        c = self.config
        return (
            f"<trm.Model {self.path or '(memory)'}: hidden {c['hidden_size']}, seq_len {c['seq_len']}, "
            f"vocab {c['vocab_size']}, H {c['H_cycles']} x L {c['L_cycles']}>"
        )


# ---- events ----

_EVENT_KINDS = {
    _capi.TRM_EVENT_NONE: "none",
    _capi.TRM_EVENT_LATENT: "latent",
    _capi.TRM_EVENT_ANSWER: "answer",
    _capi.TRM_EVENT_STEP: "step",
}


@dataclass(frozen=True)
class Event:
    """What one unit of refinement did (struct trm_event).

    Attributes:
        kind: "latent" (a latent update z = f(z, y + x)), "answer" (an answer update
            y = f(y, z) inside a step) or "step" (the answer update that ended a supervision
            step; halting was decided).
        step: 1-based supervision step of the session this unit belongs to.
        cycle: 1-based H-cycle within the step, 1..H_cycles.
        call: 1-based network call within the cycle, 1..L_cycles+1 (L_cycles+1 is the answer
            update).
        calls: network calls the session has made so far (all running slots counted once).
        active: slots that will run in the next supervision step.
        halted: slots that halted at the end of this unit (non-zero only for kind "step").
    """

    kind: str
    step: int
    cycle: int
    call: int
    calls: int
    active: int
    halted: int


# ---- session ----

_UNITS = {"call": _capi.TRM_YIELD_CALL, "cycle": _capi.TRM_YIELD_CYCLE, "step": _capi.TRM_YIELD_STEP}
_HALTS = {"fixed": _capi.TRM_HALT_FIXED, "q": _capi.TRM_HALT_Q}
_LATENTS = {"y": _capi.TRM_LATENT_Y, "z": _capi.TRM_LATENT_Z}
_SLOT_STATES = {_capi.TRM_SLOT_EMPTY: "empty", _capi.TRM_SLOT_RUNNING: "running", _capi.TRM_SLOT_HALTED: "halted"}


def _choice(value, table, what):
    if not isinstance(value, str) or value not in table:
        raise InvalidArgument(f"{what} must be one of {', '.join(repr(k) for k in table)}; got {value!r}")
    return table[value]


class Session:
    """The state of a batch of puzzles being refined; one thread at a time.

    Each of the ``batch`` slots holds a puzzle (:meth:`set_input`), its answer state y and
    latent z ([state_len, hidden_size] each) and its step count. :meth:`step` and
    :meth:`refine` advance every running slot by one unit ("call": one network call, "cycle":
    one H-cycle, "step": one supervision step); slots halt after ``max_steps`` steps
    (halt="fixed") or earlier when the model's q head says so (halt="q").

    A session keeps its model alive. Use it as a context manager or call :meth:`close`;
    a closed session raises ClosedError.
    """

    def __init__(self, model, batch=1, threads=1, max_steps=None, halt="fixed", unit="step"):
        """Creates a session on ``model`` (normally through :meth:`Model.session`).

        Args:
            batch: number of slots, >= 1.
            threads: worker threads, 0 = one per available CPU (results are identical for any
                count).
            max_steps: supervision steps after which a slot halts; None keeps the model's
                halt_max_steps.
            halt: "fixed" (after max_steps, as the reference evaluates) or "q" (also early
                when q_halt > 0, as it trains).
            unit: the default unit of :meth:`step` and :meth:`refine`.
        """
        self._ptr = None
        if not isinstance(model, Model):
            raise InvalidArgument(f"model must be a trm.Model, got {type(model).__name__}")
        model._handle()  # a closed model: ClosedError before anything else
        batch = _index(batch, "batch")
        # validate every option before creating anything, so no half-made session exists
        unit_value = _choice(unit, _UNITS, "unit")
        halt_value = _choice(halt, _HALTS, "halt")
        threads = _index(threads, "threads")
        if max_steps is not None:
            max_steps = _index(max_steps, "max_steps")
        if batch > np.iinfo(np.uint64).max:
            raise NoMemory(f"a batch of {batch} slots does not fit in memory")
        model._opened_session()  # counted first, so a concurrent Model.close() cannot free it
        ptr = ctypes.c_void_p()
        try:
            _check(_lib.trm_session_create(model._ptr, batch, ctypes.byref(ptr)))
        except BaseException:
            model._closed_session()
            raise
        self._ptr = ptr
        self.model = model
        self.batch = batch
        config = model.config
        self._seq_len = config["seq_len"]
        self._vocab = config["vocab_size"]
        self._state_shape = (config["state_len"], config["hidden_size"])
        try:
            self._set_option(_capi.TRM_OPT_YIELD, unit_value)
            self._set_option(_capi.TRM_OPT_HALT, halt_value)
            self._set_option(_capi.TRM_OPT_THREADS, threads)
            if max_steps is not None:
                self._set_option(_capi.TRM_OPT_MAX_STEPS, max_steps)
        except BaseException:
            self.close()
            raise
        self._unit = unit_value

    # -- lifetime --

    def _handle(self):
        if self._ptr is None:
            raise ClosedError("the session is closed")
        return self._ptr

    @property
    def closed(self):
        """True once :meth:`close` was called."""
        return self._ptr is None

    def close(self):
        """Frees the session and its threads. Idempotent."""
        if self._ptr is None:
            return
        ptr, self._ptr = self._ptr, None
        _lib.trm_session_free(ptr)
        self.model._closed_session()

    def __enter__(self):
        self._handle()
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_ptr", None) is not None:
            try:
                self.close()
            except Exception:  # at interpreter exit the module may already be torn down
                pass

    def __repr__(self):
        if self._ptr is None:
            return "<trm.Session closed>"
        return f"<trm.Session batch {self.batch}, unit {self.unit!r}, max_steps {self.max_steps}>"

    # -- options --

    def _set_option(self, option, value):
        if not _INT64.min <= value <= _INT64.max:
            raise InvalidArgument(f"option value {value} is outside int64")
        _check(_lib.trm_session_set_option(self._handle(), option, value))

    def _get_option(self, option):
        value = ctypes.c_int64()
        _check(_lib.trm_session_get_option(self._handle(), option, ctypes.byref(value)))
        return value.value

    @property
    def unit(self):
        """The default unit of :meth:`step` / :meth:`refine`: "call", "cycle" or "step"."""
        value = self._get_option(_capi.TRM_OPT_YIELD)
        return next(k for k, v in _UNITS.items() if v == value)

    @unit.setter
    def unit(self, value):
        self._set_option(_capi.TRM_OPT_YIELD, _choice(value, _UNITS, "unit"))
        self._unit = _UNITS[value]

    @property
    def halt(self):
        """When slots halt: "fixed" (after max_steps) or "q" (also when q_halt says so)."""
        value = self._get_option(_capi.TRM_OPT_HALT)
        return next(k for k, v in _HALTS.items() if v == value)

    @halt.setter
    def halt(self, value):
        self._set_option(_capi.TRM_OPT_HALT, _choice(value, _HALTS, "halt"))

    @property
    def max_steps(self):
        """Supervision steps after which a slot halts (>= 1)."""
        return self._get_option(_capi.TRM_OPT_MAX_STEPS)

    @max_steps.setter
    def max_steps(self, value):
        self._set_option(_capi.TRM_OPT_MAX_STEPS, _index(value, "max_steps"))

    @property
    def threads(self):
        """Worker threads in use (setting 0 means one per available CPU)."""
        return self._get_option(_capi.TRM_OPT_THREADS)

    @threads.setter
    def threads(self, value):
        self._set_option(_capi.TRM_OPT_THREADS, _index(value, "threads"))

    # -- inputs --

    def _slot(self, slot):
        self._handle()
        slot = _index(slot, "slot")
        if slot >= self.batch:
            raise InvalidArgument(f"slot {slot} is outside the batch of {self.batch}")
        return slot

    def set_input(self, slot, tokens, puzzle_id=0):
        """Gives ``slot`` its puzzle and resets it (y = H_init, z = L_init, step 0).

        Args:
            slot: 0 .. batch-1.
            tokens: seq_len integer token ids in [0, vocab_size) (a sequence or a 1-D integer
                array).
            puzzle_id: row of the puzzle-embedding table, in [0, num_puzzle_identifiers).

        Mid-step, the slot joins at the start of the next supervision step.
        """
        ptr = self._handle()
        slot = self._slot(slot)
        arr = _tokens_array(tokens, self._seq_len)
        if isinstance(puzzle_id, (bool, np.bool_)):
            raise InvalidArgument(f"puzzle_id must be an integer, got {puzzle_id!r}")
        try:
            puzzle_id = operator.index(puzzle_id)
        except TypeError:
            raise InvalidArgument(f"puzzle_id must be an integer, got {type(puzzle_id).__name__}") from None
        if not _INT32.min <= puzzle_id <= _INT32.max:
            raise InvalidArgument(f"puzzle_id {puzzle_id} is outside int32")
        _check(_lib.trm_session_set_input(ptr, slot, _i32_ptr(arr), arr.shape[0], puzzle_id))

    # -- refinement --

    def step(self, unit=None):
        """Advances every running slot by one ``unit`` ("call", "cycle" or "step"; None: the
        session's :attr:`unit`). A unit given becomes the session's :attr:`unit` (as in C, where
        the unit is the session's TRM_OPT_YIELD option), so later calls without one keep it.

        Returns:
            The :class:`Event` of that unit, or None when no slot was left to run (every slot
            that has an input has halted, or none has an input): nothing ran.
        """
        ptr = self._handle()
        if unit is not None:
            value = _choice(unit, _UNITS, "unit")
            if value != self._unit:
                self._set_option(_capi.TRM_OPT_YIELD, value)
                self._unit = value
        ev = _capi.trm_event()
        ev.size = ctypes.sizeof(_capi.trm_event)
        if _check(_lib.trm_refine(ptr, ctypes.byref(ev))) == _capi.TRM_HALTED:
            return None
        return Event(
            kind=_EVENT_KINDS.get(ev.kind, str(ev.kind)),
            step=ev.step,
            cycle=ev.cycle,
            call=ev.call,
            calls=ev.calls,
            active=ev.active,
            halted=ev.halted,
        )

    def refine(self, unit=None):
        """Iterates :meth:`step` with ``unit`` (which, given, becomes the session's :attr:`unit`)
        until no slot is left to run.

        Yields one :class:`Event` per unit; the iteration stops (StopIteration) once every
        slot has halted. Inputs given meanwhile with :meth:`set_input` keep it going.
        """
        # checked now, not at the first next(): a plain function returning the generator
        if unit is not None:
            _choice(unit, _UNITS, "unit")
        self._handle()
        return self._iterate(unit)

    def _iterate(self, unit):
        while True:
            ev = self.step(unit)
            if ev is None:
                return
            yield ev

    # -- state and outputs --

    def slot_state(self, slot):
        """(state, steps) of a slot: state is "empty", "running" or "halted", steps the
        supervision steps it has completed."""
        ptr = self._handle()
        slot = self._slot(slot)
        state, steps = ctypes.c_int(), ctypes.c_int64()
        _check(_lib.trm_session_slot_state(ptr, slot, ctypes.byref(state), ctypes.byref(steps)))
        return _SLOT_STATES.get(state.value, str(state.value)), steps.value

    def logits(self, slot):
        """The slot's output logits from its current answer state: float32 [seq_len, vocab].
        StateError if the slot has no input."""
        ptr = self._handle()
        slot = self._slot(slot)
        out = np.empty((self._seq_len, self._vocab), dtype=np.float32)
        _check(_lib.trm_session_logits(ptr, slot, _f32_ptr(out), out.size))
        return out

    def answer(self, slot):
        """The decoded answer: (int32 tokens [seq_len], float32 confidence [seq_len]), the
        argmax token per position (ties: lowest id) and its softmax probability."""
        ptr = self._handle()
        slot = self._slot(slot)
        tokens = np.empty(self._seq_len, dtype=np.int32)
        confidence = np.empty(self._seq_len, dtype=np.float32)
        _check(_lib.trm_session_answer(ptr, slot, _i32_ptr(tokens), _f32_ptr(confidence), self._seq_len))
        return tokens, confidence

    def q(self, slot):
        """The halting head: (q_halt, q_continue) as Python floats. q_halt > 0 means the
        model thinks its answer is right."""
        ptr = self._handle()
        slot = self._slot(slot)
        q_halt, q_continue = ctypes.c_float(), ctypes.c_float()
        _check(_lib.trm_session_q(ptr, slot, ctypes.byref(q_halt), ctypes.byref(q_continue)))
        return q_halt.value, q_continue.value

    def latent(self, slot, which):
        """A copy of the slot's answer state ("y") or latent ("z"): float32
        [state_len, hidden_size]."""
        ptr = self._handle()
        slot = self._slot(slot)
        which_value = _choice(which, _LATENTS, "which")
        out = np.empty(self._state_shape, dtype=np.float32)
        _check(_lib.trm_session_latent(ptr, slot, which_value, _f32_ptr(out), out.size))
        return out

    def set_latent(self, slot, which, values):
        """Overwrites the slot's "y" or "z" with ``values``: a real array of shape
        [state_len, hidden_size] (converted to float32), every value finite. The step count
        and halting state are kept."""
        ptr = self._handle()
        slot = self._slot(slot)
        which_value = _choice(which, _LATENTS, "which")
        try:
            arr = np.asarray(values)
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"set_latent: not an array of numbers ({e})") from None
        if arr.dtype == object or arr.dtype.kind not in "fiu":
            raise InvalidArgument(f"set_latent: need real numbers, got dtype {arr.dtype}")
        if arr.shape != self._state_shape:
            raise InvalidArgument(
                f"set_latent: need shape {self._state_shape} (state_len, hidden_size), got {arr.shape}"
            )
        with np.errstate(over="ignore"):  # values beyond float32 become inf, which C refuses
            arr = np.ascontiguousarray(arr, dtype=np.float32)
        _check(_lib.trm_session_set_latent(ptr, slot, which_value, _f32_ptr(arr), arr.size))
