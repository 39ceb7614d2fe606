"""Active learning numerics: conformal q̂, coverage, threshold units, selection and screening (issue 7)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import built_box


def test_q_hat_is_the_finite_sample_order_statistic():
    from deepeut.active_learning.conformal import CalibrationError, q_hat

    s = np.array([0.7, 0.1, 0.9, 0.3, 0.5, 0.2, 0.8, 0.4, 0.6, 1.0])  # n = 10
    # α = 0.1: k = ceil(11 × 0.9) = 10 → the 10th smallest = 1.0; α = 0.2: k = ceil(11 × 0.8) = 9 → 0.9
    assert q_hat(s, 0.1) == 1.0 and q_hat(s, 0.2) == 0.9 and q_hat(s, 0.5) == 0.6
    with pytest.raises(CalibrationError, match="at least 19 are needed"):
        q_hat(s, 0.05)


def test_calibrated_uncertainty_covers_heteroscedastic_gaussian_errors():
    """Exchangeable errors ~ N(0, (c·u)²) with u spread over a decade: ũ = q̂ u covers 1 − α of new atoms."""
    from deepeut.active_learning.conformal import coverage, prediction_error, q_hat, scores

    rng = np.random.default_rng(0)

    def draw(n):
        u = rng.lognormal(mean=-2.5, sigma=0.7, size=n)  # eV/Å
        f_err = rng.normal(size=(n, 3)) * (1.7 * u)[:, None]  # the ensemble underestimates the error 1.7×
        return [prediction_error(f_err, np.zeros_like(f_err))], [u]

    for alpha in (0.1, 0.4):
        e_cal, u_cal = draw(10000)
        q = q_hat(scores(e_cal, u_cal), alpha)
        e_new, u_new = draw(10000)
        assert coverage(e_new, u_new, q) == pytest.approx(1 - alpha, abs=0.02)


def test_held_out_frame_coverage_matches_new_frames():
    """Known answer: 10 one-atom frames with scores 1..10, α = 0.1: q̂ of 9 scores is their largest, so every frame
    but the one with score 10 is covered (0.9). Exchangeable 60-atom frames: 1 − α like fresh frames. Too few
    frames for α at structure level: NaN."""
    from deepeut.active_learning.conformal import held_out_frame_coverage, prediction_error

    ones = [np.ones(1)] * 10
    assert held_out_frame_coverage([np.array([s]) for s in range(1, 11)], ones, 0.1) == pytest.approx(0.9)
    rng = np.random.default_rng(1)

    def frame():
        u = rng.lognormal(mean=-2.5, sigma=0.5, size=60)
        f_err = rng.normal(size=(60, 3)) * (1.5 * u)[:, None]
        return prediction_error(f_err, np.zeros_like(f_err)), u

    frames = [frame() for _ in range(40)]
    assert held_out_frame_coverage([e for e, _ in frames], [u for _, u in frames], 0.1) == pytest.approx(0.9, abs=0.02)
    few = frames[:5]
    assert np.isnan(held_out_frame_coverage([e for e, _ in few], [u for _, u in few], 0.1, level="structure"))


def test_structure_level_scores_take_the_worst_atom():
    from deepeut.active_learning.conformal import dpgen_model_deviation, scores

    s = scores(
        [np.array([0.1, 0.4]), np.array([0.2, 0.2])], [np.array([0.1, 0.1]), np.array([0.1, 0.4])], level="structure"
    )
    np.testing.assert_allclose(s, [4.0, 2.0])
    assert dpgen_model_deviation(np.array([1.0]))[0] == pytest.approx(np.sqrt(3))


def test_threshold_is_converted_from_kcal_mol_once():
    from deepeut.active_learning.selection import threshold_eV_A

    assert threshold_eV_A(3.0) == pytest.approx(0.1301, abs=1e-4)  # the paper's 3 kcal/mol/Å


def test_candidates_are_diverse_and_capped():
    from deepeut.active_learning.selection import candidates

    u = [0.5, 0.45, 0.3, 0.05, 0.4]
    runs, frames = [0, 0, 1, 1, 0], [10, 11, 3, 4, 20]
    c = candidates(u, runs, frames, threshold=0.13, min_gap=2)
    assert [(x.run, x.frame) for x in c] == [(0, 10), (0, 20), (1, 3)]  # frame 11 is next to 10; 0.05 too low
    assert len(candidates(u, runs, frames, threshold=0.13, min_gap=2, cap=1)) == 1


def _move_molecule(atoms, topology, mol, shift):
    out = atoms.copy()
    out.positions[topology.molecule == mol] += shift
    return out


def test_screening_rejects_fused_molecules_and_too_close_pairs_with_reasons():
    from deepeut.active_learning.selection import screen
    from deepeut.systems import MoleculeRecognizer, build_templates

    cfg, box = built_box("ura")
    rec = MoleculeRecognizer(build_templates(cfg.system.species))
    counts, atoms, topo = box.topology.counts(), box.atoms, box.topology
    assert screen(atoms, -100.0, rec, counts, {}) == ""
    assert screen(atoms, float("nan"), rec, counts, {}).startswith("non-finite energy")
    ureas = np.unique(topo.molecule[topo.species == "urea"])
    n_a = np.nonzero((topo.molecule == ureas[0]) & (atoms.numbers == 7))[0][0]
    c_b = np.nonzero((topo.molecule == ureas[1]) & (atoms.numbers == 6))[0][0]
    d = atoms.positions[c_b] - atoms.positions[n_a]
    d -= np.round(d / atoms.cell.lengths()) * atoms.cell.lengths()
    fused = _move_molecule(atoms, topo, ureas[0], d - 1.3 * d / np.linalg.norm(d))  # N of one urea 1.3 Å from C
    assert screen(fused, -100.0, rec, counts, {}).startswith("molecules:")
    # the closest intermolecular H···O contact of the box, against a limit just above it
    from deepeut.utils.geometry import neighbor_pairs

    i, j, dv = neighbor_pairs(atoms.positions, atoms.cell.array, 3.0)
    dist = np.linalg.norm(dv, axis=1)
    ho = (topo.molecule[i] != topo.molecule[j]) & (np.sort(np.c_[atoms.numbers[i], atoms.numbers[j]], 1) == [1, 8]).all(
        1
    )
    closest = dist[ho].min()
    reason = screen(atoms, -100.0, rec, counts, {("H", "O"): closest + 0.05})
    assert reason.startswith("too close: H") and f"{closest:.2f} Å < {closest + 0.05:.2f} Å" in reason
    assert screen(atoms, -100.0, rec, counts, {("H", "O"): closest - 0.05}) == ""


# a barely trained ensemble breaks molecules within tens of fs: explore briefly with close frames so that the
# first frames (the freshly packed box) pass the screening
AL_FAST = [
    "stage=al",
    "train.ensemble_size=2",
    "train.max_epochs=1",
    "al.explore_runs=1",
    "al.explore_ps=0.05",
    "al.explore_save_every_fs=5",
    "al.explore_temperature_K=300",
    "al.min_gap_frames=1",
    "al.n_calibration=2",
    "al.max_selected=2",
    "al.threshold_kcal_mol_A=0.0",
    "al.stop_below=50",
    "md.max_force_eV_A=1000",
    "md.max_temperature_factor=100",
    "md.relax_packed_steps=0",  # explore the raw packed box: its hot frames give the candidates this test labels
]


def test_al_loop_killed_while_labeling_resumes_without_relabeling_and_stops(tmp_path):
    """One iteration on the URA demo data with real xTB labels; SIGKILL during labeling, then resume."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    args = [sys.executable, str(ROOT / "run.py"), *AL_FAST, f"output_dir={tmp_path}"]
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=dict(os.environ, WANDB_MODE="offline"),
    )
    state_path = tmp_path / "al_state.json"
    deadline = time.time() + 600
    killed = False
    while time.time() < deadline and proc.poll() is None:
        if state_path.exists() and json.loads(state_path.read_text())["step"] == "label":
            n_struct = len(list((tmp_path / "data" / "structures").glob("*.extxyz")))
            if n_struct >= 60 + 2 + 1:  # demo 60 + 2 calibration + the first selected label
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.2)
    proc.wait()
    assert killed, "the loop finished before it could be killed during labeling"
    before = {p.name: p.stat().st_mtime for p in (tmp_path / "data" / "structures").glob("*.extxyz")}
    res = subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, WANDB_MODE="offline", HYDRA_FULL_ERROR="0"),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    after = {p.name: p.stat().st_mtime for p in (tmp_path / "data" / "structures").glob("*.extxyz")}
    assert all(after[k] == v for k, v in before.items())  # nothing relabeled
    state = json.loads(state_path.read_text())
    h = state["history"][0]
    assert state["stopped"] and "al.stop_below" in h["stop"]  # 2 selected < 50: the stop rule fired
    assert h["labeled"] == 2 and h["failed"] == 0 and h["dataset_size"] == 60  # the demo data at the first training
    assert state["history"][1]["dataset_size"] == 64  # the final retrain saw the 2 new labels too
    sel = json.loads((tmp_path / "iter_0" / "selection.json").read_text())
    cal = json.loads((tmp_path / "iter_0" / "calibration.json").read_text())
    assert cal["q_hat"] > 0 and 0 <= cal["coverage_test"] <= 1 and cal["n_calibration_frames"] == 2
    assert len(sel["accepted"]) == 2 and all(c["max_u_tilde"] > 0 for c in sel["accepted"])
    assert (tmp_path / "iter_0" / "fig2_calibration.png").exists() and (tmp_path / "al_summary.txt").exists()
    # the new labels were used: a final ensemble trained on all 64 structures
    assert state["done"] and state["final_ensemble"].endswith("iter_1/train")
    final = json.loads((tmp_path / "iter_1" / "train" / "ensemble.json").read_text())
    assert final["complete"] and final["dataset"]["n_train"] == 45 + 2
    # the campaign snapshot of this folder: store, newest ensemble (no machine path), history; the next session's
    # loop warm-starts from the snapshot's members
    from deepeut.active_learning.snapshot import save
    from deepeut.data.demo import unpack
    from deepeut.training.nequip_config import warm_start_model
    from deepeut.training.potential import Ensemble

    dest = tmp_path / "snapshot"
    info = save(tmp_path, dest, "initial training")
    assert info["iteration"] == 1 and info["dataset_size"] == 64
    manifest_text = (dest / "ensemble" / "ensemble.json").read_text()
    assert str(tmp_path) not in manifest_text and "/work/" not in manifest_text
    assert len(Ensemble.load(dest / "ensemble")) == 2 and warm_start_model(dest / "ensemble" / "member_0")
    assert unpack(dest, tmp_path / "restored") == 64
    save(tmp_path, dest, "initial training")  # the same segment again: replaced, not appended
    history = json.loads((dest / "al_history.json").read_text())
    assert [len(s["iterations"]) for s in history["segments"]] == [2]


