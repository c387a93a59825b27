"""trm.Session: options, inputs, refinement events (the semantics tests/test_api.c checks in C),
halting, the outputs against numpy computations from the file's weights, latents, lifetime."""
import gc
import os
import threading

import numpy as np
import pytest

import trm
from conftest import puzzle

# ---- creation and options ----


def test_defaults(demo):
    with demo.session() as s:
        assert s.batch == 1
        assert s.unit == "step" and s.halt == "fixed" and s.threads == 1
        assert s.max_steps == demo.config["halt_max_steps"]
        assert s.model is demo
        assert "batch 1" in repr(s)


def test_create_options(demo):
    with demo.session(batch=3, threads=2, max_steps=9, halt="q", unit="cycle") as s:
        assert (s.batch, s.threads, s.max_steps, s.halt, s.unit) == (3, 2, 9, "q", "cycle")


def test_step_unit_sticks(demo):
    # as documented: a unit given to step() / refine() becomes the session's unit
    with demo.session() as s:
        s.set_input(0, puzzle(demo.config))
        assert s.step("call").kind == "latent" and s.unit == "call"
        assert s.step().call == 2  # still one call at a time
        list(s.refine("cycle"))
        assert s.unit == "cycle"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch": 0}, "batch must be at least 1"),  # refused by the library
        ({"batch": -1}, "batch must be >= 0"),
        ({"batch": 2.0}, "batch must be an integer"),
        ({"batch": True}, "batch must be an integer"),
        ({"threads": -1}, "threads"),
        ({"threads": 100000}, "TRM_OPT_THREADS"),
        ({"max_steps": 0}, "TRM_OPT_MAX_STEPS"),
        ({"max_steps": 2**63}, "outside int64"),
        ({"halt": "sometimes"}, "halt must be one of"),
        ({"unit": "epoch"}, "unit must be one of"),
        ({"unit": None}, "unit must be one of"),
    ],
)
def test_create_invalid(demo, kwargs, match):
    with pytest.raises(trm.InvalidArgument, match=match) as info:
        demo.session(**kwargs)
    assert info.value.status == -1
    assert demo._sessions == 0  # no half-made session left behind


def test_create_too_big(demo):
    with pytest.raises(trm.NoMemory, match="does not fit"):
        demo.session(batch=2**62)
    with pytest.raises(trm.NoMemory):
        demo.session(batch=2**70)


def test_create_needs_a_model():
    with pytest.raises(trm.InvalidArgument, match="trm.Model"):
        trm.Session("model.safetensors")


def test_options_round_trip(demo):
    with demo.session() as s:
        for unit in ("call", "cycle", "step"):
            s.unit = unit
            assert s.unit == unit
        s.halt = "q"
        assert s.halt == "q"
        s.max_steps = 100
        assert s.max_steps == 100
        s.threads = 0  # one per CPU this process may use
        assert s.threads == len(os.sched_getaffinity(0))
        s.threads = 3
        assert s.threads == 3
        # a refused value leaves the option as it was
        for name, bad in (("unit", "x"), ("halt", 1), ("max_steps", 0), ("threads", 5000), ("threads", -2)):
            before = getattr(s, name)
            with pytest.raises(trm.InvalidArgument):
                setattr(s, name, bad)
            assert getattr(s, name) == before


# ---- inputs ----


def test_set_input_resets_state(demo, demo_file):
    _, tensors = demo_file
    S = demo.config["state_len"]
    with demo.session(batch=2) as s:
        assert s.slot_state(0) == ("empty", 0)
        s.set_input(0, puzzle(demo.config), puzzle_id=2)
        assert s.slot_state(0) == ("running", 0)
        assert s.slot_state(1) == ("empty", 0)
        # y = H_init and z = L_init on every row (the file's values, read without libtrm)
        np.testing.assert_array_equal(s.latent(0, "y"), np.tile(tensors["H_init"], (S, 1)))
        np.testing.assert_array_equal(s.latent(0, "z"), np.tile(tensors["L_init"], (S, 1)))
        s.step()
        assert s.slot_state(0) == ("running", 1)
        assert not np.array_equal(s.latent(0, "y"), np.tile(tensors["H_init"], (S, 1)))
        s.set_input(0, puzzle(demo.config, 1))
        assert s.slot_state(0) == ("running", 0)
        np.testing.assert_array_equal(s.latent(0, "y"), np.tile(tensors["H_init"], (S, 1)))


