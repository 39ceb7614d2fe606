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


def test_structure_level_scores_take_the_worst_atom():
    from deepeut.active_learning.conformal import dpgen_model_deviation, scores

    s = scores([np.array([0.1, 0.4]), np.array([0.2, 0.2])], [np.array([0.1, 0.1]), np.array([0.1, 0.4])],
               level="structure")
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
    from deepeut.utils.neighbors import neighbor_pairs

    i, j, dv = neighbor_pairs(atoms.positions, atoms.cell.array, 3.0)
    dist = np.linalg.norm(dv, axis=1)
    ho = (topo.molecule[i] != topo.molecule[j]) & (np.sort(np.c_[atoms.numbers[i], atoms.numbers[j]], 1) == [1, 8]).all(1)
    closest = dist[ho].min()
    reason = screen(atoms, -100.0, rec, counts, {("H", "O"): closest + 0.05})
    assert reason.startswith("too close: H") and f"{closest:.2f} Å < {closest + 0.05:.2f} Å" in reason
    assert screen(atoms, -100.0, rec, counts, {("H", "O"): closest - 0.05}) == ""
