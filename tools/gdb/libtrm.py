"""gdb support for libtrm: pretty-printers for trm_session and trm_model, and trm-break-refine.

Load it by hand with `source tools/gdb/libtrm.py` (or `python import libtrm` with this
directory on sys.path), or let gdb auto-load it through the libtrm.so.VERSION-gdb.py file that
`make` writes next to the library and `make install` installs (see docs/DEBUGGING.md).

    print *session        config, counters, every slot's state, steps, q and decoded answer
    print *model          the configuration
    print/r *session      the raw struct, without the printer
    trm-break-refine      stop each time trm_refine() returns; sets $trm_session, $trm_event,
                          $trm_status
    set trm max-slots N   slots a session printer shows (default 16, 0 = all)
    set trm decode MODE   "memory" (default): decode the answer in gdb from y and lm_head read from
                          the inferior's memory (works on core files, runs nothing in the inferior);
                          "inferior": call trm_session_answer() in the live process
    set trm answer-limit N  largest seq_len*vocab*hidden the memory decoding does without numpy

The decoded answer is the argmax over the output head per position, as trm_session_answer()
computes it. In "memory" mode the logits are computed as the library's portable C code does
(float32 products summed in order), so they are the library's own bit for bit unless it was
built with FMA contraction (clang with -march=native); only an exact tie could then differ.

Needs the library's debug information (it is built with -g by default).
"""

import math
import struct
import sys
from array import array

import gdb
import gdb.printing

try:  # gdb's Python may have numpy; everything works without it, only slower
    import numpy
except ImportError:  # pragma: no cover - depends on the system
    numpy = None

SLOT_STATES = {0: "empty", 1: "running", 2: "halted"}
POS_ENCODINGS = {0: "none", 1: "rope", 2: "learned"}
# sanity bounds: a struct read before its initialisation must not make the printer read gigabytes
MAX_SANE = 1 << 24


# ---- settings: `set trm ...` / `show trm ...` ----

class _TrmPrefix(gdb.Command):
    """libtrm's settings for its gdb printers."""

    def __init__(self, verb):
        super().__init__(verb + " trm", gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)


class _IntParameter(gdb.Parameter):
    def __init__(self, name, doc, default):
        self.set_doc = doc
        self.show_doc = doc
        super().__init__("trm " + name, gdb.COMMAND_DATA, gdb.PARAM_ZUINTEGER)
        self.value = default

    def get_set_string(self):
        return ""

    def get_show_string(self, svalue):
        return svalue


class _DecodeParameter(gdb.Parameter):
    """How the session printer decodes answers: memory (in gdb) or inferior (trm_session_answer)."""

    set_doc = "How the session printer decodes answers: memory or inferior."
    show_doc = "How the session printer decodes answers."

    def __init__(self):
        super().__init__("trm decode", gdb.COMMAND_DATA, gdb.PARAM_ENUM, ["memory", "inferior"])
        self.value = "memory"

    def get_set_string(self):
        return ""

    def get_show_string(self, svalue):
        return svalue


# MAX_SLOTS, ANSWER_LIMIT and DECODE are made by _setup(), once per gdb session


# ---- reading the inferior ----

def _floats(pointer, offset, count):
    """count float32 values at pointer + offset floats, as an array('f') (exact values)."""
    address = int(pointer) + 4 * offset
    data = array("f")
    data.frombytes(bytes(gdb.selected_inferior().read_memory(address, 4 * count)))
    return data


def _ints(pointer, offset, count):
    """count int32 values at pointer + offset ints."""
    address = int(pointer) + 4 * offset
    data = array("i")
    data.frombytes(bytes(gdb.selected_inferior().read_memory(address, 4 * count)))
    return data


_F32 = struct.Struct("f")


def _round32(x):
    """x rounded to the nearest float32 (the C code's float arithmetic; see the module doc)."""
    return _F32.unpack(_F32.pack(x))[0]