def test_campaign_history_keeps_one_record_per_al_folder():
    from deepeut.active_learning.snapshot import merged_history

    h = merged_history({}, "initial training", [{"iteration": 0}])
    h = merged_history(h, "snapshot", [{"iteration": 0}, {"iteration": 1}])
    h = merged_history(h, "snapshot", [{"iteration": 0}, {"iteration": 1}, {"iteration": 2}])
    assert [(s["started_from"], len(s["iterations"])) for s in h["segments"]] == [
        ("initial training", 1),
        ("snapshot", 3),
    ]


def test_stop_rule_counts_every_frame_above_threshold_before_the_spacing_filter():
    from deepeut.active_learning.selection import above_threshold, spaced

    n = 80  # 80 consecutive frames of one run above the threshold
    u, runs, frames = np.full(n, 0.5), np.zeros(n, int), np.arange(n)
    above = above_threshold(u, runs, frames, threshold=0.13)
    assert len(above) == 80  # what the stop rule counts (the paper's would go on at stop_below = 50)
    assert len(spaced(above, min_gap=2)) == 40  # what is labeled: every other frame
    assert len(spaced(above, min_gap=2, cap=5)) == 5


def test_calibration_frames_never_reenter_selection():
    from deepeut.active_learning.selection import above_threshold

    u, runs, frames = [0.5, 0.4, 0.3, 0.2], [0, 0, 1, 1], [1, 2, 1, 2]
    c = above_threshold(u, runs, frames, threshold=0.13, exclude=[[0, 2], [1, 1]])
    assert [(x.run, x.frame) for x in c] == [(0, 1), (1, 2)]


