"""stage=validate: failure detection on known trajectories, and the whole stage on the embedded ensemble (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import built_box, load_config, run_cli


def _trajectory(path, positions_per_frame, box, cell=None):
    from deepeut.trajectory.h5md import H5MDWriter, OBSERVABLES

    w = H5MDWriter(
        path,
        box.atoms.numbers,
        box.atoms.get_masses(),
        box.atoms.cell.array if cell is None else cell,
        box.topology.molecule,
        list(box.topology.label),
    )
    for k, pos in enumerate(positions_per_frame):
        w.append(k, k * 0.01, pos, np.zeros_like(pos), {o: 0.0 for o in OBSERVABLES})
    w.close()
    return path


def test_a_short_li_o_contact_fails_the_run_at_its_frame(tmp_path):
    from deepeut.validation.task import first_contact_failure

    cfg, box = built_box("ura")
    pos = box.atoms.positions
    li = int(np.nonzero(box.atoms.numbers == 3)[0][0])
    o = int(
        next(i for i in np.nonzero(box.atoms.numbers == 8)[0] if box.topology.molecule[i] != box.topology.molecule[li])
    )
    frames = [pos.copy() for _ in range(12)]
    for k in range(7, 12):  # from frame 7 (0.07 ps) on, the Li sits 1.3 Å from an O of another molecule
        frames[k][li] = frames[k][o] + np.array([1.3, 0.0, 0.0])
    path = _trajectory(tmp_path / "bad.h5", frames, box)
    res = first_contact_failure(path, {"Li-O": 1.7, "H-O": 1.4}, every=1)
    assert res["time_ps"] == pytest.approx(0.07) and res["reason"].startswith("contact Li-O at 1.")
    assert res["closest_A"]["Li-O"] <= 1.3 + 1e-6
    assert res["frames_below_limit_fraction"] == {"Li-O": pytest.approx(5 / 12), "H-O": 0.0}  # the whole run
    good = _trajectory(tmp_path / "good.h5", [pos.copy() for _ in range(12)], box)
    ok = first_contact_failure(good, {"Li-O": 1.7, "H-O": 1.4}, every=1)
    assert ok["time_ps"] is None and ok["closest_A"]["Li-O"] >= 1.7
    assert ok["frames_below_limit_fraction"] == {"Li-O": 0.0, "H-O": 0.0}


def test_li_o_structure_finds_the_planted_first_shell(tmp_path):
    """The atoms of a URA box on a 4 Å grid in a 40 Å cube, then 4 O of other molecules planted 2.0 Å from each
    Li and 2 more at 4.0 Å: the Li–O first peak sits at 2.0 Å, r_c in the empty gap and N(r_c) is 4."""
    from deepeut.validation.task import li_o_structure

    cfg, box = built_box("ura")
    numbers, mol = box.atoms.numbers, np.asarray(box.topology.molecule)
    grid = np.stack(np.meshgrid(*[np.arange(10)] * 3, indexing="ij"), -1).reshape(-1, 3) * 4.0 + 2.0
    pos = grid[np.random.default_rng(3).permutation(len(grid))[: len(numbers)]]
    li = np.nonzero(numbers == 3)[0]
    pos[li] = [[10.0, 10.0, 10.0], [30.0, 30.0, 30.0]][: len(li)]  # grid sites, far from each other
    o_free = [int(i) for i in np.nonzero(numbers == 8)[0]]
    for l in li:
        for d in np.array([[2, 0, 0], [-2, 0, 0], [0, 2, 0], [0, -2, 0], [0, 0, 4], [0, 0, -4]], float):
            o = next(i for i in o_free if mol[i] != mol[l])
            o_free.remove(o)
            pos[o] = pos[l] + d
    path = _trajectory(tmp_path / "shell.h5", [pos] * 3, box, cell=np.eye(3) * 40.0)
    res = li_o_structure(path, stride=1)
    assert res["first_peak_A"] == pytest.approx(2.0, abs=0.05)
    assert 2.0 < res["r_c_A"] < 4.0 and res["cn"] == pytest.approx(4.0)


def test_validate_settings_fail_at_start_naming_the_key():
    from deepeut.config import ConfigError

    with pytest.raises(ConfigError, match="validate.drivers"):
        load_config("stage=validate", "validate.drivers=[mean]")


@pytest.mark.slow
def test_validate_stage_on_the_embedded_ensemble(tmp_path):
    r = run_cli(
        "stage=validate",
        "committee=embedded",
        "validate.duration_ps=0.05",
        "validate.n_label_frames=2",
        "validate.drivers=[committee]",
        "md.save_every_fs=5",
        "classical.npt_ps=2",
        "classical.nvt_ps=1",
        f"pipeline.cache_dir={tmp_path / 'cache'}",
        f"output_dir={tmp_path / 'v'}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    v = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert v["drivers"][0]["driver"] == "committee" and v["scores"]["n_frames"] == 2
    assert set(v["scores"]["models"]) == {"member_0", "member_1", "member_2", "ensemble_mean"}


def test_temperature_failure_catches_heating_but_not_canonical_fluctuations():
    """88 atoms at 353 K: an Ornstein–Uhlenbeck temperature with the canonical spread T √(2/N_f) (31 K) and a 20 fs
    memory never fails over 10 ps; a run heating to 441 K within 0.1 ps (seen with a GAFF2 start) fails, at the
    end of the first window whose mean is > 62 K off."""
    from deepeut.md.safety import temperature_window_failure

    rng = np.random.default_rng(4)
    t = np.arange(0, 10.0, 0.005)
    sd, a = 353.0 * np.sqrt(2 / 261), np.exp(-0.005 / 0.02)
    x = np.zeros(len(t))
    for k in range(1, len(t)):
        x[k] = a * x[k - 1] + sd * np.sqrt(1 - a * a) * rng.normal()
    assert temperature_window_failure(t, 353.0 + x, 353.0, 88) is None
    hot = 353.0 + x + np.minimum(t / 0.1, 1.0) * 88.0  # +88 K after 0.1 ps
    when, why = temperature_window_failure(t, hot, 353.0, 88)
    assert 1.0 <= when <= 1.5 and why.startswith("temperature averaged over 1 ps is 4")
    short = temperature_window_failure(t[:80], hot[:80], 353.0, 88)  # 0.4 ps run: judged on its whole length
    assert short is not None and short[0] == pytest.approx(t[79])


def test_window_mean_temperature_of_a_ramp_is_its_midpoint():
    """A temperature rising 100 K/ps sampled every 10 fs: the 1 ps window ending at t has mean T(t − 0.5 ps); the
    first full window ends at 1 ps; a 0.5 ps run is averaged whole."""
    from deepeut.md.safety import temperature_bound_K, window_mean_temperature

    t = np.round(np.arange(0, 3.0001, 0.01), 6)
    ends, means = window_mean_temperature(t, 300.0 + 100.0 * t, 1.0)
    assert t[ends[0]] == pytest.approx(1.0) and len(ends) == len(t) - 100
    np.testing.assert_allclose(means, 300.0 + 100.0 * (t[ends] - 0.5), atol=1e-9)
    ends, means = window_mean_temperature(t[:51], 300.0 + 100.0 * t[:51], 1.0)
    assert list(ends) == [50] and means[0] == pytest.approx(325.0)
    assert temperature_bound_K(353.0, 88, 2.0) == pytest.approx(2 * 353.0 * np.sqrt(2 / 261))


def test_validation_figures_and_captions_from_the_stage_records(tmp_path):
    """The figure writer reads what run_driver leaves (trajectory, contacts.csv, li_o_rdf.csv) and the scores, and
    writes the three figures and a caption for each; contacts.csv round-trips through the CSV writer."""
    from deepeut.utils.io import read_csv_columns, write_csv
    from deepeut.validation.figures import write_validation_figures
    from deepeut.validation.task import li_o_structure

    cfg, box = built_box("ura")
    pos = box.atoms.positions
    drivers = []
    for name in ("committee", "0"):
        rdir = tmp_path / f"driver_{name}" / "replica_0"
        rdir.mkdir(parents=True)
        path = _trajectory(rdir / "trajectory.h5", [pos + 0.01 * k for k in range(12)], box)
        write_csv(
            rdir / "contacts.csv", ["time_ps", "closest_Li-O_A", "closest_H-O_A"], [[0.0, 0.1], [1.9, 1.4], [1.8, 1.7]]
        )
        li_o = li_o_structure(path, stride=1, curves_csv=rdir / "li_o_rdf.csv")
        failed = 0.1 if name == "0" else None
        drivers.append({"driver": name, "runs": [{"failed_at_ps": failed, "reason": "contact Li-O", "li_o": li_o}]})
    np.testing.assert_allclose(
        read_csv_columns(tmp_path / "driver_0" / "replica_0" / "contacts.csv")["closest_Li-O_A"], [1.9, 1.4]
    )
    scores = {
        "n_frames": 4,
        "models": {
            m: {"forces_rmse_eV_A": 0.2, "forces_rmse_by_element_eV_A": {"Li": 0.3, "O": 0.1}} for m in ("0", "mean")
        },
    }
    summary = {
        "system": "ura",
        "scale": "tiny",
        "temperature_K": 353.0,
        "labeler": "xtb",
        "drivers": drivers,
        "scores": scores,
        "min_contact_A": {"Li-O": 1.5, "H-O": 1.4},
    }
    captions = write_validation_figures(summary, tmp_path, cfg.validate)
    assert set(captions) == {"validation_md.png", "validation_li_o_rdf.png", "validation_force_rmse.png"}
    assert all((tmp_path / f).stat().st_size > 10_000 for f in captions)
    assert json.loads((tmp_path / "captions.json").read_text()) == captions
    assert "353 K" in captions["validation_md.png"] and "4 fresh xtb labels" in captions["validation_force_rmse.png"]


def test_the_stored_run_is_rechecked_for_changed_molecules(tmp_path):
    """The validation judges every stored run by the current molecule definition: a urea H moved onto its carbon
    from frame 4 (0.04 ps) on fails the run there, whatever the MD's own checks saw; an intact run does not."""
    from deepeut.systems import MoleculeRecognizer
    from deepeut.validation.task import molecule_failure

    cfg, box = built_box("ura")
    topo, pos = box.topology, box.atoms.positions
    h = int(np.nonzero(np.char.startswith(topo.label.astype(str), "H_U"))[0][0])
    c = int(np.nonzero((topo.molecule == topo.molecule[h]) & (topo.label == "C_U"))[0][0])
    frames = [pos.copy() for _ in range(8)]
    for k in range(4, 8):
        frames[k][h] = pos[c] + 1.10 * (pos[h] - pos[c]) / np.linalg.norm(pos[h] - pos[c])
    rec = MoleculeRecognizer.for_system(cfg.system)
    t, reason = molecule_failure(_trajectory(tmp_path / "bad.h5", frames, box), rec, every=1)
    assert t == pytest.approx(0.04) and "urea but not its bonds" in reason
    assert molecule_failure(_trajectory(tmp_path / "good.h5", [pos.copy()] * 8, box), rec, every=1) is None