def _dot32(a, a_start, b, b_start, n):
    """sum += a[i] * b[i] in float32, in order, as lib/net.c's dot() does."""
    total = 0.0
    for i in range(n):
        total = _round32(total + _round32(a[a_start + i] * b[b_start + i]))
    return total


class Config:
    """The fields of a trm_config the printers need, as Python numbers."""

    def __init__(self, cfg):
        for name in ("hidden_size", "num_heads", "head_dim", "L_layers", "H_cycles", "L_cycles", "seq_len",
                     "vocab_size", "num_puzzle_identifiers", "puzzle_emb_ndim", "puzzle_len", "state_len",
                     "inter", "inter_t", "halt_max_steps", "pos_encodings"):
            setattr(self, name, int(cfg[name]))
        self.mlp_t = bool(cfg["mlp_t"])
        self.no_act_continue = bool(cfg["no_act_continue"])
        self.expansion = float(cfg["expansion"])
        self.rms_norm_eps = float(cfg["rms_norm_eps"])
        self.rope_theta = float(cfg["rope_theta"])

    def sane(self):
        sizes = (self.hidden_size, self.seq_len, self.vocab_size, self.state_len)
        return all(0 < n < MAX_SANE for n in sizes) and self.state_len == self.seq_len + self.puzzle_len

    def describe(self):
        return ("hidden_size %d, num_heads %d, head_dim %d, L_layers %d, H_cycles %d, L_cycles %d, "
                "seq_len %d, vocab_size %d, num_puzzle_identifiers %d, puzzle_emb_ndim %d, puzzle_emb_len %d, "
                "state_len %d, inter_size %d, inter_t_size %d, halt_max_steps %d, pos_encodings %s, "
                "mlp_t %d, no_ACT_continue %d, expansion %g, rms_norm_eps %g, rope_theta %g" % (
                    self.hidden_size, self.num_heads, self.head_dim, self.L_layers, self.H_cycles,
                    self.L_cycles, self.seq_len, self.vocab_size, self.num_puzzle_identifiers,
                    self.puzzle_emb_ndim, self.puzzle_len, self.state_len, self.inter, self.inter_t,
                    self.halt_max_steps, POS_ENCODINGS.get(self.pos_encodings, str(self.pos_encodings)),
                    self.mlp_t, self.no_act_continue, self.expansion, self.rms_norm_eps, self.rope_theta))


def _kernel_name(model):
    try:
        kernel = model["kernel"]
        return kernel["name"].string() if int(kernel) else "none"
    except gdb.error:
        return "?"


# ---- decoding: what trm_session_answer() and trm_session_q() compute ----

def decode_from_memory(model, cfg, y_pointer, y_offset):
    """(tokens, confidences) of the answer state at y_pointer + y_offset floats."""
    D, V, P, L = cfg.hidden_size, cfg.vocab_size, cfg.puzzle_len, cfg.seq_len
    if numpy is None and L * V * D > int(ANSWER_LIMIT.value or 0):
        raise ValueError("seq_len*vocab*hidden = %d is above `trm answer-limit` (%d) and gdb's Python has no "
                         "numpy; raise the limit or `set trm decode inferior`" % (L * V * D, ANSWER_LIMIT.value))
    y = _floats(y_pointer, y_offset + P * D, L * D)
    head = _floats(model["lm_head"], 0, V * D)
    tokens, confidences = [], []
    if numpy is not None:
        rows = numpy.frombuffer(y, dtype=numpy.float32).reshape(L, D)
        weights = numpy.frombuffer(head, dtype=numpy.float32).reshape(V, D)
        for i in range(L):
            # float32 products, then a running float32 sum in order: the C loop, step for step
            logits = numpy.add.accumulate(rows[i] * weights, axis=1, dtype=numpy.float32)[:, -1]
            tokens.append(int(numpy.argmax(logits)))  # first of equal maxima: the lowest id
            confidences.append(_confidence([float(v) for v in logits]))
    else:
        for i in range(L):
            logits = [_dot32(y, i * D, head, v * D, D) for v in range(V)]
            best = 0
            for v in range(1, V):
                if logits[v] > logits[best]:
                    best = v
            tokens.append(best)
            confidences.append(_confidence(logits))
    return tokens, confidences