def test_paper_quantile_uses_the_number_of_calibration_structures():
    from deepeut.active_learning.conformal import CalibrationError, q_hat

    s = np.arange(1, 101, dtype=float)  # 100 atom scores from 20 structures
    assert q_hat(s, 0.1, "exact") == 91.0  # ⌈101 · 0.9⌉ = 91st smallest
    assert q_hat(s, 0.1, "paper", n_structures=20) == pytest.approx(np.quantile(s, 0.9 * 21 / 20))
    assert q_hat(s, 0.1, "paper", n_structures=20) > q_hat(s, 0.1, "exact")
    with pytest.raises(CalibrationError, match="calibration structures are too few"):
        q_hat(s, 0.1, "paper", n_structures=4)


def test_campaign_threshold_scales_with_the_ensembles_accuracy_and_absolute_stays_the_papers():
    from deepeut.active_learning.selection import selection_threshold, threshold_eV_A

    thr, rule = selection_threshold(3.0, 3.0, 0.2)
    assert thr == pytest.approx(0.6) and rule.startswith("relative")
    thr, rule = selection_threshold(3.0, None, 0.2)  # al=paper: 3 kcal/mol/Å whatever the accuracy
    assert thr == pytest.approx(threshold_eV_A(3.0)) and rule.startswith("absolute")
    with pytest.raises(ValueError, match="test force RMSE"):
        selection_threshold(3.0, 3.0, float("nan"))