def test_the_committee_uncertainty_before_a_failure_comes_from_the_frames_before_it(tmp_path):
    """A urea H moved onto its carbon from frame 4 (0.04 ps) on, the run failed at 0.05 ps: the record holds the
    last 3 saved frames up to 0.05 ps (not the frames after), and the embedded URA committee is less sure of the
    broken frames than of the intact one before them."""
    from deepeut.training.embedded import MODELS_DIR
    from deepeut.training.potential import Ensemble
    from deepeut.validation.task import uncertainty_before_failure

    cfg, box = built_box("ura")
    topo, pos = box.topology, box.atoms.positions
    h = int(np.nonzero(np.char.startswith(topo.label.astype(str), "H_U"))[0][0])
    c = int(np.nonzero((topo.molecule == topo.molecule[h]) & (topo.label == "C_U"))[0][0])
    frames = [pos.copy() for _ in range(8)]
    for k in range(4, 8):
        frames[k][h] = pos[c] + 1.10 * (pos[h] - pos[c]) / np.linalg.norm(pos[h] - pos[c])
    path = _trajectory(tmp_path / "bad.h5", frames, box)
    w = uncertainty_before_failure(Ensemble.load(MODELS_DIR / "ura"), path, 0.05, 3)
    assert w["time_ps"] == pytest.approx([0.03, 0.04, 0.05])
    intact, broken = w["max_u_eV_A"][0], w["max_u_eV_A"][1:]
    assert broken[0] == pytest.approx(broken[1]) and broken[0] > 2 * intact
    assert w["atom"][1] in (h, c)