def _confidence(logits):
    best = max(logits)
    return 1.0 / sum(math.exp(v - best) for v in logits)


def decode_in_inferior(session, slot, seq_len):
    """(tokens, None) from trm_session_answer() called in the live process."""
    if not gdb.selected_inferior().pid:
        raise ValueError("no live process to call trm_session_answer() in (`set trm decode memory`)")
    malloc = "((void *(*)(unsigned long)) malloc)"
    buffer = int(gdb.parse_and_eval("%s(%d)" % (malloc, 4 * seq_len)))
    if not buffer:
        raise ValueError("malloc failed in the inferior")
    try:
        status = int(gdb.parse_and_eval("(int) trm_session_answer((const trm_session *) %d, %d, (int *) %d, "
                                        "(float *) 0, %d)" % (int(session.address), slot, buffer, seq_len)))
        if status != 0:
            raise ValueError("trm_session_answer() returned %d" % status)
        return list(_ints(buffer, 0, seq_len)), None
    finally:
        gdb.parse_and_eval("((void (*)(void *)) free)((void *) %d)" % buffer)


def q_from_memory(model, cfg, y_pointer, y_offset):
    """(q_halt, q_continue) = y[0] q_head^T + q_bias, as the library computes them."""
    D = cfg.hidden_size
    y0 = _floats(y_pointer, y_offset, D)
    weights = _floats(model["q_weight"], 0, 2 * D)
    bias = model["q_bias"]
    return tuple(_round32(_dot32(y0, 0, weights, k * D, D) + float(bias[k])) for k in range(2))


# ---- drawing ----

def grid_lines(values, width):
    """values as a square grid when their count is a perfect square, else rows of up to 32."""
    n = len(values)
    side = math.isqrt(n)
    per_row = side if side > 1 and side * side == n else min(n, 32)
    return [" ".join("%*d" % (width, v) for v in values[r:r + per_row]) for r in range(0, n, per_row)]


def side_by_side(left, right, gap="   "):
    rows = max(len(left), len(right))
    lw = max((len(s) for s in left), default=0)
    left = left + [""] * (rows - len(left))
    right = right + [""] * (rows - len(right))
    return ["%-*s%s%s" % (lw, a, gap, b) for a, b in zip(left, right)]


# ---- the printers ----

class ModelPrinter:
    """struct trm_model: its configuration, kernel and size."""

    def __init__(self, value):
        self.value = value

    def to_string(self):
        try:
            cfg = Config(self.value["cfg"])
        except gdb.error as err:
            return "trm_model <unreadable: %s>" % err
        if not cfg.sane():
            return "trm_model <not initialised: seq_len %d, hidden_size %d>" % (cfg.seq_len, cfg.hidden_size)
        return "trm_model {%s, kernel %s, param_count %d}" % (
            cfg.describe(), _kernel_name(self.value), int(self.value["param_count"]))