def test_set_input_accepts_int_likes(demo):
    n = demo.config["seq_len"]
    tokens = puzzle(demo.config)
    with demo.session(batch=2) as s:
        s.set_input(0, tokens)
        reference = s.latent(0, "y"), s.slot_state(0)
        for variant in (
            tuple(tokens),
            np.array(tokens, dtype=np.int64),
            np.array(tokens, dtype=np.uint8),
            np.array(tokens, dtype=np.int16),
            np.repeat(np.array(tokens, dtype=np.int32), 2)[::2],  # not contiguous
            range(1, n + 1) if n < demo.config["vocab_size"] else [t % 2 for t in tokens],
        ):
            s.set_input(np.int64(1), variant, puzzle_id=np.int32(1))
            assert s.slot_state(1) == ("running", 0)
        s.set_input(1, tokens)
        np.testing.assert_array_equal(s.latent(1, "y"), reference[0])


def test_set_input_same_tokens_same_result(demo):
    tokens = puzzle(demo.config, 2)
    with demo.session(batch=2) as s:
        s.set_input(0, tokens, puzzle_id=1)
        s.set_input(1, np.array(tokens, dtype=np.uint16), puzzle_id=1)
        s.step()
        np.testing.assert_array_equal(s.logits(0), s.logits(1))


@pytest.mark.parametrize(
    "tokens,match",
    [
        (list(range(15)), "15 given, the model takes seq_len = 16"),
        (list(range(17)), "17 given"),
        ([], "0 given"),
        ([[1] * 16], r"1-D sequence of 16 ids, got shape \(1, 16\)"),
        (5, "1-D"),
        ([1.0] * 16, "integer token ids"),
        ([True] * 16, "booleans"),
        (["1"] * 16, "integer token ids"),
        ([1] * 15 + [None], "integer token ids"),
        ([1] * 15 + [10], "token 15 is 10, outside the vocabulary"),  # the library's check
        ([-1] + [1] * 15, "token 0 is -1, outside the vocabulary"),
        ([1] * 15 + [2**32 + 1], "outside int32"),  # would wrap to the valid id 1 as int32
        ([1] * 15 + [2**70], "integer token ids"),  # beyond int64: numpy makes it an object array
    ],
)
def test_set_input_invalid_tokens(demo, tokens, match):
    with demo.session() as s:
        with pytest.raises(trm.InvalidArgument, match=match):
            s.set_input(0, tokens)
        with pytest.raises(ValueError):  # InvalidArgument is a ValueError too
            s.set_input(0, tokens)
        assert s.slot_state(0) == ("empty", 0)


def test_set_input_invalid_slot_or_puzzle_id(demo):
    ok = puzzle(demo.config)
    n_ids = demo.config["num_puzzle_identifiers"]
    with demo.session(batch=2) as s:
        for slot, match in ((2, "slot 2 is outside the batch of 2"), (-1, "slot must be >= 0"),
                            (1.0, "slot must be an integer"), ("0", "slot must be an integer")):  # fmt: skip
            with pytest.raises(trm.InvalidArgument, match=match):
                s.set_input(slot, ok)
        for pid, match in ((n_ids, f"puzzle_id {n_ids} is outside \\[0, {n_ids}\\)"), (-1, "puzzle_id -1"),
                           (2**31, "outside int32"), (0.5, "integer"), (False, "integer")):  # fmt: skip
            with pytest.raises(trm.InvalidArgument, match=match):
                s.set_input(0, ok, puzzle_id=pid)
        assert s.slot_state(0) == ("empty", 0)
        s.set_input(1, ok, puzzle_id=n_ids - 1)


# ---- events of each unit (tests/test_api.c: test_yield_*) ----


def expected_calls(H, L, steps):
    """(kind, step, cycle, call) of every network call over `steps` supervision steps."""
    out = []
    for step in range(1, steps + 1):
        for cycle in range(1, H + 1):
            for call in range(1, L + 2):
                kind = "latent" if call <= L else ("answer" if cycle < H else "step")
                out.append((kind, step, cycle, call))
    return out


