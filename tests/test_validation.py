"""stage=validate: failure detection on known trajectories, and the whole stage on the embedded ensemble (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import built_box, load_config, run_cli


def _trajectory(path, positions_per_frame, box):
    from deepeut.trajectory.h5md import H5MDWriter, OBSERVABLES

    w = H5MDWriter(
        path,
        box.atoms.numbers,
        box.atoms.get_masses(),
        box.atoms.cell.array,
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