class SessionPrinter:
    """struct trm_session: options, where the recursion is, and every slot with its decoded answer."""

    def __init__(self, value):
        self.value = value

    def to_string(self):
        try:
            return "\n".join(self._lines())
        except (gdb.error, gdb.MemoryError, ValueError) as err:
            return "trm_session <unreadable: %s>" % err

    def _lines(self):
        s = self.value
        model = s["model"].dereference()
        cfg = Config(model["cfg"])
        batch = int(s["batch"])
        if not cfg.sane() or not 0 < batch < MAX_SANE:
            return ["trm_session <not initialised: batch %d, seq_len %d>" % (batch, cfg.seq_len)]
        calls_per_cycle = cfg.L_cycles + 1
        if bool(s["mid_step"]):
            where = "in step %d: next H-cycle %d/%d, call %d/%d" % (
                int(s["step_count"]), int(s["cycle"]) + 1, cfg.H_cycles, int(s["call"]) + 1, calls_per_cycle)
        else:
            where = "between steps"
        lines = [
            "trm_session {batch %d, yield %s, halt %s, max_steps %d, threads %d" % (
                batch, s["yield"], s["halt"], int(s["max_steps"]), int(s["threads"])),
            "  recursion: %d steps begun, %d network calls, %s" % (int(s["step_count"]), int(s["calls"]), where),
            "  model: hidden_size %d, L_layers %d, H_cycles %d, L_cycles %d, seq_len %d, vocab_size %d, "
            "puzzle_emb_len %d, %s, halt_max_steps %d, kernel %s" % (
                cfg.hidden_size, cfg.L_layers, cfg.H_cycles, cfg.L_cycles, cfg.seq_len, cfg.vocab_size,
                cfg.puzzle_len, "mlp_t" if cfg.mlp_t else "attention " + POS_ENCODINGS.get(cfg.pos_encodings, "?"),
                cfg.halt_max_steps, _kernel_name(model)),
        ]
        shown = min(batch, int(MAX_SLOTS.value or batch))
        width = len(str(cfg.vocab_size - 1))
        state_floats = int(s["state_floats"])
        for k in range(shown):
            slot = s["slots"][k]
            state = int(slot["state"])
            head = "  slot %d: %s" % (k, SLOT_STATES.get(state, "state %d" % state))
            if state == 0:
                lines.append(head)
                continue
            head += ", steps %d%s, puzzle_id %d" % (
                int(slot["steps"]), ", in the current step" if bool(slot["in_step"]) else "", int(slot["puzzle_id"]))
            q_halt, q_continue = q_from_memory(model, cfg, s["y"], k * state_floats)
            lines.append(head + ", q_halt %+.3f, q_continue %+.3f" % (q_halt, q_continue))
            puzzle = list(_ints(s["tokens"], k * cfg.seq_len, cfg.seq_len))
            try:
                if DECODE.value == "inferior":
                    tokens, confidence = decode_in_inferior(s, k, cfg.seq_len)
                else:
                    tokens, confidence = decode_from_memory(model, cfg, s["y"], k * state_floats)
            except (ValueError, gdb.error) as err:
                lines.append("    answer: <not decoded: %s>" % err)
                continue
            title = "answer (argmax of the output head%s)" % (
                ", mean confidence %.3f" % (sum(confidence) / len(confidence)) if confidence else "")
            grid = side_by_side(["input"] + grid_lines(puzzle, width), [title] + grid_lines(tokens, width))
            lines.extend("    " + row.rstrip() for row in grid)
            lines.append("    answer: " + " ".join(str(t) for t in tokens))
        if shown < batch:
            lines.append("  ... %d more slots (set trm max-slots N)" % (batch - shown))
        lines.append("}")
        return lines


class _Printers(gdb.printing.PrettyPrinter):
    """libtrm's printers, matched on the struct tag so they also work through typedefs and from
    programs that see the types only as opaque (their complete definition is in libtrm's debug info)."""

    def __init__(self):
        super().__init__("libtrm", [])
        self.subprinters = [gdb.printing.SubPrettyPrinter("trm_session"),
                            gdb.printing.SubPrettyPrinter("trm_model")]
        self.classes = {"trm_session": SessionPrinter, "trm_model": ModelPrinter}

    def __call__(self, value):
        kind = value.type.strip_typedefs()
        if kind.code != gdb.TYPE_CODE_STRUCT or kind.tag not in self.classes:
            return None
        for sub in self.subprinters:
            if sub.name == kind.tag:
                return self.classes[kind.tag](value) if sub.enabled else None
        return None


# ---- trm-break-refine: stop each time trm_refine() returns ----

# The register that holds an int return value, per architecture (the status is then void elsewhere).
RETURN_REGISTERS = {"i386:x86-64": "rax", "aarch64": "x0", "riscv:rv64": "a0", "powerpc:common64": "r3",
                    "s390:64-bit": "r2"}


