"""Conformance against the reference TRM code, through the Python binding.

The same comparison as tests/conformance.c (see tests/conformance/README.md): for each case of
tests/conformance, as the build under $TRM_BUILD made it (the checkpoint converted by
trm-convert, and the reference's outputs unpacked to .npy), step 0 runs free from H_init / L_init; each later step k starts from
the reference state after step k-1 (set_latent) and runs one supervision step. Every slot and
step is compared: max abs error on y (z_H), z (z_L), q_halt and q_continue, and on the logits
relative to the largest reference logit of that slot and step. Fails above 1e-3, as the C test.
"""
import numpy as np
import pytest

import trm
from conftest import REPO, conformance_case

TOLERANCE = 1e-3
CASES = sorted(p.stem for p in (REPO / "tests" / "conformance").glob("*.npz"))


def test_cases_found():
    assert len(CASES) >= 4, CASES


# the best kernel of this CPU, and the portable one (TRM_ISA is read when a model loads)
@pytest.mark.parametrize("isa", [None, "scalar"])
@pytest.mark.parametrize("case", CASES)
def test_conformance(case, isa, monkeypatch):
    if isa:
        monkeypatch.setenv("TRM_ISA", isa)
    else:
        monkeypatch.delenv("TRM_ISA", raising=False)
    model_path, case_dir = conformance_case(case)
    ref = {name: np.load(case_dir / f"{name}.npy") for name in
           ("inputs", "puzzle_identifiers", "logits", "q_halt", "q_continue", "z_H", "z_L")}  # fmt: skip
    with trm.Model(model_path) as m:
        if isa:
            assert m.isa == isa
        c = m.config
        B, K = ref["inputs"].shape[0], ref["logits"].shape[0]
        assert ref["inputs"].shape == (B, c["seq_len"])
        assert ref["logits"].shape == (K, B, c["seq_len"], c["vocab_size"])
        assert ref["z_H"].shape == ref["z_L"].shape == (K, B, c["state_len"], c["hidden_size"])
        assert ref["q_halt"].shape == ref["q_continue"].shape == (K, B)

        worst = dict(y=0.0, z=0.0, q=0.0, logits=0.0)
        failures = []
        with m.session(batch=B, max_steps=K) as s:
            for b in range(B):
                s.set_input(b, ref["inputs"][b], puzzle_id=int(ref["puzzle_identifiers"][b]))
            for k in range(K):
                if k > 0:
                    for b in range(B):
                        s.set_latent(b, "y", ref["z_H"][k - 1, b])
                        s.set_latent(b, "z", ref["z_L"][k - 1, b])
                ev = s.step("step")
                assert ev is not None and ev.kind == "step", f"step {k}: no supervision step ran"
                for b in range(B):
                    y, z = s.latent(b, "y").astype(np.float64), s.latent(b, "z").astype(np.float64)
                    q_halt, q_continue = s.q(b)
                    logits = s.logits(b).astype(np.float64)
                    ref_logits = ref["logits"][k, b].astype(np.float64)
                    here = dict(
                        y=np.max(np.abs(y - ref["z_H"][k, b])),
                        z=np.max(np.abs(z - ref["z_L"][k, b])),
                        q=max(abs(q_halt - float(ref["q_halt"][k, b])), abs(q_continue - float(ref["q_continue"][k, b]))),
                        logits=np.max(np.abs(logits - ref_logits)) / max(np.max(np.abs(ref_logits)), 1e-30),
                    )
                    # `not <=` so that a NaN fails
                    if not all(v <= TOLERANCE for v in here.values()):
                        failures.append(f"step {k} slot {b}: " + " ".join(f"{n} {v:.3g}" for n, v in here.items()))
                    for n, v in here.items():
                        worst[n] = max(worst[n], v) if v == v else float("nan")
        print(f"conformance {case} [{m.isa}] via Python: {K} steps x {B} slots, worst error "
              + " ".join(f"{n} {v:.2e}" for n, v in worst.items()))  # fmt: skip
    assert not failures, f"{case}: above {TOLERANCE}:\n" + "\n".join(failures)


def test_conformance_detects_a_wrong_state():
    """The comparison can fail: a perturbed reference state is caught."""
    case = CASES[0]
    model_path, case_dir = conformance_case(case)
    z_H = np.load(case_dir / "z_H.npy")
    inputs = np.load(case_dir / "inputs.npy")
    ids = np.load(case_dir / "puzzle_identifiers.npy")
    with trm.Model(model_path) as m, m.session(batch=1) as s:
        s.set_input(0, inputs[0], puzzle_id=int(ids[0]))
        s.step()
        assert np.max(np.abs(s.latent(0, "y") - z_H[0, 0])) <= TOLERANCE
        s.set_input(0, inputs[0], puzzle_id=int(ids[0]))
        s.set_latent(0, "y", s.latent(0, "y") + 0.05)  # a wrong start
        s.step()
        assert np.max(np.abs(s.latent(0, "y") - z_H[0, 0])) > TOLERANCE