def test_unit_call_literal(demo):
    # H 2, L 2 (the C test's literal sequence)
    with demo.session(unit="call") as s:
        s.set_input(0, puzzle(demo.config))
        want = [("latent", 1, 1, 1), ("latent", 1, 1, 2), ("answer", 1, 1, 3),
                ("latent", 1, 2, 1), ("latent", 1, 2, 2), ("step", 1, 2, 3), ("latent", 2, 1, 1)]  # fmt: skip
        for i, w in enumerate(want):
            ev = s.step()
            assert (ev.kind, ev.step, ev.cycle, ev.call) == w
            assert ev.calls == i + 1 and ev.active == 1 and ev.halted == 0


@pytest.mark.parametrize("H,L", [(2, 2), (3, 1), (1, 3), (1, 1)])
def test_unit_call_sequence(make_model, H, L):
    m = make_model(meta={"H_cycles": str(H), "L_cycles": str(L), "halt_max_steps": "2"})
    assert (m.config["H_cycles"], m.config["L_cycles"]) == (H, L)
    with m.session() as s:
        s.set_input(0, puzzle(m.config))
        events = list(s.refine(unit="call"))
        assert s.step(unit="call") is None
    want = expected_calls(H, L, 2)
    assert [(e.kind, e.step, e.cycle, e.call) for e in events] == want
    assert [e.calls for e in events] == list(range(1, len(want) + 1))
    assert all(e.active == 1 and e.halted == 0 for e in events[:-1])
    assert (events[-1].active, events[-1].halted) == (0, 1)


def test_unit_cycle(demo):
    H, L = demo.config["H_cycles"], demo.config["L_cycles"]
    with demo.session(max_steps=2) as s:
        s.set_input(0, puzzle(demo.config))
        events = list(s.refine(unit="cycle"))
    assert len(events) == 2 * H
    for i, ev in enumerate(events):
        step, cycle = divmod(i, H)
        assert ev.kind == ("answer" if cycle + 1 < H else "step")
        assert (ev.step, ev.cycle, ev.call) == (step + 1, cycle + 1, L + 1)
        assert ev.calls == (i + 1) * (L + 1)


def test_unit_step_until_halted(demo):
    H, L = demo.config["H_cycles"], demo.config["L_cycles"]
    max_steps = demo.config["halt_max_steps"]
    with demo.session() as s:
        s.set_input(0, puzzle(demo.config))
        it = s.refine()  # the session's unit: a step
        events = list(it)
        with pytest.raises(StopIteration):
            next(it)
        assert s.step() is None and s.step("call") is None
        assert list(s.refine("cycle")) == []
        assert s.slot_state(0) == ("halted", max_steps)
    assert [e.step for e in events] == list(range(1, max_steps + 1))
    assert all(e.kind == "step" and (e.cycle, e.call) == (H, L + 1) for e in events)
    assert [e.calls for e in events] == [k * H * (L + 1) for k in range(1, max_steps + 1)]


def test_no_inputs_nothing_runs(demo):
    with demo.session(batch=3) as s:
        for unit in ("call", "cycle", "step"):
            assert s.step(unit) is None
            assert list(s.refine(unit)) == []


def test_refine_checks_arguments_at_call(demo):
    with demo.session() as s:
        with pytest.raises(trm.InvalidArgument, match="unit must be one of"):
            s.refine("steps")  # raised by the call, not at the first next()
        with pytest.raises(trm.InvalidArgument):
            s.step("steps")


def test_event_is_immutable(demo):
    with demo.session() as s:
        s.set_input(0, puzzle(demo.config))
        ev = s.step()
        assert isinstance(ev, trm.Event)
        with pytest.raises(AttributeError):
            ev.step = 5