def test_test_frame_threshold_is_the_largest_calibrated_uncertainty_on_held_out_frames():
    """al=campaign: select what the committee is less sure of than of every held-out labeled frame."""
    from deepeut.active_learning.selection import above_threshold, selection_threshold

    test_u_tilde = [0.9, 1.2, 1.0, 1.1]
    thr, rule = selection_threshold(3.0, None, 0.2, 1.0, test_u_tilde)
    assert thr == 1.2 and "4 held-out frames" in rule
    assert selection_threshold(3.0, None, 0.2, 0.5, test_u_tilde)[0] == 1.1  # 'higher': an observed value
    explored = [1.3, 0.8, 1.15, 1.25]  # two frames beyond anything the test set showed
    assert len(above_threshold(explored, [0] * 4, [0, 1, 2, 3], threshold=thr)) == 2
    with pytest.raises(ValueError, match="test frames"):
        selection_threshold(3.0, None, 0.2, 1.0, [])


def test_fractional_stop_rule_compares_selected_with_explored_frames():
    from deepeut.active_learning.selection import stop_reason

    assert stop_reason(4, 100, 50, 0.05).startswith("4 of 100")  # 4 % < 5 %: stop
    assert stop_reason(5, 100, 50, 0.05) == ""  # 5 % is not below 5 %
    assert stop_reason(0, 0, 50, 0.05) != ""  # nothing explored: nothing to go on with
    assert "al.stop_below = 50" in stop_reason(49, 10_000, 50, None)  # the paper's count rule
    assert stop_reason(50, 10_000, 50, None) == ""


def test_campaign_config_composes_with_its_rules():
    from conftest import load_config

    from deepeut.config import ConfigError

    cfg = load_config("al=campaign")
    assert cfg.al.threshold_test_quantile == 1.0 and cfg.al.threshold_rmse_factor is None
    assert cfg.al.stop_below_fraction == 0.05
    assert cfg.al.retrain == "warm" and cfg.al.explore_temperature_K == 400.0 and cfg.al.explore_stop_on_broken
    with pytest.raises(ConfigError, match="al.stop_below_fraction"):
        load_config("al=campaign", "al.stop_below_fraction=5")
    with pytest.raises(ConfigError, match="not both"):
        load_config("al=campaign", "al.threshold_rmse_factor=3")