def _returned_int(frame):
    name = RETURN_REGISTERS.get(frame.architecture().name())
    if name is None:
        return None
    raw = int(frame.read_register(name)) & 0xFFFFFFFF  # trm_status is an int
    return raw - (1 << 32) if raw & 0x80000000 else raw


class _RefineReturn(gdb.Breakpoint):
    """A one-shot breakpoint at the return address of one trm_refine() call.

    gdb.FinishBreakpoint would do, but it never stops when the caller was inlined (as
    trm::Session::refine_once() is in C++ programs): it checks for a frame that does not exist
    at the return address. This checks the thread and the stack pointer instead."""

    def __init__(self, return_pc, caller_sp, session, event):
        super().__init__("*0x%x" % return_pc, internal=True, temporary=True)
        self.thread = gdb.selected_thread().global_num
        self.caller_sp = caller_sp
        self.session = session
        self.event = event

    def stop(self):
        if gdb.selected_thread().global_num != self.thread:
            return False
        frame = gdb.newest_frame()
        # Back in the caller, sp is what the unwinder said the caller's sp was at the entry stop,
        # on every architecture (x86-64 pops the return address; AArch64 never pushed one). The
        # entry stop's own sp would not do: where the compiler sinks the stack adjustment past
        # the breakpoint (shrink-wrapping), it equals the caller's on AArch64.
        if int(frame.read_register("sp")) < self.caller_sp:
            return False  # reached from a call deeper in the stack than the one we follow
        gdb.set_convenience_variable("trm_session", self.session)
        gdb.set_convenience_variable("trm_event", self.event)
        gdb.set_convenience_variable("trm_status", _returned_int(frame))
        return True


class _RefineEntry(gdb.Breakpoint):
    def __init__(self):
        super().__init__("trm_refine", internal=True)

    def stop(self):
        frame = gdb.newest_frame()
        try:
            caller = frame.older()
            _RefineReturn(caller.pc(), int(caller.read_register("sp")), frame.read_var("s"), frame.read_var("ev"))
        except (ValueError, AttributeError, gdb.error) as err:
            print("trm-break-refine: cannot follow this trm_refine() call: %s" % err)
        return False


class BreakAfterRefine(gdb.Command):
    """Stop each time trm_refine() returns.

    Usage: trm-break-refine
    At each stop $trm_session is the session (print *$trm_session), $trm_event the event pointer
    the caller passed (may be 0) and $trm_status what trm_refine() returned (1 = TRM_HALTED).
    Works before the library is loaded: the breakpoint is pending until then."""

    def __init__(self):
        super().__init__("trm-break-refine", gdb.COMMAND_BREAKPOINTS)
        self.entry = None

    def invoke(self, argument, from_tty):
        if self.entry is not None and self.entry.is_valid():
            print("trm-break-refine: already set")
            return
        gdb.execute("set breakpoint pending on", to_string=True)
        self.entry = _RefineEntry()


def register(objfile=None):
    """Registers the printers (globally, or for one objfile); safe to call more than once."""
    gdb.printing.register_pretty_printer(objfile, _Printers(), replace=True)


def _setup():
    global MAX_SLOTS, ANSWER_LIMIT, DECODE
    _TrmPrefix("set")
    _TrmPrefix("show")
    MAX_SLOTS = _IntParameter("max-slots", "Slots the trm_session printer shows (0: all).", 16)
    ANSWER_LIMIT = _IntParameter(
        "answer-limit", "Largest seq_len*vocab*hidden the printer decodes without numpy.", 4_000_000)
    DECODE = _DecodeParameter()
    BreakAfterRefine()
    register()


# Loaded once per gdb session, whichever comes first: `source` by hand (which runs this file as
# __main__) or the auto-load script's `import libtrm`. A second load changes nothing, so settings
# made before the library was loaded survive its auto-load.
_first = sys.modules.get("libtrm")
if _first is None or not getattr(_first, "LOADED", False):
    sys.modules["libtrm"] = sys.modules[__name__]
    _setup()
    LOADED = True
