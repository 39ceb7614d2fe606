"""stage=classical: GAFF2 parameters, the OpenMM liquid, resume, and each bad input (issue 15)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, load_config

SHORT = ["classical.heat_ps=0.2", "classical.npt_ps=1.0", "classical.nvt_ps=0.4", "classical.save_every_ps=0.02"]


@pytest.mark.parametrize("system", ["ura", "act", "nma"])
def test_shipped_parameters_type_every_atom_and_carry_integer_charges(system, tmp_path):
    from deepeut.classical.parameters import SHIPPED, system_parameters
    from deepeut.systems.species import build_template

    cfg = load_config("stage=classical", f"system={system}", f"classical.param_cache={tmp_path}")
    for species, p in zip(cfg.system.species, system_parameters(cfg.system.species, cfg.classical)):
        assert abs(p.net_charge - species.charge) < 1e-6
        assert len(p.atom_types) == build_template(species).n_atoms and all(p.atom_types)
        if len(p.atom_types) > 1:
            assert p.mol2.parent == SHIPPED  # no antechamber call for the default systems
    assert "Li+" in system_parameters(cfg.system.species[:1], cfg.classical)[0].atom_types


def test_antechamber_makes_and_caches_parameters_by_content(tmp_path):
    from deepeut.classical.parameters import species_parameters

    cfg = load_config("stage=classical", f"classical.param_cache={tmp_path}", "classical.ff_charge_method=gas")
    urea = next(s for s in cfg.system.species if s.name == "urea")
    p = species_parameters(urea, cfg.classical)  # Gasteiger charges: another digest than the shipped AM1-BCC
    assert p.mol2.parent == tmp_path and abs(p.net_charge) < 1e-6 and set(p.atom_types) >= {"c", "o"}
    mtime = p.mol2.stat().st_mtime_ns
    assert species_parameters(urea, cfg.classical).mol2.stat().st_mtime_ns == mtime  # reused, not remade


@pytest.mark.slow
def test_antechamber_am1bcc_of_tfsi(tmp_path):
    from deepeut.classical.parameters import species_parameters

    cfg = load_config("stage=classical", f"classical.param_cache={tmp_path}", "classical.ff_atom_types=gaff")
    tfsi = next(s for s in cfg.system.species if s.name == "TFSI")
    p = species_parameters(tfsi, cfg.classical)
    assert abs(p.net_charge + 1) < 1e-6 and p.mol2.parent == tmp_path
    o = [q for q, t in zip(p.charges, p.atom_types) if t == "o"]
    assert np.ptp(o) < 1e-6  # the four sulfonyl O are equivalent


def test_tiny_box_equilibrates_with_intact_molecules_and_the_target_temperature(tmp_path):
    from deepeut.classical.task import classical
    from deepeut.trajectory.h5md import H5MDTrajectory

    cfg = load_config(
        "stage=classical",
        *SHORT,
        "classical.nvt_ps=2.0",
        f"classical.param_cache={tmp_path / 'p'}",
        "classical.samples_per_temperature=1",
        "classical.sample_every_ps=0.05",
        "classical.sample_temperatures_K=[400]",
    )
    classical(cfg, tmp_path)
    s = json.loads((tmp_path / "classical.json").read_text())["replicas"][0]
    assert s["molecules_intact"] and not s["short_contacts"]
    assert s["closest_intermolecular_A"]["Li-O"] > 1.7 and s["closest_intermolecular_A"]["H-O"] > 1.4
    assert abs(s["nvt_density_g_cm3"] - cfg.system.density_g_cm3) < 1e-6
    # 88 atoms, X–H constrained: N_f = 3·88 − 28 − 3 = 233, so T fluctuates by σ_T = T √(2/N_f) ≈ 33 K, and under a
    # Langevin thermostat (γ = 1/ps) a 2 ps mean holds only ~2 independent samples (blocking cannot see that in 20
    # frames): its error is ~σ_T/√2. The bound is the MD safety check's temperature window, 2 T √(2/N_f) ≈ 65 K; a
    # thermostat that lost the kinetic energy a minimisation takes (T ≈ 176 K) fails it.
    assert abs(s["nvt_temperature_mean_K"] - 353.0) < 2 * 353.0 * np.sqrt(2 / 233)
    with H5MDTrajectory(tmp_path / "replica_0" / "trajectory.h5") as tr:
        assert tr.n_frames == 100 and tr.parameters["engine"] == "openmm"
    from ase.io import read

    box = read(tmp_path / "replica_0" / "box.extxyz")
    assert np.abs(box.get_velocities()).sum() > 0 and "molecule" in box.arrays
    sample = read(next((tmp_path / "replica_0" / "samples").glob("400K_*.extxyz")))
    assert sample.info["temperature_K"] == 400 and len(sample) == 88


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "run.py"),
        "stage=classical",
        f"output_dir={out}",
        "classical.heat_ps=0.2",
        "classical.npt_ps=20",
        "classical.nvt_ps=0.4",
        "classical.checkpoint_every_ps=0.5",
        f"classical.param_cache={tmp_path / 'p'}",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = out / "replica_0" / "checkpoint.npz"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with np.load(ckpt) as d:
                if json.loads(str(d["progress"]))["phase"] == "npt":
                    break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with np.load(ckpt) as d:
        killed_at = json.loads(str(d["progress"]))
    assert killed_at["phase"] == "npt" and not (out / "classical.json").exists()
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    s = json.loads((out / "classical.json").read_text())["replicas"][0]
    assert s["simulated_ps"]["npt"] == pytest.approx(20.0) and s["molecules_intact"]


# --------------------------------------------------------------------------- bad input
def _stage(tmp_path, *over):
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "stage=classical",
            f"output_dir={tmp_path / 'o'}",
            f"classical.param_cache={tmp_path / 'p'}",
            *SHORT,
            *over,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


def test_unknown_element_for_gaff2_is_one_line(tmp_path):
    from deepeut.classical.parameters import ClassicalError, species_parameters
    from deepeut.config.schema import SpeciesConfig

    cfg = load_config("stage=classical", f"classical.param_cache={tmp_path}")
    silane = SpeciesConfig(name="TMS", smiles="C[Si](C)(C)C", role="solvent", charge=0)
    with pytest.raises(ClassicalError, match="TMS: element.*Si.*no gaff2 types"):
        species_parameters(silane, cfg.classical)


def test_non_integer_charges_in_a_parameter_file_are_refused(tmp_path):
    from deepeut.classical.parameters import (
        ClassicalError,
        parameter_digest,
        rewrite_mol2_charges,
        read_mol2_atoms,
        species_parameters,
        SHIPPED,
    )

    cfg = load_config("stage=classical", f"classical.param_cache={tmp_path}", "classical.ff_atom_types=gaff")
    urea = next(s for s in cfg.system.species if s.name == "urea")
    stem = f"urea-{parameter_digest(urea, cfg.classical)}"
    shipped = next(SHIPPED.glob("urea-*.mol2"))
    (tmp_path / f"{stem}.mol2").write_text(shipped.read_text())
    (tmp_path / f"{stem}.frcmod").write_text("\n")
    charges = read_mol2_atoms(tmp_path / f"{stem}.mol2")[2]
    rewrite_mol2_charges(tmp_path / f"{stem}.mol2", charges + 0.01)
    with pytest.raises(ClassicalError, match="charges sum to \\+0.08"):
        species_parameters(urea, cfg.classical)


def test_a_box_too_small_for_the_minimum_cutoff_is_refused_in_one_line(tmp_path):
    r = _stage(tmp_path, "classical.min_cutoff_A=6.0", "classical.cutoff_A=10")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "classical.min_cutoff_A = 6 Å" in r.stderr and "scale=small" in r.stderr
    assert not (tmp_path / "o" / "classical.json").exists()


def test_a_runaway_barostat_stops_naming_the_bound(tmp_path):
    r = _stage(
        tmp_path,
        "classical.pressure_bar=20000",
        "classical.npt_ps=10",  # 2 GPa squeezes the liquid
        "classical.max_density_deviation=0.05",
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "density drifted" in r.stderr and "classical.max_density_deviation" in r.stderr


def test_nan_energy_names_the_phase_and_what_to_change():
    from deepeut.classical.parameters import ClassicalError
    from deepeut.classical.protocol import check_finite

    with pytest.raises(ClassicalError, match="npt: the energy became NaN at 1.50 ps; lower classical.timestep_fs"):
        check_finite({"potential_kJ_mol": float("nan"), "temperature_K": 300.0}, "npt", 1.5)


def test_bad_classical_settings_fail_at_start_naming_the_key(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "stage=classical", "classical.constraints=none"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "classical.timestep_fs: must be <= 1 fs" in r.stderr
    from deepeut.classical.parameters import ClassicalError
    from deepeut.classical.system import platform_for

    import openmm

    if "CUDA" not in [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]:
        with pytest.raises(ClassicalError, match="device=cuda: OpenMM has no CUDA platform here"):
            platform_for("cuda")


def test_shipped_production_liquid_starts_md_with_every_molecule_intact(tmp_path):
    """The 8192-atom NMA liquid equilibrated by stage=classical (shipped: hours on a CPU) is a valid md start:
    molecule ids from its topology, every molecule recognised, the paper's density, new velocities."""
    from deepeut.md.task import start_structure
    from deepeut.stage_io import Structures
    from deepeut.systems.box import composition
    from deepeut.training.embedded import embedded_ensemble

    cfg = load_config("system=nma", "scale=production")
    path = ROOT / "deepeut" / "data" / "liquids" / "nma-production" / "box.extxyz.gz"
    setup = start_structure(cfg, 0, tmp_path / "r0", embedded_ensemble("nma"), Structures.of([path]))
    assert len(setup.atoms) == 8192 and not setup.use_start_velocities  # constrained X–H: re-thermalised
    assert setup.expected_counts == {k: v for k, v in composition(cfg.system, 128).items() if v}
    mass_g = setup.atoms.get_masses().sum() / 6.02214076e23
    assert mass_g / (setup.atoms.get_volume() * 1e-24) == pytest.approx(cfg.system.density_g_cm3, rel=1e-3)