def test_units_reach_the_same_state(demo):
    sessions = {}
    for unit in ("call", "cycle", "step"):
        s = demo.session(batch=2, unit=unit)
        s.set_input(0, puzzle(demo.config, 3), puzzle_id=1)
        s.set_input(1, puzzle(demo.config, 4), puzzle_id=2)
        sessions[unit] = s
    for step in (1, 2):
        for s in sessions.values():
            ev = s.step()
            while ev.kind != "step":
                ev = s.step()
            assert ev.step == step
        for unit in ("cycle", "step"):
            for slot in (0, 1):
                for which in ("y", "z"):
                    np.testing.assert_array_equal(sessions["call"].latent(slot, which),
                                                  sessions[unit].latent(slot, which))  # fmt: skip
    # switching the unit in the middle of a step changes nothing either
    mixed = demo.session(batch=2)
    mixed.set_input(0, puzzle(demo.config, 3), puzzle_id=1)
    mixed.set_input(1, puzzle(demo.config, 4), puzzle_id=2)
    assert mixed.step("call").kind == "latent"
    assert mixed.step("cycle").cycle == 1
    ev = mixed.step("step")
    assert (ev.kind, ev.step) == ("step", 1)
    assert mixed.step("step").step == 2
    for slot in (0, 1):
        np.testing.assert_array_equal(mixed.latent(slot, "y"), sessions["step"].latent(slot, "y"))
    for s in list(sessions.values()) + [mixed]:
        s.close()


# ---- halting ----


def test_halt_fixed_batch(demo):
    max_steps = demo.config["halt_max_steps"]
    with demo.session(batch=4) as s:
        for k in range(3):
            s.set_input(k, puzzle(demo.config, k))
        events = list(s.refine())
        assert len(events) == max_steps
        for ev in events[:-1]:
            assert (ev.active, ev.halted) == (3, 0)
        assert (events[-1].active, events[-1].halted) == (0, 3)
        assert [s.slot_state(k) for k in range(4)] == [("halted", max_steps)] * 3 + [("empty", 0)]
        y = s.latent(1, "y")
        # raising max_steps does not revive halted slots; outputs stay readable and unchanged
        s.max_steps = max_steps + 3
        assert s.step() is None
        np.testing.assert_array_equal(s.latent(1, "y"), y)
        s.answer(1)


def test_max_steps(demo):
    with demo.session(max_steps=2) as s:
        s.set_input(0, puzzle(demo.config))
        assert [e.halted for e in s.refine()] == [0, 1]
    with demo.session(max_steps=7) as s:
        s.set_input(0, puzzle(demo.config))
        assert len(list(s.refine())) == 7
    # lowered below what a slot has run: it halts at the next step's start, nothing runs
    with demo.session() as s:
        s.set_input(0, puzzle(demo.config))
        for _ in range(3):
            s.step()
        s.max_steps = 2
        y = s.latent(0, "y")
        assert s.step() is None
        assert s.slot_state(0) == ("halted", 3)
        np.testing.assert_array_equal(s.latent(0, "y"), y)


def q_bias_model(make_model, demo_file, q_halt, q_continue, no_act_continue=True):
    """The demo model with q = bias exactly (q_head.weight all zero)."""
    _, tensors = demo_file
    return make_model(
        meta={"no_ACT_continue": "true" if no_act_continue else "false"},
        tensors={
            "q_head.weight": np.zeros_like(tensors["q_head.weight"]),
            "q_head.bias": np.array([q_halt, q_continue], np.float32),
        },
    )


def steps_until_halt(m, halt):
    with m.session(batch=3, halt=halt) as s:
        for k in range(3):
            s.set_input(k, puzzle(m.config, k))
        n = len(list(s.refine()))
        assert [s.slot_state(k) for k in range(3)] == [("halted", n)] * 3
    return n


@pytest.mark.parametrize(
    "q_halt,q_continue,no_act_continue,early",
    [
        (5.0, 0.0, True, True),  # q_halt > 0
        (-5.0, 0.0, True, False),
        (-1.0, -2.0, False, True),  # q_halt > q_continue counts only with no_ACT_continue false
        (-1.0, -2.0, True, False),
        (1.0, 2.0, False, False),  # q_halt > 0 but below q_continue
    ],
)
def test_halt_q(make_model, demo_file, q_halt, q_continue, no_act_continue, early):
    m = q_bias_model(make_model, demo_file, q_halt, q_continue, no_act_continue)
    assert m.config["no_ACT_continue"] == int(no_act_continue)
    max_steps = m.config["halt_max_steps"]
    with m.session() as s:
        s.set_input(0, puzzle(m.config))
        assert s.q(0) == (q_halt, q_continue)
    assert steps_until_halt(m, "q") == (1 if early else max_steps)
    assert steps_until_halt(m, "fixed") == max_steps