def _record(scale: str, stable: dict, rmse: float, coverage: float = 0.9, cn: float = 4.0) -> dict:
    """A validation record of the shape stage=validate writes (values made up for this test)."""
    drivers = []
    for driver, (ran, failed_at) in stable.items():
        run = {
            "ps_run": ran,
            "stable_ps": failed_at if failed_at is not None else ran,
            "failed_at_ps": failed_at,
            "reason": "" if failed_at is None else "molecules changed: a urea H bonded to its carbon",
            "closest_A": {"Li-O": 1.6, "H-O": 1.6},
            "li_o": {"first_peak_A": 1.9, "r_c_A": 2.6, "cn": cn},
        }
        drivers.append({"driver": driver, "runs": [run]})
    models = {f"member_{k}": {"forces_rmse_eV_A": rmse + 0.01 * k} for k in range(3)}
    return {"scale": scale, "drivers": drivers, "scores": {"models": models, "conformal": {"coverage": coverage}}}


def test_targets_table_names_every_missed_target_and_the_loops_stop(tmp_path):
    """README's targets table from the shipped records: a record meeting every target shows none missed; a failed
    member 0, a short run, a force error, a coverage or CN outside its range and a box never validated are named;
    the loop's verdict comes from its history."""
    from deepeut.validation.targets import al_verdict, targets_table

    models = tmp_path / "models" / "ura"
    models.mkdir(parents=True)
    records = {
        "tiny": _record("tiny", {"committee": (10.0, None), "0": (10.0, None)}, rmse=0.07),
        "small": _record("small", {"committee": (5.0, None), "0": (5.0, 0.8)}, rmse=0.12, coverage=0.97),
    }
    records["train"] = _record("train", {"committee": (1.5, None)}, rmse=0.05, cn=3.2)
    warning = {"time_ps": [0.78, 0.79, 0.8], "max_u_eV_A": [0.3, 0.7, 1.4], "atom": [5, 5, 5]}
    records["small"]["drivers"][1]["runs"][0]["u_before_failure"] = warning
    for scale, rec in records.items():
        (models / f"validation_{scale}.json").write_text(json.dumps(rec))
    (tmp_path / "models" / "act").mkdir()
    history = {"segments": [{"iterations": [{"iteration": 0, "explored": 606, "calibration_excluded": 12,
                                             "selected": 97}]}]}  # fmt: skip
    campaign = tmp_path / "campaign" / "ura"
    campaign.mkdir(parents=True)
    (campaign / "al_history.json").write_text(json.dumps(history))

    rows = {
        (line.split(" | ")[0][2:], line.split(" | ")[1]): line.split(" | ")[-1].rstrip(" |")
        for line in targets_table(["ura", "act"], tmp_path / "models", tmp_path / "campaign").splitlines()
        if line.startswith("| ura") or line.startswith("| act")
    }
    assert rows[("ura", "tiny (2 ion pairs)")] == "—"
    small = rows[("ura", "4 ion pairs")]
    assert "member 0 fails at 0.8 ps (molecules changed" in small
    assert "committee u 0.30–1.40 eV/Å over the 3 frames before, last 1.40)" in small
    assert "force RMSE up to 0.140 > 0.1 eV/Å" in small and "coverage 0.97 outside 0.85–0.95" in small
    train = rows[("ura", "training box (8 ion pairs)")]
    assert "committee ran 1.5 of 2 ps" in train and "member 0 not run" in train and "CN committee 3.20" in train
    assert rows[("act", "tiny (2 ion pairs)")] == "not validated at this box"
    assert "selected 97 of 594 explored frames (16 %)" in al_verdict(history)
    history["segments"].append({"iterations": [{"iteration": 0, "test_force_rmse": 0.14}]})  # retrained, not explored
    assert "(0 of segment 1) selected 97 of 594" in al_verdict(history)
    assert al_verdict(history).startswith("not stopped after 1 explored iteration over 2 segments")
    history["segments"].append({"iterations": [{"iteration": 0, "explored": 606, "selected": 115}]})
    assert al_verdict(history).endswith("selected 115 of 606 explored frames (19 %); "
                                        "selected per explored iteration, in order: 16 → 19 %")  # fmt: skip
    first, last = history["segments"][0]["iterations"][0], history["segments"][2]["iterations"][0]
    first.update(threshold_eV_A=1.2, test_force_rmse=0.15)
    last.update(threshold_eV_A=0.7, test_force_rmse=float("nan"))  # no test split: no ratio
    assert "test force RMSE" not in al_verdict(history)
    last["test_force_rmse"] = 0.14
    assert "in units of the members' test force RMSE: 8.0 → 5.0 (falling" in al_verdict(history)
    history["segments"].append({"iterations": [{"iteration": 0, "stop": "3 of 594 (0.5 %) < 5 %"}]})
    assert al_verdict(history) == "stopped by its rule (segment 4, iteration 0: 3 of 594 (0.5 %) < 5 %)"


def test_readme_shows_the_targets_table_of_the_shipped_records():
    """README's targets table is the one the shipped records give (regenerate it with the command in its marker
    after committing new validation records or loop histories); writing it twice changes nothing."""
    from conftest import ROOT

    from deepeut.validation.targets import replace_between_markers, targets_table

    readme = (ROOT / "README.md").read_text()
    table = targets_table()
    assert replace_between_markers(readme, table) == readme
    assert replace_between_markers(replace_between_markers(readme, "old"), table) == readme