def test_a_too_short_contact_makes_a_candidate_whatever_the_uncertainty():
    """al.select_contacts_below_A: the committee can agree on a wrong Li–O contact (small ũ); such frames are
    candidates with the contact as their trigger; contacts within one molecule and long ones are not."""
    from ase import Atoms

    from deepeut.active_learning.selection import contact_candidates, contact_trigger

    def frame(r_lio: float, same_molecule: bool = False):
        a = Atoms("LiOH2", positions=[[0, 0, 0], [r_lio, 0, 0], [r_lio + 0.6, 0.75, 0], [r_lio + 0.6, -0.75, 0]])
        a.set_cell([12, 12, 12]), a.set_pbc(True)
        a.arrays["molecule"] = np.array([0, 0, 0, 0] if same_molecule else [0, 1, 1, 1])
        return a

    limits = {"Li-O": 1.7, "H-O": 1.4}
    assert contact_trigger(frame(1.55), limits) == "contact Li-O 1.55 Å < 1.7 Å"
    assert contact_trigger(frame(1.95), limits) == "" and contact_trigger(frame(1.55, True), limits) == ""
    assert contact_trigger(frame(1.55), {}) == ""
    frames = {(0, 0): frame(1.95), (0, 1): frame(1.62), (0, 2): frame(1.50), (1, 0): frame(1.40)}
    u = {k: 0.1 for k in frames}
    cands = contact_candidates(frames, u, limits, exclude=[(1, 0)])  # (1, 0): a calibration frame
    assert [(c.run, c.frame) for c in cands] == [(0, 2), (0, 1)]  # shortest contact first
    assert cands[0].trigger.startswith("contact Li-O 1.50") and cands[0].max_u_tilde == 0.1


def test_a_packed_committee_keeps_its_test_rmse_in_the_loop_record():
    """A loop that starts from a campaign snapshot (packages only, no done.json) records the committee's test
    force RMSE from its manifest (it was NaN)."""
    from deepeut.active_learning.loop import committee_members
    from deepeut.training.members import objective
    from conftest import ROOT

    rmse = objective(committee_members(ROOT / "deepeut" / "models" / "ura"))
    assert 0.05 < rmse < 1.0


def test_a_loop_resumed_from_a_snapshot_first_retrains_on_labels_its_committee_never_saw(tmp_path, monkeypatch):
    """A campaign snapshot can hold labels of an iteration whose retraining never finished; iteration 0 then
    retrains the committed committee (warm) instead of exploring again with it, and links it when it saw them all."""
    import json

    import deepeut.training.task
    from conftest import ROOT, load_config
    from deepeut.active_learning.loop import step_train, train_labels_unseen_by
    from deepeut.data.demo import unpack
    from deepeut.stage_io import EnsembleRef

    store = tmp_path / "store"
    unpack(ROOT / "deepeut" / "data" / "demo" / "ura", store)  # the 45 + 15 shipped demo labels
    committee = tmp_path / "committee"
    committee.mkdir()
    manifest = committee / "ensemble.json"
    trained = []
    monkeypatch.setattr(deepeut.training.task, "run_train", lambda cfg, data, out, init: trained.append(init))
    cfg = load_config("stage=al", "al=campaign")

    manifest.write_text(json.dumps({"dataset": {"n_train": 45}}))
    assert train_labels_unseen_by(committee, store) == 0
    step_train(cfg, tmp_path / "a" / "iter_0", store, 0, EnsembleRef(committee))
    assert (tmp_path / "a" / "iter_0" / "train").resolve() == committee.resolve() and trained == []

    manifest.write_text(json.dumps({"dataset": {"n_train": 40}}))
    assert train_labels_unseen_by(committee, store) == 5
    step_train(cfg, tmp_path / "b" / "iter_0", store, 0, EnsembleRef(committee))
    assert trained and trained[0].path == committee  # warm from the committed committee
    manifest.write_text(json.dumps({}))  # a manifest that does not say what it trained on: linked as before
    assert train_labels_unseen_by(committee, store) == 0