def test_halt_q_event(make_model, demo_file):
    m = q_bias_model(make_model, demo_file, 5.0, 0.0)
    with m.session(batch=2, halt="q") as s:
        s.set_input(0, puzzle(m.config, 0))
        s.set_input(1, puzzle(m.config, 1))
        ev = s.step()
        assert (ev.kind, ev.halted, ev.active) == ("step", 2, 0)
        assert s.step() is None


def test_refill_halted_slot(demo):
    with demo.session(batch=2, max_steps=4) as s:
        s.set_input(0, puzzle(demo.config, 0))
        s.step()
        s.step()
        s.set_input(1, puzzle(demo.config, 1))
        assert s.step().active == 2
        ev = s.step()  # slot 0's 4th step, slot 1's 2nd
        assert (ev.halted, ev.active) == (1, 1)
        assert s.slot_state(0) == ("halted", 4) and s.slot_state(1) == ("running", 2)
        s.set_input(0, puzzle(demo.config, 2))  # refilled: runs again from step 0
        assert s.step().active == 2
        ev = s.step()
        assert (ev.halted, ev.active) == (1, 1)
        # the refill keeps the iteration going
        rest = list(s.refine())
        assert len(rest) == 2 and rest[-1].active == 0


def test_set_input_mid_step_joins_next_step(demo):
    H, L = demo.config["H_cycles"], demo.config["L_cycles"]
    with demo.session(batch=2, unit="call") as s, demo.session(batch=1) as alone:
        s.set_input(0, puzzle(demo.config, 0))
        s.step()
        s.step()
        s.set_input(1, puzzle(demo.config, 1))
        ev = s.step()
        while ev.kind != "step":
            assert ev.active == 2
            ev = s.step()
        assert s.slot_state(0) == ("running", 1) and s.slot_state(1) == ("running", 0)
        # slot 1 then runs a whole step as if alone
        for _ in range(H * (L + 1)):
            s.step()
        alone.set_input(0, puzzle(demo.config, 1))
        alone.step()
        np.testing.assert_array_equal(s.latent(1, "y"), alone.latent(0, "y"))
        np.testing.assert_array_equal(s.latent(1, "z"), alone.latent(0, "z"))


# ---- outputs, checked with numpy from the file's weights ----


def run_steps(m, steps, batch=2, threads=1):
    s = m.session(batch=batch, threads=threads, max_steps=100)
    for k in range(batch):
        s.set_input(k, puzzle(m.config, k), puzzle_id=k % m.config["num_puzzle_identifiers"])
    for _ in range(steps):
        s.step()
    return s


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_outputs_against_numpy(demo, demo_file, steps):
    _, tensors = demo_file
    P, seq, V = demo.config["puzzle_emb_len"], demo.config["seq_len"], demo.config["vocab_size"]
    with run_steps(demo, steps) as s:
        for slot in (0, 1):
            y = s.latent(slot, "y").astype(np.float64)
            assert y.dtype == np.float64 and s.latent(slot, "y").dtype == np.float32
            logits = s.logits(slot)
            assert logits.shape == (seq, V) and logits.dtype == np.float32
            want = y[P:] @ tensors["lm_head.weight"].astype(np.float64).T
            assert np.max(np.abs(logits - want)) <= 1e-5 * max(np.max(np.abs(want)), 1.0)

            tokens, confidence = s.answer(slot)
            assert tokens.shape == (seq,) and tokens.dtype == np.int32
            assert confidence.shape == (seq,) and confidence.dtype == np.float32
            np.testing.assert_array_equal(tokens, np.argmax(logits, axis=1))  # argmax: lowest id on ties
            shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
            probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
            np.testing.assert_allclose(confidence, probs.max(axis=1), rtol=1e-5, atol=1e-7)

            q_halt, q_continue = s.q(slot)
            assert isinstance(q_halt, float) and isinstance(q_continue, float)
            want_q = y[0] @ tensors["q_head.weight"].astype(np.float64).T + tensors["q_head.bias"]
            np.testing.assert_allclose([q_halt, q_continue], want_q, rtol=0, atol=1e-5)


def test_outputs_are_copies(demo):
    with run_steps(demo, 1) as s:
        y = s.latent(0, "y")
        y[:] = 0
        assert np.any(s.latent(0, "y") != 0)
        logits = s.logits(0)
        logits[:] = 0
        assert np.any(s.logits(0) != 0)


def test_empty_slot_accessors(demo):
    with demo.session(batch=2) as s:
        s.set_input(0, puzzle(demo.config))
        S, D = demo.config["state_len"], demo.config["hidden_size"]
        calls = [
            lambda: s.logits(1),
            lambda: s.answer(1),
            lambda: s.q(1),
            lambda: s.latent(1, "y"),
            lambda: s.latent(1, "z"),
            lambda: s.set_latent(1, "y", np.zeros((S, D), np.float32)),
        ]
        for call in calls:
            with pytest.raises(trm.StateError, match="slot 1 has no input") as info:
                call()
            assert info.value.status == -6
        assert s.slot_state(1) == ("empty", 0)


def test_accessors_invalid_slot(demo):
    with demo.session(batch=2) as s:
        s.set_input(0, puzzle(demo.config))
        for call in (s.logits, s.answer, s.q, s.slot_state, lambda k: s.latent(k, "y")):
            for slot in (2, -1, 0.0, None):
                with pytest.raises(trm.InvalidArgument):
                    call(slot)


# ---- latents ----


def test_latent_round_trip(demo):
    S, D = demo.config["state_len"], demo.config["hidden_size"]
    rng = np.random.default_rng(1)
    with run_steps(demo, 1) as s:
        for which in ("y", "z"):
            values = rng.standard_normal((S, D)).astype(np.float32)
            s.set_latent(0, which, values)
            np.testing.assert_array_equal(s.latent(0, which), values)
            # float64 and non-contiguous input are converted
            wide = rng.standard_normal((D, S)).T
            s.set_latent(0, which, wide)
            np.testing.assert_array_equal(s.latent(0, which), wide.astype(np.float32))
            s.set_latent(0, which, np.ones((S, D), dtype=np.int64))
            np.testing.assert_array_equal(s.latent(0, which), np.ones((S, D), np.float32))
        assert s.slot_state(0) == ("running", 1)  # steps and state are kept


def test_set_latent_invalid(demo):
    S, D = demo.config["state_len"], demo.config["hidden_size"]
    good = np.zeros((S, D), np.float32)
    with run_steps(demo, 1) as s:
        before = s.latent(0, "y"), s.latent(0, "z")
        cases = [
            (np.zeros(S * D, np.float32), "need shape"),
            (np.zeros((S, D + 1), np.float32), "need shape"),
            (np.zeros((D, S), np.float32) if S != D else np.zeros((S, D, 1)), "need shape"),
            (np.zeros((S, D), np.complex64), "real numbers"),
            (np.zeros((S, D), bool), "real numbers"),
            ([["a"] * D] * S, "real numbers"),
            ("abc", "real numbers"),
            (None, "real numbers"),
        ]
        nan = good.copy()
        nan[3, 4] = np.nan
        inf = good.copy()
        inf[0, 0] = -np.inf
        huge = np.zeros((S, D), np.float64)
        huge[1, 1] = 1e39  # beyond float32: inf after conversion
        cases += [(nan, f"value {3 * D + 4} is not finite"), (inf, "value 0 is not finite"),
                  (huge, f"value {D + 1} is not finite")]  # fmt: skip
        for values, match in cases:
            for which in ("y", "z"):
                with pytest.raises(trm.InvalidArgument, match=match):
                    s.set_latent(0, which, values)
        with pytest.raises(trm.InvalidArgument, match="which must be one of"):
            s.set_latent(0, "x", good)
        with pytest.raises(trm.InvalidArgument, match="which must be one of"):
            s.latent(0, "z_H")
        np.testing.assert_array_equal(s.latent(0, "y"), before[0])
        np.testing.assert_array_equal(s.latent(0, "z"), before[1])


def test_set_latent_then_refine_is_deterministic(demo):
    S, D = demo.config["state_len"], demo.config["hidden_size"]
    rng = np.random.default_rng(7)
    y, z = rng.standard_normal((2, S, D)).astype(np.float32)
    with run_steps(demo, 0, batch=1) as a, run_steps(demo, 2, batch=1) as b:
        for s in (a, b):
            s.set_latent(0, "y", y)
            s.set_latent(0, "z", z)
            s.step()
        np.testing.assert_array_equal(a.latent(0, "y"), b.latent(0, "y"))
        np.testing.assert_array_equal(a.latent(0, "z"), b.latent(0, "z"))
        assert a.slot_state(0)[1] == 1 and b.slot_state(0)[1] == 3


# ---- threads ----


def test_threads_bitwise_identical(demo):
    with run_steps(demo, 3, batch=3, threads=1) as one, run_steps(demo, 3, batch=3, threads=2) as two:
        for slot in range(3):
            np.testing.assert_array_equal(one.latent(slot, "y"), two.latent(slot, "y"))
            np.testing.assert_array_equal(one.latent(slot, "z"), two.latent(slot, "z"))


def test_sessions_in_python_threads(demo):
    with run_steps(demo, 4, batch=1) as ref:
        want = ref.latent(0, "y")
    results, errors = [None] * 4, []

    def work(i):
        try:
            with run_steps(demo, 4, batch=1) as s:
                results[i] = s.latent(0, "y")
            # the library's message is per thread: each thread sees its own
            with pytest.raises(trm.InvalidArgument, match=f"unknown key 'key{i}'"):
                demo.info(f"key{i}")
        except Exception as e:  # reported below, on the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for r in results:
        np.testing.assert_array_equal(r, want)


# ---- lifetime ----


def test_closed_session_raises(demo):
    S, D = demo.config["state_len"], demo.config["hidden_size"]
    s = demo.session()
    s.set_input(0, puzzle(demo.config))
    it = s.refine()
    s.close()
    s.close()  # idempotent
    assert s.closed and repr(s) == "<trm.Session closed>"
    calls = [
        lambda: s.set_input(0, puzzle(demo.config)),
        s.step,
        lambda: s.refine(),
        lambda: next(it),
        lambda: s.logits(0),
        lambda: s.answer(0),
        lambda: s.q(0),
        lambda: s.latent(0, "y"),
        lambda: s.set_latent(0, "y", np.zeros((S, D), np.float32)),
        lambda: s.slot_state(0),
        lambda: s.max_steps,
        lambda: setattr(s, "threads", 2),
    ]
    for call in calls:
        with pytest.raises(trm.ClosedError, match="session is closed"):
            call()
    with pytest.raises(trm.ClosedError):
        with s:
            pass


def test_session_keeps_model_alive(demo_path):
    s = trm.Model(demo_path).session()  # no other reference to the model
    gc.collect()
    s.set_input(0, [1] * 16)
    assert s.step().step == 1
    s.close()


def test_model_closed_under_open_session(demo_path):
    m = trm.Model(demo_path)
    with m.session() as s:
        m.close()
        assert m.closed
        with pytest.raises(trm.ClosedError):
            m.session()
        s.set_input(0, [1] * 16)  # the session still works: the C model is not freed yet
        assert s.step().step == 1
        assert m._ptr is not None
    assert m._ptr is None  # freed with its last session


def test_session_context_manager_closes_on_error(demo):
    with pytest.raises(KeyError):
        with demo.session() as s:
            raise KeyError("x")
    assert s.closed and demo._sessions == 0


def test_sessions_opened_and_closed_from_threads(demo_path):
    m = trm.Model(demo_path)
    errors = []

    def churn():
        try:
            for _ in range(30):
                with m.session(batch=1) as s:
                    s.set_input(0, [2] * 16)
        except Exception as e:  # reported below, on the main thread
            errors.append(e)

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert m._sessions == 0
    m.close()
    assert m._ptr is None
